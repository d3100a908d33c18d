package peer

import (
	"github.com/google/uuid"
	"github.com/gtudp/gtudp/wire"
)

// outbound is one of our messages, from Send to its outcome, or one
// fragment of a message too large for one datagram (a unit: see
// fragments).
type outbound struct {
	msg      Outgoing
	id       wire.ID
	size     int // bytes on a link: the DATA datagram and its IP and UDP headers
	where    where
	attempts int    // transmissions made (a message in fragments: the most of any fragment)
	first    int64  // first transmission
	sentAt   int64  // latest transmission
	seq      uint64 // send order of the latest transmission
	dg       uint64 // the datagram it went in (output.opened then)
	expire   int64  // end of the lifetime, counted from Send
	index    int    // in sender.expiry
	settled  bool   // its form is decided (State.settle)
	ext      bool   // sent in EXT form (decided at its first transmission)
	writeErr error  // the last write of its DATA that failed, if any

	frags  *fragments // a message sent in fragments
	parent *outbound  // a fragment: its message
	off, n int        // a fragment: its bytes of the message's Data
	slot   int        // a fragment: its place in parent.frags.units
}

// fragments is what a message sent in fragments keeps: its FRAG records
// are cut from its Data as the congestion window allows, each a unit with
// its own id, sent, answered, lost and re-sent on its own. The message
// succeeds when every unit is cut and answered, and fails when one does.
type fragments struct {
	msg   wire.ID     // the message's id on the wire, in every FRAG
	cut   int         // bytes of Data cut into units so far
	open  int         // units cut and not yet answered
	units []*outbound // units by cut order; nil once answered
}

func (o *outbound) deadline() int64 { return o.expire }
func (o *outbound) setIndex(i int)  { o.index = i }

// where is where a message is between Send and its outcome.
type where uint8

const (
	done    where = iota // finished, or free: stale queue entries skip it
	queued               // waiting for its first transmission (a message in fragments: for its next unit to be cut)
	flying               // sent, awaiting RECV, counted in flight
	lost                 // declared lost, waiting to be sent again
	blocked              // held back by the amplification limit
	parked               // too large for one datagram, waiting to learn whether the peer speaks the extension
	whole                // a message in fragments, all cut: waiting for their answers
)

// report gathers, over the answers of one datagram, the latest
// transmission they answer: sure (the message was sent once), or only
// perhaps (it went more than once, and the answer may be to an earlier
// copy).
//
// An answer that may be to an earlier copy moves largestAcked only when
// nothing sure came with it: after a probe timeout on a busy machine, the
// answers held up come in a burst, and the first, to the oldest message,
// which the probe timeout re-sent, would otherwise make every message
// sent before that re-send look lost (a loss of hundreds, none real,
// measured with `gtudp bench -busy cores`). A whole window lost and
// re-sent has nothing but re-sends to answer, which still count.
type report struct {
	sure, perhaps sentMark
}

// sentMark is a transmission: its sequence, +1 (0: none), and datagram.
type sentMark struct{ seq, dg uint64 }

// note adds an answer to the transmission m to the report.
func (r *report) note(m sentMark, sure bool) {
	if sure {
		r.sure = later(r.sure, m)
	} else {
		r.perhaps = later(r.perhaps, m)
	}
}

// take returns the latest transmission the report shows answered, and
// empties it.
func (r *report) take() sentMark {
	m := r.sure
	if m.seq == 0 {
		m = r.perhaps
	}
	*r = report{}
	return m
}

func later(a, b sentMark) sentMark {
	if b.seq > a.seq {
		return b
	}
	return a
}

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
	byID map[wire.ID]*outbound // what is on the wire under an id: whole messages and units

	messages    int                     // messages awaiting their outcome (units not counted)
	unsent      int                     // bytes of their Data not yet sent once
	parked      int                     // messages parked
	parkedBytes int                     // their bytes (part of unsent)
	expiry      deadlineHeap[*outbound] // messages by end of lifetime (units not in it)
	fresh       fifo[*outbound]         // never sent, oldest first
	retx        fifo[*outbound]         // lost, oldest first
	sent        fifo[sentRef]           // transmissions in flight, oldest first (some stale)

	nextSeq      uint64
	largestAcked uint64 // sequence of the latest transmission answered, +1 (0: none)
	largestDg    uint64 // the datagram that transmission went in
	report       report // what the answers being read say about them
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
func (s *sender) len() int { return s.messages }

// start takes a new message under an id that no pending message uses and
// queues it for its first transmission.
func (s *sender) start(m Outgoing, size int, expire int64) *outbound {
	o := s.get()
	*o = outbound{msg: m, size: size, expire: expire, index: -1, where: queued}
	s.register(o)
	s.messages++
	s.unsent += len(m.Data)
	s.expiry.push(o)
	s.fresh.push(o)
	return o
}

// get returns a cleared entry, reused if one is kept.
func (s *sender) get() *outbound {
	if n := len(s.free); n > 0 {
		o := s.free[n-1]
		s.free = s.free[:n-1]
		return o
	}
	return new(outbound)
}

