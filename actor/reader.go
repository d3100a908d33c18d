package actor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/gtudp/gtudp/mailbox"
	"github.com/gtudp/gtudp/peer"
	"github.com/gtudp/gtudp/wire"
)

// Bounds of the reader's back-off after a read error other than the socket
// closing (for example ICMP-induced errors, or a buffer shortage): enough
// to avoid spinning on a persistent error, short enough that traffic
// resumes quickly after a transient one.
const (
	minReadBackoff = time.Millisecond
	maxReadBackoff = time.Second
)

// readLoop runs in its own goroutine: it reads the socket, decodes each
// datagram and hands it to the peer of its source address without ever
// waiting on a peer. It returns when Close stops it, or when the socket
// fails underneath the endpoint.
//
// Ownership: the read buffers are the reader's alone. DATA payloads, and
// raw datagrams, are copied out of them before they leave the reader; RECV
// and ACK carry nothing that outlives the read.
func (e *Endpoint) readLoop() {
	defer e.wg.Done()
	r := e.newDatagramReader()
	backoff := time.Duration(0)
	var lastLog time.Time
	for {
		n, err := r.read()
		if err != nil {
			select {
			case <-e.stop:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				e.fail(err)
				return
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				// A deadline set by the conn's owner, not by Close.
				continue
			}
			e.ctr.readErrors.Add(1)
			if now := e.cfg.Clock.Now(); e.cfg.Logger != nil && now.Sub(lastLog) >= time.Second {
				lastLog = now
				e.cfg.Logger.Warn("gtudp: socket read failed; retrying", "err", err, "errors", e.ctr.readErrors.Load())
			}
			backoff = min(max(2*backoff, minReadBackoff), maxReadBackoff)
			t := e.cfg.Clock.Timer(backoff)
			select {
			case <-t.C:
			case <-e.stop:
				t.Stop()
				return
			}
			continue
		}
		backoff = 0
		// One arrival time for the batch, read when a RECV or ACK needs
		// it: round-trip times are measured to it, not to when a peer
		// gets to the packet.
		var at time.Time
		for i := range n {
			b, src, ok := r.datagram(i)
			if !ok {
				e.ctr.foreign.Add(1) // a source that is not an IP address
				continue
			}
			e.dispatch(unmap(src), b, &at, func() *[]byte { return r.lend(i, e.cfg.Params.ReadBuffers, e.stop) })
		}
	}
}

// datagramReader reads the socket: read waits for one or more datagrams
// and returns how many; datagram(i) returns the i-th, valid until the next
// read, and its source (false if that is not an IP address and port).
type datagramReader interface {
	read() (int, error)
	datagram(i int) ([]byte, netip.AddrPort, bool)
	// lend gives away the buffer of the i-th datagram, which stays
	// valid, and reads the next datagram there into one from bufs,
	// waiting for one if all are lent; or returns nil if stop closes
	// first.
	lend(i int, bufs *peer.Buffers, stop <-chan struct{}) *[]byte
}

// lentBuffers bounds the read buffers lent to peers at once, of 64 KiB
// each: 1 MiB. When all are lent, the reader waits for a peer to give one
// back rather than copy the datagram out (and then again into its
// message), and the datagrams behind wait in the socket's buffer. Few
// buffers, reused at once, stay in the CPU's caches: the kernel writes a
// fragment into one and the peer copies it out before either has gone
// cold. With 128 and no waiting (the reader copied when all were lent), a
// 1 MiB stream on loopback kept 2 to 4 MiB of fragments in the mailboxes,
// and the copies out of them ran at about 4 GB/s, where copies between
// buffers in the cache run at 18 to 27. Buffers, once made, are kept for
// reuse.
const lentBuffers = 16

// largeBatch is how many datagrams a batched read asks for after one that
// brought a datagram of lendMin bytes or more: 256 KiB of 64 KiB
// fragments, which the peer copies out while they are still in the cache,
// instead of a megabyte at a time.
const largeBatch = 4

