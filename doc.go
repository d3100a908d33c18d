// Package gtudp guarantees datagram delivery over one UDP socket. It is a Go
// implementation of gtUDP (github.com/saucecode/gtUDP), wire-compatible
// with the Python original, that finishes its open work and fixes its
// flaws.
//
// # Protocol
//
// Every message is one DATA datagram, re-sent until the receiver answers
// RECV with the same id; the sender then answers ACK, and the receiver
// re-sends RECV until that ACK arrives. Re-sends follow an adaptive timeout
// (RFC 6298) with exponential backoff. A message ends with exactly one
// outcome: success when its RECV arrives, or failure after MaxAttempts
// transmissions or Lifetime, whichever comes first.
//
// Each datagram is an optional magic prefix, a type identifier, a 4-byte
// exchange id, and, for DATA only, the payload:
//
//	+-------------------+---------------+-----------+----------------+
//	| magic (0..n bytes)| type (k bytes)| id (4 B)  | payload (DATA) |
//	+-------------------+---------------+-----------+----------------+
//
// The default Format is the original's: no magic and the one-byte types
// 0x1D (DATA), 0x5F (RECV), 0xAE (ACK). The DATA "Hello" with id 75790714
// is 1d 75 79 07 14 48 65 6c 6c 6f. Bytes after the id of a RECV or ACK are
// ignored. Package wire has the codec.
//
// # Guarantees
//
//  1. Nothing is lost silently: every message sent gets exactly one outcome,
//     a success receipt (RECV seen) or a failure receipt or error.
//  2. No duplicates: a payload is delivered to the Inbox at most once per
//     message, under any loss, duplication and reordering within the dedupe
//     horizon (Config.DedupeHorizon, default 40 s).
//  3. A delivered message carries its true source address; packets from one
//     address never change another peer's state.
//  4. Backpressure, not loss: a full Inbox makes the receiver withhold RECV
//     (the sender re-sends); a full per-peer window makes Send and the
//     Outbox wait.
//  5. Bounded memory: peers (MaxPeers), pending ids, dedupe windows and
//     queues all have limits; what is dropped at a limit is counted in
//     Stats.
//  6. Bad input never crashes: any datagram is decoded or classified
//     foreign; a panic in one peer's actor is recovered, that peer's
//     pending messages fail, and the endpoint goes on serving.
//  7. Clean shutdown: when Close returns, no goroutine of the endpoint is
//     left.
//  8. No amplification: to an address that has not yet answered one of our
//     own packets, the endpoint sends at most three times the bytes it
//     received from it, the application's replies included. A reply beyond
//     that waits until the address answers (a real peer does so at once,
//     by acknowledging our RECV) or fails at its Lifetime.
//
// Not guaranteed: order (messages are delivered as they arrive, as in the
// original), and delivery to a peer that is gone (you get a failure
// receipt). Success means the peer's endpoint has the message in its
// Inbox, not that its application has read it.
//
// # Usage
//
//	ep, err := gtudp.Listen("udp", "127.0.0.1:4323", nil)
//	if err != nil { ... }
//	defer ep.Close(context.Background())
//	go func() {
//		for m := range ep.Inbox() { // closed when Close has finished
//			fmt.Printf("%v: %s\n", m.Addr, m.Data)
//		}
//	}()
//	err = ep.Send(ctx, peerAddr, []byte("hello")) // nil once RECV arrived
//	ep.Outbox() <- gtudp.Message{Addr: peerAddr, Data: b} // outcome on Receipts()
//
// # Lifecycle and goroutines
//
// Listen and New start two goroutines: the socket reader and the Outbox
// loop. Each remote address with state gets its own actor goroutine, which
// owns that peer's pending ids and its single timer; it starts with the
// first packet from, or send to, the address, and ends after IdleTimeout
// with nothing pending and nothing remembered. A peer quiet for a second
// with nothing in flight parks: it keeps its state (the ids it remembers,
// its RTT estimate) but gives its goroutine up, so an idle peer costs
// about 3.3 KB instead of 8.4; its next packet, send or deadline starts a
// goroutine again (Stats.PeersParked counts them). The reader never waits on a
// peer: a packet for a peer that is behind is dropped, counted, and
// recovered by re-sending. A peer's goroutine writes every packet of its
// exchanges, DATA, RECV and ACK, so once it has written ACK(id) it never
// writes DATA(id) again (the original would deliver that DATA twice).
//
// Close(ctx) stops taking sends (they fail with ErrClosed), lets every peer
// finish the exchanges under way as the original's cleanup() does, fails
// what is left with ErrClosed if ctx ends first, stops the reader, waits
// for every goroutine and then closes Inbox and Receipts. It is
// idempotent. Listen's socket is closed; New's is left open. The Outbox is
// never closed by the endpoint: after Close, select on Done.
//
// # Ownership and allocation
//
// A received message's Data is a fresh copy the application owns. The Data
// of a message being sent is read by the endpoint until its outcome is
// known (Send returns, or its receipt is out): do not modify it before.
// Encoding and decoding allocate nothing; receiving allocates the copy
// handed to the application.
//
// On a *net.UDPConn on 64-bit Linux the endpoint reads up to Config.Batch
// datagrams per recvmmsg(2) and each peer writes what one wake-up produced
// with sendmmsg(2), as many per call; any other net.PacketConn is read and
// written one datagram per call. Round-trip times, and Receipt.RTT, run from a DATA's
// first transmission to its RECV's arrival at the socket reader.
//
// # Cancellation and errors
//
// Send blocks until the outcome and returns nil, an error matching
// ErrUndelivered (an *UndeliveredError with the attempts), ErrClosed,
// ErrTooLarge, ErrPeerLimit, or its context's error, in which case the
// endpoint stops re-sending it; a RECV that arrived first still wins.
// Messages from the Outbox get their outcome on Receipts. A reader of
// Receipts gets every receipt; when nobody reads it, receipts past its
// buffer and a window's worth per peer are dropped and counted in
// Stats.ReceiptsDropped: the protocol never waits on Receipts.
//
// # Raw datagrams
//
// With Config.Passthrough, datagrams that are not gtUDP under the Format
// reach the Inbox as Messages with Raw set. A Message with Raw set on the
// Outbox, or SendRaw, goes out as is, without framing or guarantee.
//
// # Limits
//
// A payload fits in one datagram: at most 65507 bytes minus the header
// (ErrTooLarge beyond). The peers, each peer's window of messages in
// flight, its open received exchanges, its held deliveries and its dedupe
// window are capped by Config; the defaults and their reasons are on the
// Config fields.
//
// # Testing
//
// Package actor/actortest provides an in-memory network of net.PacketConns
// with loss, duplication, reordering, delay and partitions, driven by a
// clock.Clock, for deterministic tests inside testing/synctest with
// clock.NewMock.
package gtudp
