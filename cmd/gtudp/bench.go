package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/google/uuid"
	"github.com/gtudp/gtudp"
	"github.com/gtudp/gtudp/actor"
	"github.com/gtudp/gtudp/actor/actortest"
	"github.com/gtudp/gtudp/wire"
)

// benchOptions are the knobs of "gtudp bench".
type benchOptions struct {
	size     int
	window   int
	duration time.Duration
	loss     float64
	procs    int    // 2: the receiving side runs in a child process
	profile  string // CPU profile of the gtudp run (and FILE.receiver of a child)
	maxprocs int    // GOMAXPROCS of each process; 0: the cores shared out among them
	common   common
}

// benchResult is one side of the comparison.
type benchResult struct {
	name     string
	messages int64
	elapsed  time.Duration
	cpu      time.Duration // user+system time of the process, and of the child receiver if any
	hist     *hdrhistogram.Histogram
}

func (r benchResult) rate() float64 { return float64(r.messages) / r.elapsed.Seconds() }

func (r benchResult) cpuPerMessage() time.Duration {
	if r.messages == 0 {
		return 0
	}
	return r.cpu / time.Duration(r.messages)
}

func runBench(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var o benchOptions
	fs := newFlagSet("bench", "[flags]",
		"Measures, side by side in one run, the bare DATA→RECV→ACK exchange written\n"+
			"with the same socket calls and no protocol logic (the practical ceiling),\n"+
			"and gtudp itself, on loopback. Prints messages/s, CPU per message (both\n"+
			"processes), round-trip p50/p99 and the ratios gtudp/ceiling of throughput\n"+
			"and of p50. With -loss, gtudp also runs through the lossy relay (the bare\n"+
			"exchange cannot recover from loss).",
		"gtudp bench -size 64 -window 1024 -duration 3s", stderr)
	fs.IntVar(&o.size, "size", 64, "payload bytes")
	fs.DurationVar(&o.duration, "duration", 3*time.Second, "how long each side runs")
	fs.Float64Var(&o.loss, "loss", 0, "also run gtudp through a relay dropping this fraction each way")
	fs.IntVar(&o.procs, "procs", 1, "1: both sides in this process; 2: the receiving side in a child process")
	fs.IntVar(&o.maxprocs, "gomaxprocs", 0, "GOMAXPROCS of each process (default: $GOMAXPROCS, else the cores shared out among the processes)")
	fs.StringVar(&o.profile, "cpuprofile", "", "write a CPU profile of the gtudp run to `file` (and of a child receiver to file.receiver)")
	o.common.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	// -window (a common flag) is also the bench's messages in flight: 1
	// measures single-message latency.
	o.window = o.common.window
	if o.window == 0 {
		o.window = 1024
	}
	if o.size < 0 || o.window <= 0 || o.duration <= 0 || o.loss < 0 || o.loss >= 1 || (o.procs != 1 && o.procs != 2) {
		return usageError("bench: -size must not be negative, -window and -duration must be positive, -loss in [0, 1), -procs 1 or 2")
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
	bare, err := benchBare(ctx, o)
	if err != nil {
		return fmt.Errorf("bare exchange: %w", err)
	}
	g, err := benchGtudp(ctx, o, false, 0)
	if err != nil {
		return fmt.Errorf("gtudp: %w", err)
	}
	results := []benchResult{bare, g}
	if o.loss > 0 {
		// The relay costs a hop and CPU of its own: compare loss with
		// no loss through the same relay.
		for _, loss := range []float64{0, o.loss} {
			gl, err := benchGtudp(ctx, o, true, loss)
			if err != nil {
				return fmt.Errorf("gtudp through the relay: %w", err)
			}
			results = append(results, gl)
		}
	}
	var procs string
	if o.procs == 2 {
		procs = fmt.Sprintf("receiver in a second process, GOMAXPROCS %d each", o.maxprocs)
	} else {
		procs = fmt.Sprintf("one process, GOMAXPROCS %d", o.maxprocs)
	}
	fmt.Fprintf(stdout, "payload %d bytes, window %d, batch %d, %v per run, %s, loopback\n\n",
		o.size, o.window, o.common.batch, o.duration, procs)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	// Two ratios to the ceiling: throughput (higher is better) and the
	// round trip's median (lower is better).
	fmt.Fprintln(tw, "\tmessages/s\tCPU/message\tp50\tp99\tvs ceiling\tp50 vs ceiling\t")
	p50 := func(r benchResult) time.Duration { return time.Duration(r.hist.ValueAtQuantile(50)) }
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%.0f\t%v\t%v\t%v\t%.2fx\t%.2fx\t\n", r.name, r.rate(), r.cpuPerMessage(),
			p50(r).Round(10*time.Nanosecond),
			time.Duration(r.hist.ValueAtQuantile(99)).Round(10*time.Nanosecond),
			r.rate()/bare.rate(), float64(p50(r))/float64(p50(bare)))
	}
	return tw.Flush()
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

