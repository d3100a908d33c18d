package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The testbed's own names and addresses. Everything it creates carries
// nsPrefix, so a leftover is recognisable, and lives inside its
// namespaces, so the root namespace is never touched.
const (
	nsPrefix = "gtb-"
	nsA      = nsPrefix + "a" // the senders
	nsR      = nsPrefix + "r" // the router with the bottleneck and the delay line
	nsB      = nsPrefix + "b" // the receivers

	devA   = "a0"   // A's end of the A–R veth pair
	devRA  = "ra"   // R's end toward A: its egress carries B→A
	devRB  = "rb"   // R's end toward B: its egress carries A→B, the data direction
	devB   = "b0"   // B's end of the R–B veth pair
	devTun = "tun0" // the delay line's TUN device, in R

	addrA  = "10.77.1.2"
	addrRA = "10.77.1.1"
	addrRB = "10.77.2.1"
	addrB  = "10.77.2.2"

	// delayTable is R's routing table that sends forwarded packets into
	// the delay line; ip rules select it by input interface.
	delayTable = "100"

	echoPort     = 7    // B's UDP echo, for the base RTT
	gtudpPortB   = 4400 // + flow index: gtudp receivers in B
	tcpPortB     = 5200 // + flow index: TCP receivers in B
	maxTestbedSz = 16 << 20
)

// flowKind is what one flow of a scenario runs.
type flowKind string

const (
	flowGtudp flowKind = "gtudp"
	flowTCP   flowKind = "tcp"
)

// flowSpec is one flow from A to B.
type flowSpec struct {
	Kind flowKind `json:"kind"`
	Size int      `json:"size,omitempty"` // gtudp message payload bytes
}

func (f flowSpec) String() string {
	if f.Kind == flowTCP {
		return "TCP cubic"
	}
	return fmt.Sprintf("gtudp %s B", thousands(int64(f.Size)))
}

// scenario is one row group of the testbed's table: a path and the flows
// that share it.
type scenario struct {
	Name     string        `json:"name"`
	RateMbit float64       `json:"rate_mbit"`
	RTT      time.Duration `json:"added_rtt"`
	Duration time.Duration `json:"duration"`
	Burst    int           `json:"burst,omitempty"` // >0: one burst of this many messages instead of a timed stream
	Window   int           `json:"window,omitempty"`
	Flows    []flowSpec    `json:"flows"`
}

// path describes the scenario's path for the table.
func (s scenario) path() string {
	p := fmt.Sprintf("%s Mbit/s", strconv.FormatFloat(s.RateMbit, 'f', -1, 64))
	if s.RTT > 0 {
		p += fmt.Sprintf(" + %v added RTT", s.RTT)
	}
	if s.Burst == 0 && len(s.Flows) > 1 {
		p += fmt.Sprintf(", %v", s.Duration)
	}
	return p
}

// defaultScenarios is the table the issue asks for, in its order.
func defaultScenarios() []scenario {
	g := func(size int) flowSpec { return flowSpec{Kind: flowGtudp, Size: size} }
	tcp := flowSpec{Kind: flowTCP}
	const d, pair = 15 * time.Second, 20 * time.Second
	return []scenario{
		{Name: "gtudp-5", RateMbit: 5, Duration: d, Flows: []flowSpec{g(1200)}},
		{Name: "gtudp-20", RateMbit: 20, Duration: d, Flows: []flowSpec{g(1200)}},
		{Name: "gtudp-100", RateMbit: 100, Duration: d, Flows: []flowSpec{g(1200)}},
		{Name: "small-20", RateMbit: 20, Duration: d, Flows: []flowSpec{g(64)}},
		{Name: "tcp-20", RateMbit: 20, Duration: d, Flows: []flowSpec{tcp}},
		{Name: "rtt40-20", RateMbit: 20, RTT: 40 * time.Millisecond, Duration: d, Flows: []flowSpec{g(1200)}},
		{Name: "vs-tcp-20", RateMbit: 20, Duration: pair, Flows: []flowSpec{g(1200), tcp}},
		{Name: "two-gtudp-20", RateMbit: 20, Duration: pair, Flows: []flowSpec{g(1200), g(1200)}},
		{Name: "burst-5", RateMbit: 5, Burst: 1024, Flows: []flowSpec{g(1200)}},
	}
}

// testbedOptions are the knobs of "gtudp testbed", after validation.
type testbedOptions struct {
	scenarios []scenario
	runs      int
	json      bool
	keep      bool
	drain     time.Duration // how long a sender waits for its outstanding receipts
	tbfBurst  string        // tc size syntax, e.g. "32kbit"
	tbfLimit  string
	limit     int // tbfLimit in bytes
	args      []string
}

