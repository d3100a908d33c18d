package actor

import (
	"net"
	"net/netip"

	"github.com/gtudp/gtudp/peer"
)

// BatchConn reads and writes a UDP socket the way an Endpoint does: in
// batches, with recvmmsg(2) and sendmmsg(2), on 64-bit Linux, and one
// datagram per call elsewhere. Neither path allocates. An application
// needs only the Endpoint; BatchConn exists so that a tool can measure
// against the same system calls ("gtudp bench" runs the bare exchange on
// it).
//
// Read and Datagram belong to one goroutine; WriteBatch is safe for
// concurrent use.
type BatchConn struct {
	r datagramReader
	w *batchWriter
	c *net.UDPConn
}

// NewBatchConn wraps c, reading up to batch datagrams per call (1: one at
// a time, and writes one at a time too). The read buffers take 64 KiB
// per datagram of the batch.
func NewBatchConn(c *net.UDPConn, batch int) *BatchConn {
	b := &BatchConn{c: c}
	if batch > 1 {
		if r := newBatchReader(c, batch); r != nil {
			b.r = r
		}
		b.w = newBatchWriter(c, batch)
	}
	if b.r == nil {
		b.r = newSingleReader(c, c)
	}
	return b
}

// Read waits for datagrams and returns how many arrived (at least one when
// err is nil).
func (b *BatchConn) Read() (int, error) { return b.r.read() }

// Datagram returns the i-th datagram of the last Read, valid until the
// next, and its sender.
func (b *BatchConn) Datagram(i int) ([]byte, netip.AddrPort) {
	d, src, _ := b.r.datagram(i) // a *net.UDPConn always knows the source
	return d, unmap(src)
}

// WriteBatch writes each of bufs to addr and returns how many were
// written, with the error that stopped it.
func (b *BatchConn) WriteBatch(bufs [][]byte, addr netip.AddrPort) (int, error) {
	if b.w != nil {
		return b.w.WriteBatch(bufs, addr)
	}
	return writeEach(b.c, bufs, addr)
}

// writeEach writes bufs to addr one datagram per call, and returns how
// many were written, with the error that stopped it.
func writeEach(c *net.UDPConn, bufs [][]byte, addr netip.AddrPort) (int, error) {
	for i, d := range bufs {
		if _, err := c.WriteToUDPAddrPort(d, addr); err != nil {
			return i, err
		}
	}
	return len(bufs), nil
}

// newSender returns the write path of conn, the one every datagram the
// endpoint sends takes: sendmmsg(2) on 64-bit Linux for a *net.UDPConn
// (batch above 1), else one write per datagram.
func newSender(conn net.PacketConn, batch int) peer.Sender {
	u, ok := conn.(*net.UDPConn)
	if !ok {
		return packetSender{conn}
	}
	if batch > 1 {
		if w := newBatchWriter(u, batch); w != nil {
			return w
		}
	}
	return udpSender{u}
}

// udpSender writes to a *net.UDPConn one datagram per call, without
// converting the address.
type udpSender struct{ c *net.UDPConn }

func (s udpSender) WriteBatch(bufs [][]byte, to netip.AddrPort) (int, error) {
	return writeEach(s.c, bufs, to)
}

// packetSender writes to any net.PacketConn, one datagram per call.
type packetSender struct{ c net.PacketConn }

func (s packetSender) WriteBatch(bufs [][]byte, to netip.AddrPort) (int, error) {
	addr := net.UDPAddrFromAddrPort(to)
	for i, b := range bufs {
		if _, err := s.c.WriteTo(b, addr); err != nil {
			return i, err
		}
	}
	return len(bufs), nil
}
