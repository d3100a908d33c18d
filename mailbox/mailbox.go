// Package mailbox is the bounded queue in front of every gtudp actor.
//
// A Mailbox has many producers and one owner. Producers put with TryPut,
// which never waits and reports a full box (network input: the datagram is
// dropped and the protocol's retransmission recovers it), or with Put, which
// waits for room under a context (user sends: that is where backpressure
// belongs). The owner waits on Ready inside its select, next to its timer,
// and takes everything waiting in one go with Drain.
//
// Unlike a channel, a Mailbox can be closed while producers are still
// putting: after Close every put fails with ErrClosed, producers blocked in
// Put wake with ErrClosed, and what was accepted before stays for the owner
// to drain. An item is therefore either refused (the producer knows) or
// reaches the owner; none is lost in between.
package mailbox

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// Errors returned by puts.
var (
	// ErrFull: TryPut found the mailbox at its capacity.
	ErrFull = errors.New("gtudp: mailbox full")
	// ErrClosed: the mailbox was closed; the item was not accepted.
	ErrClosed = errors.New("gtudp: mailbox closed")
)

// initialSlots is the first buffer size. The buffer grows by doubling up to
// the capacity, so an idle actor with a large capacity costs little memory.
const initialSlots = 8

// Mailbox is a bounded FIFO queue of T with many producers and one owner.
// All methods are safe for concurrent use; Drain and Shrink are meant for the
// owner alone. The zero Mailbox is not usable: call New.
type Mailbox[T any] struct {
	capacity int
	ready    chan struct{} // buffered(1): a token means "look at the box"

	mu   sync.Mutex // held for queue operations only, never across a wait
	buf  []T        // ring buffer, len(buf) a power of two ≤ roundup(capacity)
	head int        // index of the oldest item
	// n is the number of items queued: changed under mu, read without
	// it by Len and by a Drain that finds the box empty.
	n      atomic.Int64
	closed bool
	space  chan struct{} // closed to wake blocked Puts when room appears; nil if none wait
}

// New returns an empty mailbox that holds at most capacity items. It panics
// if capacity < 1.
func New[T any](capacity int) *Mailbox[T] {
	if capacity < 1 {
		panic("mailbox: capacity must be at least 1")
	}
	return &Mailbox[T]{capacity: capacity, ready: make(chan struct{}, 1)}
}

// NewShared is New with the ready channel given, so that the mailboxes of
// one owner can share it: the owner then waits on a single channel and, on
// a token, drains every box (a token may come from any of them). ready
// must be buffered; the owner may leave tokens on it itself, from a timer
// say. It panics if capacity < 1 or ready is unbuffered.
func NewShared[T any](capacity int, ready chan struct{}) *Mailbox[T] {
	if capacity < 1 {
		panic("mailbox: capacity must be at least 1")
	}
	if cap(ready) < 1 {
		panic("mailbox: the ready channel must be buffered")
	}
	return &Mailbox[T]{capacity: capacity, ready: ready}
}

// Len returns the number of items waiting.
func (m *Mailbox[T]) Len() int { return int(m.n.Load()) }

// TryPut adds v if there is room, without waiting. It returns ErrFull if the
// mailbox is at capacity and ErrClosed after Close. It does not allocate
// unless the buffer has to grow (at most log2(capacity) times in the
// mailbox's life).
func (m *Mailbox[T]) TryPut(v T) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	if m.Len() >= m.capacity {
		m.mu.Unlock()
		return ErrFull
	}
	wake := m.push(v)
	m.mu.Unlock()
	if wake {
		m.signal()
	}
	return nil
}

// Put adds v, waiting while the mailbox is full. It returns nil once v is
// queued, ctx.Err() if ctx ends first, or ErrClosed if the mailbox is or
// becomes closed. Room that is already there wins over a cancelled context:
// Put on a mailbox with room succeeds whatever the state of ctx.
func (m *Mailbox[T]) Put(ctx context.Context, v T) error {
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return ErrClosed
		}
		if m.Len() < m.capacity {
			wake := m.push(v)
			m.mu.Unlock()
			if wake {
				m.signal()
			}
			return nil
		}
		if m.space == nil {
			m.space = make(chan struct{})
		}
		space := m.space
		m.mu.Unlock()

		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// push appends v; m.mu must be held and there must be room. It reports
