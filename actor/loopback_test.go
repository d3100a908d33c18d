package actor_test

// Tests on real sockets, loopback only, bounded in count and time (every
// wait has a deadline context, so a bug fails the test instead of hanging).

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gtudp/gtudp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// listen opens an endpoint on a loopback address and closes it at the end
// of the test.
func listen(t *testing.T, network, addr string, cfg *gtudp.Config) *gtudp.Endpoint {
	t.Helper()
	ep, err := gtudp.Listen(network, addr, cfg)
	if err != nil {
		t.Fatalf("Listen(%s, %s): %v", network, addr, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ep.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return ep
}

// collect reads the Inbox of ep until it is closed, in its own goroutine.
type collect struct {
	mu   sync.Mutex
	msgs []gtudp.Message
	more chan struct{} // a token after each message, for waitLen
	done chan struct{}
}

func collectInbox(ep *gtudp.Endpoint) *collect {
	c := &collect{more: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for m := range ep.Inbox() {
			c.mu.Lock()
			c.msgs = append(c.msgs, m)
			c.mu.Unlock()
			select {
			case c.more <- struct{}{}:
			default:
			}
		}
	}()
	return c
}

// waitLen returns the messages collected once there are at least n, or
// what there is when ctx ends or the Inbox closes. A Send returns when
// the message is in the receiver's Inbox channel, which is before this
// collector has taken it: a snapshot right after a Send can miss it (seen
// under -race on a loaded machine).
func (c *collect) waitLen(ctx context.Context, n int) []gtudp.Message {
	for {
		if msgs := c.snapshot(); len(msgs) >= n {
			return msgs
		}
		select {
		case <-c.more:
		case <-c.done:
			return c.snapshot()
		case <-ctx.Done():
			return c.snapshot()
		}
	}
}

func (c *collect) snapshot() []gtudp.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]gtudp.Message(nil), c.msgs...)
}

func TestEndpoint_Loopback10k(t *testing.T) {
	for _, tc := range []struct {
		network, addr string
		batch         int // 1: one datagram per system call
	}{
		{"udp4", "127.0.0.1:0", 0},
		{"udp6", "[::1]:0", 0},
		{"udp4", "127.0.0.1:0", 1},
	} {
		t.Run(fmt.Sprintf("%s/batch%d", tc.network, tc.batch), func(t *testing.T) {
			const n = 10000
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			a := listen(t, tc.network, tc.addr, &gtudp.Config{Batch: tc.batch})
			b := listen(t, tc.network, tc.addr, &gtudp.Config{Batch: tc.batch})
			got := make(chan gtudp.Message, n)
			go func() {
				for m := range b.Inbox() {
					got <- m
				}
			}()
			go func() {
				for i := range n {
					var m gtudp.Message
					m.Addr, m.Data = b.LocalAddr(), binary.BigEndian.AppendUint32(nil, uint32(i))
					select {
					case a.Outbox() <- m:
					case <-ctx.Done():
						return
					}
				}
			}()
			receipts := make(chan error, 1)
			go func() {
				// Receipts must be read as they come: the endpoint drops
				// what finds the buffer full.
				for range n {
					select {
					case r := <-a.Receipts():
						if r.Err != nil {
							receipts <- fmt.Errorf("receipt %+v", r)
							return
						}
					case <-ctx.Done():
						receipts <- fmt.Errorf("timed out waiting for receipts: %+v", a.Stats())
						return
					}
				}
				receipts <- nil
			}()
			seen := make([]bool, n)
			for range n {
				select {
				case m := <-got:
					i := binary.BigEndian.Uint32(m.Data)
					if seen[i] {
						t.Fatalf("message %d delivered twice", i)
					}
					seen[i] = true
					if m.Addr != a.LocalAddr() {
						t.Fatalf("message from %v, want %v", m.Addr, a.LocalAddr())
					}
				case <-ctx.Done():
					t.Fatalf("timed out: %+v", b.Stats())
				}
			}
			if err := <-receipts; err != nil {
				t.Fatal(err)
			}
			t.Logf("sender: %d DATA re-sent for %d messages", a.Stats().DataResent, n)
		})
	}
}
func TestEndpoint_DualStackOnePeer(t *testing.T) {
	b := listen(t, "udp", "[::]:0", nil)
	collectInbox(b)
	a := listen(t, "udp4", "127.0.0.1:0", nil)
	in := collectInbox(a)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	to := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), b.LocalAddr().Port())
	if err := a.Send(ctx, to, []byte("hi")); err != nil {
		t.Fatalf("Send to the dual-stack socket: %v", err)
	}
	mapped := netip.AddrPortFrom(netip.MustParseAddr("::ffff:127.0.0.1"), a.LocalAddr().Port())
	if err := b.Send(ctx, mapped, []byte("back")); err != nil {
		t.Fatalf("Send to the mapped address: %v", err)
	}
	if st := b.Stats(); st.Peers != 1 || st.PeersStarted != 1 {
		t.Fatalf("dual-stack endpoint has %d peers (%d started), want 1: 127.0.0.1 and ::ffff:127.0.0.1 are one peer", st.Peers, st.PeersStarted)
	}
	if _, ok := b.PeerStats(mapped); !ok {
		t.Fatalf("no peer for %v", mapped)
	}
	if _, ok := b.PeerStats(a.LocalAddr()); !ok {
		t.Fatalf("no peer for %v", a.LocalAddr())
	}
	if msgs := in.waitLen(ctx, 1); len(msgs) != 1 || msgs[0].Addr.Addr().Is4In6() {
		t.Fatalf("a received %+v, want one message from an unmapped address", msgs)
	}
}

