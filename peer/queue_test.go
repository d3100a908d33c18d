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
