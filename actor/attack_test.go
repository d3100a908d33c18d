package actor_test

// Hostile and faulty conditions, on the in-memory network inside synctest
// bubbles: one peer exhausting its state, spoofed RECV/ACK, amplification,
// random datagrams, and a socket whose reads and writes fail for a while.

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/gtudp/gtudp"
	"github.com/gtudp/gtudp/actor/actortest"
	"github.com/gtudp/gtudp/wire"
)

var format = wire.DefaultFormat()

func dataPacket(id wire.ID, payload string) []byte {
	return format.Append(nil, wire.Packet{Kind: wire.Data, ID: id, Payload: []byte(payload)})
}

// sendWithClock runs ep.Send in a goroutine and advances the mock clock
// until it returns.
func sendWithClock(t *testing.T, mock *clock.Mock, ep *gtudp.Endpoint, to netip.AddrPort, data string) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- ep.Send(context.Background(), to, []byte(data)) }()
	for range 1000 {
		synctest.Wait()
		select {
		case err := <-errc:
			return err
		default:
		}
		mock.Add(10 * time.Millisecond)
	}
	t.Fatal("Send did not return within 10 s of simulated time")
	return nil
}

func TestAttack_OnePeerCannotExhaustState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, nil)
		evil, _ := p.network.Listen("10.6.6.6:666")
		before := memInUse()
		// Fresh ids at full speed, never an ACK.
		const flood = 20000
		for i := range flood {
			evil.WriteTo(dataPacket(wire.ID{byte(i >> 16), byte(i >> 8), byte(i), 1}, "x"), p.connB.LocalAddr())
			if i%1000 == 0 {
				synctest.Wait()
			}
		}
		synctest.Wait()
		st, ok := p.b.PeerStats(evil.AddrPort())
		if !ok {
			t.Fatal("no peer for the flooding address")
		}
		if st.Open > gtudp.DefaultRecvWindow || st.Remembered > gtudp.DefaultDedupeLimit {
			t.Fatalf("flooder holds %d open and %d remembered exchanges, caps %d and %d", st.Open, st.Remembered, gtudp.DefaultRecvWindow, gtudp.DefaultDedupeLimit)
		}
		if st.Withheld == 0 {
			t.Fatalf("nothing withheld from %d DATA: %+v", flood, st)
		}
		peak := memInUse()
		// Another peer is served as usual.
		if err := sendWithClock(t, p.mock, p.a, p.b.LocalAddr(), "hello"); err != nil {
			t.Fatalf("a during the flood: %v", err)
		}
		evil.Close()
		p.abort()
		t.Logf("%d fresh DATA from one address: %d open, %d withheld; memory in use before %d KiB, peak %d KiB, after close %d KiB",
			flood, st.Open, st.Withheld, before>>10, peak>>10, memInUse()>>10)
	})
}

func TestAttack_SpoofedRecvAndAckChangeNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, nil)
		// Learn the id of a's DATA as an on-path observer would, and
		// hold it back from b.
		var seen atomic.Value
		p.network.SetFate(func(from, to netip.AddrPort, b []byte) actortest.Fate {
			if pkt, err := format.Decode(b); err == nil && pkt.Kind == wire.Data && from == p.connA.AddrPort() {
				seen.Store(pkt.ID)
				return actortest.Fate{Drop: true}
			}
			return actortest.Fate{}
		})
		errc := make(chan error, 1)
		go func() { errc <- p.a.Send(context.Background(), p.b.LocalAddr(), []byte("secret")) }()
		synctest.Wait()
		id := seen.Load().(wire.ID)

		// A third address sends RECV and ACK with the right id: a's
		// message is not confirmed by it.
		spoofer, _ := p.network.Listen("10.6.6.6:666")
		spoofer.WriteTo(format.Append(nil, wire.Packet{Kind: wire.Recv, ID: id}), p.connA.LocalAddr())
		spoofer.WriteTo(format.Append(nil, wire.Packet{Kind: wire.Ack, ID: id}), p.connA.LocalAddr())
		synctest.Wait()
		select {
		case err := <-errc:
			t.Fatalf("Send returned %v after a spoofed RECV", err)
		default:
		}
		if st, _ := p.a.PeerStats(p.b.LocalAddr()); st.InFlight != 1 || st.Confirmed != 0 {
			t.Fatalf("b's peer on a: %+v, want the message still in flight", st)
		}
		if st := p.a.Stats(); st.StrayRecv != 1 || st.StrayAck != 1 {
			t.Fatalf("StrayRecv %d, StrayAck %d; want the spoofed packets counted", st.StrayRecv, st.StrayAck)
		}
		// RECVs with guessed ids from the right address are counted.
		p.connB.WriteTo(format.Append(nil, wire.Packet{Kind: wire.Recv, ID: wire.ID{1, 2, 3, 4}}), p.connA.LocalAddr())
		synctest.Wait()
		if st, _ := p.a.PeerStats(p.b.LocalAddr()); st.UnknownRecv != 1 || st.Confirmed != 0 {
			t.Fatalf("after a guessed RECV: %+v", st)
		}
		p.network.SetFate(nil)
		for range 100 {
			synctest.Wait()
			select {
			case err := <-errc:
				if err != nil {
					t.Fatal(err)
				}
				spoofer.Close()
				p.abort()
				return
			default:
			}
			p.mock.Add(100 * time.Millisecond)
		}
		t.Fatal("the message was not delivered once the network healed")
	})
}

