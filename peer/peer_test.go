package peer_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/google/uuid"
	"github.com/gtudp/gtudp/mailbox"
	"github.com/gtudp/gtudp/peer"
	"github.com/gtudp/gtudp/wire"
)

// link connects two Peers in memory: what one writes is decoded and put
// into the other, unless the test's filter drops it.
type link struct {
	mu     sync.Mutex
	peers  map[netip.AddrPort]*peer.Peer
	drop   func(from netip.AddrPort, p wire.Packet) bool
	format wire.Format
	writes atomic.Int64
}

// writer is one side's socket.
type writer struct {
	l    *link
	self netip.AddrPort
}

func (w writer) WriteBatch(bufs [][]byte, _ netip.AddrPort) (int, error) {
	for _, b := range bufs {
		w.l.writes.Add(1)
		pkt, err := w.l.format.Decode(b)
		if err != nil {
			panic(err)
		}
		w.l.mu.Lock()
		drop := w.l.drop != nil && w.l.drop(w.self, pkt)
		dst := w.l.peers[w.self] // the destination's peer for us is keyed by our address
		w.l.mu.Unlock()
		if !drop && dst != nil {
			pkt.Payload = append([]byte(nil), pkt.Payload...)
			dst.Put(peer.Inbound{Packet: pkt, Size: len(b)})
		}
	}
	return len(bufs), nil
}

// outlet is an application reading two channels, as package gtudp's is.
type outlet struct {
	inbox    chan peer.Delivery
	receipts chan peer.Receipt
}

func (o outlet) Deliver(d peer.Delivery) bool {
	select {
	case o.inbox <- d:
		return true
	default:
		return false
	}
}

func (o outlet) Report(r peer.Receipt) bool {
	select {
	case o.receipts <- r:
		return true
	default:
		return false
	}
}

func (o outlet) Wait(wake <-chan struct{}, d *peer.Delivery, r *peer.Receipt) peer.Handed {
	var inbox chan peer.Delivery
	var dv peer.Delivery
	if d != nil {
		inbox, dv = o.inbox, *d
	}
	var receipts chan peer.Receipt
	var rc peer.Receipt
	if r != nil {
		receipts, rc = o.receipts, *r
	}
	select {
	case <-wake:
		return peer.Woken
	case inbox <- dv:
		return peer.DeliveryHanded
	case receipts <- rc:
		return peer.ReceiptHanded
	}
}

func (l *link) setDrop(f func(from netip.AddrPort, p wire.Packet) bool) {
	l.mu.Lock()
	l.drop = f
	l.mu.Unlock()
}

type side struct {
	p        *peer.Peer
	inbox    chan peer.Delivery
	receipts chan peer.Receipt
	done     chan struct{}
	retired  atomic.Bool
	running  atomic.Int32 // goroutines in Run
	resumes  atomic.Int32 // Resume calls
}

var (
	addrA = netip.MustParseAddrPort("10.0.0.1:1")
	addrB = netip.MustParseAddrPort("10.0.0.2:2")
)

// pair starts peer A (at addrA, talking to addrB) and peer B (the reverse)
// on the mock clock. Both run until ctx ends or they exit.
func pair(t *testing.T, ctx context.Context, mock *clock.Mock, cfg *peer.Params, inboxSize int) (*link, *side, *side) {
	return pairWith(t, ctx, mock, cfg, inboxSize, false)
}

// pairWith is pair, with peers that park when quiet if parking is set:
// their goroutine ends, and Resume starts a new one.
func pairWith(t *testing.T, ctx context.Context, mock *clock.Mock, cfg *peer.Params, inboxSize int, parking bool) (*link, *side, *side) {
	l := &link{peers: map[netip.AddrPort]*peer.Peer{}, format: wire.DefaultFormat()}
	mk := func(self, remote netip.AddrPort) *side {
		s := &side{inbox: make(chan peer.Delivery, inboxSize), receipts: make(chan peer.Receipt, 16), done: make(chan struct{})}
		run := func() {
			s.running.Add(1)
			parked := s.p.Run(ctx)
			s.running.Add(-1)
			if !parked {
				close(s.done)
			}
		}
		var resume func(*peer.Peer)
		if parking {
			resume = func(*peer.Peer) { s.resumes.Add(1); go run() }
		}
		s.p = peer.New(peer.Options{
			Resume: resume,
			Addr:   remote, Params: cfg, Clock: mock, Sender: writer{l, self},
			Outlet: outlet{s.inbox, s.receipts}, IdleTimeout: 5 * time.Second, Validated: true,
			Seed: [5]uint32{uint32(self.Port()), 1, 2, 3, 4},
			Retire: func(p *peer.Peer) bool {
				if !p.CloseIfIdle() {
					return false
				}
				s.retired.Store(true)
				return true
			},
		})
		go run()
		return s
	}
	a := mk(addrA, addrB)
	b := mk(addrB, addrA)
	l.peers[addrA] = b.p // packets from A go to B's peer for A
	l.peers[addrB] = a.p
	return l, a, b
}

func peerConfig() *peer.Params {
	return &peer.Params{
		Format:     wire.DefaultFormat(),
		InitialRTO: 100 * time.Millisecond, MinRTO: 10 * time.Millisecond, MaxRTO: time.Second,
		MaxAttempts: 5, Lifetime: 10 * time.Second, RecvAttempts: 3, DedupeHorizon: 20 * time.Second,
		Window: 2, RecvWindow: 4096, HoldLimit: 1024, DedupeLimit: 16384, MaxMessage: 1 << 20,
	}
}

