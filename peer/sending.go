package peer

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/gtudp/gtudp/wire"
)

// The sending side of the State: our messages, from Send to their
// outcome. A message waits until the congestion window has room and the
// pacer lets it go (RFC 9002 section 7); a message answered out of order
// by a later one's RECV is lost by the packet or time threshold (section
// 6.1, RACK) and goes again; a probe timeout re-sends the oldest message
// in flight when nothing is answered (section 6.2); a message that reaches
// its Lifetime or MaxAttempts fails.

// Room returns how many more messages Send accepts before the window is
// full.
func (s *State) Room() int { return s.p.Window - s.tx.len() }

// Hungry reports whether the state would take another message now
// without growing its backlog: the bytes of its messages not yet sent
// once are below twice the congestion window (at least minBacklog). A
// message taken waits in the state with its Lifetime running; one held
// back by the caller does not, so a long queue of large messages on a
// slow path is not failed by the time it spent behind its own kind.
//
// Messages parked while a probe asks whether the peer speaks the
// extension are counted apart, up to maxParked: they are not waiting for
// the path but for one answer, and a small message behind them, which
// needs no probe, should not wait for it too (a lost probe costs a
// retransmission timeout).
func (s *State) Hungry() bool {
	return s.tx.unsent-s.tx.parkedBytes < max(2*s.tx.cc.cwnd, minBacklog) && s.tx.parkedBytes < maxParked
}

// minBacklog is the least backlog Hungry allows: a few round trips of a
// slow path, and messages of 64 KiB one at a time.
const minBacklog = 64 << 10

// maxParked bounds the bytes of parked messages Hungry lets in beside the
// backlog: once the probe is answered they are all backlog.
const maxParked = 1 << 20

// InFlight returns how many of our messages await their outcome.
func (s *State) InFlight() int { return s.tx.len() }

// Send starts sending m: it gets an id unique among the peer's pending
// messages, and its DATA goes out as soon as the congestion window and the
// pacer allow (at once, unless many are in flight). It returns
// ErrWindowFull when Window messages are pending, and wire.ErrTooLarge
// when m.Data is larger than MaxMessage, or than one datagram holds and
// the peer cannot take fragments (see settle); m is then not taken.
// Otherwise m ends with exactly one Outcome, at the latest Lifetime after
// Send. The state keeps m.Data until then, and reads it as it sends.
func (s *State) Send(now time.Time, m Outgoing) error {
	if s.tx.len() >= s.p.Window {
		return ErrWindowFull
	}
	if n := len(m.Data); n > s.p.MaxMessage {
		return fmt.Errorf("%w: %d bytes, at most %d (MaxMessage)", wire.ErrTooLarge, n, s.p.MaxMessage)
	} else if n > s.p.Format.MaxPayload() && (!s.extOn() || s.ext.probedPlain) {
		return s.tooLarge(n)
	}
	t := s.at(now)
	expire := after(t, s.p.Lifetime)
	if s.draining {
		expire = min(expire, s.closeBy)
	}
	s.tx.start(m, s.p.headerLen()+len(m.Data)+wireOverhead, expire)
	s.stats.Sent++
	s.pump(t)
	return nil
}

// tooLarge is the error of a message of n bytes, larger than one
// datagram, to a peer that cannot take fragments.
func (s *State) tooLarge(n int) error {
	return fmt.Errorf("%w: %d bytes, and the peer does not speak the gtudp extension: at most %d fit in one datagram", wire.ErrTooLarge, n, s.p.Format.MaxPayload())
}

// pump sends queued messages, lost ones first, while the window has room
// and the pacer allows; a message in fragments sends its next unit.
func (s *State) pump(t int64) {
	s.tx.pace.setRate(s.tx.cc.cwnd, s.tx.rtt.srtt, s.tx.cc.cwnd < s.tx.cc.ssthresh)
	s.out.setFill(s.tx.cc.cwnd)
	for {
		o := s.tx.next()
		if o == nil || s.out.full() {
			return
		}
		if !o.settled && !s.settle(o, t) {
			continue // parked, or failed: it has left the queue
		}
		n, size, fill := s.nextSize(o)
		if !fill && (!s.tx.cc.room(size) || !s.tx.pace.ready(t, size)) {
			return
		}
		if o.frags != nil {
			o = s.tx.cut(o, n)
			o.size = size
		} else {
			s.tx.take(o)
		}
		s.transmit(o, t)
	}
}

