package peer

import (
	"math"
	"time"
)

// Congestion control, pacing and the retransmission timer of one peer's
// sending side, all driven by the times the State is given. The shape is
// RFC 9002's (sections 6 and 7): a congestion window in bytes, slow start
// and a multiplicative decrease once per recovery period, a probe timeout
// for the tail, pacing at about cwnd/SRTT; with a CUBIC-style decrease
// (beta 0.7) and the additive increase that makes it as fair to CUBIC as
// CUBIC's own TCP-friendly region (RFC 9438 4.3), HyStart-style exit from
// slow start on a rising RTT (RFC 9406), and two departures of its own:
//
//   - A loss is taken for congestion only when the path shows a standing
//     queue (the least RTT of the round above the least ever by 2 ms) or
//     when losses are a large part of the recent transmissions. A
//     random loss on a clean path does not halve the rate; a full
//     bottleneck queue, which is what tail-drop buffers show, does.
//   - A loss found to be spurious (its RECV came too soon after the
//     re-send to answer it) undoes the reduction it caused.

// wireOverhead is added to a datagram's length to count the bytes it
// takes on a link: the IPv4 and UDP headers (IPv6 adds 20 more; close
// enough), so that small messages are paced at what they really cost.
const wireOverhead = 28

// mss is the datagram size the window is counted in: a path-safe datagram
// (1200 bytes of UDP payload, as QUIC assumes) with its headers.
const mss = 1200 + wireOverhead

const (
	initialWindow = 10 * mss // RFC 9002 7.2
	// beta is the window kept on congestion (CUBIC's); alpha the additive
	// increase per round trip in congestion avoidance, in segments, that
	// makes AIMD(alpha, beta) as aggressive as Reno (RFC 9438 4.3).
	beta  = 0.7
	alpha = 3 * (1 - beta) / (1 + beta)
	// packetThreshold: a message three transmissions older than one
	// answered is lost (RFC 9002 6.1.1).
	packetThreshold = 3
	// lossRateThreshold: losses this large a part of the bytes of the
	// last lossRateWindows windows are congestion whatever the RTT says.
	// It is well above what random loss of 10% each way costs (the DATA
	// or its RECV: 19% on average, but in runs: one lost RECV datagram
	// answers several DATA datagrams, and a RECV is not repeated), so
	// that such a path keeps its rate, and it still bounds what a path
	// with too short a queue to show a delay can lose to us. The rate is
	// reckoned in bytes over windows, not over a count of messages: one
	// lost datagram can hold hundreds of small messages, and is one loss
	// of the path, not hundreds.
	lossRateThreshold = 0.5
	lossRateWindows   = 4
	// lossRateDatagrams is the least span of lossRate, for a small window,
	// in datagrams of the size in use: a hundred or so, so that a few
	// losses in a row, which 10% random loss brings often enough, do not
	// make it look heavy (with a window of ten datagrams, its span would
	// be forty, and a run of seven losses in them would cut the window;
	// each cut makes the next more likely). Counted in path-safe
	// datagrams alone, the span would be two of the 64 KiB fragments a
	// loopback path carries, and any two losses in a row would be heavy.
	lossRateDatagrams = 128
	// persistentPTOs: that many probe timeouts in a row mean persistent
	// congestion: the window falls to its minimum (RFC 9002 7.6).
	persistentPTOs = 3
)

// controller is the congestion controller: the window, its recovery
// period, the RTT filters it needs, and what it takes to undo a reduction.
type controller struct {
	cwnd, ssthresh int
	inFlight       int   // bytes of DATA sent and not yet answered or lost
	recoveryStart  int64 // sent before this: no more reduction, no growth
	minRTT         time.Duration
	// lossRate is the share of bytes lost, over about the last
	// lossRateWindows windows of outcomes (an exponential moving average,
	// each outcome weighted by its size).
	lossRate float64
	// unit is the size of the largest recent transmission (it decays by
	// 1/128 an outcome towards the sizes in use): see datagram.
	unit int
	undo struct {
		valid          bool
		cwnd, ssthresh int
	}
	// The current round trip's answers, losses and RTTs: HyStart's
	// rising-RTT test in slow start, and the queue signal.
	round struct {
		end            uint64 // the round ends when a transmission past it is answered
		acked, lost    int
		minRTT         time.Duration
		samples        int
		previousMinRTT time.Duration
	}
}

