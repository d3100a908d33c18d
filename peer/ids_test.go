package peer

import (
	"encoding/binary"
	"math/bits"
	"testing"
)

// The id sequence is a permutation of a counter: no repeats, one step of
// the counter per id.
func TestIDSequence_NoRepeats(t *testing.T) {
	s := newIDSequence([5]uint32{0xfffffff0, 1, 2, 3, 4}) // the counter wraps
	seen := make(map[[4]byte]bool)
	for i := range 1 << 16 {
		id := s.id()
		if seen[id] {
			t.Fatalf("id %v repeated after %d ids", id, i)
		}
		seen[id] = true
	}
	if want := uint32(0xfffffff0 + 1<<16 - 1<<32); s.next != want {
		t.Fatalf("counter at %#x after 65536 ids, want %#x", s.next, want)
	}
}

// An off-path host must have nothing to predict: consecutive ids differ
// in about half their bits, and the same counter under other keys gives
// an unrelated id (with another first round key: the last round's
// changes only half the bits, as in any Feistel network). Averages over many ids of fixed seeds: deterministic.
func TestIDSequence_Mixes(t *testing.T) {
	const n = 4096
	a := newIDSequence([5]uint32{7, 0x01234567, 0x89abcdef, 0xdeadbeef, 0x0badf00d})
	b := newIDSequence([5]uint32{7, 0x01234566, 0x89abcdef, 0xdeadbeef, 0x0badf00d})
	prev := a.id()
	b.id()
	var consecutive, keyed int
	for range n {
		x, y := a.id(), b.id()
		consecutive += bits.OnesCount32(binary.BigEndian.Uint32(x[:]) ^ binary.BigEndian.Uint32(prev[:]))
		keyed += bits.OnesCount32(binary.BigEndian.Uint32(x[:]) ^ binary.BigEndian.Uint32(y[:]))
		prev = x
	}
	for _, m := range []struct {
		what string
		sum  int
	}{{"consecutive ids", consecutive}, {"ids under first keys one bit apart", keyed}} {
		if mean := float64(m.sum) / n; mean < 15 || mean > 17 {
			t.Errorf("%s differ in %.2f bits on average, want about 16", m.what, mean)
		}
	}
}
