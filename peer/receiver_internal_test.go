package peer

import (
	"encoding/binary"
	"testing"

	"github.com/gtudp/gtudp/wire"
)

// close keeps at most freeListMax entries for reuse, and hold takes one
// back before it allocates: a steady stream of exchanges allocates none,
// and a burst's entries are not all kept.
func TestReceiver_FreeListIsBounded(t *testing.T) {
	var r receiver
	const n = freeListMax + 1
	for i := range n {
		var id wire.ID
		binary.BigEndian.PutUint32(id[:], uint32(i))
		r.hold(id, uint64(i), nil, false)
	}
	var open []*inbound
	for range n {
		e, _ := r.delivered(0, 1)
		open = append(open, e)
	}
	for _, e := range open {
		r.close(e)
	}
	if r.open() != 0 || len(r.free) != freeListMax {
		t.Fatalf("%d exchanges closed: %d open, %d kept for reuse; want 0 and %d", n, r.open(), len(r.free), freeListMax)
	}
	kept := r.free[len(r.free)-1]
	if e := r.hold(wire.ID{1}, 1, nil, false); e != kept {
		t.Fatal("hold allocated an entry with one kept for reuse")
	}
}
