package peer_test

import (
	"strings"
	"testing"
	"time"

	"github.com/gtudp/gtudp/peer"
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

// Every RECV the state tries to send is counted once: in PacketsOut if it
// went, in Limited if the amplification limit held it back. A RECV sent
// again counts in RecvResent, on a timeout or in answer to a repeat.
func TestState_CountsWhatGoesOutAndWhatIsHeldBack(t *testing.T) {
	cfg := testParams()
	cfg.RecvAttempts = 6
	h := newHarness(t, cfg, false)
	h.recv(wire.Data, wire.ID{1}, "") // 5 bytes in: three RECVs of 5 may go
	h.deliverAll()
	for i := 1; i <= 10; i++ {
		h.at(time.Duration(i) * time.Second) // a RECV re-sent at each
	}
	st := h.s.Stats()
	if n := len(h.packets()); n != 3 || st.PacketsOut != 3 || st.Limited != 3 || st.RecvResent != 5 || st.RecvGaveUp != 1 {
		t.Fatalf("%d packets; PacketsOut %d, Limited %d, RecvResent %d, RecvGaveUp %d; want 3 3 3 5 1",
			n, st.PacketsOut, st.Limited, st.RecvResent, st.RecvGaveUp)
	}

	h = newHarness(t, testParams(), true)
	h.recv(wire.Data, wire.ID{1}, "hello")
	h.deliverAll()
	h.onePacket(wire.Recv)
	h.recv(wire.Data, wire.ID{1}, "hello") // our RECV was lost
	h.onePacket(wire.Recv)
	if st := h.s.Stats(); st.RecvResent != 1 || st.PacketsOut != 2 {
		t.Fatalf("RECV again for a repeat: RecvResent %d, PacketsOut %d; want 1 and 2", st.RecvResent, st.PacketsOut)
	}
}

// Drain and Salvage give back to the budget the bytes of everything
// received and not delivered: held messages, messages in fragments not
// yet complete, and the fragments an unproved peer sent before it proved
// its address (the stash).
func TestState_EndGivesBackTheBudget(t *testing.T) {
	for _, tt := range []struct {
		name      string
		validated bool // a partial message if so, else a stash
		end       func(s *peer.State)
	}{
		{"Drain, partial", true, func(s *peer.State) { s.Drain(epoch) }},
		{"Drain, stash", false, func(s *peer.State) { s.Drain(epoch) }},
		{"Salvage, partial", true, func(s *peer.State) { s.Salvage(nil, nil) }},
		{"Salvage, stash", false, func(s *peer.State) { s.Salvage(nil, nil) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := extParams(2)
			p.Budget = peer.NewBudget(1 << 20)
			b := peer.NewState(p, remote, epoch, [5]uint32{6}, tt.validated)
			data := wire.Packet{Kind: wire.Data, ID: wire.ID{9}, Payload: []byte("hello")}
			p.Budget.Take(peer.Held(data)) // as the socket reader does
			b.Receive(epoch, data, 10)
			pkt, size := frag(p, wire.ID{1}, wire.ID{2}) // half of a message
			p.Budget.Take(peer.Held(pkt))
			b.Receive(epoch, pkt, size)
			if used := p.Budget.Used(); used < 1005 || b.Held() != 1 {
				t.Fatalf("budget used %d, %d held; want the DATA held and the fragment kept", used, b.Held())
			}
			tt.end(b)
			if used := p.Budget.Used(); used != 0 {
				t.Fatalf("budget used %d at the end, want 0", used)
			}
		})
	}
}

// Drain ends an exchange awaiting its ACK after one last RECV, counted as
// one sent again.
func TestState_DrainAnswersOnceMore(t *testing.T) {
	h := newHarness(t, testParams(), true)
	h.recv(wire.Data, wire.ID{1}, "hello")
	h.deliverAll()
	h.onePacket(wire.Recv)
	h.s.Drain(h.now)
	h.onePacket(wire.Recv)
	if st := h.s.Stats(); st.RecvResent != 1 || st.Open != 0 {
		t.Fatalf("after Drain: RecvResent %d, %d open; want 1 and 0", st.RecvResent, st.Open)
	}
}

// BytesOut counts every byte of the datagrams written, EXT ones too.
func TestState_CountsBytesOut(t *testing.T) {
	d := negotiated(t)
	before := d.a.Stats().BytesOut
	for range 40 {
		d.send(d.a, strings.Repeat("m", 100))
	}
	var n uint64
	for _, dg := range d.a.TakeDatagrams(nil) {
		n += uint64(len(dg))
	}
	if got := d.a.Stats().BytesOut - before; got != n {
		t.Fatalf("BytesOut grew by %d for %d bytes of datagrams", got, n)
	}
}