// step advances the mock clock by d once every goroutine in the bubble is
// blocked, and waits for them to block again.
func step(mock *clock.Mock, d time.Duration) {
	synctest.Wait()
	mock.Add(d)
	synctest.Wait()
}

func sendWait(t *testing.T, ctx context.Context, p *peer.Peer, data string) peer.Receipt {
	t.Helper()
	done := make(chan peer.Receipt, 1)
	id := uuid.New()
	if err := p.Send(peer.Outgoing{ID: id, Data: []byte(data), Done: done}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	r := <-done
	if r.ID != id {
		t.Fatalf("receipt for %v, want %v", r.ID, id)
	}
	return r
}

func TestPeer_ExchangeAndRetransmitOnTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		mock := clock.NewMock()
		l, a, b := pair(t, ctx, mock, peerConfig(), 8)

		// Lose the first DATA: the second goes out one InitialRTO later.
		var lost atomic.Int32
		l.setDrop(func(from netip.AddrPort, p wire.Packet) bool {
			return from == addrA && p.Kind == wire.Data && lost.Add(1) == 1
		})
		done := make(chan peer.Receipt, 1)
		if err := a.p.Send(peer.Outgoing{ID: uuid.New(), Data: []byte("hi"), Done: done}); err != nil {
			t.Fatal(err)
		}
		step(mock, 99*time.Millisecond)
		select {
		case r := <-done:
			t.Fatalf("receipt %+v before the re-send", r)
		default:
		}
		step(mock, time.Millisecond)
		r := <-done
		if r.Err != nil || r.Attempts != 2 || r.RTT != 100*time.Millisecond {
			t.Fatalf("receipt %+v, want success after 2 attempts in 100ms", r)
		}
		if m := <-b.inbox; string(m.Data) != "hi" || m.Addr != addrA {
			t.Fatalf("delivered %+v, want hi from %v", m, addrA)
		}
		synctest.Wait()
		if st := b.p.Stats(); st.Delivered != 1 || st.Open != 0 {
			t.Fatalf("receiver stats %+v: want one delivery, exchange closed by the ACK", st)
		}
		if st := a.p.Stats(); st.DataResent != 1 || st.Confirmed != 1 {
			t.Fatalf("sender stats %+v: want one re-send, one confirmed", st)
		}
	})
}

// Messages beyond the window wait in the peer, oldest first, and go out
// as the window frees; one cancelled while it waits ends unsent.
func TestPeer_WindowFullMessagesWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		mock := clock.NewMock()
		l, a, _ := pair(t, ctx, mock, peerConfig(), 8)
		l.setDrop(func(netip.AddrPort, wire.Packet) bool { return true }) // nothing gets through

		receipts := make(chan peer.Receipt, 4)
		ids := []uuid.UUID{uuid.New(), uuid.New(), uuid.New(), uuid.New()}
		for _, id := range ids { // Window 2
			if err := a.p.Send(peer.Outgoing{ID: id, Data: []byte("w"), Done: receipts}); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		if st := a.p.Stats(); st.InFlight != 2 || st.Sent != 2 {
			t.Fatalf("in flight %d, sent %d; want 2 and 2, the others waiting", st.InFlight, st.Sent)
		}
		a.p.Cancel(ids[3], context.Canceled) // waiting: ends unsent
		if r := <-receipts; r.ID != ids[3] || r.Err != context.Canceled || r.Attempts != 0 {
			t.Fatalf("receipt %+v, want the fourth, cancelled unsent", r)
		}

		l.setDrop(nil)
		step(mock, 100*time.Millisecond) // the re-sends get through, freeing the window
		step(mock, 0)
		got := map[uuid.UUID]bool{}
		for range 3 {
			r := <-receipts
			if r.Err != nil {
				t.Fatalf("receipt %+v", r)
			}
			got[r.ID] = true
		}
		if !got[ids[0]] || !got[ids[1]] || !got[ids[2]] {
			t.Fatalf("receipts for %v, want the first three", got)
		}
		if st := a.p.Stats(); st.Sent != 3 {
			t.Fatalf("sent %d, want 3 (the cancelled one never went out)", st.Sent)
		}
	})
}

func TestPeer_InboxFullHoldsDeliveryUntilRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		mock := clock.NewMock()
		_, a, b := pair(t, ctx, mock, peerConfig(), 1)
		b.inbox <- peer.Delivery{Data: []byte("filler")} // the application is behind

		done := make(chan peer.Receipt, 1)
		if err := a.p.Send(peer.Outgoing{ID: uuid.New(), Data: []byte("waiting"), Done: done}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		select {
		case r := <-done:
			t.Fatalf("confirmed %+v while the receiver's inbox is full", r)
		default:
		}
		<-b.inbox // the application catches up: the held message goes in, RECV goes out
		synctest.Wait()
		if m := <-b.inbox; string(m.Data) != "waiting" {
			t.Fatalf("delivered %q", m.Data)
		}
		if r := <-done; r.Err != nil || r.Attempts != 1 {
			t.Fatalf("receipt %+v, want success on the first attempt", r)
		}
	})
}

