package gtudp

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/google/uuid"
	"github.com/gtudp/gtudp/actor"
	"github.com/gtudp/gtudp/peer"
	"github.com/gtudp/gtudp/wire"
)

// Endpoint is a gtUDP endpoint on one socket: it sends messages reliably
// to any number of remote addresses and delivers what they send. See the
// package documentation for its lifecycle and guarantees.
//
// All its methods are safe for concurrent use.
type Endpoint struct {
	ep  *actor.Endpoint
	app *app
}

// Message is a datagram: one to send (on the Outbox), or one received (from
// the Inbox).
type Message struct {
	// ID identifies a message to send; the endpoint assigns a random
	// version-4 UUID when it is zero, and its Receipt carries it.
	// Received messages have a zero ID: the wire carries only the
	// sender's 4-byte exchange id.
	ID uuid.UUID
	// Addr is the remote address: the destination of a message to send,
	// the true source of a received one. IPv4-mapped IPv6 addresses are
	// unmapped, so one remote host is one address whatever the socket's
	// family.
	Addr netip.AddrPort
	// Data is the payload. A received message's Data is a fresh copy the
	// application owns. A message to send is read by the endpoint until
	// its outcome is known (its Receipt, or Send returning): do not
	// modify it before.
	Data []byte
	// Raw marks a datagram outside the gtUDP protocol: a foreign datagram
	// received with Config.Passthrough on, or one to send as is, without
	// framing and without any delivery guarantee.
	Raw bool
}

// Receipt is the outcome of one message put on the Outbox.
type Receipt struct {
	// Message is the message as it was sent: its ID (the one the endpoint
	// assigned, if it was zero), destination, Data and Raw. Data is the
	// caller's again: match the receipt to the message by it, by Addr or
	// by ID, and reuse the buffer.
	Message
	// Err is nil if the peer answered RECV: the message is in the peer's
	// Inbox. Otherwise it says why the endpoint stopped trying: an error
	// matching ErrUndelivered (an *UndeliveredError), ErrClosed,
	// ErrTooLarge or ErrPeerLimit. For a Raw message, nil says only that
	// the socket took the datagram.
	Err error
	// Attempts is the number of times the DATA was transmitted.
	Attempts int
	// RTT is the time from the first transmission to the arrival of the
	// RECV (zero on failure).
	RTT time.Duration
}

// Format is the wire format: the magic prefix and the three type
// identifiers (fields Magic, Data, Recv, Ack of package wire's Format,
// which also has the codec). Both ends of a conversation must use the
// same Format.
type Format = wire.Format

// DefaultFormat returns the Python original's format: type identifiers
// 0x1D (DATA), 0x5F (RECV), 0xAE (ACK) and no magic prefix.
func DefaultFormat() Format { return wire.DefaultFormat() }

// Errors, for use with errors.Is. A Send can also return its context's
// error.
var (
	// ErrClosed: the endpoint is closed or closing, or its socket failed
	// underneath it. It also matches net.ErrClosed.
	ErrClosed = peer.ErrClosed
	// ErrUndelivered: the peer never answered RECV within MaxAttempts or
	// Lifetime. The error is an *UndeliveredError.
	ErrUndelivered = peer.ErrUndelivered
	// ErrTooLarge: the message is larger than MaxMessage, or than one UDP
	// datagram holds with its header and the peer cannot take it in
	// fragments (it does not speak the extension, or NoExtension is set).
	ErrTooLarge = wire.ErrTooLarge
	// ErrPeerLimit: a send to a new address found MaxPeers peers live.
	ErrPeerLimit = actor.ErrPeerLimit
	// ErrOutcomeUnknown: the context of a Send ended after the message's
	// DATA went out, so the peer may have it. The error matches the
	// context's error too (context.Canceled or DeadlineExceeded).
	ErrOutcomeUnknown = peer.ErrOutcomeUnknown
	// ErrBadAddress: the destination can never be sent to from this
	// socket: invalid, port 0, or of an address family the socket does
	// not reach (an IPv6 address from an IPv4 socket, or the reverse).
	ErrBadAddress = actor.ErrBadAddress
)

