package peer_test

import (
	"testing"

	"github.com/gtudp/gtudp/wire"
)

// Every packet received counts in PacketsIn and its size in BytesIn,
// whatever it is and whatever becomes of it.
func TestState_CountsPacketsIn(t *testing.T) {
	h := newHarness(t, testParams(), true)
	h.recv(wire.Data, wire.ID{1}, "hello") // 10 bytes
	h.recv(wire.Data, wire.ID{1}, "hello") // a repeat
	h.recv(wire.Ack, wire.ID{2}, "")       // unknown
	h.recv(wire.Recv, wire.ID{3}, "")      // unknown
	if st := h.s.Stats(); st.PacketsIn != 4 || st.BytesIn != 30 {
		t.Fatalf("PacketsIn %d, BytesIn %d; want 4 and 30", st.PacketsIn, st.BytesIn)
	}
}
