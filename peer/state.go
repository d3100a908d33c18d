package peer

import (
	"bytes"
	"math"
	"net/netip"
	"time"

	"github.com/google/uuid"
	"github.com/gtudp/gtudp/wire"
)

// State is the gtUDP protocol for one remote address, as a plain state
// machine: no goroutine, channel, clock or logger. Its inputs are user
// messages (Send, Cancel), decoded packets (Receive), the application taking
// a delivery (Delivered) and the passing of time (Tick), each with the
// current time. Its outputs are datagrams to write (TakeDatagrams), finished
// messages (TakeOutcomes), messages to deliver (Next) and the time it next
// needs to be woken (NextDeadline).
//
// The work is split among sub-states that own their fields: sender (our
// messages awaiting RECV), receiver (the peer's messages, held, awaiting
// ACK or remembered), amplification (what the peer may be sent) and
// output (what to write and report). State's methods coordinate them.
//
// A State is owned by one goroutine and is not safe for concurrent use.
// Times passed in must not go backwards.
type State struct {
	p        *Params // shared with the Peer that runs the state, if any
	addr     netip.AddrPort
	base     time.Time // times are kept as nanoseconds since base
	draining bool      // the endpoint is closing: take no new message
	closeBy  int64     // draining: when every message of ours has ended (see Drain)
	heardAt  int64     // when a packet from the peer last came
	// proved: the peer has answered one of our DATA with its RECV, or our
	// probe with its ACK, so it receives what we send to its address. (A
	// peer we chose to contact is trusted beyond the amplification limit
	// from the start, but has proved nothing until then.)
	proved bool
	lent   bool // the packet being received is only lent (ReceiveLent)

	tx    sender
	rx    receiver
	amp   amplification
	probe probe
	ext   extension
	out   output

	stats Stats
}

// never is the deadline of a sub-state with nothing to do.
const never = math.MaxInt64

// after returns t+d, saturating at never: a setting of "forever" (say a
// Lifetime of math.MaxInt64) means forever, not a deadline in the past.
func after(t int64, d time.Duration) int64 {
	if d > 0 && t > never-int64(d) {
		return never
	}
	return t + int64(d)
}

// freeListMax bounds the entries kept for reuse, per kind.
const freeListMax = 1024

// NewState returns the state for the peer at addr. now is the start of
// the state's clock. seed keys the peer's id sequence; draw it from a good
// random source. validated says whether the peer may be sent more than 3×
// the bytes received from it: true when the application chose to contact
// it, false when it appeared by sending us something.
func NewState(p *Params, addr netip.AddrPort, now time.Time, seed [5]uint32, validated bool) *State {
	return &State{
		p:     p,
		addr:  addr,
		base:  now,
		tx:    newSender(seed, newRTTEstimator(p.InitialRTO, p.MinRTO, p.MaxRTO)),
		amp:   amplification{validated: validated},
		out:   newOutput(p, p.datagramSize(addr)),
		stats: Stats{Addr: addr},
	}
}

// Addr returns the peer's address.
func (s *State) Addr() netip.AddrPort { return s.addr }

func (s *State) at(now time.Time) int64 { return int64(now.Sub(s.base)) }

// Receive handles one packet from the peer. size is its length on the
// wire. For Data, ownership of p.Payload passes to the state, and with it
// the payload's bytes of the budget (Params.Budget): it becomes the
// delivered message's Data, or its bytes are given back.
func (s *State) Receive(now time.Time, p wire.Packet, size int) {
	s.ReceiveAt(now, now, p, size)
}

// ReceiveAt is Receive for a packet that arrived at the socket at arrived,
// before now: round-trip times are measured to its arrival, not to when
// the state got to it, as TCP measures them on reception. An arrival
// outside [the exchange's start, now] counts as now.
func (s *State) ReceiveAt(now, arrived time.Time, p wire.Packet, size int) {
	s.receive(now, arrived, p, size)
}

// ReceiveLent is ReceiveAt for a packet whose payload is only lent: the
// state copies what it keeps of it (the budget's bytes still pass to the
// state) and does not touch it after returning.
func (s *State) ReceiveLent(now, arrived time.Time, p wire.Packet, size int) {
	s.lent = true
	defer func() { s.lent = false }()
	s.receive(now, arrived, p, size)
}

