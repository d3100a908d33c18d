package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/gtudp/gtudp"
)

// closeAndReport drains ep for up to drain (so a dead peer cannot hold the
// tool for a whole Lifetime) and prints its counters.
func closeAndReport(ep *gtudp.Endpoint, w io.Writer, drain time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	err := ep.Close(ctx)
	st := ep.Stats()
	fmt.Fprintf(w, "stats: sent %d, confirmed %d, failed %d, delivered %d, duplicates suppressed %d, DATA re-sent %d, RECV re-sent %d, foreign %d, peers %d\n",
		st.Sent, st.Confirmed, st.Failed, st.Delivered, st.Duplicates, st.DataResent, st.RecvResent, st.Foreign, st.PeersStarted)
	if errors.Is(err, context.DeadlineExceeded) {
		// Peers that went away leave exchanges that would run to their
		// Lifetime; the tool does not wait that long. Each of them got
		// its failure receipt.
		fmt.Fprintln(w, "closed without waiting for exchanges with peers that stopped answering")
		return nil
	}
	return err
}

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

func runEcho(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	stdout, stderr = &lockedWriter{w: stdout}, &lockedWriter{w: stderr}
	var c common
	fs := newFlagSet("echo", "[flags]",
		"Sends every message received back to its sender, reliably (raw datagrams go\n"+
			"back raw with -passthrough), like the original's echo_server.py. Runs until\n"+
			"interrupted, then drains pending exchanges and prints its counters.",
		"gtudp echo -listen 127.0.0.1:4323", stderr)
	listen := fs.String("listen", "127.0.0.1:4323", "address to listen on")
	drain := fs.Duration("drain", 10*time.Second, "on interrupt, how long to let pending exchanges finish")
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
	err = closeAndReport(ep, stdout, *drain)
	<-done
	return err
}

func runSend(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var c common
	fs := newFlagSet("send", "[flags] ADDR [MESSAGE...]",
		"Sends each MESSAGE (or, with none, each line of stdin) to ADDR reliably and\n"+
			"prints its outcome: delivered (with RTT and attempts) or why not. With -wait,\n"+
			"then prints replies for that long, like the original's echo_client.py.\n"+
			"Exit status 0 only if every message was delivered.",
		"gtudp send -wait 1s 127.0.0.1:4323 hello world", stderr)
	listen := fs.String("listen", ":0", "local address to send from")
	wait := fs.Duration("wait", 0, "after the last outcome, print replies for this long")
	c.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() < 1 {
		fs.Usage()
		return usageError("send needs an address")
	}
	to, err := resolve(fs.Arg(0))
	if err != nil {
		return err
	}
	msgs := fs.Args()[1:]
	if len(msgs) == 0 {
		sc := bufio.NewScanner(stdin)
		sc.Buffer(make([]byte, 64<<10), 64<<10)
		for sc.Scan() {
			msgs = append(msgs, sc.Text())
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("reading stdin: %w", err)
		}
	}
	cfg, err := c.config(stderr)
	if err != nil {
		return err
	}
	ep, err := openEndpoint("udp", *listen, cfg)
	if err != nil {
		return err
	}
	defer closeAndReport(ep, io.Discard, 10*time.Second)

	replies := make(chan gtudp.Message, 1024)
	go func() {
		for m := range ep.Inbox() {
			select {
			case replies <- m:
			default: // nobody will print this many; the tool is not a sink
			}
		}
	}()
	text := make(map[uuid.UUID]string, len(msgs))
	for _, m := range msgs {
		id := uuid.New()
		text[id] = m
		select {
		case ep.Outbox() <- gtudp.Message{ID: id, Addr: to, Data: []byte(m)}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	failed := 0
	for range msgs {
		var r gtudp.Receipt
		select {
		case r = <-ep.Receipts():
		case <-ctx.Done():
			return ctx.Err()
		}
		if r.Err != nil {
			failed++
			fmt.Fprintf(stdout, "FAILED %q to %v: %v\n", text[r.ID], r.Addr, r.Err)
			continue
		}
		fmt.Fprintf(stdout, "delivered %q to %v in %v (%d attempt%s)\n", text[r.ID], r.Addr, r.RTT.Round(time.Microsecond), r.Attempts, plural(r.Attempts))
	}
	if *wait > 0 {
		t := time.NewTimer(*wait)
		defer t.Stop()
	replies:
		for {
			select {
			case m := <-replies:
				fmt.Fprintf(stdout, "reply from %v: %q\n", m.Addr, m.Data)
			case <-t.C:
				break replies
			case <-ctx.Done():
				break replies
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d messages not delivered", failed, len(msgs))
	}
	return nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func runListen(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	stdout = &lockedWriter{w: stdout}
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
	drain := fs.Duration("drain", 10*time.Second, "on interrupt, how long to let pending exchanges finish")
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
	err = closeAndReport(ep, stdout, *drain)
	<-done
	return err
}
