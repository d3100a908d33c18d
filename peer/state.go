package peer

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"net/netip"
	"time"

	"github.com/google/uuid"
	"github.com/gtudp/gtudp/wire"
)

// State is the gtUDP protocol for one remote address, as a plain state
// machine: no goroutine, channel, clock or logger. Its inputs are user
// messages (Send, Cancel), decoded packets (Receive), the application taking
// a delivery (Delivered) and the passing of time (Tick), each with the
// current time. Its outputs are packets to write (TakePackets), finished
// messages (TakeOutcomes), messages to deliver (Next) and the time it next
// needs to be woken (NextDeadline).
//
// A State is owned by one goroutine and is not safe for concurrent use.
// Times passed in must not go backwards.
type State struct {
	cfg       *Config // shared with the Peer that runs the state, if any
	addr      netip.AddrPort
	base      time.Time // times are kept as nanoseconds since base
	rtt       rttEstimator
	ids       idSequence
	validated bool // the peer answered one of our DATA or RECV
	draining  bool // the endpoint is closing: take no new message

	// Outgoing messages awaiting RECV, by wire id and by next deadline.
	out  map[wire.ID]*outbound
	outQ deadlineHeap[*outbound]

	// Received exchanges not finished: held (waiting for room in the
	// Inbox, not yet answered) or awaiting ACK (delivered, RECV sent).
	in   map[wire.ID]*inbound
	held fifo[*inbound]
	inQ  deadlineHeap[*inbound] // those awaiting ACK, by next RECV

	// Finished exchanges remembered for the dedupe horizon, by id and
	// payload digest (a reused id with another payload is another
	// message), oldest first in doneQ and indexed in done. Up to
	// smallDone of them are found by scanning doneQ, without the index:
	// most peers remember a few ids.
	done      doneSet // in use (holding every key of doneQ) past smallDone
	doneDupes int     // refs in doneQ whose key an earlier ref holds too
	doneQ     fifo[doneRef]

	// Outputs since the last Take.
	packets  []wire.Packet
	outcomes []Outcome

	// Entries kept for reuse, so a steady stream allocates nothing.
	freeOut []*outbound
	freeIn  []*inbound

	stats Stats
}

type outbound struct {
	msg      Outgoing
	id       wire.ID
	attempts int   // transmissions made
	blocked  bool  // the last transmission was held back by the amplification limit
	first    int64 // first transmission
	due      int64 // next transmission, or the time to give up
	expire   int64 // end of the lifetime
	index    int
}

func (o *outbound) deadline() int64 { return o.due }
func (o *outbound) setIndex(i int)  { o.index = i }

type inbound struct {
	id       wire.ID
	digest   uint64
	data     []byte // while held
	held     bool
	resent   bool // RECV sent again on a duplicate DATA: no RTT sample (Karn)
	attempts int  // timer-driven RECV transmissions
	first    int64
	due      int64
	index    int
}

func (e *inbound) deadline() int64 { return e.due }
func (e *inbound) setIndex(i int)  { e.index = i }

// doneKey is a finished exchange's key: its id mixed into its payload's
// digest, which is keyed by digestSeed, so no remote host can aim two
// keys at each other. Two different (id, payload) pairs share a key only
// if their digests collide, as likely as a 64-bit hash collision; the
// same payload under two ids never does.
func doneKey(id wire.ID, digest uint64) uint64 {
	k := digest ^ uint64(binary.BigEndian.Uint32(id[:]))*0x9E3779B97F4A7C15
	if k == 0 {
		k = 1 // 0 marks an empty slot of doneSet
	}
	return k
}

type doneRef struct {
	key    uint64
	expire int64
	acked  bool // ended by ACK: the sender has stopped re-sending
}

// digestSeed keys payload digests. It is random per process, so a remote
// host cannot craft two payloads with the same digest.
var digestSeed = maphash.MakeSeed()

func digest(b []byte) uint64 { return maphash.Bytes(digestSeed, b) }

// freeListMax bounds the entries kept for reuse, per kind.
const freeListMax = 1024

// NewState returns the state for the peer at addr. cfg must have passed
// Validate after WithDefaults. now is the start of the state's clock. seed
// keys the peer's id sequence; draw it from a good random source (the
// actor uses the runtime's ChaCha8 generator). validated says whether the
// peer may be sent more than 3× the bytes received from it: true when the
// application chose to contact it, false when it appeared by sending us
// something (DESIGN guarantee 8).
func NewState(cfg Config, addr netip.AddrPort, now time.Time, seed [5]uint32, validated bool) *State {
	return newState(&cfg, addr, now, seed, validated)
}

