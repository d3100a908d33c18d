package actor_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/gtudp/gtudp"
	"github.com/gtudp/gtudp/actor"
	"github.com/gtudp/gtudp/actor/actortest"
	"github.com/gtudp/gtudp/peer"
	"github.com/gtudp/gtudp/wire"
)

func TestEndpoint_PeerPanicIsIsolated(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bad := listen(t, "udp4", "127.0.0.1:0", nil)
	good := listen(t, "udp4", "127.0.0.1:0", nil)
	collectInbox(bad)
	collectInbox(good)

	// The server's peer for bad panics on the first RECV it handles after
	// armed is set (the answer to the server's own DATA: not the ACK of
	// the first exchange, which may arrive late); its peer for good never
	// does.
	var armed atomic.Bool
	defer actor.SetBeforePacket(func(from netip.AddrPort, in peer.Inbound) {
		if from == bad.LocalAddr() && in.Packet.Kind == wire.Recv && armed.CompareAndSwap(true, false) {
			panic("injected")
		}
	})()
	srv := listen(t, "udp4", "127.0.0.1:0", nil)
	collectInbox(srv)

	if err := bad.Send(ctx, srv.LocalAddr(), []byte("before")); err != nil {
		t.Fatal(err)
	}
	// The server sends to bad; the RECV that comes back hits the panic:
	// the message fails with the panic as its reason.
	armed.Store(true)
	err := srv.Send(ctx, bad.LocalAddr(), []byte("doomed"))
	var ue *gtudp.UndeliveredError
	if !errors.As(err, &ue) || ue.Addr != bad.LocalAddr() {
		t.Fatalf("Send through the panicking peer: %v, want an UndeliveredError naming it", err)
	}
	// The endpoint goes on: other peers, and the same address again.
	if err := srv.Send(ctx, good.LocalAddr(), []byte("fine")); err != nil {
		t.Fatalf("Send to another peer after the panic: %v", err)
	}
	if err := srv.Send(ctx, bad.LocalAddr(), []byte("again")); err != nil {
		t.Fatalf("Send to the same address after the panic: %v", err)
	}
	if st := srv.Stats(); st.PeerCrashes != 1 {
		t.Fatalf("PeerCrashes %d, want 1", st.PeerCrashes)
	}
}

// At MaxPeers, a peer that proved its address keeps its place: a send to
// a new address fails at once with ErrPeerLimit, and a DATA from one is
// never answered, and counted. A peer that never proved its address gives
// its place up to a send of ours.
func TestEndpoint_MaxPeers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mock := clock.NewMock()
		network := actortest.NewNetwork(mock)
		sc, _ := network.Listen("10.0.0.1:1")
		srv, _ := gtudp.New(sc, &gtudp.Config{Clock: mock, MaxPeers: 1})
		in := make(chan gtudp.Message, 16)
		go func() {
			for m := range srv.Inbox() {
				in <- m
			}
		}()
		fc, _ := network.Listen("10.0.0.2:1")
		first, _ := gtudp.New(fc, &gtudp.Config{Clock: mock})
		go func() {
			for range first.Inbox() {
			}
		}()
		other, _ := network.Listen("10.0.0.3:1") // plain UDP: never answers
		ctx := context.Background()

		// first proves its address by answering our DATA with its RECV.
		errc := make(chan error, 1)
		go func() { errc <- srv.Send(ctx, first.LocalAddr(), []byte("1")) }()
		synctest.Wait()
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if err := srv.Send(ctx, other.AddrPort(), nil); !errors.Is(err, gtudp.ErrPeerLimit) {
			t.Fatalf("Send beyond MaxPeers with the only peer validated: %v, want ErrPeerLimit", err)
		}
		data := wire.DefaultFormat().Append(nil, wire.Packet{Kind: wire.Data, ID: wire.ID{1, 2, 3, 4}, Payload: []byte("x")})
		other.WriteTo(data, sc.LocalAddr())
		synctest.Wait()
		if st := srv.Stats(); st.PeerLimited != 1 || st.Peers != 1 || st.PeersEvicted != 0 {
			t.Fatalf("PeerLimited %d, Peers %d, evicted %d; want 1, 1, 0", st.PeerLimited, st.Peers, st.PeersEvicted)
		}
		for range 50 { // 5 s: any answer, however late, would be here
			synctest.Wait()
			mock.Add(100 * time.Millisecond)
		}
		other.SetReadDeadline(mock.Now()) // its queue only
		if n, _, err := other.ReadFrom(make([]byte, 64)); err == nil {
			t.Fatalf("the endpoint answered a peer beyond MaxPeers with %d bytes", n)
		}
		if len(in) != 0 {
			t.Fatalf("%d messages delivered from beyond MaxPeers", len(in))
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		srv.Close(cctx)

		// A peer that only ever sent to us has proved nothing: our send to
		// a new address takes its place. What it remembered is kept, so a
		// late repeat of the message it delivered is answered, not
		// delivered again.
		sc2, _ := network.Listen("10.0.0.4:1")
		srv2, _ := gtudp.New(sc2, &gtudp.Config{Clock: mock, MaxPeers: 1})
		delivered := make(chan string, 8)
		go func() {
			for m := range srv2.Inbox() {
				delivered <- string(m.Data)
			}
		}()
		raw, _ := network.Listen("10.0.0.5:1")
		hello := dataPacket(wire.ID{9, 9, 9, 9}, "hello")
		raw.WriteTo(hello, sc2.LocalAddr())
		synctest.Wait()
		if got := <-delivered; got != "hello" {
			t.Fatalf("delivered %q", got)
		}
		recvs := func() int { // RECVs for hello in raw's queue
			n := 0
			buf := make([]byte, 64)
			raw.SetReadDeadline(mock.Now())
			for {
				k, _, err := raw.ReadFrom(buf)
				if err != nil {
					return n
				}
				if p, err := format.Decode(buf[:k]); err == nil && p.Kind == wire.Recv && p.ID == (wire.ID{9, 9, 9, 9}) {
					n++
				}
			}
		}
		if recvs() != 1 {
			t.Fatal("no RECV for hello")
		}
		raw.WriteTo(format.Append(nil, wire.Packet{Kind: wire.Ack, ID: wire.ID{9, 9, 9, 9}}), sc2.LocalAddr())
		synctest.Wait()

		third, _ := network.Listen("10.0.0.6:1")
		tctx, tcancel := context.WithCancel(ctx)
		go func() { errc <- srv2.Send(tctx, third.AddrPort(), []byte("x")) }()
		synctest.Wait()
		if st := srv2.Stats(); st.PeersEvicted != 1 || st.Peers != 1 {
			t.Fatalf("evicted %d, peers %d; want the unproven peer evicted for our send", st.PeersEvicted, st.Peers)
		}
		tcancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
		// A late repeat of hello: its peer comes back (in the place of
		// third's, which has nothing of ours now) and knows it.
		raw.WriteTo(hello, sc2.LocalAddr())
		synctest.Wait()
		if n := recvs(); n != 1 {
			t.Fatalf("%d RECVs for the repeat, want 1; %+v", n, srv2.Stats())
		}
		select {
		case got := <-delivered:
			t.Fatalf("delivered %q again after its peer was evicted", got)
		default:
		}
		if st := srv2.Stats(); st.PeersEvicted != 2 || st.Duplicates != 1 {
			t.Fatalf("evicted %d, duplicates %d; want 2 and 1", st.PeersEvicted, st.Duplicates)
		}
		srv2.Close(cctx)
		first.Close(cctx)
	})
}

