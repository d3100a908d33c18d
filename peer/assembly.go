package peer

import (
	"bytes"
	"hash/maphash"
	"sort"
	"time"

	"github.com/gtudp/gtudp/wire"
)

// Receiving messages in fragments (the extension's FRAG records; see
// fragments for the sending side). A message's fragments are copied into
// one buffer of the message's size as they come (a spare one the
// application gave back, if there is one: see Spares), and each is answered
// RECV at once, but the one that completes the message: that one opens an
// exchange like a DATA's, held for the Inbox and answered when delivered,
// so the sender's success still means the application has the message.
// Fragments are not exchanges: nothing per fragment is remembered, a
// repeat is known by its bytes being there already, and once the message
// is finished, by the message's id (remembered like a delivered DATA's).
//
// The buffer is taken from the endpoint's budget whole, at the first
// fragment: so only a peer that has proved its address may start one (a
// forged first fragment would otherwise hold the budget for a message
// that never comes); the first fragments from an unproved peer start a
// probe and go unanswered until it is answered. A message that gets no
// new byte for a Lifetime is dropped.

// asmKey names a message in fragments: the sender's id for it, and the
// sender's incarnation (a restarted sender draws ids anew).
type asmKey struct {
	msg wire.ID
	inc uint64
}

// assembly is a message in fragments being received, or received and
// held or awaiting its ACK (done set).
type assembly struct {
	key    asmKey
	total  int
	buf    []byte // the message, as received so far
	have   spans  // the bytes of buf received
	got    int    // their count
	expire int64  // dropped if no new byte comes by then
	index  int    // in receiver.partial, or -1
	done   *inbound
}

func (a *assembly) deadline() int64 { return a.expire }
func (a *assembly) setIndex(i int)  { a.index = i }

// asmOverhead is what a message in fragments is charged in the budget
// beyond its bytes: its bookkeeping, so a message of a few bytes is not
// free.
const asmOverhead = 256

// maxSpans caps the separate runs of bytes a message being received may
// have: holes come from fragments lost or reordered within one window, a
// few hundred at most; a fragment that would make more is not answered
// (its sender re-sends it, by then a neighbour may have come).
const maxSpans = 4096

// msgKey is the dedupe key of a finished message in fragments: like a
// DATA's (doneKey), with a digest of what names the message.
func msgKey(k asmKey, total int) uint64 {
	return doneKey(k.msg, maphash.Comparable(digestSeed, struct {
		inc   uint64
		total int
		tag   uint8
	}{k.inc, total, 'F'}))
}

// span is the bytes [lo, hi).
type span struct{ lo, hi int }

// spans is a set of bytes: sorted, disjoint, non-adjacent spans.
type spans []span

// missing returns how many bytes of [lo, hi) are not in s.
func (s spans) missing(lo, hi int) int {
	n := hi - lo
	for i := sort.Search(len(s), func(i int) bool { return s[i].hi > lo }); i < len(s) && s[i].lo < hi; i++ {
		n -= min(hi, s[i].hi) - max(lo, s[i].lo)
	}
	return n
}

// merged returns where [lo, hi) goes in s: s[i:j] are the spans it
// overlaps or touches.
func (s spans) merged(lo, hi int) (i, j int) {
	i = sort.Search(len(s), func(i int) bool { return s[i].hi >= lo })
	j = i
	for j < len(s) && s[j].lo <= hi {
		j++
	}
	return i, j
}

// add returns s with [lo, hi) added.
func (s spans) add(lo, hi int) spans {
	i, j := s.merged(lo, hi)
	if i == j {
		s = append(s, span{})
		copy(s[i+1:], s[i:])
		s[i] = span{lo, hi}
		return s
	}
	s[i] = span{min(lo, s[i].lo), max(hi, s[j-1].hi)}
	return append(s[:i+1], s[j:]...)
}

// onFrag handles a FRAG record from the peer, of the sender incarnation
// inc. It copies what it takes of the payload, and the payload's bytes of
// the budget stay the caller's; unless it keeps the record itself, to
// handle once the peer has proved its address (see stash), and reports
// so: then the bytes are the state's.
func (s *State) onFrag(t int64, r wire.Record, inc uint64) (kept bool) {
	k := asmKey{msg: r.Msg, inc: inc}
	if r.Total > uint64(s.p.MaxMessage) {
		// Larger than we take: never answered, so the sender fails it.
		s.stats.Withheld++
		return false
	}
	total, lo := int(r.Total), int(r.Offset)
	hi := lo + len(r.Payload)
	if s.rx.seen.has(msgKey(k, total)) {
		// A late repeat of a finished message: answered again, in case
		// the sender is still waiting.
		s.stats.Duplicates++
		s.reply(r.ID, true)
		return false
	}
	a := s.rx.asm[k]
	if a == nil && !s.proved && !s.amp.validated {
		return s.stash(t, r, inc)
	}
	if a == nil {
		if a = s.startAssembly(t, k, total); a == nil {
			s.stats.Withheld++
			return false
		}
	}
	if a.total != total {
		// Not the message we know by this id: a forgery, or a broken
		// sender. Nothing of it is used.
		s.stats.Withheld++
		return false
	}
	if e := a.done; e != nil {
		s.stats.Duplicates++
		if !e.held {
			s.reply(r.ID, true)
		}
		return false
	}
	add := a.have.missing(lo, hi)
	if add == 0 {
		s.stats.Duplicates++
		s.reply(r.ID, true)
		return false
	}
	complete := a.got+add == a.total
	if complete && !s.canHold() {
		s.stats.Withheld++
		return false
	}
	if i, j := a.have.merged(lo, hi); i == j && len(a.have) >= maxSpans {
		s.stats.Withheld++
		return false
	}
	copy(a.buf[lo:], r.Payload)
	a.have = a.have.add(lo, hi)
	a.got += add
	if !complete {
		a.expire = after(t, s.p.Lifetime)
		s.rx.partial.fix(a.index)
		s.answer(wire.Recv, r.ID, formExt)
		return false
	}
	s.rx.partial.remove(a.index)
	s.p.Budget.Give(asmOverhead) // the message's bytes stay charged until delivered
	a.done = s.rx.hold(r.ID, 0, a.buf, true)
	a.done.asm = a
	a.buf, a.have = nil, nil
	return false
}

