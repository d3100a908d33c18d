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

// oldestFlying returns the oldest message in flight, skipping the
// transmissions of those answered since, and nil once none is in flight.
func TestSender_OldestFlying(t *testing.T) {
	s := testSender()
	if o := s.oldestFlying(); o != nil {
		t.Fatalf("oldestFlying of a new sender = %p, want nil", o)
	}
	a := s.start(Outgoing{Data: []byte("a")}, 40, never)
	b := s.start(Outgoing{Data: []byte("b")}, 40, never)
	s.transmitted(a, 1)
	s.transmitted(b, 2)
	if o := s.oldestFlying(); o != a {
		t.Fatal("oldestFlying is not the first sent")
	}
	s.land(a)
	if o := s.oldestFlying(); o != b {
		t.Fatal("with the first answered, oldestFlying is not the second")
	}
	s.land(b)
	if o := s.oldestFlying(); o != nil {
		t.Fatalf("with both answered, oldestFlying = %p, want nil", o)
	}
}
