package actor_test

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gtudp/gtudp"
	"github.com/gtudp/gtudp/actor/actortest"
)

// A slow but active reader of Receipts gets every receipt: a receipt that
// finds Receipts full waits in its peer and holds its place in the window,
// so the Outbox slows to the reader's pace instead of dropping receipts.
func TestOutbox_SlowReceiptsReaderGetsEveryReceipt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, &gtudp.Config{Window: 16, ReceiptsSize: 16})
		const n = 5000
		go func() {
			for i := range n {
				var id [16]byte
				binary.BigEndian.PutUint64(id[8:], uint64(i)+1)
				p.a.Outbox() <- gtudp.Message{ID: id, Addr: p.b.LocalAddr(), Data: []byte("x")}
			}
		}()
		seen := make(map[[16]byte]bool, n)
		for range n {
			synctest.Wait() // everything else runs first: the slowest reader there is
			r := <-p.a.Receipts()
			if r.Err != nil || seen[r.ID] {
				t.Fatalf("receipt %+v (seen before: %v)", r, seen[r.ID])
			}
			seen[r.ID] = true
		}
		if st := p.a.Stats(); st.ReceiptsDropped != 0 || st.Confirmed != n {
			t.Fatalf("dropped %d receipts, confirmed %d of %d", st.ReceiptsDropped, st.Confirmed, n)
		}
		p.close(t)
	})
}

// One dead peer does not hold up the Outbox for the others: with Window 2
// and ten messages waiting for a peer that never answers, a message to a
// live peer is delivered and confirmed at once, not after the dead peer's
// Lifetime.
func TestOutbox_DeadPeerDoesNotBlockOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, &gtudp.Config{Window: 2, Lifetime: 3 * time.Second})
		dead, _ := p.network.Listen("10.0.0.9:9") // reads nothing, answers nothing
		defer dead.Close()
		for range 10 {
			p.a.Outbox() <- gtudp.Message{Addr: dead.AddrPort(), Data: []byte("void")}
		}
		p.a.Outbox() <- gtudp.Message{Addr: p.b.LocalAddr(), Data: []byte("live")}
		synctest.Wait() // no time passes
		r := <-p.a.Receipts()
		if r.Err != nil || r.Addr != p.b.LocalAddr() {
			t.Fatalf("first receipt %+v, want the live peer's success with no time passed", r)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		p.a.Close(ctx)
		p.b.Close(ctx)
	})
}

// An application that wants no receipts says so: none are made, nothing
// waits for a reader, and the outcomes are counted.
func TestOutbox_DiscardReceipts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, &gtudp.Config{Window: 4, ReceiptsSize: 1, DiscardReceipts: true})
		for range 100 {
			p.a.Outbox() <- gtudp.Message{Addr: p.b.LocalAddr(), Data: []byte("x")}
		}
		p.a.Outbox() <- gtudp.Message{Data: []byte("nowhere")} // refused: no receipt either
		synctest.Wait()
		select {
		case r := <-p.a.Receipts():
			t.Fatalf("receipt %+v with DiscardReceipts", r)
		default:
		}
		if st := p.a.Stats(); st.Confirmed != 100 || st.ReceiptsDropped != 0 {
			t.Fatalf("confirmed %d, dropped %d; want 100 and 0", st.Confirmed, st.ReceiptsDropped)
		}
		p.close(t)
	})
}

// Close does not wait for ACKs of messages the application already has: a
// receiver whose sender vanished closes at once (it used to wait ~12 s of
// RECV re-sends). It waits for our own messages in flight, at most their
// Lifetime, or until its context ends.
func TestClose_Bounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, &gtudp.Config{Lifetime: 3 * time.Second})
		// No RECV gets back, so no ACK comes. Set before the Send starts:
		// set after, the whole exchange could be over first.
		p.network.SetLink(p.b.LocalAddr(), p.a.LocalAddr(), actortest.Link{Loss: 1})
		errc := make(chan error, 1)
		go func() { errc <- p.a.Send(context.Background(), p.b.LocalAddr(), []byte("x")) }()
		synctest.Wait()
		if st := p.b.Stats(); st.Delivered != 1 || st.Open != 1 {
			t.Fatalf("receiver %+v: want the message delivered, its exchange open", st.PeerStats)
		}
		start := p.mock.Now()
		if err := p.b.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if d := p.mock.Now().Sub(start); d != 0 {
			t.Fatalf("the receiver's Close took %v, want no wait", d)
		}

		// The sender's message is in flight to a peer that is gone: Close
		// waits for it up to its Lifetime, or for its own context.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		closed := make(chan error, 1)
		go func() { closed <- p.a.Close(ctx) }()
		for range 20 {
			synctest.Wait()
			p.mock.Add(100 * time.Millisecond)
		}
		if err := <-closed; err != context.DeadlineExceeded {
			t.Fatalf("sender's Close: %v, want its context's end", err)
		}
		if err := <-errc; !errors.Is(err, gtudp.ErrClosed) {
			t.Fatalf("Send: %v, want ErrClosed once Close gave up", err)
		}
	})
}

// Close waits at most Lifetime however many messages wait for a dead
// peer's window: those the peer takes after Close began end with the
// rest, Lifetime after it, each with a failure.
func TestClose_BoundedWithAQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const lifetime = 3 * time.Second
		p := newPair(t, &gtudp.Config{Lifetime: lifetime, Window: 4})
		p.network.SetLink(p.a.LocalAddr(), p.b.LocalAddr(), actortest.Link{Loss: 1}) // b is gone
		const n = 40
		for range n {
			p.a.Outbox() <- gtudp.Message{Addr: p.b.LocalAddr(), Data: []byte("x")}
		}
		synctest.Wait()
		start := p.mock.Now()
		closed := make(chan error, 1)
		go func() { closed <- p.a.Close(context.Background()) }()
		var failed int
		for done := false; !done; {
			synctest.Wait()
			select {
			case err := <-closed:
				if err != nil {
					t.Fatal(err)
				}
				done = true
			default:
				if p.mock.Now().Sub(start) > 10*lifetime {
					t.Fatalf("Close still waiting after %v", 10*lifetime)
				}
				p.mock.Add(100 * time.Millisecond)
			}
		}
		if d := p.mock.Now().Sub(start); d > lifetime+time.Second {
			t.Errorf("Close took %v with %d messages queued for a dead peer, want at most Lifetime (%v)", d, n, lifetime)
		}
		for r := range p.a.Receipts() {
			if r.Err == nil {
				t.Fatalf("receipt %+v: a success to a dead peer", r)
			}
			failed++
		}
		if failed != n {
			t.Fatalf("%d failed receipts, want %d", failed, n)
		}
		p.b.Close(context.Background())
	})
}
