package peer

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/google/uuid"
)

// Message is a datagram: one to send, or one handed to the application.
type Message struct {
	// ID identifies a message to send; the endpoint assigns a random
	// UUID when it is zero. Received messages have a zero ID: the wire
	// carries only the sender's 4-byte exchange id.
	ID uuid.UUID
	// Addr is the remote address: the destination of a message to send,
	// the true source of a received one. IPv4-mapped IPv6 addresses are
	// unmapped.
	Addr netip.AddrPort
	// Data is the payload. A received message's Data is a fresh copy the
	// application owns. A message to send is kept by the endpoint until its
	// outcome is known: the caller must not modify Data before then.
	Data []byte
	// Raw marks a datagram outside the gtUDP protocol: a foreign datagram
	// received with passthrough on, or a datagram to send without framing
	// and without any delivery guarantee.
	Raw bool
}

// Receipt is the outcome of one message sent reliably.
type Receipt struct {
	// ID is the message's ID.
	ID uuid.UUID
	// Addr is the destination.
	Addr netip.AddrPort
	// Err is nil if the peer answered RECV: the message was delivered to
	// it. Otherwise it says why the endpoint stopped trying; it matches
	// ErrUndelivered or ErrClosed, or is the context error of a Send.
	Err error
	// Attempts is the number of times the DATA was transmitted.
	Attempts int
	// RTT is the time from the first transmission to the RECV (zero on
	// failure).
	RTT time.Duration
}

// Outgoing is a message handed to a peer to send reliably.
type Outgoing struct {
	ID   uuid.UUID
	Data []byte
	// Done receives the message's receipt; it must have room for it
	// (capacity 1). If nil, the receipt goes to the endpoint's Receipts.
	// The state machine only carries it along.
	Done chan<- Receipt
}

// Outcome is a finished outgoing message: its receipt and where it goes.
type Outcome struct {
	Receipt Receipt
	Done    chan<- Receipt
}

// Errors of the protocol, re-exported by package gtudp.
var (
	// ErrUndelivered: the peer never answered RECV within the attempt
	// limit or the message lifetime. Receipts carry an *UndeliveredError
	// that matches it.
	ErrUndelivered = errors.New("gtudp: message undelivered")
	// ErrClosed: the endpoint is closed or closing, or the peer shut
	// down; the message was not (or no longer) sent. It also matches
	// net.ErrClosed.
	ErrClosed error = closedError{}
	// ErrWindowFull: the peer already has Window messages in flight. The
	// actor never lets this happen; the state machine refuses rather than
	// grow without bound.
	ErrWindowFull = errors.New("gtudp: window full")
)

type closedError struct{}

func (closedError) Error() string { return "gtudp: endpoint closed" }

// Is lets ErrClosed match net.ErrClosed, so code written for net.Conn
// recognises it.
func (closedError) Is(target error) bool { return target == net.ErrClosed }

// UndeliveredError is the error of a message the endpoint gave up on. It
// matches ErrUndelivered.
type UndeliveredError struct {
	Addr     netip.AddrPort
	ID       uuid.UUID
	Attempts int
	// Reason says why the endpoint stopped: the attempt limit, the
	// lifetime, or a failure of the peer's actor.
	Reason string
}

func (e *UndeliveredError) Error() string {
	return fmt.Sprintf("gtudp: message %v to %v undelivered after %d attempts: %s", e.ID, e.Addr, e.Attempts, e.Reason)
}

// Is reports that e matches ErrUndelivered.
func (e *UndeliveredError) Is(target error) bool { return target == ErrUndelivered }

// Stats are the counters of one peer. Counts are cumulative over the
// peer's life.
type Stats struct {
	Addr netip.AddrPort

	// Sent counts messages handed to the peer; Confirmed those the peer
	// answered RECV; Failed those that ended with a failure receipt.
	Sent, Confirmed, Failed uint64
	// Delivered counts received messages handed to the Inbox.
	Delivered uint64
	// DataResent and RecvResent count re-transmissions.
	DataResent, RecvResent uint64
	// Duplicates counts DATA received for a message already delivered
	// (or waiting for room in the Inbox): not delivered again.
	Duplicates uint64
	// UnknownRecv counts RECV with no matching message (answered ACK, as
	// the original does); UnknownAck counts ignored ACK.
	UnknownRecv, UnknownAck uint64
	// Withheld counts new DATA not answered because the Inbox and the
	// hold queue were full, or RecvWindow or the dedupe window was: the
	// sender re-sends later.
	Withheld uint64
	// RecvGaveUp counts exchanges whose RECV was never ACKed.
	RecvGaveUp uint64
	// DedupeEvicted counts finished ids forgotten early at DedupeLimit.
	DedupeEvicted uint64
	// Limited counts packets not sent because the peer has not proven its
	// address and they would exceed 3× the bytes received from it.
	Limited uint64
	// Packets and bytes in and out.
	PacketsIn, PacketsOut, BytesIn, BytesOut uint64
	// WriteErrors counts packets the socket refused to send; the protocol
	// re-sends them like lost ones.
	WriteErrors uint64

	// InFlight is the messages awaiting RECV (window use); Open is the
	// received exchanges not finished; Remembered is the dedupe window.
	InFlight, Open, Remembered int
	// SRTT, RTTVar and RTO are the RFC 6298 estimator's state.
	SRTT, RTTVar, RTO time.Duration
	// Validated: the peer has answered one of our DATA or RECV.
	Validated bool
}

// Add adds the counters of o to s, for totals over many peers. The gauges
// (InFlight, Open, Remembered) add up too; Addr, SRTT, RTTVar, RTO and
// Validated are left as they are.
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
	s.InFlight += o.InFlight
	s.Open += o.Open
	s.Remembered += o.Remembered
}