// newState is NewState with the Config shared, not copied: a Peer's state
// reads its Options' Config, one copy less per peer.
func newState(cfg *Config, addr netip.AddrPort, now time.Time, seed [5]uint32, validated bool) *State {
	return &State{
		cfg:       cfg,
		addr:      addr,
		base:      now,
		rtt:       newRTTEstimator(cfg.InitialRTO, cfg.MinRTO, cfg.MaxRTO),
		ids:       newIDSequence(seed),
		validated: validated,
		stats:     Stats{Addr: addr},
	}
}

// Addr returns the peer's address.
func (s *State) Addr() netip.AddrPort { return s.addr }

func (s *State) at(now time.Time) int64 { return int64(now.Sub(s.base)) }

// Room returns how many more messages Send accepts before the window is
// full.
func (s *State) Room() int { return s.cfg.Window - len(s.out) }

// Send starts sending m: it gets an id unique among the peer's pending
// messages and its DATA goes out at once. It returns ErrWindowFull when
// Window messages are in flight and wire.ErrTooLarge when m.Data does not
// fit in one datagram; m is then not taken. Otherwise m ends with exactly
// one Outcome. The state keeps m.Data until then.
func (s *State) Send(now time.Time, m Outgoing) error {
	if len(s.out) >= s.cfg.Window {
		return ErrWindowFull
	}
	if s.cfg.HeaderLen+len(m.Data) > wire.MaxDatagram {
		return wire.ErrTooLarge
	}
	t := s.at(now)
	o := s.newOutbound()
	*o = outbound{msg: m, first: t, expire: t + int64(s.cfg.Lifetime)}
	for {
		o.id = s.ids.id()
		if _, busy := s.out[o.id]; !busy {
			break
		}
	}
	if s.out == nil {
		s.out = make(map[wire.ID]*outbound)
	}
	s.out[o.id] = o
	s.stats.Sent++
	s.transmit(o, t)
	s.outQ.push(o)
	return nil
}

// transmit sends o's DATA and schedules its next transmission or its end.
// A DATA the amplification limit holds back is not an attempt: it goes out
// as soon as the peer proves its address (see validate), or is tried again
// after an RTO, until the Lifetime ends.
func (s *State) transmit(o *outbound, t int64) {
	if !s.emit(wire.Data, o.id, o.msg.Data) {
		o.blocked = true
		o.due = min(t+int64(s.rtt.backoff(max(o.attempts, 1))), o.expire)
		return
	}
	if o.attempts == 0 {
		o.first = t
	} else {
		s.stats.DataResent++
	}
	o.blocked = false
	o.attempts++
	o.due = min(t+int64(s.rtt.backoff(o.attempts)), o.expire)
}

// validate records that the peer has answered one of our packets, so it is
// a real address: DATA held back by the amplification limit goes out now.
func (s *State) validate(t int64) {
	if s.validated {
		return
	}
	s.validated = true
	// Collected first: fix reorders the heap under the loop. Validation
	// happens once per peer, so the slice costs nothing that matters.
	var blocked []*outbound
	for _, o := range s.outQ {
		if o.blocked {
			blocked = append(blocked, o)
		}
	}
	for _, o := range blocked {
		s.transmit(o, t)
		s.outQ.fix(o.index)
	}
}

// Cancel ends the message with the given ID, if it is still in flight, with
// a failure Outcome carrying err (the caller's context error), and reports
// whether it found it. A message whose outcome is already known is left
// alone: a result that is ready wins.
func (s *State) Cancel(now time.Time, id uuid.UUID, err error) bool {
	for _, o := range s.outQ {
		if o.msg.ID == id {
			s.outQ.remove(o.index)
			delete(s.out, o.id)
			s.finish(o, err, 0)
			return true
		}
	}
	return false
}

// Receive handles one packet from the peer. size is its length on the
// wire. For Data, ownership of p.Payload passes to the state: it becomes
// the delivered message's Data.
func (s *State) Receive(now time.Time, p wire.Packet, size int) {
	s.ReceiveAt(now, now, p, size)
}

// ReceiveAt is Receive for a packet that arrived at the socket at arrived,
// before now: round-trip times are measured to its arrival, not to when
// the state got to it, as TCP measures them on reception. An arrival
// outside [the exchange's start, now] counts as now.
func (s *State) ReceiveAt(now, arrived time.Time, p wire.Packet, size int) {
	t := s.at(now)
	at := t
	if !arrived.IsZero() && arrived.Before(now) {
		at = s.at(arrived)
	}
	s.stats.PacketsIn++
	s.stats.BytesIn += uint64(size)
	switch p.Kind {
	case wire.Data:
		s.onData(t, p.ID, p.Payload)
	case wire.Recv:
		s.onRecv(t, at, p.ID)
	case wire.Ack:
		s.onAck(t, at, p.ID)
	}
}