// register gives o an id no entry on the wire uses, and enters it.
func (s *sender) register(o *outbound) {
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
}

// fragment makes o, queued and never sent, a message sent in fragments:
// its id leaves the table, and it draws the id its FRAGs name it by.
// The id sequence is a permutation, so that id does not come again for
// 2^32 draws: the receiver, which remembers finished messages by it, can
// never take a new message for an old one.
func (s *sender) fragment(o *outbound) {
	delete(s.byID, o.id)
	o.id = wire.ID{}
	o.frags = &fragments{msg: s.ids.id()}
}

// cut cuts o's next unit, of at most n bytes, to go out now; once all of
// o is cut, o leaves the queue to wait for the answers.
func (s *sender) cut(o *outbound, n int) *outbound {
	f := o.frags
	u := s.get()
	*u = outbound{parent: o, off: f.cut, n: n, index: -1, where: queued, settled: true, ext: true, slot: len(f.units)}
	s.register(u)
	f.units = append(f.units, u)
	f.cut += n
	f.open++
	s.unsent -= n
	if f.cut == len(o.msg.Data) {
		s.fresh.pop()
		o.where = whole
	}
	return u
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
		if o.parent == nil {
			s.unsent -= len(o.msg.Data)
		}
	}
	o.attempts++
	if p := o.parent; p != nil {
		if p.attempts == 0 {
			p.first = t
		}
		p.attempts = max(p.attempts, o.attempts)
	}
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
// table; the caller finishes it and then releases it. A message in
// fragments lands with every unit still open (they are released here); a
// unit lands alone, and leaves its message's list.
func (s *sender) land(o *outbound) {
	switch o.where {
	case flying:
		s.cc.gone(o.size)
	case parked:
		s.parked--
		s.parkedBytes -= len(o.msg.Data)
	case done:
		return
	}
	if o.index >= 0 {
		s.expiry.remove(o.index)
	}
	if s.byID[o.id] == o {
		delete(s.byID, o.id)
	}
	o.where = done // a stale entry in any queue is skipped
	if p := o.parent; p != nil {
		p.frags.units[o.slot] = nil
		p.frags.open--
		return
	}
	s.messages--
	s.unsent -= o.unsent()
	if f := o.frags; f != nil {
		for _, u := range f.units {
			if u != nil {
				s.land(u)
				s.release(u)
			}
		}
		f.units = nil
	}
}

// recordLen returns the length of o's record in an EXT datagram.
func (o *outbound) recordLen() int {
	if p := o.parent; p != nil {
		return wire.FragLen(uint64(len(p.msg.Data)), uint64(o.off), o.n)
	}
	return wire.DataLen(len(o.msg.Data))
}

// appendRecord appends o's record: a unit's FRAG or a message's DATA.
func (o *outbound) appendRecord(b []byte) []byte {
	if p := o.parent; p != nil {
		return wire.AppendFrag(b, o.id, p.frags.msg, uint64(len(p.msg.Data)), uint64(o.off), p.msg.Data[o.off:o.off+o.n])
	}
	return wire.AppendData(b, o.id, o.msg.Data)
}

// appendFragHeader appends o's FRAG record, o being a unit, but its
// payload, and returns the payload: what follows the record on the wire.
func (o *outbound) appendFragHeader(b []byte) ([]byte, []byte) {
	p := o.parent
	return wire.AppendFragHeader(b, o.id, p.frags.msg, uint64(len(p.msg.Data)), uint64(o.off), o.n), p.msg.Data[o.off : o.off+o.n : o.off+o.n]
}

// unsent returns the bytes of a message's Data not yet sent once.
func (o *outbound) unsent() int {
	switch {
	case o.frags != nil:
		return len(o.msg.Data) - o.frags.cut
	case o.attempts == 0:
		return len(o.msg.Data)
	}
	return 0
}

// answered reports whether every unit of p, a message in fragments, is
// cut and answered.
func (p *outbound) answered() bool {
	return p.where == whole && p.frags.open == 0
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

// park takes o, the message at the front of the queue of new ones, out of
// it until the peer's extension is known.
func (s *sender) park(o *outbound) {
	s.fresh.pop()
	o.where = parked
	s.parked++
	s.parkedBytes += len(o.msg.Data)
}

// unpark queues the parked messages again, to be settled anew.
func (s *sender) unpark() {
	if s.parked == 0 {
		return
	}
	for _, o := range s.expiry {
		if o.where == parked {
			o.where, o.settled = queued, false
			s.fresh.push(o)
		}
	}
	s.parked, s.parkedBytes = 0, 0
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
	for _, o := range s.byID {
		if o.where == blocked {
			b = append(b, o)
		}
	}
	return b
}

// compact releases what is kept for reuse, and the tables if empty.
func (s *sender) compact() {
	s.free = nil
	if s.messages == 0 {
		s.byID, s.expiry = nil, nil
		s.fresh.reset(true)
		s.retx.reset(true)
		s.sent.reset(true)
	}
}