// nextSize returns what o sends next: for a message in fragments the
// payload of its next unit and that unit's size, else o's size. fill says
// it goes in the EXT datagram this wake-up is filling: it adds no
// datagram, so neither the pacer nor the window holds it back (it still
// counts in both; the window is overshot by less than a datagram, as
// TCP's is by a segment).
// A message in fragments cuts its next unit to fill that datagram, if
// enough is left of it; so messages a little larger than a datagram go
// in little more than one datagram each, not two.
func (s *State) nextSize(o *outbound) (n, size int, fill bool) {
	left := s.out.left()
	if s.tx.cc.inFlight >= s.tx.cc.cwnd {
		left = 0 // the window is full: no filling past it
	}
	if o.frags == nil {
		return len(o.msg.Data), o.size, o.ext && o.recordLen() <= left
	}
	total, off := uint64(len(o.msg.Data)), uint64(o.frags.cut)
	rest := len(o.msg.Data) - o.frags.cut
	if left >= minFill {
		if n = min(rest, wire.MaxFragPayload(left, total, off)); n > 0 {
			return n, wire.FragLen(total, off, n) + extShare, true
		}
	}
	n = min(rest, wire.MaxFragPayload(s.out.fillRoom(), total, off))
	// A unit that starts a datagram is charged the datagram's headers.
	return n, wire.FragLen(total, off, n) + s.p.Format.ExtOverhead() + wireOverhead, false
}

// minFill is the least room left in a datagram worth cutting a unit for.
const minFill = 128

// extRoom is the room for records in an EXT datagram.
func (s *State) extRoom() int { return s.out.room() }

// settle decides, when a message first reaches the front of the queue,
// how it goes: to a peer that speaks the extension, as a DATA record if
// it fits in one datagram, else in fragments; to one that may speak it
// (nothing heard yet), plain if it fits in one EXT datagram, else it is
// parked while a probe asks (see ext.go); to one that does not, plain, as
// one datagram up to the largest UDP payload, and beyond that it fails
// with ErrTooLarge. It reports whether o goes now.
func (s *State) settle(o *outbound, t int64) bool {
	o.settled = true
	n := len(o.msg.Data)
	small := n <= wire.MaxDataPayload(s.extRoom())
	switch {
	case s.ext.status == extSpoken && small:
		o.ext = true
		o.size = wire.DataLen(n) + extShare
	case s.ext.status == extSpoken:
		s.tx.fragment(o)
	case s.extOn() && !s.extKnown() && !small:
		s.tx.park(o)
		s.startProbe(t)
		return false
	case n > s.p.Format.MaxPayload():
		s.tx.land(o)
		s.finish(o, s.tooLarge(n), 0)
		return false
	}
	return true
}

// transmit sends o's DATA now, unless o has had its MaxAttempts (it fails)
// or the amplification limit holds it back (it waits for the peer to
// prove its address: see validate; a probe goes out instead).
func (s *State) transmit(o *outbound, t int64) {
	if o.attempts >= s.p.MaxAttempts {
		// A loss found by packets or by time is an inference, and answers
		// do come out of order (a receiver short of amplification budget
		// answers a later DATA first): the last transmission has one
		// retransmission timeout (RFC 6298's, at least MinRTO) to be
		// answered before the message fails. A fragment fails its whole
		// message, whose lifetime the others still need: it fails now.
		if end := after(o.sentAt, s.tx.rtt.rto); o.parent == nil && t < end && o.index >= 0 {
			if end < o.expire {
				o.expire = end
				s.tx.expiry.fix(o.index)
			}
			return
		}
		s.fail(o, s.attemptsReason())
		return
	}
	var ok bool
	if o.ext {
		if ok = s.amp.allow(o.recordLen()); !ok {
			s.stats.Limited++
		}
	} else {
		ok = s.emit(wire.Data, o.id, o.msg.Data)
	}
	if !ok {
		if o.where == flying {
			s.tx.cc.gone(o.size)
		}
		o.where = blocked
		s.startProbe(t)
		return
	}
	if o.attempts > 0 {
		s.stats.DataResent++
	}
	s.tx.transmitted(o, t)
	if o.ext {
		s.out.extData(sentRef{o: o, seq: o.seq})
	} else {
		s.out.opened++ // the plain DATA emit wrote
	}
	o.dg = s.out.opened
	s.tx.pace.spend(o.size)
}

