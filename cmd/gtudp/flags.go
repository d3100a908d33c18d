package main

import (
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/gtudp/gtudp"
)

// common holds the flags every command shares: the wire format, logging,
// passthrough and the protocol's timeouts.
type common struct {
	magic, types string
	debug        bool
	passthrough  bool
	rtoInitial   time.Duration
	rtoMin       time.Duration
	rtoMax       time.Duration
	attempts     int
	lifetime     time.Duration
	window       int
	batch        int
	noExt        bool
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.magic, "magic", "", "magic prefix in hex, e.g. `6774554450` (default none, as the original)")
	fs.StringVar(&c.types, "types", "1d,5f,ae", "DATA,RECV,ACK type identifiers in hex, of equal length")
	fs.BoolVar(&c.debug, "debug", false, "log every packet IN and OUT (kind, id, size) to stderr, as the original's debug mode")
	fs.BoolVar(&c.passthrough, "passthrough", false, "accept datagrams that are not gtUDP as raw messages")
	fs.DurationVar(&c.rtoInitial, "rto-initial", 0, "re-send timeout before the first RTT sample (default 250ms)")
	fs.DurationVar(&c.rtoMin, "rto-min", 0, "smallest re-send timeout (default 10ms)")
	fs.DurationVar(&c.rtoMax, "rto-max", 0, "largest re-send timeout (default 2s)")
	fs.IntVar(&c.attempts, "attempts", 0, "DATA transmissions before a message fails (default 20)")
	fs.DurationVar(&c.lifetime, "lifetime", 0, "longest a message is tried (default 30s)")
	fs.IntVar(&c.window, "window", 0, "messages in flight per peer (default 1024)")
	fs.IntVar(&c.batch, "batch", 16, "datagrams per system call on Linux (recvmmsg/sendmmsg); 1 reads and writes one at a time")
	fs.BoolVar(&c.noExt, "no-extension", false, "speak exactly the original protocol: no trailer, no EXT datagrams, nothing larger than one datagram")
}

// config turns the flags into a gtudp.Config, or says which flag is wrong.
func (c *common) config(stderr io.Writer) (*gtudp.Config, error) {
	f, err := parseFormat(c.magic, c.types)
	if err != nil {
		return nil, err
	}
	cfg := &gtudp.Config{
		Format:      f,
		Passthrough: c.passthrough,
		InitialRTO:  c.rtoInitial, MinRTO: c.rtoMin, MaxRTO: c.rtoMax,
		MaxAttempts: c.attempts, Lifetime: c.lifetime, Window: c.window,
		Batch: c.batch, NoExtension: c.noExt,
	}
	if c.debug {
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return cfg, nil
}

// openEndpoint opens an endpoint on address. A Config the library refuses is
// reported in the terms the user typed: flag names, not field names.
func openEndpoint(network, address string, cfg *gtudp.Config) (*gtudp.Endpoint, error) {
	ep, err := gtudp.Listen(network, address, cfg)
	var ce *gtudp.ConfigError
	if errors.As(err, &ce) {
		name := ce.Field
		if f, ok := configFlags[name]; ok {
			name = f
		}
		return nil, usageError("%s %s", name, configFieldRE.ReplaceAllStringFunc(ce.Reason, func(field string) string {
			return configFlags[field]
		}))
	}
	return ep, err
}

// configFlags maps each Config field that common.config sets from a flag
// to that flag. The library validates the Config and names its fields;
// repeating its checks here would drift from them.
var configFlags = map[string]string{
	"InitialRTO":  "-rto-initial",
	"MinRTO":      "-rto-min",
	"MaxRTO":      "-rto-max",
	"MaxAttempts": "-attempts",
	"Lifetime":    "-lifetime",
	"Window":      "-window",
	"Batch":       "-batch",
}

// configFieldRE matches the names of configFlags as whole words, so that
// "RecvWindow" stays itself.
var configFieldRE = regexp.MustCompile(`\b(InitialRTO|MinRTO|MaxRTO|MaxAttempts|Lifetime|Window|Batch)\b`)

// parseFormat reads -magic and -types.
func parseFormat(magic, types string) (gtudp.Format, error) {
	var f gtudp.Format
	if magic != "" {
		m, err := hex.DecodeString(magic)
		if err != nil {
			return f, usageError("-magic %q is not hex: %v", magic, err)
		}
		f.Magic = m
	}
	if types == "" {
		types = "1d,5f,ae"
	}
	parts := strings.Split(types, ",")
	if len(parts) != 3 {
		return f, usageError("-types %q: want three hex identifiers, DATA,RECV,ACK (e.g. 1d,5f,ae)", types)
	}
	var ids [3][]byte
	for i, p := range parts {
		b, err := hex.DecodeString(strings.TrimSpace(p))
		if err != nil {
			return f, usageError("-types %q: %q is not hex: %v", types, p, err)
		}
		ids[i] = b
	}
	f.Data, f.Recv, f.Ack = ids[0], ids[1], ids[2]
	if err := f.Validate(); err != nil {
		return f, usageError("-types/-magic: %v", err)
	}
	return f, nil
}

// resolve turns "host:port" into an address, looking the host up if needed.
func resolve(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	ua, err := net.ResolveUDPAddr("udp", s)
	if err != nil {
		return netip.AddrPort{}, usageError("address %q: %v", s, err)
	}
	return ua.AddrPort(), nil
}

// newFlagSet makes a command's flag set that reports errors instead of
// exiting, with a usage text that says what the command does and gives an
// example.
func newFlagSet(name, synopsis, about, example string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: gtudp %s %s\n\n%s\n\nExample:\n  %s\n\nFlags:\n", name, synopsis, about, example)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args, turning flag errors into usage errors (exit status 2).
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return &exitError{code: 2, err: err}
	}
	return nil
}