// UndeliveredError is the error of a message the endpoint gave up on. It
// matches ErrUndelivered.
type UndeliveredError struct {
	// Addr is the destination; ID the message's ID.
	Addr netip.AddrPort
	ID   uuid.UUID
	// Attempts is the number of transmissions made.
	Attempts int
	// Reason says why the endpoint stopped: the attempt limit, the
	// lifetime, a write the socket refuses for good, or a failure of the
	// peer's actor.
	Reason string
	// Err is the last error the socket gave writing the message, if any:
	// errors.Is and errors.As see it through the UndeliveredError.
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

// publicErr turns the protocol's error types into the ones this package
// documents.
func publicErr(err error) error {
	if u, ok := err.(*peer.UndeliveredError); ok {
		return &UndeliveredError{Addr: u.Addr, ID: u.ID, Attempts: u.Attempts, Reason: u.Reason, Err: u.Err}
	}
	return err
}

// Listen opens a UDP socket on address ("udp", "udp4" or "udp6" network,
// as net.ListenPacket takes them) and returns an endpoint serving it; Close
// closes the socket. cfg may be nil.
//
// It starts two goroutines, the socket reader and the Outbox loop; each
// remote peer gets one more while it has work (see the package
// documentation).
func Listen(network, address string, cfg *Config) (*Endpoint, error) {
	switch network {
	case "udp", "udp4", "udp6":
	default:
		return nil, fmt.Errorf("gtudp: network %q is not UDP (want udp, udp4 or udp6)", network)
	}
	s, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	conn, err := net.ListenPacket(network, address)
	if err != nil {
		return nil, err
	}
	ep, err := start(conn, s, true)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return ep, nil
}

// New returns an endpoint serving conn, which may be any net.PacketConn
// (actortest.Network gives in-memory ones). Close leaves conn open; until
// then the endpoint is its only reader. cfg may be nil.
func New(conn net.PacketConn, cfg *Config) (*Endpoint, error) {
	s, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	return start(conn, s, false)
}

func start(conn net.PacketConn, s *resolved, own bool) (*Endpoint, error) {
	a := &app{
		inbox:    make(chan Message, s.inbox),
		outbox:   make(chan Message),
		receipts: make(chan Receipt, s.receipts),
	}
	ep, err := actor.New(conn, &s.Settings, a, own)
	if err != nil {
		return nil, err
	}
	return &Endpoint{ep: ep, app: a}, nil
}

// Inbox returns the channel of received messages: each message delivered
// once, with a fresh copy of its payload that the receiver owns. It is
// closed when Close has finished. While nobody reads it, peers hold
// deliveries back and do not answer RECV; senders re-send until their
// limits: backpressure, not loss.
func (e *Endpoint) Inbox() <-chan Message { return e.app.inbox }

// Outbox returns the channel on which to send messages without waiting for
// their outcome: each gets exactly one Receipt on Receipts (none with
// Config.DiscardReceipts). The endpoint takes each message at once and its
// peer keeps it until the peer's window has room, oldest first: a peer
// that is slow or dead holds up only messages to itself. Only when
// Config.OutboxQueue messages wait, over all peers, does a send on the
// Outbox wait. The endpoint never closes it; once Close has begun,
// messages get ErrClosed receipts, and after Close has finished nobody
// reads it: select on Done.
//
// A message's Data must not be modified until its receipt is out.
func (e *Endpoint) Outbox() chan<- Message { return e.app.outbox }

// Receipts returns the channel of outcomes of messages sent through the
// Outbox. It is buffered (Config.ReceiptsSize); a receipt that finds it
// full waits in its peer, holding its place in that peer's window, until
// there is room: a reader that keeps reading gets every receipt, and a
// slow reader slows the Outbox down to its pace. If nobody reads it, the
// Outbox stalls once the windows are full, and Close waits for the
// receipts until its context ends, then drops them (counted in
// Stats.ReceiptsDropped). An application that wants no receipts sets
// Config.DiscardReceipts. The channel is closed when Close has finished.
func (e *Endpoint) Receipts() <-chan Receipt { return e.app.receipts }

// Done returns a channel closed when Close begins.
func (e *Endpoint) Done() <-chan struct{} { return e.ep.Done() }

// LocalAddr returns the address the socket is bound to.
func (e *Endpoint) LocalAddr() netip.AddrPort { return e.ep.LocalAddr() }

// Send sends data to addr and waits for its outcome: nil once the peer has
// answered RECV (the message is in its Inbox), or why not: an error
// matching ErrUndelivered (an *UndeliveredError with the attempts made),
// ErrClosed, ErrTooLarge, ErrPeerLimit, or ctx.Err().
//
// It waits while the peer's window is full (backpressure for that
// destination only). A ctx done before Send starts sends nothing and
// returns ctx.Err(). If ctx ends later, the endpoint stops re-sending the
// message and Send returns: with ctx.Err() if no DATA of it went out, else
// with an error that matches both ctx.Err() and ErrOutcomeUnknown, since
// the peer may have it. A RECV that arrived first still wins. data must
// not be modified until Send returns. Send allocates the channel its
// outcome comes back on; the message itself is not copied.
func (e *Endpoint) Send(ctx context.Context, addr netip.AddrPort, data []byte) error {
	return publicErr(e.ep.Send(ctx, addr, data))
}

// Release gives back the Data of a message taken from the Inbox once the
// application is done with it, so that a later message larger than
// DatagramSize (one that comes in fragments) is received into it rather
// than into newly allocated memory, which the runtime must clear first and
// the garbage collector must then reclaim. Calling it is optional; a
// message not given back is simply garbage collected. After Release the
// caller must not read or write data, or anything sharing its array: a
// later message is written into it. Give each Data back once: a buffer
// that overlaps one still kept is ignored, but one given back again after
// a later message took it would have two messages written into it.
//
// Buffers of at least 16 KiB are kept, up to 8 MiB in all (the ones given
// back first go first); smaller ones are left to the garbage collector,
// and so is every one with Config.NoExtension (no fragments come).
// On loopback a stream of 1 MiB messages goes about twice as fast when
// the receiver gives each back (README, Benchmarks).
// Release is safe for concurrent use and does not block.
func (e *Endpoint) Release(data []byte) { e.ep.Release(data) }

// SendRaw writes data to addr as one datagram, without gtUDP framing and
// without any guarantee: the raw send of the original's passthrough. It
// returns the socket's error, ErrClosed once Close has begun, or
// ErrTooLarge.
func (e *Endpoint) SendRaw(addr netip.AddrPort, data []byte) error {
	return e.ep.SendRaw(addr, data)
}

// Close shuts the endpoint down in order and returns when no goroutine of
// the endpoint is left:
//
//  1. It stops taking sends: Send, SendRaw and the Outbox fail with
//     ErrClosed from now on; a send already accepted is carried out.
//  2. Every peer finishes its own messages in flight, as the original's
//     cleanup() does: each ends at its RECV, or at its limits
//     (MaxAttempts, Lifetime), and its receipt is handed to Receipts. A
//     message delivered to us and awaiting its ACK gets one last RECV and
//     ends: the application has it. New DATA is not taken.
//  3. If ctx ends first, what is left fails with ErrClosed (receipts that
//     nobody took are dropped, counted in Stats.ReceiptsDropped) and Close
//     returns ctx.Err().
//  4. The socket reader stops; a socket from Listen is closed, one given
//     to New is left open.
//  5. Inbox and Receipts are closed, last.
//
// So Close waits at most Lifetime (30 s by default, for a message to a
// peer that is gone) plus the time the Receipts reader takes; pass a ctx
// with a deadline to bound it. Keep reading the Inbox while Close drains,
// or held messages are dropped unanswered (their senders are not told
// they arrived). Close is idempotent: later calls wait for the first (or
// for their own ctx) and return its result.
func (e *Endpoint) Close(ctx context.Context) error { return e.ep.Close(ctx) }

// Stats returns the endpoint's counters: its own, and the totals over its
// peers, live and gone, as of their last wake-up.
func (e *Endpoint) Stats() Stats {
	s := e.ep.Stats()
	return Stats{
		PeerStats:       PeerStats(s.Stats),
		Peers:           s.Peers,
		PeersStarted:    s.PeersStarted,
		PeersRetired:    s.PeersRetired,
		PeersParked:     s.PeersParked,
		PeersEvicted:    s.PeersEvicted,
		PeerCrashes:     s.PeerCrashes,
		PeerLimited:     s.PeerLimited,
		MailboxFull:     s.MailboxFull,
		Foreign:         s.Foreign,
		Malformed:       s.Malformed,
		RawDelivered:    s.RawDelivered,
		RawDropped:      s.RawDropped,
		RawSent:         s.RawSent,
		StrayRecv:       s.StrayRecv,
		StrayAck:        s.StrayAck,
		ReceiptsDropped: s.ReceiptsDropped,
		ReadErrors:      s.ReadErrors,
		OverBudget:      s.OverBudget,
		HeldBytes:       s.BudgetUsed,
		SpareBytes:      s.SpareBytes,
	}
}

// PeerStats returns the counters of the live peer of addr, if there is
// one.
func (e *Endpoint) PeerStats(addr netip.AddrPort) (PeerStats, bool) {
	s, ok := e.ep.PeerStats(addr)
	return PeerStats(s), ok
}

// Stats are the counters of an Endpoint. The embedded PeerStats are the
// totals over every peer the endpoint has had, live or gone (their Addr,
// SRTT, RTTVar, RTO and Validated mean nothing there; see
// Endpoint.PeerStats).
type Stats struct {
	PeerStats

	// Peers is the number of live peers; PeersStarted and PeersRetired
	// count peers started and ended since the endpoint began.
	Peers                      int
	PeersStarted, PeersRetired uint64
	// PeersParked is the number of live peers that are parked: quiet for
	// a second with nothing in flight, they keep their state (the ids
	// they remember) but no goroutine, until traffic or a deadline
	// resumes them.
	PeersParked int
	// PeersEvicted counts peers ended to make room for a new one when
	// MaxPeers were live: peers that never proved their address, oldest
	// and least used first (see Config.MaxPeers).
	PeersEvicted uint64
	// PeerCrashes counts peer actors that panicked and were recovered.
	PeerCrashes uint64
	// PeerLimited counts packets from new addresses dropped because
	// MaxPeers peers were live.
	PeerLimited uint64
	// MailboxFull counts packets dropped because their peer was behind;
	// the protocol re-sends them.
	MailboxFull uint64
	// Foreign counts datagrams that are not gtUDP under the Format
	// (dropped, or delivered raw with Passthrough), the empty datagram
	// among them; Malformed counts those that begin as gtUDP but end
	// before the id.
	Foreign, Malformed uint64
	// RawDelivered counts foreign datagrams handed to the Inbox with
	// Passthrough; RawDropped those dropped because the Inbox was full.
	RawDelivered, RawDropped uint64
	// RawSent counts raw datagrams the socket accepted.
	RawSent uint64
	// StrayRecv counts RECV from addresses without a peer (answered ACK,
	// as the original does); StrayAck counts ignored ACK from them. An
	// EXT datagram counts once: in StrayRecv if it holds RECVs, else in
	// StrayAck.
	StrayRecv, StrayAck uint64
	// ReceiptsDropped counts receipts dropped because nobody read
	// Receipts: those still waiting when Close's context ended, and the
	// ErrClosed receipts of messages refused while Receipts was full.
	ReceiptsDropped uint64
	// ReadErrors counts socket read errors other than the socket closing.
	ReadErrors uint64
	// OverBudget counts DATA dropped unanswered because the payloads the
	// endpoint held had reached Config.HoldBytes (their senders re-send);
	// HeldBytes is the bytes it holds now.
	OverBudget uint64
	HeldBytes  int64
	// SpareBytes is the bytes of buffers given back by Release and kept
	// for later messages (at most 8 MiB).
	SpareBytes int
}

// PeerStats are the counters of one remote peer, cumulative over its
// life, and its gauges.
//
// Its fields are those of the protocol's own counters, in the same order,
// so that one converts to the other: the compiler checks they agree.
type PeerStats struct {
	// Addr is the peer's address.
	Addr netip.AddrPort

	// Sent counts messages handed to the peer; Confirmed those the peer
	// answered RECV; Failed those that ended with a failure.
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
	// Withheld counts new DATA (and fragments of large messages) not
	// answered because the Inbox and the hold queue were full, or
	// RecvWindow, the dedupe window or HoldBytes was: the sender re-sends
	// later. It counts too the fragments of a message larger than
	// MaxMessage, and first fragments from a peer that has not proved its
	// address yet (see the package documentation, Large messages).
	Withheld uint64
	// RecvGaveUp counts exchanges whose RECV was never ACKed.
	RecvGaveUp uint64
	// DedupeEvicted counts finished ids forgotten early at DedupeLimit.
	DedupeEvicted uint64
	// Limited counts packets not sent because the peer has not proven its
	// address and they would take what it was sent past 3× what it sent.
	Limited uint64
	// Packets and bytes in and out, gtUDP only.
	PacketsIn, PacketsOut uint64
	BytesIn, BytesOut     uint64
	// WriteErrors counts datagrams the socket refused to send; the
	// protocol re-sends them like lost ones.
	WriteErrors uint64
	// Unhandled counts packets that reached the peer and were dropped
	// unread because it ended first (evicted, or the endpoint closing).
	Unhandled uint64
	// Lost counts transmissions of DATA found lost (a later one was
	// answered first, by three transmissions or 9/8 of the RTT); Spurious
	// those that turned out not to be (their RECV came too soon after the
	// re-send to answer it). Timeouts counts probe timeouts: nothing
	// answered for a retransmission timeout, so the oldest message went
	// again.
	Lost, Spurious uint64
	Timeouts       uint64
	// Unfinished counts large messages whose fragments stopped coming
	// before they were complete: dropped after a Lifetime without a new
	// byte.
	Unfinished uint64

	// InFlight is the messages awaiting RECV (window use); Open the
	// received exchanges not finished; Remembered the dedupe window.
	InFlight, Open, Remembered int
	// SRTT, RTTVar and RTO are the RFC 6298 estimator's state; MinRTT the
	// least round trip seen.
	SRTT, RTTVar, RTO time.Duration
	MinRTT            time.Duration
	// Cwnd is the congestion window and InFlightBytes the bytes of DATA
	// in flight (counted with their IP and UDP headers); PacingRate the
	// rate DATA is paced at, in bytes per second (0: not yet paced).
	Cwnd, InFlightBytes int
	PacingRate          int64
	// Validated: the peer has answered one of our DATA with its RECV,
	// proving it receives what we send to its address.
	Validated bool
	// Extension: the peer speaks the gtudp extension (its trailer came
	// back on an answer to one of ours), so messages to it are packed
	// many to a datagram. ExtFallbacks counts the times a peer that spoke
	// it went quiet in it and was sent plain packets again.
	Extension    bool
	ExtFallbacks uint64
}

// app is the application's side of the endpoint (actor.App) over the
// channels this package hands out. The peers and the reader call it; it
// converts their values into this package's types.
type app struct {
	inbox    chan Message
	outbox   chan Message
	receipts chan Receipt
}

func receiptOf(r peer.Receipt) Receipt {
	return Receipt{
		Message:  Message{ID: r.ID, Addr: r.Addr, Data: r.Data, Raw: r.Raw},
		Err:      publicErr(r.Err),
		Attempts: r.Attempts,
		RTT:      r.RTT,
	}
}

func (a *app) Deliver(d peer.Delivery) bool {
	select {
	case a.inbox <- Message{Addr: d.Addr, Data: d.Data, Raw: d.Raw}:
		return true
	default:
		return false
	}
}

func (a *app) Report(r peer.Receipt) bool {
	select {
	case a.receipts <- receiptOf(r):
		return true
	default:
		return false
	}
}

func (a *app) Wait(wake <-chan struct{}, d *peer.Delivery, r *peer.Receipt) peer.Handed {
	var inbox chan<- Message
	var m Message
	if d != nil {
		inbox, m = a.inbox, Message{Addr: d.Addr, Data: d.Data, Raw: d.Raw}
	}
	var receipts chan<- Receipt
	var rc Receipt
	if r != nil {
		receipts, rc = a.receipts, receiptOf(*r)
	}
	select {
	case <-wake:
		return peer.Woken
	case inbox <- m:
		return peer.DeliveryHanded
	case receipts <- rc:
		return peer.ReceiptHanded
	}
}

func (a *app) Next(stop <-chan struct{}) (actor.Post, bool) {
	select {
	case m := <-a.outbox:
		return actor.Post{ID: m.ID, Addr: m.Addr, Data: m.Data, Raw: m.Raw}, true
	case <-stop:
		return actor.Post{}, false
	}
}

func (a *app) Closed() {
	close(a.inbox)
	close(a.receipts)
}

// Config configures an Endpoint. The zero value (or nil) works: every zero
// field takes the default its comment names, chosen to work unchanged on
// loopback (RTT ≈ 50 µs) and on a 100 ms path. A negative value, or a
// combination that cannot work, is refused by New, Listen and Validate
// with a *ConfigError naming the field.
//
// Any positive duration works: time arithmetic saturates, so a Lifetime of
// math.MaxInt64 means forever. Sizes have ceilings, because channels are
// allocated whole and a table of more than millions of entries is a typo:
// Window, RecvWindow, HoldLimit, DedupeLimit and MaxPeers at most 2^24,
// InboxSize and ReceiptsSize at most 2^20, Batch at most 1024.
//
// Settings are read once, when the endpoint starts.
type Config struct {
	// Format is the wire format: magic prefix and type identifiers. If
	// its type identifiers are all empty, those of DefaultFormat (the
	// Python original's 0x1D, 0x5F, 0xAE) are used with its Magic: the
	// zero Format is the original's.
	Format Format
	// Clock is the source of time for every timer. Default clock.New();
	// tests pass clock.NewMock().
	Clock clock.Clock
	// Logger receives warnings (write and read errors, recovered panics)
	// and, at Debug level, one line per packet IN and OUT with its kind,
	// id and size, as the original's debug mode prints. Nil logs nothing
	// and costs nothing.
	Logger *slog.Logger

	// InitialRTO is the retransmission timeout before the first RTT
	// sample (RFC 6298). Default 250 ms: above the 100 ms RTT of a
	// distant path plus its jitter, so the first message there is not
	// re-sent needlessly, and a loss on loopback costs a quarter second
	// only until the first sample.
	InitialRTO time.Duration
	// MinRTO bounds the adaptive timeout from below. Default 10 ms: above
	// the scheduling and GC pauses of a busy Go process, so loopback does
	// not re-send spuriously, yet 20× below TCP's 200 ms so a LAN
	// recovers from loss quickly.
	MinRTO time.Duration
	// MaxRTO bounds the timeout, and its exponential backoff, from above.
	// Default 2 s: a peer that comes back is noticed within 2 s, and a
	// dead one costs at most one packet every 2 s per message.
	MaxRTO time.Duration
	// MaxAttempts is how many times a DATA is transmitted before its
	// message fails with ErrUndelivered (one RTO after the last attempt).
	// Default 20: at 50% loss each way a message still gets through with
	// probability 1-0.75^20 ≈ 99.7%; Lifetime usually ends it first.
	MaxAttempts int
	// Lifetime is the longest a message is tried, from its first
	// transmission. Default 30 s.
	Lifetime time.Duration
	// RecvAttempts is how many times a RECV is transmitted while waiting
	// for its ACK. Default 8 (about 2.5 s on loopback, 12 s at 100 ms): a
	// lost ACK only delays the end of an exchange the sender has already
	// completed, so fewer tries are needed than for DATA.
	RecvAttempts int
	// DedupeHorizon is how long a finished exchange's id and payload
	// digest are remembered, so that a late duplicate DATA is not
	// delivered again. Default Lifetime + 10 s (40 s with the default
	// Lifetime): a sender like this one can re-send for its Lifetime if it
	// never sees a RECV, and a copy can be delayed in the network. At
	// least Lifetime; keep it above the senders' Lifetime.
	DedupeHorizon time.Duration

	// Window is the most messages in flight to one peer (sent, outcome
	// not yet known); beyond it Send and the Outbox wait. Default 1024:
	// enough to fill a 100 ms path at 10,000 messages/s, and to keep
	// loopback busy.
	Window int
	// RecvWindow is the most received exchanges one peer can keep open
	// (held for the Inbox, or delivered and awaiting their ACK). A DATA
	// beyond it is not answered; the sender re-sends. Default 4096.
	RecvWindow int
	// HoldLimit is the most received messages one peer keeps while the
	// Inbox is full. They are delivered, and answered RECV, as soon as the
	// Inbox has room; DATA beyond them is not answered. Default 1024, a
	// default sender's Window: a burst of a full window that outruns the
	// reader of the Inbox is held, not refused (refusing it costs the
	// sender an RTO and, on loopback, a third of a 10,000-message stream
	// re-sent). Held payloads are memory: lower it for large payloads. At
	// most RecvWindow.
	HoldLimit int
	// HoldBytes caps the bytes of received payloads the endpoint holds
	// over all its peers: copied from the socket and not yet taken from
	// the Inbox. Default 64 MiB, which fits a small server. Past it, a
	// DATA is dropped unanswered (its sender re-sends: backpressure, not
	// loss) and counted in Stats.OverBudget. With HoldLimit and RecvWindow
	// it bounds what remote hosts can make the endpoint keep: held
	// payloads at most HoldBytes, plus Config.InboxSize delivered ones
	// nobody has read, plus the bookkeeping of the limits above.
	HoldBytes int
	// DedupeLimit caps the finished ids one peer remembers. At the cap the
	// oldest id whose exchange ended with an ACK is forgotten (its sender
	// has provably stopped re-sending) and counted in
	// PeerStats.DedupeEvicted; if none has, new DATA is not answered until
	// one expires. Default 16384.
	DedupeLimit int

	// InboxSize is the buffer of the Inbox channel. Default 256. When it
	// is full, peers hold deliveries back and withhold RECV: the senders
	// re-send later, nothing is lost.
	InboxSize int
	// ReceiptsSize is the buffer of the Receipts channel. Default 1024.
	// A receipt that finds it full waits in its peer, holding its place in
	// the peer's window, until there is room; see Endpoint.Receipts.
	ReceiptsSize int
	// DiscardReceipts says the application wants no receipts for messages
	// put on the Outbox: none are made, Receipts stays empty, and the
	// outcomes are only counted (PeerStats.Confirmed, Failed). Send still
	// returns its own.
	DiscardReceipts bool
	// OutboxQueue is how many messages taken from the Outbox the peers may
	// keep, over all peers, while their windows are full. Default 4096.
	// A message to a peer whose window is full waits in that peer and
	// does not hold up messages to other peers; only when all the places
	// are taken does the Outbox itself wait.
	OutboxQueue int
	// MaxPeers caps the peers (remote addresses with state) at once.
	// Default 1024. When they are all live, a new one takes the place of
	// a peer that never proved its address (never answered one of our
	// DATA): the oldest and least used such peer with none of our
	// messages, or, for a send of ours or a peer that proved itself, one
	// with our messages, which then fail saying why (Stats.PeersEvicted).
	// What an evicted peer remembered of the messages it delivered is
	// kept, so a late repeat is still not delivered twice. A flood of
	// forged sources can thus not lock honest peers out. When no peer can
	// be evicted, a DATA from a new address is not answered (counted in
	// Stats.PeerLimited), and a send to a new address fails with
	// ErrPeerLimit.
	MaxPeers int
	// IdleTimeout is how long a peer with nothing pending and nothing
	// remembered stays before it exits. Default 10 s. (A peer quiet for a
	// second already gives its goroutine up: Stats.PeersParked.)
	IdleTimeout time.Duration
	// SocketBuffer is the receive and send buffer size asked of the
	// kernel for the socket, when the conn is a socket. Default 4 MiB: a
	// burst of a full default window of small DATA costs about 1 KiB of
	// kernel memory per datagram, beyond the usual 208 KiB default, so
	// smaller buffers turn bursts into losses the protocol must then
	// repair. A negative value leaves the system's default. If the kernel
	// grants less, the endpoint logs it once at Warn.
	SocketBuffer int
	// Batch is how many datagrams the endpoint reads from the socket per
	// system call (recvmmsg) when the conn is a *net.UDPConn on 64-bit
	// Linux; there, too, a peer writes what one wake-up produced with
	// sendmmsg, Batch datagrams per call. Default 16; 1 reads and writes
	// one datagram per call. Each read slot is a 64 KiB buffer (a
	// datagram must never be truncated), so the default costs 1 MiB per
	// endpoint; in return a burst is read, and handed to its peer, in a
	// sixteenth of the system calls and wake-ups.
	Batch int
	// Passthrough delivers datagrams that are not gtUDP under Format to
	// the Inbox as Messages with Raw set, instead of dropping them.
	Passthrough bool

	// NoExtension makes the endpoint speak exactly the original protocol:
	// no trailer on its RECVs and ACKs, no EXT datagrams, and those it
	// receives are foreign. By default (false) it speaks the gtudp
	// extension with peers that show they do (see the package
	// documentation), and the original protocol with the rest.
	NoExtension bool
	// DatagramSize is the largest EXT datagram the endpoint sends to a
	// peer that speaks the extension. Default 1200 bytes of UDP payload:
	// what QUIC assumes every path carries without IP fragmentation;
	// except to a peer on a loopback address (the same host), which gets
	// datagrams as large as the loopback interface's MTU carries whole
	// (65,507 bytes with Linux's default of 64 KiB), as TCP takes its
	// segment size from the interface. Set, it applies to every peer. At
	// least 64, at most 65507.
	DatagramSize int
	// MaxMessage is the largest message the endpoint sends or receives.
	// Default 16 MiB, or HoldBytes if less (or with NoExtension, one
	// datagram); at most HoldBytes, since a message is held whole before
	// it is delivered. To a peer that speaks the extension, a
	// message larger than one datagram goes in fragments of DatagramSize
	// (see the package documentation, Large messages); to one that does
	// not, as one datagram of at most 65,507 bytes, and larger ones fail
	// with ErrTooLarge. With NoExtension, nothing larger than one
	// datagram is sent.
	MaxMessage int
}

// ConfigError is the error of a Config that cannot work: it names the
// field at fault.
type ConfigError struct {
	Field  string // the Config field, e.g. "MinRTO"
	Reason string // e.g. "5s is above MaxRTO 1s"
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("gtudp: invalid config: %s %s", e.Field, e.Reason)
}

// Defaults of Config: a zero field takes these. Each is documented, with
// its reason, on its field.
const (
	DefaultInitialRTO    = 250 * time.Millisecond
	DefaultMinRTO        = 10 * time.Millisecond
	DefaultMaxRTO        = 2 * time.Second
	DefaultMaxAttempts   = 20
	DefaultLifetime      = 30 * time.Second
	DefaultRecvAttempts  = 8
	DefaultDedupeHorizon = DefaultLifetime + dedupeMargin
	DefaultWindow        = 1024
	DefaultRecvWindow    = 4096
	DefaultHoldLimit     = 1024
	DefaultDedupeLimit   = 16384
	DefaultHoldBytes     = 64 << 20
	DefaultDatagramSize  = 1200
	DefaultMaxMessage    = 16 << 20
	DefaultInboxSize     = 256
	DefaultReceiptsSize  = 1024
	DefaultOutboxQueue   = 4096
	DefaultMaxPeers      = 1024
	DefaultIdleTimeout   = 10 * time.Second
	DefaultSocketBuffer  = 4 << 20
	DefaultBatch         = 16
)

// Bounds of Config's settings beyond their defaults.
const (
	// dedupeMargin is how much longer than Lifetime a finished exchange
	// is remembered by default: time for a copy delayed in the network.
	dedupeMargin    = 10 * time.Second
	maxTable        = 1 << 24                                        // windows, limits and peers
	maxMessage      = int(min(uint64(math.MaxInt), wire.MaxMessage)) // what a FRAG can name
	maxChannel      = 1 << 20                                        // Inbox and Receipts are allocated whole
	maxBatch        = 1024                                           // the kernel's limit per call; 64 KiB of buffer each
	maxSocketBuffer = 1 << 30
	minDatagramSize = 64 // room for the EXT header and a record
)

// Validate reports the first setting of c that cannot work, as a
// *ConfigError, or nil. A nil c is valid.
func (c *Config) Validate() error {
	_, err := c.resolve()
	return err
}

// resolved is a Config with its defaults applied and checked: the
// endpoint's settings, and the sizes of the channels this package owns.
type resolved struct {
	actor.Settings
	inbox, receipts, holdBytes int
}

// resolve applies the defaults of c (nil is the zero Config) and checks
// the result. It is the one place a setting's default is applied and its
// value checked.
func (c *Config) resolve() (*resolved, error) {
	if c == nil {
		c = &Config{}
	}
	f := c.Format
	if len(f.Data) == 0 && len(f.Recv) == 0 && len(f.Ack) == 0 {
		d := wire.DefaultFormat()
		f.Data, f.Recv, f.Ack = d.Data, d.Recv, d.Ack
	}
	if c.NoExtension {
		f.Ext = nil
	} else if len(f.Ext) == 0 {
		f.Ext = f.DeriveExt()
	}
	if err := f.Validate(); err != nil {
		return nil, &ConfigError{Field: "Format", Reason: err.Error()}
	}
	var inc [8]byte
	if _, err := rand.Read(inc[:]); err != nil {
		return nil, fmt.Errorf("gtudp: drawing the incarnation: %w", err)
	}
	r := &resolved{
		Settings: actor.Settings{
			Params: peer.Params{
				Format:        f.Clone(), // the caller may reuse its slices
				InitialRTO:    c.InitialRTO,
				MinRTO:        c.MinRTO,
				MaxRTO:        c.MaxRTO,
				MaxAttempts:   c.MaxAttempts,
				Lifetime:      c.Lifetime,
				RecvAttempts:  c.RecvAttempts,
				DedupeHorizon: c.DedupeHorizon,
				Window:        c.Window,
				RecvWindow:    c.RecvWindow,
				HoldLimit:     c.HoldLimit,
				DedupeLimit:   c.DedupeLimit,
				DatagramSize:  c.DatagramSize,
				MaxMessage:    c.MaxMessage,
				Incarnation:   binary.BigEndian.Uint64(inc[:]),
			},
			Clock:           c.Clock,
			Logger:          c.Logger,
			MaxPeers:        c.MaxPeers,
			IdleTimeout:     c.IdleTimeout,
			SocketBuffer:    c.SocketBuffer,
			Batch:           c.Batch,
			Passthrough:     c.Passthrough,
			OutboxQueue:     c.OutboxQueue,
			DiscardReceipts: c.DiscardReceipts,
		},
		inbox:     c.InboxSize,
		receipts:  c.ReceiptsSize,
		holdBytes: c.HoldBytes,
	}
	p := &r.Params
	if r.Clock == nil {
		r.Clock = clock.New()
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"InitialRTO", &p.InitialRTO, DefaultInitialRTO},
		{"MinRTO", &p.MinRTO, DefaultMinRTO},
		{"MaxRTO", &p.MaxRTO, DefaultMaxRTO},
		{"Lifetime", &p.Lifetime, DefaultLifetime},
		{"DedupeHorizon", &p.DedupeHorizon, 0}, // below, from Lifetime
		{"IdleTimeout", &r.IdleTimeout, DefaultIdleTimeout},
	} {
		if *d.v < 0 {
			return nil, &ConfigError{Field: d.name, Reason: fmt.Sprintf("is %v, must not be negative", *d.v)}
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	// Sizes have a ceiling: a channel is allocated whole, and a window or
	// table beyond tens of millions of entries is a typo, not a plan.
	const noMax = math.MaxInt
	for _, n := range []struct {
		name     string
		v        *int
		def, max int
	}{
		{"MaxAttempts", &p.MaxAttempts, DefaultMaxAttempts, noMax},
		{"RecvAttempts", &p.RecvAttempts, DefaultRecvAttempts, noMax},
		{"Window", &p.Window, DefaultWindow, maxTable},
		{"RecvWindow", &p.RecvWindow, DefaultRecvWindow, maxTable},
		{"HoldLimit", &p.HoldLimit, DefaultHoldLimit, maxTable},
		{"DedupeLimit", &p.DedupeLimit, DefaultDedupeLimit, maxTable},
		{"InboxSize", &r.inbox, DefaultInboxSize, maxChannel},
		{"ReceiptsSize", &r.receipts, DefaultReceiptsSize, maxChannel},
		{"OutboxQueue", &r.OutboxQueue, DefaultOutboxQueue, maxChannel},
		{"MaxPeers", &r.MaxPeers, DefaultMaxPeers, maxTable},
		{"Batch", &r.Batch, DefaultBatch, maxBatch},
		{"SocketBuffer", &r.SocketBuffer, DefaultSocketBuffer, maxSocketBuffer},
		{"HoldBytes", &r.holdBytes, DefaultHoldBytes, noMax},
		{"DatagramSize", &p.DatagramSize, DefaultDatagramSize, wire.MaxDatagram},
		{"MaxMessage", &p.MaxMessage, -1, maxMessage}, // below, from HoldBytes
	} {
		if *n.v < 0 && n.name != "SocketBuffer" { // negative: the system's buffer
			return nil, &ConfigError{Field: n.name, Reason: fmt.Sprintf("is %d, must not be negative", *n.v)}
		}
		if *n.v == 0 {
			*n.v = n.def
		}
		if *n.v > n.max {
			return nil, &ConfigError{Field: n.name, Reason: fmt.Sprintf("is %d, at most %d", *n.v, n.max)}
		}
	}
	p.Budget = peer.NewBudget(int64(r.holdBytes))
	if p.DedupeHorizon == 0 {
		p.DedupeHorizon = p.Lifetime + dedupeMargin
		if p.DedupeHorizon < p.Lifetime {
			p.DedupeHorizon = math.MaxInt64 // a Lifetime of forever
		}
	}
	if p.DedupeHorizon < p.Lifetime {
		// A sender configured alike re-sends for up to its Lifetime; a
		// copy after the horizon would be delivered again.
		return nil, &ConfigError{Field: "DedupeHorizon", Reason: fmt.Sprintf("%v is below Lifetime %v: a late copy of a message re-sent that long would be delivered twice", p.DedupeHorizon, p.Lifetime)}
	}
	if c.DatagramSize == 0 {
		p.LoopbackDatagramSize = loopbackDatagramSize()
	}
	if p.DatagramSize < minDatagramSize {
		return nil, &ConfigError{Field: "DatagramSize", Reason: fmt.Sprintf("is %d, at least %d", p.DatagramSize, minDatagramSize)}
	}
	if p.MaxMessage == -1 {
		p.MaxMessage = min(DefaultMaxMessage, r.holdBytes)
		if len(f.Ext) == 0 {
			p.MaxMessage = min(p.MaxMessage, f.MaxPayload()) // one datagram
		}
	}
	if len(f.Ext) == 0 && p.MaxMessage > f.MaxPayload() {
		return nil, &ConfigError{Field: "MaxMessage", Reason: fmt.Sprintf("is %d: with NoExtension a message is one datagram, at most %d bytes", p.MaxMessage, f.MaxPayload())}
	}
	if p.MaxMessage > r.holdBytes {
		return nil, &ConfigError{Field: "MaxMessage", Reason: fmt.Sprintf("%d is above HoldBytes %d: a message is held whole before delivery", p.MaxMessage, r.holdBytes)}
	}
	if p.MinRTO > p.MaxRTO {
		return nil, &ConfigError{Field: "MinRTO", Reason: fmt.Sprintf("%v is above MaxRTO %v", p.MinRTO, p.MaxRTO)}
	}
	if p.HoldLimit > p.RecvWindow {
		return nil, &ConfigError{Field: "HoldLimit", Reason: fmt.Sprintf("%d is above RecvWindow %d", p.HoldLimit, p.RecvWindow)}
	}
	return r, nil
}

// loopbackDatagramSize returns the largest UDP payload the loopback
// interface carries in one IPv6 packet (the smaller), or 0 if there is no
// loopback interface with an MTU.
func loopbackDatagramSize() int {
	ifs, err := net.Interfaces()
	if err != nil {
		return 0
	}
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagLoopback != 0 && ifc.MTU > 0 {
			const headers = 40 + 8 // IPv6 and UDP
			return max(0, min(ifc.MTU-headers, wire.MaxDatagram))
		}
	}
	return 0
}
