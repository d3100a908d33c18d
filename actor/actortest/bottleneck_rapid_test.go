package actortest_test

import (
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/gtudp/gtudp/actor/actortest"
	"pgregory.net/rapid"
)

// TestBottleneck_Property sends datagrams of random sizes at random times
// over two flows sharing one bottleneck, watches when each arrives, and
// checks the bottleneck against its definition.
func TestBottleneck_Property(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) { rapid.SyncTest(t, checkBottleneck) })
}

type sentDatagram struct {
	flow  int
	size  int
	sent  time.Duration             // since the start
	stats actortest.BottleneckStats // just after it was sent
}

func checkBottleneck(t *rapid.T) {
	// At the sampled rates a byte takes a whole number of nanoseconds,
	// so gaps of whole bytes send datagrams exactly as others leave.
	rate := rapid.OneOf(rapid.Int64Range(8_000, 100_000_000), rapid.SampledFrom([]int64{8_000, 1_000_000, 8_000_000, 100_000_000})).Draw(t, "rate")
	limit := rapid.IntRange(1, 16_000).Draw(t, "queue")
	var delays [2]time.Duration
	for f := range delays {
		delays[f] = time.Duration(rapid.Int64Range(0, int64(50*time.Millisecond)).Draw(t, fmt.Sprintf("delay%d", f)))
	}
	// Gaps are drawn in units of a 1500-byte datagram's time at the
	// rate, so that at any rate the queue both fills and drains.
	slot := 1500 * 8 * int64(time.Second) / rate
	byteTime := 8 * int64(time.Second) / rate

	mock := clock.NewMock()
	n := actortest.NewNetwork(mock)
	bn := actortest.NewBottleneck(rate, limit)
	var src, dst [2]*actortest.Conn
	var recs [2]*recorder
	for f := range 2 {
		var err error
		if src[f], err = n.Listen(fmt.Sprintf("10.0.0.%d:1", f+1)); err != nil {
			t.Fatal(err)
		}
		if dst[f], err = n.Listen(fmt.Sprintf("10.0.1.%d:1", f+1)); err != nil {
			t.Fatal(err)
		}
		n.SetLink(src[f].AddrPort(), dst[f].AddrPort(), actortest.Link{Delay: delays[f], Bottleneck: bn})
		recs[f] = record(dst[f], mock)
	}

	// The first byte of each datagram is its index.
	ds := make([]sentDatagram, rapid.IntRange(1, 100).Draw(t, "datagrams"))
	var now time.Duration
	var total int64
	for i := range ds {
		if gap := time.Duration(rapid.OneOf(
			rapid.Just(int64(0)),
			rapid.Int64Range(1, 2*slot),
			rapid.Map(rapid.Int64Range(1, 3000), func(k int64) int64 { return k * byteTime }),
		).Draw(t, "gap")); gap > 0 {
			advance(mock, gap)
			now += gap
		}
		d := sentDatagram{flow: rapid.IntRange(0, 1).Draw(t, "flow"), size: rapid.IntRange(1, 1500).Draw(t, "size"), sent: now}
		p := make([]byte, d.size)
		p[0] = byte(i)
		if _, err := src[d.flow].WriteTo(p, dst[d.flow].LocalAddr()); err != nil {
			t.Fatal(err)
		}
		total += int64(d.size)
		d.stats = bn.Stats()
		st := d.stats
		if st.Entered != uint64(i+1) || st.Entered != st.Dropped+st.Delivered+st.Queued ||
			st.EnteredBytes != st.DroppedBytes+st.DeliveredBytes+st.QueuedBytes {
			t.Fatalf("after datagram %d: %+v does not add up", i, st)
		}
		if st.QueuedBytes > uint64(limit) || st.PeakQueueBytes > uint64(limit) {
			t.Fatalf("after datagram %d: %+v is over the limit %d", i, st, limit)
		}
		ds[i] = d
	}
	advance(mock, time.Duration(total*8*int64(time.Second)/rate)+50*time.Millisecond+time.Millisecond)
	final := bn.Stats()

	// Every datagram arrives at most once, on its own flow, in the order
	// sent; it left the bottleneck its flow's Delay before it arrived.
	left := make([]time.Duration, len(ds))
	arrived := make([]bool, len(ds))
	var delivered, deliveredBytes uint64
	for f := range 2 {
		last := -1
		for _, a := range recs[f].stop() {
			i := int(a.p[0])
			switch {
			case i >= len(ds) || ds[i].flow != f || len(a.p) != ds[i].size:
				t.Fatalf("flow %d got a datagram %d of %d bytes that was not sent on it", f, i, len(a.p))
			case arrived[i]:
				t.Fatalf("datagram %d arrived twice", i)
			case i < last:
				t.Fatalf("flow %d: datagram %d arrived after %d", f, i, last)
			}
			last = i
			arrived[i] = true
			left[i] = a.at - delays[f]
			delivered++
			deliveredBytes += uint64(len(a.p))
		}
		src[f].Close()
	}
	// What did not arrive was counted dropped, and nothing is left queued.
	if final.Delivered != delivered || final.DeliveredBytes != deliveredBytes ||
		final.Dropped != uint64(len(ds))-delivered || final.DroppedBytes != uint64(total)-deliveredBytes ||
		final.Queued != 0 || final.QueuedBytes != 0 {
		t.Fatalf("final stats %+v; %d datagrams, %d bytes arrived of %d, %d", final, delivered, deliveredBytes, len(ds), total)
	}

	// The queue: what was ahead of each datagram when it was sent is what
	// had entered and not yet left. A datagram is dropped exactly when
	// it would take the queue over its limit; Stats saw the same queue.
	var peak uint64
	for i, d := range ds {
		var ahead, aheadN, gone uint64
		for j := range i {
			if !arrived[j] {
				continue
			}
			if left[j] > d.sent {
				ahead += uint64(ds[j].size)
				aheadN++
			} else {
				gone++
			}
		}
		size := uint64(d.size)
		wantQueued, wantN := ahead, aheadN
		if arrived[i] {
			if ahead+size > uint64(limit) {
				t.Fatalf("datagram %d (%d bytes) was queued behind %d bytes, over the limit %d", i, size, ahead, limit)
			}
			if left[i] <= d.sent {
				t.Fatalf("datagram %d of %d bytes left at %v, when it was sent", i, size, left[i])
			}
			wantQueued, wantN = ahead+size, aheadN+1
			peak = max(peak, wantQueued)
		} else if ahead+size <= uint64(limit) {
			t.Fatalf("datagram %d (%d bytes) was dropped with %d bytes queued, limit %d", i, size, ahead, limit)
		}
		if d.stats.QueuedBytes != wantQueued || d.stats.Queued != wantN || d.stats.Delivered != gone {
			t.Fatalf("after datagram %d: stats %+v, want %d datagrams (%d bytes) queued, %d left", i, d.stats, wantN, wantQueued, gone)
		}
	}
	if final.PeakQueueBytes != peak {
		t.Fatalf("PeakQueueBytes %d, want %d", final.PeakQueueBytes, peak)
	}

	// FIFO, the rate and the exact times. A datagram leaves at
	// max(sent, busy-until) + size*8/rate, computed here in exact
	// fractions of a nanosecond and rounded up. The bits that leave in
	// any span of time are at most what the rate allows, besides the
	// first datagram (and a nanosecond of rounding); since the start,
	// they are at most what the rate allows.
	var kept []int
	for i := range ds {
		if arrived[i] {
			kept = append(kept, i)
		}
	}
	busy := new(big.Rat)
	for k, i := range kept {
		start := new(big.Rat).SetInt64(int64(ds[i].sent))
		if start.Cmp(busy) < 0 {
			start.Set(busy)
		}
		busy.Add(start, big.NewRat(int64(ds[i].size)*8*int64(time.Second), rate))
		want := new(big.Int).Quo(busy.Num(), busy.Denom()) // floor: busy is positive
		if !busy.IsInt() {
			want.Add(want, big.NewInt(1))
		}
		if int64(left[i]) != want.Int64() {
			t.Fatalf("datagram %d of %d bytes, sent at %v, left at %v, want %vns", i, ds[i].size, ds[i].sent, left[i], want)
		}
		var bits int64
		for l := k; l >= 0; l-- {
			j := kept[l]
			if left[j] > left[i] {
				t.Fatalf("datagram %d left at %v, after %d that entered later, at %v", j, left[j], i, left[i])
			}
			if l < k && bits*int64(time.Second) > rate*int64(left[i]-left[j]+1) {
				t.Fatalf("%d bits left in (%v, %v], over the rate %d", bits, left[j], left[i], rate)
			}
			bits += int64(ds[j].size) * 8
		}
		if bits*int64(time.Second) > rate*int64(left[i]-ds[kept[0]].sent) {
			t.Fatalf("%d bits left between %v and %v, over the rate %d", bits, ds[kept[0]].sent, left[i], rate)
		}
	}
}
