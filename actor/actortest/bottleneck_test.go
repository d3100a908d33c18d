package actortest_test

import (
	"bytes"
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/gtudp/gtudp/actor/actortest"
)

// arrived is a datagram as a recorder saw it.
type arrived struct {
	at time.Duration // mock time since the start
	p  []byte
}

func (a arrived) String() string { return fmt.Sprintf("%s@%v", label(a.p), a.at) }

// label names a test datagram by its first byte and its size: "a1000".
func label(p []byte) string {
	if len(p) == 0 {
		return "-0"
	}
	return fmt.Sprintf("%c%d", p[0], len(p))
}

// datagram is a payload of size bytes starting with c.
func datagram(c byte, size int) []byte {
	return bytes.Repeat([]byte{c}, size)
}

// recorder reads c in its own goroutine and notes the mock's time of
// each datagram. Inside a bubble a datagram is read before the mock runs
// its next timer, so the times are exact.
type recorder struct {
	c    *actortest.Conn
	mu   sync.Mutex
	got  []arrived
	done chan struct{}
}

func record(c *actortest.Conn, mock *clock.Mock) *recorder {
	r := &recorder{c: c, done: make(chan struct{})}
	start := mock.Now()
	go func() {
		defer close(r.done)
		buf := make([]byte, 65536)
		for {
			k, _, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			r.got = append(r.got, arrived{at: mock.Now().Sub(start), p: append([]byte(nil), buf[:k]...)})
			r.mu.Unlock()
		}
	}()
	return r
}

// stop closes the conn, waits for the reader and returns what it read.
func (r *recorder) stop() []arrived {
	r.c.Close()
	<-r.done
	return r.arrivals()
}

func (r *recorder) arrivals() []arrived {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]arrived(nil), r.got...)
}

// advance moves the mock on by d as the style asks: every goroutine
// settles before and after.
func advance(mock *clock.Mock, d time.Duration) {
	synctest.Wait()
	mock.Add(d)
	synctest.Wait()
}

func sendBytes(t *testing.T, from, to *actortest.Conn, p []byte) {
	t.Helper()
	if _, err := from.WriteTo(p, to.LocalAddr()); err != nil {
		t.Fatal(err)
	}
}

func ms(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }

func TestBottleneck_HandComputedTimes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mock := clock.NewMock()
		n := actortest.NewNetwork(mock)
		a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
		// 1 Mbit/s is a bit a microsecond: 1000 bytes take 8 ms.
		bn := actortest.NewBottleneck(1_000_000, 10_000)
		n.SetLink(a.AddrPort(), b.AddrPort(), actortest.Link{Delay: 10 * time.Millisecond, Bottleneck: bn})
		rec := record(b, mock)

		// Three at once queue behind each other: they leave at 8, 12
		// and 14 ms and arrive 10 ms later.
		sendBytes(t, a, b, datagram('a', 1000))
		sendBytes(t, a, b, datagram('b', 500))
		sendBytes(t, a, b, datagram('c', 250))
		if st := bn.Stats(); st.Queued != 3 || st.QueuedBytes != 1750 || st.PeakQueueBytes != 1750 {
			t.Fatalf("after the burst: %+v, want 3 datagrams, 1750 bytes queued", st)
		}
		advance(mock, 17*time.Millisecond)
		if got := rec.arrivals(); len(got) != 0 {
			t.Fatalf("by 17 ms: %v, want nothing yet", got)
		}
		if st := bn.Stats(); st.Delivered != 3 || st.DeliveredBytes != 1750 || st.Queued != 0 {
			t.Fatalf("by 17 ms all three left the bottleneck, got %+v", st)
		}
		// The link is idle from 14 ms; one sent at 30 ms leaves at 31.
		advance(mock, 13*time.Millisecond)
		sendBytes(t, a, b, datagram('d', 125))
		advance(mock, 100*time.Millisecond)

		got := fmt.Sprint(rec.stop())
		want := fmt.Sprint([]arrived{
			{ms(18), datagram('a', 1000)},
			{ms(22), datagram('b', 500)},
			{ms(24), datagram('c', 250)},
			{ms(41), datagram('d', 125)},
		})
		if got != want {
			t.Fatalf("arrivals %s, want %s", got, want)
		}
	})
}