func TestEndpoint_PassthroughBothWays(t *testing.T) {
	ep := listen(t, "udp4", "127.0.0.1:0", &gtudp.Config{Passthrough: true})
	raw, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	rawAddr := raw.LocalAddr().(*net.UDPAddr).AddrPort()

	// In: a datagram that is not gtUDP reaches the Inbox as is.
	if _, err := raw.WriteToUDPAddrPort([]byte("plain hello"), ep.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-ep.Inbox():
		if !m.Raw || string(m.Data) != "plain hello" || m.Addr != rawAddr {
			t.Fatalf("Inbox got %+v, want the raw datagram from %v", m, rawAddr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("raw datagram not delivered")
	}

	// Out: a raw Message on the Outbox goes out unframed, with a receipt.
	ep.Outbox() <- gtudp.Message{Addr: rawAddr, Data: []byte("plain reply"), Raw: true}
	buf := make([]byte, 100)
	raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, from, err := raw.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatal(err)
	}
	if string(buf[:n]) != "plain reply" || from != ep.LocalAddr() {
		t.Fatalf("read %q from %v, want %q from %v", buf[:n], from, "plain reply", ep.LocalAddr())
	}
	if r := <-ep.Receipts(); r.Err != nil || r.Attempts != 1 {
		t.Fatalf("raw receipt %+v, want success after 1 attempt", r)
	}
	if st := ep.Stats(); st.RawDelivered != 1 || st.RawSent != 1 || st.Foreign != 1 {
		t.Fatalf("stats %+v, want 1 raw in, 1 raw out, 1 foreign", st)
	}
}

func TestEndpoint_ForeignDroppedWithoutPassthrough(t *testing.T) {
	ep := listen(t, "udp4", "127.0.0.1:0", nil)
	in := collectInbox(ep)
	a := listen(t, "udp4", "127.0.0.1:0", nil)
	raw, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, d := range [][]byte{[]byte("plain"), {0x1d, 1, 2}, {}} {
		raw.WriteToUDPAddrPort(d, ep.LocalAddr())
	}
	// A reliable message sent after them arrives after them on loopback:
	// once it is in, the three have been classified.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Send(ctx, ep.LocalAddr(), []byte("real")); err != nil {
		t.Fatal(err)
	}
	if msgs := in.waitLen(ctx, 1); len(msgs) != 1 || string(msgs[0].Data) != "real" {
		t.Fatalf("Inbox got %+v, want only the gtUDP message", msgs)
	}
	if st := ep.Stats(); st.Foreign != 2 || st.Malformed != 1 {
		t.Fatalf("Foreign %d, Malformed %d; want 2 and 1", st.Foreign, st.Malformed)
	}
}

