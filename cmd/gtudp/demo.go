package main

import (
	"context"
	"encoding/binary"
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
	n                   int
	size                int
	loss, dup, reorder  float64
	jitter, delay       time.Duration
	inFlight            int
	seed                uint64
	common              common
	progress            bool // a live bar (terminal) rather than a line a second
	progressOut         io.Writer
	plainProgressPeriod time.Duration
}

// summary is what the demo measured.
type summary struct {
	Sent, Delivered, Failed, Lost int
	DuplicateDeliveries, Corrupt  int
	DuplicatesSuppressed          uint64 // DATA repeats the receiver recognised
	DataResent, RecvResent        uint64
	Elapsed                       time.Duration
	P50, P90, P99, Max            time.Duration
	Relay                         actortest.RelayStats
	FirstFailure                  error
}

// OK reports whether every message was delivered exactly once, intact.
func (s summary) OK() bool {
	return s.Lost == 0 && s.DuplicateDeliveries == 0 && s.Corrupt == 0 && s.Failed == 0 && s.Delivered == s.Sent
}

// Throughput is messages confirmed per second.
func (s summary) Throughput() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Sent-s.Failed) / s.Elapsed.Seconds()
}

func runDemoCommand(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var o demoOptions
	fs := newFlagSet("demo", "[flags]",
		"Runs two endpoints in this process that talk through a lossy relay on loopback,\n"+
			"sends a stream of messages and prints what happened. Exit status 1 if any\n"+
			"message was lost, failed, duplicated or corrupted.",
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
	if f, ok := stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		o.progress = true
	}
	o.progressOut = stdout
	o.plainProgressPeriod = time.Second
	fmt.Fprintf(stdout, "gtudp demo: %d messages of %d bytes through a relay with %.0f%% loss each way, %.0f%% duplication, %.0f%% reordering, %v jitter\n",
		o.n, o.size, 100*o.loss, 100*o.dup, 100*o.reorder, o.jitter)
	s, err := runDemo(ctx, o)
	if err != nil {
		return err
	}
	printSummary(stdout, s)
	if !s.OK() {
		return fmt.Errorf("%d lost, %d failed, %d delivered twice, %d corrupted", s.Lost, s.Failed, s.DuplicateDeliveries, s.Corrupt)
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

// runDemo sends o.n messages from one endpoint to another through a lossy
// relay on loopback and measures what happened.
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

	// The receiver: counts deliveries per message and checks payloads.
	counts := make([]uint8, o.n)
	var delivered, corrupt, dupDeliveries atomic.Int64
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		for m := range recv.Inbox() {
			seq, ok := checkPayload(m.Data)
			if !ok || seq >= uint64(o.n) || len(m.Data) != o.size {
				corrupt.Add(1)
				continue
			}
			if counts[seq]++; counts[seq] == 1 {
				delivered.Add(1)
			} else {
				dupDeliveries.Add(1)
			}
		}
	}()

	// The sender keeps o.inFlight messages in flight, each in a buffer of
	// its own: the endpoint reads a message's Data until its outcome, so a
	// buffer goes back to the free list only with its message's receipt.
	sentAt := make([]time.Time, o.n)
	bufs := make([][]byte, o.n)
	free := make(chan []byte, o.inFlight)
	for range o.inFlight {
		free <- make([]byte, o.size)
	}
	hist := hdrhistogram.New(1, int64(10*time.Minute/time.Microsecond), 3)
	var outcomes, failed atomic.Int64
	var mu sync.Mutex // hist, s.FirstFailure
	receiptsDone := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(receiptsDone)
		for range o.n {
			var r gtudp.Receipt
			select {
			case r = <-send.Receipts():
			case <-ctx.Done():
				return
			}
			seq := binary.BigEndian.Uint64(r.ID[8:])
			mu.Lock()
			if seq < uint64(o.n) && bufs[seq] != nil {
				free <- bufs[seq]
				bufs[seq] = nil
			}
			if r.Err != nil {
				failed.Add(1)
				if s.FirstFailure == nil {
					s.FirstFailure = r.Err
				}
			} else if seq < uint64(o.n) {
				_ = hist.RecordValue(max(time.Since(sentAt[seq]).Microseconds(), 1))
			}
			mu.Unlock()
			outcomes.Add(1)
		}
	}()
	progress := startProgress(o, func() (int64, int64, int64) { return outcomes.Load(), delivered.Load(), failed.Load() })
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
	<-receiptsDone
	s.Elapsed = time.Since(start)
	progress.stop()
	if sendErr == nil {
		sendErr = ctx.Err()
	}
	if sendErr != nil {
		return s, fmt.Errorf("interrupted: %w", sendErr)
	}

	// Every success means the receiver's endpoint has the message; close
	// both (draining) so the receiver's Inbox reader has seen them all.
	closeCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	send.Close(closeCtx)
	recv.Close(closeCtx)
	<-recvDone

	ss, rs := send.Stats(), recv.Stats()
	s.Sent = o.n
	s.Failed = int(failed.Load())
	s.Delivered = int(delivered.Load())
	s.Corrupt = int(corrupt.Load())
	s.DuplicateDeliveries = int(dupDeliveries.Load())
	s.DuplicatesSuppressed = rs.Duplicates
	s.DataResent, s.RecvResent = ss.DataResent, rs.RecvResent
	s.Relay = relay.Stats()
	s.Lost = lost(counts, s.Failed)
	us := func(q float64) time.Duration { return time.Duration(hist.ValueAtQuantile(q)) * time.Microsecond }
	s.P50, s.P90, s.P99, s.Max = us(50), us(90), us(99), time.Duration(hist.Max())*time.Microsecond
	return s, nil
}