func (s *State) receive(now, arrived time.Time, p wire.Packet, size int) {
	t := s.at(now)
	at := t
	if !arrived.IsZero() && arrived.Before(now) {
		at = s.at(arrived)
	}
	s.heardAt = t
	s.stats.PacketsIn++
	s.stats.BytesIn += uint64(size)
	s.amp.received(size)
	f := formPlain
	if p.Kind == wire.Recv || p.Kind == wire.Ack {
		if _, ok := wire.ParseTrailer(p.Payload); ok {
			f = formTrailer
		}
	}
	switch p.Kind {
	case wire.Data:
		if s.lent {
			p.Payload = bytes.Clone(p.Payload)
		}
		if !s.hold(t, p.ID, p.Payload, 0, false) {
			s.p.Budget.Give(len(p.Payload)) // not kept: its bytes go back
		}
	case wire.Recv:
		if s.onRecv(t, at, p.ID, f) {
			s.detectLoss(t)
			s.pump(t)
		}
	case wire.Ack:
		s.onAck(t, at, p.ID, f)
	case wire.Ext:
		s.onExt(t, at, p.Payload)
	}
}

// hold takes a DATA's payload into the held deliveries if it is a new
// message there is room for, and reports whether it did. A repeat is
// answered RECV again instead, if it was delivered. mix is the sender's
// incarnation, mixed in (0 for plain DATA); ext says the DATA came in EXT
// form, and its RECVs go so.
func (s *State) hold(t int64, id wire.ID, payload []byte, mix uint64, ext bool) bool {
	d := digest(payload) ^ mix
	if s.rx.seen.has(doneKey(id, d)) {
		// A late repeat of a finished message: never delivered again.
		// Answer RECV in case the sender is still waiting for one (our
		// RECVs may all have been lost).
		s.stats.Duplicates++
		s.reply(id, ext)
		return false
	}
	if e, ok := s.rx.find(id, d); ok {
		// A repeat: the sender has not seen our RECV (or we have not
		// sent it yet because the message is held).
		s.stats.Duplicates++
		if !e.held {
			e.resent = true
			s.reply(id, e.ext)
		}
		return false
	}
	// A new message, even if an exchange with its id is open: the
	// original can send two messages under one id, and a restarted sender
	// can reuse one. The payloads tell them apart.
	if !s.canHold() {
		s.stats.Withheld++
		return false
	}
	s.rx.hold(id, d, payload, ext)
	return true
}

// dedupeFull reports whether the dedupe window is at its limit and holds
// no exchange safe to forget: all ended without an ACK, so their senders
// may still be re-sending.
func (s *State) dedupeFull() bool {
	return s.rx.seen.len() >= s.p.DedupeLimit && !s.rx.seen.evictable()
}

func (s *State) onAck(t, at int64, id wire.ID, f form) {
	if s.probe.active && id == s.probe.nonce {
		if f == formPlain && s.probe.trailer && s.extOn() {
			// The probe carried our trailer and the answer none: a gtudp
			// peer answers a trailer with its own, with or without a peer
			// (answerHow, and the reader's answer to strays), so this is
			// the original, or an endpoint with NoExtension.
			s.ext.status, s.ext.probedPlain = extPlain, true
			s.tx.unpark()
		}
		if s.probe.attempts == 1 {
			// Sent once, so this ACK answers it (Karn): the first RTT
			// sample of a peer we have sent nothing else yet.
			s.sample(time.Duration(max(at, s.probe.sentAt) - s.probe.sentAt))
		}
		s.heardTrailer(t, f, true)
		s.validate(t)
		s.pump(t)
		return
	}
	e, ok := s.rx.acked(id)
	if !ok {
		s.stats.UnknownAck++
		return
	}
	// No validate here: an ACK echoes the remote's own id, which whoever
	// forged the DATA knows. Only a RECV for one of our random DATA ids
	// proves the address receives what we send.
	if e.attempts == 1 && !e.resent {
		s.tx.rtt.sample(time.Duration(max(at, e.first) - e.first))
	}
	s.end(e, t, true)
}

