package actor_test

// Messages larger than a datagram, on the in-memory network inside
// synctest bubbles: what goes on the wire, loss, cancellation, and floods
// of partial messages against the byte budget.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
	"unsafe"

	"github.com/benbjohnson/clock"
	"github.com/gtudp/gtudp"
	"github.com/gtudp/gtudp/actor"
	"github.com/gtudp/gtudp/actor/actortest"
	"github.com/gtudp/gtudp/peer"
	"github.com/gtudp/gtudp/wire"
)

var extFormat = func() wire.Format {
	f := wire.DefaultFormat()
	f.Ext = f.DeriveExt()
	return f
}()

// fragOf returns the FRAG records of an EXT datagram.
func fragsOf(b []byte) []wire.Record {
	p, err := extFormat.Decode(b)
	if err != nil || p.Kind != wire.Ext {
		return nil
	}
	_, recs, err := wire.ParseExt(p.Payload)
	if err != nil {
		return nil
	}
	var fs []wire.Record
	for r, ok := recs.Next(); ok; r, ok = recs.Next() {
		if r.Type == wire.RecFrag {
			fs = append(fs, r)
		}
	}
	return fs
}

// Between gtudp endpoints on a path that loses a tenth of its datagrams,
// messages of every size up to 200 KB arrive whole and once, each with
// one successful outcome, and no datagram either way exceeds the datagram
// size: the large ones went in fragments, re-sent one by one.
func TestFragments_LossyPath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mock := clock.NewMock()
		network := actortest.NewNetwork(mock)
		rng := rand.New(rand.NewPCG(1, 2))
		var mu sync.Mutex
		largest, frags := 0, 0
		network.SetFate(func(from, to netip.AddrPort, b []byte) actortest.Fate {
			mu.Lock()
			defer mu.Unlock()
			largest = max(largest, len(b))
			frags += len(fragsOf(b))
			return actortest.Fate{Drop: rng.IntN(10) == 0}
		})
		ca, _ := network.Listen("10.0.0.1:4323")
		cb, _ := network.Listen("10.0.0.2:4323")
		a, err := gtudp.New(ca, &gtudp.Config{Clock: mock})
		if err != nil {
			t.Fatal(err)
		}
		b, err := gtudp.New(cb, &gtudp.Config{Clock: mock})
		if err != nil {
			t.Fatal(err)
		}
		var got []gtudp.Message // read once inbox is closed
		inbox := make(chan struct{})
		go func() {
			defer close(inbox)
			for m := range b.Inbox() {
				got = append(got, m)
			}
		}()
		sizes := []int{1, 1100, 1179, 1200, 1201, 5000, 65502, 65503, 200_000, 0}
		errs := make([]error, len(sizes))
		var wg sync.WaitGroup
		for i, n := range sizes {
			msg := make([]byte, n)
			for j := range msg {
				msg[j] = byte(i + j*7)
			}
			wg.Go(func() { errs[i] = a.Send(context.Background(), b.LocalAddr(), msg) })
		}
		sent := make(chan struct{})
		go func() { wg.Wait(); close(sent) }()
		for waited := time.Duration(0); ; waited += 10 * time.Millisecond {
			synctest.Wait()
			select {
			case <-sent:
			default:
				if waited > time.Hour {
					t.Fatal("no outcome within an hour")
				}
				mock.Add(10 * time.Millisecond)
				continue
			}
			break
		}
		for i, err := range errs {
			if err != nil {
				t.Errorf("message %d (%d bytes): %v", i, sizes[i], err)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		a.Close(ctx)
		b.Close(ctx)
		<-inbox
		seen := map[int]int{}
		for _, m := range got {
			i := -1
			for k, n := range sizes {
				if len(m.Data) == n {
					i = k
				}
			}
			for j := range m.Data {
				if m.Data[j] != byte(i+j*7) {
					i = -1
					break
				}
			}
			if i < 0 {
				t.Fatalf("delivered %d bytes nobody sent", len(m.Data))
			}
			seen[i]++
		}
		for i := range sizes {
			if seen[i] != 1 {
				t.Errorf("message %d (%d bytes) delivered %d times", i, sizes[i], seen[i])
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if largest > gtudp.DefaultDatagramSize || frags < 300_000/1200 {
			t.Errorf("largest datagram %d bytes (at most %d), %d FRAG records", largest, gtudp.DefaultDatagramSize, frags)
		}
		if st := a.Stats(); st.DataResent == 0 {
			t.Errorf("nothing re-sent through 10%% loss: %+v", st)
		}
	})
}

// A receiver that gives each message back with Release has the next
// large message received into it, on a path that loses, duplicates and
// reorders fragments: each message still arrives whole, with not one byte
// of the one before it (not even beyond its length), and the buffers are
// reused.
func TestFragments_ReleasedBuffersAreReused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, nil) // b sends; newPair drains b's Inbox, a's is read here
		defer p.abort()
		rng := rand.New(rand.NewPCG(3, 4))
		var mu sync.Mutex
		p.network.SetFate(func(from, to netip.AddrPort, b []byte) actortest.Fate {
			mu.Lock()
			defer mu.Unlock()
			return actortest.Fate{
				Drop:   rng.IntN(10) == 0,
				Copies: rng.IntN(10) / 9, // a tenth twice
				Delay:  time.Duration(rng.IntN(20)) * time.Millisecond,
			}
		})
		// Each message a little smaller than the one before, so that it
		// fits in that one's buffer.
		const n = 8
		size := func(i int) int { return 100_000 - 5_000*i }
		pattern := func(i, j int) byte { return byte(i*31 + j*7 + j>>8) }
		released := make(chan struct{}, n)
		var arrays []*byte // of the messages delivered, in order
		var wrong []string
		go func() {
			for m := range p.a.Inbox() {
				i := len(arrays)
				arrays = append(arrays, unsafe.SliceData(m.Data))
				if len(m.Data) != size(i) || cap(m.Data) != size(i) {
					// Beyond its length a reused buffer holds an older message.
					wrong = append(wrong, fmt.Sprintf("message %d: %d bytes, capacity %d", i, len(m.Data), cap(m.Data)))
				}
				for j, c := range m.Data {
					if c != pattern(i, j) {
						wrong = append(wrong, fmt.Sprintf("message %d: byte %d is %d, want %d", i, j, c, pattern(i, j)))
						break
					}
				}
				p.a.Release(m.Data)
				released <- struct{}{}
			}
		}()
		for i := range n {
			msg := make([]byte, size(i))
			for j := range msg {
				msg[j] = pattern(i, j)
			}
			if err := sendWithClock(t, p.mock, p.b, p.a.LocalAddr(), string(msg)); err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			<-released // given back before the next one starts
		}
		p.abort()
		for _, w := range wrong {
			t.Error(w)
		}
		reused := 0
		for i := 1; i < len(arrays); i++ {
			if arrays[i] == arrays[i-1] {
				reused++
			}
		}
		if len(arrays) != n || reused != n-1 {
			t.Errorf("%d messages delivered, %d of them into the buffer given back before (want %d and %d)", len(arrays), reused, n, n-1)
		}
	})
}

