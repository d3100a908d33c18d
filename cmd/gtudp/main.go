// Command gtudp sends and receives datagrams with guaranteed delivery over
// UDP, wire-compatible with the Python gtUDP.
//
// Usage:
//
//	gtudp demo   [flags]                       # two endpoints through a lossy relay, with a summary
//	gtudp echo   [flags] -listen ADDR          # send every message back, like echo_server.py
//	gtudp send   [flags] ADDR [MESSAGE...]     # send arguments or stdin lines, report each outcome
//	gtudp listen [flags] -listen ADDR          # print every message received
//	gtudp bench  [flags]                       # gtudp against the bare exchange, kcp-go and TCP
//	gtudp testbed [flags]                      # gtudp and TCP through a real bottleneck (root, Linux)
//
// Run "gtudp COMMAND -h" for a command's flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// exitError carries a command's exit status: 1 when it ran and failed
// (something undelivered), 2 for bad usage.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageError(format string, a ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, a...)}
}

// command is one subcommand: run parses args and does the work, writing
// results to stdout and diagnostics to stderr.
type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error
}

var commands = []command{
	{"demo", "two endpoints through a lossy relay on loopback, with a summary", runDemoCommand},
	{"echo", "send every message received back to its sender", runEcho},
	{"send", "send messages reliably and report each outcome", runSend},
	{"listen", "print every message received", runListen},
	{"bench", "measure gtudp against the bare exchange, kcp-go and TCP on loopback", runBench},
	{"testbed", "gtudp and TCP through a real bottleneck built from network namespaces (root, Linux)", runTestbed},
}

func main() {
	ctx, intr := newInterrupter(context.Background())
	stop := notifySignals(intr)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(stderr, "gtudp:", errorText(err))
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

// errorText is err's message without the "gtudp: " the tool prints before
// it: the library's errors begin with that prefix, since any program may
// print them, and a wrapped one carries it in mid-message.
func errorText(err error) string {
	s := strings.TrimPrefix(err.Error(), "gtudp: ")
	return strings.ReplaceAll(s, ": gtudp: ", ": ")
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return usageError("no command")
		}
		return nil
	}
	switch args[0] { // children of "gtudp bench", not listed
	case "bench-receiver": // -procs 2
		return runBenchReceiver(ctx, args[1:], stdin, stdout, stderr)
	case "bench-busy": // -busy
		return runBenchBusy(ctx, args[1:], stdin, stdout, stderr)
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdin, stdout, stderr)
		}
	}
	usage(stderr)
	return usageError("unknown command %q", args[0])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "gtudp: guaranteed datagram delivery over UDP (wire-compatible with the Python gtUDP)")
	fmt.Fprintln(w, "\nUsage: gtudp COMMAND [flags] [args]\n\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-7s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'gtudp COMMAND -h' for the flags of a command.")
}
