package peer_test

import (
	"testing"

	"github.com/gtudp/gtudp/wire"
)

// Compact, which the Peer calls whenever it goes quiet, keeps the
// messages in flight: their RECV still ends them.
func TestState_CompactKeepsMessagesInFlight(t *testing.T) {
	h := newHarness(t, testParams(), true)
	h.send(1, "hello")
	p := h.onePacket(wire.Data)
	h.s.Compact()
	if n := h.s.InFlight(); n != 1 {
		t.Fatalf("after Compact: %d in flight, want 1", n)
	}
	h.recv(wire.Recv, p.ID, "")
	out := h.outcomes()
	if len(out) != 1 || out[0].Receipt.Err != nil || h.s.Stats().UnknownRecv != 0 {
		t.Fatalf("after its RECV: outcomes %+v, unknown RECVs %d; want one success", out, h.s.Stats().UnknownRecv)
	}
	if n := h.s.InFlight(); n != 0 {
		t.Fatalf("after its RECV: %d in flight", n)
	}
}
