package peer

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/google/uuid"
)

// Delivery is a received message on its way to the application.
type Delivery struct {
	// Addr is the true source.
	Addr netip.AddrPort
	// Data is the payload: a copy the application will own.
	Data []byte
	// Raw marks a datagram that is not gtUDP, delivered with passthrough
	// on by the socket reader; peers never deliver raw ones.
	Raw bool
}

// Outgoing is a message handed to a peer to send reliably.
type Outgoing struct {
	ID   uuid.UUID
	Data []byte
	// Done receives the message's receipt; it must have room for it
	// (capacity 1). If nil, the receipt goes to the Outlet, unless
	// NoReceipt is set: then the outcome is only counted.
	Done      chan<- Receipt
	NoReceipt bool
	// Queued says the message holds one of the endpoint's Outbox places
	// until it goes out (or ends unsent): the peer gives it back through
	// Options.Dequeued.
	Queued bool
}

// Receipt is the outcome of one message sent reliably.
type Receipt struct {
	ID   uuid.UUID
	Addr netip.AddrPort
	// Data is the message's payload, handed back to its owner.
	Data []byte
	// Raw: a raw datagram's receipt (never a peer's).
	Raw bool
	// Err is nil if the peer answered RECV; otherwise why the peer
	// stopped trying.
	Err error
	// Attempts is the number of times the DATA was transmitted.
	Attempts int
	// RTT is the time from the first transmission to the RECV (zero on
	// failure).
	RTT time.Duration
}

// Outcome is a finished outgoing message: its receipt and where it goes
// (Done, or the Outlet, or nowhere if NoReceipt).
type Outcome struct {
	Receipt   Receipt
	Done      chan<- Receipt
	NoReceipt bool
}

// Errors of the protocol; package gtudp re-exports them.
var (
	// ErrUndelivered is matched by every *UndeliveredError.
	ErrUndelivered = errors.New("gtudp: message undelivered")
	// ErrClosed: the endpoint is closed or closing, or the peer shut
	// down; the message was not (or no longer) sent. It also matches
	// net.ErrClosed.
	ErrClosed error = closedError{}
	// ErrOutcomeUnknown is matched by the error of a message cancelled
	// (its Send's context ended) after its DATA went out: the peer may
	// have it. The error matches the context's error too.
	ErrOutcomeUnknown = errors.New("gtudp: outcome unknown")
	// ErrWindowFull: State.Send found Window messages in flight. The Peer
	// never lets this happen; the state refuses rather than grow.
	ErrWindowFull = errors.New("gtudp: window full")
)

type closedError struct{}

func (closedError) Error() string { return "gtudp: endpoint closed" }

// Is lets ErrClosed match net.ErrClosed, so code written for net.Conn
// recognises it.
func (closedError) Is(target error) bool { return target == net.ErrClosed }

// UndeliveredError is the error of a message the peer gave up on. It
// matches ErrUndelivered.
type UndeliveredError struct {
	Addr     netip.AddrPort
	ID       uuid.UUID
	Attempts int
	// Reason says why the peer stopped: the attempt limit, the lifetime,
	// or a failure of the peer's actor.
	Reason string
	// Err is the last error the socket gave writing the message, if any.
	Err error
}

func (e *UndeliveredError) Error() string {
	msg := fmt.Sprintf("gtudp: message %v to %v undelivered after %d attempts: %s", e.ID, e.Addr, e.Attempts, e.Reason)
	if e.Err != nil {
		msg += " (last write: " + e.Err.Error() + ")"
	}
	return msg
}

// Unwrap returns the last write error, if any.
func (e *UndeliveredError) Unwrap() error { return e.Err }

// Is reports that e matches ErrUndelivered.
func (e *UndeliveredError) Is(target error) bool { return target == ErrUndelivered }

// Stats are the counters of one peer, cumulative over its life, and its
// gauges. Package gtudp documents each for its users (PeerStats).
type Stats struct {
	Addr netip.AddrPort

	Sent, Confirmed, Failed uint64
	Delivered               uint64
	DataResent, RecvResent  uint64
	Duplicates              uint64
	UnknownRecv, UnknownAck uint64
	Withheld                uint64
	RecvGaveUp              uint64
	DedupeEvicted           uint64
	Limited                 uint64
	PacketsIn, PacketsOut   uint64
	BytesIn, BytesOut       uint64
	WriteErrors             uint64
	Unhandled               uint64
	Lost, Spurious          uint64
	Timeouts                uint64
	Unfinished              uint64

	InFlight, Open, Remembered int
	SRTT, RTTVar, RTO          time.Duration
	MinRTT                     time.Duration
	Cwnd, InFlightBytes        int
	PacingRate                 int64
	Validated                  bool
	Extension                  bool
	ExtFallbacks               uint64
}

// Add adds the counters and gauges of o to s, for totals over many peers.
// Addr, SRTT, RTTVar, RTO and Validated are left as they are.
func (s *Stats) Add(o Stats) {
	s.Sent += o.Sent
	s.Confirmed += o.Confirmed
	s.Failed += o.Failed
	s.Delivered += o.Delivered
	s.DataResent += o.DataResent
	s.RecvResent += o.RecvResent
	s.Duplicates += o.Duplicates
	s.UnknownRecv += o.UnknownRecv
	s.UnknownAck += o.UnknownAck
	s.Withheld += o.Withheld
	s.RecvGaveUp += o.RecvGaveUp
	s.DedupeEvicted += o.DedupeEvicted
	s.Limited += o.Limited
	s.PacketsIn += o.PacketsIn
	s.PacketsOut += o.PacketsOut
	s.BytesIn += o.BytesIn
	s.BytesOut += o.BytesOut
	s.WriteErrors += o.WriteErrors
	s.Unhandled += o.Unhandled
	s.Lost += o.Lost
	s.Spurious += o.Spurious
	s.Timeouts += o.Timeouts
	s.Unfinished += o.Unfinished
	s.InFlightBytes += o.InFlightBytes
	s.ExtFallbacks += o.ExtFallbacks
	s.InFlight += o.InFlight
	s.Open += o.Open
	s.Remembered += o.Remembered
}

// cancelledError is the error of a message cancelled after its DATA went
// out: it unwraps to the cause (the context's error) and matches
// ErrOutcomeUnknown.
type cancelledError struct {
	cause    error
	attempts int
}

func (e *cancelledError) Error() string {
	return fmt.Sprintf("gtudp: cancelled after %d transmissions, outcome unknown (the peer may have the message): %v", e.attempts, e.cause)
}

func (e *cancelledError) Unwrap() error { return e.cause }

func (e *cancelledError) Is(target error) bool { return target == ErrOutcomeUnknown }
