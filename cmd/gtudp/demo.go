package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/google/uuid"
	"github.com/gtudp/gtudp"
	"github.com/gtudp/gtudp/actor/actortest"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
)

// demoOptions are the knobs of the demo.
type demoOptions struct {
	n                  int
	size               int
	loss, dup, reorder float64
	jitter, delay      time.Duration
	inFlight           int
	seed               uint64
	drain              time.Duration
	common             common
	progress           string // "bar", "lines" or "off"
	progressOut        io.Writer
	linesEvery         time.Duration // period of the "lines" progress
}

// summary is what the demo measured. The first rows count messages, each
// in exactly one row, by what the receiver's Inbox got (deliveries) and
// what the sender was told (its receipt); they add up to Sent.
type summary struct {
	Sent int

	DeliveredConfirmed int // delivered once; the sender was told so
	// DeliveredFailed: delivered once, yet the sender was told it failed:
	// it gave up (Lifetime, attempts) before any RECV reached it. The
	// protocol allows this; a failure means "may not have arrived".
	DeliveredFailed    int
	UndeliveredFailed  int // not delivered; the sender was told it failed
	UndeliveredClaimed int // not delivered, yet the sender was told it was: a lie
	DeliveredTwice     int // delivered more than once, whatever the sender was told
	DeliveredSilent    int // delivered once; the sender was told nothing
	Lost               int // not delivered; the sender was told nothing

	// Counted apart from the messages:
	Corrupt       int // deliveries whose payload failed its check
	ExtraReceipts int // receipts beyond one per message, or naming none

	DuplicatesSuppressed   uint64 // DATA repeats the receiver recognised
	DataResent, RecvResent uint64
	Elapsed                time.Duration // from the first send to the last outcome
	P50, P90, P99, Max     time.Duration // send to confirmation
	Relay                  actortest.RelayStats
	FirstFailure           error
}

// OK reports whether every outcome told the truth and no message was
// delivered twice, corrupted or left without an outcome. Messages
// reported failed are allowed: under heavy loss that is the truth.
func (s summary) OK() bool {
	return s.UndeliveredClaimed == 0 && s.DeliveredTwice == 0 && s.DeliveredSilent == 0 && s.Lost == 0 &&
		s.Corrupt == 0 && s.ExtraReceipts == 0
}

// Confirmed is the number of messages the sender was told arrived.
func (s summary) Confirmed() int { return s.DeliveredConfirmed + s.UndeliveredClaimed }

// Failed is the number of messages the sender was told failed.
func (s summary) Failed() int { return s.DeliveredFailed + s.UndeliveredFailed }

// throughput is confirmed messages per second: the one formula of the
// progress bar's rate and the summary's, so that they agree.
func throughput(confirmed int, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	return float64(confirmed) / elapsed.Seconds()
}