// Release keeps a buffer only where messages in fragments can come: not
// on an endpoint without the extension, not one under 16 KiB, and no
// more than 8 MiB in all (guarantee 5); Stats says how many bytes are
// kept.
func TestFragments_ReleaseKeepsOnlyWhatCanBeUsed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, &gtudp.Config{NoExtension: true})
		defer p.abort()
		for _, ep := range []*gtudp.Endpoint{p.a, p.b} {
			ep.Release(make([]byte, 64<<10))
			ep.Release(make([]byte, 1<<10))
		}
		if got := p.b.Stats().SpareBytes; got != 64<<10 {
			t.Errorf("with the extension: %d bytes kept, want %d", got, 64<<10)
		}
		if got := p.a.Stats().SpareBytes; got != 0 {
			t.Errorf("without the extension: %d bytes kept, want 0", got)
		}
		for range 20 {
			p.b.Release(make([]byte, 1<<20))
		}
		if got := p.b.Stats().SpareBytes; got != 8<<20 {
			t.Errorf("after 20 MiB given back: %d bytes kept, want 8 MiB: the bound, reached", got)
		}
	})
}

// Send cancelled while a large message is going out: Send returns at once
// with ErrOutcomeUnknown (part of it may be there), and not one more
// fragment of it is sent.
func TestFragments_CancelStopsTheRest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mock := clock.NewMock()
		network := actortest.NewNetwork(mock)
		var mu sync.Mutex
		frags := 0
		network.SetFate(func(from, to netip.AddrPort, b []byte) actortest.Fate {
			mu.Lock()
			defer mu.Unlock()
			frags += len(fragsOf(b))
			return actortest.Fate{Delay: 50 * time.Millisecond} // a long path: the window fills
		})
		ca, _ := network.Listen("10.0.0.1:4323")
		cb, _ := network.Listen("10.0.0.2:4323")
		a, _ := gtudp.New(ca, &gtudp.Config{Clock: mock})
		b, _ := gtudp.New(cb, &gtudp.Config{Clock: mock})
		go func() {
			for range b.Inbox() {
			}
		}()
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- a.Send(ctx, b.LocalAddr(), make([]byte, 4<<20)) }()
		for range 60 { // 600 ms: a few round trips, some fragments out
			synctest.Wait()
			mock.Add(10 * time.Millisecond)
		}
		synctest.Wait()
		mu.Lock()
		before := frags
		mu.Unlock()
		cancel()
		synctest.Wait()
		err := <-errc
		if !errors.Is(err, gtudp.ErrOutcomeUnknown) || !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled Send: %v, want ErrOutcomeUnknown and context.Canceled", err)
		}
		for range 300 { // 3 s: re-sends would have come by now
			mock.Add(10 * time.Millisecond)
			synctest.Wait()
		}
		mu.Lock()
		after := frags
		mu.Unlock()
		if before == 0 || before >= (4<<20)/1200 || after != before {
			t.Fatalf("%d fragments sent before the cancel (of %d), %d after", before, (4<<20)/1200, after-before)
		}
		if st := a.Stats(); st.InFlight != 0 || st.InFlightBytes != 0 {
			t.Fatalf("after the cancel: %d in flight, %d bytes", st.InFlight, st.InFlightBytes)
		}
		a.Close(context.Background())
		b.Close(context.Background())
	})
}

