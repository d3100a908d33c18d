package peer

import (
	"math"
	"testing"
	"time"
)

// minWindowPathSafe is the least window with path-safe datagrams: two.
const minWindowPathSafe = 2 * mss

func TestController_Room(t *testing.T) {
	for _, tt := range []struct {
		inFlight, size int
		want           bool
	}{
		{0, 10 * initialWindow, true}, // nothing in flight: one message always goes
		{initialWindow - 1000, 1000, true},
		{initialWindow - 1000, 1001, false},
		{1, initialWindow, false},
	} {
		c := newController()
		c.inFlight = tt.inFlight
		if got := c.room(tt.size); got != tt.want {
			t.Errorf("%d in flight, window %d: room(%d) = %v, want %v", tt.inFlight, c.cwnd, tt.size, got, tt.want)
		}
	}
}

func TestController_SentGone(t *testing.T) {
	c := newController()
	c.sent(1000)
	c.sent(500)
	c.gone(300)
	if c.inFlight != 1200 {
		t.Fatalf("in flight %d, want 1200", c.inFlight)
	}
	c.gone(5000) // more than is in flight: never below zero
	if c.inFlight != 0 {
		t.Fatalf("in flight %d after giving back too much, want 0", c.inFlight)
	}
}

func TestController_Sample(t *testing.T) {
	c := newController()
	for _, r := range []time.Duration{30, 20, 25, 30, 30, 30, 30, 30} {
		c.sample(r * time.Millisecond)
	}
	if c.minRTT != 20*time.Millisecond || c.round.minRTT != 20*time.Millisecond || c.round.samples != 8 {
		t.Fatalf("min %v, round min %v, samples %d; want 20ms 20ms 8", c.minRTT, c.round.minRTT, c.round.samples)
	}
	// A new round keeps the least ever but starts its own.
	c.endRound(1)
	c.sample(40 * time.Millisecond)
	if c.minRTT != 20*time.Millisecond || c.round.minRTT != 40*time.Millisecond || c.round.samples != 1 {
		t.Fatalf("next round: min %v, round min %v, samples %d; want 20ms 40ms 1", c.minRTT, c.round.minRTT, c.round.samples)
	}
}

// acked grows the window by the bytes answered in slow start and by
// alpha·mss per window in congestion avoidance; not for a transmission
// sent before the recovery period, nor when the window is not in use.
func TestController_AckedGrowth(t *testing.T) {
	// alpha·mss·size/cwnd with size = mss and cwnd = initialWindow is
	// alpha·mss/10 = 0.529…·122.8 = 65.01…: 65 bytes.
	const caGrowth = 65
	tests := []struct {
		name          string
		inFlight      int
		ssthresh      int
		recoveryStart int64
		sentAt        int64
		size          int
		want          int
	}{
		{"slow start", initialWindow, math.MaxInt, 0, 10, mss, initialWindow + mss},
		{"window half used", initialWindow/2 - mss, math.MaxInt, 0, 10, mss, initialWindow + mss},
		{"window less than half used", initialWindow/2 - mss - 1, math.MaxInt, 0, 10, mss, initialWindow},
		{"sent when recovery began", initialWindow, math.MaxInt, 10, 10, mss, initialWindow},
		{"sent after recovery began", initialWindow, math.MaxInt, 10, 11, mss, initialWindow + mss},
		{"congestion avoidance", initialWindow, initialWindow, 0, 10, mss, initialWindow + caGrowth},
		{"congestion avoidance grows by one at least", initialWindow, initialWindow, 0, 10, 1, initialWindow + 1},
	}
	for _, tt := range tests {
		c := newController()
		c.inFlight, c.ssthresh, c.recoveryStart = tt.inFlight, tt.ssthresh, tt.recoveryStart
		c.round.end = 100 // the round goes on
		c.acked(tt.size, tt.sentAt, 0, 1, 0)
		if c.cwnd != tt.want {
			t.Errorf("%s: window %d, want %d", tt.name, c.cwnd, tt.want)
		}
	}
}

