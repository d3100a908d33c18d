package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/gtudp/gtudp/wire"
)

// benchOptions are the knobs of "gtudp bench".
type benchOptions struct {
	size     int
	window   int
	duration time.Duration
	loss     float64
	procs    int    // 2: the receiving side runs in a child process
	busy     int    // CPU-burning processes beside the bench
	profile  string // CPU profile of the gtudp run (and FILE.receiver of a child)
	maxprocs int    // GOMAXPROCS of each process; 0: the cores shared out among them
	verbose  bool   // print each gtudp run's loss-recovery counters
	release  bool   // the gtudp receiver gives each message's Data back (Endpoint.Release)
	rounds   int    // times every contender runs, in turn
	common   common
}

// maxRounds bounds -rounds: a bench of more is better run again.
const maxRounds = 50

// maxBenchSize is the largest -size: large enough for "1 MiB messages"
// and beyond, small enough that a window of them fits in memory.
const maxBenchSize = 16 << 20

// benchResult is one contender's run.
type benchResult struct {
	name string
	// refused says why the contender cannot carry messages of this size;
	// the rest is then empty.
	refused  error
	messages int64
	elapsed  time.Duration
	cpu      time.Duration // user+system time of the process, and of the child receiver if any
	// datagrams counts the datagrams both sides sent during the run; 0 if
	// the contender has none (TCP).
	datagrams uint64
	// resent counts re-transmissions during the run: gtudp's DATA re-sent,
	// kcp-go's segments re-sent (RetransSegs); -1 if not counted.
	resent int64
	// hist holds round trips (a DATA's send to its RECV); nil for the
	// contenders that confirm no single message.
	hist *hdrhistogram.Histogram
	// detail is a gtudp run's loss-recovery counters, for -v.
	detail string
}

func (r benchResult) rate() float64 { return float64(r.messages) / r.elapsed.Seconds() }

func (r benchResult) cpuPerMessage() time.Duration {
	if r.messages == 0 {
		return 0
	}
	return r.cpu / time.Duration(r.messages)
}

func (r benchResult) p(q float64) time.Duration {
	return time.Duration(r.hist.ValueAtQuantile(q)).Round(10 * time.Nanosecond)
}