// lendMin is the smallest datagram whose buffer is lent rather than its
// bytes copied: a buffer is 64 KiB, and lending it for a 1,200-byte
// datagram would hold fifty times the bytes for one copy saved.
const lendMin = 16 << 10

// readBufferSize is the size of a read buffer: the largest datagram and
// one byte spare, so a larger one shows as such (see dispatch).
const readBufferSize = wire.MaxDatagram + 1

// newDatagramReader reads in batches with recvmmsg where it can (a
// *net.UDPConn on 64-bit Linux, Config.Batch above 1), else one datagram
// per call.
func (e *Endpoint) newDatagramReader() datagramReader {
	if e.udp != nil && e.cfg.Batch > 1 {
		if b := newBatchReader(e.udp, e.cfg.Batch); b != nil {
			return b
		}
	}
	return newSingleReader(e.udp, e.conn)
}

func newSingleReader(udp *net.UDPConn, conn net.PacketConn) *singleReader {
	if udp != nil {
		conn = udp
	}
	buf := make([]byte, readBufferSize)
	return &singleReader{udp: udp, conn: conn, buf: &buf}
}

// singleReader reads one datagram per call. A *net.UDPConn gives the
// source as a netip.AddrPort without allocating; other conns give a
// net.Addr.
type singleReader struct {
	udp  *net.UDPConn
	conn net.PacketConn
	buf  *[]byte
	n    int
	src  netip.AddrPort
	from net.Addr
}

func (r *singleReader) read() (int, error) {
	var err error
	if r.udp != nil {
		r.n, r.src, err = r.udp.ReadFromUDPAddrPort(*r.buf)
	} else {
		r.n, r.from, err = r.conn.ReadFrom(*r.buf)
	}
	if err != nil {
		return 0, err
	}
	return 1, nil
}

func (r *singleReader) datagram(int) ([]byte, netip.AddrPort, bool) {
	if r.udp != nil {
		return (*r.buf)[:r.n], r.src, true
	}
	src, err := addrPort(r.from)
	return (*r.buf)[:r.n], src, err == nil
}

func (r *singleReader) lend(_ int, bufs *peer.Buffers, stop <-chan struct{}) *[]byte {
	next, ok := bufs.Get(stop)
	if !ok {
		return nil
	}
	b := r.buf
	r.buf = next
	return b
}

// fail records that the socket was closed underneath the endpoint: every
// peer fails what it has with ErrClosed, and no new peer starts. Close
// reports the error.
func (e *Endpoint) fail(err error) {
	e.mu.Lock()
	e.broken = fmt.Errorf("%w: the socket failed underneath the endpoint: %w", peer.ErrClosed, err)
	e.mu.Unlock()
	if e.cfg.Logger != nil {
		e.cfg.Logger.Error("gtudp: socket closed underneath the endpoint; pending messages fail", "err", err)
	}
	e.abort()
}

