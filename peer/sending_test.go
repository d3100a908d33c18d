package peer_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gtudp/gtudp/peer"
	"github.com/gtudp/gtudp/wire"
)

// Messages parked while the probe asks whether the peer speaks the
// extension count apart from the backlog in Hungry, up to maxParked (1
// MiB), which they may not reach.
func TestState_HungryCountsParkedApart(t *testing.T) {
	a := peer.NewState(extParams(1), remote, epoch, [5]uint32{1}, true)
	send := func(n int) {
		t.Helper()
		if err := a.Send(epoch, peer.Outgoing{ID: uuid.New(), Data: make([]byte, n)}); err != nil {
			t.Fatal(err)
		}
	}
	send(1 << 19)
	if !a.Hungry() {
		t.Fatal("not hungry with only half a MiB parked")
	}
	send(1 << 19)
	if a.Hungry() {
		t.Fatal("hungry with 1 MiB parked")
	}
	if n := len(a.TakeDatagrams(nil)); n != 1 {
		t.Fatalf("%d datagrams, want the probe alone: both messages parked", n)
	}
}

// The pacer's gain follows the controller's mode: twice the window per
// SRTT in slow start, 1.25 times once a loss has ended slow start (the
// window then equals the threshold, and grows as in congestion
// avoidance).
func TestState_PacingGainLeavesSlowStartWithIt(t *testing.T) {
	cfg := testParams()
	cfg.Window = 8
	h := newHarness(t, cfg, true)
	h.at(time.Millisecond) // after the start of the recovery period (none)
	var ids []wire.ID
	for i, m := range []string{"a", "b", "c", "d", "e"} {
		h.send(byte(i), m)
		ids = append(ids, h.onePacket(wire.Data).ID)
	}
	gain := func(want float64, when string) {
		t.Helper()
		st := h.s.Stats()
		g := float64(st.PacingRate) / (float64(st.Cwnd) / st.SRTT.Seconds())
		if math.Abs(g-want) > 0.001 {
			t.Fatalf("%s: pacing rate %d B/s for a window of %d and SRTT %v: gain %.3f, want %v", when, st.PacingRate, st.Cwnd, st.SRTT, g, want)
		}
	}
	h.at(11 * time.Millisecond)
	h.recv(wire.Recv, ids[0], "")
	gain(2, "slow start")
	h.recv(wire.Recv, ids[4], "") // b is three behind: lost
	if st := h.s.Stats(); st.Lost != 1 {
		t.Fatalf("%d lost, want b", st.Lost)
	}
	gain(1.25, "after a loss")
}

// windowParams are extParams whose EXT datagrams hold exactly 1,152
// bytes of records, and that take a thousand messages at a time.
func windowParams() *peer.Params {
	p := extParams(1)
	p.DatagramSize = 1152 + p.Format.ExtOverhead()
	p.Window = 1000
	return p
}

// Records that fit in the open EXT datagram go past the window (they add
// no datagram), one that exactly fills it too; none goes once the window
// is full. The window is 12,280 bytes (ten datagrams of 1,228); a message
// of n bytes (n < 120) is a DATA record of n+6 bytes, charged n+14.
func TestState_WindowFullStopsFilling(t *testing.T) {
	for _, tt := range []struct {
		name   string
		first  int // bytes of the first message; the others have rest
		rest   int
		sent   int // messages sent, until the window stops them
		flying int
	}{
		// 32-byte records, 36 to a datagram: the 307th fills the window
		// to the byte, the 19th of its datagram; the 308th would fit.
		{"window full to the byte", 26, 26, 307, 12280},
		// 96-byte records, 12 to a datagram, after a first of 97: with
		// the window 7 bytes short, the 119th fills its datagram exactly.
		{"record fills the datagram exactly", 91, 90, 119, 12377},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := negotiated(t, windowParams(), extParams(2))
			if st := d.a.Stats(); st.Cwnd != 12280 || st.InFlightBytes != 0 || !st.Extension {
				t.Fatalf("after the negotiation: %+v, want a window of 12,280 bytes, empty", st)
			}
			d.send(d.a, strings.Repeat("m", tt.first))
			for range 2 * tt.sent {
				d.send(d.a, strings.Repeat("m", tt.rest))
			}
			records := 0
			for _, dg := range d.a.TakeDatagrams(nil) {
				p, err := d.fa.Decode(dg)
				if err != nil || p.Kind != wire.Ext {
					t.Fatalf("a wrote %x (%v), want EXT datagrams", dg, err)
				}
				_, recs, _ := wire.ParseExt(p.Payload)
				for _, ok := recs.Next(); ok; _, ok = recs.Next() {
					records++
				}
			}
			if st := d.a.Stats(); records != tt.sent || st.InFlightBytes != tt.flying {
				t.Fatalf("%d messages sent, %d bytes in flight; want %d and %d", records, st.InFlightBytes, tt.sent, tt.flying)
			}
		})
	}
}

