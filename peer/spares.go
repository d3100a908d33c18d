package peer

import (
	"slices"
	"sync"
	"unsafe"
)

// Spares keeps the buffers of received messages that the application has
// given back (gtudp's Endpoint.Release), for later messages in fragments
// to be received into.
//
// Why: a message in fragments is copied into a buffer of its own, which
// becomes the application's. Newly allocated, that buffer must first be
// cleared by the runtime, is cold in the CPU's caches, and feeds the
// garbage collector a megabyte per megabyte received: on loopback, with 1
// MiB messages, that costs more CPU than the kernel's own copies. A buffer
// given back is reused as it is: every byte of it is written before the
// message is delivered, so what it held before is never seen.
//
// At most max bytes of buffers are kept; buffers smaller than spareMin are
// not kept (allocating them is cheap). A nil *Spares keeps nothing. It is
// safe for concurrent use.
type Spares struct {
	mu    sync.Mutex
	bufs  [][]byte // whole capacity each; the last given back last
	bytes int      // their capacities, summed
	max   int
}

// spareMin is the smallest buffer kept: the smallest message in fragments
// on the default DatagramSize is a few kilobytes, and below this size a
// new buffer costs little next to the message's datagrams.
const spareMin = 16 << 10

// NewSpares returns a set keeping at most max bytes of buffers.
func NewSpares(max int) *Spares { return &Spares{max: max} }

// Put keeps b (its whole capacity) for a later Get, unless it is smaller
// than spareMin or larger than the set; to make room it lets the buffers
// given back first go. The caller must not use b, or anything sharing its
// array, afterwards. A buffer that overlaps one already kept (given back
// twice, or a part of it again) is not kept a second time: two messages
// would be received into the same bytes.
func (s *Spares) Put(b []byte) {
	b = b[:cap(b)]
	if s == nil || len(b) < spareMin || len(b) > s.max {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.bufs {
		if overlap(k, b) {
			return
		}
	}
	drop := 0
	for s.bytes+len(b) > s.max {
		s.bytes -= len(s.bufs[drop])
		drop++
	}
	s.bufs = append(slices.Delete(s.bufs, 0, drop), b)
	s.bytes += len(b)
}

// Bytes returns the bytes of buffers kept.
func (s *Spares) Bytes() int {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}

// Get returns a kept buffer of n bytes, or false if there is none. It
// takes one of at most twice n bytes, so that a small message does not
// pin a large buffer, and returns it cut to length and capacity n: what
// lies beyond n is the message it held before, which the next holder
// must not see. Its first n bytes are that message too: the caller
// writes all n before anyone reads them. The buffer given back last is
// preferred: it is the most likely still in the caches.
func (s *Spares) Get(n int) ([]byte, bool) {
	if s == nil || n < spareMin {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.bufs) - 1; i >= 0; i-- {
		b := s.bufs[i]
		if len(b) < n || len(b) > 2*n {
			continue
		}
		s.bufs = slices.Delete(s.bufs, i, i+1)
		s.bytes -= len(b)
		return b[:n:n], true
	}
	return nil, false
}

// overlap reports whether a and b share any byte. The addresses are only
// compared, never turned back into pointers.
func overlap(a, b []byte) bool {
	pa, pb := uintptr(unsafe.Pointer(unsafe.SliceData(a))), uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return pa < pb+uintptr(len(b)) && pb < pa+uintptr(len(a))
}