func runBench(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var o benchOptions
	fs := newFlagSet("bench", "[flags]",
		"Measures, side by side in one run on loopback, messages of -size bytes sent\n"+
			"as fast as each contender allows for -duration:\n"+
			"  bare exchange  DATA→RECV→ACK written with the same socket calls as gtudp\n"+
			"                 and no protocol logic: the practical ceiling of the protocol;\n"+
			"  gtudp          gtudp itself, -window messages in flight, and the same\n"+
			"                 with -no-extension at both ends (the original protocol);\n"+
			"  kcp-go         github.com/xtaci/kcp-go in message mode, fast mode\n"+
			"                 (NoDelay 1, 10, 2, 1), window -window both ways, no FEC, no\n"+
			"                 encryption; each message one Write with a 4-byte length;\n"+
			"  TCP stream     one loopback TCP connection, each message one Write of a\n"+
			"                 4-byte length and the payload.\n"+
			"Prints messages/s (gtudp and bare: confirmed by RECV; kcp-go and TCP: read\n"+
			"by the receiving application), CPU per message (both processes),\n"+
			"datagrams per message (both directions), re-sends per message, round-trip\n"+
			"p50/p99 where a message is confirmed, and the ratios of gtudp to the others.\n"+
			"A contender that cannot carry messages of -size says so in its row.\n"+
			"With -loss, gtudp also runs through the lossy relay at 0% and that loss.\n"+
			"With -size beyond one datagram (65,507 bytes), gtudp also runs with its\n"+
			"receiver giving each message back (Endpoint.Release; -release: only so),\n"+
			"as the TCP stream's reader reuses its one buffer; and TCP runs again with\n"+
			"its reader reading each message into a new buffer, as gtudp's Inbox hands\n"+
			"each over in one.\n"+
			"With -busy, CPU-burning processes run beside the bench.\n"+
			"With -rounds N, every contender runs N times, in turn, and the table gives\n"+
			"the median of each figure (round trips: over all rounds), each ratio its\n"+
			"median and range over the rounds: a machine whose speed drifts moves every\n"+
			"contender of a round alike.",
		"gtudp bench -size 64 -window 1024 -duration 3s", stderr)
	fs.IntVar(&o.size, "size", 64, "payload bytes, at most 16 MiB")
	fs.DurationVar(&o.duration, "duration", 3*time.Second, "how long each contender runs")
	fs.Float64Var(&o.loss, "loss", 0, "also run gtudp through a relay dropping this fraction each way")
	fs.IntVar(&o.procs, "procs", 1, "1: both sides in this process; 2: the receiving side in a child process")
	busy := fs.String("busy", "0", "run this many CPU-burning processes beside the bench, or `cores` for one per core")
	fs.IntVar(&o.maxprocs, "gomaxprocs", 0, "GOMAXPROCS of each process (default: $GOMAXPROCS, else the cores shared out among the processes)")
	fs.BoolVar(&o.verbose, "v", false, "after the table, each gtudp run's sender counters: losses detected, spurious, timeouts, cwnd, SRTT")
	fs.StringVar(&o.profile, "cpuprofile", "", "write a CPU profile of the gtudp run to `file` (and of a child receiver to file.receiver)")
	fs.BoolVar(&o.release, "release", false, "the gtudp receiver gives each message's Data back with Endpoint.Release, as an application done with it may")
	fs.IntVar(&o.rounds, "rounds", 1, "run every contender this many times, in turn, and print medians")
	o.common.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("bench takes no arguments, got %q", fs.Args())
	}
	// -window (a common flag) is also the bench's messages in flight: 1
	// measures single-message latency.
	o.window = o.common.window
	if o.window == 0 {
		o.window = 1024
	}
	if o.size < 0 || o.size > maxBenchSize || o.window <= 0 || o.duration <= 0 || o.loss < 0 || o.loss >= 1 || (o.procs != 1 && o.procs != 2) ||
		o.rounds < 1 || o.rounds > maxRounds {
		return usageError("bench: -size from 0 to %d, -window and -duration positive, -loss in [0, 1), -procs 1 or 2, -rounds from 1 to %d", maxBenchSize, maxRounds)
	}
	switch n, err := strconv.Atoi(*busy); {
	case *busy == "cores":
		o.busy = runtime.NumCPU()
	case err != nil || n < 0:
		return usageError("-busy %q: want a number of processes or \"cores\"", *busy)
	default:
		o.busy = n
	}
	if o.maxprocs <= 0 && os.Getenv("GOMAXPROCS") != "" {
		o.maxprocs = runtime.GOMAXPROCS(0) // the environment's choice stands
	}
	if o.maxprocs <= 0 {
		// Two processes that each think they own every core oversubscribe
		// the machine: the Go scheduler's idle threads then spin and wake
		// each other across processes. Share the cores out instead, as
		// one would deploy two processes on one machine.
		o.maxprocs = max(1, runtime.NumCPU()/o.procs)
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(o.maxprocs))
	if _, err := o.common.config(io.Discard); err != nil {
		return err
	}
	stopBusy, err := startBusy(ctx, o.busy)
	if err != nil {
		return fmt.Errorf("-busy: %w", err)
	}
	busyDone := false
	defer func() {
		if !busyDone {
			stopBusy()
		}
	}()

	runs := make([]benchRun, 0, o.rounds)
	for range o.rounds {
		r, err := benchRound(ctx, o)
		if err != nil {
			return err
		}
		runs = append(runs, r)
		o.profile = "" // the first round's
	}
	printBench(stdout, o, runs)
	if o.busy > 0 {
		busyDone = true
		fmt.Fprintf(stdout, "the %d CPU-burning process%s used %.1f CPU-seconds\n", o.busy, plurales(o.busy), stopBusy().Seconds())
	}
	return nil
}

