package actor_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/gtudp/gtudp"
	"github.com/gtudp/gtudp/actor/actortest"
)

// pair is two endpoints on the in-memory network with the mock clock.
type pair struct {
	mock         *clock.Mock
	network      *actortest.Network
	connA, connB *actortest.Conn
	a, b         *gtudp.Endpoint
}

func newPair(t *testing.T, cfgA *gtudp.Config) *pair {
	t.Helper()
	p := &pair{mock: clock.NewMock()}
	p.network = actortest.NewNetwork(p.mock)
	p.connA, _ = p.network.Listen("10.0.0.1:4323")
	p.connB, _ = p.network.Listen("10.0.0.2:4323")
	if cfgA == nil {
		cfgA = &gtudp.Config{}
	}
	cfgA.Clock = p.mock
	var err error
	if p.a, err = gtudp.New(p.connA, cfgA); err != nil {
		t.Fatal(err)
	}
	if p.b, err = gtudp.New(p.connB, &gtudp.Config{Clock: p.mock}); err != nil {
		t.Fatal(err)
	}
	go func() {
		for range p.b.Inbox() {
		}
	}()
	return p
}

// step moves the mock clock once every goroutine of the bubble is blocked.
func (p *pair) step(d time.Duration) {
	synctest.Wait()
	p.mock.Add(d)
	synctest.Wait()
}

func (p *pair) close(t *testing.T) {
	t.Helper()
	for _, ep := range []*gtudp.Endpoint{p.a, p.b} {
		if err := ep.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
}

// abort closes both endpoints at once: exchanges still under way fail
// rather than wait for a clock nobody moves.
func (p *pair) abort() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p.a.Close(ctx)
	p.b.Close(ctx)
}

// syncBuffer is a bytes.Buffer for a logger written by many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestEndpoint_DebugLogsEveryPacket(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf syncBuffer
		log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		p := newPair(t, &gtudp.Config{Logger: log})
		if err := p.a.Send(context.Background(), p.b.LocalAddr(), []byte("Hello")); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		out := buf.String()
		for _, want := range []string{
			"msg=OUT peer=10.0.0.2:4323 kind=DATA", "size=10", // 5 bytes of header, 5 of payload
			"msg=IN peer=10.0.0.2:4323 kind=RECV", "size=17", // with the extension's trailer
			"msg=OUT peer=10.0.0.2:4323 kind=ACK",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("debug log lacks %q:\n%s", want, out)
			}
		}
		if n := strings.Count(out, "level=DEBUG"); n != 3 {
			t.Errorf("%d debug lines, want 3 (DATA out, RECV in, ACK out):\n%s", n, out)
		}
		if strings.Index(out, "kind=ACK") < strings.Index(out, "kind=RECV") {
			t.Errorf("the ACK is logged before the RECV it answers:\n%s", out)
		}
		p.close(t)
	})
}

func TestNew_CloseLeavesTheConnOpen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, nil)
		p.close(t)
		// The reader is gone and the deadline cleared: the conn is the
		// caller's again, readable and writable.
		if _, err := p.connA.WriteTo([]byte("x"), p.connB.LocalAddr()); err != nil {
			t.Fatalf("WriteTo after Close: %v", err)
		}
		buf := make([]byte, 8)
		if n, _, err := p.connB.ReadFrom(buf); err != nil || n != 1 {
			t.Fatalf("ReadFrom after Close: %d, %v", n, err)
		}
	})
}

func TestEndpoint_SocketClosedUnderneath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, nil)
		p.network.Partition(p.connA.AddrPort(), p.connB.AddrPort())
		p.a.Outbox() <- gtudp.Message{Addr: p.b.LocalAddr(), Data: []byte("pending")}
		synctest.Wait()
		p.connA.Close()
		synctest.Wait()
		if r := <-p.a.Receipts(); !errors.Is(r.Err, gtudp.ErrClosed) {
			t.Fatalf("receipt of a message pending when the socket closed: %+v, want ErrClosed", r)
		}
		if err := p.a.Send(context.Background(), p.b.LocalAddr(), nil); !errors.Is(err, gtudp.ErrClosed) {
			t.Fatalf("Send on a broken endpoint: %v, want ErrClosed", err)
		}
		if err := p.a.Close(context.Background()); !errors.Is(err, gtudp.ErrClosed) || !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Close of a broken endpoint: %v, want an error matching ErrClosed", err)
		}
		p.b.Close(context.Background())
	})
}

func TestEndpoint_WindowFullMakesSendWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, &gtudp.Config{Window: 1})
		p.network.Partition(p.connA.AddrPort(), p.connB.AddrPort())
		ctx := context.Background()
		first := make(chan error, 1)
		go func() { first <- p.a.Send(ctx, p.b.LocalAddr(), []byte("1")) }()
		synctest.Wait()
		second := make(chan error, 1)
		go func() { second <- p.a.Send(ctx, p.b.LocalAddr(), []byte("2")) }()
		synctest.Wait()
		if st := p.a.Stats(); st.Sent != 1 {
			t.Fatalf("Sent %d with a window of 1, want 1: the second send must wait", st.Sent)
		}
		p.network.HealAll()
		p.step(time.Second) // the first is re-sent and answered
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		p.step(time.Second)
		if err := <-second; err != nil {
			t.Fatal(err)
		}
		p.close(t)
	})
}