// acked decays the loss rate by the answer's share of its span (here
// 128 datagrams), counts the answer in the round, and ends the round when
// a transmission from its end on is answered.
func TestController_AckedRound(t *testing.T) {
	c := newController()
	rate := 0.32
	c.lossRate = rate
	c.round.end = 5
	c.acked(mss, 0, 4, 9, 0)
	if want := rate - rate/128; c.lossRate != want {
		t.Fatalf("loss rate %v, want %v", c.lossRate, want)
	}
	if c.round.end != 5 || c.round.acked != 1 {
		t.Fatalf("seq 4 of a round ending at 5: end %d acked %d, want 5 1", c.round.end, c.round.acked)
	}
	c.acked(100, 0, 5, 9, 0)
	if c.round.end != 9 || c.round.acked != 0 {
		t.Fatalf("seq 5 of a round ending at 5: end %d acked %d, want a new round to 9", c.round.end, c.round.acked)
	}
}

// A round's least RTT becomes the last round's if it had 8 samples; a
// round of fewer keeps its samples for the next.
func TestController_EndRound(t *testing.T) {
	const ms = time.Millisecond
	for _, tt := range []struct {
		samples     int
		previous    time.Duration
		keptSamples int
		keptMin     time.Duration
	}{{7, 0, 7, 30 * ms}, {8, 30 * ms, 0, 0}, {9, 30 * ms, 0, 0}} {
		c := newController()
		c.round.samples, c.round.minRTT, c.round.lost, c.round.acked = tt.samples, 30*ms, 2, 3
		c.endRound(42)
		r := c.round
		if r.previousMinRTT != tt.previous || r.end != 42 || r.samples != tt.keptSamples || r.minRTT != tt.keptMin || r.lost != 0 || r.acked != 0 {
			t.Errorf("end of a round of %d samples: %+v, want previous min %v, %d samples of least %v kept, counts reset",
				tt.samples, r, tt.previous, tt.keptSamples, tt.keptMin)
		}
	}
}

// hystart leaves slow start when the round's least RTT is eta above the
// last round's: eta is an eighth of it, within [4 ms, 16 ms].
func TestController_Hystart(t *testing.T) {
	const ms = time.Millisecond
	tests := []struct {
		samples       int
		previous, min time.Duration
		exit          bool
	}{
		{8, 40 * ms, 45 * ms, true}, // eta 5 ms
		{8, 40 * ms, 45*ms - 1, false},
		{7, 40 * ms, 60 * ms, false}, // too few samples
		{8, 0, 60 * ms, false},       // no previous round
		{8, 8 * ms, 12 * ms, true},   // eta at least 4 ms
		{8, 8 * ms, 12*ms - 1, false},
		{8, 200 * ms, 216 * ms, true}, // eta at most 16 ms
		{8, 200 * ms, 216*ms - 1, false},
	}
	for _, tt := range tests {
		c := newController()
		c.cwnd = 5 * mss
		c.round.samples, c.round.previousMinRTT, c.round.minRTT = tt.samples, tt.previous, tt.min
		c.hystart(0)
		if got := c.ssthresh == 5*mss; got != tt.exit {
			t.Errorf("%d samples, previous %v, now %v: left slow start %v, want %v", tt.samples, tt.previous, tt.min, got, tt.exit)
		}
	}

	// Through acked: the growth counts, then slow start ends there.
	c := newController()
	c.inFlight = c.cwnd
	c.round.end = 100
	c.round.samples, c.round.previousMinRTT, c.round.minRTT = 8, 40*ms, 50*ms
	c.acked(mss, 1, 0, 1, 0)
	if c.cwnd != initialWindow+mss || c.ssthresh != initialWindow+mss {
		t.Fatalf("acked with a rising RTT: window %d ssthresh %d, want both %d", c.cwnd, c.ssthresh, initialWindow+mss)
	}
}

