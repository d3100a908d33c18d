package actor

import (
	"net"
	"syscall"
)

// DefaultSocketBuffer is the default of Config.SocketBuffer: a burst of a
// full default window of small DATA costs about 1 KiB of kernel memory per
// datagram, beyond the usual 208 KiB default, so smaller buffers turn
// bursts into losses the protocol must then repair.
const DefaultSocketBuffer = 4 << 20

// setSocketBuffers asks the kernel for size bytes of receive and send
// buffer on conn, if it is a socket, and returns the sizes granted (0 when
// unknown): the kernel may cap them (net.core.rmem_max and wmem_max on
// Linux).
func setSocketBuffers(conn net.PacketConn, size int) (rcv, snd int) {
	type buffered interface {
		SetReadBuffer(int) error
		SetWriteBuffer(int) error
	}
	b, ok := conn.(buffered)
	if !ok {
		return 0, 0
	}
	_ = b.SetReadBuffer(size)
	_ = b.SetWriteBuffer(size)
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return 0, 0
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, 0
	}
	return socketBufferSizes(raw)
}