func TestAttack_NoAmplification(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, nil)
		// The victim never answers; DATA "from" it arrive at b (an
		// attacker spoofing its address).
		victim, _ := p.network.Listen("10.9.9.9:99")
		for i := range 50 {
			victim.WriteTo(dataPacket(wire.ID{byte(i), 9}, ""), p.connB.LocalAddr())
			synctest.Wait()
			for range 5 {
				p.mock.Add(time.Second)
				synctest.Wait()
			}
		}
		st, ok := p.b.PeerStats(victim.AddrPort())
		if !ok {
			t.Fatal("no peer for the victim")
		}
		ratio := float64(st.BytesOut) / float64(st.BytesIn)
		t.Logf("to the victim: %d bytes out for %d in (%.2fx), %d packets held back", st.BytesOut, st.BytesIn, ratio, st.Limited)
		if st.BytesOut > 3*st.BytesIn || st.Limited == 0 {
			t.Fatalf("sent %d bytes to an unvalidated address that sent %d (limited %d): above 3x", st.BytesOut, st.BytesIn, st.Limited)
		}
		victim.Close()
		p.abort()
	})
}

func TestAttack_RandomDatagrams(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, nil)
		noise, _ := p.network.Listen("10.7.7.7:777")
		rng := rand.New(rand.NewPCG(1, 2))
		before := memInUse()
		// An oversized datagram (no UDP datagram over IPv4 is this
		// large) is foreign whatever it starts with.
		huge := make([]byte, wire.MaxDatagram+1)
		huge[0] = 0x1d
		noise.WriteTo(huge, p.connB.LocalAddr())
		const n = 5000 + 1
		for range n - 1 {
			b := make([]byte, rng.IntN(40))
			for i := range b {
				b[i] = byte(rng.UintN(256))
			}
			if len(b) > 0 && rng.IntN(2) == 0 {
				b[0] = []byte{0x1d, 0x5f, 0xae}[rng.IntN(3)] // valid types too
			}
			noise.WriteTo(b, p.connB.LocalAddr())
			synctest.Wait() // within the socket's queue: every datagram reaches the endpoint
		}
		synctest.Wait()
		st := p.b.Stats()
		ns, _ := p.b.PeerStats(noise.AddrPort())
		// Every datagram is accounted for: foreign, malformed, or a
		// packet its peer handled (or its mailbox dropped).
		if got := st.Foreign + st.Malformed + ns.PacketsIn + st.MailboxFull + st.StrayAck + st.StrayRecv; got != n {
			t.Fatalf("accounted for %d of %d datagrams: %+v", got, n, st)
		}
		peak := memInUse()
		// a's traffic is untouched.
		if err := sendWithClock(t, p.mock, p.a, p.b.LocalAddr(), "fine"); err != nil {
			t.Fatal(err)
		}
		noise.Close()
		p.abort()
		t.Logf("%d random datagrams: %d foreign, %d malformed, %d handled by the peer; memory in use before %d KiB, peak %d KiB, after close %d KiB",
			n, st.Foreign, st.Malformed, ns.PacketsIn, before>>10, peak>>10, memInUse()>>10)
	})
}