// extShare is what a DATA record is charged, in the window, for its share
// of its datagram's headers (IP, UDP, the EXT header): a full datagram
// holds a dozen or more small records.
const extShare = 8

// attemptsReason is why a message that had all its transmissions fails.
func (s *State) attemptsReason() string {
	return fmt.Sprintf("attempt limit %d reached", s.p.MaxAttempts)
}

// fail ends o undelivered, for reason; a unit fails its message.
func (s *State) fail(o *outbound, reason string) {
	if o.parent != nil {
		o = o.parent
	}
	s.tx.land(o)
	s.finish(o, &UndeliveredError{Addr: s.addr, ID: o.msg.ID, Attempts: o.attempts, Reason: reason, Err: o.writeErr}, 0)
}

// onRecv handles a RECV for id and reports whether it answered a message
// of ours in flight; the caller then runs loss detection and the pump,
// once for all the RECVs of one datagram (see onExt).
func (s *State) onRecv(t, at int64, id wire.ID, f form) bool {
	o, ok := s.tx.lookup(id)
	if !ok || o.attempts == 0 {
		// The original answers ACK here: our earlier ACK was lost. (A RECV
		// for a message never sent is a guess: answered all the same, as
		// it costs nothing, but it answers nothing.) A probe of a gtudp
		// peer's, with its trailer, learns ours from the answer.
		s.stats.UnknownRecv++
		s.answer(wire.Ack, id, f)
		return false
	}
	s.heardTrailer(t, f, true)
	s.validate(t)
	rtt := time.Duration(max(at, o.first) - o.first)
	switch {
	case o.attempts == 1:
		s.sample(rtt) // Karn: sent once, so this RECV answers it
	case at-o.sentAt < int64(s.tx.cc.minRTT):
		// The RECV came too soon after the last re-send to answer it: it
		// answers an earlier one, and the re-send was spurious. Undo what
		// its loss cost, widen the reordering the loss detection allows,
		// and, if there was only one earlier transmission, take its RTT.
		s.stats.Spurious++
		s.tx.cc.spurious()
		s.tx.reorder = min(s.tx.reorder*1.5, 4)
		if o.attempts == 2 {
			s.sample(rtt)
		}
	}
	if o.where == flying {
		s.tx.cc.acked(o.size, o.sentAt, o.seq, s.tx.nextSeq, s.tx.rtt.srtt)
	}
	if o.attempts == 1 || at-o.sentAt >= int64(s.tx.cc.minRTT) {
		// An answer to the latest transmission says how far the peer has
		// got, and the transmissions before it not yet answered are lost
		// (by three, or by time). One to a message sent again may answer
		// it when it came at least a round trip after the re-send
		// (sooner, it answers an earlier one: see above), and counts when
		// its datagram answers nothing sent once (see report): when a
		// whole window has been lost, the re-sends a probe timeout makes
		// are all there is to learn from. (A repeat is answered at once,
		// ahead of messages the peer holds for a slow application, which
		// are then re-sent for nothing; the peer drops those.)
		s.tx.report.note(sentMark{o.seq + 1, o.dg}, o.attempts == 1)
	}
	s.tx.ptoCount = 0
	// Out of the table before the ACK goes out: once ACK(id) is written,
	// DATA(id) never is again (the original forgets an id at its ACK, so
	// a DATA after it would be delivered twice).
	s.tx.land(o)
	if p := o.parent; p == nil {
		s.answer(wire.Ack, id, f)
		s.finish(o, nil, rtt)
	} else {
		// A unit: its message succeeds with the last answer, and only
		// that is acknowledged (the receiver sent it on delivery and
		// waits for the ACK; the others need none).
		s.tx.release(o)
		if p.answered() {
			s.tx.land(p)
			s.answer(wire.Ack, id, f)
			s.finish(p, nil, time.Duration(max(at, p.first)-p.first))
		}
	}
	return true
}

