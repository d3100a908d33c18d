package peer

import (
	"math"
	"testing"
	"time"
)

// after saturates at never instead of wrapping.
func TestAfter(t *testing.T) {
	for _, tt := range []struct {
		t    int64
		d    time.Duration
		want int64
	}{
		{0, time.Second, int64(time.Second)},
		{5, -3, 2},
		{never - 10, 10, never},
		{never - 10, 11, never},
		{never - 10, math.MaxInt64, never},
		{1, math.MaxInt64, never},
		{never - 11, 10, never - 1},
	} {
		if got := after(tt.t, tt.d); got != tt.want {
			t.Errorf("after(%d, %d) = %d, want %d", tt.t, tt.d, got, tt.want)
		}
	}
}

// Until the peer proves its address, it is sent at most 3× what it sent;
// spare leaves half of that unused.
func TestAmplification(t *testing.T) {
	a := amplification{}
	a.received(100)
	if !a.spare(150) || a.spare(151) {
		t.Fatalf("100 in, nothing out: spare(150) %v spare(151) %v, want true false", a.spare(150), a.spare(151))
	}
	if !a.allow(299) || !a.allow(1) {
		t.Fatal("allow up to 300 of 3×100 refused")
	}
	if a.allow(1) || a.out != 300 {
		t.Fatalf("allow past 3×100: out %d", a.out)
	}
	if a.spare(0) {
		t.Fatal("spare with the limit reached")
	}
	a.received(10)
	if !a.allow(30) || a.out != 330 {
		t.Fatalf("after 10 more in: out %d, want 330", a.out)
	}
	v := amplification{validated: true}
	if !v.allow(1<<30) || !v.spare(1<<30) || v.out != 1<<30 {
		t.Fatalf("a validated peer is limited: out %d", v.out)
	}
}
