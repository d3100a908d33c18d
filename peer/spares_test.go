package peer

import (
	"sync"
	"testing"
	"unsafe"
)

func TestSpares_GetFitsAndPrefersTheLastGivenBack(t *testing.T) {
	s := NewSpares(1 << 20)
	small, mid, big := make([]byte, 20<<10), make([]byte, 100<<10), make([]byte, 150<<10)
	s.Put(big)
	s.Put(small)
	s.Put(mid[:10]) // the whole capacity is kept
	b, ok := s.Get(90 << 10)
	if !ok || len(b) != 90<<10 || cap(b) != 90<<10 || unsafe.SliceData(b) != unsafe.SliceData(mid) {
		t.Fatalf("Get(90 KiB) = len %d cap %d, %v: want the 100 KiB buffer given back last", len(b), cap(b), ok)
	}
	b, ok = s.Get(90 << 10)
	if !ok || unsafe.SliceData(b) != unsafe.SliceData(big) {
		t.Fatalf("second Get(90 KiB) = cap %d, %v: want the 150 KiB buffer", cap(b), ok)
	}
	if b, ok := s.Get(90 << 10); ok {
		t.Fatalf("third Get(90 KiB) = cap %d: the 20 KiB one is too small", cap(b))
	}
	if b, ok := s.Get(8 << 10); ok {
		t.Fatalf("Get(8 KiB) = cap %d: below spareMin nothing is taken", cap(b))
	}
	if b, ok := s.Get(20 << 10); !ok || unsafe.SliceData(b) != unsafe.SliceData(small) {
		t.Fatalf("Get(20 KiB) = cap %d, %v: want the 20 KiB buffer", cap(b), ok)
	}
	if s.bytes != 0 || len(s.bufs) != 0 {
		t.Fatalf("all taken, yet %d bytes in %d buffers kept", s.bytes, len(s.bufs))
	}
}

// A small message does not take a buffer more than twice its size.
func TestSpares_GetLeavesBuffersTwiceTooLarge(t *testing.T) {
	s := NewSpares(1 << 20)
	s.Put(make([]byte, 100<<10))
	if b, ok := s.Get(49 << 10); ok {
		t.Fatalf("Get(49 KiB) took a buffer of %d bytes", cap(b))
	}
	if _, ok := s.Get(50 << 10); !ok {
		t.Fatal("Get(50 KiB) did not take the 100 KiB buffer")
	}
}

func TestSpares_PutKeepsAtMostMaxBytes(t *testing.T) {
	s := NewSpares(100 << 10)
	s.Put(make([]byte, spareMin))
	s.Put(make([]byte, 84<<10)) // exactly max in all: both kept
	if s.bytes != 100<<10 || len(s.bufs) != 2 {
		t.Fatalf("kept %d bytes in %d buffers, want 100 KiB in 2", s.bytes, len(s.bufs))
	}
	if _, ok := s.Get(spareMin); !ok {
		t.Fatal("Get(spareMin) found nothing")
	}
	s.Get(84 << 10)
	second, third := make([]byte, 40<<10), make([]byte, 40<<10)
	s.Put(make([]byte, 40<<10))
	s.Put(second)
	s.Put(third)                    // 120 KiB: the first given back goes
	s.Put(make([]byte, spareMin-1)) // too small to keep
	s.Put(make([]byte, 101<<10))    // larger than the whole set
	if s.bytes != 80<<10 || len(s.bufs) != 2 ||
		unsafe.SliceData(s.bufs[0]) != unsafe.SliceData(second) || unsafe.SliceData(s.bufs[1]) != unsafe.SliceData(third) {
		t.Fatalf("kept %d bytes in %d buffers, want 80 KiB: the second and third given back", s.bytes, len(s.bufs))
	}
	s.Put(make([]byte, 100<<10)) // the whole set: the others go
	if s.bytes != 100<<10 || len(s.bufs) != 1 {
		t.Fatalf("kept %d bytes in %d buffers, want one of 100 KiB", s.bytes, len(s.bufs))
	}
}

// A buffer given back twice, or a part of it given back again, is kept
// once: otherwise two messages would be received into the same bytes.
func TestSpares_PutKeepsABufferOnce(t *testing.T) {
	s := NewSpares(1 << 20)
	b := make([]byte, 64<<10)
	s.Put(b)
	s.Put(b)
	s.Put(b[20<<10:])
	s.Put(b[:0])
	if s.bytes != 64<<10 || len(s.bufs) != 1 {
		t.Fatalf("kept %d bytes in %d buffers, want the one buffer once", s.bytes, len(s.bufs))
	}
	whole := make([]byte, 128<<10)
	s.Put(whole[64<<10:])
	s.Put(whole) // overlaps the half kept
	s.Put(make([]byte, 64<<10))
	if s.bytes != 192<<10 || len(s.bufs) != 3 {
		t.Fatalf("kept %d bytes in %d buffers, want 192 KiB in 3", s.bytes, len(s.bufs))
	}
}

func TestSpares_NilKeepsNothing(t *testing.T) {
	var s *Spares
	s.Put(make([]byte, 1<<20))
	if _, ok := s.Get(1 << 20); ok {
		t.Fatal("a nil Spares gave a buffer")
	}
}

// Put and Get from many goroutines (run with -race): no buffer is handed
// out twice while taken.
func TestSpares_Concurrent(t *testing.T) {
	s := NewSpares(1 << 20)
	var mu sync.Mutex
	taken := map[*byte]bool{}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				b, ok := s.Get(64 << 10)
				if !ok {
					b = make([]byte, 64<<10+g*1024)
				}
				p := unsafe.SliceData(b)
				mu.Lock()
				if taken[p] {
					t.Errorf("buffer %p handed out twice", p)
				}
				taken[p] = true
				mu.Unlock()
				b[i%len(b)] = byte(g)
				mu.Lock()
				delete(taken, p)
				mu.Unlock()
				s.Put(b)
			}
		})
	}
	wg.Wait()
	if s.bytes > 1<<20 {
		t.Fatalf("kept %d bytes, at most %d", s.bytes, 1<<20)
	}
}
