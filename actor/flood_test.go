package actor_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/gtudp/gtudp"
	"github.com/gtudp/gtudp/actor/actortest"
	"github.com/gtudp/gtudp/wire"
)

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// TestEndpoint_FloodOfSources: 50,000 distinct addresses each send one
// DATA. The endpoint keeps at most MaxPeers peers, newer unproven sources
// taking the places of older ones, keeps serving an established peer, and
// reaps the flood's state once it has aged out; memory stays bounded
// throughout.
func TestEndpoint_FloodOfSources(t *testing.T) {
	const sources = 50000
	synctest.Test(t, func(t *testing.T) {
		mock := clock.NewMock()
		network := actortest.NewNetwork(mock)
		network.SetQueueLen(sources) // the endpoint's socket buffer holds the whole flood
		srvConn, _ := network.Listen("10.0.0.1:4323")
		cfg := &gtudp.Config{Clock: mock}
		srv, err := gtudp.New(srvConn, cfg)
		if err != nil {
			t.Fatal(err)
		}
		friendConn, _ := network.Listen("10.0.0.2:4323")
		friend, _ := gtudp.New(friendConn, &gtudp.Config{Clock: mock})
		delivered := 0
		go func() {
			for range srv.Inbox() {
				delivered++
			}
		}()
		go func() {
			for range friend.Inbox() {
			}
		}()
		ctx := context.Background()
		sendFromFriend := func() error {
			errc := make(chan error, 1)
			go func() { errc <- friend.Send(ctx, srv.LocalAddr(), []byte("still there?")) }()
			synctest.Wait()
			return <-errc
		}
		if err := sendFromFriend(); err != nil {
			t.Fatal(err)
		}

		before := heapInUse()
		data := wire.DefaultFormat().Append(nil, wire.Packet{Kind: wire.Data, ID: wire.ID{1, 2, 3, 4}, Payload: []byte("flood")})
		for i := range sources {
			c, err := network.Listen(fmt.Sprintf("10.%d.%d.%d:1000", 1+i>>16, i>>8&0xff, i&0xff))
			if err != nil {
				t.Fatal(err)
			}
			c.WriteTo(data, srvConn.LocalAddr())
			c.Close()
		}
		synctest.Wait()
		peak := heapInUse()
		st := srv.Stats()
		if st.Peers > gtudp.DefaultMaxPeers {
			t.Fatalf("%d peers, above MaxPeers %d", st.Peers, gtudp.DefaultMaxPeers)
		}
		if st.PeersEvicted+st.PeerLimited < uint64(sources-gtudp.DefaultMaxPeers) {
			t.Fatalf("evicted %d, limited %d: every DATA beyond MaxPeers either took an unproven peer's place or was counted", st.PeersEvicted, st.PeerLimited)
		}
		// The established peer is still served during the flood.
		if err := sendFromFriend(); err != nil {
			t.Fatalf("established peer during the flood: %v", err)
		}

		// The flood's exchanges end (RECVs unanswered), age out of the
		// dedupe window, and their peers retire.
		for range 120 {
			synctest.Wait()
			mock.Add(time.Second)
		}
		synctest.Wait()
		after := heapInUse()
		if st := srv.Stats(); st.Peers > 1 {
			t.Fatalf("%d peers left after the flood aged out", st.Peers)
		}
		t.Logf("heap in use: before %d KiB, peak %d KiB, after %d KiB; delivered %d", before>>10, peak>>10, after>>10, delivered)
		// A generous bound, not a target: MaxPeers peers holding one
		// message each cost a few MiB, not one allocation per source.
		if peak > before+64<<20 {
			t.Fatalf("heap grew by %d MiB during the flood", (peak-before)>>20)
		}
		srv.Close(ctx)
		friend.Close(ctx)
	})
}

// After a flood of 50,000 forged sources has filled the peer table, a new
// honest peer is served within a second, both ways: its first DATA takes
// the place of a forged source's peer, and so does our first send to it.
func TestEndpoint_HonestPeerAfterFlood(t *testing.T) {
	const sources = 50000
	synctest.Test(t, func(t *testing.T) {
		mock := clock.NewMock()
		network := actortest.NewNetwork(mock)
		network.SetQueueLen(sources)
		srvConn, _ := network.Listen("10.0.0.1:4323")
		srv, err := gtudp.New(srvConn, &gtudp.Config{Clock: mock})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for range srv.Inbox() {
			}
		}()
		data := wire.DefaultFormat().Append(nil, wire.Packet{Kind: wire.Data, ID: wire.ID{1, 2, 3, 4}, Payload: []byte("flood")})
		for i := range sources {
			c, _ := network.Listen(fmt.Sprintf("10.%d.%d.%d:1000", 1+i>>16, i>>8&0xff, i&0xff))
			c.WriteTo(data, srvConn.LocalAddr())
			c.Close()
		}
		synctest.Wait()
		if st := srv.Stats(); st.Peers != gtudp.DefaultMaxPeers {
			t.Fatalf("%d peers after the flood, want the table full (%d)", st.Peers, gtudp.DefaultMaxPeers)
		}

		honestConn, _ := network.Listen("192.0.2.1:5000")
		honest, _ := gtudp.New(honestConn, &gtudp.Config{Clock: mock})
		got := make(chan string, 1)
		go func() {
			for m := range honest.Inbox() {
				got <- string(m.Data)
			}
		}()
		served := func(send func() error) time.Duration {
			start := mock.Now()
			errc := make(chan error, 1)
			go func() { errc <- send() }()
			for {
				synctest.Wait()
				select {
				case err := <-errc:
					if err != nil {
						t.Fatalf("send: %v", err)
					}
					return mock.Now().Sub(start)
				default:
				}
				if mock.Now().Sub(start) > time.Minute {
					t.Fatal("not served within a minute")
				}
				mock.Add(10 * time.Millisecond)
			}
		}
		ctx := context.Background()
		in := served(func() error { return honest.Send(ctx, srv.LocalAddr(), []byte("hello")) })
		out := served(func() error { return srv.Send(ctx, honest.LocalAddr(), []byte("welcome")) })
		if m := <-got; m != "welcome" {
			t.Fatalf("honest peer got %q", m)
		}
		t.Logf("honest peer served in %v (to us) and %v (from us); %d peers evicted", in, out, srv.Stats().PeersEvicted)
		if in > time.Second || out > time.Second {
			t.Fatalf("served after %v and %v, want within 1 s", in, out)
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		srv.Close(cctx)
		honest.Close(cctx)
	})
}
