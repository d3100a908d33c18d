package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/google/uuid"
	"github.com/gtudp/gtudp"
	"golang.org/x/sys/unix"
)

// The children: each role runs inside one namespace, prints JSON on
// stdout (a ready line first if the parent must wait for it, then its
// report) and, if it serves, runs until its stdin closes.

// runTestbedChild runs "gtudp testbed child ROLE [flags]".
func runTestbedChild(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError("testbed child: no role")
	}
	role, args := args[0], args[1:]
	fs := newFlagSet("testbed child "+role, "[flags]", "A process of gtudp testbed, inside one of its namespaces.", "gtudp testbed", stderr)
	var (
		listen   = fs.String("listen", "", "address to serve on")
		to       = fs.String("to", "", "address to send to")
		size     = fs.Int("size", 1200, "message payload bytes")
		window   = fs.Int("window", 0, "gtudp Config.Window")
		t0       = fs.Int64("t0", 0, "start time, Unix nanoseconds")
		duration = fs.Duration("duration", 15*time.Second, "how long to send")
		burst    = fs.Int("burst", 0, "hand this many messages to the Outbox at t0, instead of streaming")
		drain    = fs.Duration("drain", 35*time.Second, "longest wait for outstanding receipts")
		dev      = fs.String("dev", devTun, "TUN device to create")
		delay    = fs.Duration("delay", 0, "one-way delay")
		probes   = fs.Int("n", 16, "round trips to measure")
	)
	if err := parse(fs, args); err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	ready := func() error { return enc.Encode(struct{ Ready bool }{true}) }
	// done is closed when the parent closes our stdin, or we are
	// signalled: the serving roles' cue to finish. A "start T0" line
	// before that tells receivers when the flows begin.
	stop := make(chan struct{})
	var start atomic.Int64
	go func() {
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "start "); ok {
				t, _ := strconv.ParseInt(v, 10, 64)
				start.Store(t)
			}
		}
		close(stop)
	}()
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-stop:
		}
		close(done)
	}()
	var report any
	var err error
	switch role {
	case "sysctl":
		return writeSysctls(fs.Args())
	case "echo":
		return serveEcho(*listen, ready, done)
	case "ping":
		report, err = pingEcho(ctx, *to, *probes)
	case "delay":
		report, err = runDelayLine(*dev, *delay, ready, done)
	case "gtudp-recv":
		report, err = gtudpReceiver(*listen, *window, &start, ready, done)
	case "gtudp-send":
		report, err = gtudpSender(ctx, gtudpSendOptions{to: *to, size: *size, window: *window, t0: *t0, duration: *duration, burst: *burst, drain: *drain})
	case "tcp-recv":
		report, err = tcpReceiver(*listen, &start, ready, done)
	case "tcp-send":
		report, err = tcpSender(ctx, *to, *t0, *duration)
	default:
		return usageError("testbed child: unknown role %q", role)
	}
	if err != nil {
		return err
	}
	return enc.Encode(report)
}

// writeSysctls sets "net.ipv4.ip_forward=1"-style settings through
// /proc/sys, which shows the namespace of the process that writes it.
func writeSysctls(kvs []string) error {
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return usageError("testbed child sysctl: %q is not key=value", kv)
		}
		if err := os.WriteFile("/proc/sys/"+strings.ReplaceAll(k, ".", "/"), []byte(v), 0); err != nil {
			return fmt.Errorf("testbed: sysctl %s: %w", kv, err)
		}
	}
	return nil
}

// serveEcho sends every UDP datagram back, until done.
func serveEcho(addr string, ready func() error, done <-chan struct{}) error {
	conn, err := net.ListenPacket("udp4", addr)
	if err != nil {
		return err
	}
	go func() {
		<-done
		conn.Close()
	}()
	if err := ready(); err != nil {
		return err
	}
	buf := make([]byte, 2048)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			return nil
		}
		conn.WriteTo(buf[:n], from)
	}
}