// sample feeds an RTT sample to the estimator and the controller.
func (s *State) sample(r time.Duration) {
	s.tx.rtt.sample(r)
	s.tx.cc.sample(r)
}

// lossDelay is the time threshold of loss detection (RFC 9002 6.1.2):
// 9/8 of the larger of the smoothed and latest RTT, at least the timer
// granularity, widened by spurious losses.
func (s *State) lossDelay() int64 {
	r := max(s.tx.rtt.srtt, s.tx.rtt.latest)
	return int64(max(time.Duration(float64(r)*9/8*s.tx.reorder), granularity))
}

// detectLoss takes in the answers of the datagram just read (s.tx.report),
// declares lost the messages in flight whose transmission came before one
// answered since, by packetThreshold transmissions or by the time
// threshold, and sets when the next may be lost by time.
func (s *State) detectLoss(t int64) {
	if m := s.tx.report.take(); m.seq > s.tx.largestAcked {
		s.tx.largestAcked, s.tx.largestDg = m.seq, m.dg
	}
	s.tx.lossTime = never
	delay := s.lossDelay()
	for s.tx.sent.len() > 0 {
		r := s.tx.sent.front()
		if !r.live() {
			s.tx.sent.pop()
			continue
		}
		if r.seq+1 >= s.tx.largestAcked {
			return // sent after everything answered: nothing says it is lost
		}
		o := r.o
		// By packets: packetThreshold datagrams, not records, sent after
		// it were answered first. One datagram holds hundreds of records,
		// and a datagram overtaken by the next on the way is reordering,
		// not loss (RFC 9002 counts packets).
		if o.sentAt+delay > t && s.tx.largestDg-o.dg < packetThreshold {
			s.tx.lossTime = o.sentAt + delay
			return
		}
		s.tx.sent.pop()
		s.stats.Lost++
		s.tx.lose(o)
		s.tx.cc.lost(o.size, o.sentAt, t, s.tx.rtt.srtt)
	}
}

// pto returns the probe timeout: the retransmission timeout of RFC 6298
// (SRTT + 4 RTTVAR, within MinRTO and MaxRTO; InitialRTO before a sample)
// doubled for each probe timeout in a row, at most MaxRTO.
//
// To a peer that speaks the extension it is RFC 9002's instead (6.2.1:
// SRTT + max(4 RTTVAR, 1 ms) + the peer's answer delay, taken to be one
// more SRTT: the peer answers at once, but a busy peer or a long window's
// queue makes answers late by about that), without MinRTO's floor.
// MinRTO keeps an original peer, which delivers every copy of a DATA,
// from re-sends that come too soon; a gtudp peer drops the copies, and
// there the floor only stalls the sender. When all that is in flight is a
// few datagrams, a lost one, or the one datagram of RECVs answering them
// all, leaves nothing after it to show the loss: the probe timeout is
// then all there is, and 10 ms on a path of 0.2 ms is fifty round trips
// idle.
func (s *State) pto() time.Duration {
	if s.ext.status == extSpoken && s.tx.rtt.sampled {
		r := &s.tx.rtt
		return doubled(clamp(2*r.srtt+max(4*r.rttvar, granularity), granularity, r.max), s.tx.ptoCount, r.max)
	}
	return s.tx.rtt.backoff(s.tx.ptoCount + 1)
}