func runDemoCommand(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var o demoOptions
	fs := newFlagSet("demo", "[flags]",
		"Runs two endpoints in this process that talk through a lossy relay on loopback,\n"+
			"sends a stream of messages, each tagged with its number, and prints what\n"+
			"happened to each: delivered or not (the receiver's count) against what the\n"+
			"sender was told (its receipt). Exit status 1 if any outcome was untrue, or\n"+
			"a message was delivered twice, corrupted, or left without an outcome;\n"+
			"messages reported failed are not errors (under heavy loss they are the truth).",
		"gtudp demo -n 5000 -loss 0.3 -dup 0.1", stderr)
	fs.IntVar(&o.n, "n", 20000, "messages to send")
	fs.IntVar(&o.size, "size", 64, "payload bytes per message (at least 8)")
	fs.Float64Var(&o.loss, "loss", 0.2, "probability the relay drops a datagram, each way")
	fs.Float64Var(&o.dup, "dup", 0.05, "probability the relay duplicates a datagram")
	fs.Float64Var(&o.reorder, "reorder", 0.05, "probability the relay holds a datagram back so later ones overtake it")
	fs.DurationVar(&o.jitter, "jitter", 3*time.Millisecond, "random extra delay per datagram, up to this")
	fs.DurationVar(&o.delay, "delay", 0, "fixed one-way delay of the relay")
	fs.IntVar(&o.inFlight, "inflight", 1024, "messages the demo keeps in flight")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the relay's random decisions")
	fs.DurationVar(&o.drain, "drain", 10*time.Second, "at the end, how long the receiver may wait for the ACKs of its open exchanges")
	fs.StringVar(&o.progress, "progress", "auto", "progress display: bar, lines (one a second), off, or auto (a bar on a terminal, else lines)")
	o.common.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("demo takes no arguments, got %q", fs.Args())
	}
	if o.n <= 0 || o.size < 8 || o.inFlight <= 0 {
		return usageError("-n and -inflight must be positive and -size at least 8")
	}
	for _, p := range []struct {
		name string
		v    float64
	}{{"loss", o.loss}, {"dup", o.dup}, {"reorder", o.reorder}} {
		if p.v < 0 || p.v >= 1 {
			return usageError("-%s %v: want a probability in [0, 1)", p.name, p.v)
		}
	}
	switch o.progress {
	case "auto":
		o.progress = "lines"
		if f, ok := stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			o.progress = "bar"
		}
	case "bar", "lines", "off":
	default:
		return usageError("-progress %q: want bar, lines, off or auto", o.progress)
	}
	o.progressOut = stdout
	o.linesEvery = time.Second
	fmt.Fprintf(stdout, "gtudp demo: %d messages of %d bytes through a relay with %.0f%% loss each way, %.0f%% duplication, %.0f%% reordering, %v jitter\n",
		o.n, o.size, 100*o.loss, 100*o.dup, 100*o.reorder, o.jitter)
	s, err := runDemo(ctx, o)
	if err != nil {
		return err
	}
	printSummary(stdout, s)
	if !s.OK() {
		return fmt.Errorf("guarantee broken: %d lost, %d delivered but never reported, %d reported delivered but not, %d delivered twice, %d corrupted, %d stray receipts",
			s.Lost, s.DeliveredSilent, s.UndeliveredClaimed, s.DeliveredTwice, s.Corrupt, s.ExtraReceipts)
	}
	return nil
}

// payload fills b with message seq's sequence number and a pattern derived
// from it, so the receiver can check both.
func payload(b []byte, seq uint64) {
	binary.BigEndian.PutUint64(b, seq)
	for i := 8; i < len(b); i++ {
		b[i] = byte(seq>>3) + byte(i)
	}
}

func checkPayload(b []byte) (seq uint64, ok bool) {
	if len(b) < 8 {
		return 0, false
	}
	seq = binary.BigEndian.Uint64(b)
	for i := 8; i < len(b); i++ {
		if b[i] != byte(seq>>3)+byte(i) {
			return seq, false
		}
	}
	return seq, true
}

// seqID makes the message ID of seq, so a receipt names its message.
func seqID(seq uint64) uuid.UUID {
	var id uuid.UUID
	binary.BigEndian.PutUint64(id[8:], seq)
	id[6] = 0x40
	return id
}

// idSeq is the inverse of seqID; ok is false for an ID seqID did not make.
func idSeq(id uuid.UUID) (seq uint64, ok bool) {
	for i, b := range id[:8] {
		if (i == 6 && b != 0x40) || (i != 6 && b != 0) {
			return 0, false
		}
	}
	return binary.BigEndian.Uint64(id[8:]), true
}

// Receipt states of a message, by what the sender was told.
const (
	toldNothing uint8 = iota
	toldConfirmed
	toldFailed
)

// tally puts each message in one row of s, from the receiver's count of
// its deliveries and the receipt the sender got.
func tally(s *summary, deliveries []uint32, told []uint8) {
	s.Sent = len(deliveries)
	for i, d := range deliveries {
		switch {
		case d > 1:
			s.DeliveredTwice++
		case d == 1 && told[i] == toldConfirmed:
			s.DeliveredConfirmed++
		case d == 1 && told[i] == toldFailed:
			s.DeliveredFailed++
		case d == 1:
			s.DeliveredSilent++
		case told[i] == toldConfirmed:
			s.UndeliveredClaimed++
		case told[i] == toldFailed:
			s.UndeliveredFailed++
		default:
			s.Lost++
		}
	}
}