// pingEcho measures n round trips to an echo, one at a time.
func pingEcho(ctx context.Context, to string, n int) (pingReport, error) {
	var r pingReport
	conn, err := net.Dial("udp4", to)
	if err != nil {
		return r, err
	}
	defer conn.Close()
	buf := make([]byte, 64)
	for i := range n {
		if ctx.Err() != nil {
			return r, ctx.Err()
		}
		var msg [8]byte
		binary.BigEndian.PutUint64(msg[:], uint64(i))
		sent := time.Now()
		if _, err := conn.Write(msg[:]); err != nil {
			return r, err
		}
		conn.SetReadDeadline(sent.Add(time.Second))
		for {
			k, err := conn.Read(buf)
			if err != nil {
				r.Lost++
				break
			}
			if k == 8 && binary.BigEndian.Uint64(buf[:8]) == uint64(i) {
				r.RTTs = append(r.RTTs, int64(time.Since(sent)))
				break
			}
		}
		time.Sleep(5 * time.Millisecond) // spaced, so no probe queues behind another
	}
	if len(r.RTTs) == 0 {
		return r, fmt.Errorf("testbed: no answer from the echo at %s: the path is broken", to)
	}
	xs := make([]float64, len(r.RTTs))
	for i, v := range r.RTTs {
		xs[i] = float64(v)
	}
	st := summarize(xs)
	r.Min, r.Median = int64(st.Min), int64(st.Median)
	return r, nil
}

// runDelayLine creates the TUN device dev and hands every packet the
// kernel routes into it back to the kernel delay later, in order, until
// done. The device goes away with the process.
//
// One thread does it all: it writes back the packets that are due, reads
// what the device has (stamping each packet with its due time), and
// waits in ppoll(2) for the next packet or the next due time, whichever
// comes first. The delay is the same for every packet, so the queue is
// in due order. Up to maxHeld packets are held (2.6 s at 100 Mbit/s of
// 1,500-byte packets); at that the thread stops reading, so the delay
// line drops nothing of its own, and the kernel's drops at tun0's queue
// are reported.
//
// The thread is locked, runs at real-time priority and makes its system
// calls directly, so that the machine's load does not become path
// jitter, and it reads at most readBatch packets between looks at the
// clock. Measured lateness of packets (p99 of their write-back after the
// due time, gtudp testbed -scenario rtt40-20, a 2-core machine at load
// average 4 to 8): a reader and a writer goroutine with the runtime's
// poller and time.Sleep, 33 ms (28 to 76 ms over three runs), and the
// added RTT measured 41.5 ms for 40 (epoll waits in whole
// milliseconds); the same on two real-time threads, 35 ms; one thread
// reading until the device was empty, 36 ms at 1 Mbit/s, since a sender
// blasting its window kept it readable; reading in batches, 0.2 ms at
// 1 and 20 Mbit/s.
func runDelayLine(dev string, delay time.Duration, ready func() error, done <-chan struct{}) (delayReport, error) {
	var r delayReport
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return r, fmt.Errorf("testbed: open /dev/net/tun: %w", err)
	}
	defer unix.Close(fd) // after the thread is done with it
	ifr, err := unix.NewIfreq(dev)
	if err != nil {
		return r, err
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		return r, fmt.Errorf("testbed: TUNSETIFF %s: %w", dev, err)
	}
	if err := ready(); err != nil {
		return r, err
	}
	var stopping atomic.Bool
	result := make(chan delayReport)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		result <- delayLoop(fd, delay, &stopping)
	}()
	<-done
	var txDropped int64
	if b, err := os.ReadFile("/sys/class/net/" + dev + "/statistics/tx_dropped"); err == nil {
		txDropped, _ = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	}
	stopping.Store(true)
	r = <-result
	r.TxDropped = txDropped
	return r, nil
}

