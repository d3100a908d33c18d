package actor

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/google/uuid"
	"github.com/gtudp/gtudp/peer"
)

// Settings are an endpoint's settings, resolved: every field holds the
// value to use. Package gtudp declares each setting once, on its Config,
// with its default and the reason for it, validates them and hands the
// result to New.
type Settings struct {
	// Params are the protocol settings every peer shares.
	Params peer.Params
	// Clock is the source of time for every timer.
	Clock clock.Clock
	// Logger, if not nil, receives warnings and, at Debug level, one line
	// per packet.
	Logger *slog.Logger
	// MaxPeers caps the peers at once; IdleTimeout is how long a peer
	// with nothing pending or remembered stays.
	MaxPeers    int
	IdleTimeout time.Duration
	// SocketBuffer is the kernel buffer size asked for (≤ 0: leave it).
	SocketBuffer int
	// Batch is how many datagrams one system call reads or writes where
	// the platform batches (1: one per call).
	Batch int
	// Passthrough delivers datagrams that are not gtUDP as raw ones.
	Passthrough bool
	// OutboxQueue bounds the messages from the Outbox that peers keep
	// while their windows are full, over all peers.
	OutboxQueue int
	// DiscardReceipts: messages from the Outbox get no receipt.
	DiscardReceipts bool
}

// App is the application's side of an endpoint: where it hands deliveries
// and receipts (the Outlet) and where it takes the messages the
// application puts on its Outbox. Package gtudp provides it over the
// channels users see.
type App interface {
	peer.Outlet
	// Next waits for the next message on the Outbox and returns it, or
	// returns false once stop is closed.
	Next(stop <-chan struct{}) (Post, bool)
	// Closed is called once, when Close has ended every goroutine of the
	// endpoint: nothing is delivered or reported after it.
	Closed()
}

// Post is a message the application put on its Outbox.
type Post struct {
	ID   uuid.UUID
	Addr netip.AddrPort
	Data []byte
	// Raw: send it as one datagram, without framing or guarantee.
	Raw bool
}

// beforePacket, set by tests only (see export_test.go), runs in a peer's
// goroutine before it handles each packet: a panic in it is a bug in the
// peer. New reads it once.
var beforePacket func(netip.AddrPort, peer.Inbound)
