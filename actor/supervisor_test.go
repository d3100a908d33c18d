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

	"github.com/gtudp/gtudp"
	"github.com/gtudp/gtudp/actor"
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

func TestEndpoint_MaxPeers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv := listen(t, "udp4", "127.0.0.1:0", &gtudp.Config{MaxPeers: 1})
	in := collectInbox(srv)
	first := listen(t, "udp4", "127.0.0.1:0", nil)
	if err := first.Send(ctx, srv.LocalAddr(), []byte("1")); err != nil {
		t.Fatal(err)
	}
	// A send to a second address is refused at once.
	other, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := srv.Send(ctx, other.LocalAddr().(*net.UDPAddr).AddrPort(), nil); !errors.Is(err, gtudp.ErrPeerLimit) {
		t.Fatalf("Send beyond MaxPeers: %v, want ErrPeerLimit", err)
	}
	// A DATA from a second address is not answered, and counted.
	data := wire.DefaultFormat().Append(nil, wire.Packet{Kind: wire.Data, ID: wire.ID{1, 2, 3, 4}, Payload: []byte("x")})
	other.WriteToUDPAddrPort(data, srv.LocalAddr())
	other.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, _, err := other.ReadFromUDPAddrPort(make([]byte, 64)); err == nil {
		t.Fatalf("the endpoint answered a peer beyond MaxPeers with %d bytes", n)
	}
	if st := srv.Stats(); st.PeerLimited != 1 || st.Peers != 1 {
		t.Fatalf("PeerLimited %d, Peers %d; want 1 and 1", st.PeerLimited, st.Peers)
	}
	if got := len(in.snapshot()); got != 1 {
		t.Fatalf("%d messages delivered, want 1", got)
	}
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