// benchBare runs the 3-packet exchange with plain sockets: the sender
// writes DATA while fewer than window are in flight; the receiver answers
// each DATA with RECV; the sender answers RECV with ACK and counts the
// message. Nothing is re-sent, so it runs on a loss-free path only.
func benchBare(ctx context.Context, o benchOptions) (benchResult, error) {
	r := benchResult{name: "bare exchange", hist: newHist()}
	f, err := parseFormat(o.common.magic, o.common.types)
	if err != nil {
		return r, err
	}
	snd, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return r, err
	}
	defer snd.Close()
	snd.SetReadBuffer(4 << 20)
	snd.SetWriteBuffer(4 << 20)
	far, err := startReceiver(ctx, o, "bare")
	if err != nil {
		return r, err
	}
	defer far.stop()
	bc := actor.NewBatchConn(snd, o.common.batch)
	hl := f.HeaderLen()

	var wg sync.WaitGroup
	window := make(chan struct{}, o.window)
	sentAt := make([]atomic.Int64, 1<<16) // by the low 16 bits of the id
	var done atomic.Int64
	// The sender's reader: ACK for every RECV, written at once as
	// gtudp's reader does.
	wg.Add(1)
	go func() {
		defer wg.Done()
		ack := make([][]byte, 1)
		buf := make([]byte, 0, hl)
		for {
			k, err := bc.Read()
			if err != nil {
				return
			}
			for i := range k {
				b, _ := bc.Datagram(i)
				p, err := f.Decode(b)
				if err != nil || p.Kind != wire.Recv {
					continue
				}
				// The round trip ends when the RECV is read, as gtudp
				// measures it.
				seq := binary.BigEndian.Uint32(p.ID[:])
				r.hist.RecordValue(max(time.Now().UnixNano()-sentAt[seq&0xffff].Load(), 1))
				ack[0] = f.Append(buf[:0], wire.Packet{Kind: wire.Ack, ID: p.ID})
				bc.WriteBatch(ack, far.addr)
				done.Add(1)
				<-window
			}
		}
	}()
	// The sender: DATA while the window has room, as many at once as it
	// has (a gtudp peer writes what a wake-up produced in one batch).
	payload := make([]byte, o.size)
	pkt := make([]byte, 0, o.window*(hl+o.size))
	pkts := make([][]byte, 0, o.window)
	start, cpu0, farCPU0 := time.Now(), cpuTime(), far.cpu()
	over, stopClock := runFor(o.duration)
	defer stopClock()
	var seq uint32
send:
	for {
		select {
		case window <- struct{}{}:
		case <-over:
			break send
		case <-ctx.Done():
			break send
		}
		n := 1
	more:
		for n < o.window {
			select {
			case window <- struct{}{}:
				n++
			default:
				break more
			}
		}
		pkt, pkts = pkt[:0], pkts[:0]
		now := time.Now().UnixNano()
		for range n {
			var id wire.ID
			binary.BigEndian.PutUint32(id[:], seq)
			sentAt[seq&0xffff].Store(now)
			seq++
			off := len(pkt)
			pkt = f.Append(pkt, wire.Packet{Kind: wire.Data, ID: id, Payload: payload})
			pkts = append(pkts, pkt[off:])
		}
		if _, err := bc.WriteBatch(pkts, far.addr); err != nil {
			return r, err
		}
	}
	r.messages, r.elapsed, r.cpu = done.Load(), time.Since(start), cpuTime()-cpu0+far.cpu()-farCPU0
	snd.Close()
	wg.Wait()
	if ctx.Err() != nil {
		return r, ctx.Err()
	}
	return r, nil
}

