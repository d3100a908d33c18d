package actor_test

import (
	"context"
	"fmt"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/gtudp/gtudp"
	"github.com/gtudp/gtudp/actor/actortest"
	"github.com/gtudp/gtudp/wire"
)

// drain reads ep's Inbox until it is closed.
func drain(ep *gtudp.Endpoint) {
	go func() {
		for range ep.Inbox() {
		}
	}()
}

func closeAll(b *testing.B, eps ...*gtudp.Endpoint) {
	b.Helper()
	for _, ep := range eps {
		if err := ep.Close(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExchange_InMemory is one blocking Send through the whole stack
// (Send, peer, codec, reader, the receiving peer and Inbox, RECV and ACK)
// on the in-memory network: the cost of the library without the kernel.
func BenchmarkExchange_InMemory(b *testing.B) {
	network := actortest.NewNetwork(nil)
	ca, _ := network.Listen("10.0.0.1:1")
	cb, _ := network.Listen("10.0.0.2:1")
	a, _ := gtudp.New(ca, nil)
	c, _ := gtudp.New(cb, nil)
	drain(c)
	ctx := context.Background()
	data := make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		if err := a.Send(ctx, c.LocalAddr(), data); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	closeAll(b, a, c)
}

// BenchmarkLoopback_Latency is one message in flight over real loopback
// sockets: ns/op is the time from Send to its RECV.
func BenchmarkLoopback_Latency(b *testing.B) {
	a, err := gtudp.Listen("udp4", "127.0.0.1:0", nil)
	if err != nil {
		b.Fatal(err)
	}
	c, err := gtudp.Listen("udp4", "127.0.0.1:0", nil)
	if err != nil {
		b.Fatal(err)
	}
	drain(c)
	ctx := context.Background()
	data := make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		if err := a.Send(ctx, c.LocalAddr(), data); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	closeAll(b, a, c)
}

// BenchmarkLoopback_Throughput streams 64-byte messages through the Outbox
// over real loopback sockets, a full window in flight; it reports msg/s.
func BenchmarkLoopback_Throughput(b *testing.B) {
	a, err := gtudp.Listen("udp4", "127.0.0.1:0", nil)
	if err != nil {
		b.Fatal(err)
	}
	c, err := gtudp.Listen("udp4", "127.0.0.1:0", nil)
	if err != nil {
		b.Fatal(err)
	}
	drain(c)
	data := make([]byte, 64)
	to := c.LocalAddr()
	failed := make(chan int, 1)
	b.ReportAllocs()
	b.ResetTimer()
	go func() {
		bad := 0
		for range b.N {
			if r := <-a.Receipts(); r.Err != nil {
				bad++
			}
		}
		failed <- bad
	}()
	for range b.N {
		a.Outbox() <- gtudp.Message{Addr: to, Data: data}
	}
	if bad := <-failed; bad > 0 {
		b.Fatalf("%d messages failed", bad)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
	b.StopTimer()
	closeAll(b, a, c)
}

// BenchmarkPeers has many clients, each with a message in flight at a time,
// send to one server endpoint on the in-memory network: the cost per
// message as the number of peers grows.
func BenchmarkPeers(b *testing.B) {
	for _, n := range []int{1, 100, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			network := actortest.NewNetwork(nil)
			network.SetQueueLen(4 * n)
			sc, _ := network.Listen("10.255.255.254:1")
			srv, _ := gtudp.New(sc, &gtudp.Config{MaxPeers: n})
			drain(srv)
			clients := make([]*gtudp.Endpoint, n)
			for i := range clients {
				conn, err := network.Listen(fmt.Sprintf("10.%d.%d.%d:1", i>>16, i>>8&0xff, i&0xff))
				if err != nil {
					b.Fatal(err)
				}
				clients[i], _ = gtudp.New(conn, nil)
			}
			data := make([]byte, 64)
			b.ReportAllocs()
			b.ResetTimer()
			// b.N messages, spread over the clients.
			errs := make(chan error, n)
			for i, c := range clients {
				k := b.N / n
				if i < b.N%n {
					k++
				}
				go func() {
					for range k {
						if err := c.Send(context.Background(), srv.LocalAddr(), data); err != nil {
							errs <- err
							return
						}
					}
					errs <- nil
				}()
			}
			for range n {
				if err := <-errs; err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
			b.StopTimer()
			closeAll(b, clients...)
			closeAll(b, srv)
		})
	}
}

// BenchmarkPeerMemory measures what an idle-waiting peer costs: 1,000
// addresses each deliver one message, answer its RECV with ACK and go
// quiet; the server then holds 1,000 peers with nothing pending but their
// dedupe memory. It reports heap and goroutine stacks per peer, at once
// (B/peer-live: each peer's goroutine still waits) and once the peers have
// parked (B/peer: quiet for ParkAfter, 1 s, they keep their state but no
// goroutine), the state an idle peer spends its life in.
func BenchmarkPeerMemory(b *testing.B) {
	const n = 2000
	// Once unmeasured: the runtime's own tables (goroutine list, timer
	// heaps) grow on first use and would be charged to the first peers.
	idlePeersMemory(b, n)
	for b.Loop() {
		live, parked := idlePeersMemory(b, n)
		b.ReportMetric(live, "B/peer-live")
		b.ReportMetric(parked, "B/peer")
	}
}

// idlePeersMemory starts n idle-waiting peers on a server and returns the
// memory each costs while its goroutine waits and once it has parked.
func idlePeersMemory(b *testing.B, n int) (live, parked float64) {
	network := actortest.NewNetwork(nil)
	network.SetQueueLen(4 * n)
	sc, _ := network.Listen("10.255.255.254:1")
	srv, _ := gtudp.New(sc, &gtudp.Config{MaxPeers: 2 * n})
	drain(srv)
	clients := make([]*actortest.Conn, n)
	for i := range clients {
		clients[i], _ = network.Listen(fmt.Sprintf("10.0.%d.%d:1", i>>8, i&0xff))
	}
	before := memInUse()
	data := wire.DefaultFormat().Append(nil, wire.Packet{Kind: wire.Data, ID: wire.ID{1}, Payload: make([]byte, 64)})
	buf := make([]byte, 64)
	for _, c := range clients {
		c.WriteTo(data, sc.LocalAddr())
	}
	for _, c := range clients {
		k, _, err := c.ReadFrom(buf)
		if err != nil {
			b.Fatal(err)
		}
		p, err := wire.DefaultFormat().Decode(buf[:k])
		if err != nil || p.Kind != wire.Recv {
			b.Fatalf("answer %x: %v", buf[:k], err)
		}
		c.WriteTo(wire.DefaultFormat().Append(nil, wire.Packet{Kind: wire.Ack, ID: p.ID}), sc.LocalAddr())
	}
	for srv.Stats().Open > 0 {
		runtime.Gosched()
	}
	liveMem := memInUse()
	// Parking takes a second of real time: poll for it.
	for srv.Stats().PeersParked < n {
		time.Sleep(50 * time.Millisecond)
	}
	parkedMem := memInUse()
	if st := srv.Stats(); st.Peers != n || st.Remembered != n {
		b.Fatalf("%d peers remembering %d ids, want %d each", st.Peers, st.Remembered, n)
	}
	for _, c := range clients {
		c.Close()
	}
	closeAll(b, srv)
	return float64(liveMem-before) / float64(n), float64(parkedMem-before) / float64(n)
}

// memInUse is the heap and goroutine stacks in use, after collections: a
// collection halves a stack that uses less than a quarter of it, so a few
// let stacks grown by a burst settle.
func memInUse() uint64 {
	for range 4 {
		runtime.GC()
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

// BenchmarkLoopback_LargeMessages sends messages of 1 MiB over real
// loopback sockets, at most inFlight at a time, each from a buffer of its
// own that the sender reuses once the receipt is in (as the library
// requires), and reads them on the other side. Besides MB/s it reports
// the peak live heap (runtime/metrics /gc/heap/live:bytes, what the last
// GC found reachable), the heap of the two idle endpoints, the bytes of
// the messages in flight, and what the peak holds beyond twice those: the
// sender's buffers are one copy of what is in flight, the receiver's
// buffers of messages being reassembled the other, and the rest is a
// constant: the idle endpoints (their read buffers), the read buffers
// lent to peers (at most 8 MiB), one batch of datagrams being written (at
// most 1 MiB) and what waits in the peers' mailboxes (fragments smaller
// than 16 KiB are copied there, charged to HoldBytes). Measured with
// -benchtime 100x and 200x, it was 4.6 to 13.1 MiB in 8 runs with 32
// buffers lent at most, 5.8 to 9.5 MiB in 6 runs with 128: under 16 MiB.
// In "released" the reader gives each message back (Endpoint.Release),
// which keeps up to 8 MiB more for reuse.
func BenchmarkLoopback_LargeMessages(b *testing.B) {
	b.Run("dropped", func(b *testing.B) { benchLargeMessages(b, false) })
	b.Run("released", func(b *testing.B) { benchLargeMessages(b, true) })
}

func benchLargeMessages(b *testing.B, release bool) {
	const size, inFlight = 1 << 20, 8
	a, err := gtudp.Listen("udp4", "127.0.0.1:0", nil)
	if err != nil {
		b.Fatal(err)
	}
	// An Inbox of one: a message delivered and not yet read is held by
	// the receiving peer, unanswered, so it counts as in flight (with a
	// deep Inbox, messages the reader has not got to yet are the
	// application's, and the sender would not count them).
	c, err := gtudp.Listen("udp4", "127.0.0.1:0", &gtudp.Config{InboxSize: 1})
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		for m := range c.Inbox() {
			if release {
				c.Release(m.Data)
			}
		}
	}()
	free := make(chan []byte, inFlight)
	for range inFlight {
		free <- make([]byte, size)
	}
	go func() {
		for r := range a.Receipts() {
			if r.Err != nil {
				b.Error(r.Err)
			}
			free <- r.Data
		}
	}()
	live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	var peak uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				metrics.Read(live)
				peak = max(peak, live[0].Value.Uint64())
			}
		}
	}()
	runtime.GC()
	metrics.Read(live)
	base := live[0].Value.Uint64() // the endpoints, idle, and the sender's buffers
	b.SetBytes(size)
	for b.Loop() {
		a.Outbox() <- gtudp.Message{Addr: c.LocalAddr(), Data: <-free}
	}
	for range inFlight {
		<-free // every receipt in
	}
	b.StopTimer()
	close(stop)
	<-sampled
	b.ReportMetric(float64(peak)/(1<<20), "peak-live-MiB")
	b.ReportMetric(float64(base-inFlight*size)/(1<<20), "idle-MiB")
	b.ReportMetric(float64(inFlight*size)/(1<<20), "in-flight-MiB")
	b.ReportMetric((float64(peak)-2*inFlight*size)/(1<<20), "over-2x-in-flight-MiB")
	closeAll(b, a, c)
}