func newController() controller {
	return controller{cwnd: initialWindow, ssthresh: math.MaxInt}
}

// room reports whether size more bytes may go out now. Nothing in flight
// always has room, for one message whatever its size.
func (c *controller) room(size int) bool {
	return c.inFlight == 0 || c.inFlight+size <= c.cwnd
}

func (c *controller) sent(size int) { c.inFlight += size }

// gone takes size bytes out of flight: answered, lost or given up.
func (c *controller) gone(size int) { c.inFlight = max(0, c.inFlight-size) }

// sample feeds an RTT sample to the filters.
func (c *controller) sample(r time.Duration) {
	if c.minRTT == 0 || r < c.minRTT {
		c.minRTT = r
	}
	if c.round.samples == 0 || r < c.round.minRTT {
		c.round.minRTT = r
	}
	c.round.samples++
}

// acked counts size bytes answered, of a transmission sent at sentAt with
// sequence seq; nextSeq is the sequence of the next transmission. The
// window grows unless the message was sent before the recovery period
// began or the window was not in use (an application-limited sender does
// not earn a larger window).
func (c *controller) acked(size int, sentAt int64, seq, nextSeq uint64, srtt time.Duration) {
	c.round.acked++
	c.seen(size)
	c.lossRate -= c.lossRate * c.weight(size)
	if seq >= c.round.end {
		c.endRound(nextSeq)
	}
	if sentAt <= c.recoveryStart || c.inFlight+size < c.cwnd/2 {
		return
	}
	if c.cwnd < c.ssthresh {
		c.cwnd += size
		c.hystart(srtt)
		return
	}
	c.cwnd += max(1, int(alpha*float64(c.datagram())*float64(size)/float64(c.cwnd)))
}

// datagram is the size the window grows by in congestion avoidance, whose
// multiples are its floor and the loss rate's least span: the largest
// datagram recently sent, at least a path-safe one. TCP counts in its
// MSS, which follows the path's MTU (64 KiB on loopback); counted in
// path-safe datagrams, a window of 64 KiB fragments would grow by one of
// them in 53 round trips, and a cut would take thousands to make up.
func (c *controller) datagram() int { return max(c.unit, mss) }

// minWindow is the least window: two datagrams (RFC 9002 7.2).
func (c *controller) minWindow() int { return 2 * c.datagram() }

// endRound starts a new round trip at nextSeq. A round of fewer than
// eight RTT samples (a window of a few datagrams) keeps them for the next:
// the RTT filters compare rounds of eight samples at least, so the round
// they take as the last one is never many round trips old.
func (c *controller) endRound(nextSeq uint64) {
	r := &c.round
	r.end, r.acked, r.lost = nextSeq, 0, 0
	if r.samples >= 8 {
		r.previousMinRTT = r.minRTT
		r.samples, r.minRTT = 0, 0
	}
}

// hystart leaves slow start when this round's least RTT has risen by eta
// over the last round's: a queue is building (RFC 9406).
func (c *controller) hystart(srtt time.Duration) {
	r := &c.round
	if r.samples < 8 || r.previousMinRTT == 0 {
		return
	}
	eta := min(max(r.previousMinRTT/8, 4*time.Millisecond), 16*time.Millisecond)
	if r.minRTT >= r.previousMinRTT+eta {
		c.ssthresh = c.cwnd
	}
}

// seen notes the outcome of a transmission of size bytes in unit.
func (c *controller) seen(size int) {
	c.unit = max(size, c.unit-c.unit/lossRateDatagrams)
}

// weight is the weight of an outcome of size bytes in lossRate.
func (c *controller) weight(size int) float64 {
	span := max(lossRateWindows*c.cwnd, lossRateDatagrams*c.datagram())
	return min(1, float64(size)/float64(span))
}

// lost records the loss of a transmission of size bytes sent at sentAt,
// found at t, and reduces the window if it is a congestion signal and not
// within the current recovery period. srtt is the smoothed RTT.
func (c *controller) lost(size int, sentAt, t int64, srtt time.Duration) {
	c.round.lost++
	c.seen(size)
	c.lossRate += (1 - c.lossRate) * c.weight(size)
	if sentAt <= c.recoveryStart {
		return // one reduction per round trip of losses
	}
	queue := c.queueing(srtt)
	heavy := c.lossRate >= lossRateThreshold
	if !queue && !heavy && c.cwnd < c.ssthresh {
		// Random loss on a clean path, in slow start: leave slow start
		// (the path may be near full) but keep the window.
		c.ssthresh = c.cwnd
		return
	}
	if !queue && !heavy {
		return
	}
	c.undo.valid, c.undo.cwnd, c.undo.ssthresh = true, c.cwnd, c.ssthresh
	c.recoveryStart = t
	c.ssthresh = max(int(float64(c.cwnd)*beta), c.minWindow())
	c.cwnd = c.ssthresh
}