// whether the box went from empty to non-empty, in which case the caller
// must signal the owner after unlocking.
func (m *Mailbox[T]) push(v T) bool {
	n := m.Len()
	if n == len(m.buf) {
		m.grow()
	}
	m.buf[(m.head+n)&(len(m.buf)-1)] = v
	m.n.Store(int64(n + 1))
	return n == 0
}

// grow doubles the ring buffer, keeping the items in order.
func (m *Mailbox[T]) grow() {
	size := max(initialSlots, 2*len(m.buf))
	buf := make([]T, size)
	for i := range m.Len() {
		buf[i] = m.buf[(m.head+i)&(len(m.buf)-1)]
	}
	m.buf, m.head = buf, 0
}

// signal leaves a token on ready unless one is already there.
func (m *Mailbox[T]) signal() {
	select {
	case m.ready <- struct{}{}:
	default:
	}
}

// Ready returns a channel that receives a token when items may be waiting:
// after a put into an empty mailbox, and after Close. The owner selects on
// it and then calls Drain. A token can be stale (the items were drained
// already); Drain then returns nothing.
func (m *Mailbox[T]) Ready() <-chan struct{} { return m.ready }

// Drain appends to dst up to max waiting items (all of them if max <= 0), in
// the order they were put, and returns the extended slice. It wakes producers
// waiting in Put. The mailbox forgets the items, so it no longer keeps them
// alive. Drain still returns the items accepted before Close.
//
// If items remain after Drain (because of max), Ready keeps a token so the
// owner comes back for them.
func (m *Mailbox[T]) Drain(dst []T, max int) []T {
	if m.Len() == 0 {
		// Nothing to take (the owner's loop looks at every box on each
		// wake-up): no lock. A put racing with this signals Ready.
		return dst
	}
	m.mu.Lock()
	// k ≥ 1: the box is not empty, and only its owner takes items out.
	k := m.Len()
	if max > 0 {
		k = min(k, max)
	}
	var zero T
	mask := len(m.buf) - 1
	for range k {
		dst = append(dst, m.buf[m.head])
		m.buf[m.head] = zero
		m.head = (m.head + 1) & mask
	}
	left := m.Len() - k
	m.n.Store(int64(left))
	space := m.space
	m.space = nil
	m.mu.Unlock()
	if space != nil {
		close(space)
	}
	if left > 0 {
		m.signal()
	}
	return dst
}

// Shrink releases the buffer if the mailbox is empty, so that an owner that
// goes quiet after a burst gives its memory back. It is cheap when there is
// nothing to release.
func (m *Mailbox[T]) Shrink() {
	m.mu.Lock()
	if m.Len() == 0 {
		m.buf, m.head = nil, 0
	}
	m.mu.Unlock()
}

// Close refuses every later put with ErrClosed and wakes producers blocked
// in Put, who return ErrClosed. Items accepted before Close stay for the
// owner to Drain. Close is idempotent.
func (m *Mailbox[T]) Close() {
	m.mu.Lock()
	m.closeLocked()
	m.mu.Unlock()
	m.signal()
}

// CloseIfEmpty closes the mailbox only if nothing is waiting in it, and
// reports whether it did. An owner that wants to exit uses it to make sure no
// accepted item is left behind: if it returns false, there is work to drain.
func (m *Mailbox[T]) CloseIfEmpty() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Len() > 0 {
		return false
	}
	m.closeLocked()
	return true
}

func (m *Mailbox[T]) closeLocked() {
	if m.closed {
		return
	}
	m.closed = true
	if m.space != nil {
		close(m.space)
		m.space = nil
	}
}
