package actor

import "syscall"

// socketBufferSizes reads back the buffer sizes. Linux reports twice the
// size requested (it counts its bookkeeping): halve it to compare.
func socketBufferSizes(raw syscall.RawConn) (rcv, snd int) {
	_ = raw.Control(func(fd uintptr) {
		r, err := syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
		if err == nil {
			rcv = r / 2
		}
		s, err := syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
		if err == nil {
			snd = s / 2
		}
	})
	return rcv, snd
}
