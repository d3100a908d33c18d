package peer

import (
	"testing"
	"time"
)

func testSender() sender {
	return newSender([5]uint32{1, 2, 3, 4, 5}, newRTTEstimator(100*time.Millisecond, 10*time.Millisecond, time.Second))
}

// release keeps at most freeListMax entries for reuse, and start takes one
// back before it allocates.
func TestSender_FreeListIsBounded(t *testing.T) {
	s := testSender()
	const n = freeListMax + 1
	var started []*outbound
	for range n {
		started = append(started, s.start(Outgoing{Data: []byte("m")}, 40, never))
	}
	for _, o := range started {
		s.land(o)
		s.release(o)
	}
	if s.len() != 0 || len(s.free) != freeListMax {
		t.Fatalf("%d messages ended: %d pending, %d kept for reuse; want 0 and %d", n, s.len(), len(s.free), freeListMax)
	}
	kept := s.free[len(s.free)-1]
	if o := s.start(Outgoing{Data: []byte("m")}, 40, never); o != kept {
		t.Fatal("start allocated an entry with one kept for reuse")
	}
}
