package peer_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gtudp/gtudp/peer"
	"github.com/gtudp/gtudp/wire"
)

// A message in fragments succeeds only once the receiver's application
// has it: the RECVs of the fragments that did not complete it come at
// once, and are not enough.
func TestState_FragmentedMessageSucceedsOnDelivery(t *testing.T) {
	d := negotiated(t, extParams(1), extParams(2))
	d.send(d.a, strings.Repeat("f", 5000))
	if n := d.hop("a", d.a, d.fa, d.b, d.fb); n < 2 {
		t.Fatalf("5,000 bytes went in %d datagrams, want fragments in several", n)
	}
	if n := d.hop("b", d.b, d.fb, d.a, d.fa); n == 0 {
		t.Fatal("no RECV for the fragments that did not complete the message")
	}
	if out := d.a.TakeOutcomes(nil); len(out) != 0 {
		t.Fatalf("%d outcomes (first: error %v) before the receiver's application took the message, want none", len(out), out[0].Receipt.Err)
	}
	d.run() // b's application takes it: its RECV goes
	out := d.a.TakeOutcomes(nil)
	if len(d.received) != 1 || len(out) != 1 || out[0].Receipt.Err != nil {
		t.Fatalf("after delivery: %d received, %d outcomes; want one success", len(d.received), len(out))
	}
}

// The RTT of a message in fragments runs from its first fragment's first
// transmission, however late its last fragment went.
func TestState_FragmentedMessageRTTFromFirstTransmission(t *testing.T) {
	d := negotiated(t, extParams(1), extParams(2))
	start := epoch.Add(time.Second)
	d.now = start
	d.a.Tick(d.now)
	// Two fragments: the answer to the second alone does not make the
	// first lost by packets, only by time.
	d.send(d.a, strings.Repeat("f", 2000))
	dropped := false
	d.drop = func(from string, p wire.Packet) bool {
		if from == "a" && p.Kind == wire.Ext && !dropped {
			dropped = true // the first fragment's first datagram
			return true
		}
		return false
	}
	d.run()
	var out []peer.Outcome
	for range 20 {
		if out = d.a.TakeOutcomes(nil); len(out) > 0 {
			break
		}
		d.now = d.a.NextDeadline()
		if d.now.IsZero() {
			t.Fatal("no deadline with a fragment lost")
		}
		d.a.Tick(d.now)
		d.run()
	}
	if len(out) != 1 || out[0].Receipt.Err != nil {
		t.Fatalf("%d outcomes, want one success", len(out))
	}
	if d.now == start {
		t.Fatal("the lost fragment went again at once: want it re-sent later")
	}
	if got, want := out[0].Receipt.RTT, d.now.Sub(start); got != want {
		t.Fatalf("RTT %v, want %v: from the first transmission to the last RECV", got, want)
	}
}

// Hungry counts the bytes of a message in fragments not yet cut: one
// cancelled part way gives back those, no more, and the backlog behind
// it counts in full.
func TestState_HungryAfterCancelInFragments(t *testing.T) {
	d := negotiated(t, extParams(1), extParams(2))
	big := peer.Outgoing{ID: uuid.New(), Data: make([]byte, 1<<20)}
	if err := d.a.Send(d.now, big); err != nil {
		t.Fatal(err)
	}
	// Queued behind the first, not cut: the window is full.
	const backlog = 64<<10 + 1000 // above minBacklog, which is above 2 windows
	if err := d.a.Send(d.now, peer.Outgoing{ID: uuid.New(), Data: make([]byte, backlog)}); err != nil {
		t.Fatal(err)
	}
	if st := d.a.Stats(); 2*st.Cwnd >= backlog || st.InFlightBytes == 0 {
		t.Fatalf("window %d, in flight %d: want the first message cut in part, in a window under %d", st.Cwnd, st.InFlightBytes, backlog/2)
	}
	if d.a.Hungry() {
		t.Fatal("hungry with a MiB unsent")
	}
	if !d.a.Cancel(d.now, big.ID, context.Canceled) {
		t.Fatal("Cancel did not find the message")
	}
	if d.a.Hungry() {
		t.Fatalf("hungry after the cancel, with %d bytes of the second message unsent", backlog)
	}
}

// A message parked while the probe asks whether the peer speaks the
// extension, and cancelled there, leaves nothing parked: the probe is not
// sent again for it.
func TestState_CancelParkedStopsTheProbe(t *testing.T) {
	a := peer.NewState(extParams(1), remote, epoch, [5]uint32{1}, true)
	m := peer.Outgoing{ID: uuid.New(), Data: make([]byte, 5000)}
	if err := a.Send(epoch, m); err != nil {
		t.Fatal(err)
	}
	if out := decode(t, a.TakeDatagrams(nil)); len(out) != 1 || out[0].Kind != wire.Recv {
		t.Fatalf("first datagrams %v, want the probe's RECV", out)
	}
	if !a.Cancel(epoch, m.ID, context.Canceled) {
		t.Fatal("Cancel did not find the parked message")
	}
	for {
		next := a.NextDeadline()
		if next.IsZero() {
			break
		}
		if next.Sub(epoch) > time.Minute {
			t.Fatalf("deadline %v after the cancel, want none", next.Sub(epoch))
		}
		a.Tick(next)
		if out := decode(t, a.TakeDatagrams(nil)); len(out) != 0 {
			t.Fatalf("at %v, with nothing parked: sent %v", next.Sub(epoch), out)
		}
	}
}

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