// stash keeps a fragment from a peer that has not proved its address, and
// starts a probe: a message may be started only by a proved peer (a
// forged first fragment would hold the budget for a message that never
// comes), but a real peer's first fragments should not be lost for the
// round trip the probe takes (its sender would take them for congestion
// and collapse its window). The stash holds at most stashMax bytes, each
// charged to the budget as received, so a forged source holds no more
// than it sent, and it takes them only while the budget has plenty of
// room, so that all forged sources together hold no more than half of
// it, and only for stashTimeout; it is replayed when the probe is answered (validate), and
// dropped unanswered after stashTimeout.
func (s *State) stash(t int64, r wire.Record, inc uint64) bool {
	if s.rx.stashBytes+len(r.Payload) > stashMax || !s.p.Budget.Plenty() {
		s.stats.Withheld++
		return false
	}
	if s.lent {
		r.Payload = bytes.Clone(r.Payload)
	}
	if len(s.rx.stash) == 0 {
		s.rx.stashUntil = after(t, stashTimeout)
	}
	s.rx.stash = append(s.rx.stash, stashed{r: r, inc: inc})
	s.rx.stashBytes += len(r.Payload)
	s.startProbe(t)
	return true
}

// stashed is a fragment kept until its sender proves its address.
type stashed struct {
	r   wire.Record
	inc uint64
}

const (
	stashMax     = 64 << 10
	stashTimeout = 2 * time.Second
)

// replayStash handles the stashed fragments, the peer having proved its
// address.
func (s *State) replayStash(t int64) {
	st := s.rx.stash
	s.rx.stash, s.rx.stashBytes = nil, 0
	for _, f := range st {
		if !s.onFrag(t, f.r, f.inc) {
			s.p.Budget.Give(len(f.r.Payload))
		}
	}
}

// dropStash lets the stashed fragments go unanswered and returns the bytes
// of budget they held.
func (r *receiver) dropStash() int {
	n := r.stashBytes
	r.stash, r.stashBytes = nil, 0
	return n
}

// expireStash drops the stash if its sender has not proved itself by t.
func (s *State) expireStash(t int64) {
	if len(s.rx.stash) > 0 && s.rx.stashUntil <= t {
		s.stats.Withheld += uint64(len(s.rx.stash))
		s.p.Budget.Give(s.rx.dropStash())
	}
}

// nextStash returns when the stash expires, or never.
func (r *receiver) nextStash() int64 {
	if len(r.stash) == 0 {
		return never
	}
	return r.stashUntil
}

// startAssembly starts receiving the message k of total bytes, if the
// peer may start one and the budget has room for it, and returns it (nil
// if not).
func (s *State) startAssembly(t int64, k asmKey, total int) *assembly {
	if s.draining || len(s.rx.partial) >= s.p.RecvWindow {
		return nil
	}
	if !s.p.Budget.Take(total + asmOverhead) {
		return nil
	}
	buf, ok := s.p.Spares.Get(total)
	if !ok {
		buf = make([]byte, total)
	}
	a := &assembly{key: k, total: total, buf: buf, index: -1, expire: after(t, s.p.Lifetime)}
	if s.rx.asm == nil {
		s.rx.asm = make(map[asmKey]*assembly)
	}
	s.rx.asm[k] = a
	s.rx.partial.push(a)
	return a
}

// canHold reports whether a new message can be held for the Inbox.
func (s *State) canHold() bool {
	return !s.draining && s.rx.open() < s.p.RecvWindow && s.rx.held.len() < s.p.HoldLimit && !s.dedupeFull()
}

// expireAssemblies drops the messages in fragments that got no new byte
// for a Lifetime, by t.
func (s *State) expireAssemblies(t int64) {
	for len(s.rx.partial) > 0 && s.rx.partial.min().expire <= t {
		s.stats.Unfinished++
		s.p.Budget.Give(s.rx.dropPartial(s.rx.partial.min()))
	}
}

// dropPartial forgets a: a message in fragments not yet complete. It
// returns the bytes of budget it held.
func (r *receiver) dropPartial(a *assembly) int {
	r.partial.remove(a.index)
	delete(r.asm, a.key)
	return a.total + asmOverhead
}

// dropPartials forgets every message in fragments not yet complete and
// returns the bytes of budget they held.
func (r *receiver) dropPartials() int {
	n := 0
	for len(r.partial) > 0 {
		n += r.dropPartial(r.partial.min())
	}
	return n
}

// nextPartial returns when a message in fragments is next due to be
// dropped, or never.
func (r *receiver) nextPartial() int64 {
	if len(r.partial) == 0 {
		return never
	}
	return r.partial.min().expire
}