func TestPeer_RetiresWhenIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		mock := clock.NewMock()
		_, a, b := pair(t, ctx, mock, peerConfig(), 8)
		if r := sendWait(t, ctx, a.p, "x"); r.Err != nil {
			t.Fatal(r.Err)
		}
		<-b.inbox
		// B remembers the id, ended by ACK, for 2 s, then idles 5 s.
		step(mock, 6*time.Second)
		if b.retired.Load() {
			t.Fatal("receiver retired before its idle timeout")
		}
		step(mock, 2*time.Second)
		<-a.done
		<-b.done
		if !a.retired.Load() || !b.retired.Load() {
			t.Fatal("an idle peer exited without retiring")
		}
		if err := a.p.Send(peer.Outgoing{ID: uuid.New(), Done: make(chan peer.Receipt, 1)}); !errors.Is(err, peer.ErrClosed) {
			t.Fatalf("Send to a retired peer = %v, want ErrClosed", err)
		}
	})
}

// A quiet peer parks: its goroutine ends but it keeps what it remembers,
// and the next packet, send or deadline resumes it.
func TestPeer_ParksWhenQuietAndResumes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		mock := clock.NewMock()
		l, a, b := pairWith(t, ctx, mock, peerConfig(), 8, true)
		var mu sync.Mutex
		var data []wire.Packet
		l.setDrop(func(from netip.AddrPort, p wire.Packet) bool {
			if p.Kind == wire.Data {
				mu.Lock()
				data = append(data, wire.Packet{Kind: p.Kind, ID: p.ID, Payload: append([]byte(nil), p.Payload...)})
				mu.Unlock()
			}
			return false
		})
		if r := sendWait(t, ctx, a.p, "x"); r.Err != nil {
			t.Fatal(r.Err)
		}
		<-b.inbox
		step(mock, 500*time.Millisecond)
		if a.p.Parked() || b.p.Parked() {
			t.Fatal("parked before ParkAfter")
		}
		step(mock, 600*time.Millisecond)
		if !a.p.Parked() || !b.p.Parked() || a.running.Load()+b.running.Load() != 0 {
			t.Fatalf("after 1.1 s quiet: parked %v %v, goroutines %d, want both parked and none",
				a.p.Parked(), b.p.Parked(), a.running.Load()+b.running.Load())
		}

		// A late copy of the DATA resumes B, which answers it but does
		// not deliver it again: parking kept its memory.
		mu.Lock()
		dup := data[0]
		mu.Unlock()
		if err := b.p.Put(peer.Inbound{Packet: dup, Size: 5 + len(dup.Payload)}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		select {
		case m := <-b.inbox:
			t.Fatalf("duplicate delivered after parking: %q", m.Data)
		default:
		}
		if st := b.p.Stats(); st.Duplicates != 1 || st.Remembered != 1 {
			t.Fatalf("stats %+v: want the duplicate counted and its id still remembered", st)
		}

		// A send resumes A.
		step(mock, 2*time.Second)
		if !a.p.Parked() {
			t.Fatal("A not parked again")
		}
		if r := sendWait(t, ctx, a.p, "y"); r.Err != nil {
			t.Fatal(r.Err)
		}
		if m := <-b.inbox; string(m.Data) != "y" {
			t.Fatalf("delivered %q, want y", m.Data)
		}

		// B's timer resumes it to forget the ids past their horizon (2 s
		// after the ACK, ended by it; put off by a second while parked),
		// then it idles IdleTimeout (5 s) and retires; A, idle all along,
		// retires too.
		step(mock, 2*time.Second)
		if b.retired.Load() {
			t.Fatal("B retired while it remembered ids")
		}
		step(mock, 10*time.Second)
		<-a.done
		<-b.done
		if !a.retired.Load() || !b.retired.Load() {
			t.Fatal("a parked peer did not retire")
		}
		if a.resumes.Load() == 0 || b.resumes.Load() < 2 {
			t.Fatalf("resumes A %d B %d: want A resumed by its send, B by the packet and its timer", a.resumes.Load(), b.resumes.Load())
		}
	})
}

func TestPeer_DrainFinishesThenExits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		mock := clock.NewMock()
		l, a, b := pair(t, ctx, mock, peerConfig(), 8)
		l.setDrop(func(from netip.AddrPort, p wire.Packet) bool { return from == addrA && p.Kind == wire.Data })
		done := make(chan peer.Receipt, 1)
		if err := a.p.Send(peer.Outgoing{ID: uuid.New(), Data: []byte("late"), Done: done}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		a.p.Drain()
		if err := a.p.Send(peer.Outgoing{ID: uuid.New(), Done: make(chan peer.Receipt, 1)}); !errors.Is(err, peer.ErrClosed) || !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Send while draining = %v, want ErrClosed (and net.ErrClosed)", err)
		}
		select {
		case <-a.done:
			t.Fatal("exited with a message in flight")
		default:
		}
		l.setDrop(nil)
		step(mock, 100*time.Millisecond)
		if r := <-done; r.Err != nil {
			t.Fatalf("message sent before Drain: %+v", r)
		}
		<-a.done
		if got := <-b.inbox; string(got.Data) != "late" {
			t.Fatalf("delivered %q", got.Data)
		}
	})
}