func (s *State) onData(t int64, id wire.ID, payload []byte) {
	d := digest(payload)
	if s.remembered(doneKey(id, d)) {
		// A late repeat of a finished message: never delivered again.
		// Answer RECV in case the sender is still waiting for one (our
		// RECVs may all have been lost).
		s.stats.Duplicates++
		s.reply(wire.Recv, id)
		return
	}
	if e, ok := s.in[id]; ok {
		if e.digest == d {
			// A repeat: the sender has not seen our RECV (or we have
			// not sent it yet because the message is held).
			s.stats.Duplicates++
			if !e.held {
				e.resent = true
				s.reply(wire.Recv, id)
			}
			return
		}
		// Same id, different payload: the sender reused the id (it
		// restarted), so this is a new message.
		if e.held {
			// The old one was never answered: nobody waits for it.
			e.digest, e.data = d, payload
			return
		}
		s.end(e, t, false) // delivered already: remember it, start anew
	}
	if s.draining || len(s.in) >= s.cfg.RecvWindow || s.held.len() >= s.cfg.HoldLimit || s.dedupeFull() {
		s.stats.Withheld++
		return
	}
	e := s.newInbound()
	*e = inbound{id: id, digest: d, data: payload, held: true, index: -1}
	if s.in == nil {
		s.in = make(map[wire.ID]*inbound)
	}
	s.in[id] = e
	s.held.push(e)
}

// dedupeFull reports whether the dedupe window is at its limit and its
// oldest entry is not safe to forget: its exchange ended without an ACK,
// so its sender may still be re-sending.
func (s *State) dedupeFull() bool {
	return s.doneQ.len() >= s.cfg.DedupeLimit && !s.doneQ.front().acked
}

func (s *State) onRecv(t, at int64, id wire.ID) {
	o, ok := s.out[id]
	if !ok {
		// The original answers ACK here: our earlier ACK was lost.
		s.stats.UnknownRecv++
		s.answer(id)
		return
	}
	s.validate(t)
	rtt := time.Duration(max(at, o.first) - o.first)
	if o.attempts == 1 {
		s.rtt.sample(rtt) // Karn: only sent once
	}
	s.answer(id)
	s.outQ.remove(o.index)
	delete(s.out, id)
	s.finish(o, nil, rtt)
}

func (s *State) onAck(t, at int64, id wire.ID) {
	e, ok := s.in[id]
	if !ok || e.held {
		s.stats.UnknownAck++
		return
	}
	s.validate(t)
	if e.attempts == 1 && !e.resent {
		s.rtt.sample(time.Duration(max(at, e.first) - e.first))
	}
	s.end(e, t, true)
}

// Next returns the oldest received message waiting to be handed to the
// application, without removing it. After handing it on, call Delivered.
func (s *State) Next() (Message, bool) {
	if s.held.len() == 0 {
		return Message{}, false
	}
	return Message{Addr: s.addr, Data: s.held.front().data}, true
}

// Delivered records that the message Next returned was handed to the
// application: it is answered RECV now, and RECV is re-sent until ACK.
func (s *State) Delivered(now time.Time) {
	t := s.at(now)
	e := s.held.pop()
	e.held, e.data = false, nil
	s.stats.Delivered++
	s.emit(wire.Recv, e.id, nil)
	e.attempts, e.first = 1, t
	e.due = t + int64(s.rtt.backoff(1))
	s.inQ.push(e)
}

// Tick does what is due at now: re-sends DATA and RECV whose timeout has
// passed, gives up on messages past their attempts or lifetime and on
// exchanges whose ACK never came, and forgets finished ids past the dedupe
// horizon. Calling it early, late or twice is harmless.
func (s *State) Tick(now time.Time) {
	t := s.at(now)
	for len(s.outQ) > 0 && s.outQ.min().due <= t {
		o := s.outQ.min()
		var reason string
		switch {
		case t >= o.expire && o.blocked:
			reason = fmt.Sprintf("lifetime %v exceeded while the address had not answered (amplification limit)", s.cfg.Lifetime)
		case t >= o.expire:
			reason = fmt.Sprintf("lifetime %v exceeded", s.cfg.Lifetime)
		case o.attempts >= s.cfg.MaxAttempts:
			reason = fmt.Sprintf("attempt limit %d reached", s.cfg.MaxAttempts)
		}
		if reason != "" {
			s.outQ.remove(0)
			delete(s.out, o.id)
			s.finish(o, &UndeliveredError{Addr: s.addr, ID: o.msg.ID, Attempts: o.attempts, Reason: reason}, 0)
			continue
		}
		s.transmit(o, t)
		s.outQ.fix(0)
	}
	for len(s.inQ) > 0 && s.inQ.min().due <= t {
		e := s.inQ.min()
		if e.attempts >= s.cfg.RecvAttempts {
			s.stats.RecvGaveUp++
			s.end(e, t, false)
			continue
		}
		s.stats.RecvResent++
		s.emit(wire.Recv, e.id, nil)
		e.attempts++
		e.due = t + int64(s.rtt.backoff(e.attempts))
		s.inQ.fix(0)
	}
	for s.doneQ.len() > 0 && s.doneQ.front().expire <= t {
		s.forgetOldest()
	}
}