func TestEndpoint_StrayRecvAnsweredAck(t *testing.T) {
	srv := listen(t, "udp4", "127.0.0.1:0", nil)
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f := wire.DefaultFormat()
	id := wire.ID{9, 8, 7, 6}
	c.WriteToUDPAddrPort(f.Append(nil, wire.Packet{Kind: wire.Recv, ID: id}), srv.LocalAddr())
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	n, _, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := f.Decode(buf[:n]); err != nil || p.Kind != wire.Ack || p.ID != id {
		t.Fatalf("answer %x (%v), want ACK %v", buf[:n], err, id)
	}
	if st := srv.Stats(); st.StrayRecv != 1 || st.Peers != 0 {
		t.Fatalf("StrayRecv %d, Peers %d; want 1 and 0 (no state for a stray RECV)", st.StrayRecv, st.Peers)
	}
}

func TestSend_ContextEnds(t *testing.T) {
	a := listen(t, "udp4", "127.0.0.1:0", nil)
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = a.Send(ctx, sink.LocalAddr().(*net.UDPAddr).AddrPort(), []byte("x"))
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, gtudp.ErrOutcomeUnknown) {
		t.Fatalf("Send to a silent address: %v, want context.DeadlineExceeded and ErrOutcomeUnknown (the DATA went out)", err)
	}
	if st := a.Stats(); st.InFlight != 0 || st.Failed != 1 {
		t.Fatalf("after the context ended: InFlight %d, Failed %d; want 0 and 1", st.InFlight, st.Failed)
	}
}

// A Send whose context is done before it starts sends nothing: 1,000 tries,
// nothing on the wire, nothing delivered, every error the context's own.
// One cancelled while its message waits for the window ends unsent too.
func TestSend_CancelledBeforeItStarts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, &gtudp.Config{Window: 1})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		for i := range 1000 {
			err := p.a.Send(ctx, p.b.LocalAddr(), []byte{byte(i)})
			if !errors.Is(err, context.Canceled) || errors.Is(err, gtudp.ErrOutcomeUnknown) {
				t.Fatalf("try %d: %v, want context.Canceled and nothing sent", i, err)
			}
		}
		p.step(time.Second)
		if st := p.a.Stats(); st.PacketsOut != 0 || st.Sent != 0 {
			t.Fatalf("sender stats %+v: want nothing sent", st)
		}
		if st := p.b.Stats(); st.Delivered != 0 {
			t.Fatalf("delivered %d", st.Delivered)
		}

		// Window 1: a second message waits for the first; cancelled while
		// it waits, it is never sent.
		p.network.Partition(p.a.LocalAddr(), p.b.LocalAddr())
		first := make(chan error, 1)
		go func() { first <- p.a.Send(context.Background(), p.b.LocalAddr(), []byte("first")) }()
		synctest.Wait()
		ctx2, cancel2 := context.WithCancel(context.Background())
		second := make(chan error, 1)
		go func() { second <- p.a.Send(ctx2, p.b.LocalAddr(), []byte("second")) }()
		synctest.Wait()
		cancel2()
		if err := <-second; !errors.Is(err, context.Canceled) || errors.Is(err, gtudp.ErrOutcomeUnknown) {
			t.Fatalf("second: %v, want context.Canceled, unsent", err)
		}
		if st := p.a.Stats(); st.Sent != 1 {
			t.Fatalf("Sent %d, want 1 (the second never went out)", st.Sent)
		}
		p.network.HealAll()
		p.step(time.Second)
		if err := <-first; err != nil {
			t.Fatalf("first: %v", err)
		}
		p.close(t)
	})
}