func TestPeer_ContextEndFailsInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		mock := clock.NewMock()
		l, a, _ := pair(t, ctx, mock, peerConfig(), 8)
		l.setDrop(func(netip.AddrPort, wire.Packet) bool { return true })
		done := make(chan peer.Receipt, 2)
		a.p.Send(peer.Outgoing{ID: uuid.New(), Done: done})
		a.p.Send(peer.Outgoing{ID: uuid.New(), Done: done})
		synctest.Wait()
		cancel()
		for range 2 {
			if r := <-done; !errors.Is(r.Err, peer.ErrClosed) {
				t.Fatalf("receipt %+v, want ErrClosed", r)
			}
		}
		<-a.done
	})
}

func TestPeer_CancelEndsMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		mock := clock.NewMock()
		l, a, _ := pair(t, ctx, mock, peerConfig(), 8)
		l.setDrop(func(netip.AddrPort, wire.Packet) bool { return true })
		done := make(chan peer.Receipt, 1)
		id := uuid.New()
		a.p.Send(peer.Outgoing{ID: id, Done: done})
		a.p.Cancel(id, context.DeadlineExceeded)
		if r := <-done; !errors.Is(r.Err, context.DeadlineExceeded) || r.ID != id {
			t.Fatalf("receipt %+v, want the cancel's error", r)
		}
		synctest.Wait()
		if st := a.p.Stats(); st.InFlight != 0 {
			t.Fatalf("in flight %d after cancel", st.InFlight)
		}
	})
}

// Receipts of messages without a Done channel go to Receipts; one that finds
// it full waits in the peer until there is room, up to Window of them; past
// that, and when the peer ends, they are dropped and counted.
// Receipts the Outlet has no room for wait in the peer, each holding its
// place in the window: none is dropped while the application reads, a
// slow reader slows the sends down, and only those still waiting when the
// peer ends are dropped, and counted.
func TestPeer_ReceiptsHoldTheWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		mock := clock.NewMock()
		l := &link{peers: map[netip.AddrPort]*peer.Peer{}, format: wire.DefaultFormat()}
		var dropped atomic.Uint64
		receipts := make(chan peer.Receipt, 1)
		p := peer.New(peer.Options{
			Addr: addrB, Params: peerConfig(), Clock: mock, Sender: writer{l, addrA},
			Outlet: outlet{make(chan peer.Delivery), receipts}, DroppedReceipts: &dropped,
			IdleTimeout: time.Hour, Validated: true, Retire: func(*peer.Peer) bool { return false },
		})
		go p.Run(ctx)
		for range 6 { // nobody answers: all fail, Window (2) at a time
			p.Send(peer.Outgoing{ID: uuid.New()})
		}
		step(mock, 30*time.Second)
		// One receipt in Receipts, two waiting in the peer: the window is
		// taken by receipts, so the other three have not gone out.
		if st := p.Stats(); st.Sent != 3 || st.InFlight != 0 {
			t.Fatalf("sent %d, in flight %d; want 3 and 0 with the window held by receipts", st.Sent, st.InFlight)
		}
		for i := range 5 { // read slowly: every receipt comes
			if r := <-receipts; !errors.Is(r.Err, peer.ErrUndelivered) {
				t.Fatalf("receipt %d: %+v, want ErrUndelivered", i, r)
			}
			step(mock, 30*time.Second)
		}
		if dropped.Load() != 0 {
			t.Fatalf("dropped %d receipts while Receipts was being read", dropped.Load())
		}
		if st := p.Stats(); st.Sent != 6 {
			t.Fatalf("sent %d, want all 6 once their receipts were read", st.Sent)
		}
		// The last receipt is in Receipts; two more fail and wait.
		p.Send(peer.Outgoing{ID: uuid.New()})
		p.Send(peer.Outgoing{ID: uuid.New()})
		step(mock, 30*time.Second)
		cancel()
		<-p.Done()
		if dropped.Load() != 2 {
			t.Fatalf("dropped receipts %d after the peer ended, want the 2 still waiting", dropped.Load())
		}
	})
}

// runRecovered runs p's loop as the supervisor does: a panic in it is
// recovered and ends the peer through Crash. The channel gets what was
// recovered.
func runRecovered(ctx context.Context, p *peer.Peer) <-chan any {
	exited := make(chan any, 1)
	go func() {
		defer func() {
			r := recover()
			p.Crash(r)
			exited <- r
		}()
		p.Run(ctx)
	}()
	return exited
}

func TestPeer_CrashFailsEverything(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		mock := clock.NewMock()
		l := &link{peers: map[netip.AddrPort]*peer.Peer{}, format: wire.DefaultFormat()}
		p := peer.New(peer.Options{
			Addr: addrB, Params: peerConfig(), Clock: mock, Sender: writer{l, addrA},
			Outlet:      outlet{make(chan peer.Delivery), make(chan peer.Receipt, 4)},
			IdleTimeout: time.Second, Validated: true, Retire: func(*peer.Peer) bool { return false },
			BeforePacket: func(peer.Inbound) { panic("injected") },
		})
		exited := runRecovered(ctx, p)
		done := make(chan peer.Receipt, 2)
		p.Send(peer.Outgoing{ID: uuid.New(), Done: done})
		p.Send(peer.Outgoing{ID: uuid.New(), Done: done})
		synctest.Wait()
		p.Put(peer.Inbound{Packet: wire.Packet{Kind: wire.Ack}, Size: 5})
		if r := <-exited; r != "injected" {
			t.Fatalf("recovered %v", r)
		}
		for range 2 {
			r := <-done
			var ue *peer.UndeliveredError
			if !errors.As(r.Err, &ue) || ue.Reason != "peer actor failed: injected" {
				t.Fatalf("receipt %+v, want an UndeliveredError naming the panic", r)
			}
		}
		if err := p.Send(peer.Outgoing{ID: uuid.New(), Done: done}); !errors.Is(err, peer.ErrClosed) {
			t.Fatalf("Send to a crashed peer = %v, want ErrClosed", err)
		}
	})
}

