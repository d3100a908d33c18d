package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/gtudp/gtudp"
)

// closeAndReport closes ep, letting the exchanges under way finish for up
// to drain or until the next interrupt (so a dead peer cannot hold the tool
// for a whole Lifetime), and prints its counters to w. A drain that follows
// an interrupt, or lasts longer than a moment, says on stderr what it waits
// for: waitingFor if not empty, else the exchanges ep's Stats show.
func closeAndReport(ctx context.Context, ep *gtudp.Endpoint, w, stderr io.Writer, drain time.Duration, waitingFor string) error {
	stderr = &lockedWriter{w: stderr}
	announce := func() {
		what := waitingFor
		if st := ep.Stats(); what == "" && st.InFlight+st.Open > 0 {
			what = fmt.Sprintf("%d exchange%s under way (%d sent awaiting RECV, %d received awaiting ACK)",
				st.InFlight+st.Open, plural(st.InFlight+st.Open), st.InFlight, st.Open)
		}
		if what == "" {
			return
		}
		why, again := "", ""
		if ctx.Err() != nil {
			why, again = "interrupted: ", " again"
		}
		fmt.Fprintf(stderr, "gtudp: %swaiting up to %v for %s; interrupt%s to quit now\n", why, drain, what, again)
	}
	if ctx.Err() != nil {
		announce()
	} else {
		// A drain that ends at once (the usual last ACK on its way)
		// is not worth a line.
		t := time.AfterFunc(announceAfter, announce)
		defer t.Stop()
	}
	dctx, cancel := drainContext(ctx, drain)
	defer cancel()
	err := ep.Close(dctx)
	st := ep.Stats()
	fmt.Fprintf(w, "stats: sent %d, confirmed %d, failed %d, delivered %d, duplicates suppressed %d, DATA re-sent %d, RECV re-sent %d, foreign %d, peers %d\n",
		st.Sent, st.Confirmed, st.Failed, st.Delivered, st.Duplicates, st.DataResent, st.RecvResent, st.Foreign, st.PeersStarted)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		// Peers that went away leave exchanges that would run to their
		// Lifetime; the tool does not wait that long. Each of them got
		// its failure receipt.
		fmt.Fprintf(w, "closed after waiting %v: the exchanges still under way were abandoned\n", drain)
		return nil
	case errors.Is(err, context.Canceled):
		fmt.Fprintf(stderr, "gtudp: %v\n", context.Cause(dctx))
		return nil
	}
	return err
}

// announceAfter is how long a drain runs unannounced when nothing
// interrupted it.
const announceAfter = 250 * time.Millisecond

// lockedWriter serialises writes from the goroutines of a command: the
// io.Writer a command is given need not be safe for concurrent use.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// plural is the "s" of a count other than one.
func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func runEcho(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	stdout, stderr = &lockedWriter{w: stdout}, &lockedWriter{w: stderr}
	var c common
	fs := newFlagSet("echo", "[flags]",
		"Sends every message received back to its sender, reliably (raw datagrams go\n"+
			"back raw with -passthrough), like the original's echo_server.py. Runs until\n"+
			"interrupted, then drains pending exchanges and prints its counters.",
		"gtudp echo -listen 127.0.0.1:4323", stderr)
	listen := fs.String("listen", "127.0.0.1:4323", "address to listen on")
	drain := fs.Duration("drain", 10*time.Second, "on interrupt, how long to let pending exchanges finish (a second interrupt quits at once)")
	c.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := c.config(stderr)
	if err != nil {
		return err
	}
	ep, err := openEndpoint("udp", *listen, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "echoing on %v\n", ep.LocalAddr())
	go func() {
		for r := range ep.Receipts() {
			if r.Err != nil {
				fmt.Fprintf(stderr, "echo to %v failed: %v\n", r.Addr, r.Err)
			}
		}
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range ep.Inbox() {
			fmt.Fprintf(stdout, "%v: %q\n", m.Addr, m.Data)
			if m.Raw {
				if err := ep.SendRaw(m.Addr, m.Data); err != nil {
					fmt.Fprintf(stderr, "raw echo to %v: %v\n", m.Addr, err)
				}
				continue
			}
			select {
			case ep.Outbox() <- gtudp.Message{Addr: m.Addr, Data: m.Data}:
			case <-ep.Done():
			}
		}
	}()
	<-ctx.Done()
	fmt.Fprintln(stdout, "closing: draining pending exchanges")
	err = closeAndReport(ctx, ep, stdout, stderr, *drain, "")
	<-done
	return err
}

func runListen(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	stdout, stderr = &lockedWriter{w: stdout}, &lockedWriter{w: stderr}
	var c common
	fs := newFlagSet("listen", "[flags]",
		"Prints every message received, with its source address, until interrupted.\n"+
			"With -raw, datagrams that are not gtUDP are printed too, marked raw.\n"+
			"Payloads are printed quoted and escaped, as Go's %q does: any host can send\n"+
			"you a datagram, and its bytes must not drive your terminal. -verbatim\n"+
			"prints them as they are.",
		"gtudp listen -listen 127.0.0.1:4323 -raw", stderr)
	listen := fs.String("listen", "127.0.0.1:4323", "address to listen on")
	raw := fs.Bool("raw", false, "show foreign datagrams too (turns on -passthrough)")
	verbatim := fs.Bool("verbatim", false, "print payloads byte for byte, terminal escape sequences included (default: quoted and escaped)")
	drain := fs.Duration("drain", 10*time.Second, "on interrupt, how long to let pending exchanges finish (a second interrupt quits at once)")
	c.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	c.passthrough = c.passthrough || *raw
	cfg, err := c.config(stderr)
	if err != nil {
		return err
	}
	ep, err := openEndpoint("udp", *listen, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "listening on %v\n", ep.LocalAddr())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range ep.Inbox() {
			kind := ""
			if m.Raw {
				kind = " [raw]"
			}
			if *verbatim {
				fmt.Fprintf(stdout, "%v%s: %s\n", m.Addr, kind, m.Data)
				continue
			}
			fmt.Fprintf(stdout, "%v%s: %q\n", m.Addr, kind, m.Data)
		}
	}()
	<-ctx.Done()
	err = closeAndReport(ctx, ep, stdout, stderr, *drain, "")
	<-done
	return err
}