// benchRun is one round of every contender.
type benchRun struct {
	results  []benchResult // in the table's order
	g        benchResult   // gtudp
	released *benchResult  // gtudp, receiver releases, if it ran
	others   map[string]benchResult
}

// benchRound runs every contender once, in turn.
func benchRound(ctx context.Context, o benchOptions) (benchRun, error) {
	bare, err := benchBare(ctx, o)
	if err != nil {
		return benchRun{}, fmt.Errorf("bare exchange: %w", err)
	}
	g, err := benchGtudp(ctx, o, false, 0)
	if err != nil {
		return benchRun{}, fmt.Errorf("gtudp run: %w", err)
	}
	results := []benchResult{bare, g}
	others := map[string]benchResult{"bare exchange": bare}
	if !o.common.noExt {
		// The same library speaking only the original protocol (both
		// ends NoExtension): what the extension gains.
		plain := o
		plain.common.noExt = true
		plain.profile = "" // -cpuprofile is gtudp's run, not this one
		p, err := benchGtudp(ctx, plain, false, 0)
		if err != nil {
			return benchRun{}, fmt.Errorf("gtudp run without the extension: %w", err)
		}
		results = append(results, p)
		others[p.name] = p
	}
	var released *benchResult
	if !o.release && !o.common.noExt && o.size > wire.MaxDatagram {
		// Messages in fragments even on loopback: the same with the
		// receiver giving each back, as TCP's reader reuses its buffer.
		rel := o
		rel.release, rel.profile = true, ""
		r, err := benchGtudp(ctx, rel, false, 0)
		if err != nil {
			return benchRun{}, fmt.Errorf("gtudp run with Release: %w", err)
		}
		results = append(results, r)
		released = &r
	}
	if o.loss > 0 {
		// The relay costs a hop and CPU of its own: compare loss with
		// no loss through the same relay.
		for _, loss := range []float64{0, o.loss} {
			gl, err := benchGtudp(ctx, o, true, loss)
			if err != nil {
				return benchRun{}, fmt.Errorf("gtudp through the relay: %w", err)
			}
			results = append(results, gl)
		}
	}
	k, err := benchKCP(ctx, o)
	if err != nil {
		return benchRun{}, fmt.Errorf("kcp-go: %w", err)
	}
	tcp, err := benchTCP(ctx, o, false)
	if err != nil {
		return benchRun{}, fmt.Errorf("TCP stream: %w", err)
	}
	results = append(results, k, tcp)
	others["kcp-go"], others["TCP stream"] = k, tcp
	if released != nil {
		// gtudp hands each message over in a buffer of its own: so does
		// this TCP reader, the like-for-like of a receiver that keeps
		// what it gets.
		fresh, err := benchTCP(ctx, o, true)
		if err != nil {
			return benchRun{}, fmt.Errorf("%s: %w", tcpFresh, err)
		}
		results = append(results, fresh)
		others[tcpFresh] = fresh
	}
	return benchRun{results: results, g: g, released: released, others: others}, nil
}

