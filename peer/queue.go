package peer

// deadlined is an entry of a deadlineHeap: it knows its deadline and keeps
// its index in the heap, so it can be fixed or removed in O(log n).
type deadlined interface {
	deadline() int64
	setIndex(int)
}

// deadlineHeap is a min-heap of entries by deadline. A peer has two (its
// messages in flight, its exchanges awaiting ACK), so finding the next
// timer is O(1) and re-arming it O(log n) however many messages are
// pending: one timer per peer, never one per message. It is written out
// rather than built on container/heap, whose interface calls cost a
// message's round trip tens of nanoseconds at each push and removal.
type deadlineHeap[T deadlined] []T

// min returns the entry with the earliest deadline; the heap must not be
// empty.
func (h deadlineHeap[T]) min() T { return h[0] }

func (h *deadlineHeap[T]) push(e T) {
	*h = append(*h, e)
	h.up(len(*h) - 1)
}

// put stores e at i and tells it so.
func (h deadlineHeap[T]) put(i int, e T) {
	h[i] = e
	e.setIndex(i)
}

// fix restores the order after the deadline of the entry at i changed.
func (h *deadlineHeap[T]) fix(i int) {
	if !h.down(i) {
		h.up(i)
	}
}

// remove takes out the entry at i.
func (h *deadlineHeap[T]) remove(i int) {
	old := *h
	n := len(old) - 1
	e := old[i]
	if i != n {
		old.put(i, old[n])
	}
	var zero T
	old[n] = zero
	*h = old[:n]
	if i != n {
		h.fix(i)
	}
	e.setIndex(-1)
}

func (h deadlineHeap[T]) up(i int) {
	e := h[i]
	for i > 0 {
		parent := (i - 1) / 2
		if h[parent].deadline() <= e.deadline() {
			break
		}
		h.put(i, h[parent])
		i = parent
	}
	h.put(i, e)
}

// down sifts the entry at i down and reports whether it moved.
func (h deadlineHeap[T]) down(i int) bool {
	start, n, e := i, len(h), h[i]
	for {
		child := 2*i + 1
		if child >= n {
			break
		}
		if r := child + 1; r < n && h[r].deadline() < h[child].deadline() {
			child = r
		}
		if e.deadline() <= h[child].deadline() {
			break
		}
		h.put(i, h[child])
		i = child
	}
	h.put(i, e)
	return i > start
}

// fifo is a first-in first-out queue on a slice that reuses its array.
type fifo[T any] struct {
	buf  []T
	head int
}

func (q *fifo[T]) len() int { return len(q.buf) - q.head }

func (q *fifo[T]) push(v T) { q.buf = append(q.buf, v) }

// front returns the oldest element; the queue must not be empty.
func (q *fifo[T]) front() T { return q.buf[q.head] }

// pop removes and returns the oldest element; the queue must not be empty.
func (q *fifo[T]) pop() T {
	v := q.buf[q.head]
	var zero T
	q.buf[q.head] = zero
	q.head++
	switch {
	case q.head == len(q.buf):
		q.buf, q.head = q.buf[:0], 0
	case q.head >= 64 && 2*q.head >= len(q.buf):
		// Slide the live half down so the array does not grow forever
		// under a steady stream; amortised O(1).
		n := copy(q.buf, q.buf[q.head:])
		clear(q.buf[n:])
		q.buf, q.head = q.buf[:n], 0
	}
	return v
}

// all returns the queued elements, oldest first, without removing them.
func (q *fifo[T]) all() []T { return q.buf[q.head:] }

// shrink moves the queued elements to an array of their size, if the
// current one is more than twice as large: a burst's array is given back.
func (q *fifo[T]) shrink() {
	if n := q.len(); cap(q.buf) > 2*n {
		q.buf, q.head = append(make([]T, 0, n), q.buf[q.head:]...), 0
	}
}

// reset empties the queue and, if release is set, drops its array.
func (q *fifo[T]) reset(release bool) {
	clear(q.buf)
	q.buf, q.head = q.buf[:0], 0
	if release {
		q.buf = nil
	}
}