// errStalled: no outcome came for so long that the ones missing will not.
var errStalled = errors.New("no outcome for too long")

// runDemo sends o.n messages from one endpoint to another through a lossy
// relay on loopback and accounts for each.
func runDemo(ctx context.Context, o demoOptions) (summary, error) {
	var s summary
	cfg, err := o.common.config(os.Stderr)
	if err != nil {
		return s, err
	}
	recvCfg := *cfg
	recv, err := openEndpoint("udp4", "127.0.0.1:0", &recvCfg)
	if err != nil {
		return s, err
	}
	defer recv.Close(context.Background())
	relay, err := actortest.NewRelay("127.0.0.1:0", recv.LocalAddr(), actortest.RelayConfig{
		Loss: o.loss, Duplicate: o.dup, Reorder: o.reorder, Jitter: o.jitter, Delay: o.delay,
	}, nil, o.seed)
	if err != nil {
		return s, err
	}
	defer relay.Close()
	send, err := openEndpoint("udp4", "127.0.0.1:0", cfg)
	if err != nil {
		return s, err
	}
	defer send.Close(context.Background())

	// The receiver counts deliveries per message; it alone writes
	// deliveries until recvDone.
	deliveries := make([]uint32, o.n)
	var corrupt atomic.Int64
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		for m := range recv.Inbox() {
			seq, ok := checkPayload(m.Data)
			if !ok || seq >= uint64(o.n) || len(m.Data) != o.size {
				corrupt.Add(1)
				continue
			}
			deliveries[seq]++
		}
	}()

	// The sender keeps o.inFlight messages in flight, each in a buffer of
	// its own: the endpoint reads a message's Data until its outcome, so a
	// buffer goes back to the free list only with its message's receipt.
	// The receipts goroutine alone writes told, bufs' entries once handed
	// over, hist and s.FirstFailure until receiptsDone.
	sentAt := make([]time.Time, o.n)
	bufs := make([][]byte, o.n)
	told := make([]uint8, o.n)
	free := make(chan []byte, o.inFlight)
	for range o.inFlight {
		free <- make([]byte, o.size)
	}
	hist := hdrhistogram.New(1, int64(10*time.Minute/time.Microsecond), 3)
	var confirmed, failed, extra atomic.Int64
	var lastOutcome atomic.Int64 // unix nanoseconds
	var mu sync.Mutex            // sentAt, bufs
	allIn, quit, receiptsDone := make(chan struct{}), make(chan struct{}), make(chan struct{})
	start := time.Now()
	lastOutcome.Store(start.UnixNano())
	go func() {
		defer close(receiptsDone)
		outcomes := 0
		for {
			var r gtudp.Receipt
			select {
			case r = <-send.Receipts():
			case <-quit:
				return
			}
			seq, ok := idSeq(r.ID)
			if !ok || seq >= uint64(o.n) || told[seq] != toldNothing {
				extra.Add(1)
				continue
			}
			mu.Lock()
			b, at := bufs[seq], sentAt[seq]
			bufs[seq] = nil
			mu.Unlock()
			free <- b
			if r.Err != nil {
				told[seq] = toldFailed
				failed.Add(1)
				if s.FirstFailure == nil {
					s.FirstFailure = r.Err
				}
			} else {
				told[seq] = toldConfirmed
				confirmed.Add(1)
				_ = hist.RecordValue(max(time.Since(at).Microseconds(), 1))
			}
			lastOutcome.Store(time.Now().UnixNano())
			if outcomes++; outcomes == o.n {
				close(allIn)
			}
		}
	}()
	progress := startProgress(o, start, &confirmed, &failed)
	sendErr := func() error {
		for seq := range uint64(o.n) {
			var b []byte
			select {
			case b = <-free:
			case <-ctx.Done():
				return ctx.Err()
			}
			payload(b, seq)
			mu.Lock()
			sentAt[seq], bufs[seq] = time.Now(), b
			mu.Unlock()
			select {
			case send.Outbox() <- gtudp.Message{ID: seqID(seq), Addr: relay.Addr(), Data: b}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}()
	if sendErr == nil {
		sendErr = waitOutcomes(ctx, o, allIn, &lastOutcome)
	}
	s.Elapsed = time.Since(start)
	close(quit)
	<-receiptsDone
	progress.stop(sendErr == nil, throughput(int(confirmed.Load()), s.Elapsed))
	if sendErr != nil && !errors.Is(sendErr, errStalled) {
		closeDemo(ctx, o, recv, send)
		<-recvDone
		return s, fmt.Errorf("interrupted: %w", sendErr)
	}

	// Close the receiver first: its exchanges end when their ACKs come,
	// and the sender, still open, answers every RECV. Its Inbox reader
	// has then seen every delivery.
	closeDemo(ctx, o, recv, send)
	<-recvDone

	ss, rs := send.Stats(), recv.Stats()
	tally(&s, deliveries, told)
	s.Corrupt = int(corrupt.Load())
	s.ExtraReceipts = int(extra.Load())
	s.DuplicatesSuppressed = rs.Duplicates
	s.DataResent, s.RecvResent = ss.DataResent, rs.RecvResent
	s.Relay = relay.Stats()
	us := func(q float64) time.Duration { return time.Duration(hist.ValueAtQuantile(q)) * time.Microsecond }
	s.P50, s.P90, s.P99, s.Max = us(50), us(90), us(99), time.Duration(hist.Max())*time.Microsecond
	return s, nil
}

// waitOutcomes waits until every message has its outcome (allIn closes),
// the user interrupts, or no outcome has come for long enough that the
// missing ones never will: each message ends within its Lifetime of its
// first transmission, so between two outcomes at most a Lifetime passes
// while messages are pending.
func waitOutcomes(ctx context.Context, o demoOptions, allIn <-chan struct{}, lastOutcome *atomic.Int64) error {
	stallAfter := 90 * time.Second // three default Lifetimes
	if l := o.common.lifetime; 3*l > stallAfter {
		stallAfter = 3 * l
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-allIn:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case now := <-tick.C:
			if now.Sub(time.Unix(0, lastOutcome.Load())) > stallAfter {
				fmt.Fprintf(o.progressOut, "no outcome for %v: counting the messages without one\n", stallAfter)
				return errStalled
			}
		}
	}
}

