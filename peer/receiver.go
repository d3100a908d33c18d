package peer

import (
	"encoding/binary"
	"hash/maphash"

	"github.com/gtudp/gtudp/wire"
)

// inbound is a received exchange not yet finished: held (waiting for room
// in the Inbox, not yet answered) or delivered and awaiting its ACK.
type inbound struct {
	id       wire.ID
	digest   uint64
	data     []byte // while held
	held     bool
	ext      bool // came in EXT form: answered so
	resent   bool // RECV sent again on a duplicate DATA: no RTT sample (Karn)
	attempts int  // timer-driven RECV transmissions
	first    int64
	due      int64
	index    int // in receiver.awaiting, or -1
	// asm is the message in fragments this exchange completed, if any: it
	// names the message, and the exchange's end ends it.
	asm *assembly
	// next is the next open exchange under the same id: the original
	// can send two messages under one id (its ids are a checksum plus a
	// counter), told apart by their payloads.
	next *inbound
}

func (e *inbound) deadline() int64 { return e.due }

// key returns the key the exchange is remembered by once finished.
func (e *inbound) key() uint64 {
	if e.asm != nil {
		return msgKey(e.asm.key, e.asm.total)
	}
	return doneKey(e.id, e.digest)
}

// form returns the form of its RECVs.
func (e *inbound) form() form {
	if e.ext {
		return formExt
	}
	return formPlain
}
func (e *inbound) setIndex(i int) { e.index = i }

// receiver is the State's side of the peer's messages: the exchanges it
// keeps open, the deliveries it holds for the Inbox, and the finished
// exchanges it remembers. It owns these fields; the State calls its
// methods.
type receiver struct {
	byID     map[wire.ID]*inbound // the oldest open exchange of each id, chained by next
	held     fifo[*inbound]
	awaiting deadlineHeap[*inbound] // delivered, by next RECV
	n        int                    // open exchanges
	seen     dedupe
	free     []*inbound

	asm     map[asmKey]*assembly    // messages in fragments, partial or completed and open
	partial deadlineHeap[*assembly] // those partial, by when they are dropped

	stash      []stashed // fragments from a peer not yet proved
	stashBytes int
	stashUntil int64
}

// open returns how many exchanges are open (held or awaiting ACK).
func (r *receiver) open() int { return r.n }

// known reports whether an exchange with id is open.
func (r *receiver) known(id wire.ID) bool {
	_, ok := r.byID[id]
	return ok
}

// find returns the open exchange with id and payload digest.
func (r *receiver) find(id wire.ID, digest uint64) (*inbound, bool) {
	for e := r.byID[id]; e != nil; e = e.next {
		if e.digest == digest {
			return e, true
		}
	}
	return nil, false
}

// acked returns the oldest exchange with id that is awaiting its ACK.
func (r *receiver) acked(id wire.ID) (*inbound, bool) {
	for e := r.byID[id]; e != nil; e = e.next {
		if !e.held {
			return e, true
		}
	}
	return nil, false
}

// hold opens an exchange for a new message and queues it for delivery.
func (r *receiver) hold(id wire.ID, digest uint64, data []byte, ext bool) *inbound {
	var e *inbound
	if n := len(r.free); n > 0 {
		e, r.free = r.free[n-1], r.free[:n-1]
	} else {
		e = new(inbound)
	}
	*e = inbound{id: id, digest: digest, data: data, held: true, ext: ext, index: -1}
	if r.byID == nil {
		r.byID = make(map[wire.ID]*inbound)
	}
	if head := r.byID[id]; head != nil {
		for head.next != nil {
			head = head.next
		}
		head.next = e
	} else {
		r.byID[id] = e
	}
	r.n++
	r.held.push(e)
	return e
}

// next returns the oldest held delivery.
func (r *receiver) next() (*inbound, bool) {
	if r.held.len() == 0 {
		return nil, false
	}
	return r.held.front(), true
}

// delivered moves the oldest held exchange to those awaiting ACK, with its
// first RECV sent at t and the next one due at due. It returns the entry
// and the length of the payload it no longer holds.
func (r *receiver) delivered(t, due int64) (*inbound, int) {
	e := r.held.pop()
	n := len(e.data)
	e.held, e.data = false, nil
	e.attempts, e.first, e.due = 1, t, due
	r.awaiting.push(e)
	return e, n
}

// due returns the exchange awaiting ACK whose RECV is due first, if it is
// at or before t.
func (r *receiver) due(t int64) (*inbound, bool) {
	if len(r.awaiting) == 0 || r.awaiting.min().due > t {
		return nil, false
	}
	return r.awaiting.min(), true
}

// reschedule moves e to its new due time.
func (r *receiver) reschedule(e *inbound) { r.awaiting.fix(e.index) }

// nextRecv returns when a RECV is next due, or never.
func (r *receiver) nextRecv() int64 {
	if len(r.awaiting) == 0 {
		return never
	}
	return r.awaiting.min().due
}

// close ends an exchange and releases its entry. It returns the
// exchange's dedupe key, and whether it was delivered (and so must be
// remembered).
func (r *receiver) close(e *inbound) (key uint64, delivered bool) {
	if e.index >= 0 {
		r.awaiting.remove(e.index)
	}
	r.unlink(e)
	key, delivered = e.key(), !e.held
	*e = inbound{}
	if len(r.free) < freeListMax {
		r.free = append(r.free, e)
	}
	return key, delivered
}