// Next returns the oldest received message waiting to be handed to the
// application, without removing it. After handing it on, call Delivered.
func (s *State) Next() (Delivery, bool) {
	e, ok := s.rx.next()
	if !ok {
		return Delivery{}, false
	}
	return Delivery{Addr: s.addr, Data: e.data}, true
}

// Held returns how many received messages wait to be handed to the
// application.
func (s *State) Held() int { return s.rx.held.len() }

// Delivered records that the message Next returned was handed to the
// application: it is answered RECV now, and RECV is re-sent until ACK.
func (s *State) Delivered(now time.Time) {
	t := s.at(now)
	e, n := s.rx.delivered(t, after(t, s.recvTimeout()))
	s.p.Budget.Give(n) // the application's now
	s.stats.Delivered++
	s.answer(wire.Recv, e.id, e.form())
}

// Tick does what is due at now: gives up on messages past their lifetime,
// finds lost ones, re-sends on a probe timeout and as the pacer allows,
// re-sends RECVs whose ACK is late and gives up on exchanges whose ACK
// never came, and forgets finished ids past their horizon. Calling it
// early, late or twice is harmless.
func (s *State) Tick(now time.Time) {
	t := s.at(now)
	s.tickSend(t)
	s.tickRecv(t)
	s.tickProbe(t)
	s.expireAssemblies(t)
	s.expireStash(t)
	s.rx.seen.expire(t)
}

// tickRecv re-sends the RECVs whose ACK is late, as the pacer allows, and
// gives up on exchanges after RecvAttempts RECVs. A late ACK backs the
// timer off until an ACK comes back in time (rttEstimator.timedOut): when
// ACKs are slow because the peer is busy, the RECVs re-sent must not add
// to its load.
func (s *State) tickRecv(t int64) {
	size := s.p.headerLen() + wireOverhead
	for {
		e, ok := s.rx.due(t)
		if !ok {
			return
		}
		if e.attempts >= s.p.RecvAttempts {
			s.stats.RecvGaveUp++
			s.end(e, t, false)
			continue
		}
		if !s.tx.pace.ready(t, size) {
			// Spread re-sent RECVs as the pacer would, unless it owes for
			// longer than a RECV waits for its ACK (a large DATA sent at a
			// low rate): a RECV is small, and must not wait that long.
			if next := s.tx.pace.next(t, size); next-t <= int64(s.recvTimeout()) {
				e.due = next
				s.rx.reschedule(e)
				return
			}
		}
		s.tx.rtt.timedOut(t)
		s.stats.RecvResent++
		s.answer(wire.Recv, e.id, e.form())
		s.tx.pace.spend(size)
		e.attempts++
		e.due = after(t, s.recvTimeout())
		s.rx.reschedule(e)
	}
}

// recvTimeout is how long a RECV waits for its ACK before it goes again:
// twice the retransmission timeout. There is no hurry: if the RECV was
// lost its sender re-sends the DATA, which is answered at once; a re-sent
// RECV only spares the sender's retransmission timer, and gets the ACK
// that ends the exchange here. When ACKs are late because the sender is
// busy, early RECVs would only add to its load.
func (s *State) recvTimeout() time.Duration { return s.tx.rtt.backoff(2) }

// NextDeadline returns when Tick next has work to do, or the zero Time if
// it has none. Each concern with a deadline is one line of the chain.
func (s *State) NextDeadline() time.Time {
	next := min(
		s.sendDeadline(),   // a message to give up on, a loss or probe timeout, the pacer
		s.rx.nextRecv(),    // a RECV to re-send, or an exchange to give up on
		s.rx.seen.next(),   // a finished exchange to forget
		s.rx.nextPartial(), // a message in fragments to give up on
		s.rx.nextStash(),   // fragments of an unproved peer to drop
		s.probeDue(),       // a probe of the peer's address to re-send
	)
	if next == never {
		return time.Time{}
	}
	return s.base.Add(time.Duration(max(next, 0)))
}

