package peer

import (
	"slices"
	"testing"

	"pgregory.net/rapid"
)

type testEntry struct {
	due   int64
	index int
}

func (e *testEntry) deadline() int64 { return e.due }
func (e *testEntry) setIndex(i int)  { e.index = i }

// deadlineHeap against a plain list: min is the earliest deadline, every
// entry knows its index, and fix and remove anywhere keep both true.
func TestDeadlineHeap_Model(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var h deadlineHeap[*testEntry]
		var live []*testEntry
		for range rapid.IntRange(0, 200).Draw(t, "steps") {
			switch op := rapid.IntRange(0, 2).Draw(t, "op"); {
			case op == 0 || len(live) == 0:
				e := &testEntry{due: rapid.Int64Range(0, 50).Draw(t, "due")}
				h.push(e)
				live = append(live, e)
			case op == 1:
				i := rapid.IntRange(0, len(live)-1).Draw(t, "remove")
				e := live[i]
				h.remove(e.index)
				if e.index != -1 {
					t.Fatalf("removed entry keeps index %d", e.index)
				}
				live = slices.Delete(live, i, i+1)
			default:
				e := live[rapid.IntRange(0, len(live)-1).Draw(t, "fix")]
				e.due = rapid.Int64Range(0, 50).Draw(t, "newDue")
				h.fix(e.index)
			}
			if len(h) != len(live) {
				t.Fatalf("heap holds %d, want %d", len(h), len(live))
			}
			for i, e := range h {
				if e.index != i {
					t.Fatalf("entry at %d thinks it is at %d", i, e.index)
				}
				if i > 0 && h[(i-1)/2].due > e.due {
					t.Fatalf("heap order broken at %d", i)
				}
			}
			if len(live) > 0 {
				want := slices.MinFunc(live, func(a, b *testEntry) int { return int(a.due - b.due) }).due
				if h.min().due != want {
					t.Fatalf("min %d, want %d", h.min().due, want)
				}
			}
		}
	})
}

// fifo keeps its order through the slides that keep its array from
// growing under a steady stream: once 64 elements or more have been
// popped and they are at least half the array, the live ones move down.
func TestFifo_SlidesDown(t *testing.T) {
	var q fifo[int]
	for i := range 128 {
		q.push(i)
	}
	for i := range 63 {
		if v := q.pop(); v != i {
			t.Fatalf("pop %d = %d", i, v)
		}
	}
	if q.head != 63 {
		t.Fatalf("after 63 pops head %d, want 63: no slide before 64", q.head)
	}
	if v := q.pop(); v != 63 {
		t.Fatalf("pop 63 = %d", v)
	}
	if q.head != 0 || len(q.buf) != 64 || q.front() != 64 {
		t.Fatalf("after 64 of 128 popped: head %d len %d front %d, want 0 64 64", q.head, len(q.buf), q.front())
	}
	if !slices.Equal(q.all(), seq(64, 128)) {
		t.Fatalf("all = %v, want 64..127", q.all())
	}

	// Fewer popped than are left: no slide, even past 64.
	var r fifo[int]
	for i := range 200 {
		r.push(i)
	}
	for range 99 {
		r.pop()
	}
	if r.head != 99 || r.len() != 101 {
		t.Fatalf("99 of 200 popped: head %d len %d, want 99 101", r.head, r.len())
	}
	r.pop()
	if r.head != 0 || r.len() != 100 || r.front() != 100 {
		t.Fatalf("100 of 200 popped: head %d len %d front %d, want 0 100 100", r.head, r.len(), r.front())
	}

	// Popping the last element rewinds to the start of the array.
	var s fifo[int]
	s.push(1)
	s.push(2)
	s.pop()
	s.pop()
	if s.head != 0 || len(s.buf) != 0 || cap(s.buf) == 0 {
		t.Fatalf("emptied: head %d len %d cap %d, want 0 0 and the array kept", s.head, len(s.buf), cap(s.buf))
	}
}

func seq(lo, hi int) []int {
	var s []int
	for i := lo; i < hi; i++ {
		s = append(s, i)
	}
	return s
}

// shrink gives back an array more than twice the size of what is queued,
// and keeps one that is not.
func TestFifo_Shrink(t *testing.T) {
	for _, tt := range []struct {
		capacity, queued int
		shrunk           bool
	}{
		{64, 31, true}, {64, 32, false}, {64, 40, false}, {64, 0, true},
	} {
		q := fifo[int]{buf: make([]int, 0, tt.capacity)}
		for i := range tt.queued {
			q.push(i)
		}
		q.shrink()
		if got := cap(q.buf) != tt.capacity; got != tt.shrunk {
			t.Errorf("cap %d, %d queued: shrunk %v (cap %d), want %v", tt.capacity, tt.queued, got, cap(q.buf), tt.shrunk)
		}
		if tt.shrunk && cap(q.buf) != tt.queued {
			t.Errorf("cap %d, %d queued: shrunk to cap %d, want %d", tt.capacity, tt.queued, cap(q.buf), tt.queued)
		}
		if !slices.Equal(q.all(), seq(0, tt.queued)) {
			t.Errorf("cap %d, %d queued: all = %v after shrink", tt.capacity, tt.queued, q.all())
		}
	}
}

// fix of an entry whose deadline did not change moves nothing, even among
// entries of equal deadline (a peer's messages sent in one wake-up share
// theirs): there is no order to restore.
func TestDeadlineHeap_FixUnchangedMovesNothing(t *testing.T) {
	var h deadlineHeap[*testEntry]
	for _, due := range []int64{5, 5, 5, 7, 5, 5, 9} {
		h.push(&testEntry{due: due})
	}
	before := slices.Clone(h)
	for i := range h {
		h.fix(i)
		if !slices.Equal(h, before) {
			t.Fatalf("fix(%d) with its deadline unchanged moved entries", i)
		}
	}
}
