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

// The table stays at most half full and no larger than that needs: n
// entries take the smallest power of two ≥ 2n slots (at least
// minDoneSlots), growing as they are added and shrinking back to it.
func TestDoneSet_TableSize(t *testing.T) {
	for _, tt := range []struct{ n, slots int }{
		{1, 32}, {16, 32}, {17, 64}, {32, 64}, {33, 128}, {16384, 32768},
	} {
		var d doneSet
		for i := range tt.n {
			d.add(uint64(i+1) * 0x9e3779b97f4a7c15)
		}
		if len(d.slots) != tt.slots {
			t.Errorf("%d entries added: %d slots, want %d", tt.n, len(d.slots), tt.slots)
		}
		// Grow well past it, then delete back down and shrink.
		for i := tt.n; i < 4*tt.n+40; i++ {
			d.add(uint64(i+1) * 0x9e3779b97f4a7c15)
		}
		for i := tt.n; i < 4*tt.n+40; i++ {
			d.del(uint64(i+1) * 0x9e3779b97f4a7c15)
		}
		d.shrink()
		if len(d.slots) != tt.slots || d.n != tt.n {
			t.Errorf("%d entries after shrink: %d slots and n %d, want %d slots", tt.n, len(d.slots), d.n, tt.slots)
		}
		for i := range tt.n {
			if !d.has(uint64(i+1) * 0x9e3779b97f4a7c15) {
				t.Fatalf("%d entries after shrink: entry %d lost", tt.n, i)
			}
		}
	}
}

// shrink of an empty set drops its table; the set works again after.
func TestDoneSet_ShrinkEmpty(t *testing.T) {
	var d doneSet
	d.add(7)
	d.del(7)
	if !d.inUse() {
		t.Fatal("the table is gone before shrink")
	}
	d.shrink()
	if d.inUse() || d.n != 0 {
		t.Fatalf("after shrink of an empty set: slots %d n %d, want no table", len(d.slots), d.n)
	}
	if d.has(7) {
		t.Fatal("has(7) after it was deleted")
	}
	d.add(7)
	if !d.has(7) || d.n != 1 {
		t.Fatal("add after shrink did not take")
	}
}
