package actor

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// ErrBadAddress: a destination the socket can never send to — invalid,
// port 0, or of an address family the socket does not reach (an IPv6
// address from an IPv4 socket, or the reverse). Such a send fails at once
// rather than at its Lifetime.
var ErrBadAddress = errors.New("gtudp: bad destination address")

// reach says which address families a socket can send to.
type reach struct {
	v4, v6 bool
	what   string // for errors: "an IPv4 socket", "an IPv6-only socket"
}

// check returns nil if addr (unmapped) can be sent to, or an error
// matching ErrBadAddress that says why not.
func (r reach) check(addr netip.AddrPort) error {
	switch {
	case !addr.IsValid() || addr.Port() == 0:
		return fmt.Errorf("%w: %v", ErrBadAddress, addr)
	case addr.Addr().Is4() && !r.v4, addr.Addr().Is6() && !r.v6:
		return fmt.Errorf("%w: %v cannot be reached from %s", ErrBadAddress, addr, r.what)
	}
	return nil
}

// socketReach finds out what conn can send to. A UDP socket is asked (its
// family, and for IPv6 whether it is IPv6-only); any other conn is
// assumed to reach both families, and its errors say otherwise.
func socketReach(conn net.PacketConn) reach {
	u, ok := conn.(*net.UDPConn)
	if !ok {
		return reach{v4: true, v6: true}
	}
	if r, ok := askSocket(u); ok {
		return r
	}
	// The platform cannot say: judge by the bound address. A wildcard
	// may be dual-stack, so it is given the benefit of the doubt.
	a, _ := addrPort(u.LocalAddr())
	switch {
	case a.Addr().IsUnspecified() || !a.IsValid():
		return reach{v4: true, v6: true}
	case a.Addr().Is4():
		return reach{v4: true, what: "an IPv4 socket"}
	}
	return reach{v6: true, what: "an IPv6 socket"}
}

// checkConn refuses a conn an endpoint cannot serve, and clears a read
// deadline it inherits (one already in the past would leave the reader
// deaf, spinning on timeouts).
func checkConn(conn net.PacketConn) error {
	if u, ok := conn.(*net.UDPConn); ok && u.RemoteAddr() != nil {
		return fmt.Errorf("gtudp: the socket is connected to %v: an endpoint talks to many addresses and needs an unconnected socket (net.ListenUDP or net.ListenPacket)", u.RemoteAddr())
	}
	if err := conn.SetReadDeadline(time.Time{}); err != nil {
		return fmt.Errorf("gtudp: clearing the socket's read deadline: %w", err)
	}
	return nil
}