func TestEndpoint_ReceiptsWaitForTheReader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, &gtudp.Config{ReceiptsSize: 1})
		for range 3 {
			p.a.Outbox() <- gtudp.Message{Addr: p.b.LocalAddr(), Data: []byte("x")}
		}
		synctest.Wait()
		// All three are confirmed at once; the reader gets every receipt
		// though Receipts holds only one at a time.
		for range 3 {
			if r := <-p.a.Receipts(); r.Err != nil {
				t.Fatal(r)
			}
		}
		// Nobody reads: one receipt fits, the other two wait in the peer,
		// and Close waits for them until its context ends; then they are
		// dropped, and counted.
		for range 3 {
			p.a.Outbox() <- gtudp.Message{Addr: p.b.LocalAddr(), Data: []byte("x")}
		}
		synctest.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := p.a.Close(ctx); err != context.DeadlineExceeded {
			t.Fatalf("Close with receipts nobody reads: %v, want its context's end", err)
		}
		if err := p.b.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if st := p.a.Stats(); st.ReceiptsDropped != 2 || st.Confirmed != 6 {
			t.Fatalf("ReceiptsDropped %d, Confirmed %d; want 2 and 6", st.ReceiptsDropped, st.Confirmed)
		}
	})
}

func TestEndpoint_InboxFullIsBackpressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mock := clock.NewMock()
		network := actortest.NewNetwork(mock)
		ca, _ := network.Listen("10.0.0.1:1")
		cb, _ := network.Listen("10.0.0.2:1")
		a, _ := gtudp.New(ca, &gtudp.Config{Clock: mock})
		b, _ := gtudp.New(cb, &gtudp.Config{Clock: mock, InboxSize: 1, HoldLimit: 1})
		ctx := context.Background()
		errs := make(chan error, 3)
		for range 3 {
			go func() { errs <- a.Send(ctx, b.LocalAddr(), []byte("x")) }()
		}
		synctest.Wait()
		// One in the Inbox, one held, one withheld: only two RECVs.
		if st := a.Stats(); st.Confirmed != 1 {
			t.Fatalf("Confirmed %d while b's Inbox is full, want 1 (held messages are not answered)", st.Confirmed)
		}
		for range 3 {
			synctest.Wait()
			<-b.Inbox()
			mock.Add(time.Second)
		}
		for range 3 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		if st := b.Stats(); st.Delivered != 3 || st.Withheld == 0 {
			t.Fatalf("Delivered %d, Withheld %d; want 3 and some", st.Delivered, st.Withheld)
		}
		a.Close(ctx)
		go func() {
			for range b.Inbox() {
			}
		}()
		b.Close(ctx)
	})
}

// Quiet peers park, costing no goroutine; traffic in either direction
// resumes them, and Close finishes with parked peers as with live ones.
func TestEndpoint_QuietPeersParkAndResume(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, nil)
		ctx := context.Background()
		if err := p.a.Send(ctx, p.b.LocalAddr(), []byte("one")); err != nil {
			t.Fatal(err)
		}
		p.step(2 * time.Second)
		for _, ep := range []*gtudp.Endpoint{p.a, p.b} {
			if st := ep.Stats(); st.Peers != 1 || st.PeersParked != 1 {
				t.Fatalf("%v: %d peers, %d parked; want 1 parked", ep.LocalAddr(), st.Peers, st.PeersParked)
			}
		}
		// B's parked peer for A sends; A's parked peer for B receives.
		if err := p.b.Send(ctx, p.a.LocalAddr(), []byte("two")); err != nil {
			t.Fatal(err)
		}
		if m := <-p.a.Inbox(); string(m.Data) != "two" {
			t.Fatalf("A got %q", m.Data)
		}
		if st := p.b.Stats(); st.PeersParked != 0 || st.Confirmed != 1 {
			t.Fatalf("B: %d parked, %d confirmed; want its peer resumed and the message confirmed", st.PeersParked, st.Confirmed)
		}
		p.step(2 * time.Second)
		if st := p.a.Stats(); st.PeersParked != 1 || st.PeersStarted != 1 || st.Remembered != 1 {
			t.Fatalf("A: %+v; want one peer, parked again, remembering the id it received", st)
		}
		p.close(t) // synctest fails the test if a goroutine is left
	})
}

// A burst of a whole large window fits in the receiving peer's mailbox:
// none of it is dropped and re-sent.
func TestEndpoint_LargeWindowBurstIsNotDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const window = 4096
		mock := clock.NewMock()
		network := actortest.NewNetwork(mock)
		network.SetQueueLen(4 * window) // the sockets hold the burst
		ca, _ := network.Listen("10.0.0.1:4323")
		cb, _ := network.Listen("10.0.0.2:4323")
		a, err := gtudp.New(ca, &gtudp.Config{Clock: mock, Window: window})
		if err != nil {
			t.Fatal(err)
		}
		b, err := gtudp.New(cb, &gtudp.Config{Clock: mock, InboxSize: window})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for range b.Inbox() {
			}
		}()
		for i := range window {
			a.Outbox() <- gtudp.Message{Addr: b.LocalAddr(), Data: []byte{byte(i)}}
		}
		synctest.Wait() // the whole exchange, without time passing
		if st := a.Stats(); st.Confirmed != window {
			t.Fatalf("a burst of %d stalls until a re-send: sender %+v, receiver %+v", window, st, b.Stats())
		}
		for range window {
			if r := <-a.Receipts(); r.Err != nil {
				t.Fatal(r.Err)
			}
		}
		if st := a.Stats(); st.DataResent != 0 || b.Stats().MailboxFull != 0 {
			t.Fatalf("%d DATA re-sent, %d packets dropped at a full mailbox; want none", st.DataResent, b.Stats().MailboxFull)
		}
		for _, ep := range []*gtudp.Endpoint{a, b} {
			if err := ep.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	})
}