// lost counts messages neither delivered nor reported failed. A failed
// message may still have been delivered (its RECVs were lost): it is not
// lost, the sender was told it might not have arrived.
func lost(counts []uint8, failed int) int {
	missing := 0
	for _, c := range counts {
		if c == 0 {
			missing++
		}
	}
	return max(missing-failed, 0)
}

type progressBar struct{ stop func() }

// startProgress shows progress until stop: a bar on a terminal, else a
// line every plainProgressPeriod.
func startProgress(o demoOptions, read func() (outcomes, delivered, failed int64)) progressBar {
	done := make(chan struct{})
	var wg sync.WaitGroup
	if o.progress {
		p := mpb.New(mpb.WithOutput(o.progressOut), mpb.WithRefreshRate(100*time.Millisecond))
		bar := p.AddBar(int64(o.n),
			mpb.PrependDecorators(decor.Name("messages "), decor.CountersNoUnit("%d / %d")),
			mpb.AppendDecorators(decor.Percentage(), decor.Name(" "), decor.AverageSpeed(0, "%.0f msg/s")))
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(50 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					n, _, _ := read()
					bar.SetCurrent(n)
				case <-done:
					n, _, _ := read()
					bar.SetCurrent(n)
					if n < int64(o.n) {
						bar.Abort(false)
					}
					return
				}
			}
		}()
		return progressBar{stop: func() { close(done); wg.Wait(); p.Wait() }}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(o.plainProgressPeriod)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				n, d, f := read()
				fmt.Fprintf(o.progressOut, "progress: %d/%d outcomes, %d delivered, %d failed\n", n, o.n, d, f)
			case <-done:
				return
			}
		}
	}()
	return progressBar{stop: func() { close(done); wg.Wait() }}
}

func printSummary(w io.Writer, s summary) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(k string, v any) { fmt.Fprintf(tw, "%s\t%v\t\n", k, v) }
	fmt.Fprintln(w)
	row("sent", s.Sent)
	row("delivered exactly once", s.Delivered-s.DuplicateDeliveries)
	row("delivered twice", s.DuplicateDeliveries)
	row("corrupted", s.Corrupt)
	row("lost", s.Lost)
	row("failed (reported)", s.Failed)
	row("duplicates suppressed", s.DuplicatesSuppressed)
	row("DATA re-sent", s.DataResent)
	row("RECV re-sent", s.RecvResent)
	row("relay dropped", s.Relay.Dropped)
	row("relay duplicated", s.Relay.Duplicated)
	row("relay reordered", s.Relay.Reordered)
	row("elapsed", s.Elapsed.Round(time.Millisecond))
	row("throughput", fmt.Sprintf("%.0f msg/s", s.Throughput()))
	row("latency p50", s.P50)
	row("latency p90", s.P90)
	row("latency p99", s.P99)
	row("latency max", s.Max)
	tw.Flush()
	if s.FirstFailure != nil {
		fmt.Fprintln(w, "first failure:", s.FirstFailure)
	}
	if s.OK() {
		fmt.Fprintln(w, "\nOK: every message delivered exactly once, intact.")
	}
}