// faultyConn fails writes with ENOBUFS, and reads with a transient error,
// while failing is set.
type faultyConn struct {
	net.PacketConn
	failWrites, failReads atomic.Int32
}

func (c *faultyConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if c.failWrites.Load() > 0 {
		c.failWrites.Add(-1)
		return 0, &net.OpError{Op: "write", Net: "udp", Err: syscall.ENOBUFS}
	}
	return c.PacketConn.WriteTo(b, addr)
}

func (c *faultyConn) ReadFrom(b []byte) (int, net.Addr, error) {
	if c.failReads.Load() > 0 {
		c.failReads.Add(-1)
		return 0, nil, &net.OpError{Op: "read", Net: "udp", Err: syscall.ECONNREFUSED}
	}
	return c.PacketConn.ReadFrom(b)
}

func TestFault_WriteAndReadErrorsAreRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mock := clock.NewMock()
		network := actortest.NewNetwork(mock)
		ca, _ := network.Listen("10.0.0.1:1")
		cb, _ := network.Listen("10.0.0.2:1")
		fa := &faultyConn{PacketConn: ca}
		fa.failWrites.Store(3)
		fa.failReads.Store(3)
		a, err := gtudp.New(fa, &gtudp.Config{Clock: mock})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := gtudp.New(cb, &gtudp.Config{Clock: mock})
		go func() {
			for range b.Inbox() {
			}
		}()
		if err := sendWithClock(t, mock, a, b.LocalAddr(), "through"); err != nil {
			t.Fatalf("Send across failing writes: %v", err)
		}
		st := a.Stats()
		if st.WriteErrors != 3 || st.ReadErrors != 3 || st.DataResent == 0 {
			t.Fatalf("WriteErrors %d, ReadErrors %d, DataResent %d; want 3, 3 and re-sends", st.WriteErrors, st.ReadErrors, st.DataResent)
		}
		for _, ep := range []*gtudp.Endpoint{a, b} {
			if err := ep.Close(context.Background()); err != nil && !errors.Is(err, gtudp.ErrClosed) {
				t.Fatal(err)
			}
		}
	})
}

// An application that answers every message (an echo server) cannot be
// turned into a reflector either: its reply to a spoofed source waits for
// that source to prove itself, and fails at its Lifetime.
func TestAttack_EchoIsNoReflector(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mock := clock.NewMock()
		network := actortest.NewNetwork(mock)
		sc, _ := network.Listen("10.0.0.1:4323")
		echo, _ := gtudp.New(sc, &gtudp.Config{Clock: mock, Lifetime: 5 * time.Second})
		go func() {
			for m := range echo.Inbox() {
				echo.Outbox() <- gtudp.Message{Addr: m.Addr, Data: append(m.Data, m.Data...)} // replies twice as large
			}
		}()
		victim, _ := network.Listen("10.9.9.9:99")
		for i := range 10 {
			victim.WriteTo(dataPacket(wire.ID{byte(i), 1}, "ping ping ping"), sc.LocalAddr())
		}
		for range 100 {
			synctest.Wait()
			mock.Add(100 * time.Millisecond)
		}
		synctest.Wait()
		st, _ := echo.PeerStats(victim.AddrPort())
		t.Logf("echo to a spoofed source: %d bytes out for %d in, %d held back", st.BytesOut, st.BytesIn, st.Limited)
		if st.BytesOut > 3*st.BytesIn || st.Limited == 0 {
			t.Fatalf("echo sent %d bytes to an unproven address that sent %d", st.BytesOut, st.BytesIn)
		}
		for range 10 {
			if r := <-echo.Receipts(); !errors.Is(r.Err, gtudp.ErrUndelivered) {
				t.Fatalf("reply receipt %+v, want ErrUndelivered", r)
			}
		}
		victim.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		echo.Close(ctx)
	})
}
