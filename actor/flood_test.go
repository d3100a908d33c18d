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
// DATA. The endpoint keeps at most MaxPeers peers, counts the rest, keeps
// serving an established peer, and reaps the flood's state once it has
// aged out; memory stays bounded throughout.
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
		if want := uint64(sources - (gtudp.DefaultMaxPeers - 1)); st.PeerLimited != want {
			t.Fatalf("PeerLimited %d, want %d (every DATA beyond MaxPeers counted)", st.PeerLimited, want)
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