// The window charges each record in an EXT datagram its bytes and a share
// of the datagram's headers (extShare, 8 bytes), but a fragment that
// starts a datagram, which is charged the datagram's headers in full (the
// EXT overhead, and 28 bytes of IP and UDP).
func TestState_WindowChargesRecordsAndHeaders(t *testing.T) {
	d := negotiated(t, extParams(1), extParams(2))
	d.send(d.a, "s")
	d.send(d.a, strings.Repeat("f", 3000))
	overhead := d.fa.ExtOverhead()
	want, frags, starts := 0, 0, 0
	for _, dg := range d.a.TakeDatagrams(nil) {
		p, err := d.fa.Decode(dg)
		if err != nil || p.Kind != wire.Ext {
			t.Fatalf("a wrote %x (%v), want EXT datagrams", dg, err)
		}
		_, recs, _ := wire.ParseExt(p.Payload)
		for i := 0; ; i++ {
			r, ok := recs.Next()
			if !ok {
				break
			}
			switch {
			case r.Type == wire.RecData:
				want += wire.DataLen(len(r.Payload)) + 8
			case r.Type == wire.RecFrag && i == 0:
				want += wire.FragLen(r.Total, r.Offset, len(r.Payload)) + overhead + 28
				frags++
				starts++
			case r.Type == wire.RecFrag:
				want += wire.FragLen(r.Total, r.Offset, len(r.Payload)) + 8
				frags++
			}
		}
	}
	if frags < 3 || starts < 2 || starts == frags {
		t.Fatalf("%d fragments, %d starting a datagram: want one filling the first datagram, two or more after", frags, starts)
	}
	if got := d.a.Stats().InFlightBytes; got != want {
		t.Fatalf("%d bytes in flight, want %d", got, want)
	}
}

// A message the amplification limit holds back leaves the bytes in flight
// as they were: it was never in flight.
func TestState_BlockedMessageLeavesBytesInFlight(t *testing.T) {
	h := newHarness(t, testParams(), false)
	h.recv(wire.Data, wire.ID{6}, strings.Repeat("x", 100)) // 105 bytes in: 315 may go out
	h.send(1, strings.Repeat("a", 50))
	h.onePacket(wire.Data)
	flying := h.s.Stats().InFlightBytes
	if flying == 0 {
		t.Fatal("nothing in flight after the first message")
	}
	h.send(2, strings.Repeat("b", 280)) // past the limit
	if p := h.onePacket(wire.Recv); p.ID == (wire.ID{6}) {
		t.Fatal("a RECV for the peer's message, want the probe")
	}
	if st := h.s.Stats(); st.Limited == 0 || st.InFlightBytes != flying {
		t.Fatalf("limited %d, %d bytes in flight; want the second held back and %d in flight", st.Limited, st.InFlightBytes, flying)
	}
}

