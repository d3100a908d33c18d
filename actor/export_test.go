package actor

import (
	"net/netip"

	"github.com/gtudp/gtudp/peer"
)

// SetBeforePacket installs a hook that runs in a peer's goroutine before it
// handles each packet, so tests can make a peer panic.
func SetBeforePacket(c *Config, f func(netip.AddrPort, peer.Inbound)) { c.beforePacket = f }