// maxHeld is the most packets the delay line holds; readBatch the most
// it reads before it writes back what is due again.
const (
	maxHeld   = 1 << 16
	readBatch = 16
)

// delayLoop is the delay line's thread: it runs until stopping is set
// (noticing within pollWait) and reports what it did.
func delayLoop(fd int, delay time.Duration, stopping *atomic.Bool) delayReport {
	const pollWait = 50 * time.Millisecond
	var r delayReport
	if err := realtime(); err != nil {
		r.NotRealtime = err.Error()
	}
	type held struct {
		buf []byte
		due time.Time
	}
	var q []held // q[head:] are held, oldest first
	head := 0
	var free [][]byte // buffers of written packets, for reuse
	late := hdrhistogram.New(1, int64(10*time.Second/time.Microsecond), 3)
	scratch := make([]byte, 65536) // the largest packet a read can return
	pfd := []unix.PollFd{{Fd: int32(fd)}}
	for !stopping.Load() {
		now := time.Now()
		for head < len(q) && !q[head].due.After(now) {
			h := q[head]
			q[head] = held{}
			head++
			late.RecordValue(max(1, int64(now.Sub(h.due)/time.Microsecond)))
			if _, err := unix.Write(fd, h.buf); err != nil {
				r.WriteErrors++
			}
			r.Packets++
			free = append(free, h.buf)
		}
		if head > 1024 && head > len(q)/2 {
			q = q[:copy(q, q[head:])]
			head = 0
		}
		// At most readBatch packets, then back to what is due.
		read := false
		for i := 0; i < readBatch && len(q)-head < maxHeld; i++ {
			n, err := unix.Read(fd, scratch)
			if err != nil {
				break // EAGAIN: nothing more for now
			}
			var b []byte
			if k := len(free); k > 0 {
				b, free = free[k-1][:0], free[:k-1]
			}
			q = append(q, held{append(b, scratch[:n]...), time.Now().Add(delay)})
			r.MaxQueue = max(r.MaxQueue, len(q)-head)
			read = true
		}
		if read {
			continue // something may be due by now
		}
		wait := pollWait
		if head < len(q) {
			wait = min(wait, time.Until(q[head].due))
		}
		pfd[0].Events = 0
		if len(q)-head < maxHeld {
			pfd[0].Events = unix.POLLIN
		}
		if wait > 0 {
			ts := unix.NsecToTimespec(int64(wait))
			unix.Ppoll(pfd, &ts, nil)
		}
	}
	r.LateP99 = late.ValueAtQuantile(99) * int64(time.Microsecond)
	r.LateMax = late.Max() * int64(time.Microsecond)
	return r
}

// realtime puts the calling thread in SCHED_FIFO at a low real-time
// priority: above every ordinary process, below the kernel's own
// real-time threads. The delay line's thread waits in ppoll between
// packets, so it takes little CPU; the kernel's RT throttling bounds it
// in any case.
func realtime() error {
	if err := unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: 10}, 0); err != nil {
		return fmt.Errorf("testbed: real-time priority for the delay line: %w", err)
	}
	return nil
}

// counts copies the Stats fields the testbed reads.
func counts(st gtudp.Stats) *endpointCounts {
	return &endpointCounts{
		PacketsOut: st.PacketsOut, PacketsIn: st.PacketsIn, DataResent: st.DataResent,
		Sent: st.Sent, Confirmed: st.Confirmed, Failed: st.Failed,
		Delivered: st.Delivered, Duplicates: st.Duplicates, ReceiptsDropped: st.ReceiptsDropped,
		RecvResent: st.RecvResent, MailboxFull: st.MailboxFull, Withheld: st.Withheld, WriteErrors: st.WriteErrors,
	}
}

// binner counts bytes per testbedBin from the start time the parent sent.
// One goroutine uses it.
type binner struct {
	start      *atomic.Int64
	bins, msgs []int64
	early      int64
}