// A peer that crashes gives back the read buffers lent to it: the one it
// was handling and the ones taken from its mailbox with it, each once
// (the socket reader waits for them when all are lent).
func TestPeer_CrashGivesLentBuffersBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		mock := clock.NewMock()
		l := &link{peers: map[netip.AddrPort]*peer.Peer{}, format: wire.DefaultFormat()}
		bufs := peer.NewBuffers(2, 64)
		x, _ := bufs.Get(nil)
		y, _ := bufs.Get(nil)
		params := peerConfig()
		params.ReadBuffers = bufs
		gate := make(chan struct{})
		p := peer.New(peer.Options{
			Addr: addrB, Params: params, Clock: mock, Sender: writer{l, addrA},
			Outlet:      outlet{make(chan peer.Delivery), make(chan peer.Receipt, 4)},
			IdleTimeout: time.Second, Validated: true, Retire: func(*peer.Peer) bool { return false },
			BeforePacket: func(in peer.Inbound) {
				switch in.Lent {
				case nil:
					<-gate
				case x:
					panic("injected")
				}
			},
		})
		exited := runRecovered(ctx, p)
		ack := wire.Packet{Kind: wire.Ack}
		p.Put(peer.Inbound{Packet: ack, Size: 5}) // holds the peer at the gate
		synctest.Wait()
		p.Put(peer.Inbound{Packet: ack, Size: 5, Lent: x})
		p.Put(peer.Inbound{Packet: ack, Size: 5, Lent: y})
		close(gate) // the next wake-up takes x and y together; x panics
		if r := <-exited; r != "injected" {
			t.Fatalf("recovered %v", r)
		}
		stop := make(chan struct{})
		close(stop)
		back := map[*[]byte]bool{}
		for range 2 {
			b, ok := bufs.Get(stop)
			if !ok || (b != x && b != y) || back[b] {
				t.Fatalf("after the crash: ok %v, x %v, y %v, again %v; want x and y back, once each", ok, b == x, b == y, back[b])
			}
			back[b] = true
		}
		if _, ok := bufs.Get(stop); ok {
			t.Fatal("a third buffer of 2 after the crash: one was given back twice")
		}
	})
}

// batchWriter records WriteBatch calls and fails the datagram at failAt
// (counting every datagram offered), as sendmmsg stops at a failing one.
type batchWriter struct {
	mu      sync.Mutex
	calls   int
	offered int
	written []wire.Kind
	failAt  int
}

func (w *batchWriter) WriteBatch(bufs [][]byte, _ netip.AddrPort) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	for i, b := range bufs {
		w.offered++
		if w.offered == w.failAt {
			return i, errors.New("no buffer space")
		}
		p, err := wire.DefaultFormat().Decode(b)
		if err != nil {
			panic(err)
		}
		w.written = append(w.written, p.Kind)
	}
	return len(bufs), nil
}

// A peer writes what one wake-up produced in one call to its Sender; a datagram that fails is counted and the rest still go out.
func TestPeer_WritesBatchesAndCountsFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w := &batchWriter{failAt: 2}
		cfg := peerConfig()
		cfg.Window = 8
		p := peer.New(peer.Options{
			Addr: addrB, Params: cfg, Clock: clock.NewMock(), Sender: w,
			Outlet: outlet{make(chan peer.Delivery, 1), make(chan peer.Receipt, 8)}, IdleTimeout: time.Hour,
			Validated: true, Retire: func(*peer.Peer) bool { return false },
		})
		for i := range 5 {
			if err := p.Send(peer.Outgoing{ID: uuid.New(), Data: []byte{byte(i)}}); err != nil {
				t.Fatal(err)
			}
		}
		go p.Run(ctx)
		synctest.Wait()
		w.mu.Lock()
		calls, written := w.calls, len(w.written)
		w.mu.Unlock()
		if calls > 2 || written != 4 {
			t.Fatalf("%d WriteBatch calls wrote %d DATA; want the 5 in one or two calls (after the failure), 4 written", calls, written)
		}
		if st := p.Stats(); st.WriteErrors != 1 || st.InFlight != 5 {
			t.Fatalf("write errors %d, in flight %d; want 1 and 5 (the failed DATA is re-sent later)", st.WriteErrors, st.InFlight)
		}
		cancel()
		<-p.Done()
	})
}

// discard is a socket that writes everything and keeps nothing.
type discard struct{}

func (discard) WriteBatch(bufs [][]byte, _ netip.AddrPort) (int, error) { return len(bufs), nil }

// loneOptions are the Options of a peer tested on its own: to addrB,
// proved, writing to discard, with an Outlet of unbuffered channels,
// never retired, and not parking (no Resume). Tests change what they
// need.
func loneOptions(cfg *peer.Params, mock *clock.Mock) peer.Options {
	return peer.Options{
		Addr: addrB, Params: cfg, Clock: mock, Sender: discard{},
		Outlet: outlet{make(chan peer.Delivery), make(chan peer.Receipt)}, IdleTimeout: time.Hour,
		Validated: true, Retire: func(*peer.Peer) bool { return false },
	}
}

