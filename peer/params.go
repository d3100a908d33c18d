package peer

import (
	"net/netip"
	"time"

	"github.com/gtudp/gtudp/wire"
)

// Params are the protocol settings of a peer, resolved: every field holds
// the value to use. Package gtudp declares each setting once, on its
// Config, with its default and the reason for it; it validates them and
// hands the result here. A State or Peer trusts its Params: a zero or
// negative field is a programming error, not a setting.
type Params struct {
	// Format is the wire format the peer encodes with.
	Format wire.Format

	// InitialRTO, MinRTO and MaxRTO bound the retransmission timeout
	// (RFC 6298).
	InitialRTO, MinRTO, MaxRTO time.Duration
	// MaxAttempts is how many times a DATA is transmitted before its
	// message fails; Lifetime the longest a message is tried.
	MaxAttempts int
	Lifetime    time.Duration
	// RecvAttempts is how many times a RECV is transmitted while waiting
	// for its ACK.
	RecvAttempts int
	// DedupeHorizon is how long a finished exchange is remembered.
	DedupeHorizon time.Duration

	// Window caps our messages in flight; RecvWindow the received
	// exchanges kept open; HoldLimit the deliveries held while the Inbox
	// is full; DedupeLimit the finished ids remembered.
	Window, RecvWindow, HoldLimit, DedupeLimit int

	// Budget is the endpoint's budget of bytes for payloads it holds,
	// shared by all its peers (not a setting: state); nil, no limit.
	Budget *Budget
	// ReadBuffers takes back the socket reader's buffers lent to peers
	// (Inbound.Lent); state too, shared with the reader.
	ReadBuffers *Buffers
	// Spares holds the buffers of received messages the application
	// gave back, for messages in fragments to be received into; state,
	// shared with the application. Nil keeps none.
	Spares *Spares

	// The extension (see ext.go) is on when Format.Ext is set.
	// DatagramSize is the largest EXT datagram, LoopbackDatagramSize the
	// largest to a peer on a loopback address; Incarnation the
	// endpoint's, random, in every trailer and EXT header.
	DatagramSize, LoopbackDatagramSize int
	Incarnation                        uint64
	// MaxMessage is the largest message sent or received; one larger
	// than fits in an EXT DATA record goes in fragments, to a peer that
	// speaks the extension.
	MaxMessage int
}

// datagramSize returns the largest EXT datagram to addr.
func (p *Params) datagramSize(addr netip.AddrPort) int {
	if addr.Addr().IsLoopback() && p.LoopbackDatagramSize > 0 {
		return p.LoopbackDatagramSize
	}
	return p.DatagramSize
}

// headerLen is the length of a packet with no payload under p's format.
func (p *Params) headerLen() int { return p.Format.HeaderLen() }
