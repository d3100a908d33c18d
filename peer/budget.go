package peer

import (
	"sync"
	"sync/atomic"

	"github.com/gtudp/gtudp/wire"
)

// Budget is an endpoint's budget of bytes for received payloads it holds:
// copied out of the socket's buffer and not yet handed to the application
// (in a peer's mailbox, or held while the Inbox is full). Its peers and
// its socket reader share it; it is safe for concurrent use. A nil
// *Budget has no limit.
//
// Whoever copies a payload takes its bytes first (Take), and a State that
// receives a payload owns them from then on: it gives them back (Give)
// when it hands the payload to the application or lets it go.
type Budget struct {
	limit int64
	used  atomic.Int64
}

// NewBudget returns a budget of limit bytes.
func NewBudget(limit int64) *Budget { return &Budget{limit: limit} }

// Take takes n bytes if the budget has them, and reports whether it did.
func (b *Budget) Take(n int) bool {
	if b == nil {
		return true
	}
	for {
		u := b.used.Load()
		if u+int64(n) > b.limit {
			return false
		}
		if b.used.CompareAndSwap(u, u+int64(n)) {
			return true
		}
	}
}

// Give gives back n bytes taken earlier.
func (b *Budget) Give(n int) {
	if b != nil {
		b.used.Add(-int64(n))
	}
}

// Used returns the bytes taken now.
func (b *Budget) Used() int64 {
	if b == nil {
		return 0
	}
	return b.used.Load()
}

// Plenty reports whether at least half the budget is free. What is kept
// only on speculation (fragments from a peer not yet proved) is kept only
// then, so that forged sources can never take more than half of it.
func (b *Budget) Plenty() bool {
	return b == nil || b.used.Load() <= b.limit/2
}

// Held returns the bytes of message payload p carries, which the budget
// is charged for: a DATA's payload, or the DATA and FRAG records of an
// EXT datagram (none if it does not parse).
func Held(p wire.Packet) int {
	switch p.Kind {
	case wire.Data:
		return len(p.Payload)
	case wire.Ext:
		_, recs, err := wire.ParseExt(p.Payload)
		if err != nil {
			return 0
		}
		n := 0
		for r, ok := recs.Next(); ok; r, ok = recs.Next() {
			if r.Type == wire.RecData || r.Type == wire.RecFrag {
				n += len(r.Payload)
			}
		}
		return n
	}
	return 0
}

// Buffers is a bounded set of the socket reader's read buffers that it
// lends to peers (Inbound.Lent) instead of copying a large datagram out of
// them. At most max exist, made as needed; when all are lent, Get waits
// for one to come back. A peer copies a lent datagram's payload into its
// message and gives the buffer back at once, so the wait is for the peers'
// goroutines to get to what is already in their mailboxes, never for the
// application. It is safe for concurrent use; one goroutine at a time may
// wait in Get.
type Buffers struct {
	mu    sync.Mutex
	free  []*[]byte // last in, first out
	max   int
	made  int
	size  int
	given chan struct{} // a token when a buffer comes back
}

// NewBuffers returns a set of at most max buffers of size bytes each,
// made as needed.
func NewBuffers(max, size int) *Buffers {
	return &Buffers{max: max, size: size, given: make(chan struct{}, 1)}
}

// Get returns a buffer: the one given back last, most likely still in the
// CPU's caches; a new one if fewer than max exist; else, once one is given
// back. It returns false if stop is closed while it waits.
func (b *Buffers) Get(stop <-chan struct{}) (*[]byte, bool) {
	for {
		b.mu.Lock()
		if n := len(b.free); n > 0 {
			buf := b.free[n-1]
			b.free[n-1] = nil
			b.free = b.free[:n-1]
			b.mu.Unlock()
			return buf, true
		}
		if b.made < b.max {
			b.made++
			b.mu.Unlock()
			buf := make([]byte, b.size)
			return &buf, true
		}
		b.mu.Unlock()
		select {
		case <-b.given:
		case <-stop:
			return nil, false
		}
	}
}

// Put gives a buffer back. Each buffer Get returned must be given back
// exactly once: one given twice would be lent to two peers at once.
func (b *Buffers) Put(buf *[]byte) {
	b.mu.Lock()
	if len(b.free) < b.made {
		b.free = append(b.free, buf)
	} // else not one of ours: let it go
	b.mu.Unlock()
	select {
	case b.given <- struct{}{}:
	default: // a token is already there
	}
}
