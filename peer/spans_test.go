package peer

import (
	"testing"

	"pgregory.net/rapid"
)

// spans behaves as the set of bytes it was given: missing counts what a
// bitmap would, and the spans stay sorted, disjoint and non-adjacent.
func TestSpans_Model(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		const size = 64
		var s spans
		var model [size]bool
		for range rapid.IntRange(0, 40).Draw(t, "adds") {
			lo := rapid.IntRange(0, size-1).Draw(t, "lo")
			hi := rapid.IntRange(lo+1, size).Draw(t, "hi")
			want := 0
			for i := lo; i < hi; i++ {
				if !model[i] {
					want++
				}
			}
			if got := s.missing(lo, hi); got != want {
				t.Fatalf("missing(%d, %d) = %d, want %d (spans %v)", lo, hi, got, want, s)
			}
			s = s.add(lo, hi)
			for i := lo; i < hi; i++ {
				model[i] = true
			}
			var again [size]bool
			for k, sp := range s {
				if sp.lo >= sp.hi || k > 0 && s[k-1].hi >= sp.lo {
					t.Fatalf("spans %v: not sorted, disjoint and apart", s)
				}
				for i := sp.lo; i < sp.hi; i++ {
					again[i] = true
				}
			}
			if again != model {
				t.Fatalf("spans %v hold other bytes than were added", s)
			}
		}
	})
}