// dispatch handles one datagram from src. at is the time its read
// returned, taken on first need; lend gives the datagram's buffer away.
func (e *Endpoint) dispatch(src netip.AddrPort, b []byte, at *time.Time, lend func() *[]byte) {
	pkt, err := e.cfg.Params.Format.Decode(b)
	if err == nil && len(b) > wire.MaxDatagram {
		// Larger than any UDP datagram on IPv4: not ours.
		err = wire.ErrForeign
	}
	if err != nil {
		if len(b) > 0 && errors.Is(err, wire.ErrTruncated) {
			e.ctr.malformed.Add(1)
		} else {
			e.ctr.foreign.Add(1)
		}
		if e.cfg.Passthrough {
			e.deliverRaw(src, b)
		}
		return
	}
	// What the datagram holds: payloads to copy (and charge to the
	// budget), and whether it needs a peer of src.
	held, needsPeer, frags := 0, pkt.Kind == wire.Data, false
	switch pkt.Kind {
	case wire.Data:
		held = len(pkt.Payload)
	case wire.Ext:
		_, recs, err := wire.ParseExt(pkt.Payload)
		if err != nil {
			e.ctr.malformed.Add(1) // one of ours, but broken: none of it is used
			return
		}
		for r, ok := recs.Next(); ok; r, ok = recs.Next() {
			switch r.Type {
			case wire.RecData, wire.RecFrag:
				held += len(r.Payload)
				needsPeer = true
				frags = frags || r.Type == wire.RecFrag
			}
		}
	}
	in := peer.Inbound{Packet: pkt, Size: len(b)}
	if pkt.Kind != wire.Data {
		if at.IsZero() {
			*at = e.cfg.Clock.Now()
		}
		in.At = *at
	}
	// The payload leaves the reader: the peer gets its own copy, which
	// becomes the user's on delivery; or, for fragments of a large
	// message, the read buffer itself, lent, so that they are copied only
	// once, into their message. The bytes of the messages in it are taken
	// from the endpoint's budget first (the peer gives them back); past
	// the budget the datagram is dropped unanswered, and its sender
	// re-sends later. RECV and ACK keep their trailing bytes (the gtudp
	// extension's trailer) the same way, outside the budget: they are
	// small.
	if held > 0 && !e.cfg.Params.Budget.Take(held) {
		e.ctr.overBudget.Add(1)
		return
	}
	if frags && len(b) >= lendMin {
		in.Lent = lend()
	}
	if in.Lent == nil {
		in.Packet.Payload = bytes.Clone(pkt.Payload)
	}
	if !e.handOver(src, pkt, needsPeer, in, len(b)) {
		e.cfg.Params.Budget.Give(held)
		if in.Lent != nil {
			e.cfg.Params.ReadBuffers.Put(in.Lent)
		}
	}
}

// handOver puts in into the mailbox of src's peer and reports whether it
// did.
func (e *Endpoint) handOver(src netip.AddrPort, pkt wire.Packet, needsPeer bool, in peer.Inbound, size int) bool {
	for attempt := range 2 {
		// The peer of the last datagram is likely this one's too: no
		// lock, no lookup. One that has ended refuses the Put, and the
		// table is asked again.
		p := e.lastPeer
		if attempt > 0 || p == nil || src != e.lastSrc {
			if p = e.peerFor(src, pkt, needsPeer, size); p == nil {
				return false
			}
		}
		switch err := p.Put(in); {
		case err == nil:
			e.lastSrc, e.lastPeer = src, p
			return true
		case errors.Is(err, mailbox.ErrFull):
			e.ctr.mailboxFull.Add(1)
			return false
		}
		// The peer has ended and left the table (or is about to): look
		// again, once.
		e.lastPeer = nil
		e.mu.Lock()
		if e.peers[src] == p {
			delete(e.peers, src)
		}
		e.mu.Unlock()
	}
	e.ctr.mailboxFull.Add(1)
	return false
}

// peerFor returns the peer of src from the table, starting one for a
// packet that needs one (a DATA, or an EXT datagram with messages in it)
// from a new address. It returns nil when the packet needs no peer (RECVs
// or ACKs from an address without one: the RECVs are counted and answered
// here) or cannot have one (MaxPeers, closing).
func (e *Endpoint) peerFor(src netip.AddrPort, pkt wire.Packet, needsPeer bool, size int) *peer.Peer {
	e.mu.Lock()
	p := e.peers[src]
	if p != nil {
		e.mu.Unlock()
		return p
	}
	if !needsPeer {
		// No exchange with src at all: our ACK may have been lost after
		// the exchange ended. Counted before it is answered, so whoever
		// sees the ACK finds it counted.
		e.mu.Unlock()
		e.answerStray(src, pkt, size)
		return nil
	}
	p, err := e.startLocked(src, false)
	e.mu.Unlock()
	if errors.Is(err, ErrPeerLimit) {
		e.ctr.peerLimited.Add(1)
	}
	return p
}