// end closes a received exchange and, if it was delivered, remembers it;
// acked says whether its ACK came. One ended without its ACK is kept for
// DedupeHorizon: its sender may re-send until its Lifetime. One ended by
// the ACK needs only outlast copies already in the network when the sender
// stopped: it is kept for ackedHorizon. That shortens the time a sender
// that restarts, drawing new ids, can have a new message taken for one it
// sent before (same id and payload) and silently dropped. At DedupeLimit
// the oldest exchange ended by ACK makes room (onData refuses new DATA
// before that could forget one whose sender may still re-send).
func (s *State) end(e *inbound, t int64, acked bool) {
	k, delivered := s.rx.close(e)
	if !delivered {
		return
	}
	if s.rx.seen.len() >= s.p.DedupeLimit && s.rx.seen.evictable() {
		s.stats.DedupeEvicted++
		s.rx.seen.forgetAcked()
	}
	horizon := s.p.DedupeHorizon
	if acked {
		horizon = s.ackedHorizon()
	}
	s.rx.seen.add(k, after(t, horizon), acked)
}

// ackedHorizon is how long an exchange ended by ACK is remembered: four
// retransmission timeouts (the longest a copy plausibly lingers in a
// path's queues), and at least minAckedHorizon, at most DedupeHorizon.
func (s *State) ackedHorizon() time.Duration {
	return min(max(minAckedHorizon, 4*s.tx.rtt.rto), s.p.DedupeHorizon)
}

// minAckedHorizon bounds ackedHorizon from below: a copy delayed by a
// scheduler or a bufferbloated queue for up to two seconds is still known.
const minAckedHorizon = 2 * time.Second

// reply re-sends a RECV that answers a repeated DATA, in its form.
func (s *State) reply(id wire.ID, ext bool) {
	s.stats.RecvResent++
	f := formPlain
	if ext {
		f = formExt
	}
	s.answer(wire.Recv, id, f)
}

// emit queues a packet for writing unless the amplification limit holds it
// back, and reports whether it queued it.
func (s *State) emit(k wire.Kind, id wire.ID, payload []byte) bool {
	n := s.p.headerLen() + len(payload)
	if !s.amp.allow(n) {
		s.stats.Limited++
		return false
	}
	s.stats.PacketsOut++
	s.stats.BytesOut += uint64(n)
	s.out.packet(wire.Packet{Kind: k, ID: id, Payload: payload})
	return true
}

// TakeDatagrams appends the datagrams to write since the last call to dst
// and returns it: plain packets, then EXT datagrams packing the records of
// that time, each within the peer's datagram size (Params.DatagramSize). They are valid until the next call
// to any method of s.
func (s *State) TakeDatagrams(dst [][]byte) [][]byte {
	s.assemble(false)
	return s.out.takeDatagrams(dst)
}

// TakeDatagramParts is TakeDatagrams in parts. With split, for a writer
// that gathers (see PartsSender), a datagram that ends in a fragment of
// splitMin bytes or more leaves the fragment's payload out of the batch's
// buffer, and its Tail is that payload, in the message's own buffer
// (which the caller of Send leaves alone until the outcome); without,
// every Tail is empty. Both parts are valid until the next call to any
// method of s.
func (s *State) TakeDatagramParts(dst []Datagram, split bool) []Datagram {
	s.assemble(split)
	return s.out.takeParts(dst)
}

func (s *State) assemble(split bool) {
	n, bytes := s.out.assemble(split)
	s.stats.PacketsOut += n
	s.stats.BytesOut += bytes
}

// TakeOutcomes appends the messages finished since the last call to dst and
// returns it.
func (s *State) TakeOutcomes(dst []Outcome) []Outcome { return s.out.takeOutcomes(dst) }

