package peer

import (
	"testing"
	"time"
)

// A peer parks ParkAfter after it was last busy and retires IdleTimeout
// after it was last busy or remembering, to the nanosecond; next and
// parkedWake say when to look again.
func TestLifecycle_Advance(t *testing.T) {
	t0 := time.Unix(100, 0)
	l := lifecycle{parkAfter: 2 * time.Second, idleTimeout: 5 * time.Second}
	steps := []struct {
		at           time.Duration
		busy, idle   bool
		retire, park bool
		next         time.Duration // -1: none
	}{
		{0, true, false, false, false, -1},
		{0, false, false, false, false, 2 * time.Second},
		{2*time.Second - 1, false, false, false, false, 2 * time.Second},
		{2 * time.Second, false, false, false, true, 2 * time.Second},
		{3 * time.Second, false, true, false, true, 2 * time.Second}, // idle from 3 s: retire at 8 s
		{8*time.Second - 1, false, true, false, true, 2 * time.Second},
		{8 * time.Second, false, true, true, true, 2 * time.Second},
		{9 * time.Second, true, false, false, false, -1}, // busy again: all over
		{10 * time.Second, false, true, false, false, 12 * time.Second},
	}
	for _, s := range steps {
		retire, park := l.advance(t0.Add(s.at), s.busy, s.idle)
		if retire != s.retire || park != s.park {
			t.Fatalf("at %v busy %v idle %v: retire %v park %v, want %v %v", s.at, s.busy, s.idle, retire, park, s.retire, s.park)
		}
		want := time.Time{}
		if s.next >= 0 {
			want = t0.Add(s.next)
		}
		if got := l.next(); !got.Equal(want) {
			t.Fatalf("at %v: next %v, want %v", s.at, got, want)
		}
	}
	if got, want := l.retireAt(), t0.Add(15*time.Second); !got.Equal(want) {
		t.Fatalf("retireAt %v, want %v", got, want)
	}
	// Refused at 15 s: ask again a full IdleTimeout later.
	l.refused(t0.Add(15 * time.Second))
	if got, want := l.retireAt(), t0.Add(20*time.Second); !got.Equal(want) {
		t.Fatalf("after refusal retireAt %v, want %v", got, want)
	}
	// Parked: wake for a dedupe expiry a second late, or to retire.
	if got, want := l.parkedWake(t0.Add(16*time.Second)), t0.Add(17*time.Second); !got.Equal(want) {
		t.Fatalf("parkedWake(16 s) = %v, want %v", got, want)
	}
	if got, want := l.parkedWake(t0.Add(19*time.Second+1)), t0.Add(20*time.Second); !got.Equal(want) {
		t.Fatalf("parkedWake(19 s) = %v, want the retirement %v", got, want)
	}
	if got, want := l.parkedWake(time.Time{}), t0.Add(20*time.Second); !got.Equal(want) {
		t.Fatalf("parkedWake(none) = %v, want %v", got, want)
	}
}

// A lifecycle with no ParkAfter never parks and has no park deadline.
func TestLifecycle_NeverPark(t *testing.T) {
	t0 := time.Unix(100, 0)
	l := lifecycle{idleTimeout: time.Hour}
	for _, at := range []time.Duration{0, time.Second, time.Minute} {
		if _, park := l.advance(t0.Add(at), false, false); park {
			t.Fatalf("parked at %v with no ParkAfter", at)
		}
	}
	if got := l.next(); !got.IsZero() {
		t.Fatalf("next %v with no ParkAfter and not idle, want none", got)
	}
}

func TestFirstTime(t *testing.T) {
	a, b := time.Unix(1, 0), time.Unix(2, 0)
	for _, tt := range []struct{ x, y, want time.Time }{
		{a, b, a}, {b, a, a}, {a, a, a}, {time.Time{}, b, b}, {a, time.Time{}, a}, {time.Time{}, time.Time{}, time.Time{}},
	} {
		if got := firstTime(tt.x, tt.y); !got.Equal(tt.want) {
			t.Errorf("firstTime(%v, %v) = %v, want %v", tt.x, tt.y, got, tt.want)
		}
	}
}