// add counts n bytes in one message (msgs 1) or in a read (msgs 0).
func (b *binner) add(n, msgs int) {
	t0 := b.start.Load()
	now := time.Now().UnixNano()
	if t0 == 0 || now < t0 {
		b.early += int64(n)
		return
	}
	i := int((now - t0) / int64(testbedBin))
	for len(b.bins) <= i {
		b.bins = append(b.bins, 0)
		b.msgs = append(b.msgs, 0)
	}
	b.bins[i] += int64(n)
	b.msgs[i] += int64(msgs)
}

// gtudpReceiver serves an endpoint on addr, counting what its Inbox
// delivers, until done; then it closes the endpoint (finishing the
// exchanges under way) and reports.
func gtudpReceiver(addr string, window int, start *atomic.Int64, ready func() error, done <-chan struct{}) (receiverReport, error) {
	r := receiverReport{Kind: flowGtudp}
	ep, err := gtudp.Listen("udp4", addr, &gtudp.Config{Window: window})
	if err != nil {
		return r, err
	}
	if err := ready(); err != nil {
		ep.Close(context.Background())
		return r, err
	}
	go func() {
		<-done
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ep.Close(ctx)
	}()
	b := binner{start: start}
	var seen []uint64 // bit set of the sequence numbers delivered
	for m := range ep.Inbox() {
		r.Messages++
		r.Bytes += int64(len(m.Data))
		b.add(len(m.Data), 1)
		if len(m.Data) < 8 {
			continue
		}
		// The sender numbers its messages from 1 (0: its size probe).
		seq := binary.BigEndian.Uint64(m.Data)
		if seq == 0 || seq > 1<<32 {
			continue
		}
		w, bit := seq/64, uint64(1)<<(seq%64)
		for uint64(len(seen)) <= w {
			seen = append(seen, 0)
		}
		if seen[w]&bit != 0 {
			r.DupDelivered++
		}
		seen[w] |= bit
	}
	r.Bins, r.MsgBins, r.Early = b.bins, b.msgs, b.early
	r.Stats = counts(ep.Stats())
	return r, nil
}

type gtudpSendOptions struct {
	to              string
	size, window    int
	t0              int64
	duration, drain time.Duration
	burst           int
}

// gtudpSender sends to a gtudpReceiver from t0: for the duration, as fast
// as the Outbox takes messages, or a burst of messages at once; a second
// goroutine reads the receipts. Then it waits, at most drain, for the
// receipts still out, and closes the endpoint.
// maxOutstanding bounds the bytes of the messages a gtudp sender keeps
// outstanding (sent, receipt not yet in).
const maxOutstanding = 32 << 20