// Drain puts the state in closing mode at now: new DATA is no longer
// taken; messages held for the Inbox are dropped (they were never
// answered, so their senders know nothing was confirmed); and exchanges
// delivered and awaiting their ACK end now, after one last RECV: the
// application has the message, and the ACK would only stop our re-sends.
// Our messages in flight carry on; Busy reports when they are done. Every
// message of ours ends within Lifetime of Drain, those Send takes from
// now on too (the caller's queue may still hold some), so that closing
// waits at most Lifetime however many messages were queued.
func (s *State) Drain(now time.Time) {
	t := s.at(now)
	s.draining = true
	s.closeBy = after(t, s.p.Lifetime)
	s.p.Budget.Give(s.rx.dropHeld() + s.rx.dropPartials() + s.rx.dropStash())
	for {
		e, ok := s.rx.due(never)
		if !ok {
			break
		}
		s.stats.RecvResent++
		s.answer(wire.Recv, e.id, e.form())
		s.end(e, t, false)
	}
}

// Busy reports whether an exchange is still going on: a message in flight,
// a received message held for the Inbox, or a RECV awaiting its ACK.
func (s *State) Busy() bool { return s.tx.len() > 0 || s.rx.open() > 0 }

// Idle reports whether the state holds nothing at all: not busy, and no
// remembered ids. An idle state can be dropped without changing behaviour
// except the RTT estimate.
func (s *State) Idle() bool {
	return !s.Busy() && s.rx.seen.len() == 0 && len(s.rx.asm) == 0 && len(s.rx.stash) == 0
}

// Salvage ends every message in flight with err and returns, appended to
// dst, every outcome not yet taken; it drops the held deliveries and the
// messages in fragments being received, giving their bytes back to the
// budget. It is for a peer that ends before its messages are done, or
// whose goroutine panicked. It relies only on the list of messages, not
// on its order or the schedule, which a panic may have left inconsistent.
func (s *State) Salvage(dst []Outcome, err func(id uuid.UUID, attempts int) error) []Outcome {
	clear(s.tx.byID)
	for _, o := range s.tx.expiry {
		if o.where == done {
			continue
		}
		o.where = done
		s.stats.Failed++
		s.out.outcome(Outcome{
			Receipt:   Receipt{ID: o.msg.ID, Addr: s.addr, Data: o.msg.Data, Err: err(o.msg.ID, o.attempts), Attempts: o.attempts},
			Done:      o.msg.Done,
			NoReceipt: o.msg.NoReceipt,
		})
	}
	s.tx.expiry = nil
	s.tx.messages, s.tx.parked, s.tx.parkedBytes, s.tx.unsent = 0, 0, 0, 0
	s.tx.cc.inFlight = 0
	s.p.Budget.Give(s.rx.dropHeld() + s.rx.dropPartials() + s.rx.dropStash())
	return s.out.takeOutcomes(dst)
}

// Memory is what a State remembers of the peer's messages: the dedupe
// keys of those it delivered, each until it may be forgotten. A State
// that ends before its time (its peer evicted) hands it to the endpoint
// (Forget), and the next State for the address takes it back (Recall), so
// that a late repeat of a message delivered before is still known.
type Memory []Remembered

// Remembered is one delivered message in a Memory.
type Remembered struct {
	key    uint64
	expire time.Time
	acked  bool
}

// Until returns when all of m has expired.
func (m Memory) Until() time.Time {
	var u time.Time
	for _, r := range m {
		if r.expire.After(u) {
			u = r.expire
		}
	}
	return u
}

// Forget returns every delivered message s remembers, and
// those delivered and still awaiting their ACK (remembered as from now,
// ended without ACK). The State must not be used after.
func (s *State) Forget(now time.Time) Memory {
	t := s.at(now)
	m := make(Memory, 0, s.rx.seen.len()+s.rx.open())
	s.rx.seen.all(func(r doneRef) {
		m = append(m, Remembered{key: r.key, expire: s.base.Add(time.Duration(r.expire)), acked: r.acked})
	})
	expire := s.base.Add(time.Duration(after(t, s.p.DedupeHorizon)))
	for _, e := range s.rx.awaiting {
		m = append(m, Remembered{key: e.key(), expire: expire})
	}
	return m
}

