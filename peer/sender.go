package peer

import (
	"github.com/google/uuid"
	"github.com/gtudp/gtudp/wire"
)

// outbound is one of our messages, from Send to its outcome.
type outbound struct {
	msg      Outgoing
	id       wire.ID
	size     int // bytes on a link: the DATA datagram and its IP and UDP headers
	where    where
	attempts int    // transmissions made
	first    int64  // first transmission
	sentAt   int64  // latest transmission
	seq      uint64 // send order of the latest transmission
	expire   int64  // end of the lifetime, counted from Send
	index    int    // in sender.expiry
	ext      bool   // sent in EXT form (decided at its first transmission)
	writeErr error  // the last write of its DATA that failed, if any
}

func (o *outbound) deadline() int64 { return o.expire }
func (o *outbound) setIndex(i int)  { o.index = i }

// where is where a message is between Send and its outcome.
type where uint8

const (
	done    where = iota // finished, or free: stale queue entries skip it
	queued               // waiting for its first transmission
	flying               // sent, awaiting RECV, counted in flight
	lost                 // declared lost, waiting to be sent again
	blocked              // held back by the amplification limit
)

// sentRef is one transmission, in send order.
type sentRef struct {
	o   *outbound
	seq uint64
}

// live reports whether r is still o's latest transmission and in flight.
func (r sentRef) live() bool { return r.o.seq == r.seq && r.o.where == flying }

// sender is the State's side of our own messages: the ids they go under,
// the table of those awaiting RECV, their lifetimes, the queues of those
// waiting to go out, the transmissions in send order (for loss detection),
// and the congestion controller, pacer and RTT estimate that decide when
// they go. It owns these fields; the State calls its methods.
type sender struct {
	ids  idSequence
	rtt  rttEstimator
	cc   controller
	pace pacer
	byID map[wire.ID]*outbound

	expiry deadlineHeap[*outbound] // by end of lifetime
	fresh  fifo[*outbound]         // never sent, oldest first
	retx   fifo[*outbound]         // lost, oldest first
	sent   fifo[sentRef]           // transmissions in flight, oldest first (some stale)

	nextSeq      uint64
	largestAcked uint64 // sequence of the latest transmission answered, +1 (0: none)
	lastSent     int64  // latest DATA transmission, for the probe timeout
	lossTime     int64  // when the oldest transmission below largestAcked is lost by time
	ptoCount     int    // probe timeouts in a row
	reorder      float64

	free []*outbound // kept for reuse: a stream allocates nothing
}

func newSender(seed [5]uint32, rtt rttEstimator) sender {
	return sender{ids: newIDSequence(seed), rtt: rtt, cc: newController(), lossTime: never, reorder: 1}
}

// len returns how many messages await their outcome.
func (s *sender) len() int { return len(s.byID) }

// start takes a new message under an id that no pending message uses and
// queues it for its first transmission.
func (s *sender) start(m Outgoing, size int, expire int64) *outbound {
	var o *outbound
	if n := len(s.free); n > 0 {
		o, s.free = s.free[n-1], s.free[:n-1]
	} else {
		o = new(outbound)
	}
	*o = outbound{msg: m, size: size, expire: expire, index: -1, where: queued}
	for {
		o.id = s.ids.id()
		if _, busy := s.byID[o.id]; !busy {
			break
		}
	}
	if s.byID == nil {
		s.byID = make(map[wire.ID]*outbound)
	}
	s.byID[o.id] = o
	s.expiry.push(o)
	s.fresh.push(o)
	return o
}

// lookup returns the pending message with wire id id.
func (s *sender) lookup(id wire.ID) (*outbound, bool) {
	o, ok := s.byID[id]
	return o, ok
}

// next returns the message to send next — a lost one before a new one —
// or nil; entries that have left their queue since are skipped.
func (s *sender) next() *outbound {
	for _, q := range []*fifo[*outbound]{&s.retx, &s.fresh} {
		for q.len() > 0 {
			o := q.front()
			if (q == &s.retx && o.where == lost) || (q == &s.fresh && o.where == queued) {
				return o
			}
			q.pop() // answered, expired or cancelled meanwhile
		}
	}
	return nil
}

// take removes o, which next returned, from its queue.
func (s *sender) take(o *outbound) {
	if o.where == lost {
		s.retx.pop()
	} else {
		s.fresh.pop()
	}
}

// transmitted records a transmission of o at t.
func (s *sender) transmitted(o *outbound, t int64) {
	if o.attempts == 0 {
		o.first = t
	}
	o.attempts++
	o.sentAt, o.seq = t, s.nextSeq
	s.nextSeq++
	s.lastSent = t
	if o.where != flying {
		o.where = flying
		s.cc.sent(o.size)
	}
	s.sent.push(sentRef{o: o, seq: o.seq})
}

// oldestFlying returns the oldest message in flight, or nil.
func (s *sender) oldestFlying() *outbound {
	for s.sent.len() > 0 {
		if r := s.sent.front(); r.live() {
			return r.o
		}
		s.sent.pop()
	}
	return nil
}

// land takes o out of flight (answered or given up) and out of the
// table; the caller finishes it and then releases it.
func (s *sender) land(o *outbound) {
	if o.where == flying {
		s.cc.gone(o.size)
	}
	if o.index >= 0 {
		s.expiry.remove(o.index)
	}
	delete(s.byID, o.id)
	o.where = done // a stale entry in any queue is skipped
}

// lose marks o lost and queues it to be sent again.
func (s *sender) lose(o *outbound) {
	s.cc.gone(o.size)
	o.where = lost
	s.retx.push(o)
}

// release returns a finished entry for reuse.
func (s *sender) release(o *outbound) {
	*o = outbound{}
	if len(s.free) < freeListMax {
		s.free = append(s.free, o)
	}
}

// expired returns the message whose lifetime ends first, if it has ended
// by t.
func (s *sender) expired(t int64) (*outbound, bool) {
	if len(s.expiry) == 0 || s.expiry.min().expire > t {
		return nil, false
	}
	return s.expiry.min(), true
}

// find returns the pending message with user id id.
func (s *sender) find(id uuid.UUID) (*outbound, bool) {
	for _, o := range s.expiry {
		if o.msg.ID == id {
			return o, true
		}
	}
	return nil, false
}

// blocked returns the messages held back by the amplification limit.
func (s *sender) blocked() []*outbound {
	var b []*outbound
	for _, o := range s.expiry {
		if o.where == blocked {
			b = append(b, o)
		}
	}
	return b
}

// compact releases what is kept for reuse, and the tables if empty.
func (s *sender) compact() {
	s.free = nil
	if len(s.byID) == 0 {
		s.byID, s.expiry = nil, nil
		s.fresh.reset(true)
		s.retx.reset(true)
		s.sent.reset(true)
	}
}