// closeDemo closes the receiver, then the sender, each for up to o.drain
// (or until an interrupt), saying what the receiver waits for.
func closeDemo(ctx context.Context, o demoOptions, recv, send *gtudp.Endpoint) {
	open := recv.Stats().Open
	fmt.Fprintf(o.progressOut, "closing: the receiver waits up to %v for the ACKs of its %d open exchange%s (it re-sends RECV until its attempts run out)\n",
		o.drain, open, plural(open))
	for _, ep := range []*gtudp.Endpoint{recv, send} {
		dctx, cancel := drainContext(ctx, o.drain)
		ep.Close(dctx)
		cancel()
	}
}

// progress shows the sender's side of the run: outcomes, and the rate of
// confirmations.
type progress struct {
	// stop ends the display; complete says every message has its
	// outcome, rate is the final confirmed messages per second.
	stop func(complete bool, rate float64)
}

// startProgress shows progress until stop: a bar, lines every
// o.linesEvery, or nothing. The bar reaches 100% only when stop says the
// run is complete, and then shows the final rate given to stop.
func startProgress(o demoOptions, start time.Time, confirmed, failed *atomic.Int64) progress {
	outcomes := func() int64 { return confirmed.Load() + failed.Load() }
	liveRate := func() float64 { return throughput(int(confirmed.Load()), time.Since(start)) }
	done := make(chan struct{})
	var wg sync.WaitGroup
	switch o.progress {
	case "bar":
		var final atomic.Pointer[float64] // set by stop, before the last frame
		rate := func(decor.Statistics) string {
			if r := final.Load(); r != nil {
				return fmt.Sprintf("%.0f msg/s confirmed", *r)
			}
			return fmt.Sprintf("%.0f msg/s confirmed", liveRate())
		}
		// Rounded down: mpb's Percentage shows 1,990 of 2,000 as 100 %.
		percent := func(st decor.Statistics) string {
			return fmt.Sprintf("%3d %%", st.Current*100/max(st.Total, 1))
		}
		p := mpb.New(mpb.WithOutput(o.progressOut), mpb.WithRefreshRate(100*time.Millisecond), mpb.WithWidth(60),
			mpb.WithAutoRefresh()) // draw also when asked for a bar off a terminal
		bar := p.AddBar(int64(o.n),
			mpb.PrependDecorators(decor.Name("outcomes "), decor.CountersNoUnit("%d / %d")),
			mpb.AppendDecorators(decor.Any(percent), decor.Name(" "), decor.Any(rate)))
		// Until stop, the bar stays below its total: the last outcome
		// is not the end of the run (stop follows it), and mpb shows a
		// bar at its total as complete.
		set := func() { bar.SetCurrent(min(outcomes(), int64(o.n)-1)) }
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(50 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					set()
				case <-done:
					return
				}
			}
		}()
		return progress{stop: func(complete bool, r float64) {
			close(done)
			wg.Wait()
			final.Store(&r)
			if complete {
				bar.SetCurrent(int64(o.n))
			} else {
				set()
				bar.Abort(false)
			}
			p.Wait()
		}}
	case "lines":
		line := func(rate float64) {
			c, f := confirmed.Load(), failed.Load()
			fmt.Fprintf(o.progressOut, "progress: %d of %d messages have an outcome: %d confirmed, %d reported failed; %.0f msg/s confirmed\n",
				c+f, o.n, c, f, rate)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(o.linesEvery)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					line(liveRate())
				case <-done:
					return
				}
			}
		}()
		return progress{stop: func(_ bool, r float64) { close(done); wg.Wait(); line(r) }}
	}
	return progress{stop: func(bool, float64) {}}
}