// answerStray answers RECVs from an address with no peer with their ACKs,
// and counts them and any ACKs: the original ACKs a RECV for an id it has
// forgotten too (our earlier ACK was lost). It needs no state, and no DATA
// of those ids can be pending without a peer, so no DATA can follow these
// ACKs. A plain RECV with our trailer (a gtudp peer's probe) is answered
// with the trailer, as large as the RECV; RECVs in an EXT datagram with
// one EXT datagram, no larger. It runs in the reader's goroutine and uses
// the reader's ACK buffer.
func (e *Endpoint) answerStray(src netip.AddrPort, pkt wire.Packet, size int) {
	f := e.cfg.Params.Format
	switch pkt.Kind {
	case wire.Ack:
		e.ctr.strayAck.Add(1)
		return
	case wire.Recv:
		e.ctr.strayRecv.Add(1)
		var trailer []byte
		if _, ok := wire.ParseTrailer(pkt.Payload); ok && len(f.Ext) > 0 {
			trailer = wire.AppendTrailer(e.trailer[:0], wire.Trailer{Version: wire.ExtVersion, Incarnation: e.cfg.Params.Incarnation})
			e.trailer = trailer
		}
		e.answerRecv(src, pkt.ID, trailer, size)
		return
	}
	// An EXT datagram of RECVs and ACKs: one ACK record for all its RECVs.
	_, recs, _ := wire.ParseExt(pkt.Payload)
	e.strayIDs = e.strayIDs[:0]
	for r, ok := recs.Next(); ok; r, ok = recs.Next() {
		switch r.Type {
		case wire.RecRecv:
			for i := range r.NumIDs() {
				e.strayIDs = append(e.strayIDs, r.IDAt(i))
			}
		}
	}
	// Counted per datagram, as every datagram the reader takes is counted
	// once somewhere.
	if len(e.strayIDs) == 0 {
		e.ctr.strayAck.Add(1) // ACKs only, or no record at all: ignored
		return
	}
	e.ctr.strayRecv.Add(1)
	b := f.AppendExt(e.ack[0][:0], wire.ExtHeader{Version: wire.ExtVersion, Incarnation: e.cfg.Params.Incarnation})
	e.ack[0] = wire.AppendIDs(b, wire.RecAck, e.strayIDs)
	if _, err := e.out.WriteBatch(e.ack, src); err != nil {
		e.ctr.ackWriteErrors.Add(1)
	}
}

// answerRecv writes the ACK, with trailer if it is not nil, for a RECV of
// size bytes.
func (e *Endpoint) answerRecv(src netip.AddrPort, id wire.ID, trailer []byte, size int) {
	e.ack[0] = e.cfg.Params.Format.Append(e.ack[0][:0], wire.Packet{Kind: wire.Ack, ID: id, Payload: trailer})
	if e.cfg.Logger != nil && e.cfg.Logger.Enabled(context.Background(), slog.LevelDebug) {
		e.logPacket(src, "IN", wire.Recv, id, size)
		e.logPacket(src, "OUT", wire.Ack, id, len(e.ack[0]))
	}
	if _, err := e.out.WriteBatch(e.ack, src); err != nil {
		e.ctr.ackWriteErrors.Add(1)
	}
}

// logPacket writes the original's debug line for a packet the reader
// handled itself, as the peers do for theirs.
func (e *Endpoint) logPacket(src netip.AddrPort, dir string, k wire.Kind, id wire.ID, size int) {
	e.cfg.Logger.LogAttrs(context.Background(), slog.LevelDebug, dir,
		slog.Any("peer", src),
		slog.String("kind", k.String()),
		slog.String("id", id.String()),
		slog.Int("size", size))
}

// deliverRaw hands a foreign datagram to the App, or drops and counts it
// if the Inbox is full: the reader never waits.
func (e *Endpoint) deliverRaw(src netip.AddrPort, b []byte) {
	if e.app.Deliver(peer.Delivery{Addr: src, Data: bytes.Clone(b), Raw: true}) {
		e.ctr.rawDelivered.Add(1)
	} else {
		e.ctr.rawDropped.Add(1)
	}
}
