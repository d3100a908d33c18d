package actor

import (
	"net/netip"

	"github.com/gtudp/gtudp/peer"
)

// SetBeforePacket installs a hook that runs in the goroutines of the peers
// of endpoints made from now on, before they handle each packet, so tests
// can make a peer panic. The returned function removes it. Tests that use
// it must not run in parallel with others.
func SetBeforePacket(f func(netip.AddrPort, peer.Inbound)) (restore func()) {
	beforePacket = f
	return func() { beforePacket = nil }
}

// LargeBatch is how many datagrams a batched read asks for after a large
// one.
const LargeBatch = largeBatch

// LentBuffers is how many read buffers the reader lends at once.
const LentBuffers = lentBuffers