// Recall takes back m, a Memory of the same address, as of now: what has
// expired is dropped, the rest is remembered as before (within
// DedupeLimit, newest kept). Call it on a new State, before any packet.
func (s *State) Recall(now time.Time, m Memory) {
	if len(m) > s.p.DedupeLimit {
		m = m[len(m)-s.p.DedupeLimit:]
	}
	for _, r := range m {
		if r.expire.After(now) {
			s.rx.seen.add(r.key, s.at(r.expire), r.acked)
		}
	}
}

// Compact releases memory kept for reuse. The Peer calls it when it goes
// quiet.
func (s *State) Compact() {
	s.tx.compact()
	s.rx.compact()
	s.out.compact()
}

// Stats returns the peer's counters and gauges.
func (s *State) Stats() Stats {
	st := s.stats
	st.InFlight, st.Open, st.Remembered = s.tx.len(), s.rx.open(), s.rx.seen.len()
	st.SRTT, st.RTTVar, st.RTO = s.tx.rtt.srtt, s.tx.rtt.rttvar, s.tx.rtt.rto
	st.MinRTT = s.tx.cc.minRTT
	st.Cwnd, st.InFlightBytes = s.tx.cc.cwnd, s.tx.cc.inFlight
	st.PacingRate = int64(s.tx.pace.rate * float64(time.Second))
	st.Validated = s.proved
	st.Extension = s.ext.status == extSpoken
	return st
}

// amplification is the anti-amplification limit (RFC 9000 8.1): until the
// peer proves it receives our packets, by answering one of them, we send
// it at most 3× the bytes it sent us.
type amplification struct {
	validated bool
	in, out   uint64
}

func (a *amplification) received(n int) { a.in += uint64(n) }

// spare reports whether n more bytes would leave at least half the limit
// unused: room for what matters more than n.
func (a *amplification) spare(n int) bool {
	return a.validated || 2*(a.out+uint64(n)) <= 3*a.in
}

// allow reports whether n more bytes may go out, and counts them if so.
func (a *amplification) allow(n int) bool {
	if !a.validated && a.out+uint64(n) > 3*a.in {
		return false
	}
	a.out += uint64(n)
	return true
}

// probe is an address-validation probe under way: a RECV for nonce, an id
// only we know, which a real peer answers with ACK(nonce).
type probe struct {
	nonce    wire.ID
	active   bool
	trailer  bool  // the last one sent carried our trailer
	sentAt   int64 // the last transmission
	attempts int   // transmissions made
	tried    int64 // the last transmission, or attempt the amplification limit refused
}

// output collects what the state produced since the last Take: plain
// packets, encoded back to back in one buffer as they come; the records
// for EXT datagrams, laid out in datagrams as they come and encoded when
// the batch is taken; and finished messages. It remembers what each
// datagram of the last batch taken was, so that a write that fails can be
// traced to its message (State.WriteFailed).
type output struct {
	format   wire.Format
	size     int    // the largest EXT datagram
	fill     int    // the size EXT datagrams are packed to (setFill)
	opened   uint64 // datagrams opened so far (State.transmit numbers records by it)
	inc      uint64 // our incarnation, in every EXT header
	trailer  []byte // our trailer, made once
	buf      []byte
	pending  []sent // the datagrams in buf
	taken    []sent // the datagrams of the last batch taken
	outcomes []Outcome
	ext      struct {
		data      []sentRef // DATA and FRAG records: messages and units at one transmission
		recv, ack []wire.ID
		groups    []group // the EXT datagrams of the batch, the last one open
		bytes     int     // the records' bytes in groups
	}
}

// group is one EXT datagram of a batch: the records queued while it was
// the open one, as ranges of the queues, and the bytes they take. Records
// go in the open datagram while they fit, and open a new one when they do
// not; so the State knows, as it queues, how much room the open datagram
// has left (State.nextSize cuts fragments to fill it).
type group struct {
	data, recv, ack span
	used            int
}

func newOutput(p *Params, size int) output {
	o := output{format: p.Format, size: size, inc: p.Incarnation}
	o.setFill(initialWindow)
	o.trailer = wire.AppendTrailer(nil, wire.Trailer{Version: wire.ExtVersion, Incarnation: p.Incarnation})
	return o
}

