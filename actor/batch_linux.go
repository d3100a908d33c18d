//go:build linux && (amd64 || arm64 || ppc64 || ppc64le || mips64 || mips64le || riscv64 || s390x || loong64)

package actor

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gtudp/gtudp/peer"
)

// mmsghdr is the kernel's struct mmsghdr on 64-bit Linux: a msghdr and the
// length received, padded to 8 bytes.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [4]byte
}

// batchReader reads up to len(hdrs) datagrams per recvmmsg(2) from a UDP
// socket, through the socket's RawConn so that the runtime's poller still
// does the waiting (and deadlines and Close still work).
//
// golang.org/x/net/ipv4's ReadBatch does the same but allocates a
// *net.UDPAddr per datagram; this decodes the sender into a netip.AddrPort
// in place, so a batch allocates nothing.
//
// Each slot has a buffer of the largest datagram (plus one byte, to spot a
// larger one): a datagram truncated to a smaller buffer would be lost for
// good, as each of its re-sends would be truncated too.
//
// A batchReader is owned by the reader goroutine.
type batchReader struct {
	raw   syscall.RawConn
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // large enough for either family
	bufs  [][]byte
	ptrs  []*[]byte         // bufs[i] is *ptrs[i]: what lend gives away
	zones map[uint32]string // interface names of the IPv6 scope ids seen

	// vlen is how many datagrams the next call asks for: it doubles while
	// calls come back full and falls to what the last one got, so a call
	// prepares and asks for about what is there (measured: a few per cent
	// more throughput on loopback than always asking for len(hdrs)).
	vlen  int
	got   int
	errno syscall.Errno
	recv  func(fd uintptr) bool // b.recvmmsg, bound once
}

// newBatchReader returns a reader of batches of size datagrams from c, or
// nil if c has no usable RawConn (the caller then reads one at a time).
func newBatchReader(c *net.UDPConn, size int) *batchReader {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	b := &batchReader{
		raw:   raw,
		hdrs:  make([]mmsghdr, size),
		iovs:  make([]unix.Iovec, size),
		names: make([]unix.RawSockaddrInet6, size),
		bufs:  make([][]byte, size),
		ptrs:  make([]*[]byte, size),
	}
	for i := range size {
		buf := make([]byte, readBufferSize)
		b.bufs[i], b.ptrs[i] = buf, &buf
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(len(b.bufs[i]))
		b.hdrs[i].hdr.Iov = &b.iovs[i]
		b.hdrs[i].hdr.SetIovlen(1)
		b.hdrs[i].hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
	}
	b.recv = b.recvmmsg
	b.vlen = size
	return b
}

// mmsg makes the recvmmsg or sendmmsg system call (trap) on hdrs,
// again when a signal interrupts it. ready is false when the socket would
// block: a RawConn callback then returns false, for the poller to wait.
func mmsg(trap, fd uintptr, hdrs []mmsghdr) (n int, errno syscall.Errno, ready bool) {
	for {
		r, _, errno := unix.Syscall6(trap, fd, uintptr(unsafe.Pointer(&hdrs[0])), uintptr(len(hdrs)), 0, 0, 0)
		switch errno {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, 0, false
		}
		return int(r), errno, true
	}
}

// recvmmsg is the RawConn.Read callback.
func (b *batchReader) recvmmsg(fd uintptr) bool {
	var ready bool
	b.got, b.errno, ready = mmsg(unix.SYS_RECVMMSG, fd, b.hdrs[:b.vlen])
	return ready
}

// read waits for datagrams and returns how many arrived, at least one
// unless err is set. They stay valid until the next read.
func (b *batchReader) read() (int, error) {
	for i := range b.vlen {
		b.hdrs[i].hdr.Namelen = unix.SizeofSockaddrInet6
		b.hdrs[i].hdr.Flags = 0
		b.hdrs[i].n = 0
	}
	b.got, b.errno = 0, 0
	if err := b.raw.Read(b.recv); err != nil {
		return 0, err
	}
	if b.errno != 0 {
		return 0, os.NewSyscallError("recvmmsg", b.errno)
	}
	largest := 0
	for i := range b.got {
		largest = max(largest, int(b.hdrs[i].n))
	}
	if b.got == b.vlen {
		b.vlen = min(2*b.vlen, len(b.hdrs))
	} else {
		b.vlen = max(b.got, 1)
	}
	if largest >= lendMin {
		b.vlen = min(b.vlen, largeBatch)
	}
	return b.got, nil
}