// longQuiet reports whether the peer has been quiet long enough at t for
// more than loss: persistentPTOs probe timeouts in a row, and nothing
// heard for three retransmission timeouts (RFC 6298's, with MinRTO: a
// fast probe timeout must not take a scheduler's hiccup for a dead path).
func (s *State) longQuiet(t int64) bool {
	return s.tx.ptoCount >= persistentPTOs && t-s.heardAt >= 3*int64(s.tx.rtt.rto)
}

// ptoTime returns when the probe timeout fires, or never with nothing in
// flight.
func (s *State) ptoTime() int64 {
	if s.tx.cc.inFlight == 0 {
		return never
	}
	return after(s.tx.lastSent, s.pto())
}

// tickSend does what is due at t on the sending side: messages past their
// lifetime fail, lost ones are found by time, a probe timeout re-sends the
// oldest message in flight, and the pacer lets more go.
func (s *State) tickSend(t int64) {
	for {
		o, ok := s.tx.expired(t)
		if !ok {
			break
		}
		var reason string
		switch {
		case o.attempts >= s.p.MaxAttempts: // its last transmission's RTO ended (see transmit)
			reason = s.attemptsReason()
		case s.draining && o.expire == s.closeBy:
			reason = fmt.Sprintf("the endpoint closed and %v (Lifetime) passed", s.p.Lifetime)
		default:
			reason = fmt.Sprintf("lifetime %v exceeded", s.p.Lifetime)
		}
		if o.where == blocked {
			reason += " while the address had not answered (amplification limit)"
		}
		s.fail(o, reason)
	}
	if s.tx.lossTime <= t {
		s.detectLoss(t)
	}
	if s.ptoTime() <= t {
		s.onPTO(t)
	}
	s.pump(t)
}

// onPTO handles a probe timeout: nothing was answered for a while, so the
// oldest message in flight goes again, whatever the window (RFC 9002 6.2:
// a probe must get through to learn anything), and the timeout doubles.
// Several in a row, over a long quiet, are persistent congestion.
func (s *State) onPTO(t int64) {
	s.tx.ptoCount++
	s.stats.Timeouts++
	if s.longQuiet(t) && s.tx.cc.cwnd > s.tx.cc.minWindow() {
		s.tx.cc.persistent(t)
	}
	if o := s.tx.oldestFlying(); o != nil {
		s.extFallback(t, o)
		s.transmit(o, t)
	}
}

// sendDeadline returns the earliest deadline of the sending side.
func (s *State) sendDeadline() int64 {
	next := min(s.tx.lossTime, s.ptoTime())
	if len(s.tx.expiry) > 0 {
		next = min(next, s.tx.expiry.min().expire)
	}
	if o := s.tx.next(); o != nil {
		if _, size, _ := s.nextSize(o); s.tx.cc.room(size) {
			next = min(next, s.tx.pace.next(s.tx.pace.last, size)) // the pacer holds it
		}
	}
	return next
}

// startProbe sends a probe, unless one is under way, so that an address
// we hold DATA back from can prove itself: a RECV for a random id of ours.
// The original answers a RECV it knows nothing of with its ACK, as gtudp
// does, and an ACK for an id only we could know proves the address
// receives what we send. The probe is small, so it fits within the
// amplification limit that holds the DATA back.
func (s *State) startProbe(t int64) {
	if s.probe.active {
		return
	}
	for {
		s.probe.nonce = s.tx.ids.id()
		// Not an id of ours in flight, nor one of the peer's we know of:
		// the probe must answer nothing.
		_, ours := s.tx.lookup(s.probe.nonce)
		if !ours && !s.rx.known(s.probe.nonce) {
			break
		}
	}
	s.probe.active, s.probe.attempts = true, 0
	s.sendProbe(t)
}

// sendProbe sends the probe's RECV, with our trailer if it fits.
func (s *State) sendProbe(t int64) {
	if ok, trailer := s.answerHow(wire.Recv, s.probe.nonce, formPlain, true); ok {
		s.probe.attempts++
		s.probe.trailer = trailer
		s.probe.sentAt = t
	}
	s.probe.tried = t
}

