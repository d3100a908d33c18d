package actortest

import (
	"container/heap"
	"net/netip"
	"sync"
	"time"
)

// Bottleneck is a link of limited rate with a drop-tail queue in front of
// it, as `tc qdisc ... tbf rate R limit Q` makes of a real path. Put it in
// the Bottleneck field of the Links whose datagrams cross it; one
// Bottleneck in several Links is one queue shared by their flows.
//
// A datagram of size bytes that enters at now leaves at
//
//	max(now, busy-until) + size*8/rate
//
// where busy-until is when the datagram ahead of it leaves, so datagrams
// leave in the order they entered. Departure times are kept exact and
// rounded up to the nanosecond only when a datagram is scheduled, so
// rounding never adds up: the bytes that have left by any time t never
// exceed rate*(t-start)/8 for a queue busy since start. A datagram is
// queued from when it enters until it leaves, its own bytes included;
// one that would make the queue hold more than its limit is dropped.
// Sizes are UDP payload bytes plus the Overhead set on it (none by
// default): SetOverhead(42) charges each datagram its Ethernet, IP and UDP
// headers, as tbf on a veth does.
//
// A Bottleneck has no goroutine. Its time is the clock of the Network
// whose Links use it (so on clock.NewMock, inside a testing/synctest
// bubble, it is deterministic), and a Bottleneck is used by the Links of
// one Network only: a datagram written on a second Network through it
// panics. Its methods are safe for concurrent use; datagrams
// written at once by several goroutines enter in the order they take its
// lock.
type Bottleneck struct {
	rate     uint64 // bits per second, > 0
	limit    int    // bytes
	overhead uint64 // bytes charged per datagram beyond its payload

	mu  sync.Mutex
	net *Network // the network whose links use b, set on first use

	// The last admitted datagram leaves busy + frac/rate nanoseconds
	// after busy; frac < rate. Keeping the fraction, rather than
	// rounding each datagram's time, is what keeps the rate exact.
	busy time.Time
	frac uint64

	waiting  []departure  // datagrams admitted and not yet left, in order
	arrivals arrivalQueue // datagrams left or leaving, to be delivered
	seq      uint64       // entry order, to break ties between arrivals
	stats    BottleneckStats
}

// BottleneckStats count what a Bottleneck did. At every moment Entered is
// Dropped + Delivered + Queued, and likewise for the bytes.
type BottleneckStats struct {
	Entered, EnteredBytes uint64 // offered to it, after the Links' loss and duplication
	Dropped, DroppedBytes uint64 // refused because the queue would have exceeded its limit
	// Delivered, DeliveredBytes count the datagrams that have left the
	// bottleneck by the clock's now; the Link's Delay is still ahead of
	// them.
	Delivered, DeliveredBytes uint64
	Queued, QueuedBytes       uint64 // admitted, not yet left
	PeakQueueBytes            uint64 // the most bytes ever queued at once
}

// departure is one or more datagrams that leave at the same time.
type departure struct {
	at    time.Time
	n     uint64 // datagrams
	bytes uint64
}

// SetOverhead charges every datagram n bytes beyond its payload, in the
// rate and the queue: 42 for Ethernet, IPv4 and UDP headers, as tbf sees
// them. Call it before the bottleneck carries anything.
func (b *Bottleneck) SetOverhead(n int) {
	b.mu.Lock()
	b.overhead = uint64(n)
	b.mu.Unlock()
}

// NewBottleneck returns a bottleneck of rate bits per second with a queue
// of queue bytes. It panics unless both are positive.
func NewBottleneck(rate int64, queue int) *Bottleneck {
	if rate <= 0 || queue <= 0 {
		panic("actortest: NewBottleneck needs a positive rate and queue")
	}
	return &Bottleneck{rate: uint64(rate), limit: queue}
}

// Stats returns b's counters as of its network's clock now. It does not
// allocate.
func (b *Bottleneck) Stats() BottleneckStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.net != nil {
		b.settle(b.net.clk.Now())
	}
	return b.stats
}