// NextDeadline returns when Tick next has work to do, if ever.
func (s *State) NextDeadline() (time.Time, bool) {
	next, ok := int64(0), false
	consider := func(t int64) {
		if !ok || t < next {
			next, ok = t, true
		}
	}
	if len(s.outQ) > 0 {
		consider(s.outQ.min().due)
	}
	if len(s.inQ) > 0 {
		consider(s.inQ.min().due)
	}
	if s.doneQ.len() > 0 {
		consider(s.doneQ.front().expire)
	}
	if !ok {
		return time.Time{}, false
	}
	return s.base.Add(time.Duration(next)), true
}

// end closes a received exchange that has been delivered (or replaced) and
// remembers its id for the dedupe horizon. acked says whether its ACK came.
func (s *State) end(e *inbound, t int64, acked bool) {
	if e.index >= 0 {
		s.inQ.remove(e.index)
	}
	delete(s.in, e.id)
	if !e.held {
		s.remember(e.id, e.digest, t, acked)
	}
	s.freeInbound(e)
}

// smallDone is the most remembered ids kept without the index.
const smallDone = 8

// remembered reports whether the finished exchange k is remembered.
func (s *State) remembered(k uint64) bool {
	if s.done.inUse() {
		return s.done.has(k)
	}
	for _, r := range s.doneQ.all() {
		if r.key == k {
			return true
		}
	}
	return false
}

func (s *State) remember(id wire.ID, digest uint64, t int64, acked bool) {
	if s.doneQ.len() >= s.cfg.DedupeLimit {
		s.stats.DedupeEvicted++
		s.forgetOldest()
	}
	k := doneKey(id, digest)
	if !s.done.inUse() && s.doneQ.len() >= smallDone {
		for _, r := range s.doneQ.all() {
			s.index(r.key)
		}
	}
	if s.done.inUse() {
		s.index(k)
	}
	s.doneQ.push(doneRef{key: k, expire: t + int64(s.cfg.DedupeHorizon), acked: acked})
}

// index adds k to the index, or counts a second reference to it.
func (s *State) index(k uint64) {
	if s.done.has(k) {
		s.doneDupes++
		return
	}
	s.done.add(k)
}

func (s *State) forgetOldest() {
	r := s.doneQ.pop()
	if !s.done.inUse() {
		return // the queue is the record
	}
	// The same message may have been remembered again since (it was
	// re-delivered after an earlier horizon): then a later reference
	// keeps it.
	if s.doneDupes > 0 {
		for _, later := range s.doneQ.all() {
			if later.key == r.key {
				s.doneDupes--
				return
			}
		}
	}
	s.done.del(r.key)
}

// finish ends an outgoing message with err (nil: delivered).
func (s *State) finish(o *outbound, err error, rtt time.Duration) {
	if err == nil {
		s.stats.Confirmed++
	} else {
		s.stats.Failed++
	}
	s.outcomes = append(s.outcomes, Outcome{
		Receipt: Receipt{ID: o.msg.ID, Addr: s.addr, Err: err, Attempts: o.attempts, RTT: rtt},
		Done:    o.msg.Done,
	})
	s.freeOutbound(o)
}

// reply sends a RECV or ACK that answers the peer rather than advancing one
// of our exchanges, within the amplification limit.
func (s *State) reply(k wire.Kind, id wire.ID) {
	if k == wire.Recv {
		s.stats.RecvResent++
	}
	s.emit(k, id, nil)
}

// answer sends the ACK for a RECV, or counts the one the owner sent on
// arrival (Config.AckOnArrival).
func (s *State) answer(id wire.ID) {
	if s.cfg.AckOnArrival {
		s.stats.PacketsOut++
		s.stats.BytesOut += uint64(s.cfg.HeaderLen)
		return
	}
	s.emit(wire.Ack, id, nil)
}

