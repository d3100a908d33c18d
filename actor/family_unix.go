//go:build unix

package actor

import (
	"net"

	"golang.org/x/sys/unix"
)

// askSocket asks the kernel for the socket's family and, for IPv6, whether
// it is IPv6-only (Go's "udp6" sockets are; its "udp" wildcard sockets are
// dual-stack whatever address they show).
func askSocket(u *net.UDPConn) (reach, bool) {
	raw, err := u.SyscallConn()
	if err != nil {
		return reach{}, false
	}
	var r reach
	ok := false
	raw.Control(func(fd uintptr) {
		sa, err := unix.Getsockname(int(fd))
		if err != nil {
			return
		}
		switch sa.(type) {
		case *unix.SockaddrInet4:
			r, ok = reach{v4: true, what: "an IPv4 socket"}, true
		case *unix.SockaddrInet6:
			only, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_V6ONLY)
			if err != nil {
				return
			}
			r, ok = reach{v4: only == 0, v6: true, what: "an IPv6-only socket"}, true
		}
	})
	return r, ok
}
