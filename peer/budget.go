package peer

import (
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