// A rate that does not divide the datagrams' bits: each departure is the
// exact time rounded up, and the roundings do not add up.
func TestBottleneck_FractionalTimesDoNotDrift(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mock := clock.NewMock()
		n := actortest.NewNetwork(mock)
		a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
		bn := actortest.NewBottleneck(3_000_000, 100) // 8 bits take 8/3 us
		n.SetLink(a.AddrPort(), b.AddrPort(), actortest.Link{Bottleneck: bn})
		rec := record(b, mock)
		for _, c := range []byte("xyz") {
			sendBytes(t, a, b, datagram(c, 1))
		}
		advance(mock, time.Millisecond)
		got := fmt.Sprint(rec.stop())
		want := fmt.Sprint([]arrived{{2667, []byte("x")}, {5334, []byte("y")}, {8000, []byte("z")}})
		if got != want {
			t.Fatalf("arrivals %s, want %s", got, want)
		}
	})
}

func TestBottleneck_DropTailAtTheByteLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mock := clock.NewMock()
		n := actortest.NewNetwork(mock)
		a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
		bn := actortest.NewBottleneck(1_000_000, 3000)
		n.SetLink(a.AddrPort(), b.AddrPort(), actortest.Link{Bottleneck: bn})
		rec := record(b, mock)

		sendBytes(t, a, b, datagram('a', 1000))
		sendBytes(t, a, b, datagram('b', 1000))
		sendBytes(t, a, b, datagram('c', 1000)) // exactly full: kept
		sendBytes(t, a, b, datagram('x', 1))    // one byte over: dropped
		advance(mock, 8*time.Millisecond)       // a has left, so 1000 bytes are free
		sendBytes(t, a, b, datagram('y', 1001)) // one byte over: dropped
		sendBytes(t, a, b, datagram('d', 1000))
		sendBytes(t, a, b, datagram('z', 3001)) // longer than the queue: dropped even when it is empty
		advance(mock, time.Second)
		sendBytes(t, a, b, datagram('w', 3001))
		sendBytes(t, a, b, datagram('e', 3000))
		advance(mock, time.Second)

		var got []string
		for _, d := range rec.stop() {
			got = append(got, label(d.p))
		}
		if fmt.Sprint(got) != "[a1000 b1000 c1000 d1000 e3000]" {
			t.Fatalf("delivered %v, want a b c d e", got)
		}
		want := actortest.BottleneckStats{
			Entered: 9, EnteredBytes: 3*1000 + 1 + 1001 + 1000 + 3001 + 3001 + 3000,
			Dropped: 4, DroppedBytes: 1 + 1001 + 3001 + 3001,
			Delivered: 5, DeliveredBytes: 4*1000 + 3000,
			PeakQueueBytes: 3000,
		}
		if st := bn.Stats(); st != want {
			t.Fatalf("stats %+v, want %+v", st, want)
		}
		if st := n.Stats(); st.Dropped != 4 || st.Delivered != 5 {
			t.Fatalf("network stats %+v, want the 4 drops counted and 5 delivered", st)
		}
	})
}

// Two flows through one bottleneck take turns: each gets half its rate,
// where each alone would have had all of it.
func TestBottleneck_SharedByTwoLinks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mock := clock.NewMock()
		n := actortest.NewNetwork(mock)
		a1, b1 := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.1.1:1")
		a2, b2 := listen(t, n, "10.0.0.2:2"), listen(t, n, "10.0.1.2:2")
		bn := actortest.NewBottleneck(1_000_000, 100_000)
		n.SetLink(a1.AddrPort(), b1.AddrPort(), actortest.Link{Delay: 5 * time.Millisecond, Bottleneck: bn})
		n.SetLink(a2.AddrPort(), b2.AddrPort(), actortest.Link{Delay: 5 * time.Millisecond, Bottleneck: bn})
		r1, r2 := record(b1, mock), record(b2, mock)
		for range 4 {
			sendBytes(t, a1, b1, datagram('a', 1000))
			sendBytes(t, a2, b2, datagram('b', 1000))
		}
		advance(mock, time.Second)
		times := func(as []arrived) []time.Duration {
			var ts []time.Duration
			for _, a := range as {
				ts = append(ts, a.at)
			}
			return ts
		}
		got1, got2 := fmt.Sprint(times(r1.stop())), fmt.Sprint(times(r2.stop()))
		want1 := fmt.Sprint([]time.Duration{ms(13), ms(29), ms(45), ms(61)})
		want2 := fmt.Sprint([]time.Duration{ms(21), ms(37), ms(53), ms(69)})
		if got1 != want1 || got2 != want2 {
			t.Fatalf("arrivals %s and %s, want %s and %s: each flow every 16 ms", got1, got2, want1, want2)
		}
	})
}