// frag builds an EXT datagram of one FRAG record.
func frag(inc uint64, id, msg wire.ID, total, off uint64, payload []byte) []byte {
	b := extFormat.AppendExt(nil, wire.ExtHeader{Version: wire.ExtVersion, Incarnation: inc})
	return wire.AppendFrag(b, id, msg, total, off, payload)
}

// answerProbes answers every plain RECV c receives with its ACK, as a
// real address does: c proves itself to whoever probes it.
func answerProbes(c *actortest.Conn) {
	buf := make([]byte, 70000)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		if p, err := extFormat.Decode(buf[:n]); err == nil && p.Kind == wire.Recv {
			c.WriteTo(extFormat.Append(nil, wire.Packet{Kind: wire.Ack, ID: p.ID}), from)
		}
	}
}

// First fragments of large messages, from forged sources that answer
// nothing and from real ones that prove their address: the forged ones
// start no message at all, and what they sent is held (in case they
// prove themselves) only up to half the budget and only for a moment;
// the real ones start messages until the byte
// budget is taken, no further, and those are dropped a Lifetime later,
// giving the budget back, while the heap stays within the budget.
func TestFragments_FloodOfPartialMessages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const budget = 8 << 20
		const total = 1 << 20
		const lifetime = 5 * time.Second
		mock := clock.NewMock()
		network := actortest.NewNetwork(mock)
		sc, _ := network.Listen("10.0.0.1:4323")
		ep, err := gtudp.New(sc, &gtudp.Config{Clock: mock, HoldBytes: budget, MaxMessage: total, Lifetime: lifetime})
		if err != nil {
			t.Fatal(err)
		}
		before := heapInUse()
		piece := make([]byte, 1000)
		flood := func(c *actortest.Conn, n int) {
			for i := range n {
				var id, msg wire.ID
				binary.BigEndian.PutUint32(id[:], uint32(2*i))
				binary.BigEndian.PutUint32(msg[:], uint32(2*i+1))
				c.WriteTo(frag(7, id, msg, total, 0, piece), sc.LocalAddr())
				if i%50 == 0 {
					synctest.Wait()
				}
			}
		}
		// 200 forged sources, 10 MB in all: probed, never answering.
		for s := range 200 {
			c, _ := network.Listen(fmt.Sprintf("10.66.%d.%d:666", s/250, s%250+1))
			defer c.Close()
			flood(c, 50)
		}
		synctest.Wait()
		st := ep.Stats()
		t.Logf("forged sources hold %d bytes", st.HeldBytes)
		if st.HeldBytes > budget/2+64<<10 {
			t.Fatalf("forged sources hold %d bytes of the budget of %d", st.HeldBytes, budget)
		}
		for range 30 {
			mock.Add(100 * time.Millisecond)
			synctest.Wait()
		}
		if st := ep.Stats(); st.HeldBytes != 0 {
			t.Fatalf("3 s later, forged sources hold %d bytes of the budget", st.HeldBytes)
		}
		// 4 real sources: each answers the probe, then floods 100 first
		// fragments of 1 MiB messages.
		var real []*actortest.Conn
		for s := range 4 {
			c, _ := network.Listen(fmt.Sprintf("10.77.0.%d:777", s+1))
			defer c.Close()
			c.WriteTo(frag(7, wire.ID{9, 9, 9, byte(s)}, wire.ID{8, 8, 8, byte(s)}, total, 0, piece), sc.LocalAddr())
			real = append(real, c)
			go answerProbes(c)
		}
		for range 10 {
			synctest.Wait()
			mock.Add(50 * time.Millisecond)
		}
		for _, c := range real {
			flood(c, 100)
		}
		synctest.Wait()
		peak := heapInUse()
		st = ep.Stats()
		started := uint64(0)
		for _, c := range real {
			ps, _ := ep.PeerStats(c.AddrPort())
			started += ps.Withheld
		}
		t.Logf("heap %d MB before, %d MB at the peak; %d bytes held of %d; %d first fragments withheld",
			before>>20, peak>>20, st.HeldBytes, budget, started)
		if st.HeldBytes > budget || st.HeldBytes < budget-2*total {
			t.Fatalf("partial messages hold %d bytes, want nearly all of the budget %d and no more", st.HeldBytes, budget)
		}
		if peak > before+budget+4<<20 {
			t.Fatalf("heap grew by %d MB, above the budget of %d MB and 4 MB", (peak-before)>>20, budget>>20)
		}
		for range 2 * lifetime / (100 * time.Millisecond) {
			mock.Add(100 * time.Millisecond)
			synctest.Wait()
		}
		var unfinished uint64
		for _, c := range real {
			if ps, ok := ep.PeerStats(c.AddrPort()); ok {
				unfinished += ps.Unfinished
			}
		}
		if st := ep.Stats(); st.HeldBytes != 0 || unfinished < budget/(total+1)-1 {
			t.Fatalf("a Lifetime later: %d bytes still held, %d partial messages dropped", st.HeldBytes, unfinished)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		ep.Close(ctx)
	})
}