func TestEndpoint_CloseDrainsPending(t *testing.T) {
	a, err := gtudp.Listen("udp4", "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	b := listen(t, "udp4", "127.0.0.1:0", nil)
	in := collectInbox(b)
	const n = 50
	for i := range n {
		a.Outbox() <- gtudp.Message{Addr: b.LocalAddr(), Data: []byte{byte(i)}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ok := 0
	for r := range a.Receipts() { // closed by Close: this ends
		if r.Err != nil {
			t.Errorf("receipt %+v", r)
		}
		ok++
	}
	if ok != n {
		t.Fatalf("%d receipts, want %d", ok, n)
	}
	// Every RECV seen by a was sent after the delivery: once b has
	// closed, its Inbox has given up all it held.
	if err := b.Close(ctx); err != nil {
		t.Fatalf("Close b: %v", err)
	}
	<-in.done
	if got := len(in.snapshot()); got != n {
		t.Fatalf("b got %d messages, want %d", got, n)
	}
	if err := a.Send(ctx, b.LocalAddr(), nil); !errors.Is(err, gtudp.ErrClosed) || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Send after Close: %v, want ErrClosed", err)
	}
	if err := a.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestEndpoint_CloseExpiredFailsTheRest(t *testing.T) {
	a, err := gtudp.Listen("udp4", "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Nobody listens here: nothing will ever answer.
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	to := sink.LocalAddr().(*net.UDPAddr).AddrPort()
	for i := range 5 {
		a.Outbox() <- gtudp.Message{Addr: to, Data: []byte{byte(i)}}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close with an ended context: %v, want context.Canceled", err)
	}
	n := 0
	for r := range a.Receipts() {
		if !errors.Is(r.Err, gtudp.ErrClosed) {
			t.Errorf("receipt %+v, want ErrClosed", r)
		}
		n++
	}
	if n != 5 {
		t.Fatalf("%d receipts, want 5", n)
	}
}

func TestListen_Errors(t *testing.T) {
	if _, err := gtudp.Listen("tcp", "127.0.0.1:0", nil); err == nil {
		t.Error("Listen on tcp succeeded")
	}
	if _, err := gtudp.Listen("udp", "127.0.0.1:0", &gtudp.Config{MinRTO: time.Second, MaxRTO: time.Millisecond}); err == nil {
		t.Error("Listen with MinRTO above MaxRTO succeeded")
	}
	if _, err := gtudp.Listen("udp", "127.0.0.1:0", &gtudp.Config{MaxPeers: -1}); err == nil {
		t.Error("Listen with negative MaxPeers succeeded")
	}
	bad := gtudp.Format{Data: []byte{1}, Recv: []byte{1}, Ack: []byte{2}}
	if _, err := gtudp.Listen("udp", "127.0.0.1:0", &gtudp.Config{Format: bad}); err == nil {
		t.Error("Listen with a repeated type identifier succeeded")
	}
}

func TestSend_Errors(t *testing.T) {
	a := listen(t, "udp4", "127.0.0.1:0", &gtudp.Config{MaxMessage: 100_000})
	plain := listen(t, "udp4", "127.0.0.1:0", &gtudp.Config{NoExtension: true})
	ctx := context.Background()
	if err := a.Send(ctx, netip.AddrPort{}, nil); err == nil {
		t.Error("Send to the zero address succeeded")
	}
	for _, tc := range []struct {
		ep   *gtudp.Endpoint
		size int
	}{
		{a, 100_001},           // MaxMessage
		{plain, 65507 - 5 + 1}, // one datagram, with the 5-byte header
	} {
		big := make([]byte, tc.size)
		if err := tc.ep.Send(ctx, a.LocalAddr(), big); !errors.Is(err, gtudp.ErrTooLarge) {
			t.Errorf("Send of %d bytes: %v, want ErrTooLarge", len(big), err)
		}
		tc.ep.Outbox() <- gtudp.Message{Addr: a.LocalAddr(), Data: big}
		if r := <-tc.ep.Receipts(); !errors.Is(r.Err, gtudp.ErrTooLarge) || len(r.Data) != tc.size {
			t.Errorf("Outbox receipt of %d bytes: %v, want ErrTooLarge", len(r.Data), r.Err)
		}
	}
}

// Messages of every size up to a megabyte cross loopback whole and once
// between gtudp endpoints: those larger than one datagram in fragments,
// none of whose datagrams exceeds DatagramSize.
func TestLarge_Loopback(t *testing.T) {
	a := listen(t, "udp4", "127.0.0.1:0", nil)
	b := listen(t, "udp4", "127.0.0.1:0", nil)
	in := collectInbox(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sizes := []int{0, 1, 1100, 1200, 1201, 5000, 65502, 65503, 1 << 20, 3}
	for i, n := range sizes {
		msg := make([]byte, n)
		for j := range msg {
			msg[j] = byte(i*7 + j*13)
		}
		if err := a.Send(ctx, b.LocalAddr(), msg); err != nil {
			t.Fatalf("Send of %d bytes: %v", n, err)
		}
	}
	b.Close(ctx)
	<-in.done
	got := in.snapshot()
	if len(got) != len(sizes) {
		t.Fatalf("%d messages delivered, want %d", len(got), len(sizes))
	}
	for i, m := range got {
		n := sizes[i]
		ok := len(m.Data) == n
		for j := 0; ok && j < n; j++ {
			ok = m.Data[j] == byte(i*7+j*13)
		}
		if !ok {
			t.Errorf("message %d: %d bytes, not the %d sent", i, len(m.Data), n)
		}
	}
	if ps, _ := a.PeerStats(b.LocalAddr()); !ps.Extension {
		t.Errorf("the sender does not count the receiver as speaking the extension: %+v", ps)
	}
}

// To a peer that speaks only the original protocol, a message larger than
// one EXT datagram goes as one datagram, once the peer is known not to
// speak the extension (until then it waits), and one larger than a
// datagram can hold fails with ErrTooLarge.
func TestLarge_ToOriginal(t *testing.T) {
	a := listen(t, "udp4", "127.0.0.1:0", nil)
	orig := listen(t, "udp4", "127.0.0.1:0", &gtudp.Config{NoExtension: true})
	in := collectInbox(orig)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	big := make([]byte, 65502) // 65,507 with the header
	big[65501] = 7
	if err := a.Send(ctx, orig.LocalAddr(), big); err != nil {
		t.Fatalf("Send of 65,502 bytes to the original: %v", err)
	}
	err := a.Send(ctx, orig.LocalAddr(), make([]byte, 65503))
	if !errors.Is(err, gtudp.ErrTooLarge) {
		t.Fatalf("Send of 65,503 bytes to the original: %v, want ErrTooLarge", err)
	}
	orig.Close(ctx)
	<-in.done
	if got := in.snapshot(); len(got) != 1 || len(got[0].Data) != 65502 || got[0].Data[65501] != 7 {
		t.Fatalf("the original got %d messages, want the one of 65,502 bytes", len(got))
	}
}

// A destination of a family the socket cannot reach fails at once, with
// ErrBadAddress and the reason, whether sent with Send, the Outbox or
// SendRaw; a dual-stack socket reaches both families.
func TestSend_AddressFamily(t *testing.T) {
	v4 := listen(t, "udp4", "127.0.0.1:0", nil)
	v6 := listen(t, "udp6", "[::1]:0", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range []struct {
		from *gtudp.Endpoint
		to   netip.AddrPort
	}{
		{v4, v6.LocalAddr()},
		{v6, v4.LocalAddr()},
	} {
		if err := c.from.Send(ctx, c.to, []byte("x")); !errors.Is(err, gtudp.ErrBadAddress) || !strings.Contains(err.Error(), "reached") {
			t.Errorf("Send from %v to %v: %v, want ErrBadAddress saying why", c.from.LocalAddr(), c.to, err)
		}
		c.from.Outbox() <- gtudp.Message{Addr: c.to, Data: []byte("x")}
		if r := <-c.from.Receipts(); !errors.Is(r.Err, gtudp.ErrBadAddress) || r.Attempts != 0 {
			t.Errorf("Outbox receipt %+v, want ErrBadAddress after no attempt", r)
		}
		if err := c.from.SendRaw(c.to, []byte("x")); !errors.Is(err, gtudp.ErrBadAddress) {
			t.Errorf("SendRaw: %v, want ErrBadAddress", err)
		}
	}
	dual := listen(t, "udp", ":0", nil)
	collectInbox(v4)
	collectInbox(v6)
	for _, to := range []netip.AddrPort{v4.LocalAddr(), v6.LocalAddr()} {
		if err := dual.Send(ctx, to, []byte("x")); err != nil {
			t.Errorf("Send from a dual-stack socket to %v: %v", to, err)
		}
	}
}

// An endpoint refuses a connected socket (every write to another address
// would fail), and clears a read deadline the socket comes with (one in
// the past would leave the reader deaf, spinning on timeouts).
func TestNew_ConnChecks(t *testing.T) {
	srv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	connected, err := net.DialUDP("udp4", nil, srv.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer connected.Close()
	if ep, err := gtudp.New(connected, nil); err == nil || !strings.Contains(err.Error(), "connected") {
		if ep != nil {
			ep.Close(context.Background())
		}
		t.Fatalf("New on a connected socket: %v, want an error saying it is connected", err)
	}

	late, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	late.SetReadDeadline(time.Unix(1, 0)) // long past
	ep, err := gtudp.New(late, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close(context.Background())
	a := listen(t, "udp4", "127.0.0.1:0", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Send(ctx, ep.LocalAddr(), []byte("heard?")); err != nil {
		t.Fatalf("Send to an endpoint whose socket had a past read deadline: %v", err)
	}
	if m := <-ep.Inbox(); string(m.Data) != "heard?" {
		t.Fatalf("got %q", m.Data)
	}
	if st := ep.Stats(); st.ReadErrors != 0 {
		t.Fatalf("ReadErrors %d", st.ReadErrors)
	}
}
