package peer

import (
	"math"
	"testing"
	"time"
)

// The estimator follows RFC 6298 2.2 and 2.3 to the nanosecond: each row
// feeds samples to a fresh estimator and checks SRTT, RTTVAR and RTO.
func TestRTTEstimator_Sample(t *testing.T) {
	const ms = time.Millisecond
	tests := []struct {
		name              string
		min, max          time.Duration
		samples           []time.Duration
		srtt, rttvar, rto time.Duration
	}{
		{
			name: "first sample", min: 0, max: 10 * time.Second,
			samples: []time.Duration{100 * ms},
			srtt:    100 * ms, rttvar: 50 * ms, rto: 300 * ms, // R + 4·R/2
		},
		{
			name: "second sample faster", min: 0, max: 10 * time.Second,
			samples: []time.Duration{100 * ms, 60 * ms},
			// |SRTT−R| = 40 ms: RTTVAR = (3·50+40)/4, SRTT = (7·100+60)/8.
			srtt: 95 * ms, rttvar: 47500 * time.Microsecond, rto: 285 * ms,
		},
		{
			name: "second sample slower", min: 0, max: 10 * time.Second,
			samples: []time.Duration{100 * ms, 140 * ms},
			// The deviation is taken as an absolute value.
			srtt: 105 * ms, rttvar: 47500 * time.Microsecond, rto: 295 * ms,
		},
		{
			name: "negative sample counts as zero", min: 0, max: 10 * time.Second,
			samples: []time.Duration{-5 * ms},
			srtt:    0, rttvar: 0, rto: granularity, // the variance term is at least G
		},
		{
			name: "variance below the granularity", min: 0, max: 10 * time.Second,
			samples: []time.Duration{100 * time.Microsecond},
			srtt:    100 * time.Microsecond, rttvar: 50 * time.Microsecond,
			rto: 100*time.Microsecond + granularity,
		},
		{
			name: "clamped to min", min: 500 * ms, max: 10 * time.Second,
			samples: []time.Duration{100 * ms},
			srtt:    100 * ms, rttvar: 50 * ms, rto: 500 * ms,
		},
		{
			name: "clamped to max", min: 0, max: 200 * ms,
			samples: []time.Duration{100 * ms},
			srtt:    100 * ms, rttvar: 50 * ms, rto: 200 * ms,
		},
		{
			// RTTVAR = MaxInt64/4 exactly: 4·RTTVAR would wrap, so the
			// variance term is RTTVAR itself.
			name: "variance at the saturation edge", min: 0, max: math.MaxInt64,
			samples: []time.Duration{2 * (math.MaxInt64 / 4)},
			srtt:    2 * (math.MaxInt64 / 4), rttvar: math.MaxInt64 / 4,
			rto: 3 * (math.MaxInt64 / 4),
		},
		{
			name: "a sample of forever saturates", min: 0, max: math.MaxInt64,
			samples: []time.Duration{math.MaxInt64},
			srtt:    math.MaxInt64, rttvar: math.MaxInt64 / 2, rto: math.MaxInt64,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newRTTEstimator(time.Second, tt.min, tt.max)
			for _, r := range tt.samples {
				e.sample(r)
			}
			if e.srtt != tt.srtt || e.rttvar != tt.rttvar || e.rto != tt.rto {
				t.Errorf("after %v: srtt %v rttvar %v rto %v, want %v %v %v",
					tt.samples, e.srtt, e.rttvar, e.rto, tt.srtt, tt.rttvar, tt.rto)
			}
			if want := max(tt.samples[len(tt.samples)-1], 0); e.latest != want {
				t.Errorf("latest %v, want %v", e.latest, want)
			}
		})
	}
}

func TestRTTEstimator_InitialClamped(t *testing.T) {
	for _, tt := range []struct{ initial, want time.Duration }{
		{time.Millisecond, 10 * time.Millisecond},
		{100 * time.Millisecond, 100 * time.Millisecond},
		{time.Minute, time.Second},
	} {
		if e := newRTTEstimator(tt.initial, 10*time.Millisecond, time.Second); e.rto != tt.want {
			t.Errorf("initial %v in [10ms, 1s]: rto %v, want %v", tt.initial, e.rto, tt.want)
		}
	}
}

