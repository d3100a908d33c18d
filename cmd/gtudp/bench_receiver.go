package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// receiver is the far side of a bench run, in this process or a child.
type receiver struct {
	addr netip.AddrPort
	stop func()
	// counts returns the receiving side's counters so far.
	counts func() farCounts
}

// farCounts are the counters of a receiving side.
type farCounts struct {
	// cpu is the CPU time of a child receiver; zero in this process,
	// whose own CPU time counts the receiver already.
	cpu time.Duration
	// datagrams is what the receiving side has sent; for kcp-go, which
	// counts per process, what its process has sent.
	datagrams uint64
	// messages is what the receiving application has read (kcp-go, TCP:
	// their senders learn of no single message).
	messages uint64
}

// sub is c less an earlier reading of the same counters.
func (c farCounts) sub(before farCounts) farCounts {
	return farCounts{cpu: c.cpu - before.cpu, datagrams: c.datagrams - before.datagrams, messages: c.messages - before.messages}
}

// serveReceiver starts the receiving side of mode in this process. Its
// counts leave the CPU time out: this process's own counts it.
func serveReceiver(mode string, o benchOptions) (receiver, error) {
	switch mode {
	case "bare":
		return serveBare(o)
	case "gtudp":
		return serveGtudp(o)
	case "kcp":
		return serveKCP(o)
	case "tcp", "tcp-fresh":
		return serveTCP(mode == "tcp-fresh")
	}
	return receiver{}, fmt.Errorf("unknown receiver mode %q", mode)
}

// startReceiver starts the receiving side of mode, in a child process
// with -procs 2.
func startReceiver(ctx context.Context, o benchOptions, mode string) (receiver, error) {
	if o.procs == 2 {
		return startChildReceiver(ctx, o, mode)
	}
	return serveReceiver(mode, o)
}

// startChildReceiver runs "gtudp bench-receiver" in a child process: it
// prints its address, then a line of counters for each line it reads,
// until its stdin closes.
func startChildReceiver(ctx context.Context, o benchOptions, mode string) (receiver, error) {
	exe, err := os.Executable()
	if err != nil {
		return receiver{}, err
	}
	args := []string{"bench-receiver", "-mode", mode, "-magic", o.common.magic, "-types", o.common.types,
		"-batch", strconv.Itoa(o.common.batch), "-window", strconv.Itoa(o.window), "-gomaxprocs", strconv.Itoa(o.maxprocs)}
	if o.common.noExt {
		args = append(args, "-no-extension")
	}
	if o.release {
		args = append(args, "-release")
	}
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
	counts := func() farCounts {
		if _, err := io.WriteString(stdin, "counts\n"); err != nil {
			return farCounts{}
		}
		line, err := out.ReadString('\n')
		if err != nil {
			return farCounts{}
		}
		var c farCounts
		var cpu int64
		fmt.Sscan(line, &cpu, &c.datagrams, &c.messages)
		c.cpu = time.Duration(cpu)
		return c
	}
	return receiver{addr: addr, stop: func() { stdin.Close(); cmd.Wait() }, counts: counts}, nil
}

// runBenchReceiver is the child side of "gtudp bench -procs 2" (not listed
// in the usage): it serves until stdin is closed.
func runBenchReceiver(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var o benchOptions
	fs := newFlagSet("bench-receiver", "-mode bare|gtudp|kcp|tcp|tcp-fresh", "The receiving side of gtudp bench -procs 2.", "gtudp bench -procs 2", stderr)
	mode := fs.String("mode", "gtudp", "bare, gtudp, kcp, tcp or tcp-fresh (a new buffer for each message)")
	profile := fs.String("cpuprofile", "", "write a CPU profile to `file`")
	fs.IntVar(&o.maxprocs, "gomaxprocs", 0, "GOMAXPROCS (default: Go's)")
	fs.BoolVar(&o.release, "release", false, "give each message's Data back (Endpoint.Release)")
	o.common.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	o.window = max(o.common.window, 1)
	if o.maxprocs > 0 {
		runtime.GOMAXPROCS(o.maxprocs)
	}
	if *profile != "" {
		stopProfile, err := startCPUProfile(*profile)
		if err != nil {
			return err
		}
		defer stopProfile()
	}
	r, err := serveReceiver(*mode, o)
	if err != nil {
		return err
	}
	defer r.stop()
	fmt.Fprintln(stdout, r.addr)
	gone := make(chan struct{})
	go func() {
		// Every line read asks for the counters so far.
		lines := bufio.NewScanner(stdin)
		for lines.Scan() {
			c := r.counts()
			fmt.Fprintln(stdout, int64(cpuTime()), c.datagrams, c.messages)
		}
		close(gone)
	}()
	select {
	case <-gone:
	case <-ctx.Done():
	}
	return nil
}