// queueing compares the recent least RTT with the least ever plus
// max(min/16, 2 ms).
func TestController_Queueing(t *testing.T) {
	const ms = time.Millisecond
	tests := []struct {
		name               string
		min                time.Duration
		samples            int
		roundMin, previous time.Duration
		srtt               time.Duration
		want               bool
	}{
		{"no sample ever", 0, 0, 0, 0, 100 * ms, false},
		{"round at the threshold", 10 * ms, 8, 12 * ms, 0, 0, false},
		{"round above it", 10 * ms, 8, 12*ms + 1, 0, 0, true},
		{"few samples: the last round", 10 * ms, 7, 13 * ms, 13 * ms, 0, true},
		{"few samples: the last round clean", 10 * ms, 7, 13 * ms, 11 * ms, 0, false},
		{"few samples, one clean: the queue is gone", 10 * ms, 7, 11 * ms, 13 * ms, 0, false},
		{"few samples, one clean, no last round", 10 * ms, 7, 11 * ms, 0, 13 * ms, false},
		{"few samples, no last round: srtt", 10 * ms, 7, 13 * ms, 0, 14 * ms, true},
		{"no samples: the last round", 10 * ms, 0, 0, 13 * ms, 0, true},
		{"no round: srtt", 10 * ms, 0, 0, 0, 13 * ms, true},
		{"no round: srtt clean", 10 * ms, 0, 0, 0, 12 * ms, false},
		{"long path: a sixteenth", 64 * ms, 8, 68 * ms, 0, 0, false},
		{"long path: above a sixteenth", 64 * ms, 8, 68*ms + 1, 0, 0, true},
	}
	for _, tt := range tests {
		c := newController()
		c.minRTT = tt.min
		c.round.samples, c.round.minRTT, c.round.previousMinRTT = tt.samples, tt.roundMin, tt.previous
		if got := c.queueing(tt.srtt); got != tt.want {
			t.Errorf("%s: queueing = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// lost reduces the window to beta of it (at least minWindowPathSafe), once per
// recovery period, only on a congestion signal; random loss in slow start
// ends slow start and keeps the window.
func TestController_Lost(t *testing.T) {
	const ms = time.Millisecond
	queue := func(c *controller) { c.minRTT, c.round.samples, c.round.minRTT = 10*ms, 8, 20*ms }
	const reduced = 8596 // 0.7 of initialWindow
	tests := []struct {
		name           string
		setup          func(c *controller)
		sentAt         int64
		cwnd, ssthresh int
		recoveryStart  int64
		undo           bool
	}{
		{"random loss in slow start", func(c *controller) {}, 1, initialWindow, initialWindow, 0, false},
		{"random loss in congestion avoidance", func(c *controller) { c.ssthresh = initialWindow }, 1, initialWindow, initialWindow, 0, false},
		{"queue", queue, 1, reduced, reduced, 50, true},
		{"heavy loss", func(c *controller) { c.lossRate = 0.6 }, 1, reduced, reduced, 50, true},
		{"sent before recovery", func(c *controller) { queue(c); c.recoveryStart = 1 }, 1, initialWindow, math.MaxInt, 1, false},
		{"sent after recovery began", func(c *controller) { queue(c); c.recoveryStart = 1 }, 2, reduced, reduced, 50, true},
		{"small window", func(c *controller) { queue(c); c.cwnd = 3000 }, 1, minWindowPathSafe, minWindowPathSafe, 50, true},
	}
	for _, tt := range tests {
		c := newController()
		tt.setup(&c)
		c.lost(1, tt.sentAt, 50, 0)
		if c.cwnd != tt.cwnd || c.ssthresh != tt.ssthresh || c.recoveryStart != tt.recoveryStart || c.undo.valid != tt.undo {
			t.Errorf("%s: window %d ssthresh %d recovery %d undo %v; want %d %d %d %v", tt.name,
				c.cwnd, c.ssthresh, c.recoveryStart, c.undo.valid, tt.cwnd, tt.ssthresh, tt.recoveryStart, tt.undo)
		}
		if c.round.lost != 1 {
			t.Errorf("%s: round lost %d, want 1", tt.name, c.round.lost)
		}
	}

	// The loss rate moves the loss's share of its span of the way to 1:
	// a full datagram lost, with a small window, is one of 128.
	c := newController()
	c.lost(mss, 1, 50, 0)
	if c.lossRate != 1.0/128 {
		t.Fatalf("loss rate after one datagram lost %v, want %v", c.lossRate, 1.0/128)
	}
	// With a large window the span is four windows.
	c = newController()
	c.cwnd = 100 * mss
	c.lost(mss, 1, 50, 0)
	if c.lossRate != 1.0/400 {
		t.Fatalf("loss rate after one datagram lost of a 100-datagram window %v, want %v", c.lossRate, 1.0/400)
	}
	// The span is counted in datagrams of the size in use: losing two 64
	// KiB fragments in a row, with a small window, is two of 128 (counted
	// in path-safe datagrams, the span would be two fragments, and the
	// path would look as if it lost every byte).
	c = newController()
	const frag = 64 << 10
	c.lost(frag, 1, 50, 0)
	c.lost(frag, 2, 50, 0)
	if want := 1 - (1-1.0/128)*(1-1.0/128); math.Abs(c.lossRate-want) > 1e-12 {
		t.Fatalf("loss rate after two 64 KiB fragments lost %v, want %v", c.lossRate, want)
	}
	// The datagram size in use decays to the sizes seen since, by 1/128
	// an outcome.
	for range 128 {
		c.acked(mss, 3, 0, 1, 0)
	}
	if want := int(frag * math.Pow(1-1.0/128, 128)); c.unit < want-128 || c.unit > want+128 {
		t.Fatalf("unit after 128 path-safe datagrams answered %d, want about %d", c.unit, want)
	}
}

// The loss rate that counts as heavy is lossRateThreshold: a path that
// loses under half of its bytes keeps its window, one that loses more
// does not.
func TestController_LossRateThreshold(t *testing.T) {
	for _, tt := range []struct {
		rate    float64
		reduced bool
	}{{0.40, false}, {0.49, false}, {0.50, true}, {0.51, true}} {
		c := newController()
		c.ssthresh = c.cwnd
		// The moving average at rate before the loss, which (of no
		// bytes) does not move it: 0.50 is exactly the threshold.
		c.lossRate = tt.rate
		c.lost(0, 1, 50, 0)
		if got := c.cwnd < initialWindow; got != tt.reduced {
			t.Errorf("loss rate %v: reduced %v, want %v", c.lossRate, got, tt.reduced)
		}
	}
}

func TestController_SpuriousUndoes(t *testing.T) {
	c := newController()
	c.minRTT, c.round.samples, c.round.minRTT = 10*time.Millisecond, 8, 20*time.Millisecond
	c.lost(1, 1, 50, 0)
	c.spurious()
	if c.cwnd != initialWindow || c.ssthresh != math.MaxInt || c.undo.valid {
		t.Fatalf("after a spurious loss: window %d ssthresh %d undo %v, want %d, none, false", c.cwnd, c.ssthresh, c.undo.valid, initialWindow)
	}
	// A second undo has nothing to undo.
	c.cwnd, c.ssthresh = minWindowPathSafe, minWindowPathSafe
	c.spurious()
	if c.cwnd != minWindowPathSafe || c.ssthresh != minWindowPathSafe {
		t.Fatalf("second spurious: window %d ssthresh %d, want both %d", c.cwnd, c.ssthresh, minWindowPathSafe)
	}
	// The undo never shrinks what grew since.
	c = newController()
	c.minRTT, c.round.samples, c.round.minRTT = 10*time.Millisecond, 8, 20*time.Millisecond
	c.lost(1, 1, 50, 0)
	c.cwnd, c.ssthresh = 2*initialWindow, 2*initialWindow
	c.undo.ssthresh = initialWindow
	c.spurious()
	if c.cwnd != 2*initialWindow || c.ssthresh != 2*initialWindow {
		t.Fatalf("undo after growth: window %d ssthresh %d, want both %d", c.cwnd, c.ssthresh, 2*initialWindow)
	}
}

func TestController_Persistent(t *testing.T) {
	c := newController()
	c.undo.valid = true
	c.persistent(70)
	if c.cwnd != minWindowPathSafe || c.ssthresh != 8596 || c.recoveryStart != 70 || c.undo.valid {
		t.Fatalf("persistent congestion: window %d ssthresh %d recovery %d undo %v", c.cwnd, c.ssthresh, c.recoveryStart, c.undo.valid)
	}
	c.persistent(80) // from minWindowPathSafe: ssthresh stays at least minWindowPathSafe
	if c.ssthresh != minWindowPathSafe {
		t.Fatalf("persistent from the minimum: ssthresh %d, want %d", c.ssthresh, minWindowPathSafe)
	}
}

func TestPacer_SetRate(t *testing.T) {
	tests := []struct {
		cwnd        int
		srtt        time.Duration
		slowStart   bool
		rate, burst float64
	}{
		{12800, 10 * time.Millisecond, false, 1.25 * 12800 / 1e7, 10 * mss},
		{12800, 10 * time.Millisecond, true, 2 * 12800 / 1e7, 10 * mss},
		{1e8, 10 * time.Millisecond, false, 12.5, 12.5e6},
		{12800, 0, false, 0, 0},
		{12800, -1, true, 0, 0},
	}
	for _, tt := range tests {
		var p pacer
		p.setRate(tt.cwnd, tt.srtt, tt.slowStart)
		if p.rate != tt.rate || p.burst != tt.burst {
			t.Errorf("setRate(%d, %v, %v): rate %v burst %v, want %v %v", tt.cwnd, tt.srtt, tt.slowStart, p.rate, p.burst, tt.rate, tt.burst)
		}
	}
}

// The token bucket at a rate of one byte per 1024 ns (exact in floating
// point): tokens accrue with time up to the burst, ready wants a datagram's
// worth (at most mss), next says when that is.
func TestPacer_Bucket(t *testing.T) {
	const perByte = 1024
	p := pacer{rate: 1.0 / perByte, burst: 4 * mss, last: 1000}
	if p.ready(1000+1000*perByte, mss) {
		t.Fatal("ready with 1000 bytes of tokens for an mss")
	}
	if !p.ready(1000+1000*perByte, 1000) {
		t.Fatal("not ready with 1000 bytes of tokens for 1000")
	}
	if got, want := p.next(1000+1000*perByte, mss), int64(1000+mss*perByte); got != want {
		t.Fatalf("next = %d, want %d", got, want)
	}
	if got, want := p.next(1000+1000*perByte, 10*mss), int64(1000+mss*perByte); got != want {
		t.Fatalf("next for a large datagram = %d, want %d (an mss of tokens)", got, want)
	}
	if !p.ready(1000+mss*perByte, 10*mss) {
		t.Fatal("not ready with an mss of tokens for a large datagram")
	}
	if got := p.next(1000+mss*perByte, mss); got != 1000+mss*perByte {
		t.Fatalf("next when ready = %d, want now", got)
	}
	p.spend(10 * mss)
	if p.tokens != -9*mss {
		t.Fatalf("tokens %v after spending 10 mss of 1, want %v", p.tokens, -9*mss)
	}
	// A long idle time fills the bucket to its burst and no more.
	p.refill(1 << 40)
	if p.tokens != 4*mss || p.last != 1<<40 {
		t.Fatalf("after idling: tokens %v last %d, want %v %d", p.tokens, p.last, 4*mss, int64(1<<40))
	}
	// Time standing still earns nothing.
	p.spend(mss)
	p.refill(1 << 40)
	if p.tokens != 3*mss {
		t.Fatalf("refill at the same time: tokens %v, want %v", p.tokens, 3*mss)
	}

	// Nor does it take away: tokens earned under a larger burst stay
	// until time moves on.
	p.tokens, p.burst = 5*mss, 2*mss
	p.refill(1 << 40)
	if p.tokens != 5*mss {
		t.Fatalf("refill at the same time after the burst shrank: tokens %v, want %v", p.tokens, 5*mss)
	}
	p.refill(1<<40 + 1)
	if p.tokens != 2*mss {
		t.Fatalf("refill a nanosecond later: tokens %v, want the burst %v", p.tokens, 2*mss)
	}

	// A zero rate paces nothing and spends nothing.
	var z pacer
	z.spend(mss)
	if !z.ready(0, 10*mss) || z.next(5, mss) != 5 || z.tokens != 0 {
		t.Fatalf("zero rate: ready %v next %d tokens %v", z.ready(0, 10*mss), z.next(5, mss), z.tokens)
	}
	z.refill(100)
	if z.last != 0 {
		t.Fatalf("zero rate: refill moved last to %d", z.last)
	}
}

// The window grows and is floored in datagrams of the size in use: with
// 64 KiB fragments, congestion avoidance adds alpha of one of them a
// window, and a cut or persistent congestion leaves room for two.
func TestController_LargeDatagrams(t *testing.T) {
	const frag = 64 << 10
	c := newController()
	c.cwnd, c.ssthresh, c.inFlight = 16*frag, 16*frag, 16*frag
	c.round.end = 100
	c.acked(frag, 1, 0, 1, 0)
	// alpha·frag·frag/cwnd = 0.529…·65536/16 = 2168.4…
	if want := 16*frag + 2168; c.cwnd != want {
		t.Fatalf("congestion avoidance with 64 KiB datagrams: window %d, want %d", c.cwnd, want)
	}
	c.persistent(10)
	if c.cwnd != 2*frag {
		t.Fatalf("persistent congestion with 64 KiB datagrams: window %d, want %d", c.cwnd, 2*frag)
	}
	c.minRTT, c.round.samples, c.round.minRTT = time.Millisecond, 8, 10*time.Millisecond // a standing queue
	c.cwnd = 2*frag + 1
	c.lost(frag, 20, 30, 0)
	if c.cwnd != 2*frag || c.ssthresh != 2*frag {
		t.Fatalf("a cut with 64 KiB datagrams: window %d ssthresh %d, want both %d", c.cwnd, c.ssthresh, 2*frag)
	}
}
