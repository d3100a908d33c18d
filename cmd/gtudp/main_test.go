package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gtudp/gtudp/wire"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// "gtudp bench -procs 2" runs this binary as its child receiver.
	if len(os.Args) > 1 && os.Args[1] == "bench-receiver" {
		os.Exit(exitCode(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr), os.Stderr))
	}
	// Tests of signals run this binary as the command itself.
	if os.Getenv("GTUDP_TEST_AS_COMMAND") == "1" {
		main()
	}
	goleak.VerifyTestMain(m)
}

func TestParseFormat(t *testing.T) {
	for _, tc := range []struct {
		magic, types string
		wantErr      bool
		header       int
	}{
		{"", "1d,5f,ae", false, 5},
		{"6774554450", "1d01,5f01,ae01", false, 5 + 2 + 4},
		{"", "1d,5f", true, 0},
		{"", "1d,5f,1d", true, 0},   // repeated
		{"", "1d,5f01,ae", true, 0}, // unequal lengths
		{"", "zz,5f,ae", true, 0},
		{"xyz", "1d,5f,ae", true, 0},
	} {
		f, err := parseFormat(tc.magic, tc.types)
		if (err != nil) != tc.wantErr {
			t.Errorf("parseFormat(%q, %q) error %v, want error %v", tc.magic, tc.types, err, tc.wantErr)
			continue
		}
		if err == nil && f.HeaderLen() != tc.header {
			t.Errorf("parseFormat(%q, %q) header %d, want %d", tc.magic, tc.types, f.HeaderLen(), tc.header)
		}
		if err != nil && exitCode(err, io.Discard) != 2 {
			t.Errorf("parseFormat(%q, %q): exit status %d, want 2", tc.magic, tc.types, exitCode(err, io.Discard))
		}
	}
}

