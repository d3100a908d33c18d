//go:build !unix

package actor

import "net"

// askSocket cannot ask the socket here; see socketReach.
func askSocket(*net.UDPConn) (reach, bool) { return reach{}, false }