func gtudpSender(ctx context.Context, o gtudpSendOptions) (senderReport, error) {
	r := senderReport{Kind: flowGtudp}
	to, err := netip.ParseAddrPort(o.to)
	if err != nil {
		return r, err
	}
	cfg := &gtudp.Config{Window: o.window}
	// The size probe goes from an endpoint of its own, so that the
	// measured one starts as a new application's would (no RTT sample
	// yet); it shows whether the library takes the size at all, and that
	// the path works, before t0.
	if refused, err := probeSize(ctx, to, o.size, cfg); err != nil {
		return r, err
	} else if refused != "" {
		r.Refused = refused
		return r, nil
	}
	ep, err := gtudp.Listen("udp4", addrA+":0", cfg)
	if err != nil {
		return r, err
	}
	window := o.window
	if window == 0 {
		window = 1024 // the library's default Window
	}
	// Each message's buffer is its own until its receipt (the library
	// reads it until then); the slot is in the message's ID, so the
	// receipt finds it again. Slots are made as needed, up to what can be
	// in flight and in the Receipts buffer, and at most 32 MiB of them,
	// as an application with a send buffer would keep: 2,048 messages of
	// 60 KB would take 50 s to drain through 20 Mbit/s, past -drain.
	slots := min(window+1024, max(16, maxOutstanding/max(o.size, 1)))
	bufs := make([][]byte, 0, slots)
	free := make(chan uint32, slots)

	t0 := time.Unix(0, o.t0)
	var sent atomic.Int64
	producerDone := make(chan struct{})
	receiptsDone := make(chan struct{})
	rtt := hdrhistogram.New(1, int64(time.Minute/time.Microsecond), 3)
	var last time.Time
	go func() {
		defer close(receiptsDone)
		var got int64
		var drain <-chan time.Time
		producing := producerDone
		take := func(rc gtudp.Receipt) {
			got++
			last = time.Now()
			switch {
			case rc.Err == nil:
				r.Succeeded++
				rtt.RecordValue(max(1, rc.RTT.Microseconds()))
				for len(r.AttemptsHist) <= rc.Attempts {
					r.AttemptsHist = append(r.AttemptsHist, 0)
				}
				r.AttemptsHist[rc.Attempts]++
			case errors.Is(rc.Err, gtudp.ErrUndelivered):
				r.Failed++
			default:
				r.Other++
				if r.FirstErr == "" {
					r.FirstErr = rc.Err.Error()
				}
			}
			free <- binary.BigEndian.Uint32(rc.ID[:4])
		}
		for {
			if drain != nil && got == sent.Load() {
				return
			}
			select {
			case rc, ok := <-ep.Receipts():
				if !ok {
					return
				}
				take(rc)
			case <-producing:
				// Sent is final now: wait for the rest, at most drain.
				producing = nil
				drain = time.After(o.drain)
			case <-drain:
				r.Outstanding = sent.Load() - got
				return
			case <-ctx.Done():
				return
			}
		}
	}()

	time.Sleep(time.Until(t0))
	path := &pathView{}
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(testbedBin)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				if ps, ok := ep.PeerStats(to); ok {
					path.Cwnd = append(path.Cwnd, ps.Cwnd)
					path.InFlight = append(path.InFlight, ps.InFlightBytes)
					path.SRTT = append(path.SRTT, ps.SRTT)
				}
			case <-receiptsDone:
				return
			}
		}
	}()
	var seq uint64
	// next returns the next message, or false when over is closed first.
	next := func(over <-chan time.Time) (gtudp.Message, bool) {
		var slot uint32
		select {
		case slot = <-free:
		default:
			if len(bufs) < slots {
				slot = uint32(len(bufs))
				bufs = append(bufs, make([]byte, o.size))
				break
			}
			select {
			case slot = <-free:
			case <-over:
				return gtudp.Message{}, false
			}
		}
		seq++
		b := bufs[slot]
		if len(b) >= 8 {
			binary.BigEndian.PutUint64(b, seq)
		}
		var id uuid.UUID
		binary.BigEndian.PutUint32(id[:4], slot)
		binary.BigEndian.PutUint64(id[8:], seq)
		return gtudp.Message{ID: id, Addr: to, Data: b}, true
	}
	if o.burst > 0 {
		for range o.burst {
			m, _ := next(nil)
			select {
			case ep.Outbox() <- m:
				sent.Add(1)
				continue
			case <-ctx.Done():
			}
			break
		}
		r.HandedNS = int64(time.Since(t0))
	} else {
		over := time.After(time.Until(t0.Add(o.duration)))
	stream:
		for {
			m, ok := next(over)
			if !ok {
				break
			}
			select {
			case ep.Outbox() <- m:
				sent.Add(1)
			case <-over:
				break stream
			case <-ctx.Done():
				break stream
			}
		}
	}
	close(producerDone)
	<-receiptsDone
	<-sampled
	if ps, ok := ep.PeerStats(to); ok {
		path.Lost, path.Spurious, path.Timeouts, path.ExtFallbacks = ps.Lost, ps.Spurious, ps.Timeouts, ps.ExtFallbacks
	}
	r.Path = path
	r.Sent = sent.Load()
	if !last.IsZero() {
		r.LastReceiptNS = int64(last.Sub(t0))
	}
	r.RTT = latency{
		N: rtt.TotalCount(), P50: rtt.ValueAtQuantile(50) * 1e3, P99: rtt.ValueAtQuantile(99) * 1e3,
		Max: rtt.Max() * 1e3, Mean: int64(rtt.Mean() * 1e3),
	}
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ep.Close(cctx)
	r.Stats = counts(ep.Stats())
	return r, ctx.Err()
}