func (b *batchReader) lend(i int, bufs *peer.Buffers, stop <-chan struct{}) *[]byte {
	next, ok := bufs.Get(stop)
	if !ok {
		return nil
	}
	lent := b.ptrs[i]
	b.ptrs[i] = next
	b.bufs[i] = *b.ptrs[i]
	b.iovs[i].Base = &b.bufs[i][0]
	b.iovs[i].SetLen(len(b.bufs[i]))
	return lent
}

// datagram returns the i-th datagram of the last read and its sender.
func (b *batchReader) datagram(i int) ([]byte, netip.AddrPort, bool) {
	src, ok := b.source(&b.names[i])
	return b.bufs[i][:b.hdrs[i].n], src, ok
}

func (b *batchReader) source(sa *unix.RawSockaddrInet6) (netip.AddrPort, bool) {
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port(&sa4.Port)), true
	case unix.AF_INET6:
		a := netip.AddrFrom16(sa.Addr)
		if sa.Scope_id != 0 {
			a = a.WithZone(b.zone(sa.Scope_id))
		}
		return netip.AddrPortFrom(a, port(&sa.Port)), true
	}
	return netip.AddrPort{}, false
}

// port reads a port stored in network byte order.
func port(p *uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(p))
	return uint16(b[0])<<8 | uint16(b[1])
}

// zone names an IPv6 scope as the net package does (the interface's name,
// else its index), so that one link-local peer is one key whichever way
// its address was read.
func (b *batchReader) zone(id uint32) string {
	if z, ok := b.zones[id]; ok {
		return z
	}
	z := strconv.FormatUint(uint64(id), 10)
	if ifi, err := net.InterfaceByIndex(int(id)); err == nil {
		z = ifi.Name
	}
	if b.zones == nil {
		b.zones = make(map[uint32]string)
	}
	b.zones[id] = z
	return z
}

// batchWriter writes datagrams to one address with sendmmsg(2), through
// the socket's RawConn so that the runtime's poller waits when the send
// buffer is full. It is safe for concurrent use: every peer writes through
// it, each call with scratch headers from a pool.
type batchWriter struct {
	*net.UDPConn // WriteTo, for whoever needs one datagram
	raw          syscall.RawConn
	inet6        bool // an AF_INET6 socket: IPv4 peers are written as mapped addresses
	max          int  // datagrams per sendmmsg
	scratch      sync.Pool
}

// sendScratch is one call's headers and destination.
type sendScratch struct {
	hdrs []mmsghdr
	iovs []unix.Iovec
	sa   unix.RawSockaddrInet6 // or a RawSockaddrInet4, in its first bytes
	todo []mmsghdr             // the part of hdrs still to send
	sent int
	err  syscall.Errno
	send func(fd uintptr) bool // s.sendmmsg, bound once
}

// newBatchWriter returns a writer for c that writes up to max datagrams
// per call, or nil if its socket cannot be reached (the caller then writes
// one datagram per call). A few dozen per call take nearly all the gain:
// a window's worth at once (1,024) measured slower on loopback, as the
// receiver then gets the whole burst before it can answer any of it.
func newBatchWriter(c *net.UDPConn, max int) *batchWriter {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	domain := -1
	if err := raw.Control(func(fd uintptr) {
		domain, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
	}); err != nil || domain == -1 {
		return nil
	}
	w := &batchWriter{UDPConn: c, raw: raw, inet6: domain == unix.AF_INET6, max: max}
	w.scratch.New = func() any {
		s := new(sendScratch)
		s.send = s.sendmmsg
		return s
	}
	return w
}

// WriteBatch writes each of bufs to addr and returns how many were
// written, with the error that stopped it.
func (w *batchWriter) WriteBatch(bufs [][]byte, addr netip.AddrPort) (int, error) {
	if len(bufs) == 1 || addr.Addr().Zone() != "" {
		// One datagram: sendto is the shorter way. A zoned (link-local)
		// address: the net package knows its interface's index.
		return writeEach(w.UDPConn, bufs, addr)
	}
	return w.write(len(bufs), func(i int) ([]byte, []byte) { return bufs[i], nil }, addr)
}