// testbedFlags are the flags as typed, before they are applied to the
// scenarios.
type testbedFlags struct {
	scenario         string
	runs             int
	size             int
	rate             float64
	rtt              time.Duration
	duration         time.Duration
	window           int
	burst            int
	drain            time.Duration
	tbfBurst, limit  string
	json, keep, list bool
}

func (f *testbedFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.scenario, "scenario", "all", "comma-separated scenarios to run (-list shows them)")
	fs.IntVar(&f.runs, "runs", 1, "runs of each scenario; the table shows medians and the spread")
	fs.IntVar(&f.size, "size", 0, "gtudp message payload bytes, up to 16 MiB (default: each scenario's, 1200 or 64)")
	fs.Float64Var(&f.rate, "rate", 0, "bottleneck rate in Mbit/s (default: each scenario's)")
	fs.DurationVar(&f.rtt, "rtt", 0, "round-trip time added by the delay line, half each way (default: each scenario's)")
	fs.DurationVar(&f.duration, "duration", 0, "how long each flow sends (default 15s, 20s for two flows)")
	fs.IntVar(&f.window, "window", 0, "gtudp Config.Window: messages in flight per peer (default: the library's)")
	fs.IntVar(&f.burst, "burst", 1024, "messages the burst scenario hands to the Outbox at once")
	fs.DurationVar(&f.drain, "drain", 35*time.Second, "longest a sender waits for its outstanding receipts after sending (above the library's 30s Lifetime)")
	fs.StringVar(&f.tbfBurst, "tbf-burst", "32kbit", "tbf burst (tc syntax) on both of R's egress interfaces")
	fs.StringVar(&f.limit, "tbf-limit", "64kb", "tbf limit: the bottleneck queue, in bytes (tc syntax)")
	fs.BoolVar(&f.json, "json", false, "print every run and the medians as JSON on stdout (the table goes to stderr)")
	fs.BoolVar(&f.keep, "keep", false, "leave the namespaces (gtb-a, gtb-r, gtb-b) for inspection; the next run removes them")
	fs.BoolVar(&f.list, "list", false, "list the scenarios and exit")
}

// options validates the flags and applies those that were set to the
// selected scenarios. set holds the names of the flags given.
func (f *testbedFlags) options(set map[string]bool) (testbedOptions, error) {
	o := testbedOptions{runs: f.runs, json: f.json, keep: f.keep, drain: f.drain, tbfBurst: f.tbfBurst, tbfLimit: f.limit}
	switch {
	case f.runs < 1:
		return o, usageError("testbed: -runs %d: want at least 1", f.runs)
	case set["size"] && (f.size < 0 || f.size > maxTestbedSz):
		return o, usageError("testbed: -size %d: want 0 to %d bytes (16 MiB)", f.size, maxTestbedSz)
	case set["rate"] && (f.rate <= 0 || f.rate > 10000 || math.IsNaN(f.rate)):
		return o, usageError("testbed: -rate %v: want more than 0 and at most 10000 Mbit/s", f.rate)
	case set["rtt"] && (f.rtt < 0 || f.rtt > 10*time.Second):
		return o, usageError("testbed: -rtt %v: want 0 to 10s", f.rtt)
	case set["duration"] && f.duration < 100*time.Millisecond:
		return o, usageError("testbed: -duration %v: want at least 100ms", f.duration)
	case f.window < 0:
		return o, usageError("testbed: -window %d: want 0 (the library's default) or more", f.window)
	case f.burst < 1:
		return o, usageError("testbed: -burst %d: want at least 1", f.burst)
	case f.drain <= 0:
		return o, usageError("testbed: -drain %v: want more than 0", f.drain)
	}
	if _, err := parseTCSize(f.tbfBurst); err != nil {
		return o, usageError("testbed: -tbf-burst: %v", err)
	}
	limit, err := parseTCSize(f.limit)
	if err != nil {
		return o, usageError("testbed: -tbf-limit: %v", err)
	}
	o.limit = limit
	all := defaultScenarios()
	if f.scenario == "" || f.scenario == "all" {
		o.scenarios = all
	} else {
		for name := range strings.SplitSeq(f.scenario, ",") {
			name = strings.TrimSpace(name)
			i := slices.IndexFunc(all, func(s scenario) bool { return s.Name == name })
			if i < 0 {
				return o, usageError("testbed: unknown scenario %q; want all or some of %s", name, scenarioNames(all))
			}
			if !slices.ContainsFunc(o.scenarios, func(s scenario) bool { return s.Name == name }) {
				o.scenarios = append(o.scenarios, all[i])
			}
		}
	}
	for i := range o.scenarios {
		s := &o.scenarios[i]
		s.Flows = slices.Clone(s.Flows)
		if set["rate"] {
			s.RateMbit = f.rate
		}
		if set["rtt"] {
			s.RTT = f.rtt
		}
		if set["duration"] && s.Burst == 0 {
			s.Duration = f.duration
		}
		if s.Burst > 0 {
			s.Burst = f.burst
		}
		s.Window = f.window
		for j := range s.Flows {
			if set["size"] && s.Flows[j].Kind == flowGtudp {
				s.Flows[j].Size = f.size
			}
		}
	}
	return o, nil
}