// printBench prints the header, the table of results and the ratios of
// gtudp to the others, and of gtudp with the receiver releasing each
// message (if it ran) to the TCP stream. Of several rounds, the table
// gives each contender's medians and each ratio its median and range
// over the rounds (each round's ratio is of runs close in time).
func printBench(w io.Writer, o benchOptions, runs []benchRun) {
	printHeader(w, o)
	first := runs[0]
	rows := first.results
	if len(runs) > 1 {
		rows = make([]benchResult, len(first.results))
		for j := range rows {
			col := make([]benchResult, len(runs))
			for i, r := range runs {
				col[i] = r.results[j]
			}
			rows[j] = medianResult(col)
		}
	}
	printTable(w, rows)
	for _, name := range ratioNames {
		if _, ok := first.others[name]; ok {
			fmt.Fprintf(w, "%s / %s: %s\n", first.g.name, name, ratiosOver(runs, func(r benchRun) (benchResult, benchResult) {
				return r.g, r.others[name]
			}))
		}
	}
	if _, ok := first.others["TCP stream"]; ok && first.released != nil {
		fmt.Fprintf(w, "%s / TCP stream: %s\n", first.released.name, ratiosOver(runs, func(r benchRun) (benchResult, benchResult) {
			return *r.released, r.others["TCP stream"]
		}))
	}
	printFooter(w, o, runs[len(runs)-1].results)
}

// ratioNames are the contenders gtudp is compared with, in order.
var ratioNames = []string{"bare exchange", "gtudp, no extension", "kcp-go", "TCP stream", tcpFresh}

// medianResult returns a result with the median of each figure of rs,
// runs of one contender: messages/s, CPU, datagrams and re-sends per
// message; its round trips are those of every run.
func medianResult(rs []benchResult) benchResult {
	m := benchResult{name: rs[0].name, elapsed: time.Second, detail: rs[len(rs)-1].detail}
	per := func(f func(r benchResult) float64) float64 {
		v := make([]float64, 0, len(rs))
		for _, r := range rs {
			if r.messages > 0 {
				v = append(v, f(r))
			}
		}
		return median(v)
	}
	for _, r := range rs {
		switch {
		case r.refused != nil:
			m.refused = r.refused
			return m
		case r.resent < 0:
			m.resent = -1
		}
	}
	m.messages = int64(math.Round(per(benchResult.rate)))
	n := float64(max(m.messages, 1))
	m.cpu = time.Duration(per(func(r benchResult) float64 { return float64(r.cpuPerMessage()) }) * n)
	m.datagrams = uint64(math.Round(per(func(r benchResult) float64 { return float64(r.datagrams) / float64(r.messages) }) * n))
	if m.resent == 0 {
		m.resent = int64(math.Round(per(func(r benchResult) float64 { return float64(r.resent) / float64(r.messages) }) * n))
	}
	if rs[0].hist != nil {
		m.hist = newHist()
		for _, r := range rs {
			m.hist.Merge(r.hist)
		}
	}
	return m
}

// ratiosOver is ratios of one round, or over several: the median of each
// round's ratio of messages/s and CPU per message, and their range.
func ratiosOver(runs []benchRun, pair func(benchRun) (g, r benchResult)) string {
	if len(runs) == 1 {
		return ratios(pair(runs[0]))
	}
	var rate, cpu []float64
	for _, run := range runs {
		g, r := pair(run)
		if g.refused != nil || r.refused != nil || g.messages == 0 || r.messages == 0 {
			return ratios(g, r)
		}
		rate = append(rate, g.rate()/r.rate())
		cpu = append(cpu, float64(g.cpuPerMessage())/float64(max(r.cpuPerMessage(), 1)))
	}
	return fmt.Sprintf("%.2fx messages/s (%.2f-%.2f), %.2fx CPU/message (%.2f-%.2f), medians of %d rounds",
		median(rate), slices.Min(rate), slices.Max(rate), median(cpu), slices.Min(cpu), slices.Max(cpu), len(runs))
}

// median returns the median of v (the mean of the middle two of an even
// count), or 0 if v is empty. It sorts v.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if n := len(v); n%2 == 0 {
		return (v[n/2-1] + v[n/2]) / 2
	}
	return v[len(v)/2]
}