// WriteParts writes each of d, Head then Tail, as one datagram to addr
// (peer.PartsSender), and returns how many were written, with the error
// that stopped it.
func (w *batchWriter) WriteParts(d []peer.Datagram, addr netip.AddrPort) (int, error) {
	if addr.Addr().Zone() != "" {
		// Rare enough (link-local peers) to join the parts.
		for i, g := range d {
			b := append(g.Head[:len(g.Head):len(g.Head)], g.Tail...)
			if _, err := w.WriteToUDPAddrPort(b, addr); err != nil {
				return i, err
			}
		}
		return len(d), nil
	}
	return w.write(len(d), func(i int) ([]byte, []byte) { return d[i].Head, d[i].Tail }, addr)
}

// write writes n datagrams to addr with sendmmsg, the i-th made of the two
// parts part(i) returns (the second may be empty), and returns how many
// were written, with the error that stopped it.
func (w *batchWriter) write(n int, part func(i int) (head, tail []byte), addr netip.AddrPort) (int, error) {
	s := w.scratch.Get().(*sendScratch)
	defer func() {
		clear(s.iovs) // the buffers are the caller's again
		w.scratch.Put(s)
	}()
	namelen, err := s.setAddr(addr, w.inet6)
	if err != nil {
		return 0, err
	}
	// At most w.max per call: the scratch stays small, and the receiver
	// can start on the first datagrams before the last are written.
	total := 0
	for total < n {
		chunk := min(w.max, n-total)
		if cap(s.hdrs) < chunk {
			s.hdrs, s.iovs = make([]mmsghdr, w.max), make([]unix.Iovec, 2*w.max)
		}
		s.hdrs, s.iovs = s.hdrs[:chunk], s.iovs[:2*chunk]
		for i := range chunk {
			iov := s.iovs[2*i : 2*i+2]
			k := 0
			head, tail := part(total + i)
			for _, b := range [2][]byte{head, tail} {
				if len(b) > 0 {
					iov[k] = unix.Iovec{Base: &b[0]}
					iov[k].SetLen(len(b))
					k++
				}
			}
			s.hdrs[i] = mmsghdr{}
			s.hdrs[i].hdr.Name = (*byte)(unsafe.Pointer(&s.sa))
			s.hdrs[i].hdr.Namelen = namelen
			s.hdrs[i].hdr.Iov = &iov[0]
			s.hdrs[i].hdr.SetIovlen(k)
		}
		for done := 0; done < chunk; {
			s.todo, s.sent, s.err = s.hdrs[done:], 0, 0
			if err := w.raw.Write(s.send); err != nil {
				return total + done, err
			}
			if s.err != 0 {
				return total + done, os.NewSyscallError("sendmmsg", s.err)
			}
			if s.sent == 0 {
				return total + done, io.ErrShortWrite
			}
			// The rest, if any, in another call: it reports the error
			// that stopped this one.
			done += s.sent
		}
		total += chunk
	}
	return total, nil
}

// setAddr encodes addr as the socket's family wants it and returns its
// length.
func (s *sendScratch) setAddr(addr netip.AddrPort, inet6 bool) (uint32, error) {
	a := addr.Addr()
	if !inet6 {
		if !a.Is4() && !a.Is4In6() {
			return 0, fmt.Errorf("gtudp: cannot write to %v from an IPv4 socket", addr)
		}
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&s.sa))
		*sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.Unmap().As4()}
		setPort(&sa4.Port, addr.Port())
		return unix.SizeofSockaddrInet4, nil
	}
	s.sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: a.As16()} // As16 maps IPv4; no zone here
	setPort(&s.sa.Port, addr.Port())
	return unix.SizeofSockaddrInet6, nil
}

// sendmmsg is the RawConn.Write callback.
func (s *sendScratch) sendmmsg(fd uintptr) bool {
	var ready bool
	s.sent, s.err, ready = mmsg(unix.SYS_SENDMMSG, fd, s.todo)
	return ready
}

// setPort stores a port in network byte order.
func setPort(p *uint16, port uint16) {
	b := (*[2]byte)(unsafe.Pointer(p))
	b[0], b[1] = byte(port>>8), byte(port)
}
