package peer

import (
	"testing"

	"pgregory.net/rapid"
)

// doneSet behaves as a set, whatever the order of adds and deletes and
// however keys cluster (few distinct high bits force long probe runs and
// wrap-around at the end of the table).
func TestDoneSet_IsASet(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var d doneSet
		model := map[uint64]bool{}
		// Keys from a small pool whose top bits point at the first and
		// last slots of the smallest table: long probe runs that wrap.
		key := rapid.Custom(func(t *rapid.T) uint64 {
			hi := rapid.SampledFrom([]uint64{0, 1, 30, 31}).Draw(t, "hi") // table ends
			lo := rapid.Uint64Range(1, 60).Draw(t, "lo")
			return hi<<59 | lo
		})
		for range rapid.IntRange(0, 300).Draw(t, "steps") {
			k := key.Draw(t, "k")
			switch rapid.IntRange(0, 3).Draw(t, "op") {
			case 0, 1:
				if !model[k] {
					d.add(k)
					model[k] = true
				}
			case 2:
				d.del(k)
				delete(model, k)
			case 3:
				d.shrink()
			}
			if d.n != len(model) {
				t.Fatalf("n %d, want %d", d.n, len(model))
			}
			for m := range model {
				if !d.has(m) {
					t.Fatalf("%x missing", m)
				}
			}
			if k := key.Draw(t, "probe"); d.has(k) != model[k] {
				t.Fatalf("has(%x) = %v, want %v", k, d.has(k), model[k])
			}
		}
	})
}
