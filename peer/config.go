package peer

import (
	"fmt"
	"time"

	"github.com/gtudp/gtudp/wire"
)

// Config holds the protocol settings of one peer. The endpoint builds it
// from gtudp.Config; a zero field takes the default named in its comment,
// and WithDefaults fills them in. The defaults are chosen to work unchanged
// on loopback (RTT ≈ 50 µs) and on a 100 ms-RTT path.
type Config struct {
	// HeaderLen is the length of a packet header under the wire format in
	// use, to count the bytes of the packets the state asks to send.
	// Default: that of wire.DefaultFormat (5).
	HeaderLen int

	// InitialRTO is the retransmission timeout before the first RTT sample.
	// Default 250 ms: above the 100 ms RTT of a distant path plus its
	// jitter, so the first message there is not re-sent needlessly, and a
	// loss on loopback costs a quarter second only until the first sample.
	InitialRTO time.Duration
	// MinRTO bounds the adaptive timeout from below. Default 10 ms: above
	// the scheduling and GC pauses of a busy Go process, so loopback does
	// not re-send spuriously, yet 20× below TCP's 200 ms so a LAN recovers
	// from loss quickly.
	MinRTO time.Duration
	// MaxRTO bounds the timeout, and its exponential backoff, from above.
	// Default 2 s: a peer that comes back is noticed within 2 s, and a
	// dead one costs at most one packet every 2 s per message.
	MaxRTO time.Duration
	// MaxAttempts is how many times a DATA is transmitted before the
	// message fails with ErrUndelivered (one RTO after the last attempt).
	// Default 20: at 50% loss each way a message still gets through with
	// probability 1-0.75^20 ≈ 99.7%; Lifetime usually ends it first.
	MaxAttempts int
	// Lifetime is the longest a message is tried, from its first
	// transmission. Default 30 s.
	Lifetime time.Duration
	// RecvAttempts is how many times a RECV is transmitted while waiting
	// for its ACK. Default 8 (about 2.5 s on loopback, 12 s at 100 ms):
	// a lost ACK only delays the end of an exchange the sender has already
	// completed, so fewer tries are needed than for DATA.
	RecvAttempts int
	// DedupeHorizon is how long a finished exchange's id and payload
	// digest are remembered, so a late duplicate DATA is not delivered
	// again. Default 40 s: longer than the 30 s Lifetime of a default
	// sender, which can re-send for that long if it never sees a RECV,
	// plus 10 s for a copy delayed in the network.
	DedupeHorizon time.Duration

	// Window is the most messages in flight to the peer (sent, outcome not
	// yet known). Default 1024: enough to fill a 100 ms path at 10,000
	// messages/s, and to keep loopback busy.
	Window int
	// RecvWindow is the most received exchanges the peer keeps open at
	// once (waiting for room in the Inbox, or delivered and waiting for
	// their ACK). A DATA beyond it is not answered; the sender re-sends.
	// Default 4096.
	RecvWindow int
	// HoldLimit is the most received messages kept while the Inbox is
	// full. They are delivered, and answered RECV, as soon as the Inbox
	// has room; DATA beyond them is not answered. Default 1024, a default
	// sender's Window: a burst of a full window that outruns the reader of
	// the Inbox is held, not refused; refusing it costs the sender an RTO
	// and, on loopback, a third of a 10,000-message stream re-sent. Held
	// payloads are memory: up to HoldLimit payloads per peer; lower it for
	// large payloads.
	HoldLimit int
	// DedupeLimit caps the finished ids remembered. At the cap the oldest
	// id whose exchange ended with an ACK is forgotten (its sender has
	// provably stopped re-sending) and counted in Stats.DedupeEvicted; if
	// none has, new DATA is not answered until one expires. Default 16384.
	DedupeLimit int

	// AckOnArrival says the owner answers every RECV with its ACK as the
	// RECV arrives, before handing it over: the state then counts that
	// ACK as sent (in Stats and against the amplification limit, which
	// it cannot break: an ACK is the size of the RECV it answers) and
	// does not produce it. The endpoint sets it so that the socket reader
	// writes ACKs and the peer's goroutine writes only DATA and RECV: on
	// a busy stream the peer's writes are the sender's bottleneck.
	AckOnArrival bool
}

// Defaults of Config, documented on its fields.
const (
	DefaultInitialRTO    = 250 * time.Millisecond
	DefaultMinRTO        = 10 * time.Millisecond
	DefaultMaxRTO        = 2 * time.Second
	DefaultMaxAttempts   = 20
	DefaultLifetime      = 30 * time.Second
	DefaultRecvAttempts  = 8
	DefaultDedupeHorizon = 40 * time.Second
	DefaultWindow        = 1024
	DefaultRecvWindow    = 4096
	DefaultHoldLimit     = 1024
	DefaultDedupeLimit   = 16384
)

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	set := func(p *time.Duration, d time.Duration) {
		if *p == 0 {
			*p = d
		}
	}
	seti := func(p *int, d int) {
		if *p == 0 {
			*p = d
		}
	}
	if c.HeaderLen == 0 {
		c.HeaderLen = wire.DefaultFormat().HeaderLen()
	}
	set(&c.InitialRTO, DefaultInitialRTO)
	set(&c.MinRTO, DefaultMinRTO)
	set(&c.MaxRTO, DefaultMaxRTO)
	seti(&c.MaxAttempts, DefaultMaxAttempts)
	set(&c.Lifetime, DefaultLifetime)
	seti(&c.RecvAttempts, DefaultRecvAttempts)
	set(&c.DedupeHorizon, DefaultDedupeHorizon)
	seti(&c.Window, DefaultWindow)
	seti(&c.RecvWindow, DefaultRecvWindow)
	seti(&c.HoldLimit, DefaultHoldLimit)
	seti(&c.DedupeLimit, DefaultDedupeLimit)
	return c
}

// Validate reports the first setting of c (after WithDefaults) that cannot
// work, naming it, or nil.
func (c Config) Validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"InitialRTO", c.InitialRTO}, {"MinRTO", c.MinRTO}, {"MaxRTO", c.MaxRTO},
		{"Lifetime", c.Lifetime}, {"DedupeHorizon", c.DedupeHorizon},
	} {
		if d.v <= 0 {
			return fmt.Errorf("gtudp: invalid config: %s is %v, must be positive", d.name, d.v)
		}
	}
	for _, n := range []struct {
		name string
		v    int
	}{
		{"HeaderLen", c.HeaderLen}, {"MaxAttempts", c.MaxAttempts}, {"RecvAttempts", c.RecvAttempts},
		{"Window", c.Window}, {"RecvWindow", c.RecvWindow}, {"HoldLimit", c.HoldLimit}, {"DedupeLimit", c.DedupeLimit},
	} {
		if n.v <= 0 {
			return fmt.Errorf("gtudp: invalid config: %s is %d, must be positive", n.name, n.v)
		}
	}
	if c.MinRTO > c.MaxRTO {
		return fmt.Errorf("gtudp: invalid config: MinRTO %v is above MaxRTO %v", c.MinRTO, c.MaxRTO)
	}
	if c.HoldLimit > c.RecvWindow {
		return fmt.Errorf("gtudp: invalid config: HoldLimit %d is above RecvWindow %d", c.HoldLimit, c.RecvWindow)
	}
	return nil
}