// An empty datagram takes no time to cross: it leaves, and arrives, with
// the one ahead of it, and after it.
func TestBottleneck_EmptyDatagramsTakeNoTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mock := clock.NewMock()
		n := actortest.NewNetwork(mock)
		a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
		bn := actortest.NewBottleneck(8_000_000, 1000) // a byte a microsecond
		n.SetLink(a.AddrPort(), b.AddrPort(), actortest.Link{Bottleneck: bn})
		rec := record(b, mock)
		sendBytes(t, a, b, nil) // idle: delivered at once
		synctest.Wait()
		if got := fmt.Sprint(rec.arrivals()); got != "[-0@0s]" {
			t.Fatalf("an empty datagram on an idle bottleneck: %s, want it at once", got)
		}
		for _, c := range []byte("ab") {
			sendBytes(t, a, b, []byte{c})
			sendBytes(t, a, b, nil)
		}
		advance(mock, time.Millisecond)
		if got := fmt.Sprint(rec.stop()); got != "[-0@0s a1@1µs -0@1µs b1@2µs -0@2µs]" {
			t.Fatalf("arrivals %s", got)
		}
	})
}

// Datagrams that reach one receiver at the same instant, over two links,
// come out in the order they crossed the bottleneck, whatever order the
// clock runs its timers in.
func TestBottleneck_TiesKeepTheirOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mock := clock.NewMock()
		n := actortest.NewNetwork(mock)
		a, c, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.3:3"), listen(t, n, "10.0.0.2:2")
		bn := actortest.NewBottleneck(8_000_000, 100_000) // a byte a microsecond
		n.SetLink(a.AddrPort(), b.AddrPort(), actortest.Link{Delay: 10 * time.Microsecond, Bottleneck: bn})
		n.SetLink(c.AddrPort(), b.AddrPort(), actortest.Link{Bottleneck: bn})
		rec := record(b, mock)
		// A i leaves at 4i+2 us and arrives at 4i+12, with B i+2, which
		// left at 4i+12: A i is first.
		type want struct {
			at  time.Duration
			seq int
			s   string
		}
		var ws []want
		for i := range 50 {
			sendBytes(t, a, b, []byte{'A', byte(i)})
			sendBytes(t, c, b, []byte{'B', byte(i)})
			us := time.Microsecond
			ws = append(ws, want{time.Duration(4*i+12) * us, 2 * i, fmt.Sprintf("A%d", i)}, want{time.Duration(4*i+4) * us, 2*i + 1, fmt.Sprintf("B%d", i)})
		}
		slices.SortFunc(ws, func(x, y want) int { return cmp.Or(cmp.Compare(x.at, y.at), cmp.Compare(x.seq, y.seq)) })
		advance(mock, time.Millisecond)
		var got, wanted []string
		for _, d := range rec.stop() {
			got = append(got, fmt.Sprintf("%c%d@%v", d.p[0], d.p[1], d.at))
		}
		for _, w := range ws {
			wanted = append(wanted, fmt.Sprintf("%s@%v", w.s, w.at))
		}
		if strings.Join(got, " ") != strings.Join(wanted, " ") {
			t.Fatalf("arrivals\n%v\nwant\n%v", got, wanted)
		}
	})
}

// Loss and partitions act before the bottleneck, so the datagrams they
// drop take no room in it; duplicates are made before it, so each copy
// does. Jitter and Reorder delay a datagram after it.
func TestBottleneck_LinkDecisionsAroundIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mock := clock.NewMock()
		n := actortest.NewNetwork(mock)
		a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
		bn := actortest.NewBottleneck(1_000_000, 10_000)
		rec := record(b, mock)

		n.SetLink(a.AddrPort(), b.AddrPort(), actortest.Link{Loss: 1, Bottleneck: bn})
		sendBytes(t, a, b, datagram('x', 1000))
		n.SetLink(a.AddrPort(), b.AddrPort(), actortest.Link{Bottleneck: bn})
		n.Partition(a.AddrPort(), b.AddrPort())
		sendBytes(t, a, b, datagram('y', 1000))
		n.HealAll()
		if st := bn.Stats(); st.Entered != 0 {
			t.Fatalf("lost and partitioned datagrams entered the bottleneck: %+v", st)
		}

		n.SetLink(a.AddrPort(), b.AddrPort(), actortest.Link{
			Duplicate: 1, Reorder: 1, Delay: 10 * time.Millisecond, ReorderDelay: 5 * time.Millisecond, Bottleneck: bn,
		})
		sendBytes(t, a, b, datagram('d', 1000))
		if st := bn.Stats(); st.Entered != 2 || st.QueuedBytes != 2000 {
			t.Fatalf("a duplicated datagram: %+v, want both copies queued", st)
		}
		advance(mock, time.Second)
		got := fmt.Sprint(rec.stop())
		want := fmt.Sprint([]arrived{{ms(8 + 15), datagram('d', 1000)}, {ms(16 + 15), datagram('d', 1000)}})
		if got != want {
			t.Fatalf("arrivals %s, want %s: leaving at 8 and 16 ms, then Delay and ReorderDelay", got, want)
		}
	})
}