// benchGtudp streams messages from one endpoint to another, window in
// flight, directly or through a relay losing the given fraction.
func benchGtudp(ctx context.Context, o benchOptions, relayed bool, loss float64) (benchResult, error) {
	r := benchResult{name: "gtudp", hist: newHist()}
	if relayed {
		r.name = fmt.Sprintf("gtudp, relay, %.0f%% loss", 100*loss)
	}
	cfg, err := o.common.config(io.Discard)
	if err != nil {
		return r, err
	}
	far, err := startReceiver(ctx, o, "gtudp")
	if err != nil {
		return r, err
	}
	defer far.stop()
	to := far.addr
	if relayed {
		relay, err := actortest.NewRelay("127.0.0.1:0", to, actortest.RelayConfig{Loss: loss}, nil, 1)
		if err != nil {
			return r, err
		}
		defer relay.Close()
		to = relay.Addr()
	}
	send, err := openEndpoint("udp4", "127.0.0.1:0", cfg)
	if err != nil {
		return r, err
	}
	defer send.Close(context.Background())

	// Each in-flight message has its own buffer until its receipt. The
	// buffer's slot is in the message's ID, so finding it again costs
	// neither a map nor a lock: the bench measures gtudp, not its own
	// bookkeeping. (Any unique ID will do; gtudp only matches receipts.)
	// There are twice as many buffers as the window, so that gtudp's own
	// window, not the buffers, limits what is in flight.
	bufs := make([][]byte, 2*o.window)
	free := make([]uint32, len(bufs))
	for i := range bufs {
		bufs[i] = make([]byte, o.size)
		free[i] = uint32(i)
	}
	if o.profile != "" && !relayed {
		stopProfile, err := startCPUProfile(o.profile)
		if err != nil {
			return r, err
		}
		defer stopProfile()
	}
	// One goroutine sends and takes receipts, as an application streaming
	// through the Outbox would.
	var failed error
	pending := 0 // sent, receipt not in yet
	var seq uint64
	start, cpu0, farCPU0 := time.Now(), cpuTime(), far.cpu()
	end, stopClock := runFor(o.duration)
	defer stopClock()
	var giveUp <-chan time.Time // after the run: the last receipts' deadline
	for end != nil || pending > 0 {
		var outbox chan<- gtudp.Message
		var m gtudp.Message
		if end != nil && len(free) > 0 {
			slot := free[len(free)-1]
			var id uuid.UUID
			binary.BigEndian.PutUint32(id[:4], slot)
			binary.BigEndian.PutUint64(id[8:], seq+1)
			outbox, m = send.Outbox(), gtudp.Message{ID: id, Addr: to, Data: bufs[slot]}
		}
		select {
		case outbox <- m:
			free = free[:len(free)-1]
			seq++
			pending++
		case rc := <-send.Receipts():
			pending--
			if rc.Err != nil {
				failed = rc.Err
			} else if end != nil {
				r.hist.RecordValue(max(rc.RTT.Nanoseconds(), 1))
				r.messages++
			}
			free = append(free, binary.BigEndian.Uint32(rc.ID[:4]))
		case <-end:
			r.elapsed, r.cpu = time.Since(start), cpuTime()-cpu0+far.cpu()-farCPU0
			end, giveUp = nil, time.After(10*time.Second)
		case <-giveUp:
			pending = 0
		case <-ctx.Done():
			return r, ctx.Err()
		}
	}
	if failed != nil && !errors.Is(failed, gtudp.ErrClosed) {
		return r, fmt.Errorf("a message failed: %w", failed)
	}
	return r, ctx.Err()
}

// receiver is the far side of a bench run, in this process or a child.
type receiver struct {
	addr netip.AddrPort
	stop func()
	// cpu returns the CPU time a child receiver has used so far; zero in
	// this process, whose CPU time counts it already.
	cpu func() time.Duration
}

// startReceiver starts the receiving side: "bare" answers every DATA with
// RECV and drops ACKs; "gtudp" is an endpoint that drains its Inbox.
func startReceiver(ctx context.Context, o benchOptions, mode string) (receiver, error) {
	if o.procs == 2 {
		return startChildReceiver(ctx, o, mode)
	}
	return serveReceiver(mode, o.common)
}