func TestRun_Usage(t *testing.T) {
	ctx := context.Background()
	var out, errOut bytes.Buffer
	for _, args := range [][]string{
		{},
		{"nonsense"},
		{"demo", "-n", "ten"},
		{"demo", "-loss", "1.5"},
		{"demo", "-rto-min", "fast"},
		{"send"},
		{"send", "not an address", "x"},
	} {
		err := run(ctx, args, strings.NewReader(""), &out, &errOut)
		if code := exitCode(err, io.Discard); code != 2 {
			t.Errorf("gtudp %q: exit status %d (%v), want 2", args, code, err)
		}
	}
	for _, cmd := range []string{"demo", "echo", "send", "listen"} {
		errOut.Reset()
		err := run(ctx, []string{cmd, "-h"}, strings.NewReader(""), &out, &errOut)
		if !errors.Is(err, flag.ErrHelp) || !strings.Contains(errOut.String(), "Example:") {
			t.Errorf("gtudp %s -h: %v, usage %q; want help with an example", cmd, err, errOut.String())
		}
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	b := make([]byte, 64)
	payload(b, 12345)
	if seq, ok := checkPayload(b); !ok || seq != 12345 {
		t.Fatalf("checkPayload = %d, %v", seq, ok)
	}
	b[40] ^= 1
	if _, ok := checkPayload(b); ok {
		t.Fatal("a corrupted payload passed the check")
	}
}

func TestLostAndOK(t *testing.T) {
	// Messages 0..3: delivered once, twice, never (reported failed),
	// never (not reported): one lost.
	counts := []uint8{1, 2, 0, 0}
	if got := lost(counts, 1); got != 1 {
		t.Fatalf("lost = %d, want 1", got)
	}
	s := summary{Sent: 4, Delivered: 4}
	if !s.OK() {
		t.Fatal("a clean run is not OK")
	}
	for _, bad := range []summary{
		{Sent: 4, Delivered: 3, Lost: 1},
		{Sent: 4, Delivered: 4, DuplicateDeliveries: 1},
		{Sent: 4, Delivered: 4, Corrupt: 1},
		{Sent: 4, Delivered: 4, Failed: 1},
	} {
		if bad.OK() {
			t.Errorf("%+v is OK", bad)
		}
	}
}

// TestDemo runs the demo end to end on loopback with a small count.
func TestDemo(t *testing.T) {
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := run(ctx, []string{"demo", "-n", "300", "-loss", "0.2", "-dup", "0.1", "-reorder", "0.1"}, nil, &out, &errOut)
	if err != nil {
		t.Fatalf("demo: %v\n%s%s", err, out.String(), errOut.String())
	}
	for _, want := range []string{"sent  300", "delivered exactly once  300", "lost    0", "delivered twice    0", "latency p99", "OK: every message delivered exactly once"} {
		if !strings.Contains(strings.Join(strings.Fields(out.String()), "  "), strings.Join(strings.Fields(want), "  ")) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestDemo_Summary(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	o := demoOptions{n: 500, size: 100, loss: 0.3, dup: 0.1, reorder: 0.1, inFlight: 64, seed: 7,
		progressOut: io.Discard, plainProgressPeriod: time.Hour}
	s, err := runDemo(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if !s.OK() || s.Delivered != 500 || s.Sent != 500 {
		t.Fatalf("summary %+v, want all 500 delivered once", s)
	}
	if s.Relay.Dropped == 0 || s.DataResent == 0 || s.P50 <= 0 || s.Max < s.P99 || s.P99 < s.P50 {
		t.Fatalf("summary %+v: want drops, re-sends and ordered percentiles", s)
	}
}

// TestSendAgainstEcho runs "gtudp echo" and "gtudp send -wait" against each
// other on loopback.
func TestSendAgainstEcho(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	echoCtx, stopEcho := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	echoDone := make(chan error, 1)
	go func() {
		echoDone <- run(echoCtx, []string{"echo", "-listen", "127.0.0.1:0"}, nil, pw, io.Discard)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	if !lines.Scan() {
		t.Fatal("echo printed nothing")
	}
	addr, ok := strings.CutPrefix(lines.Text(), "echoing on ")
	if !ok {
		t.Fatalf("echo's first line %q", lines.Text())
	}
	go func() { // keep the pipe flowing
		for lines.Scan() {
		}
	}()

	var out bytes.Buffer
	err := run(ctx, []string{"send", "-wait", "500ms", addr, "hello", "world"}, nil, &out, io.Discard)
	if err != nil {
		t.Fatalf("send: %v\n%s", err, out.String())
	}
	for _, want := range []string{`delivered "hello"`, `delivered "world"`, `reply from ` + addr + `: "hello"`, `reply from ` + addr + `: "world"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("send output lacks %q:\n%s", want, out.String())
		}
	}
	// Lines from stdin when there are no arguments.
	out.Reset()
	if err := run(ctx, []string{"send", addr}, strings.NewReader("one\ntwo\n"), &out, io.Discard); err != nil {
		t.Fatalf("send from stdin: %v", err)
	}
	if strings.Count(out.String(), "delivered") != 2 {
		t.Errorf("send from stdin:\n%s", out.String())
	}
	stopEcho()
	if err := <-echoDone; err != nil {
		t.Fatalf("echo: %v", err)
	}
}

func TestSend_FailureExitStatus(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	// Nobody listens on port 9 of 127.0.0.1 (discard is not run by default):
	// the message fails at its 300 ms lifetime.
	err := run(ctx, []string{"send", "-lifetime", "300ms", "127.0.0.1:9", "x"}, nil, &out, io.Discard)
	if code := exitCode(err, io.Discard); code != 1 || !strings.Contains(out.String(), "FAILED") {
		t.Fatalf("send to nobody: exit %d (%v), output %q; want 1 and FAILED", code, err, out.String())
	}
}

func TestBench_Runs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, []string{"bench", "-duration", "200ms", "-loss", "0.1", "-window", "64"}, nil, &out, io.Discard); err != nil {
		t.Fatalf("bench: %v\n%s", err, out.String())
	}
	var two bytes.Buffer
	if err := run(ctx, []string{"bench", "-duration", "200ms", "-window", "64", "-procs", "2"}, nil, &two, io.Discard); err != nil {
		t.Fatalf("bench -procs 2: %v\n%s", err, two.String())
	}
	if !strings.Contains(two.String(), "receiver in a second process") || !strings.Contains(two.String(), "gtudp") {
		t.Errorf("bench -procs 2 output:\n%s", two.String())
	}
	for _, want := range []string{"bare exchange", "gtudp", "gtudp, relay, 0% loss", "gtudp, relay, 10% loss", "vs ceiling", "1.00x"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("bench output lacks %q:\n%s", want, out.String())
		}
	}
}

// An echo whose client vanished does not hold the interrupt for a whole
// Lifetime: it drains for -drain and exits cleanly.
func TestEcho_ClientGoneDrainBounded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	echoCtx, stopEcho := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	echoDone := make(chan error, 1)
	go func() {
		echoDone <- run(echoCtx, []string{"echo", "-listen", "127.0.0.1:0", "-drain", "300ms"}, nil, pw, io.Discard)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	lines.Scan()
	addr, _ := strings.CutPrefix(lines.Text(), "echoing on ")
	go func() { // keep the pipe flowing
		for lines.Scan() {
		}
	}()
	// A plain socket sends one DATA and never answers the echo.
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	to, _ := net.ResolveUDPAddr("udp4", addr)
	f := wire.DefaultFormat()
	c.WriteTo(f.Append(nil, wire.Packet{Kind: wire.Data, ID: wire.ID{7}, Payload: []byte("bye")}), to)
	buf := make([]byte, 64)
	for { // the RECV, then the echoed DATA
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		if p, _ := f.Decode(buf[:n]); p.Kind == wire.Data {
			break
		}
	}
	c.Close()
	stopEcho()
	if err := <-echoDone; err != nil {
		t.Fatalf("echo: %v", err)
	}
}

func TestListen_PrintsMessagesAndRaw(t *testing.T) {
	// A foreign datagram with a terminal escape sequence (clear screen)
	// is printed escaped, unless -verbatim asks for its bytes.
	for _, tc := range []struct {
		flags []string
		want  []string
	}{
		{nil, []string{`: "reliable\x1b[2J"`, ` [raw]: "plain\x1b[2J"`}},
		{[]string{"-verbatim"}, []string{": reliable\x1b[2J", " [raw]: plain\x1b[2J"}},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		lctx, stop := context.WithCancel(ctx)
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		go func() {
			done <- run(lctx, append([]string{"listen", "-listen", "127.0.0.1:0", "-raw"}, tc.flags...), nil, pw, io.Discard)
			pw.Close()
		}()
		lines := bufio.NewScanner(pr)
		lines.Scan()
		addr, ok := strings.CutPrefix(lines.Text(), "listening on ")
		if !ok {
			t.Fatalf("first line %q", lines.Text())
		}
		if err := run(ctx, []string{"send", addr, "reliable\x1b[2J"}, nil, io.Discard, io.Discard); err != nil {
			t.Fatal(err)
		}
		c, err := net.Dial("udp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("plain\x1b[2J"))
		c.Close()
		for _, w := range tc.want {
			if !lines.Scan() {
				t.Fatalf("listen %q ended before %q", tc.flags, w)
			}
			if !strings.HasSuffix(lines.Text(), w) {
				t.Errorf("listen %q printed %q, want a line ending %q", tc.flags, lines.Text(), w)
			}
		}
		go func() {
			for lines.Scan() {
			}
		}()
		stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		cancel()
	}
}