func scenarioNames(ss []scenario) string {
	names := make([]string, len(ss))
	for i, s := range ss {
		names[i] = s.Name
	}
	return strings.Join(names, ", ")
}

// system is what the testbed needs of the machine, injectable so that the
// refusals are tested without root.
type system struct {
	goos     string
	euid     int
	lookPath func(file string) (string, error)
	stat     func(name string) (fs.FileInfo, error)
}

func hostSystem() system {
	return system{goos: runtime.GOOS, euid: os.Geteuid(), lookPath: exec.LookPath, stat: os.Stat}
}

// check says why the testbed cannot run here, or nil. needTUN: a
// scenario adds delay, which needs the TUN driver.
func (s system) check(needTUN bool) error {
	if s.goos != "linux" {
		return fmt.Errorf("testbed: needs Linux (network namespaces, tc, TUN); this is %s", s.goos)
	}
	if s.euid != 0 {
		return errors.New("testbed: needs root: it creates network namespaces (gtb-a, gtb-r, gtb-b) and qdiscs in them; run it with sudo")
	}
	var missing []string
	for _, tool := range []string{"ip", "tc"} {
		if _, err := s.lookPath(tool); err != nil {
			missing = append(missing, fmt.Sprintf("%q (iproute2) is not in PATH", tool))
		}
	}
	if needTUN {
		if _, err := s.stat("/dev/net/tun"); err != nil {
			missing = append(missing, fmt.Sprintf("/dev/net/tun (the TUN driver, for the delay line): %v", err))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("testbed: cannot run: %s", strings.Join(missing, "; "))
	}
	return nil
}

func runTestbed(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == testbedChildArg {
		return runTestbedChild(ctx, args[1:], stdin, stdout, stderr)
	}
	return runTestbedWith(ctx, args, hostSystem(), stdout, stderr)
}

// testbedChildArg is the hidden first argument with which the testbed runs
// this binary inside a namespace: "gtudp testbed child ROLE [flags]".
const testbedChildArg = "child"

func runTestbedWith(ctx context.Context, args []string, sys system, stdout, stderr io.Writer) error {
	var f testbedFlags
	fs := newFlagSet("testbed", "[flags]",
		"Builds a real bottleneck on this machine from three network namespaces,\n"+
			"A --veth-- R --veth-- B, with tc tbf on both of R's egress interfaces and\n"+
			"an optional delay line (a TUN device in R), runs gtudp and TCP cubic\n"+
			"flows from A to B, and prints goodput against the link rate and its\n"+
			"ceiling, datagrams per message, bottleneck drops, failures and RTT\n"+
			"percentiles, as a markdown table. Needs root and Linux; removes its\n"+
			"namespaces (gtb-*) on exit, on Ctrl-C, and before it starts.",
		"sudo gtudp testbed -scenario gtudp-20,vs-tcp-20 -runs 3", stderr)
	f.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("testbed: unexpected argument %q (it takes flags only)", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	o, err := f.options(set)
	if err != nil {
		return err
	}
	if f.list {
		for _, s := range o.scenarios {
			fmt.Fprintf(stdout, "%-13s %-28s %s\n", s.Name, s.path(), flowsTitle(s))
		}
		return nil
	}
	o.args = args
	needTUN := slices.ContainsFunc(o.scenarios, func(s scenario) bool { return s.RTT > 0 })
	if err := sys.check(needTUN); err != nil {
		return err
	}
	return runLab(ctx, o, stdout, stderr)
}

// flowsTitle names a scenario's flows for the table.
func flowsTitle(s scenario) string {
	if s.Burst > 0 {
		return fmt.Sprintf("burst of %s × %s B at once", thousands(int64(s.Burst)), thousands(int64(s.Flows[0].Size)))
	}
	names := make([]string, len(s.Flows))
	for i, f := range s.Flows {
		names[i] = f.String()
	}
	if len(names) == 1 {
		return names[0]
	}
	return strings.Join(names, " and ") + " together"
}

// thousands writes n with comma separators, as the table does.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
