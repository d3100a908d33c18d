package peer

import (
	"github.com/google/uuid"
	"github.com/gtudp/gtudp/wire"
)

// outbound is one of our messages awaiting RECV.
type outbound struct {
	msg      Outgoing
	id       wire.ID
	attempts int   // transmissions made
	blocked  bool  // the last transmission was held back by the amplification limit
	first    int64 // first transmission
	due      int64 // next transmission, or the time to give up
	expire   int64 // end of the lifetime
	index    int   // in sender.queue
	writeErr error // the last write of its DATA that failed, if any
}

func (o *outbound) deadline() int64 { return o.due }
func (o *outbound) setIndex(i int)  { o.index = i }

// sender is the State's side of our own messages: the ids they go under,
// the table of those awaiting RECV and their schedule, and the RTT
// estimate their answers feed. It owns these fields; the State calls its
// methods.
type sender struct {
	ids   idSequence
	rtt   rttEstimator
	byID  map[wire.ID]*outbound
	queue deadlineHeap[*outbound] // by next transmission or end
	free  []*outbound             // kept for reuse: a stream allocates nothing
}

// len returns how many messages await RECV.
func (s *sender) len() int { return len(s.byID) }

// start takes a new message under an id that no pending message uses and
// returns its entry, not yet scheduled: the caller transmits it, then
// calls schedule.
func (s *sender) start(m Outgoing, t, expire int64) *outbound {
	var o *outbound
	if n := len(s.free); n > 0 {
		o, s.free = s.free[n-1], s.free[:n-1]
	} else {
		o = new(outbound)
	}
	*o = outbound{msg: m, first: t, expire: expire, index: -1}
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
	return o
}

// lookup returns the pending message with wire id id.
func (s *sender) lookup(id wire.ID) (*outbound, bool) {
	o, ok := s.byID[id]
	return o, ok
}

// schedule puts o in the queue, or moves it to its new due time.
func (s *sender) schedule(o *outbound) {
	if o.index < 0 {
		s.queue.push(o)
		return
	}
	s.queue.fix(o.index)
}

// due returns the message whose due time is earliest, if it is at or
// before t.
func (s *sender) due(t int64) (*outbound, bool) {
	if len(s.queue) == 0 || s.queue.min().due > t {
		return nil, false
	}
	return s.queue.min(), true
}

// next returns the earliest due time, or never.
func (s *sender) next() int64 {
	if len(s.queue) == 0 {
		return never
	}
	return s.queue.min().due
}

// remove takes o out of the table and the queue. The caller finishes it
// and then releases it.
func (s *sender) remove(o *outbound) {
	if o.index >= 0 {
		s.queue.remove(o.index)
	}
	delete(s.byID, o.id)
}

// release returns a finished entry for reuse.
func (s *sender) release(o *outbound) {
	*o = outbound{}
	if len(s.free) < freeListMax {
		s.free = append(s.free, o)
	}
}

// find returns the pending message with user id id.
func (s *sender) find(id uuid.UUID) (*outbound, bool) {
	for _, o := range s.queue {
		if o.msg.ID == id {
			return o, true
		}
	}
	return nil, false
}

// blocked returns the messages held back by the amplification limit.
func (s *sender) blocked() []*outbound {
	var b []*outbound
	for _, o := range s.queue {
		if o.blocked {
			b = append(b, o)
		}
	}
	return b
}

// compact releases what is kept for reuse, and the tables if empty.
func (s *sender) compact() {
	s.free = nil
	if len(s.byID) == 0 {
		s.byID, s.queue = nil, nil
	}
}