// An answer moves the largest answered transmission, from which earlier
// ones are found lost, when it answers the latest transmission of its
// message: a first one, or a re-send answered a least RTT or more after it
// went. One sooner answers an earlier transmission (spurious), and moves
// nothing. Here a, c, d, e, b go at 0; c, d and e are answered at 10 ms
// (the least RTT), so a is lost and goes again; b, sent after e, is not.
func TestState_LargestAckedFollowsTheLatestTransmission(t *testing.T) {
	const ms = time.Millisecond
	for _, tt := range []struct {
		name   string
		answer time.Duration // when a's RECV comes
		want   []wire.Kind   // what goes out at 20 ms
	}{
		// 1 ms after its re-send: spurious, b stays in flight.
		{"spurious", 11 * ms, nil},
		// A least RTT after its re-send: it answers it, and b, sent
		// before, is lost by time (9/8 of 10 ms after it went).
		{"a least RTT after the re-send", 20 * ms, []wire.Kind{wire.Ack, wire.Data}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testParams()
			cfg.Window = 8
			h := newHarness(t, cfg, true)
			ids := map[string]wire.ID{}
			for i, m := range []string{"a", "c", "d", "e", "b"} {
				h.send(byte(i), m)
				ids[m] = h.onePacket(wire.Data).ID
			}
			h.at(10 * ms)
			for _, m := range []string{"c", "d", "e"} {
				h.recv(wire.Recv, ids[m], "")
			}
			if st := h.s.Stats(); st.Lost != 1 || st.DataResent != 1 {
				t.Fatalf("after c, d and e answered: lost %d resent %d, want a", st.Lost, st.DataResent)
			}
			h.packets()
			h.at(tt.answer)
			h.recv(wire.Recv, ids["a"], "")
			if tt.answer < 20*ms {
				h.onePacket(wire.Ack)
				h.at(20 * ms)
			}
			var got []wire.Kind
			for _, p := range h.packets() {
				got = append(got, p.Kind)
				if p.Kind == wire.Data && string(p.Payload) != "b" {
					t.Fatalf("DATA %q at 20 ms, want b", p.Payload)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("at 20 ms: %v, want %v", got, tt.want)
			}
		})
	}
}

// To a peer that speaks the extension, the probe timeout is RFC 9002's:
// SRTT + max(4 RTTVAR, 1 ms) + one more SRTT for the peer's answer delay.
func TestState_ExtProbeTimeout(t *testing.T) {
	d := newDuo(t, extParams(1), extParams(2))
	d.send(d.a, "negotiate")
	d.now = epoch.Add(10 * time.Millisecond) // the RTT sample
	d.run()
	st := d.a.Stats()
	if !st.Extension || st.SRTT != 10*time.Millisecond || st.RTTVar != 5*time.Millisecond {
		t.Fatalf("after the negotiation: extension %v, SRTT %v, RTTVAR %v; want on, 10ms, 5ms", st.Extension, st.SRTT, st.RTTVar)
	}
	d.send(d.a, "x")
	d.a.TakeDatagrams(nil) // lost
	want := d.now.Add(2*st.SRTT + 4*st.RTTVar)
	if next := d.a.NextDeadline(); !next.Equal(want) {
		t.Fatalf("next deadline %v, want the probe timeout at %v", next.Sub(epoch), want.Sub(epoch))
	}
	d.a.Tick(want)
	if n := len(d.a.TakeDatagrams(nil)); n != 1 || d.a.Stats().Timeouts != 1 {
		t.Fatalf("at the probe timeout: %d datagrams, %d timeouts; want the message again", n, d.a.Stats().Timeouts)
	}
}

// Three probe timeouts in a row collapse the window only if the peer has
// also been quiet for three RTOs (RFC 6298's, 100 ms here): heard 300 ms
// before the third it has, a nanosecond later it has not.
func TestState_PersistentCongestionNeedsAQuietPeer(t *testing.T) {
	const ms = time.Millisecond
	for _, tt := range []struct {
		heard    time.Duration
		collapse bool
	}{
		{400 * ms, true},
		{400*ms + 1, false},
	} {
		h := newHarness(t, testParams(), true)
		h.send(1, "x")
		h.onePacket(wire.Data)
		initial := h.s.Stats().Cwnd
		for _, at := range []time.Duration{100 * ms, 300 * ms} {
			h.at(at)
			h.onePacket(wire.Data)
		}
		h.at(tt.heard)
		h.recv(wire.Ack, wire.ID{9}, "") // anything heard will do
		h.at(700 * ms)
		h.onePacket(wire.Data)
		st := h.s.Stats()
		if st.Timeouts != 3 {
			t.Fatalf("heard at %v: %d timeouts, want 3", tt.heard, st.Timeouts)
		}
		if collapsed := st.Cwnd == 2*(1200+28); collapsed != tt.collapse || !collapsed && st.Cwnd != initial {
			t.Fatalf("heard at %v, third PTO at 700ms: window %d (from %d), want collapsed %v", tt.heard, st.Cwnd, initial, tt.collapse)
		}
	}
}

