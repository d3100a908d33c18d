package peer

import (
	"math"
	"time"
)

// granularity is G of RFC 6298: the smallest variance term of the timeout.
const granularity = time.Millisecond

// rttEstimator is the retransmission timer of RFC 6298, section 2: SRTT,
// RTTVAR and RTO, bounded by [min, max]. Karn's rule (no sample from a
// re-sent packet) is the caller's job: it only feeds samples of packets
// transmitted once.
type rttEstimator struct {
	srtt, rttvar, rto time.Duration
	latest            time.Duration // the last sample
	min, max          time.Duration
	sampled           bool
	backedOff         int64 // when timedOut last doubled rto
}

func newRTTEstimator(initial, min, max time.Duration) rttEstimator {
	return rttEstimator{rto: clamp(initial, min, max), min: min, max: max}
}

// sample folds one round-trip measurement into the estimate (RFC 6298 2.2
// for the first, 2.3 after).
func (e *rttEstimator) sample(r time.Duration) {
	if r < 0 {
		r = 0
	}
	e.latest = r
	if !e.sampled {
		e.srtt, e.rttvar, e.sampled = r, r/2, true
	} else {
		dev := e.srtt - r
		if dev < 0 {
			dev = -dev
		}
		// β = 1/4, α = 1/8.
		e.rttvar = (3*e.rttvar + dev) / 4
		e.srtt = (7*e.srtt + r) / 8
	}
	// Saturating: a sample of hours (a RECV for a message with a
	// Lifetime of "forever") must not wrap the timeout around.
	v := max(granularity, e.rttvar)
	if v < math.MaxInt64/4 {
		v = max(granularity, 4*e.rttvar)
	}
	rto := e.srtt + v
	if rto < e.srtt {
		rto = math.MaxInt64
	}
	e.rto = clamp(rto, e.min, e.max)
}

// backoff returns the wait before the next transmission of a packet already
// transmitted attempts times: RTO doubled for each re-send (RFC 6298 5.5),
// at most max.
func (e *rttEstimator) backoff(attempts int) time.Duration {
	return doubled(e.rto, attempts-1, e.max)
}

// doubled returns d doubled n times, at most max (without overflow).
func doubled(d time.Duration, n int, max time.Duration) time.Duration {
	for i := 0; i < n && d < max; i++ {
		if d > max/2 {
			return max // doubling would pass it, or overflow
		}
		d *= 2
	}
	return min(d, max)
}

func clamp(d, lo, hi time.Duration) time.Duration { return max(lo, min(d, hi)) }

// timedOut backs the timer off after a retransmission timeout at t: RTO
// doubles (RFC 6298 5.5) and stays so until the next sample (5.7), so that
// the re-sends of a path that got slower do not add the load that slowed
// it. Many timeouts at once are one back-off: it doubles at most once per
// RTO.
func (e *rttEstimator) timedOut(t int64) {
	if e.backedOff != 0 && t-e.backedOff < int64(e.rto) {
		return
	}
	e.backedOff = t
	if e.rto > e.max/2 {
		e.rto = e.max
		return
	}
	e.rto = min(2*e.rto, e.max)
}