func serveReceiver(mode string, c common) (receiver, error) {
	switch mode {
	case "bare":
		f, err := parseFormat(c.magic, c.types)
		if err != nil {
			return receiver{}, err
		}
		rcv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return receiver{}, err
		}
		rcv.SetReadBuffer(4 << 20)
		rcv.SetWriteBuffer(4 << 20)
		done := make(chan struct{})
		go func() {
			defer close(done)
			// RECV for every DATA of a read, written in one batch as a
			// gtudp peer writes the RECVs of one wake-up.
			bc := actor.NewBatchConn(rcv, c.batch)
			hl := f.HeaderLen()
			buf := make([]byte, 0, max(c.batch, 1)*hl)
			var out [][]byte
			var to netip.AddrPort
			flush := func() {
				if len(out) > 0 {
					bc.WriteBatch(out, to)
				}
				buf, out = buf[:0], out[:0]
			}
			for {
				k, err := bc.Read()
				if err != nil {
					return
				}
				for i := range k {
					b, from := bc.Datagram(i)
					p, err := f.Decode(b)
					if err != nil || p.Kind != wire.Data {
						continue
					}
					if from != to {
						flush()
						to = from
					}
					off := len(buf)
					buf = f.Append(buf, wire.Packet{Kind: wire.Recv, ID: p.ID})
					out = append(out, buf[off:])
				}
				flush()
			}
		}()
		return receiver{addr: rcv.LocalAddr().(*net.UDPAddr).AddrPort(), stop: func() { rcv.Close(); <-done }, cpu: noCPU}, nil
	case "gtudp":
		cfg, err := c.config(io.Discard)
		if err != nil {
			return receiver{}, err
		}
		ep, err := openEndpoint("udp4", "127.0.0.1:0", cfg)
		if err != nil {
			return receiver{}, err
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range ep.Inbox() {
			}
		}()
		return receiver{addr: ep.LocalAddr(), stop: func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			ep.Close(ctx)
			<-done
		}, cpu: noCPU}, nil
	}
	return receiver{}, fmt.Errorf("unknown receiver mode %q", mode)
}

// startChildReceiver runs "gtudp bench-receiver" in a child process: it
// prints its address, then serves until its stdin closes.
func startChildReceiver(ctx context.Context, o benchOptions, mode string) (receiver, error) {
	exe, err := os.Executable()
	if err != nil {
		return receiver{}, err
	}
	args := []string{"bench-receiver", "-mode", mode, "-magic", o.common.magic, "-types", o.common.types, "-batch", strconv.Itoa(o.common.batch), "-gomaxprocs", strconv.Itoa(o.maxprocs)}
	if o.profile != "" && mode == "gtudp" {
		args = append(args, "-cpuprofile", o.profile+".receiver")
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return receiver{}, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return receiver{}, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return receiver{}, err
	}
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return receiver{}, fmt.Errorf("child receiver: %w", err)
	}
	addr, err := netip.ParseAddrPort(strings.TrimSpace(line))
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return receiver{}, fmt.Errorf("child receiver said %q: %w", line, err)
	}
	// Each line to the child asks for its CPU time, which it prints.
	cpu := func() time.Duration {
		if _, err := io.WriteString(stdin, "cpu\n"); err != nil {
			return 0
		}
		line, err := out.ReadString('\n')
		if err != nil {
			return 0
		}
		ns, _ := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
		return time.Duration(ns)
	}
	return receiver{addr: addr, stop: func() { stdin.Close(); cmd.Wait() }, cpu: cpu}, nil
}

func noCPU() time.Duration { return 0 }

// runBenchReceiver is the child side of "gtudp bench -procs 2" (not listed
// in the usage): it serves until stdin is closed.
func runBenchReceiver(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var c common
	fs := newFlagSet("bench-receiver", "-mode bare|gtudp", "The receiving side of gtudp bench -procs 2.", "gtudp bench -procs 2", stderr)
	mode := fs.String("mode", "gtudp", "bare or gtudp")
	profile := fs.String("cpuprofile", "", "write a CPU profile to `file`")
	maxprocs := fs.Int("gomaxprocs", 0, "GOMAXPROCS (default: Go's)")
	c.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *maxprocs > 0 {
		runtime.GOMAXPROCS(*maxprocs)
	}
	if *profile != "" {
		stopProfile, err := startCPUProfile(*profile)
		if err != nil {
			return err
		}
		defer stopProfile()
	}
	r, err := serveReceiver(*mode, c)
	if err != nil {
		return err
	}
	defer r.stop()
	fmt.Fprintln(stdout, r.addr)
	gone := make(chan struct{})
	go func() {
		// Every line read asks for this process's CPU time so far.
		lines := bufio.NewScanner(stdin)
		for lines.Scan() {
			fmt.Fprintln(stdout, int64(cpuTime()))
		}
		close(gone)
	}()
	select {
	case <-gone:
	case <-ctx.Done():
	}
	return nil
}