// While draining, a message that reaches its own Lifetime fails for that;
// one that reaches the end Drain set (it was sent later) fails because
// the endpoint closed.
func TestState_DrainFailureReasons(t *testing.T) {
	cfg := testParams()
	cfg.Lifetime = time.Second
	cfg.MaxAttempts = 100
	h := newHarness(t, cfg, true)
	h.send(1, "before")
	h.at(500 * time.Millisecond)
	h.s.Drain(h.now) // every message ends by 1.5 s
	h.at(800 * time.Millisecond)
	h.send(2, "after")
	for _, tt := range []struct {
		at     time.Duration
		reason string
	}{
		{time.Second, "lifetime 1s exceeded"},
		{1500 * time.Millisecond, "the endpoint closed and 1s (Lifetime) passed"},
	} {
		h.at(tt.at)
		out := h.outcomes()
		var ue *peer.UndeliveredError
		if len(out) != 1 || !errors.As(out[0].Receipt.Err, &ue) || ue.Reason != tt.reason {
			t.Fatalf("at %v: outcomes %+v, want one undelivered: %s", tt.at, out, tt.reason)
		}
	}
}

// A window at its floor is not collapsed again by the probe timeouts that
// follow the third: the threshold the first collapse set stays, and the
// window is in slow start up to it (the pacer's gain is 2).
func TestState_PersistentCongestionOnceAtTheFloor(t *testing.T) {
	const ms = time.Millisecond
	h := newHarness(t, testParams(), true)
	h.send(1, "x")
	p := h.onePacket(wire.Data)
	h.at(10 * ms)
	h.recv(wire.Recv, p.ID, "") // SRTT 10 ms, RTO 30 ms
	h.onePacket(wire.Ack)
	h.send(2, "y") // never answered
	h.onePacket(wire.Data)
	// Probe timeouts at 40, 100, 220 ms (the third collapses the
	// window) and 460 ms.
	for i, at := range []time.Duration{40 * ms, 100 * ms, 220 * ms, 460 * ms} {
		h.at(at)
		h.onePacket(wire.Data)
		if st := h.s.Stats(); st.Timeouts != uint64(i+1) {
			t.Fatalf("at %v: %d timeouts, want %d", at, st.Timeouts, i+1)
		}
	}
	st := h.s.Stats()
	if floor := 2 * (1200 + 28); st.Cwnd != floor {
		t.Fatalf("window %d after four probe timeouts, want the floor %d", st.Cwnd, floor)
	}
	if g := float64(st.PacingRate) / (float64(st.Cwnd) / st.SRTT.Seconds()); math.Abs(g-2) > 0.001 {
		t.Fatalf("pacing gain %.3f at the floor, want 2: slow start up to the threshold of the first collapse", g)
	}
}

// Cancel fails a message with the caller's error if none of its DATA went
// out; once one did, the peer may have it, and the error says so too.
func TestState_CancelErrorSaysWhetherDataWent(t *testing.T) {
	cfg := testParams()
	cfg.Window = 2
	h := newHarness(t, cfg, true)
	h.send(1, strings.Repeat("a", 20000)) // fills the congestion window
	h.send(2, "b")                        // waits behind it
	if n := len(h.packets()); n != 1 {
		t.Fatalf("%d packets, want the first message's DATA alone", n)
	}
	for _, tt := range []struct {
		id      byte
		unknown bool
	}{{2, false}, {1, true}} {
		if !h.s.Cancel(h.now, uuid.UUID{tt.id}, context.Canceled) {
			t.Fatalf("Cancel(%d) = false", tt.id)
		}
		out := h.outcomes()
		if len(out) != 1 {
			t.Fatalf("Cancel(%d): %d outcomes, want 1", tt.id, len(out))
		}
		err := out[0].Receipt.Err
		if !errors.Is(err, context.Canceled) || errors.Is(err, peer.ErrOutcomeUnknown) != tt.unknown {
			t.Fatalf("Cancel(%d): %v; want context.Canceled, outcome unknown %v", tt.id, err, tt.unknown)
		}
	}
}