// sent is one datagram: where it ends in the buffer, the bytes that follow
// those (see TakeDatagramParts), and what it carries (for an EXT datagram,
// kind Ext and no id).
type sent struct {
	end  int
	tail []byte
	kind wire.Kind
	id   wire.ID
}

// splitMin is the least fragment payload TakeDatagramParts leaves in the
// message's buffer: below it, a copy costs less than the writer's second
// iovec; the large datagrams of loopback and jumbo frames are above it.
const splitMin = 4096

func (o *output) packet(p wire.Packet) {
	o.buf = o.format.Append(o.buf, p)
	o.pending = append(o.pending, sent{end: len(o.buf), kind: p.Kind, id: p.ID})
}

// room is the room for records in an EXT datagram.
func (o *output) room() int { return o.size - o.format.ExtOverhead() }

// fillRoom is the room for records in an EXT datagram that records are
// packed into: room, or less while the congestion window is small (see
// setFill). A record larger than that still goes, alone in a datagram.
func (o *output) fillRoom() int { return min(o.size, o.fill) - o.format.ExtOverhead() }

// setFill sets how full the State packs EXT datagrams, given the
// congestion window: to at least fillShare datagrams a window (at least
// minFillSize bytes each, at most the datagram size). A window of one or
// two huge datagrams (on loopback they hold 64 KiB, a thousand small
// messages) would lose all of itself to one loss, with nothing sent after
// it to show the loss but a retransmission timeout; in eight, a loss
// costs an eighth and the datagrams after it find it (RFC 9002 6.1).
func (o *output) setFill(cwnd int) { o.fill = max(cwnd/fillShare, minFillSize) }

const (
	fillShare   = 8
	minFillSize = 1200 // what every path carries (DatagramSize's default)
)

// place finds room for a record in the open datagram, growing it by n, or
// opens a new one for it (with it in it: n must then be fresh, the bytes
// of the record alone); grow(g) is n when g is the datagram.
func (o *output) place(grow func(g *group) int) *group {
	gs := o.ext.groups
	if k := len(gs); k > 0 {
		g := &gs[k-1]
		if n := grow(g); g.used+n <= o.fillRoom() {
			g.used += n
			o.ext.bytes += n
			return g
		}
	}
	o.opened++
	o.ext.groups = append(gs, group{
		data: span{len(o.ext.data), len(o.ext.data)},
		recv: span{len(o.ext.recv), len(o.ext.recv)},
		ack:  span{len(o.ext.ack), len(o.ext.ack)},
	})
	g := &o.ext.groups[len(o.ext.groups)-1]
	g.used = grow(g)
	o.ext.bytes += g.used + o.format.ExtOverhead()
	return g
}

// extIDs queues id for a RECV or ACK record.
func (o *output) extIDs(k wire.Kind, id wire.ID) {
	q, ids := &o.ext.ack, func(g *group) *span { return &g.ack }
	if k == wire.Recv {
		q, ids = &o.ext.recv, func(g *group) *span { return &g.recv }
	}
	g := o.place(func(g *group) int {
		n := ids(g).hi - ids(g).lo
		if n == 0 {
			return wire.IDsLen(1)
		}
		return wire.IDsLen(n+1) - wire.IDsLen(n)
	})
	*q = append(*q, id)
	ids(g).hi = len(*q)
}

// extData queues a DATA or FRAG record for r's message or unit at r's
// transmission; one that has been answered or sent again by the time the
// batch is taken is left out.
func (o *output) extData(r sentRef) {
	n := r.o.recordLen()
	g := o.place(func(*group) int { return n })
	o.ext.data = append(o.ext.data, r)
	g.data.hi = len(o.ext.data)
}

// full reports whether the batch holds maxBatch bytes of datagrams.
func (o *output) full() bool { return len(o.buf)+o.ext.bytes >= maxBatch }

// maxBatch bounds the bytes of datagrams one batch holds: the State stops
// sending at it (the Peer writes the batch and wakes again at once), so
// that the batch's buffer, a second copy of what goes out, stays small
// however large the window is. 1 MiB is sixteen loopback datagrams, a
// write system call's worth.
const maxBatch = 1 << 20

