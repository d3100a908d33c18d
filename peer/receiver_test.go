package peer_test

import (
	"bytes"
	"testing"

	"github.com/gtudp/gtudp/peer"
	"github.com/gtudp/gtudp/wire"
)

// Compact, which the Peer calls whenever it goes quiet, releases only
// what is kept for reuse: an exchange delivered and awaiting its ACK
// stays open, and the ACK ends it.
func TestState_CompactKeepsExchangesAwaitingAck(t *testing.T) {
	h := newHarness(t, testParams(), true)
	id := wire.ID{0, 0, 0, 9}
	h.recv(wire.Data, id, "hello")
	if got := h.deliverAll(); len(got) != 1 {
		t.Fatalf("delivered %q, want the one message", got)
	}
	if p := h.onePacket(wire.Recv); p.ID != id {
		t.Fatalf("RECV for %v, want %v", p.ID, id)
	}
	h.s.Compact()
	if st := h.s.Stats(); st.Open != 1 {
		t.Fatalf("after Compact: %d exchanges open, want the one awaiting its ACK", st.Open)
	}
	h.recv(wire.Ack, id, "")
	if st := h.s.Stats(); st.Open != 0 || st.UnknownAck != 0 || st.Remembered != 1 {
		t.Fatalf("after its ACK: open %d, unknown ACKs %d, remembered %d; want 0 0 1", st.Open, st.UnknownAck, st.Remembered)
	}
	h.recv(wire.Data, id, "hello")
	if got := h.deliverAll(); len(got) != 0 {
		t.Fatalf("a repeat after the ACK delivered %q", got)
	}
}

// Compact keeps a message in fragments half received: the rest of it
// completes it.
func TestState_CompactKeepsMessagesInFragments(t *testing.T) {
	p := extParams(2)
	b := peer.NewState(p, remote, epoch, [5]uint32{6}, true)
	msg := wire.ID{7, 7, 7, 7}
	first, second := bytes.Repeat([]byte{'a'}, 1000), bytes.Repeat([]byte{'b'}, 1000)
	want := bytes.Join([][]byte{first, second}, nil)
	fragAt := func(id wire.ID, off int, payload []byte) {
		t.Helper()
		dg := p.Format.AppendExt(nil, wire.ExtHeader{Version: wire.ExtVersion, Incarnation: 1})
		dg = wire.AppendFrag(dg, id, msg, 2000, uint64(off), payload)
		pkt, err := p.Format.Decode(dg)
		if err != nil {
			t.Fatal(err)
		}
		b.Receive(epoch, pkt, len(dg))
	}
	fragAt(wire.ID{1}, 0, first)
	if n := extAnswers(p, b.TakeDatagrams(nil)); n != 1 {
		t.Fatalf("%d EXT answers to the first fragment, want its RECV", n)
	}
	b.Compact()
	fragAt(wire.ID{2}, 1000, second)
	m, ok := b.Next()
	if !ok || !bytes.Equal(m.Data, want) {
		t.Fatalf("after Compact and the second half: delivery %v of %d bytes, want the 2,000 bytes", ok, len(m.Data))
	}
}