func printSummary(w io.Writer, s summary) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k string, v any, note string) { fmt.Fprintf(tw, "%s\t%v\t%s\n", k, v, note) }
	fmt.Fprintln(w)
	row("messages sent", s.Sent, "each in one row below:")
	row("  delivered, confirmed", s.DeliveredConfirmed, "")
	row("  delivered, reported failed", s.DeliveredFailed, "legitimate: the sender gave up before any RECV reached it")
	row("  not delivered, reported failed", s.UndeliveredFailed, "legitimate: the failure was reported")
	row("  not delivered, reported delivered", s.UndeliveredClaimed, "must be 0 (a false confirmation)")
	row("  delivered twice or more", s.DeliveredTwice, "must be 0")
	row("  delivered, no outcome reported", s.DeliveredSilent, "must be 0")
	row("  lost (not delivered, no outcome)", s.Lost, "must be 0")
	row("corrupted deliveries", s.Corrupt, "must be 0")
	row("stray receipts", s.ExtraReceipts, "must be 0 (a second receipt for a message)")
	row("duplicates suppressed", s.DuplicatesSuppressed, "")
	row("DATA re-sent", s.DataResent, "")
	row("RECV re-sent", s.RecvResent, "")
	row("relay dropped", s.Relay.Dropped, "")
	row("relay duplicated", s.Relay.Duplicated, "")
	row("relay reordered", s.Relay.Reordered, "")
	row("elapsed", s.Elapsed.Round(time.Millisecond), "first send to last outcome")
	row("throughput", fmt.Sprintf("%.0f msg/s", throughput(s.Confirmed(), s.Elapsed)), "confirmed messages per second")
	row("latency p50", s.P50, "send to confirmation")
	row("latency p90", s.P90, "")
	row("latency p99", s.P99, "")
	row("latency max", s.Max, "")
	tw.Flush()
	if s.FirstFailure != nil {
		fmt.Fprintln(w, "first failure:", errorText(s.FirstFailure))
	}
	switch {
	case !s.OK():
		fmt.Fprintln(w, "\nNOT OK: a guarantee was broken (see the rows that must be 0).")
	case s.DeliveredConfirmed == s.Sent:
		fmt.Fprintln(w, "\nOK: every message delivered exactly once, intact.")
	default:
		fmt.Fprintf(w, "\nOK: every outcome told the truth. %d of %d messages were reported failed (%d of those arrived all the same).\n",
			s.Failed(), s.Sent, s.DeliveredFailed)
	}
}