// probeSize sends one message of size bytes from a separate endpoint and
// waits for its receipt: "" if it arrived, the library's error if it
// refused the size, an error if the path does not work.
func probeSize(ctx context.Context, to netip.AddrPort, size int, cfg *gtudp.Config) (refused string, err error) {
	ep, err := gtudp.Listen("udp4", addrA+":0", cfg)
	if err != nil {
		return "", err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ep.Close(cctx)
	}()
	select {
	case ep.Outbox() <- gtudp.Message{Addr: to, Data: make([]byte, size)}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	select {
	case rc := <-ep.Receipts():
		switch {
		case errors.Is(rc.Err, gtudp.ErrTooLarge):
			return rc.Err.Error(), nil
		case rc.Err != nil:
			return "", fmt.Errorf("testbed: a first message to %v failed: %w", to, rc.Err)
		}
		return "", nil
	case <-time.After(30 * time.Second):
		return "", fmt.Errorf("testbed: no receipt for a first message to %v in 30s", to)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// tcpReceiver accepts TCP connections on addr and counts the bytes read,
// until done.
func tcpReceiver(addr string, start *atomic.Int64, ready func() error, done <-chan struct{}) (receiverReport, error) {
	r := receiverReport{Kind: flowTCP}
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		return r, err
	}
	if err := ready(); err != nil {
		ln.Close()
		return r, err
	}
	var mu sync.Mutex // guards b and r's counts: one reader per connection
	b := binner{start: start}
	var conns sync.WaitGroup
	var open []net.Conn
	go func() {
		<-done
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			break
		}
		mu.Lock()
		open = append(open, c)
		mu.Unlock()
		conns.Add(1)
		go func() {
			defer conns.Done()
			buf := make([]byte, 256<<10)
			for {
				n, err := c.Read(buf)
				mu.Lock()
				r.Bytes += int64(n)
				b.add(n, 0)
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	conns.Wait()
	r.Bins, r.Early = b.bins, b.early
	return r, nil
}

// tcpSender connects to addr with cubic congestion control (the machine's
// default may be another, such as bbr), then writes as fast as it can
// from t0 for the duration.
func tcpSender(ctx context.Context, addr string, t0ns int64, d time.Duration) (senderReport, error) {
	r := senderReport{Kind: flowTCP}
	dialer := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION, "cubic")
		})
		if serr != nil {
			return fmt.Errorf("testbed: TCP_CONGESTION cubic: %w", serr)
		}
		return err
	}}
	conn, err := dialer.DialContext(ctx, "tcp4", addr)
	if err != nil {
		return r, err
	}
	defer conn.Close()
	tc := conn.(*net.TCPConn)
	raw, err := tc.SyscallConn()
	if err != nil {
		return r, err
	}
	t0 := time.Unix(0, t0ns)
	time.Sleep(time.Until(t0))
	end := t0.Add(d)
	tc.SetWriteDeadline(end)
	buf := make([]byte, 64<<10)
	for time.Now().Before(end) && ctx.Err() == nil {
		n, err := tc.Write(buf)
		r.Bytes += int64(n)
		if err != nil {
			break
		}
	}
	raw.Control(func(fd uintptr) {
		r.CC, _ = unix.GetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION)
		if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			r.Retrans = int64(info.Total_retrans)
		}
	})
	return r, ctx.Err()
}