// enter queues p, sent from -> to on network n, to reach to delay after it
// leaves b. It reports false if the queue is full and p is dropped.
func (b *Bottleneck) enter(n *Network, from, to netip.AddrPort, p []byte, delay time.Duration) bool {
	b.mu.Lock()
	if b.net == nil {
		b.net = n
	} else if b.net != n {
		b.mu.Unlock()
		panic("actortest: a Bottleneck is used by two Networks")
	}
	now := n.clk.Now()
	b.settle(now)
	size := uint64(len(p)) + b.overhead
	b.stats.Entered++
	b.stats.EnteredBytes += size
	if b.stats.QueuedBytes+size > uint64(b.limit) {
		b.stats.Dropped++
		b.stats.DroppedBytes += size
		b.mu.Unlock()
		return false
	}
	left := b.schedule(now, size)
	if k := len(b.waiting) - 1; k >= 0 && b.waiting[k].at.Equal(left) {
		// An empty datagram leaves with the one ahead of it.
		b.waiting[k].n++
		b.waiting[k].bytes += size
	} else {
		b.waiting = append(b.waiting, departure{at: left, n: 1, bytes: size})
	}
	b.stats.Queued++
	b.stats.QueuedBytes += size
	b.stats.PeakQueueBytes = max(b.stats.PeakQueueBytes, b.stats.QueuedBytes)
	at := left.Add(delay)
	b.seq++
	heap.Push(&b.arrivals, arrival{at: at, seq: b.seq, from: from, to: to, p: p})
	b.mu.Unlock()

	if wait := at.Sub(now); wait > 0 {
		n.clk.AfterFunc(wait, func() { b.arrive(at) })
	} else {
		b.arrive(at)
	}
	return true
}

// schedule returns when a datagram of size bytes entering at now leaves,
// and makes that the time b is busy until. b.mu is held.
func (b *Bottleneck) schedule(now time.Time, size uint64) time.Time {
	if !now.Before(b.until()) {
		b.busy, b.frac = now, 0 // idle: it starts at once
	}
	// frac < rate and size <= 65535, so this cannot overflow for any
	// int64 rate.
	ns := b.frac + size*8*uint64(time.Second)
	b.busy = b.busy.Add(time.Duration(ns / b.rate))
	b.frac = ns % b.rate
	return b.until()
}

// until is when the last admitted datagram leaves, rounded up to the
// nanosecond. b.mu is held.
func (b *Bottleneck) until() time.Time {
	if b.frac > 0 {
		return b.busy.Add(1)
	}
	return b.busy
}

// settle moves the datagrams that have left by now out of the queue.
// b.mu is held.
func (b *Bottleneck) settle(now time.Time) {
	for len(b.waiting) > 0 && !b.waiting[0].at.After(now) {
		d := b.waiting[0]
		b.waiting = b.waiting[1:]
		b.stats.Queued -= d.n
		b.stats.QueuedBytes -= d.bytes
		b.stats.Delivered += d.n
		b.stats.DeliveredBytes += d.bytes
	}
	if len(b.waiting) == 0 {
		b.waiting = nil // let the backing array go
	}
}

// arrive delivers every datagram due by the later of at and now, earliest
// first and in entry order among equals. Each delivery's timer calls it;
// it delivers the others due at once too so that ties keep the order
// they had in the bottleneck whatever order the clock runs its timers in
// (the mock's is not stable).
func (b *Bottleneck) arrive(at time.Time) {
	b.mu.Lock()
	n := b.net
	if now := n.clk.Now(); now.After(at) {
		at = now
	}
	var due []arrival
	for len(b.arrivals) > 0 && !b.arrivals[0].at.After(at) {
		due = append(due, heap.Pop(&b.arrivals).(arrival))
	}
	b.mu.Unlock()
	for _, a := range due {
		n.deliver(a.from, a.to, a.p)
	}
}

// arrival is a datagram on its way from a bottleneck to its receiver.
type arrival struct {
	at       time.Time
	seq      uint64
	from, to netip.AddrPort
	p        []byte
}

// arrivalQueue is a min-heap of arrivals by time, then entry order.
type arrivalQueue []arrival

func (q arrivalQueue) Len() int { return len(q) }
func (q arrivalQueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q arrivalQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *arrivalQueue) Push(x any)   { *q = append(*q, x.(arrival)) }
func (q *arrivalQueue) Pop() any {
	old := *q
	a := old[len(old)-1]
	old[len(old)-1] = arrival{}
	*q = old[:len(old)-1]
	return a
}