// left returns the room left in the open EXT datagram for DATA and FRAG
// records, or 0 if none is open or it holds none yet: records that fill a
// datagram skip the window and the pacer (State.nextSize), so the first
// in each must have passed them, or a datagram of answers would open a
// way past the window in every batch.
func (o *output) left() int {
	if k := len(o.ext.groups); k > 0 && o.ext.groups[k-1].data.hi > o.ext.groups[k-1].data.lo {
		return max(0, o.fillRoom()-o.ext.groups[k-1].used)
	}
	return 0
}

// assemble encodes the EXT datagrams of the batch and returns how many
// datagrams and bytes it made. A record left out (answered meanwhile)
// leaves its datagram that much smaller. With split, a datagram's last
// record, if a fragment of splitMin bytes or more, is encoded without its
// payload, which becomes the datagram's tail.
func (o *output) assemble(split bool) (n, bytes uint64) {
	e := &o.ext
	for _, g := range e.groups {
		start := len(o.buf)
		o.buf = o.format.AppendExt(o.buf, wire.ExtHeader{Version: wire.ExtVersion, Incarnation: o.inc})
		empty := len(o.buf)
		if g.ack.hi > g.ack.lo {
			o.buf = wire.AppendIDs(o.buf, wire.RecAck, e.ack[g.ack.lo:g.ack.hi])
		}
		if g.recv.hi > g.recv.lo {
			o.buf = wire.AppendIDs(o.buf, wire.RecRecv, e.recv[g.recv.lo:g.recv.hi])
		}
		var tail []byte
		for i, r := range e.data[g.data.lo:g.data.hi] {
			switch {
			case !r.live():
			case split && i == g.data.hi-g.data.lo-1 && r.o.parent != nil && r.o.n >= splitMin:
				o.buf, tail = r.o.appendFragHeader(o.buf)
			default:
				o.buf = r.o.appendRecord(o.buf)
			}
		}
		if len(o.buf) == empty {
			o.buf = o.buf[:start] // only dead records
			continue
		}
		o.pending = append(o.pending, sent{end: len(o.buf), tail: tail, kind: wire.Ext})
		n++
		bytes += uint64(len(o.buf) - start + len(tail))
	}
	clear(e.data)
	e.data, e.recv, e.ack, e.groups = e.data[:0], e.recv[:0], e.ack[:0], e.groups[:0]
	e.bytes = 0
	return n, bytes
}

func (o *output) outcome(c Outcome) { o.outcomes = append(o.outcomes, c) }

func (o *output) takeDatagrams(dst [][]byte) [][]byte {
	start := 0
	for _, d := range o.pending {
		dst = append(dst, o.buf[start:d.end:d.end])
		start = d.end
	}
	o.taken = o.rotate()
	return dst
}

func (o *output) takeParts(dst []Datagram) []Datagram {
	start := 0
	for _, d := range o.pending {
		dst = append(dst, Datagram{Head: o.buf[start:d.end:d.end], Tail: d.tail})
		start = d.end
	}
	o.taken = o.rotate()
	return dst
}

// rotate empties the buffer and the pending datagrams, and returns them as
// the batch taken.
func (o *output) rotate() []sent {
	taken := o.pending
	for i := range o.taken {
		o.taken[i].tail = nil // the message's bytes: not kept past the next batch
	}
	o.buf, o.pending = o.buf[:0], o.taken[:0]
	return taken
}

// what returns what the i-th datagram of the last batch taken carried.
func (o *output) what(i int) (wire.Kind, wire.ID, bool) {
	if i < 0 || i >= len(o.taken) {
		return 0, wire.ID{}, false
	}
	return o.taken[i].kind, o.taken[i].id, true
}

func (o *output) takeOutcomes(dst []Outcome) []Outcome {
	dst = append(dst, o.outcomes...)
	clear(o.outcomes)
	o.outcomes = o.outcomes[:0]
	return dst
}

func (o *output) compact() {
	if len(o.pending) == 0 {
		o.buf, o.pending, o.taken = nil, nil, nil
	}
	if len(o.outcomes) == 0 {
		o.outcomes = nil
	}
}