// With every read buffer it may lend held by peers that have not got to
// them, the socket reader waits rather than copy, and Close still ends
// every goroutine of the endpoint (guarantee 7) once the peers go on.
func TestFragments_CloseWhileTheReaderWaitsForBuffers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := make(chan struct{})  // in the bubble: waiting on it is durable
		var large, lent atomic.Int32 // datagrams that reached a peer; of them, lent
		defer actor.SetBeforePacket(func(_ netip.AddrPort, in peer.Inbound) {
			if in.Size >= 16<<10 {
				large.Add(1)
				if in.Lent != nil {
					lent.Add(1)
				}
				<-gate
			}
		})()
		mock := clock.NewMock()
		network := actortest.NewNetwork(mock)
		sc, _ := network.Listen("10.0.0.1:4323")
		ep, err := gtudp.New(sc, &gtudp.Config{Clock: mock})
		if err != nil {
			t.Fatal(err)
		}
		// A first fragment of 20 KB, large enough to be lent, from each
		// of more sources than there are buffers: each goes to a peer of
		// its own, which holds it at the gate.
		sources := actor.LentBuffers + 4
		piece := make([]byte, 20_000)
		for s := range sources {
			c, _ := network.Listen(fmt.Sprintf("10.0.1.%d:1", s+1))
			defer c.Close()
			c.WriteTo(frag(7, wire.ID{1, byte(s)}, wire.ID{2, byte(s)}, 100_000, 0, piece), sc.LocalAddr())
		}
		synctest.Wait()
		if n, l := large.Load(), lent.Load(); n != actor.LentBuffers || l != n {
			t.Errorf("%d datagrams of %d sources reached their peers, %d of them lent; want the reader to stop at the %d it may lend",
				n, sources, l, actor.LentBuffers)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		closed := make(chan struct{})
		go func() {
			ep.Close(ctx)
			close(closed)
		}()
		synctest.Wait()
		close(gate)
		<-closed
	})
}
