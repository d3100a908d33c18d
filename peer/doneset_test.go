package peer

import (
	"slices"
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

// dedupe finds its keys by scanning up to smallDone of them and through
// its index past that; expiry is inclusive, per FIFO, and the index goes
// when compact finds few enough keys to scan.
func TestDedupe_IndexAndExpiry(t *testing.T) {
	var d dedupe
	key := func(i int) uint64 { return uint64(i) * 0x9e3779b97f4a7c15 }
	for i := 1; i <= smallDone; i++ {
		d.add(key(i), int64(100*i), i%2 == 0)
	}
	if d.index.inUse() {
		t.Fatalf("index in use with %d keys, want scanning up to %d", d.len(), smallDone)
	}
	d.add(key(smallDone+1), int64(100*(smallDone+1)), false)
	if !d.index.inUse() || d.index.n != smallDone+1 {
		t.Fatalf("%d keys: index in use %v with %d, want all of them", d.len(), d.index.inUse(), d.index.n)
	}
	if got := d.next(); got != 100 {
		t.Fatalf("next %d, want 100", got)
	}
	d.expire(199)
	if d.has(key(1)) || d.len() != smallDone {
		t.Fatalf("expire(199): has(key 1) %v, len %d; want it forgotten, %d left", d.has(key(1)), d.len(), smallDone)
	}
	d.expire(200) // key 2 (acked) expires at exactly 200
	if d.has(key(2)) || !d.has(key(3)) || d.len() != smallDone-1 {
		t.Fatalf("expire(200): has(2) %v has(3) %v len %d", d.has(key(2)), d.has(key(3)), d.len())
	}
	if got := d.next(); got != 300 {
		t.Fatalf("next %d, want 300", got)
	}
	d.compact()
	if d.index.inUse() {
		t.Fatalf("index kept by compact with %d keys", d.len())
	}
	for i := 3; i <= smallDone+1; i++ {
		if !d.has(key(i)) {
			t.Fatalf("key %d lost by compact", i)
		}
	}
	// Evict the oldest acked (4), then the next (6).
	if !d.evictable() {
		t.Fatal("not evictable with acked keys")
	}
	d.forgetAcked()
	if d.has(key(4)) || !d.has(key(6)) {
		t.Fatalf("forgetAcked: has(4) %v has(6) %v, want the oldest acked gone", d.has(key(4)), d.has(key(6)))
	}
	var order []uint64
	d.all(func(r doneRef) { order = append(order, r.key) })
	want := []uint64{key(6), key(8), key(3), key(5), key(7), key(9)}
	if !slices.Equal(order, want) {
		t.Fatalf("all: %x, want the acked first, each oldest first: %x", order, want)
	}
}

// compact drops the index once no more than smallDone keys are left, the
// most found by scanning, and keeps it above: smallDone keys go back to
// the FIFOs, and are all still found.
func TestDedupe_CompactAtSmallDone(t *testing.T) {
	var d dedupe
	key := func(i int) uint64 { return uint64(i) * 0x9e3779b97f4a7c15 }
	for i := 1; i <= smallDone+2; i++ {
		d.add(key(i), int64(i), false)
	}
	d.expire(1)
	d.compact()
	if d.len() != smallDone+1 || !d.index.inUse() {
		t.Fatalf("compact with %d keys: index in use %v, want it kept", d.len(), d.index.inUse())
	}
	d.expire(2)
	d.compact()
	if d.len() != smallDone || d.index.inUse() {
		t.Fatalf("compact with %d keys: index in use %v, want it dropped", d.len(), d.index.inUse())
	}
	for i := 3; i <= smallDone+2; i++ {
		if !d.has(key(i)) {
			t.Fatalf("key %d lost by compact", i)
		}
	}
}