// A message found lost on its last transmission is not failed at once: a
// loss found by packets is an inference (a receiver short of
// amplification budget answers a later DATA first), and the last
// transmission has one RTO to be answered. Answered in it, the message
// succeeds; not, it fails at the RTO, naming the attempt limit.
func TestState_LastTransmissionHasAnRTO(t *testing.T) {
	const ms = time.Millisecond
	for _, answered := range []bool{true, false} {
		p := testParams()
		p.MaxAttempts = 1
		h := newHarness(t, p, true)
		ids := make([]wire.ID, 4)
		for i := range ids {
			h.send(byte(i+1), "m")
			ids[i] = h.onePacket(wire.Data).ID
		}
		// The fourth is answered first, 20 ms on: the first is three
		// datagrams older, lost by packets (RTO now 20 + 4·10 = 60 ms).
		h.at(20 * ms)
		h.recv(wire.Recv, ids[3], "")
		if out := h.outcomes(); len(out) != 1 || out[0].Receipt.Err != nil {
			t.Fatalf("after the fourth's RECV: outcomes %v, want its success alone", out)
		}
		h.packets()
		if h.s.Stats().Lost == 0 {
			t.Fatal("the first was not found lost: the test shows nothing")
		}
		if answered {
			h.at(59 * ms)
			h.recv(wire.Recv, ids[0], "")
			out := h.outcomes()
			if len(out) != 1 || out[0].Receipt.ID != (uuid.UUID{1}) || out[0].Receipt.Err != nil {
				t.Fatalf("the first answered late: outcomes %v, want its success", out)
			}
			continue
		}
		h.at(60*ms - time.Nanosecond)
		for _, o := range h.outcomes() {
			if o.Receipt.ID == (uuid.UUID{1}) {
				t.Fatalf("the first failed before its RTO: %v", o.Receipt.Err)
			}
		}
		h.at(60 * ms)
		var failed *peer.UndeliveredError
		for _, o := range h.outcomes() {
			if o.Receipt.ID == (uuid.UUID{1}) {
				if !errors.As(o.Receipt.Err, &failed) || !strings.Contains(failed.Reason, "attempt limit 1") {
					t.Fatalf("the first: %v, want it undelivered naming the attempt limit", o.Receipt.Err)
				}
			}
		}
		if failed == nil {
			t.Fatal("the first did not fail at its RTO")
		}
	}
}

// After a probe timeout on a busy machine, the answers held up come in a
// burst, and the first, to the oldest message, which the timeout re-sent,
// may answer either copy. Coming in one datagram with answers to messages
// sent once, it must not make the messages sent before the re-send and
// answered in later datagrams look lost; coming alone, after the whole
// window was lost, it must.
func TestState_AnswerToAProbeTimeoutsResend(t *testing.T) {
	for _, tt := range []struct {
		name     string
		heldUp   bool // the first copies arrive (late), or were lost
		wantLost uint64
	}{
		{"first copies held up", true, 0},
		{"first copies lost", false, 39},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := newDuo(t, extParams(1), extParams(2))
			d.send(d.a, "negotiate")
			d.now = epoch.Add(10 * time.Millisecond) // SRTT and least RTT 10 ms
			d.run()
			d.a.TakeOutcomes(nil)
			d.received = nil
			for i := range 40 {
				d.send(d.a, fmt.Sprintf("%0100d", i))
			}
			first := d.a.TakeDatagrams(nil)
			if len(first) < 4 {
				t.Fatalf("40 messages of 100 bytes went in %d datagrams, want 4 or more", len(first))
			}
			d.now = d.a.NextDeadline()
			d.a.Tick(d.now)
			probe := d.a.TakeDatagrams(nil)
			if st := d.a.Stats(); len(probe) != 1 || st.Timeouts != 1 || st.DataResent != 1 {
				t.Fatalf("at the probe timeout: %d datagrams, %d timeouts, %d re-sent; want the oldest message again", len(probe), st.Timeouts, st.DataResent)
			}
			d.now = d.now.Add(10 * time.Millisecond) // a least RTT after the re-send
			if tt.heldUp {
				// The first datagram's answers, the oldest message's among
				// them, come before the rest have reached b.
				d.deliver(d.b, d.fb, first[:1])
			} else {
				d.deliver(d.b, d.fb, probe)
			}
			d.run()
			if st := d.a.Stats(); st.Lost != tt.wantLost {
				t.Fatalf("lost %d, want %d", st.Lost, tt.wantLost)
			}
			if tt.heldUp {
				d.deliver(d.b, d.fb, append(first[1:], probe...))
			}
			d.run()
			if got := len(d.received); got != 40 {
				t.Fatalf("b got %d messages, want 40", got)
			}
			ok := 0
			for _, o := range d.a.TakeOutcomes(nil) {
				if o.Receipt.Err == nil {
					ok++
				}
			}
			if ok != 40 {
				t.Fatalf("%d of 40 messages succeeded", ok)
			}
		})
	}
}
