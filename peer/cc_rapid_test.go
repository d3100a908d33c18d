package peer_test

import (
	"container/heap"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gtudp/gtudp/peer"
	"github.com/gtudp/gtudp/wire"
	"pgregory.net/rapid"
)

// A sender State and a receiver State joined by a simulated bottleneck:
// a link of a rate with a drop-tail queue and a delay each way, driven by
// events in time order. No goroutine, no clock: only the states' own
// deadlines and the link's.

type simPacket struct {
	at   time.Time
	seq  int
	to   *peer.State
	data []byte
}

type simQueue []simPacket

func (q simQueue) Len() int { return len(q) }
func (q simQueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q simQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *simQueue) Push(x any)   { *q = append(*q, x.(simPacket)) }
func (q *simQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// simLink is one direction: rate in bit/s, a queue in bytes, a delay.
type simLink struct {
	rate  float64
	queue int
	delay time.Duration
	busy  time.Time // when the last admitted datagram finishes serialising
	sent  []time.Time
	sizes []int
	drops int
}

// admit returns when b arrives, or false if the queue drops it. Each
// datagram is charged 42 bytes of Ethernet, IP and UDP headers.
func (l *simLink) admit(now time.Time, n int) (time.Time, bool) {
	// Bytes still queued: those whose serialisation ends after now.
	queued := 0
	for i := len(l.sent) - 1; i >= 0 && l.sent[i].After(now); i-- {
		queued += l.sizes[i]
	}
	size := n + 42
	if queued+size > l.queue {
		l.drops++
		return time.Time{}, false
	}
	start := l.busy
	if start.Before(now) {
		start = now
	}
	l.busy = start.Add(time.Duration(float64(size*8) / l.rate * float64(time.Second)))
	l.sent = append(l.sent, l.busy)
	l.sizes = append(l.sizes, size)
	if len(l.sent) > 4096 {
		l.sent, l.sizes = l.sent[2048:], l.sizes[2048:]
	}
	return l.busy.Add(l.delay), true
}

// The controller never lets bytes in flight grow past its window (beyond
// the one message always allowed), and a flow through a bottleneck of any
// rate, queue and delay converges: in the second half of the run it
// delivers at least 80% of what the link can carry, with few drops.
func TestCongestion_WindowAndConvergence(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		rate := float64(rapid.IntRange(1, 20).Draw(rt, "mbit")) * 1e6
		delay := time.Duration(rapid.IntRange(50, 20000).Draw(rt, "delay_us")) * time.Microsecond
		queue := rapid.IntRange(16, 256).Draw(rt, "queue_kb") << 10
		size := rapid.SampledFrom([]int{64, 512, 1200}).Draw(rt, "size")
		// Long enough for slow start and a few sawtooth periods.
		run := 2*time.Second + 40*delay

		p := testParams()
		p.Window, p.RecvWindow, p.HoldLimit, p.DedupeLimit = 4096, 1<<16, 4096, 1<<20
		p.InitialRTO, p.MaxRTO, p.MaxAttempts = 250*time.Millisecond, 2*time.Second, 100
		now := epoch
		snd := peer.NewState(p, remote, now, [5]uint32{1, 2, 3, 4, 5}, true)
		rcv := peer.NewState(p, remote, now, [5]uint32{6, 7, 8, 9, 10}, true)
		fwd := &simLink{rate: rate, queue: queue, delay: delay}
		rev := &simLink{rate: rate, queue: queue, delay: delay}
		var q simQueue
		seq := 0
		f := wire.DefaultFormat()
		flush := func(from *peer.State, l *simLink, to *peer.State) {
			for _, b := range from.TakeDatagrams(nil) {
				if at, ok := l.admit(now, len(b)); ok {
					seq++
					heap.Push(&q, simPacket{at: at, seq: seq, to: to, data: append([]byte(nil), b...)})
				}
			}
			from.TakeOutcomes(nil)
		}
		payload := make([]byte, size)
		fill := func() {
			for snd.Room() > 0 {
				if err := snd.Send(now, peer.Outgoing{ID: uuid.UUID{1}, Data: payload}); err != nil {
					rt.Fatal(err)
				}
			}
		}
		half := epoch.Add(run / 2)
		measured, inFlight := 0, 0
		for now.Before(epoch.Add(run)) {
			fill()
			flush(snd, fwd, rcv)
			for {
				if _, ok := rcv.Next(); !ok {
					break
				}
				rcv.Delivered(now)
				if !now.Before(half) {
					measured += size
				}
			}
			flush(rcv, rev, snd)
			// Bytes in flight may stay above a window just reduced, but
			// never grow past it (one message always may go).
			st := snd.Stats()
			if st.InFlightBytes > inFlight && st.InFlightBytes > max(st.Cwnd, size+33) {
				rt.Fatalf("at %v: %d bytes in flight, up from %d, window %d", now.Sub(epoch), st.InFlightBytes, inFlight, st.Cwnd)
			}
			inFlight = st.InFlightBytes
			// The next event: a packet arriving, or a state's deadline.
			next := epoch.Add(run)
			if len(q) > 0 && q[0].at.Before(next) {
				next = q[0].at
			}
			for _, s := range []*peer.State{snd, rcv} {
				if d := s.NextDeadline(); !d.IsZero() && d.Before(next) {
					next = d
				}
			}
			if next.After(now) {
				now = next
			}
			for len(q) > 0 && !q[0].at.After(now) {
				pkt := heap.Pop(&q).(simPacket)
				dp, err := f.Decode(pkt.data)
				if err != nil {
					rt.Fatal(err)
				}
				pkt.to.Receive(now, dp, len(pkt.data))
			}
			snd.Tick(now)
			rcv.Tick(now)
		}
		// The link carries DATA (size + 5 + 42 bytes) and the ACKs (5 + 42)
		// of each message: that is its message rate.
		capacity := rate / 8 / float64(size+5+42+5+42) * (run / 2).Seconds() * float64(size)
		st := snd.Stats()
		dropRate := float64(fwd.drops) / float64(st.PacketsOut)
		if float64(measured) < 0.8*capacity || dropRate > 0.05 {
			rt.Fatalf("delivered %.0f%% of the link's capacity for %d-byte messages, %.1f%% dropped (%d drops); %+v",
				100*float64(measured)/capacity, size, 100*dropRate, fwd.drops, st)
		}
	})
}
