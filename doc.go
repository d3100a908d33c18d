// Package gtudp guarantees datagram delivery over one UDP socket. It is a Go
// implementation of gtUDP (github.com/saucecode/gtUDP), wire-compatible
// with the Python original, that finishes its open work and fixes its
// flaws.
//
// # Protocol
//
// Every message is one DATA datagram, re-sent until the receiver answers
// RECV with the same id; the sender then answers ACK, and the receiver
// re-sends RECV until that ACK arrives. A message ends with exactly one
// outcome: success when its RECV arrives, or failure after MaxAttempts
// transmissions or Lifetime, whichever comes first. When the DATA goes,
// and again, is decided as on any real path (see Real paths); between
// gtudp endpoints the same exchange is packed many to a datagram, and a
// message larger than a datagram goes in fragments (see The gtudp
// extension, and Large messages).
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
// One packet goes beyond the original's use of the format, and the
// original answers it as it answers any such packet: to learn whether an
// address that has only sent to us receives what we send (see guarantee
// 8), the endpoint may send it a RECV for a random id of its own (a
// probe); the original, like gtudp, answers a RECV for an id it does not
// know with its ACK, and an ACK for an id only we knew proves the address.
//
// # Guarantees
//
//  1. Every message gets exactly one outcome, and it is the truth: success
//     (Send returns nil, or the receipt's Err is nil) only once the peer has
//     answered RECV, so its endpoint has the message; otherwise an error
//     that says why (see Cancellation and errors). A message the sender
//     gave up on may still have arrived if every RECV was lost: failure
//     means "not confirmed", success means "delivered". A reader of
//     Receipts that keeps reading gets every receipt.
//  2. No duplicates: a payload is delivered at most once per message, under
//     any loss, duplication and reordering of the network, as long as no
//     copy of a DATA arrives after the receiver has forgotten its
//     exchange. The receiver remembers an exchange the sender ended with
//     its ACK for max(2 s, 4 retransmission timeouts) (the sender has
//     stopped, so only copies already in the network can come), and one
//     ended without an ACK for DedupeHorizon (Lifetime + 10 s by default:
//     that sender may still be re-sending).
//  3. A delivered message carries its true source address; packets from
//     one address never change another peer's state.
//  4. Backpressure, not loss: a full Inbox makes the receiver withhold RECV
//     (the sender re-sends later); a peer's full window makes its messages
//     wait, in that peer only. A receipt the application has not taken
//     holds its place in the window, so a slow reader of Receipts slows
//     the sends down rather than lose receipts.
//  5. Bounded memory: the peers (MaxPeers), each peer's windows, open
//     exchanges, held deliveries and dedupe window, the messages waiting
//     for a window (OutboxQueue), and the bytes of received payloads held
//     for delivery over all peers, large messages being received included
//     (HoldBytes), all have limits; what is
//     refused at a limit is counted in Stats. A flood from many forged
//     source addresses cannot grow memory past them, nor lock honest peers
//     out: at MaxPeers a peer that never proved its address gives its place
//     to a new one (what it remembered of its deliveries is kept, so
//     guarantee 2 holds), and a proven peer keeps its place.
//  6. Bad input never crashes: any datagram is decoded or classified
//     foreign; a panic in one peer's actor is recovered, that peer's
//     pending messages fail, and the endpoint goes on serving.
//  7. Clean shutdown: when Close returns, no goroutine of the endpoint is
//     left.
//  8. No amplification: until an address proves it receives what we send
//     to it — by answering one of our DATA with its RECV, or our probe with
//     its ACK; an ACK of its own exchange proves nothing, since whoever
//     forged the DATA knows its id — the endpoint sends it at most three
//     times the bytes it received from it, the application's replies
//     included. A reply beyond that waits, and a probe goes instead: a real
//     peer answers it within a round trip, a forged source never does, and
//     the reply then fails at its Lifetime.
//
// Not guaranteed: order (messages are delivered as they arrive, as in the
// original), and delivery to a peer that is gone (you get a failure).
// Success means the peer's endpoint has the message in its Inbox, not that
// its application has read it.
//
// Sender restarts. Ids are 32 bits. A sender that restarts draws new ids,
// and a new message whose id and payload both equal those of a message
// the receiver still remembers (guarantee 2) is taken for a repeat:
// answered, never delivered. The chance per message is the number of
// remembered messages with that same payload over 2^32: after a steady
// stream of identical payloads at 10,000 messages/s, about 20,000 are
// remembered, so a restart burst of 32,768 identical messages loses one
// with probability about 0.15; with distinct payloads the chance is nil.
//
// # Real paths
//
// A peer sends as a congestion controller allows, as TCP and QUIC do: a
// window of bytes in flight (slow start with a HyStart-style exit, RFC
// 9406; then additive increase, fair to CUBIC, and CUBIC's decrease to
// 0.7, RFC 9438; collapsed after persistent congestion), paced over the
// round trip so that a window never leaves as one burst (RFC 9002 section
// 7). A loss reduces the window only when the path shows a standing queue
// or losses are heavy: random loss on a clean path does not halve the
// rate, a full bottleneck queue does. Loss is
// found as QUIC finds it (RFC 9002 section 6): a message is lost once
// three sent after it were answered, or 9/8 of an RTT after one sent
// after it was; a probe timeout re-sends the oldest message when nothing
// is answered (RFC 6298's retransmission timeout, at least MinRTO, doubled
// per timeout in a row; to a peer that speaks the extension RFC 9002's,
// SRTT + 4 RTTVAR with no such floor, since a gtudp peer drops the copies
// an early re-send makes). Losses count as congestion in bytes, not
// messages: one lost datagram of a thousand small messages is one loss.
// The window grows, and is floored at two datagrams, in datagrams of the
// size in use, as TCP counts in its MSS: on loopback, where a fragment
// holds 64 KiB, a cut is made up in as many round trips as on a path of
// 1,200-byte datagrams. A re-send found spurious (its RECV came too soon
// after it to answer it) undoes what its loss cost. So a flow fills a
// bottleneck without overflowing its queue, shares it with TCP and with
// other gtudp flows, and recovers a lost DATA in about a round trip; a
// path that works is never given up on before Lifetime. PeerStats
// reports the window, pacing rate, RTTs and losses of each peer.
//
// # The gtudp extension
//
// Between gtudp endpoints the protocol stays the same exchange in a denser
// form. Every RECV and ACK gtudp sends carries a 12-byte trailer after the
// id ("gt", version, flags, the endpoint's random incarnation), which the
// original ignores. A peer whose trailer comes back on a RECV for one of
// our DATA (or an ACK for our probe), so on an answer to something only we
// knew, speaks the extension: from then on its messages go as records of
// EXT datagrams, a fourth type identifier (by default 0xB8, derived from
// the Format), many to a datagram of at most DatagramSize bytes (and no
// more than an eighth of the congestion window, so that one lost datagram
// is not the whole window), with the RECVs and ACKs for them as records,
// many to a record, packed with whatever else the same wake-up produced.
// No waiting is added to fill a datagram. An original peer never receives
// an EXT datagram; a peer that stops answering in the extension (it
// answers plain, or nothing for three probe timeouts in a row and three
// retransmission timeouts) is sent plain packets again.
// Config.NoExtension turns it off. README.md documents the
// formats byte by byte.
//
// # Large messages
//
// To a peer that speaks the extension, a message larger than one EXT
// datagram holds is cut into fragments (FRAG records) that fit
// DatagramSize, each with its own id, sent, paced, answered, lost and
// re-sent on its own: a lost fragment costs one fragment. Fragments are cut
// as the window allows, and cut to fill the datagram being built, so a
// message a little larger than a datagram costs little more than one. The
// receiver copies each fragment into a buffer of the message's size (a
// datagram of 16 KiB or more straight from the socket's read buffer,
// which is lent to the peer, at most 16 (1 MiB) at a time: with all lent,
// the socket reader waits for the peers to copy what they have, while
// the socket's buffer holds what comes next; a smaller one after the
// copy out of that buffer every small datagram gets) and
// answers it at once, but for the one that completes the message, which
// is held and answered like a DATA, when the application takes the
// message: success still means the peer has it, whole. The sender
// succeeds when every fragment is answered; cancelling its Send stops the
// fragments not yet sent.
//
// Memory: the sender reads fragments from the caller's buffer as they go
// and copies at most one batch of datagrams (1 MiB) at a time (on 64-bit
// Linux, a fragment of 4 KiB or more is not copied: sendmmsg gathers it
// from the caller's buffer); the receiver holds one buffer per message
// being received. The heap stays
// within twice the bytes of the messages in flight and a constant (the
// read buffers, those lent to peers, one batch per peer writing, the
// copies of small fragments waiting in mailboxes, which HoldBytes bounds,
// and the buffers given back by Release, at most 8 MiB):
// BenchmarkLoopback_LargeMessages in package actor measures it, under
// 16 MiB for 8 MiB of 1 MiB messages in flight between two endpoints.
//
// The receiver charges the whole message to HoldBytes at its first
// fragment, and starts one only for a peer that has proved its address:
// a forged first fragment cannot hold the budget. From a peer not yet
// proved, up to 64 KiB of fragments are kept unanswered while a probe
// goes out, and handled when it is answered (so a new sender does not
// take a round trip of missing answers for congestion); they are dropped
// unanswered after 2 s, and kept only while half of HoldBytes is free, so
// forged sources hold at most that half, for 2 s. A message that gets no
// new byte for a Lifetime is dropped (PeerStats.Unfinished). Fragments of
// a message beyond MaxMessage are never answered, so the sender fails
// it.
//
// A message larger than one EXT datagram, sent before anything is known of
// the peer, waits for a probe to tell whether the peer speaks the
// extension (one round trip). To a peer that does not, it goes as one
// datagram of up to 65,507 bytes, as the original needs it: the kernel
// splits that into IP fragments, and on a real path losing any one of
// them loses the whole datagram, each re-send sends them all again, and
// many paths (VPNs, mobile networks, firewalls) drop IP fragments
// outright. Keep messages to original peers within DatagramSize where you
// can. Larger than that, the message fails with ErrTooLarge.
//
// DatagramSize defaults to 1,200 bytes, which nearly every path carries
// without IP fragmentation (QUIC assumes the same); a peer on a loopback
// address gets datagrams as large as the loopback interface carries whole
// (64 KiB on Linux), so large messages on one host cost 16 datagrams a
// megabyte, not 900. A larger DatagramSize suits a network whose MTU you
// know; the path MTU is not probed.
//
// # Usage
//
//	ep, err := gtudp.Listen("udp", "127.0.0.1:4323", nil)
//	if err != nil { ... }
//	defer func() {
//		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
//		defer cancel()
//		ep.Close(ctx) // see Close for what it waits for
//	}()
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
// loop. Each remote address with state has its own actor goroutine, which
// owns that peer's pending ids and its single timer; it starts with the
// first packet from, or send to, the address, and ends after IdleTimeout
// with nothing pending and nothing remembered. A peer quiet for a second
// with nothing in flight parks: it keeps its state (the ids it remembers,
// its RTT estimate) but gives its goroutine up, so an idle peer costs
// about 3 KB instead of 8; its next packet, send or deadline starts a
// goroutine again (Stats.PeersParked counts them). The reader never waits
// on a peer: a packet for a peer that is behind is dropped, counted, and
// recovered by re-sending. A peer's goroutine writes every packet of its
// exchanges, DATA, RECV and ACK, so once it has written ACK(id) it never
// writes DATA(id) again (the original would deliver that DATA twice).
//
// Close(ctx) stops taking sends (they fail with ErrClosed), lets every peer
// finish its own messages in flight, as the original's cleanup() does, and
// hand over their receipts; it fails what is left with ErrClosed if ctx
// ends first, stops the reader, waits for every goroutine and then closes
// Inbox and Receipts. It does not wait for the ACK of a message the
// application already has: each gets a last RECV. So Close waits at most
// Lifetime (30 s by default, for a message to a peer that is gone), plus
// the time your Receipts reader takes; pass a ctx with a deadline to
// bound it. It is idempotent. Listen's socket is closed; New's is left
// open. The Outbox is never closed by the endpoint: after Close, select on
// Done.
//
// # Ownership and allocation
//
// A received message's Data is a fresh copy the application owns. The Data
// of a message being sent is read by the endpoint until its outcome is
// known (Send returns, or its receipt is out, which hands it back in
// Receipt.Data): do not modify it before; it is copied into each datagram
// as it goes, never as a whole. Encoding and decoding allocate nothing;
// receiving allocates the copy handed to the application: a small
// message is copied out of the socket's buffer, a large one's fragments
// into its buffer (see Large messages).
//
// That buffer, new for every large message, is most of what receiving one
// costs: the runtime clears it, it is cold in the CPU's caches, and the
// garbage collector must reclaim it. An application done with a message
// may give its Data back with Endpoint.Release, and a later message in
// fragments is received into it instead, as it is (every byte is written
// before delivery). Then it must not touch that Data again. On loopback, a
// stream of 1 MiB messages needs about a quarter less CPU per message so
// (README, Benchmarks).
//
// On a *net.UDPConn on 64-bit Linux the endpoint reads up to Config.Batch
// datagrams per recvmmsg(2) and each peer writes what one wake-up produced
// with sendmmsg(2), as many per call; any other net.PacketConn is read and
// written one datagram per call. Round-trip times, and Receipt.RTT, run
// from a DATA's first transmission to its RECV's arrival at the socket
// reader.
//
// # Cancellation and errors
//
// Send blocks until the outcome. A ctx done before Send starts sends
// nothing and returns ctx.Err(); one that ends while the message waits for
// its peer's window ends it unsent, with ctx.Err(); one that ends after the
// DATA went out stops the re-sends and returns an error matching both
// ctx.Err() and ErrOutcomeUnknown: the peer may have it. A RECV that
// arrived first still wins. The other errors match ErrUndelivered (an
// *UndeliveredError with the attempts made, whose Err is the last error
// the socket gave writing it, if any; an error no re-send can cure, such as
// a datagram too large for the socket, ends the message at once),
// ErrClosed, ErrTooLarge, ErrPeerLimit, or ErrBadAddress (a destination the
// socket can never reach: invalid, or of the other address family). Messages
// from the Outbox get the same outcomes on Receipts, each carrying the
// message back (Receipt.Message), so it can be matched by ID, Addr or
// Data without an id scheme of one's own.
//
// # Raw datagrams
//
// With Config.Passthrough, datagrams that are not gtUDP under the Format
// reach the Inbox as Messages with Raw set. A Message with Raw set on the
// Outbox, or SendRaw, goes out as is, without framing or guarantee.
//
// # Limits
//
// A message is at most MaxMessage bytes (16 MiB by default), and to a peer
// without the extension, or with NoExtension, one datagram: 65,507 bytes
// minus the header; ErrTooLarge beyond. Lifetime bounds a whole message,
// however large: size it for the largest message on the slowest path. The
// socket must be unconnected (New refuses a
// connected one, and clears a read deadline the socket comes with). The
// limits of guarantee 5, their defaults and the reasons for them are on
// the Config fields.
//
// # Testing
//
// Package actor/actortest provides an in-memory network of net.PacketConns
// with loss, duplication, reordering, delay, partitions and shared
// bottlenecks (rate and queue), driven by a clock.Clock, for deterministic
// tests inside testing/synctest with clock.NewMock.
package gtudp