// emit queues a packet for writing unless the peer is unvalidated and the
// packet would take what we sent it past 3× what it sent us (DESIGN
// guarantee 8, the anti-amplification limit of QUIC, RFC 9000 8.1).
func (s *State) emit(k wire.Kind, id wire.ID, payload []byte) bool {
	n := uint64(s.cfg.HeaderLen + len(payload))
	if !s.validated && s.stats.BytesOut+n > 3*s.stats.BytesIn {
		s.stats.Limited++
		return false
	}
	s.stats.PacketsOut++
	s.stats.BytesOut += n
	s.packets = append(s.packets, wire.Packet{Kind: k, ID: id, Payload: payload})
	return true
}

// TakePackets appends the packets to write since the last call to dst and
// returns it. A DATA's Payload aliases the message's Data: write the
// packets before handing out the outcomes taken after them.
func (s *State) TakePackets(dst []wire.Packet) []wire.Packet {
	dst = append(dst, s.packets...)
	clear(s.packets)
	s.packets = s.packets[:0]
	return dst
}

// TakeOutcomes appends the messages finished since the last call to dst and
// returns it.
func (s *State) TakeOutcomes(dst []Outcome) []Outcome {
	dst = append(dst, s.outcomes...)
	clear(s.outcomes)
	s.outcomes = s.outcomes[:0]
	return dst
}

// Drain puts the state in closing mode: new DATA is no longer taken, and
// messages held for the Inbox are dropped (they were never answered, so
// their senders know nothing was confirmed). Messages in flight and
// exchanges awaiting ACK carry on; Busy reports when they are done.
func (s *State) Drain() {
	s.draining = true
	for s.held.len() > 0 {
		e := s.held.pop()
		delete(s.in, e.id)
		s.freeInbound(e)
	}
}

// Busy reports whether an exchange is still going on: a message in flight,
// a received message held for the Inbox, or a RECV awaiting its ACK.
func (s *State) Busy() bool { return len(s.out) > 0 || len(s.in) > 0 }

// Idle reports whether the state holds nothing at all: not busy, and no
// remembered ids. An idle state can be dropped without changing behaviour
// except the RTT estimate.
func (s *State) Idle() bool { return !s.Busy() && s.doneQ.len() == 0 }

// Abort ends every message in flight with err, for an endpoint that stops
// before they are done.
func (s *State) Abort(err error) {
	for len(s.outQ) > 0 {
		o := s.outQ.min()
		s.outQ.remove(0)
		delete(s.out, o.id)
		s.finish(o, err, 0)
	}
}

// Compact releases memory kept for reuse. The actor calls it when the peer
// goes quiet.
func (s *State) Compact() {
	s.freeOut, s.freeIn = nil, nil
	if len(s.out) == 0 {
		s.out, s.outQ = nil, nil
	}
	if len(s.in) == 0 {
		s.in, s.inQ = nil, nil
		s.held.reset(true)
	}
	if s.doneQ.len() <= smallDone {
		s.done, s.doneDupes = doneSet{}, 0 // the queue alone will do
	} else {
		s.done.shrink()
	}
	if s.doneQ.len() == 0 {
		s.doneQ.reset(true)
	} else {
		s.doneQ.shrink()
	}
	if len(s.packets) == 0 {
		s.packets = nil
	}
	if len(s.outcomes) == 0 {
		s.outcomes = nil
	}
}

// Stats returns the peer's counters and gauges.
func (s *State) Stats() Stats {
	st := s.stats
	st.InFlight, st.Open, st.Remembered = len(s.out), len(s.in), s.doneQ.len()-s.doneDupes
	st.SRTT, st.RTTVar, st.RTO = s.rtt.srtt, s.rtt.rttvar, s.rtt.rto
	st.Validated = s.validated
	return st
}

func (s *State) newOutbound() *outbound {
	if n := len(s.freeOut); n > 0 {
		o := s.freeOut[n-1]
		s.freeOut = s.freeOut[:n-1]
		return o
	}
	return new(outbound)
}

func (s *State) freeOutbound(o *outbound) {
	*o = outbound{}
	if len(s.freeOut) < freeListMax {
		s.freeOut = append(s.freeOut, o)
	}
}

func (s *State) newInbound() *inbound {
	if n := len(s.freeIn); n > 0 {
		e := s.freeIn[n-1]
		s.freeIn = s.freeIn[:n-1]
		return e
	}
	return new(inbound)
}

func (s *State) freeInbound(e *inbound) {
	*e = inbound{}
	if len(s.freeIn) < freeListMax {
		s.freeIn = append(s.freeIn, e)
	}
}