// unlink takes e out of its id's chain.
func (r *receiver) unlink(e *inbound) {
	r.n--
	if e.asm != nil {
		delete(r.asm, e.asm.key)
	}
	head := r.byID[e.id]
	if head == e {
		if e.next != nil {
			r.byID[e.id] = e.next
		} else {
			delete(r.byID, e.id)
		}
		return
	}
	for head.next != e {
		head = head.next
	}
	head.next = e.next
}

// dropHeld forgets every held exchange (they were never answered) and
// returns the bytes of payload it let go.
func (r *receiver) dropHeld() int {
	n := 0
	for r.held.len() > 0 {
		e := r.held.pop()
		n += len(e.data)
		r.unlink(e)
		*e = inbound{}
	}
	return n
}

// compact releases what is kept for reuse, and the tables if empty.
func (r *receiver) compact() {
	r.free = nil
	if r.n == 0 {
		r.byID, r.awaiting = nil, nil
		r.held.reset(true)
	}
	if len(r.asm) == 0 {
		r.asm, r.partial = nil, nil
	}
	r.seen.compact()
}

// doneRef is a remembered finished exchange.
type doneRef struct {
	key    uint64
	expire int64
	acked  bool // ended by ACK: the sender has stopped re-sending
}

// dedupe remembers finished exchanges by key (doneKey) until they expire,
// in two FIFOs, each oldest first: those ended by the sender's ACK and
// those ended without it. An ACK says the sender has stopped re-sending,
// so only copies already in the network can still come, and those
// exchanges are kept for a shorter time (State.end): the two FIFOs each
// stay in expiry order. Up to smallDone keys are found by scanning; past
// that an index holds every key of both.
//
// A key is added only after a lookup found it absent, so the FIFOs hold
// each key once, but for a 64-bit collision of two different exchanges'
// keys: then the index holds it once and the FIFOs twice, and the first
// expiry removes it from the index early. That shortens one exchange's
// protection, with probability 2^-64 per pair; nothing else depends on it.
type dedupe struct {
	acked, unacked fifo[doneRef]
	index          doneSet // in use past smallDone
}

// smallDone is the most remembered ids kept without the index.
const smallDone = 8

func (d *dedupe) len() int { return d.acked.len() + d.unacked.len() }

func (d *dedupe) has(k uint64) bool {
	if d.index.inUse() {
		return d.index.has(k)
	}
	for _, q := range []*fifo[doneRef]{&d.acked, &d.unacked} {
		for _, r := range q.all() {
			if r.key == k {
				return true
			}
		}
	}
	return false
}

func (d *dedupe) add(k uint64, expire int64, acked bool) {
	if !d.index.inUse() && d.len() >= smallDone {
		for _, q := range []*fifo[doneRef]{&d.acked, &d.unacked} {
			for _, r := range q.all() {
				d.index.add(r.key)
			}
		}
	}
	if d.index.inUse() && !d.index.has(k) {
		d.index.add(k)
	}
	r := doneRef{key: k, expire: expire, acked: acked}
	if acked {
		d.acked.push(r)
	} else {
		d.unacked.push(r)
	}
}

// evictable reports whether an exchange ended by ACK is remembered: one
// that may be forgotten early, its sender having stopped re-sending.
func (d *dedupe) evictable() bool { return d.acked.len() > 0 }

// forgetAcked forgets the oldest exchange ended by ACK; there must be one.
func (d *dedupe) forgetAcked() { d.forget(d.acked.pop()) }

func (d *dedupe) forget(r doneRef) {
	if d.index.inUse() {
		d.index.del(r.key)
	}
}

// next returns when a remembered exchange next expires, or never.
func (d *dedupe) next() int64 {
	next := int64(never)
	for _, q := range []*fifo[doneRef]{&d.acked, &d.unacked} {
		if q.len() > 0 {
			next = min(next, q.front().expire)
		}
	}
	return next
}

// expire forgets what has expired by t.
func (d *dedupe) expire(t int64) {
	for _, q := range []*fifo[doneRef]{&d.acked, &d.unacked} {
		for q.len() > 0 && q.front().expire <= t {
			d.forget(q.pop())
		}
	}
}

// all calls f for every remembered exchange, those ended by ACK first.
func (d *dedupe) all(f func(doneRef)) {
	for _, r := range d.acked.all() {
		f(r)
	}
	for _, r := range d.unacked.all() {
		f(r)
	}
}

func (d *dedupe) compact() {
	if d.len() <= smallDone {
		d.index = doneSet{} // the FIFOs alone will do
	} else {
		d.index.shrink()
	}
	for _, q := range []*fifo[doneRef]{&d.acked, &d.unacked} {
		if q.len() == 0 {
			q.reset(true)
		} else {
			q.shrink()
		}
	}
}

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

// digestSeed keys payload digests. It is random per process, so a remote
// host cannot craft two payloads with the same digest.
var digestSeed = maphash.MakeSeed()

func digest(b []byte) uint64 { return maphash.Bytes(digestSeed, b) }
