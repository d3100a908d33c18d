package actor

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/gtudp/gtudp/peer"
	"github.com/gtudp/gtudp/wire"
)

// Config configures an Endpoint. The zero value works: every zero field
// takes the default named in its comment. The protocol timers and limits
// are those of peer.Config, whose field comments give the reason for each
// default.
type Config struct {
	// Format is the wire format: magic prefix and type identifiers. If
	// its type identifiers are all empty, those of wire.DefaultFormat()
	// (the Python original's 0x1D, 0x5F, 0xAE) are used with its Magic;
	// the zero Format is the original's default format.
	Format wire.Format
	// Clock is the source of time for every timer. Default clock.New();
	// tests pass clock.NewMock().
	Clock clock.Clock
	// Logger receives warnings (write and read errors, recovered panics)
	// and, at Debug level, one line per packet IN and OUT with its kind,
	// id and size, as the original's debug mode prints. Nil logs nothing
	// and costs nothing.
	Logger *slog.Logger

	// InitialRTO, MinRTO and MaxRTO bound the adaptive retransmission
	// timeout (RFC 6298). Defaults 250 ms, 10 ms, 2 s.
	InitialRTO, MinRTO, MaxRTO time.Duration
	// MaxAttempts is how many times a DATA is sent before its message
	// fails with ErrUndelivered. Default 20.
	MaxAttempts int
	// Lifetime is the longest a message is tried, from its first
	// transmission. Default 30 s.
	Lifetime time.Duration
	// RecvAttempts is how many times a RECV is sent while waiting for its
	// ACK. Default 8.
	RecvAttempts int
	// DedupeHorizon is how long a finished exchange is remembered so that
	// a late duplicate is not delivered again. Default 40 s; keep it above
	// the senders' Lifetime.
	DedupeHorizon time.Duration
	// Window is the most messages in flight to one peer; beyond it Send
	// and the Outbox wait. Default 1024.
	Window int
	// RecvWindow, HoldLimit and DedupeLimit bound what one peer can make
	// the endpoint keep for it: open received exchanges (default 4096),
	// messages held while the Inbox is full (default 1024) and remembered
	// finished ids (default 16384). HoldLimit should not be below the
	// senders' Window, or their bursts cost re-sends.
	RecvWindow, HoldLimit, DedupeLimit int

	// InboxSize is the buffer of the Inbox channel. Default 256. When it
	// is full, peers hold deliveries back and withhold RECV: the senders
	// re-send later, nothing is lost.
	InboxSize int
	// ReceiptsSize is the buffer of the Receipts channel. Default 1024.
	// A receipt that finds it full waits in its peer, which hands it over
	// when there is room; past Window waiting receipts per peer, or when
	// the peer ends, receipts are dropped and counted in
	// Stats.ReceiptsDropped. The protocol never waits on Receipts.
	ReceiptsSize int
	// MaxPeers caps the peers (remote addresses with state) at once.
	// Default 1024. A DATA from a new address beyond it is not answered
	// and counted in Stats.PeerLimited; a send to a new address fails
	// with ErrPeerLimit.
	MaxPeers int
	// IdleTimeout is how long a peer with nothing pending and nothing
	// remembered stays before it exits. Default 10 s.
	IdleTimeout time.Duration
	// SocketBuffer is the receive and send buffer size asked of the
	// kernel for the socket, when the conn is a socket. Default 4 MiB; a
	// negative value leaves the system's default. If the kernel grants
	// less, the endpoint logs it once at Warn.
	SocketBuffer int
	// Batch is how many datagrams the endpoint reads from the socket per
	// system call (recvmmsg) when the conn is a *net.UDPConn on 64-bit
	// Linux; there, too, a peer writes what one wake-up produced with
	// sendmmsg, Batch datagrams per call. Default 16; 1 reads and writes
	// one datagram per call.
	// Each read slot is a 64 KiB buffer (a datagram must never be
	// truncated), so the default costs 1 MiB per endpoint; in return a
	// burst is read, and handed to its peer, in a sixteenth of the system
	// calls and wake-ups.
	Batch int
	// Passthrough delivers datagrams that are not gtUDP under Format to
	// the Inbox as Messages with Raw set, instead of dropping them.
	Passthrough bool

	// beforePacket, set by tests only, runs in a peer's goroutine before
	// it handles each packet: a panic in it is a bug in the peer.
	beforePacket func(netip.AddrPort, peer.Inbound)
}

