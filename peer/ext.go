package peer

import (
	"bytes"

	"github.com/gtudp/gtudp/wire"
)

// The gtudp extension, between gtudp peers only (package wire has the
// forms). We append a trailer to every RECV and ACK we send, which the
// original ignores; a peer counts as speaking the extension once a trailer
// comes back on a RECV for one of our DATA, or an ACK for our probe: an
// answer to something only we knew, so no off-path host can switch a peer
// into the extension. From then on our new messages go as DATA records in
// EXT datagrams, and RECVs and ACKs for them as records, many to a
// datagram, packed with whatever else the same wake-up produced: no
// waiting is added. What the peer sends in EXT form is answered in EXT
// form, what it sends plain is answered plain.
//
// A message keeps the form of its first transmission: its re-sends carry
// the same bytes, so the receiver's dedupe knows them. A peer that stops
// speaking the extension (nothing of it heard since the oldest message
// unanswered when a probe timeout fires) gets our new messages plain
// again; those sent in EXT form end at their limits.

// extStatus is what we know of the peer's extension.
type extStatus uint8

const (
	extUnknown extStatus = iota // no trailer seen yet: plain, trailers on
	extSpoken                   // a trailer answered one of ours: EXT form
	extPlain                    // several answers without one: plain, trailers off
)

// plainAnswers is how many RECVs for our DATA without a trailer, in a row,
// make the peer plain: fewer could be a gtudp peer whose amplification
// limit left no room for its trailer.
const plainAnswers = 3

// extension is the State's account of the peer's extension.
type extension struct {
	status  extStatus
	heard   int64 // when something of the extension last came from the peer
	plainIn int   // RECVs for our DATA without a trailer, in a row
	// probedPlain: our probe, with our trailer, was answered without
	// one. Only that makes a large message fail with ErrTooLarge: a
	// gtudp peer answers a probe with its trailer always, but may answer
	// DATA without (its amplification limit leaves no room to spare).
	probedPlain bool
	peerInc     uint64 // the incarnation in the peer's last EXT datagram
}

// incMix turns a sender's incarnation into what is mixed into the digest of
// its messages: zero for plain DATA, so a restarted sender's EXT DATA can
// never be taken for a message of its earlier incarnation.
func incMix(inc uint64) uint64 { return inc * 0x9E3779B97F4A7C15 }

// extOn reports whether the extension is on for this endpoint.
func (s *State) extOn() bool { return len(s.p.Format.Ext) > 0 }

// onExt handles an EXT datagram: body is what follows its type identifier.
// The DATA payloads in it are the state's (the budget's bytes with them).
func (s *State) onExt(t, at int64, body []byte) {
	h, recs, err := wire.ParseExt(body)
	if err != nil || !s.extOn() {
		return // the reader checked it: cannot happen
	}
	s.ext.heard = t
	s.ext.peerInc = h.Incarnation
	// The RECVs of one datagram are one report, like a QUIC ACK frame:
	// loss detection runs once they are all in. Their order is not the
	// order we sent in (the peer answers a fragment when it arrives, but
	// the fragment that completes a message only when it delivers it),
	// and taken one by one, a later answer ahead of an earlier one in the
	// same datagram would make the earlier one look lost.
	answered := false
	for {
		r, ok := recs.Next()
		if !ok {
			break
		}
		switch r.Type {
		case wire.RecData:
			p := r.Payload[:len(r.Payload):len(r.Payload)] // the message's own: no appending into the next record
			if s.lent {
				p = bytes.Clone(r.Payload)
			}
			if !s.hold(t, r.ID, p, incMix(h.Incarnation), true) {
				s.p.Budget.Give(len(p))
			}
		case wire.RecRecv:
			for i := range r.NumIDs() {
				answered = s.onRecv(t, at, r.IDAt(i), formExt) || answered
			}
		case wire.RecAck:
			for i := range r.NumIDs() {
				s.onAck(t, at, r.IDAt(i), formExt)
			}
		case wire.RecFrag:
			if !s.onFrag(t, r, h.Incarnation) {
				s.p.Budget.Give(len(r.Payload)) // copied, if taken: the datagram's bytes go back
			}
		}
	}
	if answered {
		s.detectLoss(t)
		s.pump(t)
	}
}