// A long batch of packets is handled in runs of flushEvery (256): after
// each, what is held goes to the Inbox, so a burst beyond HoldLimit is not
// withheld while the Inbox has room.
func TestPeer_FlushesEvery256Packets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		cfg := peerConfig()
		cfg.HoldLimit = 100
		inbox := make(chan peer.Delivery, 1000)
		opt := loneOptions(cfg, clock.NewMock())
		opt.Outlet = outlet{inbox, make(chan peer.Receipt, 1)}
		p := peer.New(opt)
		for i := range 300 {
			pkt := wire.Packet{Kind: wire.Data, ID: wire.ID{byte(i >> 8), byte(i)}, Payload: []byte("m")}
			if err := p.Put(peer.Inbound{Packet: pkt, Size: 6}); err != nil {
				t.Fatal(err)
			}
		}
		done := make(chan struct{})
		go func() { p.Run(ctx); close(done) }()
		synctest.Wait()
		// 100 held of the first 256 (156 withheld), flushed to the Inbox
		// before the 257th; then the other 44 held, and flushed.
		if n, st := len(inbox), p.Stats(); n != 144 || st.Withheld != 156 {
			t.Fatalf("%d delivered, %d withheld; want 144 and 156", n, st.Withheld)
		}
		cancel()
		<-done
	})
}

// shortWriter writes nothing, without an error, on its first call: a
// short write. Later calls write everything.
type shortWriter struct {
	mu      sync.Mutex
	calls   int
	written int
}

func (w *shortWriter) WriteBatch(bufs [][]byte, _ netip.AddrPort) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.calls++; w.calls == 1 {
		return 0, nil
	}
	w.written += len(bufs)
	return len(bufs), nil
}

// A batch write that writes nothing and says nothing is a failure of its
// first datagram (io.ErrShortWrite): counted, and the rest go on.
func TestPeer_ShortWriteCountsAsFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		w := &shortWriter{}
		cfg := peerConfig()
		cfg.Window = 8
		p := peer.New(peer.Options{
			Addr: addrB, Params: cfg, Clock: clock.NewMock(), Sender: w,
			Outlet: outlet{make(chan peer.Delivery, 1), make(chan peer.Receipt, 8)}, IdleTimeout: time.Hour,
			Validated: true, Retire: func(*peer.Peer) bool { return false },
		})
		for i := range 3 {
			if err := p.Send(peer.Outgoing{ID: uuid.New(), Data: []byte{byte(i)}}); err != nil {
				t.Fatal(err)
			}
		}
		go p.Run(ctx)
		synctest.Wait()
		w.mu.Lock()
		calls, written := w.calls, w.written
		w.mu.Unlock()
		if st := p.Stats(); calls != 2 || written != 2 || st.WriteErrors != 1 {
			t.Fatalf("%d calls wrote %d, %d write errors; want 2 calls, the 2 after the failed one, 1 error", calls, written, st.WriteErrors)
		}
		cancel()
		<-p.Done()
	})
}

// A peer's mailbox takes a burst of RecvWindow DATA from the remote and
// the RECV and ACK for a full window of ours (at least 2,048 packets), and
// drops what comes beyond it.
func TestPeer_MailboxHoldsABurst(t *testing.T) {
	for _, tt := range []struct{ recvWindow, window, want int }{
		{4096, 1000, 4096 + 2*1000},
		{4096, 2, 4096 + 2*2},
		{8, 4, 2048},
	} {
		cfg := peerConfig()
		cfg.RecvWindow, cfg.Window = tt.recvWindow, tt.window
		p := peer.New(loneOptions(cfg, clock.NewMock()))
		for i := range tt.want {
			if err := p.Put(peer.Inbound{Packet: wire.Packet{Kind: wire.Ack, ID: wire.ID{byte(i >> 8), byte(i)}}, Size: 5}); err != nil {
				t.Fatalf("RecvWindow %d, Window %d: packet %d refused: %v", tt.recvWindow, tt.window, i+1, err)
			}
		}
		if err := p.Put(peer.Inbound{Packet: wire.Packet{Kind: wire.Ack}, Size: 5}); !errors.Is(err, mailbox.ErrFull) {
			t.Fatalf("RecvWindow %d, Window %d: packet %d: %v, want mailbox.ErrFull", tt.recvWindow, tt.window, tt.want+1, err)
		}
	}
}

// A peer that replaces an evicted one for the same address recalls what
// it remembered: a late repeat of a message delivered before is answered
// but not delivered again.
func TestPeer_RecallsTheEvictedPeersMemory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		inbox := make(chan peer.Delivery, 2)
		buried := make(chan peer.Memory, 1)
		opt := peer.Options{
			Addr: addrB, Params: peerConfig(), Clock: clock.NewMock(), Sender: discard{},
			Outlet: outlet{inbox, make(chan peer.Receipt, 1)}, IdleTimeout: time.Hour, Validated: true,
			Retire: func(*peer.Peer) bool { return false },
			Bury:   func(_ *peer.Peer, m peer.Memory) { buried <- m },
		}
		data := func() peer.Inbound {
			return peer.Inbound{Packet: wire.Packet{Kind: wire.Data, ID: wire.ID{7}, Payload: []byte("once")}, Size: 9}
		}
		first := peer.New(opt)
		go first.Run(ctx)
		if err := first.Put(data()); err != nil {
			t.Fatal(err)
		}
		if m := <-inbox; string(m.Data) != "once" {
			t.Fatalf("delivered %q", m.Data)
		}
		first.Evict()
		<-first.Done()

		opt.Memory = <-buried
		second := peer.New(opt)
		go second.Run(ctx)
		if err := second.Put(data()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		select {
		case m := <-inbox:
			t.Fatalf("a repeat delivered again by the evicted peer's successor: %q", m.Data)
		default:
		}
		if st := second.Stats(); st.Duplicates != 1 || st.RecvResent != 1 {
			t.Fatalf("stats %+v: want the repeat known and answered", st)
		}
		cancel()
		<-second.Done()
	})
}

