package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/gtudp/gtudp"
)

// outgoing is one message of "gtudp send" and how its outcome names it.
type outgoing struct {
	label string
	data  []byte
}

func runSend(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var c common
	fs := newFlagSet("send", "[flags] ADDR [MESSAGE...]",
		"Sends each MESSAGE (or, with none, each line of stdin) to ADDR reliably and\n"+
			"prints its outcome: delivered (with RTT and attempts) or why not. With -wait,\n"+
			"then prints replies for that long, like the original's echo_client.py.\n"+
			"With -file, sends the whole file (or stdin, for -) as one message.\n"+
			"Flags go before ADDR; after it, -- makes the rest messages even if they\n"+
			"look like flags. An interrupt (Ctrl-C, SIGTERM) stops sending and waits\n"+
			"up to -drain for the outcomes of messages in flight; a second one quits\n"+
			"at once. Exit status 0 only if every message was delivered.",
		"gtudp send -wait 1s 127.0.0.1:4323 hello world", stderr)
	listen := fs.String("listen", ":0", "local address to send from")
	wait := fs.Duration("wait", 0, "after the last outcome, print replies for this long")
	file := fs.String("file", "", "send the whole of this `file` as one message (- for stdin)")
	drain := fs.Duration("drain", time.Second, "on interrupt, and at the end, how long to wait for exchanges under way (a second interrupt quits at once)")
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
	texts, err := messageArgs(fs, args)
	if err != nil {
		return err
	}
	var msgs []outgoing
	for _, t := range texts {
		msgs = append(msgs, outgoing{label: fmt.Sprintf("%q", t), data: []byte(t)})
	}
	if *file != "" {
		if len(msgs) > 0 {
			return usageError("send -file takes no MESSAGE arguments, got %q", texts)
		}
		m, err := readFileMessage(*file, stdin)
		if err != nil {
			return err
		}
		msgs = append(msgs, m)
	}
	if len(msgs) == 0 {
		sc := bufio.NewScanner(stdin)
		sc.Buffer(make([]byte, 64<<10), 64<<10)
		for sc.Scan() {
			msgs = append(msgs, outgoing{label: fmt.Sprintf("%q", sc.Text()), data: []byte(sc.Text())})
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
	replies := make(chan gtudp.Message, 1024)
	go func() {
		for m := range ep.Inbox() {
			select {
			case replies <- m:
			default: // nobody will print this many; the tool is not a sink
			}
		}
	}()

	// Hand the messages to the Outbox, until they are all taken or the
	// user interrupts; handed tells how many were.
	handed := make(chan int, 1)
	label := make(map[uuid.UUID]string, len(msgs))
	ids := make([]uuid.UUID, len(msgs))
	for i, m := range msgs {
		ids[i] = uuid.New()
		label[ids[i]] = m.label
	}
	go func() {
		n := 0
		defer func() { handed <- n }()
		for i, m := range msgs {
			select {
			case ep.Outbox() <- gtudp.Message{ID: ids[i], Addr: to, Data: m.data}:
				n++
			case <-ctx.Done():
				return
			}
		}
	}()

	// Print each outcome. Every message handed over gets one, also after
	// an interrupt: closing the endpoint fails what is left.
	failed, outcomes := 0, 0
	report := func(r gtudp.Receipt) {
		outcomes++
		switch {
		case r.Err == nil:
			fmt.Fprintf(stdout, "delivered %s to %v in %v (%d attempt%s)\n", label[r.ID], r.Addr, r.RTT.Round(time.Microsecond), r.Attempts, plural(r.Attempts))
		case errors.Is(r.Err, gtudp.ErrTooLarge):
			failed++
			fmt.Fprintf(stdout, "REFUSED %s to %v: %v\n", label[r.ID], r.Addr, errorText(r.Err))
		default:
			failed++
			fmt.Fprintf(stdout, "FAILED %s to %v: %v\n", label[r.ID], r.Addr, errorText(r.Err))
		}
	}
	interrupted := false
collect:
	for outcomes < len(msgs) {
		select {
		case r := <-ep.Receipts():
			report(r)
		case <-ctx.Done():
			interrupted = true
			break collect
		}
	}
	n := <-handed
	if !interrupted && *wait > 0 {
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

	// Close, letting what is under way finish for up to -drain, and print
	// the outcomes that closing brings (ErrClosed for the messages it
	// abandons): Receipts is closed once Close has finished.
	waitingFor := ""
	if n > outcomes {
		waitingFor = fmt.Sprintf("the outcome of %d message%s in flight", n-outcomes, plural(n-outcomes))
	}
	closed := make(chan error, 1)
	go func() {
		closed <- closeAndReport(ctx, ep, io.Discard, stderr, *drain, waitingFor)
	}()
	for r := range ep.Receipts() {
		report(r)
	}
	if err := <-closed; err != nil {
		return err
	}
	switch {
	case outcomes < n:
		return fmt.Errorf("%d of %d messages sent got no outcome: a bug in gtudp", n-outcomes, n)
	case n < len(msgs):
		return fmt.Errorf("interrupted: %d of %d messages not sent, %d not delivered", len(msgs)-n, len(msgs), failed)
	case failed > 0:
		return fmt.Errorf("%d of %d messages not delivered", failed, len(msgs))
	}
	return nil
}

// readFileMessage reads the message of -file: the whole file, or stdin
// for "-". Whether it fits in one message is the endpoint's to say.
func readFileMessage(name string, stdin io.Reader) (outgoing, error) {
	var data []byte
	var err error
	label := "stdin"
	if name == "-" {
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(name)
		label = fmt.Sprintf("file %q", name)
	}
	if err != nil {
		return outgoing{}, fmt.Errorf("-file: %w", err)
	}
	return outgoing{label: fmt.Sprintf("%s (%d bytes)", label, len(data)), data: data}, nil
}

// messageArgs returns the messages among the arguments after ADDR. An
// argument there that names a flag of fs is refused: the flag package stops
// at the first argument that is not a flag, so "send ADDR -lifetime 1s x"
// would send "-lifetime" and "1s" as messages. "--" before ADDR, or among
// the messages, makes what follows it messages whatever they look like.
func messageArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	rest := fs.Args()
	addr, msgs := rest[0], rest[1:]
	if i := len(args) - len(rest) - 1; i >= 0 && args[i] == "--" {
		return msgs, nil
	}
	for i, a := range msgs {
		if a == "--" {
			return append(msgs[:i:i], msgs[i+1:]...), nil
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		if !strings.HasPrefix(a, "-") || name == "" {
			continue
		}
		if fs.Lookup(name) != nil || name == "h" || name == "help" {
			return nil, usageError("flag %s after the address: put flags before %s, or write -- before it to send it as a message", a, addr)
		}
	}
	return msgs, nil
}