// printHeader prints the line saying how the bench ran.
func printHeader(w io.Writer, o benchOptions) {
	var procs string
	if o.procs == 2 {
		procs = fmt.Sprintf("receiver in a second process, GOMAXPROCS %d each", o.maxprocs)
	} else {
		procs = fmt.Sprintf("one process, GOMAXPROCS %d", o.maxprocs)
	}
	busy := ""
	if o.busy > 0 {
		busy = fmt.Sprintf(", %d CPU-burning process%s beside", o.busy, plurales(o.busy))
	}
	rounds := ""
	if o.rounds > 1 {
		rounds = fmt.Sprintf(", %d rounds", o.rounds)
	}
	fmt.Fprintf(w, "payload %d bytes, window %d, batch %d, %v per run%s, %s, loopback%s\n\n",
		o.size, o.window, o.common.batch, o.duration, rounds, procs, busy)
}

// printTable prints the table of results, and why any refused.
func printTable(w io.Writer, results []benchResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tmessages/s\tCPU/message\tdatagrams/message\tre-sent/message\tp50\tp99\t")
	var refused []benchResult
	for _, r := range results {
		if r.refused != nil {
			fmt.Fprintf(tw, "%s\trefused\t-\t-\t-\t-\t-\t\n", r.name)
			refused = append(refused, r)
			continue
		}
		m := float64(max(r.messages, 1))
		datagrams, resent, p50, p99 := "-", "-", "-", "-"
		if r.datagrams > 0 {
			datagrams = fmt.Sprintf("%.2f", float64(r.datagrams)/m)
		}
		if r.resent >= 0 {
			resent = fmt.Sprintf("%.1f%%", 100*float64(r.resent)/m)
		}
		if r.hist != nil {
			p50, p99 = r.p(50).String(), r.p(99).String()
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%v\t%s\t%s\t%s\t%s\t\n", r.name, r.rate(), r.cpuPerMessage(), datagrams, resent, p50, p99)
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, r := range refused {
		fmt.Fprintf(w, "%s refused: %s\n", r.name, errorText(r.refused))
	}
}

// printFooter prints the legend, and with -v each gtudp run's counters.
func printFooter(w io.Writer, o benchOptions, results []benchResult) {
	fmt.Fprintln(w, "(re-sent: gtudp's DATA re-sent, kcp-go's segments re-sent, per message)")
	if o.verbose {
		for _, r := range results {
			if r.detail != "" {
				fmt.Fprintf(w, "%s: %s\n", r.name, r.detail)
			}
		}
	}
}

// ratios compares gtudp's run g with another's: messages/s (higher is
// better), CPU per message and round-trip p50 (lower is better).
func ratios(g, r benchResult) string {
	switch {
	case g.refused != nil && r.refused != nil:
		return "both refuse messages of this size"
	case g.refused != nil:
		return "gtudp refuses messages of this size"
	case r.refused != nil:
		return r.name + " refuses messages of this size"
	case r.messages == 0 || g.messages == 0:
		return "no messages went through"
	}
	s := fmt.Sprintf("%.2fx messages/s, %.2fx CPU/message", g.rate()/r.rate(), float64(g.cpuPerMessage())/float64(max(r.cpuPerMessage(), 1)))
	if g.hist != nil && r.hist != nil {
		s += fmt.Sprintf(", %.2fx p50", float64(g.p(50))/float64(max(r.p(50), 1)))
	}
	return s
}

// plurales is the "es" of a count of processes other than one.
func plurales(n int) string {
	if n == 1 {
		return ""
	}
	return "es"
}

// runFor returns a channel closed after d. Both sides' loops wait on it
// next to their sockets and channels: a plain channel, which costs a
// select less than a timer's does.
func runFor(d time.Duration) (over <-chan struct{}, stop func()) {
	c := make(chan struct{})
	t := time.AfterFunc(d, func() { close(c) })
	return c, func() { t.Stop() }
}

// startCPUProfile profiles this process into file until the returned
// function is called.
func startCPUProfile(file string) (stop func(), err error) {
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// newHist records latencies in nanoseconds, to three significant digits:
// a single message in flight takes a few microseconds.
func newHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, int64(time.Minute), 3)
}