// A cancel resumes a parked peer, as a packet or a send does: the peer
// takes it, finds nothing to do, and parks again.
func TestPeer_CancelResumesAParkedPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		mock := clock.NewMock()
		var resumes atomic.Int32
		opt := loneOptions(peerConfig(), mock)
		opt.Resume = func(p *peer.Peer) { resumes.Add(1); go p.Run(ctx) }
		p := peer.New(opt)
		go p.Run(ctx)
		step(mock, time.Second) // ParkAfter's default
		if !p.Parked() {
			t.Fatal("not parked after a quiet ParkAfter")
		}
		p.Cancel(uuid.New(), context.Canceled)
		synctest.Wait()
		if n := resumes.Load(); n != 1 || !p.Parked() {
			t.Fatalf("after a cancel: %d resumes, parked %v; want 1 and parked again", n, p.Parked())
		}
	})
}

// extDatagram returns an EXT datagram from incarnation 1 with n DATA
// records, ids first to first+n-1, as the socket reader hands it over.
func extDatagram(f wire.Format, first, n int) peer.Inbound {
	dg := f.AppendExt(nil, wire.ExtHeader{Version: wire.ExtVersion, Incarnation: 1})
	for i := first; i < first+n; i++ {
		dg = wire.AppendData(dg, wire.ID{0, 0, byte(i >> 8), byte(i)}, []byte("m"))
	}
	pkt, err := f.Decode(dg)
	if err != nil {
		panic(err)
	}
	pkt.Payload = append([]byte(nil), pkt.Payload...)
	return peer.Inbound{Packet: pkt, Size: len(dg)}
}

// A batch of EXT datagrams is flushed once 256 messages are held, however
// few the datagrams: a burst beyond HoldLimit is not withheld while the
// Inbox has room.
func TestPeer_FlushesWhen256MessagesAreHeld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		cfg := peerConfig()
		cfg.Format.Ext = cfg.Format.DeriveExt()
		cfg.DatagramSize, cfg.HoldLimit = 1200, 300
		inbox := make(chan peer.Delivery, 1000)
		opt := loneOptions(cfg, clock.NewMock())
		opt.Outlet = outlet{inbox, make(chan peer.Receipt, 1)}
		p := peer.New(opt)
		for _, in := range []peer.Inbound{extDatagram(cfg.Format, 0, 256), extDatagram(cfg.Format, 256, 100)} {
			if err := p.Put(in); err != nil {
				t.Fatal(err)
			}
		}
		go p.Run(ctx)
		synctest.Wait()
		// The first datagram's 256 go to the Inbox before the second is
		// handled, which the HoldLimit of 300 would otherwise cut short.
		if n, st := len(inbox), p.Stats(); n != 356 || st.Withheld != 0 {
			t.Fatalf("%d delivered, %d withheld; want 356 and 0", n, st.Withheld)
		}
		cancel()
		<-p.Done()
	})
}

// A message answered while the Outlet has no room for its receipt keeps
// its place in the window from the moment the answer comes: a message
// waiting for the window goes out only once the receipt is taken.
func TestPeer_AnsweredMessageHoldsItsPlaceUntilItsReceiptIsTaken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		mock := clock.NewMock()
		l, a, _ := pair(t, ctx, mock, peerConfig(), 8)
		for range cap(a.receipts) { // the application is behind on Receipts
			a.receipts <- peer.Receipt{}
		}
		l.setDrop(func(netip.AddrPort, wire.Packet) bool { return true })
		for range 3 { // Window 2: the third waits
			if err := a.p.Send(peer.Outgoing{ID: uuid.New(), Data: []byte("r")}); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		l.setDrop(nil)
		step(mock, 100*time.Millisecond) // the re-sends are answered
		if st := a.p.Stats(); st.Confirmed != 2 || st.Sent != 2 {
			t.Fatalf("confirmed %d, sent %d; want 2 and 2, the third held back by their receipts", st.Confirmed, st.Sent)
		}
		<-a.receipts // room for one receipt: one place in the window
		synctest.Wait()
		if st := a.p.Stats(); st.Sent != 3 {
			t.Fatalf("sent %d after a receipt was taken, want 3", st.Sent)
		}
	})
}

// statsOutlet is an outlet that notes, as it takes each receipt, the
// failures its peer's Stats count.
type statsOutlet struct {
	outlet
	p      *peer.Peer
	failed []uint64
}

func (o *statsOutlet) Report(r peer.Receipt) bool {
	o.failed = append(o.failed, o.p.Stats().Failed)
	return o.outlet.Report(r)
}

