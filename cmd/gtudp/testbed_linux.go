package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// lab is the testbed's namespaces and the children running in them. It
// is used by one goroutine, the command's; the children's own goroutines
// touch only their child.
type lab struct {
	exe    string
	stderr io.Writer
	opts   testbedOptions

	children []*child // every child started, for the kill on exit
	echo     *child   // B's UDP echo, for the base RTT
	plainRTT time.Duration
}

// runLab builds the path, runs every scenario o.runs times (all scenarios
// once, then again, so that a change in the machine's load spreads over
// all of them) and prints the table. The namespaces go on the way out,
// whatever the way (an error, Ctrl-C, SIGTERM), unless -keep; leftovers
// of a run that was killed outright go when the next one starts.
func runLab(ctx context.Context, o testbedOptions, stdout, stderr io.Writer) (err error) {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	unlock, err := lockTestbed()
	if err != nil {
		return err
	}
	defer unlock()
	l := &lab{exe: exe, stderr: stderr, opts: o}
	start, loadStart := time.Now(), loadAverage()
	if err := l.removeStale(); err != nil {
		return err
	}
	defer func() {
		// A fresh context: ctx may be why we are leaving.
		if terr := l.teardown(); terr != nil && err == nil {
			err = terr
		}
	}()
	if err := l.setup(ctx); err != nil {
		return err
	}
	var runs []runResult
	total := o.runs * len(o.scenarios)
	for run := 1; run <= o.runs && ctx.Err() == nil; run++ {
		for _, s := range o.scenarios {
			if ctx.Err() != nil {
				break
			}
			fmt.Fprintf(stderr, "testbed: [%d/%d] %s (%s, %s), run %d of %d\n",
				len(runs)+1, total, s.Name, s.path(), flowsTitle(s), run, o.runs)
			r := l.runScenario(ctx, s, run)
			if r.Err != "" {
				fmt.Fprintf(stderr, "testbed: %s run %d: %s\n", s.Name, run, r.Err)
			} else {
				for _, f := range r.Flows {
					fmt.Fprintf(stderr, "testbed:   %s: goodput %.1f%%, failed %d, drops A→B %.1f%%\n",
						f.Flow, f.GoodputPct, f.Sender.Failed+f.Sender.Outstanding, r.Path.AtoB.DropPct())
				}
			}
			runs = append(runs, r)
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("testbed: interrupted after %d of %d runs", len(runs), total)
	}
	rep := testbedRun{
		Command:   "gtudp testbed " + strings.Join(o.args, " "),
		Started:   start,
		Took:      time.Since(start).Round(time.Second),
		LoadStart: loadStart,
		LoadEnd:   loadAverage(),
		TBF:       fmt.Sprintf("burst %s limit %s", o.tbfBurst, o.tbfLimit),
		PlainRTT:  l.plainRTT,
		Runs:      runs,
		Table:     summarizeRuns(o.scenarios, runs, tableColumns, true),
		PathTable: summarizeRuns(o.scenarios, runs, pathColumns, false),
	}
	if o.json {
		// The table goes to stderr, so that it is seen while the JSON
		// goes to a file.
		rep.writeText(stderr)
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	rep.writeText(stdout)
	return nil
}

// lockTestbed makes sure this is the only testbed on the machine: the
// stale clean-up removes every gtb- namespace, which would pull the floor
// from under a second one.
func lockTestbed() (unlock func(), err error) {
	name := filepath.Join(os.TempDir(), "gtudp-testbed.lock")
	f, err := os.OpenFile(name, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("testbed: lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("testbed: another gtudp testbed is running on this machine (%s is locked)", name)
		}
		return nil, fmt.Errorf("testbed: lock %s: %w", name, err)
	}
	return func() { f.Close() }, nil
}

// ipcmd runs one command of a plan and returns its output, or an error
// that quotes the command and what it printed.
func ipcmd(ctx context.Context, argv []string) (string, error) {
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("testbed: %s: %v: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

func runPlan(ctx context.Context, plan [][]string) error {
	for _, argv := range plan {
		if _, err := ipcmd(ctx, argv); err != nil {
			return err
		}
	}
	return nil
}

// removeStale deletes the gtb- namespaces a killed run left behind, with
// whatever of its children still run in them (the kernel keeps a
// namespace while a process is in it).
func (l *lab) removeStale() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := ipcmd(ctx, []string{"ip", "netns", "list"})
	if err != nil {
		return err
	}
	for _, ns := range testbedNamespaces(list) {
		fmt.Fprintf(l.stderr, "testbed: removing %s, left over from an earlier run\n", ns)
		if pids, err := ipcmd(ctx, []string{"ip", "netns", "pids", ns}); err == nil {
			for f := range strings.FieldsSeq(pids) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if _, err := ipcmd(ctx, []string{"ip", "netns", "del", ns}); err != nil {
			return err
		}
	}
	return nil
}

// teardown kills every child and, unless -keep, deletes the namespaces
// (their veths and qdiscs go with them).
func (l *lab) teardown() error {
	for _, c := range l.children {
		c.kill()
	}
	if l.opts.keep {
		fmt.Fprintf(l.stderr, "testbed: -keep: namespaces %s, %s, %s left (ip netns exec %s tc -s qdisc); the next run removes them\n", nsA, nsR, nsB, nsR)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var first error
	for _, ns := range []string{nsA, nsR, nsB} {
		if _, err := ipcmd(ctx, []string{"ip", "netns", "del", ns}); err != nil && first == nil && !strings.Contains(err.Error(), "No such file") {
			first = err
		}
	}
	return first
}

// setup builds the path, starts B's echo and measures the plain base RTT,
// the one the delay line's added RTT is measured against.
func (l *lab) setup(ctx context.Context) error {
	if err := runPlan(ctx, setupPlan(l.exe)); err != nil {
		return err
	}
	// tbf from the start: the plain RTT is measured on the same qdiscs
	// the runs use.
	if err := l.setQdiscs(ctx, l.opts.scenarios[0].RateMbit); err != nil {
		return err
	}
	echo, err := l.spawn(nsB, "echo", "-listen", fmt.Sprintf("%s:%d", addrB, echoPort))
	if err != nil {
		return err
	}
	if err := echo.ready(ctx); err != nil {
		return err
	}
	l.echo = echo
	p, err := l.ping(ctx)
	if err != nil {
		return err
	}
	l.plainRTT = time.Duration(p.Median)
	fmt.Fprintf(l.stderr, "testbed: path up; base RTT without the delay line %v (median of %d)\n", l.plainRTT, len(p.RTTs))
	return nil
}

func (l *lab) setQdiscs(ctx context.Context, rateMbit float64) error {
	del, add := qdiscPlan(rateMbit, l.opts.tbfBurst, l.opts.tbfLimit)
	for _, argv := range del {
		ipcmd(ctx, argv) // fails when there is none yet: fine
	}
	return runPlan(ctx, add)
}

// ping measures the base RTT from A to B's echo.
func (l *lab) ping(ctx context.Context) (pingReport, error) {
	var p pingReport
	c, err := l.spawn(nsA, "ping", "-to", fmt.Sprintf("%s:%d", addrB, echoPort))
	if err != nil {
		return p, err
	}
	err = c.result(ctx, 30*time.Second, &p)
	return p, err
}

// runScenario runs s once: a fresh tbf, the delay line if s adds RTT, the
// base RTT, then the flows. It returns what it measured; an error is
// recorded in the result, so that one bad run does not lose the others.
func (l *lab) runScenario(ctx context.Context, s scenario, run int) runResult {
	r := runResult{Scenario: s.Name, Run: run, Started: time.Now()}
	if err := l.runScenarioErr(ctx, s, &r); err != nil {
		r.Err = err.Error()
	}
	r.compute(s)
	return r
}

func (l *lab) runScenarioErr(ctx context.Context, s scenario, r *runResult) error {
	p := &r.Path
	p.RateMbit, p.AddedRTT, p.PlainRTT = s.RateMbit, s.RTT, l.plainRTT
	p.QueueDelay = queueDelay(l.opts.limit, s.RateMbit)
	if err := l.setQdiscs(ctx, s.RateMbit); err != nil {
		return err
	}
	if s.RTT > 0 {
		delay, err := l.startDelay(ctx, s.RTT/2)
		if err != nil {
			return err
		}
		defer func() {
			var d delayReport
			if err := delay.result(context.Background(), 10*time.Second, &d); err == nil {
				p.Delay = &d
			}
			runPlan(context.Background(), undelayPlan())
		}()
	}
	ping, err := l.ping(ctx)
	if err != nil {
		return err
	}
	p.BaseRTT = time.Duration(ping.Median)
	p.Bound = 2 * (p.BaseRTT + p.QueueDelay)

	// Receivers first, each on its own port in B.
	rcvs := make([]*child, len(s.Flows))
	for i, f := range s.Flows {
		var c *child
		var err error
		switch f.Kind {
		case flowTCP:
			c, err = l.spawn(nsB, "tcp-recv", "-listen", fmt.Sprintf("%s:%d", addrB, tcpPortB+i))
		default:
			c, err = l.spawn(nsB, "gtudp-recv", "-listen", fmt.Sprintf("%s:%d", addrB, gtudpPortB+i), "-window", strconv.Itoa(s.Window))
		}
		if err != nil {
			return err
		}
		defer c.kill()
		if err := c.ready(ctx); err != nil {
			return err
		}
		rcvs[i] = c
	}
	before, err := l.snapshot(ctx)
	if err != nil {
		return err
	}
	// Every flow starts at t0, late enough for the senders to start and
	// connect (or probe the message size) first.
	t0 := time.Now().Add(time.Second).UnixNano()
	for _, c := range rcvs {
		if _, err := fmt.Fprintf(c.stdin, "start %d\n", t0); err != nil {
			return fmt.Errorf("testbed: %s: %w", c.role, err)
		}
	}
	snds := make([]*child, len(s.Flows))
	for i, f := range s.Flows {
		args := []string{"-t0", strconv.FormatInt(t0, 10), "-duration", s.Duration.String()}
		var c *child
		var err error
		switch f.Kind {
		case flowTCP:
			c, err = l.spawn(nsA, "tcp-send", append(args, "-to", fmt.Sprintf("%s:%d", addrB, tcpPortB+i))...)
		default:
			c, err = l.spawn(nsA, "gtudp-send", append(args, "-to", fmt.Sprintf("%s:%d", addrB, gtudpPortB+i),
				"-size", strconv.Itoa(f.Size), "-window", strconv.Itoa(s.Window), "-burst", strconv.Itoa(s.Burst),
				"-drain", l.opts.drain.String())...)
		}
		if err != nil {
			return err
		}
		defer c.kill()
		snds[i] = c
	}
	r.Flows = make([]flowResult, len(s.Flows))
	// A sender ends after its duration (a burst has none) and its drain,
	// and Close's own bound.
	limit := time.Until(time.Unix(0, t0)) + s.Duration + l.opts.drain + time.Minute
	for i, c := range snds {
		r.Flows[i].Flow = s.Flows[i]
		if err := c.result(ctx, limit, &r.Flows[i].Sender); err != nil {
			return err
		}
	}
	after, err := l.snapshot(ctx)
	if err != nil {
		return err
	}
	p.AtoB, p.BtoA = after.atob.sub(before.atob), after.btoa.sub(before.btoa)
	p.BacklogDrops = after.backlog - before.backlog
	p.RcvbufErrorsA, p.RcvbufErrorsB = after.rcvbufA-before.rcvbufA, after.rcvbufB-before.rcvbufB
	for i, c := range rcvs {
		// Closing stdin is the receiver's cue to close and report.
		if err := c.result(ctx, time.Minute, &r.Flows[i].Receiver); err != nil {
			return err
		}
	}
	return nil
}

// startDelay starts the delay line in R with the given one-way delay and
// routes R's forwarded traffic through it.
func (l *lab) startDelay(ctx context.Context, oneWay time.Duration) (*child, error) {
	c, err := l.spawn(nsR, "delay", "-dev", devTun, "-delay", oneWay.String())
	if err != nil {
		return nil, err
	}
	if err := c.ready(ctx); err != nil {
		c.kill()
		return nil, err
	}
	if err := runPlan(ctx, delayPlan()); err != nil {
		c.kill()
		runPlan(context.Background(), undelayPlan())
		return nil, err
	}
	return c, nil
}

// counters are the kernel's counters a run is judged by, read before and
// after the flows.
type counters struct {
	atob, btoa       qdiscStats
	backlog          int64
	rcvbufA, rcvbufB int64
}

func (l *lab) snapshot(ctx context.Context) (counters, error) {
	var c counters
	for _, q := range []struct {
		dev string
		st  *qdiscStats
	}{{devRB, &c.atob}, {devRA, &c.btoa}} {
		out, err := ipcmd(ctx, []string{"tc", "-n", nsR, "-s", "qdisc", "show", "dev", q.dev})
		if err != nil {
			return c, err
		}
		if *q.st, err = parseQdiscStats(out, "tbf"); err != nil {
			return c, fmt.Errorf("testbed: %s: %w", q.dev, err)
		}
	}
	softnet, err := os.ReadFile("/proc/net/softnet_stat")
	if err != nil {
		return c, fmt.Errorf("testbed: %w", err)
	}
	if c.backlog, err = parseSoftnetDropped(string(softnet)); err != nil {
		return c, fmt.Errorf("testbed: %w", err)
	}
	for _, s := range []struct {
		ns string
		v  *int64
	}{{nsA, &c.rcvbufA}, {nsB, &c.rcvbufB}} {
		// /proc/net is the reader's namespace: read it from inside.
		out, err := ipcmd(ctx, []string{"ip", "netns", "exec", s.ns, "cat", "/proc/net/snmp"})
		if err != nil {
			return c, err
		}
		if *s.v, err = parseSNMPCounter(out, "Udp", "RcvbufErrors"); err != nil {
			return c, fmt.Errorf("testbed: %s: %w", s.ns, err)
		}
	}
	return c, nil
}

// child is this binary running one role inside a namespace. Its stdout
// carries JSON values (a {"Ready":true} first for long-running roles, then
// its report); closing its stdin tells it to finish.
type child struct {
	role   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	values chan json.RawMessage // closed when stdout ends
	stderr *tailWriter
	exited chan struct{} // closed once Wait has returned
	err    error         // Wait's error, set before exited is closed
}

// spawn starts "ip netns exec NS <this binary> testbed child ROLE args".
// ip execs the binary in place, so the child's pid is the process itself.
// It gets its own process group, so a Ctrl-C at the terminal reaches only
// the parent, which stops the children in order; and SIGKILL when the
// parent dies, so none outlives a parent killed outright.
func (l *lab) spawn(ns, role string, args ...string) (*child, error) {
	argv := append([]string{"netns", "exec", ns, l.exe, "testbed", testbedChildArg, role}, args...)
	cmd := exec.Command("ip", argv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	c := &child{role: ns + " " + role, cmd: cmd, values: make(chan json.RawMessage, 4), exited: make(chan struct{})}
	c.stderr = &tailWriter{prefix: "testbed: " + c.role + ": ", w: l.stderr}
	cmd.Stderr = c.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("testbed: start %s: %w", c.role, err)
	}
	c.stdin = stdin
	l.children = append(l.children, c)
	go func() {
		dec := json.NewDecoder(stdout)
		for {
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				break
			}
			c.values <- v
		}
		close(c.values)
		c.err = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

// next decodes the child's next JSON value into v, waiting at most
// timeout.
func (c *child) next(ctx context.Context, timeout time.Duration, v any) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case raw, ok := <-c.values:
		if !ok {
			<-c.exited
			return fmt.Errorf("testbed: %s ended without a report (%v): %s", c.role, c.err, c.stderr.tail())
		}
		if err := json.Unmarshal(raw, v); err != nil {
			return fmt.Errorf("testbed: %s: %w", c.role, err)
		}
		return nil
	case <-t.C:
		return fmt.Errorf("testbed: %s: no report within %v", c.role, timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ready waits for the child's ready line.
func (c *child) ready(ctx context.Context) error {
	var r struct{ Ready bool }
	if err := c.next(ctx, 30*time.Second, &r); err != nil {
		return err
	}
	if !r.Ready {
		return fmt.Errorf("testbed: %s: expected its ready line", c.role)
	}
	return nil
}

// result closes the child's stdin (its cue to finish, if it waits for
// one), reads its report and waits for it to exit.
func (c *child) result(ctx context.Context, timeout time.Duration, v any) error {
	c.stdin.Close()
	if err := c.next(ctx, timeout, v); err != nil {
		return err
	}
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		c.kill()
	case <-ctx.Done():
		return ctx.Err()
	}
	if c.err != nil {
		return fmt.Errorf("testbed: %s: %v: %s", c.role, c.err, c.stderr.tail())
	}
	return nil
}

// kill ends the child if it still runs, and waits for it.
func (c *child) kill() {
	select {
	case <-c.exited:
		return
	default:
	}
	c.cmd.Process.Kill()
	<-c.exited
}

// tailWriter passes a child's stderr on, line by line with a prefix, and
// keeps its last lines for error messages. The exec package writes to it
// from one goroutine; tail reads it from another.
type tailWriter struct {
	prefix string
	w      io.Writer
	mu     sync.Mutex
	buf    []byte
	lines  []string
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	for {
		i := bytes.IndexByte(t.buf, '\n')
		if i < 0 {
			break
		}
		line := string(t.buf[:i])
		t.buf = t.buf[i+1:]
		fmt.Fprintln(t.w, t.prefix+line)
		t.lines = append(t.lines, line)
		if len(t.lines) > 5 {
			t.lines = t.lines[1:]
		}
	}
	return len(p), nil
}

func (t *tailWriter) tail() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(append(t.lines, string(t.buf)), " / ")
}

// loadAverage is /proc/loadavg's first three fields, as uptime prints them.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