// form is how a RECV or ACK came, and so how to answer it.
type form uint8

const (
	formPlain   form = iota // plain, no trailer
	formTrailer             // plain, with a trailer
	formExt                 // a record of an EXT datagram
)

// heardTrailer notes how an answer to one of ours came (if answered is
// set): with a trailer, or as a record of an EXT datagram, the peer
// speaks the extension (again, after a fallback); plain, a few times in a
// row while we know nothing, it does not.
func (s *State) heardTrailer(t int64, f form, answered bool) {
	defer func() {
		if s.extKnown() {
			s.tx.unpark() // the caller pumps
		}
	}()
	switch {
	case !s.extOn() || !answered:
	case f == formTrailer || f == formExt:
		s.ext.heard = t
		s.ext.plainIn = 0
		s.ext.status = extSpoken
		s.ext.probedPlain = false
	case f == formPlain && s.ext.status == extUnknown:
		if s.ext.plainIn++; s.ext.plainIn >= plainAnswers {
			s.ext.status = extPlain
		}
	}
}

// extKnown reports whether we know if the peer speaks the extension: it
// answered in it, or our probe was answered without it.
func (s *State) extKnown() bool {
	return s.ext.status == extSpoken || s.ext.status == extPlain && s.ext.probedPlain
}

// answer sends a RECV or ACK for id in form f, the form of what it
// answers: a record of an EXT datagram, or a plain packet with our
// trailer while the peer may speak the extension and the amplification
// limit has room to spare for it (a trailer must not crowd out a reply of
// the application's: to a peer that has sent us little, the first answers
// go without) — room enough, for an answer to a packet with a trailer,
// which asks for ours.
func (s *State) answer(k wire.Kind, id wire.ID, f form) bool {
	ok, _ := s.answerHow(k, id, f, false)
	return ok
}

// answerHow is answer, and says whether a plain answer carried the
// trailer; ask sends it whatever we know of the peer (a probe).
func (s *State) answerHow(k wire.Kind, id wire.ID, f form, ask bool) (ok, trailer bool) {
	if f == formExt {
		if !s.amp.allow(wire.IDsLen(1)) {
			s.stats.Limited++
			return false, false
		}
		s.out.extIDs(k, id)
		return true, false
	}
	n := s.p.headerLen() + wire.TrailerLen
	want := ask || f == formTrailer || s.ext.status != extPlain
	if s.extOn() && want && (ask || f == formTrailer || s.amp.spare(n)) && s.amp.allow(n) {
		s.stats.PacketsOut++
		s.stats.BytesOut += uint64(n)
		s.out.packet(wire.Packet{Kind: k, ID: id, Payload: s.out.trailer})
		return true, true
	}
	return s.emit(k, id, nil), false
}

// extFallback makes the peer plain again for our new messages when a probe
// timeout finds nothing of the extension heard since oldest was sent in
// EXT form, and either plain packets heard since (the address now answers
// as the original does) or a long quiet (see longQuiet: it answers nothing
// of ours, as an original drops EXT datagrams unread). A single
// timeout with nothing heard at all is loss, which the extension's
// datagrams suffer like any others: falling back then would hold the next
// large messages for a probe, on the paths that can least afford it.
func (s *State) extFallback(t int64, oldest *outbound) {
	if s.ext.status != extSpoken || oldest == nil || !oldest.ext || s.ext.heard > oldest.sentAt {
		return
	}
	if s.heardAt > oldest.sentAt || s.longQuiet(t) {
		s.ext.status = extUnknown
		s.stats.ExtFallbacks++
	}
}