// Whoever gets an outcome finds it counted in Stats.
func TestPeer_ReceiptFindsItsOutcomeCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		mock := clock.NewMock()
		o := &statsOutlet{outlet: outlet{make(chan peer.Delivery), make(chan peer.Receipt, 2)}}
		opt := loneOptions(peerConfig(), mock)
		opt.Outlet = o
		o.p = peer.New(opt)
		go o.p.Run(ctx)
		for range 2 { // nobody answers: both fail
			if err := o.p.Send(peer.Outgoing{ID: uuid.New()}); err != nil {
				t.Fatal(err)
			}
		}
		step(mock, 30*time.Second)
		cancel()
		<-o.p.Done()
		if len(o.failed) != 2 || o.failed[0] < 1 || o.failed[1] < 2 {
			t.Fatalf("failures counted as each receipt was reported: %v, want at least 1 then 2", o.failed)
		}
	})
}

// Options.Dequeued is called once for every message with Queued set: when
// it goes out, or when it ends without going out (cancelled while it
// waits, or left when the peer ends); never for one without.
func TestPeer_DequeuedOncePerQueuedMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		var dequeued atomic.Int32
		opt := loneOptions(peerConfig(), clock.NewMock())
		opt.Dequeued = func() { dequeued.Add(1) }
		p := peer.New(opt)
		go p.Run(ctx)
		ids := []uuid.UUID{uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New()}
		for i, id := range ids { // Window 2: two go out, three wait
			if err := p.Send(peer.Outgoing{ID: id, NoReceipt: true, Queued: i != 2}); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		if n := dequeued.Load(); n != 2 {
			t.Fatalf("%d dequeued with two messages out, want 2", n)
		}
		p.Cancel(ids[3], context.Canceled)
		synctest.Wait()
		if n := dequeued.Load(); n != 3 {
			t.Fatalf("%d dequeued after a waiting message was cancelled, want 3", n)
		}
		cancel()
		<-p.Done()
		if n := dequeued.Load(); n != 4 {
			t.Fatalf("%d dequeued after the peer ended, want 4 (the message without Queued never)", n)
		}
	})
}

// failWriter refuses every datagram with err.
type failWriter struct{ err error }

func (w failWriter) WriteBatch([][]byte, netip.AddrPort) (int, error) { return 0, w.err }

// failPartsWriter is a failWriter that gathers (peer.PartsSender): the
// Peer writes through WriteParts.
type failPartsWriter struct{ failWriter }

func (w failPartsWriter) WriteParts([]peer.Datagram, netip.AddrPort) (int, error) { return 0, w.err }

// A datagram the socket refuses for good (EMSGSIZE) fails its message at
// once, with the socket's error: no re-send can cure it.
func TestPeer_PermanentWriteErrorFailsTheMessage(t *testing.T) {
	for _, tt := range []struct {
		name   string
		sender peer.Sender
	}{
		{"WriteBatch", failWriter{syscall.EMSGSIZE}},
		{"WriteParts", failPartsWriter{failWriter{syscall.EMSGSIZE}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(t.Context())
				opt := loneOptions(peerConfig(), clock.NewMock())
				opt.Sender = tt.sender
				p := peer.New(opt)
				go p.Run(ctx)
				done := make(chan peer.Receipt, 1)
				if err := p.Send(peer.Outgoing{ID: uuid.New(), Data: []byte("too large"), Done: done}); err != nil {
					t.Fatal(err)
				}
				synctest.Wait()
				if st := p.Stats(); st.WriteErrors != 1 || st.Failed != 1 || st.InFlight != 0 {
					t.Fatalf("write errors %d, failed %d, in flight %d; want 1, 1, 0", st.WriteErrors, st.Failed, st.InFlight)
				}
				// The receipt is out at once, not at the peer's next wake-up
				// (which an idle peer may not have for IdleTimeout).
				select {
				case r := <-done:
					if !errors.Is(r.Err, peer.ErrUndelivered) || !errors.Is(r.Err, syscall.EMSGSIZE) || r.Attempts != 1 {
						t.Fatalf("receipt %+v, want ErrUndelivered with EMSGSIZE after 1 attempt", r)
					}
				default:
					t.Fatal("no receipt after the write failed for good")
				}
				cancel()
				<-p.Done()
			})
		})
	}
}

// A peer that has not proved its address is evictable once it has no
// messages of ours, in flight or waiting; one in use is spared once.
func TestPeer_EvictableWithoutOurMessages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		opt := loneOptions(peerConfig(), clock.NewMock())
		opt.Outlet, opt.Validated = outlet{make(chan peer.Delivery), make(chan peer.Receipt, 8)}, false
		p := peer.New(opt)
		go p.Run(ctx)
		synctest.Wait()
		if p.Evictable(false) {
			t.Fatal("a new peer evicted: want it spared once")
		}
		if !p.Evictable(false) {
			t.Fatal("an unproved peer without messages of ours is not evictable")
		}
		for range 3 { // Window 2: two in flight (held back for proof), one waiting
			if err := p.Send(peer.Outgoing{ID: uuid.New(), Data: []byte("o")}); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		if st := p.Stats(); st.InFlight != 2 {
			t.Fatalf("%d in flight, want 2", st.InFlight)
		}
		p.Evictable(false) // spared once: it was used
		if p.Evictable(false) || !p.Evictable(true) {
			t.Fatal("with messages of ours: want evictable only when ours may go")
		}
	})
}