// Defaults of Config, documented on its fields.
const (
	DefaultInboxSize    = 256
	DefaultReceiptsSize = 1024
	DefaultMaxPeers     = 1024
	DefaultBatch        = 16
	DefaultIdleTimeout  = 10 * time.Second
)

// settings is a Config with its defaults filled in and checked.
type settings struct {
	format      wire.Format
	clock       clock.Clock
	logger      *slog.Logger
	peer        peer.Config
	inboxSize   int
	receipts    int
	maxPeers    int
	idleTimeout time.Duration
	passthrough bool
	sockBuf     int
	batch       int
	hook        func(netip.AddrPort, peer.Inbound)
}

// resolve fills in the defaults of c (nil is the zero Config) and reports
// the first setting that cannot work, naming it.
func resolve(c *Config) (settings, error) {
	if c == nil {
		c = &Config{}
	}
	s := settings{
		clock:       c.Clock,
		logger:      c.Logger,
		inboxSize:   c.InboxSize,
		receipts:    c.ReceiptsSize,
		maxPeers:    c.MaxPeers,
		idleTimeout: c.IdleTimeout,
		passthrough: c.Passthrough,
		sockBuf:     c.SocketBuffer,
		batch:       c.Batch,
		hook:        c.beforePacket,
	}
	f := c.Format
	if len(f.Data) == 0 && len(f.Recv) == 0 && len(f.Ack) == 0 {
		d := wire.DefaultFormat()
		f.Data, f.Recv, f.Ack = d.Data, d.Recv, d.Ack
	}
	if err := f.Validate(); err != nil {
		return s, err
	}
	// A copy: the caller may reuse its Format's slices.
	s.format = f.Clone()
	if s.clock == nil {
		s.clock = clock.New()
	}
	for _, n := range []struct {
		name string
		v    *int
		def  int
	}{
		{"InboxSize", &s.inboxSize, DefaultInboxSize},
		{"ReceiptsSize", &s.receipts, DefaultReceiptsSize},
		{"MaxPeers", &s.maxPeers, DefaultMaxPeers},
		{"Batch", &s.batch, DefaultBatch},
	} {
		if *n.v < 0 {
			return s, fmt.Errorf("gtudp: invalid config: %s is %d, must not be negative", n.name, *n.v)
		}
		if *n.v == 0 {
			*n.v = n.def
		}
	}
	if s.sockBuf == 0 {
		s.sockBuf = DefaultSocketBuffer
	}
	if s.idleTimeout < 0 {
		return s, fmt.Errorf("gtudp: invalid config: IdleTimeout is %v, must not be negative", s.idleTimeout)
	}
	if s.idleTimeout == 0 {
		s.idleTimeout = DefaultIdleTimeout
	}
	pc := peer.Config{
		HeaderLen:  s.format.HeaderLen(),
		InitialRTO: c.InitialRTO, MinRTO: c.MinRTO, MaxRTO: c.MaxRTO,
		MaxAttempts: c.MaxAttempts, Lifetime: c.Lifetime, RecvAttempts: c.RecvAttempts,
		DedupeHorizon: c.DedupeHorizon,
		Window:        c.Window, RecvWindow: c.RecvWindow, HoldLimit: c.HoldLimit, DedupeLimit: c.DedupeLimit,
		// The reader answers every RECV (see dispatch).
		AckOnArrival: true,
	}
	// Negative values are not "unset": report them rather than let
	// WithDefaults keep them or quietly replace them.
	s.peer = pc.WithDefaults()
	if err := s.peer.Validate(); err != nil {
		return s, err
	}
	return s, nil
}