// queueing reports whether the path shows a standing queue: the least RTT
// of the round trip is above the least ever seen by 2 ms (a sixteenth of
// it on a long path, whose jitter is larger). A queue at a bottleneck
// raises every sample of a round; a busy CPU delays some and not others,
// and its noise, taken in the smoothed RTT, would look like a queue. A
// round of fewer than eight samples yet is taken with the last one (a
// few late answers, re-sent RECVs after a loss, are no queue), and any
// sample of it below the last one's least counts (one clean sample shows
// the queue is gone: were the last round's least used alone, a window cut
// to a few datagrams would see it for many round trips, and cut again at
// every loss). Without samples, the smoothed RTT stands in.
func (c *controller) queueing(srtt time.Duration) bool {
	if c.minRTT == 0 {
		return false
	}
	recent := c.round.minRTT
	if c.round.samples < 8 {
		recent = c.round.previousMinRTT
		if recent == 0 {
			recent = srtt
		}
		if c.round.samples > 0 {
			recent = min(recent, c.round.minRTT)
		}
	}
	return recent > c.minRTT+max(c.minRTT/16, 2*time.Millisecond)
}

// spurious undoes the last reduction: a loss behind it was not one.
func (c *controller) spurious() {
	if !c.undo.valid {
		return
	}
	c.undo.valid = false
	c.cwnd = max(c.cwnd, c.undo.cwnd)
	c.ssthresh = max(c.ssthresh, c.undo.ssthresh)
}

// persistent collapses the window after persistentPTOs probe timeouts in
// a row: nothing got through for several round trips (RFC 9002 7.6.2).
func (c *controller) persistent(t int64) {
	c.undo.valid = false
	c.recoveryStart = t
	c.ssthresh = max(int(float64(c.cwnd)*beta), c.minWindow())
	c.cwnd = c.minWindow()
}

// pacer spaces DATA out at rate bytes/ns, with bursts up to burst bytes
// (RFC 9002 7.7): a token bucket. A zero rate paces nothing.
type pacer struct {
	tokens float64
	last   int64
	rate   float64 // bytes per ns
	burst  float64
}

// pacingGain: how much faster than cwnd/SRTT to pace, so that pacing does
// not itself limit the rate: 2 in slow start, 1.25 after (Linux, quic-go).
const (
	pacingGainSS = 2.0
	pacingGainCA = 1.25
)

// setRate sets the rate from the window and the smoothed RTT.
func (p *pacer) setRate(cwnd int, srtt time.Duration, slowStart bool) {
	if srtt <= 0 {
		p.rate = 0
		return
	}
	g := pacingGainCA
	if slowStart {
		g = pacingGainSS
	}
	p.rate = g * float64(cwnd) / float64(srtt)
	// Bursts of a millisecond's worth, and at least ten datagrams: a timer
	// cannot wake a goroutine more finely than that anyway.
	p.burst = max(10*mss, p.rate*float64(time.Millisecond))
}

// refill adds the tokens earned since the last call.
func (p *pacer) refill(t int64) {
	if p.rate == 0 {
		return
	}
	if t > p.last {
		p.tokens = min(p.burst, p.tokens+float64(t-p.last)*p.rate)
	}
	p.last = t
}

// ready reports whether size bytes may go out at t.
func (p *pacer) ready(t int64, size int) bool {
	if p.rate == 0 {
		return true
	}
	p.refill(t)
	return p.tokens >= float64(min(size, mss))
}

// spend takes size bytes of tokens (the bucket may go below zero, for a
// datagram larger than it holds or one that must go at once).
func (p *pacer) spend(size int) {
	if p.rate != 0 {
		p.tokens -= float64(size)
	}
}

// next returns when size bytes may go out, given t.
func (p *pacer) next(t int64, size int) int64 {
	if p.rate == 0 {
		return t
	}
	need := float64(min(size, mss)) - p.tokens
	if need <= 0 {
		return t
	}
	return t + int64(math.Ceil(need/p.rate))
}
