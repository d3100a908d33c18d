package peer

import "sync/atomic"

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