// probeDue returns when the probe goes again, or never. It is reckoned
// from the retransmission timeout of now, not of when the probe went: the
// first probe often goes before any RTT sample, under InitialRTO, and the
// samples that come meanwhile (from small messages, which need no probe)
// should shorten the wait for a lost one.
func (s *State) probeDue() int64 {
	if !s.probe.active {
		return never
	}
	return after(s.probe.tried, s.tx.rtt.backoff(max(s.probe.attempts, 1)))
}

// tickProbe re-sends the probe when it is due, while DATA is held back
// or a message is parked.
func (s *State) tickProbe(t int64) {
	if s.probeDue() > t {
		return
	}
	if s.tx.parked == 0 && len(s.tx.blocked()) == 0 {
		s.probe.active = false // nothing held back any more
		return
	}
	s.sendProbe(t)
}

// validate records that the peer has proved its address, by a RECV for
// one of our DATA or an ACK for our probe: DATA held back by the
// amplification limit goes out now (it is queued again, first).
func (s *State) validate(t int64) {
	if s.tx.parked == 0 {
		s.probe.active = false // else it still asks about the extension
	}
	s.proved = true
	if len(s.rx.stash) > 0 {
		s.replayStash(t)
	}
	if s.amp.validated {
		return
	}
	s.amp.validated = true
	for _, o := range s.tx.blocked() {
		o.where = lost // not lost, but queued to go before new messages
		s.tx.retx.push(o)
	}
	s.pump(t)
}

// Cancel ends the message with the given ID, if it is still pending, with
// a failure Outcome, and reports whether it found it. The error is err
// (the caller's context error) if no DATA of it went out; otherwise the
// peer may have it, and the error says so: it matches both err and
// ErrOutcomeUnknown. A message whose outcome is already known is left
// alone: a result that is ready wins.
func (s *State) Cancel(now time.Time, id uuid.UUID, err error) bool {
	o, ok := s.tx.find(id)
	if !ok {
		return false
	}
	s.tx.land(o)
	if o.attempts > 0 {
		err = &cancelledError{cause: err, attempts: o.attempts}
	}
	s.finish(o, err, 0)
	return true
}

// WriteFailed records that the i-th datagram of the last batch taken
// (TakeDatagrams) could not be written, with err. A DATA that fails is
// re-sent like a lost one, and if its message ends undelivered the error
// says why; but an error no re-send can cure (an address the socket
// cannot reach, a datagram too large for it) ends the message at once.
func (s *State) WriteFailed(now time.Time, i int, err error) {
	k, id, ok := s.out.what(i)
	if !ok || k != wire.Data {
		return
	}
	o, ok := s.tx.lookup(id)
	if !ok {
		return
	}
	o.writeErr = err
	if permanent(err) {
		s.tx.land(o)
		s.finish(o, &UndeliveredError{Addr: s.addr, ID: o.msg.ID, Attempts: o.attempts, Reason: "the socket cannot send it", Err: err}, 0)
	}
}

// permanent reports whether a write error is one no re-send can cure.
func permanent(err error) bool {
	var ae *net.AddrError
	return errors.As(err, &ae) ||
		errors.Is(err, syscall.EAFNOSUPPORT) || errors.Is(err, syscall.EINVAL) ||
		errors.Is(err, syscall.EMSGSIZE) || errors.Is(err, syscall.EACCES) ||
		errors.Is(err, syscall.EDESTADDRREQ)
}

// finish ends an outgoing message with err (nil: delivered) and releases
// its entry; o must be out of the sender's table.
func (s *State) finish(o *outbound, err error, rtt time.Duration) {
	if err == nil {
		s.stats.Confirmed++
	} else {
		s.stats.Failed++
	}
	s.out.outcome(Outcome{
		Receipt:   Receipt{ID: o.msg.ID, Addr: s.addr, Data: o.msg.Data, Err: err, Attempts: o.attempts, RTT: rtt},
		Done:      o.msg.Done,
		NoReceipt: o.msg.NoReceipt,
	})
	s.tx.release(o)
}
