package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gtudp/gtudp"
)

// deadPeer is a UDP socket that takes DATA and never answers: messages to
// it stay in flight. next waits for the next datagram (a minute at most,
// so a broken test ends).
type deadPeer struct{ c *net.UDPConn }

func newDeadPeer(t *testing.T) deadPeer {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return deadPeer{c}
}

func (d deadPeer) addr() string { return d.c.LocalAddr().String() }

func (d deadPeer) next(t *testing.T) {
	t.Helper()
	d.c.SetReadDeadline(time.Now().Add(time.Minute))
	if _, _, err := d.c.ReadFrom(make([]byte, 1<<16)); err != nil {
		t.Fatalf("no datagram reached the dead peer: %v", err)
	}
}

// The first interrupt stops sending and drains, saying so on stderr; the
// second ends the drain at once (the drain here would last a minute).
func TestSend_InterruptDrainsThenQuits(t *testing.T) {
	dead := newDeadPeer(t)
	ctx, intr := newInterrupter(context.Background())
	errR, errW := io.Pipe()
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"send", "-lifetime", "1h", "-drain", "1m", dead.addr(), "x"}, nil, &out, errW)
		errW.Close()
	}()
	dead.next(t) // the DATA is in flight
	intr.interrupt()
	stderr := bufio.NewScanner(errR)
	if !stderr.Scan() || !strings.Contains(stderr.Text(), "interrupted: waiting up to 1m0s for the outcome of 1 message in flight") ||
		!strings.Contains(stderr.Text(), "interrupt again to quit now") {
		t.Fatalf("after an interrupt, stderr says %q; want the drain announced", stderr.Text())
	}
	intr.interrupt()
	var rest strings.Builder
	for stderr.Scan() {
		rest.WriteString(stderr.Text() + "\n")
	}
	err := <-done
	if code := exitCode(err, io.Discard); code != 1 {
		t.Errorf("exit status %d (%v), want 1", code, err)
	}
	if !strings.Contains(rest.String(), "interrupted again: quitting without waiting") {
		t.Errorf("after a second interrupt, stderr says %q", rest.String())
	}
	if !strings.Contains(out.String(), `FAILED "x"`) {
		t.Errorf("the message in flight has no outcome:\n%s", out.String())
	}
}

func TestEchoFilter(t *testing.T) {
	var f echoFilter
	t0 := time.Unix(1000, 0)
	for _, tc := range []struct {
		after time.Duration
		want  bool
	}{
		{0, true},                        // the first
		{time.Millisecond, false},        // timeout(1)'s copy to the process group
		{echoWindow - 1, false},          // still the same
		{echoWindow, true},               // a second Ctrl-C
		{echoWindow + time.Second, true}, // and a third
	} {
		if got := f.count(t0.Add(tc.after)); got != tc.want {
			t.Errorf("signal at +%v counted %v, want %v", tc.after, got, tc.want)
		}
	}
	if f.n != 3 {
		t.Errorf("%d interrupts counted, want 3", f.n)
	}
}

// A real SIGTERM (what timeout(1) sends) starts the drain, which then ends
// on its own: the command says so and exits with the message's outcome.
func TestMain_SIGTERMDrains(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGTERM to send on Windows")
	}
	dead := newDeadPeer(t)
	cmd := exec.Command(os.Args[0], "send", "-lifetime", "1h", "-drain", "200ms", dead.addr(), "x")
	cmd.Env = append(os.Environ(), "GTUDP_TEST_AS_COMMAND=1")
	var out bytes.Buffer
	cmd.Stdout = &out
	errR, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	dead.next(t)
	cmd.Process.Signal(syscall.SIGTERM)
	stderr, _ := io.ReadAll(errR)
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("exit %v, want status 1", err)
	}
	if !strings.Contains(string(stderr), "interrupted: waiting up to 200ms for the outcome of 1 message in flight") || !strings.Contains(out.String(), `FAILED "x"`) {
		t.Errorf("after SIGTERM: stdout %q, stderr %q", out.String(), stderr)
	}
}

// Flags after the address are refused, not sent as messages; after --
// they are messages.
func TestSend_FlagAfterAddress(t *testing.T) {
	ctx := context.Background()
	var stderr bytes.Buffer
	err := run(ctx, []string{"send", "127.0.0.1:9", "hello", "-lifetime", "1s"}, nil, io.Discard, io.Discard)
	exitCode(err, &stderr)
	if code := exitCode(err, io.Discard); code != 2 || !strings.Contains(stderr.String(), "flag -lifetime after the address") {
		t.Errorf("send ADDR hello -lifetime 1s: exit %d, %q; want 2 and a hint", code, stderr.String())
	}
	ep, err := gtudp.Listen("udp4", "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close(ctx)
	for _, args := range [][]string{
		{"send", ep.LocalAddr().String(), "--", "-lifetime"},
		{"send", "--", ep.LocalAddr().String(), "-lifetime"},
	} {
		if err := run(ctx, args, nil, io.Discard, io.Discard); err != nil {
			t.Fatalf("gtudp %q: %v", args, err)
		}
		if m := <-ep.Inbox(); string(m.Data) != "-lifetime" {
			t.Errorf("gtudp %q delivered %q, want \"-lifetime\"", args, m.Data)
		}
	}
}