// A Fate takes the place of the Link's decisions, its Delay included, but
// not of its Bottleneck.
func TestBottleneck_Fate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mock := clock.NewMock()
		n := actortest.NewNetwork(mock)
		a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
		bn := actortest.NewBottleneck(1_000_000, 10_000)
		n.SetLink(a.AddrPort(), b.AddrPort(), actortest.Link{Loss: 1, Delay: time.Hour, Bottleneck: bn})
		n.SetFate(func(from, to netip.AddrPort, p []byte) actortest.Fate {
			return actortest.Fate{Drop: p[0] == 'x', Copies: 1, Delay: 3 * time.Millisecond}
		})
		rec := record(b, mock)
		sendBytes(t, a, b, datagram('x', 1000))
		sendBytes(t, a, b, datagram('k', 1000))
		if st := bn.Stats(); st.Entered != 2 || st.Dropped != 0 {
			t.Fatalf("stats %+v, want the kept datagram's two copies entered, the fated drop not", st)
		}
		advance(mock, time.Second)
		got := fmt.Sprint(rec.stop())
		want := fmt.Sprint([]arrived{{ms(8 + 3), datagram('k', 1000)}, {ms(16 + 3), datagram('k', 1000)}})
		if got != want {
			t.Fatalf("arrivals %s, want %s", got, want)
		}
	})
}

func TestBottleneck_Misuse(t *testing.T) {
	panics := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		f()
	}
	panics("NewBottleneck(0, 1)", func() { actortest.NewBottleneck(0, 1) })
	panics("NewBottleneck(1, 0)", func() { actortest.NewBottleneck(1, 0) })

	bn := actortest.NewBottleneck(1_000_000, 1000)
	var conns [2]*actortest.Conn
	for i := range conns {
		n := actortest.NewNetwork(clock.NewMock())
		n.SetDefaultLink(actortest.Link{Bottleneck: bn})
		conns[i] = listen(t, n, "10.0.0.1:1")
	}
	sendBytes(t, conns[0], conns[0], []byte("x"))
	panics("a Bottleneck in a second Network", func() { conns[1].WriteTo([]byte("x"), conns[1].LocalAddr()) })
}

// A 5 Mbit/s path with a 64 KB queue and 20 ms of propagation delay takes
// a burst of 100 datagrams of 1200 bytes: it queues what fits in 64 KB and
// drops the rest, then lets one out every 1.92 ms.
func ExampleBottleneck() {
	mock := clock.NewMock()
	network := actortest.NewNetwork(mock)
	a, _ := network.Listen("10.0.0.1:1000")
	b, _ := network.Listen("10.0.0.2:2000")
	defer a.Close()
	defer b.Close()
	path := actortest.NewBottleneck(5_000_000, 64<<10)
	network.SetLink(a.AddrPort(), b.AddrPort(), actortest.Link{Delay: 20 * time.Millisecond, Bottleneck: path})

	for range 100 {
		a.WriteTo(make([]byte, 1200), b.LocalAddr())
	}
	st := path.Stats()
	fmt.Printf("at 0 ms: %d queued (%d bytes), %d dropped\n", st.Queued, st.QueuedBytes, st.Dropped)
	mock.Add(50 * time.Millisecond)
	st = path.Stats()
	fmt.Printf("at 50 ms: %d left the bottleneck, %d queued\n", st.Delivered, st.Queued)
	mock.Add(time.Second)
	buf := make([]byte, 1500)
	for range st.Delivered + st.Queued {
		b.ReadFrom(buf)
	}
	fmt.Printf("received %d\n", st.Delivered+st.Queued)
	// Output:
	// at 0 ms: 54 queued (64800 bytes), 46 dropped
	// at 50 ms: 26 left the bottleneck, 28 queued
	// received 54
}