// backoff doubles RTO once per transmission after the first, up to max,
// without overflowing when max is forever.
func TestRTTEstimator_Backoff(t *testing.T) {
	const ms = time.Millisecond
	tests := []struct {
		rto, max time.Duration
		attempts int
		want     time.Duration
	}{
		{100 * ms, 400 * ms, 0, 100 * ms},
		{100 * ms, 400 * ms, 1, 100 * ms},
		{100 * ms, 400 * ms, 2, 200 * ms},
		{100 * ms, 400 * ms, 3, 400 * ms},
		{100 * ms, 400 * ms, 4, 400 * ms},
		{100 * ms, 1000 * ms, 3, 400 * ms},
		{300 * ms, 400 * ms, 2, 400 * ms}, // doubling would pass max
		{200, 401, 2, 400},                // half of an odd max doubles exactly
		{201, 401, 2, 401},
		{math.MaxInt64/2 + 1, math.MaxInt64, 2, math.MaxInt64},
		{math.MaxInt64 / 4, math.MaxInt64, 3, math.MaxInt64 / 4 * 4},
	}
	for _, tt := range tests {
		e := newRTTEstimator(tt.rto, 0, tt.max)
		if got := e.backoff(tt.attempts); got != tt.want {
			t.Errorf("rto %v max %v: backoff(%d) = %v, want %v", tt.rto, tt.max, tt.attempts, got, tt.want)
		}
	}
}

// timedOut doubles RTO at most once per RTO, up to max.
func TestRTTEstimator_TimedOut(t *testing.T) {
	const ms = int64(time.Millisecond)
	e := newRTTEstimator(100*time.Millisecond, 0, time.Second)
	steps := []struct {
		at   int64
		want time.Duration
	}{
		{1000 * ms, 200 * time.Millisecond}, // first timeout doubles
		{1150 * ms, 200 * time.Millisecond}, // within the new RTO: the same back-off
		{1199 * ms, 200 * time.Millisecond},
		{1200 * ms, 400 * time.Millisecond}, // one RTO later: doubles again
		{1600 * ms, 800 * time.Millisecond},
		{2400 * ms, time.Second}, // 1.6 s passes max
		{3400 * ms, time.Second},
	}
	for _, s := range steps {
		e.timedOut(s.at)
		if e.rto != s.want {
			t.Fatalf("timedOut(%v): rto %v, want %v", time.Duration(s.at), e.rto, s.want)
		}
	}

	// Half of max or less doubles exactly; more than half goes to max.
	for _, tt := range []struct{ rto, want time.Duration }{
		{500 * time.Millisecond, time.Second},
		{600 * time.Millisecond, time.Second},
		{499 * time.Millisecond, 998 * time.Millisecond},
	} {
		e := newRTTEstimator(tt.rto, 0, time.Second)
		e.timedOut(ms)
		if e.rto != tt.want {
			t.Errorf("rto %v, max 1s: after timedOut %v, want %v", tt.rto, e.rto, tt.want)
		}
	}
	// An odd max: its floor half still doubles exactly.
	for _, tt := range []struct{ rto, want time.Duration }{{200, 400}, {201, 401}} {
		e := newRTTEstimator(tt.rto, 0, 401)
		e.timedOut(ms)
		if e.rto != tt.want {
			t.Errorf("rto %v, max 401ns: after timedOut %v, want %v", tt.rto, e.rto, tt.want)
		}
	}
	// A max of forever: a short RTO still doubles, and one past half of
	// forever goes to forever rather than wrap.
	for _, tt := range []struct{ rto, want time.Duration }{
		{time.Second, 2 * time.Second},
		{math.MaxInt64 / 2, math.MaxInt64 - 1},
		{math.MaxInt64/2 + 1, math.MaxInt64},
	} {
		e := newRTTEstimator(tt.rto, 0, math.MaxInt64)
		e.timedOut(ms)
		if e.rto != tt.want {
			t.Errorf("rto %v, max forever: after timedOut %v, want %v", tt.rto, e.rto, tt.want)
		}
	}
}
