package actor

import (
	"bytes"
	"errors"
	"fmt"
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
// Ownership: buf is the reader's alone. DATA payloads, and raw datagrams,
// are copied out of it before they leave the reader; RECV and ACK carry
// nothing that outlives the read.
func (e *Endpoint) readLoop() {
	defer e.wg.Done()
	buf := make([]byte, wire.MaxDatagram+1) // one byte spare: see dispatch
	ack := make([]byte, 0, e.cfg.format.HeaderLen())
	backoff := time.Duration(0)
	var lastLog time.Time
	// A *net.UDPConn reads the source as a netip.AddrPort without
	// allocating; other conns give a net.Addr.
	fast, _ := e.conn.(interface {
		ReadFromUDPAddrPort([]byte) (int, netip.AddrPort, error)
	})
	for {
		var n int
		var src netip.AddrPort
		var from net.Addr
		var err error
		if fast != nil {
			n, src, err = fast.ReadFromUDPAddrPort(buf)
			src = unmap(src)
		} else {
			n, from, err = e.conn.ReadFrom(buf)
		}
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
			if now := e.cfg.clock.Now(); e.cfg.logger != nil && now.Sub(lastLog) >= time.Second {
				lastLog = now
				e.cfg.logger.Warn("gtudp: socket read failed; retrying", "err", err, "errors", e.ctr.readErrors.Load())
			}
			backoff = min(max(2*backoff, minReadBackoff), maxReadBackoff)
			t := e.cfg.clock.Timer(backoff)
			select {
			case <-t.C:
			case <-e.stop:
				t.Stop()
				return
			}
			continue
		}
		backoff = 0
		if fast == nil {
			if src, err = addrPort(from); err != nil {
				e.ctr.foreign.Add(1)
				continue
			}
		}
		ack = e.dispatch(src, buf[:n], ack)
	}
}

// fail records that the socket was closed underneath the endpoint: every
// peer fails what it has with ErrClosed, and no new peer starts. Close
// reports the error.
func (e *Endpoint) fail(err error) {
	e.mu.Lock()
	e.broken = fmt.Errorf("%w: the socket failed underneath the endpoint: %w", peer.ErrClosed, err)
	e.mu.Unlock()
	if e.cfg.logger != nil {
		e.cfg.logger.Error("gtudp: socket closed underneath the endpoint; pending messages fail", "err", err)
	}
	e.abort()
}

// dispatch handles one datagram from src. It returns the ACK buffer for
// reuse.
func (e *Endpoint) dispatch(src netip.AddrPort, b, ack []byte) []byte {
	pkt, err := e.cfg.format.Decode(b)
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
		if e.cfg.passthrough {
			e.deliverRaw(src, b)
		}
		return ack
	}
	in := peer.Inbound{Packet: pkt, Size: len(b)}
	if pkt.Kind == wire.Data {
		// The payload leaves the reader: the peer gets its own copy,
		// which becomes the user's on delivery.
		in.Packet.Payload = bytes.Clone(pkt.Payload)
	} else {
		in.Packet.Payload = nil
	}
	for range 2 {
		e.mu.Lock()
		p := e.peers[src]
		if p == nil {
			switch pkt.Kind {
			case wire.Recv:
				e.mu.Unlock()
				// No exchange with src at all: our ACK may have been
				// lost after the exchange ended, so answer as the
				// original does. An ACK is no larger than the RECV, so
				// this cannot amplify.
				e.ctr.strayRecv.Add(1)
				ack = e.cfg.format.Append(ack[:0], wire.Packet{Kind: wire.Ack, ID: pkt.ID})
				if _, err := e.conn.WriteTo(ack, net.UDPAddrFromAddrPort(src)); err != nil {
					e.ctr.strayWriteErrors.Add(1)
				}
				return ack
			case wire.Ack:
				e.mu.Unlock()
				e.ctr.strayAck.Add(1)
				return ack
			}
			var err error
			if p, err = e.startLocked(src, false); err != nil {
				e.mu.Unlock()
				if errors.Is(err, ErrPeerLimit) {
					e.ctr.peerLimited.Add(1)
				}
				return ack
			}
		}
		e.mu.Unlock()
		switch err := p.Put(in); {
		case err == nil:
			return ack
		case errors.Is(err, mailbox.ErrFull):
			e.ctr.mailboxFull.Add(1)
			return ack
		}
		// The peer has ended and left the table (or is about to): look
		// again, once.
		e.mu.Lock()
		if e.peers[src] == p {
			delete(e.peers, src)
		}
		e.mu.Unlock()
	}
	e.ctr.mailboxFull.Add(1)
	return ack
}

// deliverRaw hands a foreign datagram to the Inbox, or drops and counts it
// if the Inbox is full: the reader never waits.
func (e *Endpoint) deliverRaw(src netip.AddrPort, b []byte) {
	select {
	case e.inbox <- peer.Message{Addr: src, Data: bytes.Clone(b), Raw: true}:
		e.ctr.rawDelivered.Add(1)
	default:
		e.ctr.rawDropped.Add(1)
	}
}
