package peer_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gtudp/gtudp/peer"
	"github.com/gtudp/gtudp/wire"
)

var remote = netip.MustParseAddrPort("192.0.2.7:4323")

// epoch is where every test's clock starts (the mock clock's epoch). The
// state takes the time as an argument, so the tests move it by hand.
var epoch = time.Unix(0, 0)

// harness drives one State and collects its outputs.
type harness struct {
	t   *testing.T
	s   *peer.State
	now time.Time
}

func newHarness(t *testing.T, cfg *peer.Params, validated bool) *harness {
	t.Helper()
	return &harness{t: t, s: peer.NewState(cfg, remote, epoch, [5]uint32{1, 2, 3, 4, 5}, validated), now: epoch}
}

func (h *harness) at(d time.Duration) {
	h.now = epoch.Add(d)
	h.s.Tick(h.now)
}

func (h *harness) send(id byte, data string) {
	h.t.Helper()
	if err := h.s.Send(h.now, peer.Outgoing{ID: uuid.UUID{id}, Data: []byte(data)}); err != nil {
		h.t.Fatalf("Send(%d) = %v", id, err)
	}
}

func (h *harness) recv(k wire.Kind, id wire.ID, payload string) {
	h.s.Receive(h.now, wire.Packet{Kind: k, ID: id, Payload: []byte(payload)}, 5+len(payload))
}

func (h *harness) packets() []wire.Packet { return decode(h.t, h.s.TakeDatagrams(nil)) }

func (h *harness) outcomes() []peer.Outcome { return h.s.TakeOutcomes(nil) }

// onePacket takes the outputs and requires exactly one packet of kind k.
func (h *harness) onePacket(k wire.Kind) wire.Packet {
	h.t.Helper()
	pkts := h.packets()
	if len(pkts) != 1 || pkts[0].Kind != k {
		h.t.Fatalf("at %v: packets %v, want one %v", h.now.Sub(epoch), pkts, k)
	}
	return pkts[0]
}

func (h *harness) noPackets() {
	h.t.Helper()
	if pkts := h.packets(); len(pkts) != 0 {
		h.t.Fatalf("at %v: packets %v, want none", h.now.Sub(epoch), pkts)
	}
}

// deliverAll hands every held message to the application.
func (h *harness) deliverAll() []string {
	var got []string
	for {
		m, ok := h.s.Next()
		if !ok {
			return got
		}
		got = append(got, string(m.Data))
		h.s.Delivered(h.now)
	}
}

// The re-send schedule: RTO doubling from InitialRTO, capped at MaxRTO, and
// failure one timeout after the last of MaxAttempts transmissions.
func TestState_ResendScheduleAndAttemptLimit(t *testing.T) {
	h := newHarness(t, testParams(), true)
	h.send(1, "hello")
	id := h.onePacket(wire.Data).ID
	ms := time.Millisecond
	// 100, 200, 400, 400 (capped) between transmissions 1-5.
	for _, at := range []time.Duration{100 * ms, 300 * ms, 700 * ms, 1100 * ms} {
		h.at(at - time.Nanosecond)
		h.noPackets()
		if d := h.s.NextDeadline(); d != epoch.Add(at) {
			t.Fatalf("NextDeadline = %v, want %v", d.Sub(epoch), at)
		}
		h.at(at)
		if p := h.onePacket(wire.Data); p.ID != id || string(p.Payload) != "hello" {
			t.Fatalf("re-send at %v = %v, want DATA %v hello", at, p, id)
		}
	}
	h.at(1500*ms - time.Nanosecond)
	h.noPackets()
	if out := h.outcomes(); len(out) != 0 {
		t.Fatalf("outcome before the last timeout: %v", out)
	}
	h.at(1500 * ms)
	h.noPackets()
	out := h.outcomes()
	if len(out) != 1 {
		t.Fatalf("outcomes = %v, want one failure", out)
	}
	r := out[0].Receipt
	var ue *peer.UndeliveredError
	if !errors.Is(r.Err, peer.ErrUndelivered) || !errors.As(r.Err, &ue) || r.Attempts != 5 || ue.Attempts != 5 ||
		ue.Addr != remote || ue.ID != (uuid.UUID{1}) || !strings.Contains(ue.Reason, "attempt limit 5") {
		t.Fatalf("receipt = %+v, want ErrUndelivered after 5 attempts naming the limit", r)
	}
	if h.s.Busy() {
		t.Error("Busy after the message failed")
	}
	if st := h.s.Stats(); st.Sent != 1 || st.DataResent != 4 || st.Failed != 1 {
		t.Errorf("stats sent %d resent %d failed %d, want 1 4 1", st.Sent, st.DataResent, st.Failed)
	}
}

func TestState_LifetimeEndsMessage(t *testing.T) {
	cfg := testParams()
	cfg.Lifetime = 250 * time.Millisecond
	cfg.MaxAttempts = 100
	h := newHarness(t, cfg, true)
	h.send(1, "x")
	h.onePacket(wire.Data)
	h.at(100 * time.Millisecond)
	h.onePacket(wire.Data)
	// The next re-send would be at 300 ms; the lifetime ends first.
	if d := h.s.NextDeadline(); d != epoch.Add(250*time.Millisecond) {
		t.Fatalf("NextDeadline = %v, want the end of the lifetime 250ms", d.Sub(epoch))
	}
	h.at(250 * time.Millisecond)
	h.noPackets()
	out := h.outcomes()
	if len(out) != 1 || !errors.Is(out[0].Receipt.Err, peer.ErrUndelivered) ||
		!strings.Contains(out[0].Receipt.Err.Error(), "lifetime") || out[0].Receipt.Attempts != 2 {
		t.Fatalf("outcomes = %+v, want one lifetime failure after 2 attempts", out)
	}
}

func TestState_MinAndMaxRTO(t *testing.T) {
	cfg := testParams()
	cfg.InitialRTO = time.Millisecond // below MinRTO: clamped up
	h := newHarness(t, cfg, true)
	if rto := h.s.Stats().RTO; rto != 10*time.Millisecond {
		t.Fatalf("RTO = %v, want MinRTO 10ms", rto)
	}
	// One sample of 1 s: RTO = 1 s + 4 × 0.5 s = 3 s, clamped to 400 ms.
	h.send(1, "x")
	id := h.onePacket(wire.Data).ID
	h.now = epoch.Add(time.Second - time.Nanosecond) // no Tick: no re-send, so the sample counts
	h.recv(wire.Recv, id, "")
	if rto := h.s.Stats().RTO; rto != 400*time.Millisecond {
		t.Fatalf("RTO = %v, want MaxRTO 400ms", rto)
	}
}

// RTT samples follow RFC 6298; a re-sent message gives none (Karn).
func TestState_RTTConvergenceAndKarn(t *testing.T) {
	cfg := testParams()
	cfg.Window = 100
	h := newHarness(t, cfg, true)
	rtt := 40 * time.Millisecond
	exchange := func(i byte) {
		h.send(i, "m")
		id := h.onePacket(wire.Data).ID
		h.now = h.now.Add(rtt)
		h.recv(wire.Recv, id, "")
		if p := h.onePacket(wire.Ack); p.ID != id {
			t.Fatalf("ACK for %v, want %v", p.ID, id)
		}
		if out := h.outcomes(); len(out) != 1 || out[0].Receipt.Err != nil || out[0].Receipt.RTT != rtt || out[0].Receipt.Attempts != 1 {
			t.Fatalf("outcome %+v, want success after one attempt with RTT %v", out, rtt)
		}
	}
	exchange(1)
	st := h.s.Stats()
	if st.SRTT != 40*time.Millisecond || st.RTTVar != 20*time.Millisecond || st.RTO != 120*time.Millisecond {
		t.Fatalf("after one sample SRTT %v RTTVar %v RTO %v, want 40ms 20ms 120ms", st.SRTT, st.RTTVar, st.RTO)
	}
	for i := range 60 {
		exchange(byte(2 + i))
	}
	st = h.s.Stats()
	if st.SRTT != rtt || st.RTO > rtt+2*time.Millisecond {
		t.Fatalf("after 61 samples SRTT %v RTO %v, want SRTT %v and RTO converged near it", st.SRTT, st.RTO, rtt)
	}

	// Karn: a message sent twice gives no sample, however long it took.
	h.send(100, "slow")
	id := h.onePacket(wire.Data).ID
	h.at(h.now.Sub(epoch) + st.RTO)
	h.onePacket(wire.Data)
	h.now = h.now.Add(time.Second)
	h.recv(wire.Recv, id, "")
	if got := h.s.Stats(); got.SRTT != st.SRTT || got.RTO != st.RTO {
		t.Fatalf("a re-sent message changed SRTT %v→%v RTO %v→%v", st.SRTT, got.SRTT, st.RTO, got.RTO)
	}
	if out := h.outcomes(); len(out) != 1 || out[0].Receipt.Attempts != 2 || out[0].Receipt.RTT != st.RTO+time.Second {
		t.Fatalf("outcome %+v, want success after 2 attempts, RTT from the first", out)
	}
}

func TestState_DuplicateDataBeforeAndAfterAck(t *testing.T) {
	h := newHarness(t, testParams(), false)
	id := wire.ID{0xde, 0xad, 0xbe, 0xef}
	h.recv(wire.Data, id, "once")
	h.noPackets() // RECV waits for the delivery
	if got := h.deliverAll(); len(got) != 1 || got[0] != "once" {
		t.Fatalf("delivered %q, want [once]", got)
	}
	if p := h.onePacket(wire.Recv); p.ID != id {
		t.Fatalf("RECV for %v, want %v", p.ID, id)
	}

	// Before the ACK: answered RECV again, not delivered again.
	h.recv(wire.Data, id, "once")
	h.onePacket(wire.Recv)
	if got := h.deliverAll(); len(got) != 0 {
		t.Fatalf("duplicate before ACK delivered %q", got)
	}

	h.recv(wire.Ack, id, "")
	h.noPackets()
	if h.s.Busy() || h.s.Stats().Remembered != 1 {
		t.Fatalf("after ACK: busy %v remembered %d, want false 1", h.s.Busy(), h.s.Stats().Remembered)
	}

	// After the ACK, within the horizon of an exchange ended by ACK
	// (2 s here): still not delivered; RECV again in case the sender
	// never got one.
	h.at(1999 * time.Millisecond)
	h.recv(wire.Data, id, "once")
	h.onePacket(wire.Recv)
	if got := h.deliverAll(); len(got) != 0 {
		t.Fatalf("late duplicate delivered %q", got)
	}
	if st := h.s.Stats(); st.Duplicates != 2 || st.Delivered != 1 {
		t.Fatalf("duplicates %d delivered %d, want 2 1", st.Duplicates, st.Delivered)
	}
}

// Past a handful of remembered ids the state indexes them in a map; Compact
// drops it again once few are left. Either way no duplicate is delivered.
func TestState_DedupeManyIDsAcrossCompact(t *testing.T) {
	cfg := testParams()
	cfg.RecvWindow, cfg.HoldLimit = 64, 64
	h := newHarness(t, cfg, true)
	const n = 20
	const gap = 10 * time.Millisecond
	deliverAndAck := func(i int) {
		id := wire.ID{0, 0, 0, byte(i)}
		h.recv(wire.Data, id, fmt.Sprint(i))
		h.deliverAll()
		h.recv(wire.Ack, id, "")
	}
	for i := range n {
		h.at(time.Duration(i) * gap) // ids expire 10 ms apart
		deliverAndAck(i)
	}
	h.packets()
	dupes := func(from int) {
		t.Helper()
		for i := from; i < n; i++ {
			h.recv(wire.Data, wire.ID{0, 0, 0, byte(i)}, fmt.Sprint(i))
			if got := h.deliverAll(); len(got) != 0 {
				t.Fatalf("duplicate of %d delivered: %q", i, got)
			}
		}
	}
	dupes(0)
	h.s.Compact() // 20 remembered: the map stays
	dupes(0)
	// Ended by ACK, they are kept 2 s: at 2 s + 14 gaps the first 15 have
	// expired; 5 are left, without a map.
	h.at(2*time.Second + 14*gap)
	h.s.Compact()
	if st := h.s.Stats(); st.Remembered != n-15 {
		t.Fatalf("remembered %d, want %d", st.Remembered, n-15)
	}
	dupes(15)
	h.recv(wire.Data, wire.ID{0, 0, 0, 0}, "0") // forgotten: a new message
	if got := h.deliverAll(); len(got) != 1 {
		t.Fatalf("expired id: delivered %q, want it once more", got)
	}
	if st := h.s.Stats(); st.Duplicates != 2*n+5 {
		t.Fatalf("duplicates %d, want %d", st.Duplicates, 2*n+5)
	}
}

// Past its horizon a finished exchange is forgotten: memory is reclaimed,
// and a copy arriving that late is a new message. One ended by the
// sender's ACK is kept for max(2 s, 4 RTO): the sender has stopped, so
// only copies already in the network can come. One ended without it (the
// RECVs given up) is kept for DedupeHorizon: its sender may still be
// re-sending.
func TestState_DedupeHorizons(t *testing.T) {
	h := newHarness(t, testParams(), true)
	acked, unacked := wire.ID{1, 1, 1, 1}, wire.ID{2, 2, 2, 2}
	h.recv(wire.Data, acked, "m")
	h.recv(wire.Data, unacked, "n")
	h.deliverAll()
	h.packets()
	h.recv(wire.Ack, acked, "")
	if d := h.s.NextDeadline(); d != epoch.Add(200*time.Millisecond) {
		t.Fatalf("NextDeadline = %v, want the RECV re-send at 200ms (twice the RTO)", d.Sub(epoch))
	}
	for h.s.Stats().Open > 0 { // RecvAttempts 3, then it gives up
		h.at(h.s.NextDeadline().Sub(epoch))
	}
	ended := h.now.Sub(epoch)
	h.packets()
	if d := h.s.NextDeadline(); d != epoch.Add(2*time.Second) {
		t.Fatalf("NextDeadline = %v, want the acked exchange's horizon at 2s", d.Sub(epoch))
	}
	h.at(2*time.Second - time.Nanosecond)
	if st := h.s.Stats(); st.Remembered != 2 {
		t.Fatalf("remembered %d before 2s, want 2", st.Remembered)
	}
	h.at(2 * time.Second)
	if st := h.s.Stats(); st.Remembered != 1 {
		t.Fatalf("remembered %d at 2s, want 1 (the acked one forgotten)", st.Remembered)
	}
	if d := h.s.NextDeadline(); d != epoch.Add(ended+10*time.Second) {
		t.Fatalf("NextDeadline = %v, want the unacked exchange's horizon at %v", d.Sub(epoch), ended+10*time.Second)
	}
	h.recv(wire.Data, unacked, "n") // still known
	h.recv(wire.Data, acked, "m")   // forgotten: a new message
	if got := h.deliverAll(); len(got) != 1 || got[0] != "m" {
		t.Fatalf("delivered %q, want [m]", got)
	}
	h.recv(wire.Ack, acked, "")
	h.at(ended + 10*time.Second)
	if !h.s.Idle() {
		t.Fatalf("not idle after every horizon: %+v", h.s.Stats())
	}
}

func TestState_SameIDDifferentPayloadIsNewMessage(t *testing.T) {
	h := newHarness(t, testParams(), true)
	id := wire.ID{7, 7, 7, 7}
	h.recv(wire.Data, id, "first")
	h.deliverAll()
	h.recv(wire.Ack, id, "")
	h.recv(wire.Data, id, "second") // a restarted sender reused the id
	if got := h.deliverAll(); len(got) != 1 || got[0] != "second" {
		t.Fatalf("delivered %q, want [second]", got)
	}
	// Still awaiting ACK for "second": a different payload is a new message
	// too, and both exchanges stay open.
	h.recv(wire.Data, id, "third")
	if got := h.deliverAll(); len(got) != 1 || got[0] != "third" {
		t.Fatalf("delivered %q, want [third]", got)
	}
	h.recv(wire.Data, id, "second") // remembered now: not again
	h.recv(wire.Data, id, "third")
	if got := h.deliverAll(); len(got) != 0 {
		t.Fatalf("delivered %q again", got)
	}
}

// The original's ids are adler32(payload) plus a counter, so two
// consecutive messages can share an id. Held together for a full Inbox,
// both are delivered, once each, each answered RECV; each ACK then closes
// one of them.
func TestState_TwoMessagesOneIDBothDelivered(t *testing.T) {
	h := newHarness(t, testParams(), true)
	id := wire.ID{7, 7, 7, 7}
	h.recv(wire.Data, id, "reuse-002")
	h.recv(wire.Data, id, "reuse-010") // before the first is handed over
	h.recv(wire.Data, id, "reuse-002") // a repeat of the first
	if got := h.deliverAll(); len(got) != 2 || got[0] != "reuse-002" || got[1] != "reuse-010" {
		t.Fatalf("delivered %q, want both, in order", got)
	}
	if pkts := h.packets(); len(pkts) != 2 || pkts[0].Kind != wire.Recv || pkts[1].Kind != wire.Recv {
		t.Fatalf("packets %v, want a RECV for each", pkts)
	}
	h.recv(wire.Ack, id, "")
	if st := h.s.Stats(); st.Open != 1 || st.Remembered != 1 {
		t.Fatalf("after one ACK: %+v, want one closed and one open", st)
	}
	h.recv(wire.Ack, id, "")
	h.recv(wire.Data, id, "reuse-010")
	h.recv(wire.Data, id, "reuse-002")
	if got := h.deliverAll(); len(got) != 0 {
		t.Fatalf("delivered %q again", got)
	}
	if st := h.s.Stats(); st.Open != 0 || st.Remembered != 2 || st.Duplicates != 3 {
		t.Fatalf("stats %+v: want both closed, remembered, three duplicates", st)
	}
}

func TestState_UnknownRecvAnsweredAckAndUnknownAckIgnored(t *testing.T) {
	h := newHarness(t, testParams(), false)
	id := wire.ID{9, 9, 9, 9}
	h.recv(wire.Recv, id, "")
	if p := h.onePacket(wire.Ack); p.ID != id {
		t.Fatalf("ACK for %v, want %v", p.ID, id)
	}
	h.recv(wire.Ack, wire.ID{8, 8, 8, 8}, "")
	h.noPackets()
	if st := h.s.Stats(); st.UnknownRecv != 1 || st.UnknownAck != 1 || h.s.Busy() || st.Validated {
		t.Fatalf("stats %+v: want one unknown RECV, one unknown ACK, nothing open, not validated", st)
	}
}

// Round trips are measured to the RECV's arrival at the socket, not to when
// the state got to it; an arrival time that cannot be right counts as now.
func TestState_RTTToArrival(t *testing.T) {
	h := newHarness(t, testParams(), true)
	h.send(1, "a")
	data := h.onePacket(wire.Data)
	h.now = epoch.Add(15 * time.Millisecond)
	h.s.ReceiveAt(h.now, epoch.Add(10*time.Millisecond), wire.Packet{Kind: wire.Recv, ID: data.ID}, 5)
	out := h.outcomes()
	if len(out) != 1 || out[0].Receipt.RTT != 10*time.Millisecond || h.s.Stats().SRTT != 10*time.Millisecond {
		t.Fatalf("outcomes %+v, SRTT %v; want RTT and SRTT 10ms (to the arrival)", out, h.s.Stats().SRTT)
	}
	h.onePacket(wire.Ack)
	h.send(2, "b")
	data = h.onePacket(wire.Data)
	h.now = epoch.Add(20 * time.Millisecond)
	h.s.ReceiveAt(h.now, epoch.Add(time.Millisecond), wire.Packet{Kind: wire.Recv, ID: data.ID}, 5) // before it was sent
	if out := h.outcomes(); len(out) != 1 || out[0].Receipt.RTT != 0 {
		t.Fatalf("outcomes %+v: an arrival before the send gives RTT 0, not a negative one", out)
	}
}

// A full Inbox holds the message back unanswered; the RECV goes out only
// when the application takes it. Beyond HoldLimit, DATA is not answered and
// comes back with the sender's next re-send.
func TestState_InboxFullWithholdsRecv(t *testing.T) {
	h := newHarness(t, testParams(), true)
	ids := []wire.ID{{1}, {2}, {3}}
	for i, id := range ids {
		h.recv(wire.Data, id, string(rune('a'+i)))
	}
	h.noPackets()
	if st := h.s.Stats(); st.Withheld != 1 {
		t.Fatalf("withheld %d, want 1 (HoldLimit 2)", st.Withheld)
	}
	h.recv(wire.Data, ids[0], "a") // a re-send of a held message: still no RECV
	h.noPackets()

	if m, ok := h.s.Next(); !ok || string(m.Data) != "a" || m.Addr != remote {
		t.Fatalf("Next = %+v %v, want a from %v", m, ok, remote)
	}
	h.s.Delivered(h.now)
	if p := h.onePacket(wire.Recv); p.ID != ids[0] {
		t.Fatalf("RECV %v, want %v", p.ID, ids[0])
	}
	// Room for the third now: the sender's re-send is taken.
	h.recv(wire.Data, ids[2], "c")
	if got := h.deliverAll(); len(got) != 2 || got[0] != "b" || got[1] != "c" {
		t.Fatalf("delivered %q, want [b c]", got)
	}
	if pkts := h.packets(); len(pkts) != 2 {
		t.Fatalf("packets %v, want RECV b and RECV c", pkts)
	}
}

func TestState_WindowFullRefusesSend(t *testing.T) {
	h := newHarness(t, testParams(), true)
	var ids []wire.ID
	for i := range 4 {
		h.send(byte(i), "w")
		ids = append(ids, h.onePacket(wire.Data).ID)
	}
	if h.s.Room() != 0 {
		t.Fatalf("Room = %d, want 0", h.s.Room())
	}
	if err := h.s.Send(h.now, peer.Outgoing{ID: uuid.UUID{9}}); err != peer.ErrWindowFull {
		t.Fatalf("Send on a full window = %v, want ErrWindowFull", err)
	}
	h.noPackets()
	h.recv(wire.Recv, ids[2], "")
	h.packets()
	if h.s.Room() != 1 {
		t.Fatalf("Room = %d after a RECV, want 1", h.s.Room())
	}
	h.send(9, "w")
	h.onePacket(wire.Data)
}

func TestState_IDsUniqueAmongPending(t *testing.T) {
	cfg := testParams()
	cfg.Window = 5000
	h := newHarness(t, cfg, true)
	seen := map[wire.ID]bool{}
	for i := range 5000 {
		h.s.Send(h.now, peer.Outgoing{ID: uuid.UUID{byte(i), byte(i >> 8)}})
	}
	// The congestion window lets them out a round trip's worth at a time:
	// answer each as it goes, and every one gets an id of its own.
	for len(seen) < 5000 {
		pkts := h.packets()
		if len(pkts) == 0 {
			t.Fatalf("stuck after %d ids", len(seen))
		}
		for _, p := range pkts {
			if p.Kind != wire.Data {
				continue
			}
			if seen[p.ID] {
				t.Fatalf("id %v handed out twice", p.ID)
			}
			seen[p.ID] = true
			h.recv(wire.Recv, p.ID, "")
		}
	}
}

func TestState_TooLarge(t *testing.T) {
	h := newHarness(t, testParams(), true)
	max := wire.DefaultFormat().MaxPayload()
	if err := h.s.Send(h.now, peer.Outgoing{Data: make([]byte, max+1)}); !errors.Is(err, wire.ErrTooLarge) {
		t.Fatalf("Send of %d bytes = %v, want ErrTooLarge", max+1, err)
	}
	if err := h.s.Send(h.now, peer.Outgoing{Data: make([]byte, max)}); err != nil {
		t.Fatalf("Send of the largest payload = %v", err)
	}
}

func TestState_CancelInFlight(t *testing.T) {
	h := newHarness(t, testParams(), true)
	h.send(1, "a")
	h.send(2, "b")
	idB := h.packets()[1].ID
	if !h.s.Cancel(h.now, uuid.UUID{1}, errors.New("ctx gone")) {
		t.Fatal("Cancel of an in-flight message = false")
	}
	out := h.outcomes()
	if len(out) != 1 || out[0].Receipt.ID != (uuid.UUID{1}) || out[0].Receipt.Err == nil {
		t.Fatalf("outcomes %+v, want message 1 failed", out)
	}
	h.recv(wire.Recv, idB, "")
	h.outcomes()
	if h.s.Cancel(h.now, uuid.UUID{2}, errors.New("late")) {
		t.Fatal("Cancel of a delivered message = true: the ready result must win")
	}
	if out := h.outcomes(); len(out) != 0 {
		t.Fatalf("a second outcome for a finished message: %+v", out)
	}
}

func TestState_RecvResentUntilAckThenGivesUp(t *testing.T) {
	h := newHarness(t, testParams(), true)
	id := wire.ID{5}
	h.recv(wire.Data, id, "x")
	h.deliverAll()
	h.onePacket(wire.Recv)
	// A RECV waits twice the RTO (100 ms, then backed off: 200, capped at
	// MaxRTO 400) for its ACK: re-sent at 200 and 600 ms.
	ms := time.Millisecond
	for _, at := range []time.Duration{200 * ms, 600 * ms} {
		h.at(at - 1)
		h.noPackets()
		h.at(at)
		h.onePacket(wire.Recv)
	}
	h.at(1000*ms - 1)
	if !h.s.Busy() {
		t.Fatal("gave up before the last RECV's timeout")
	}
	h.at(1000 * ms) // RecvAttempts 3: the exchange ends without its ACK
	h.noPackets()
	if st := h.s.Stats(); h.s.Busy() || st.RecvGaveUp != 1 || st.RecvResent != 2 || st.Remembered != 1 {
		t.Fatalf("busy %v stats %+v, want exchange ended after 3 RECVs and remembered", h.s.Busy(), st)
	}
}

// An address that appeared by sending us a packet is not sent more than 3×
// the bytes it sent until it answers one of our DATA or RECV.
func TestState_AmplificationLimit(t *testing.T) {
	cfg := testParams()
	cfg.RecvAttempts = 20
	h := newHarness(t, cfg, false)
	id := wire.ID{6}
	h.recv(wire.Data, id, "") // 5 bytes in: 15 bytes, three RECVs, allowed
	h.deliverAll()
	sent := len(h.packets())
	for i := 1; i < 20; i++ {
		h.at(time.Duration(i) * 10 * time.Second)
		sent += len(h.packets())
	}
	st := h.s.Stats()
	if sent != 3 || st.BytesOut != 15 || st.BytesIn != 5 || st.Limited == 0 {
		t.Fatalf("sent %d packets, %d bytes for %d in (limited %d), want 3 packets, 15 bytes", sent, st.BytesOut, st.BytesIn, st.Limited)
	}

	// An ACK of our RECV proves nothing: whoever forged the DATA knows
	// the id it echoes. The address stays unproven.
	h2 := newHarness(t, cfg, false)
	h2.recv(wire.Data, id, "")
	h2.deliverAll()
	h2.packets()
	h2.recv(wire.Ack, id, "")
	if h2.s.Stats().Validated {
		t.Fatal("validated by an ACK, which anyone who forged the DATA could send")
	}
	// A RECV for one of our DATA does prove it.
	h2.send(1, "x")
	data := h2.onePacket(wire.Data)
	h2.recv(wire.Recv, data.ID, "")
	h2.onePacket(wire.Ack)
	if !h2.s.Stats().Validated {
		t.Fatal("not validated by a RECV for our own DATA")
	}
}

// A message to an address that has not yet proved itself is held back by
// the amplification limit, without costing attempts; a probe (a RECV for a
// random id of ours, which the original and gtudp answer with ACK) goes
// out instead, and the message goes the moment the ACK for the probe
// proves the address: a spoofed source cannot make an application's
// reply bounce off us, and a real one is delayed by one round trip.
func TestState_SendToUnprovenAddressWaitsForProof(t *testing.T) {
	h := newHarness(t, testParams(), false)
	id := wire.ID{6}
	h.recv(wire.Data, id, "") // 5 bytes in
	h.deliverAll()
	h.onePacket(wire.Recv) // 5 bytes out
	h.send(1, strings.Repeat("x", 1000))
	probe := h.onePacket(wire.Recv) // 10 of 15 bytes
	if probe.ID == id {
		t.Fatal("the probe answers the peer's own DATA")
	}
	h.recv(wire.Ack, id, "") // an ACK of the peer's exchange proves nothing
	h.noPackets()
	h.at(time.Second) // re-tried on the timer, still held back
	st := h.s.Stats()
	if st.Limited == 0 || st.DataResent != 0 || st.BytesOut > 3*st.BytesIn {
		t.Fatalf("stats %+v: want DATA held back, uncounted, and at most 3x out", st)
	}
	h.packets()
	h.recv(wire.Ack, wire.ID{9, 9, 9, 9}, "") // a guess proves nothing either
	h.noPackets()
	h.recv(wire.Ack, probe.ID, "") // the address answers the probe: proven
	if p := h.onePacket(wire.Data); len(p.Payload) != 1000 {
		t.Fatalf("DATA with %d bytes, want 1000", len(p.Payload))
	}
	if st := h.s.Stats(); !st.Validated || st.DataResent != 0 {
		t.Fatalf("stats %+v: want validated and the DATA counted as a first transmission", st)
	}
	h.at(time.Hour)
	for _, p := range h.packets() {
		if p.Kind == wire.Recv && p.ID == probe.ID {
			t.Fatal("the probe was re-sent after it was answered")
		}
	}
}

// If the address never answers, the held-back message fails at its
// Lifetime, saying why.
func TestState_UnprovenAddressFailsAtLifetime(t *testing.T) {
	cfg := testParams()
	cfg.Lifetime = 2 * time.Second
	h := newHarness(t, cfg, false)
	h.recv(wire.Data, wire.ID{6}, "")
	h.deliverAll()
	h.packets()
	h.send(1, strings.Repeat("x", 1000))
	h.at(3 * time.Second)
	outs := h.outcomes()
	var ue *peer.UndeliveredError
	if len(outs) != 1 || !errors.As(outs[0].Receipt.Err, &ue) || ue.Attempts != 0 || !strings.Contains(ue.Reason, "amplification") {
		t.Fatalf("outcomes %+v, want one failure after 0 attempts naming the amplification limit", outs)
	}
}

// Drain drops held messages (never answered), refuses new DATA, and ends
// exchanges awaiting their ACK after one last RECV: the application has
// those messages, and the ACK would only stop our re-sends. Only our own
// messages in flight keep the state busy.
func TestState_Drain(t *testing.T) {
	h := newHarness(t, testParams(), true)
	h.recv(wire.Data, wire.ID{1}, "delivered")
	h.deliverAll()
	h.packets()
	h.recv(wire.Data, wire.ID{2}, "held")
	h.send(1, "out")
	h.packets()
	h.s.Drain(h.now)
	if p := h.onePacket(wire.Recv); p.ID != (wire.ID{1}) {
		t.Fatalf("last RECV for %v, want the delivered one", p.ID)
	}
	if _, ok := h.s.Next(); ok {
		t.Fatal("a held message survived Drain")
	}
	h.recv(wire.Data, wire.ID{3}, "new")
	if _, ok := h.s.Next(); ok {
		t.Fatal("new DATA taken while draining")
	}
	h.noPackets()
	if st := h.s.Stats(); !h.s.Busy() || st.Open != 0 || st.InFlight != 1 || st.Remembered != 1 {
		t.Fatalf("busy %v, %+v: want busy with our message only, the delivered one remembered", h.s.Busy(), st)
	}
	h.recv(wire.Data, wire.ID{1}, "delivered") // a repeat is still answered
	h.onePacket(wire.Recv)
	h.at(time.Hour) // the message in flight fails
	if h.s.Busy() {
		t.Fatal("still busy after everything ended")
	}
}

// Salvage fails every message in flight with the error it is given, after
// the outcomes already made and not taken, which keep their own.
func TestState_Salvage(t *testing.T) {
	h := newHarness(t, testParams(), true)
	h.send(1, "a")
	h.send(2, "b")
	h.send(3, "c")
	for _, p := range h.packets() {
		if string(p.Payload) == "c" {
			h.recv(wire.Recv, p.ID, "") // c succeeds; its outcome is not taken
		}
	}
	var failed []string
	out := h.s.Salvage(nil, func(id uuid.UUID, attempts int) error {
		failed = append(failed, fmt.Sprintf("%d:%d", id[0], attempts))
		return peer.ErrClosed
	})
	if len(out) != 3 || out[0].Receipt.ID != (uuid.UUID{3}) || out[0].Receipt.Err != nil {
		t.Fatalf("outcomes %+v: want c's success first, then two failures", out)
	}
	for _, o := range out[1:] {
		if !errors.Is(o.Receipt.Err, peer.ErrClosed) || o.Receipt.Attempts != 1 || string(o.Receipt.Data) == "" {
			t.Fatalf("outcome %+v: want ErrClosed after 1 attempt, with the message's Data", o)
		}
	}
	if len(failed) != 2 {
		t.Fatalf("fail called for %v, want the two in flight", failed)
	}
	if h.s.Busy() || h.s.Stats().Failed != 2 {
		t.Fatalf("busy %v, stats %+v after Salvage: want idle, 2 failed", h.s.Busy(), h.s.Stats())
	}
	h.onePacket(wire.Ack) // c's
	h.at(time.Hour)
	h.noPackets()
}

func TestState_DedupeLimitEvictsAckedOnly(t *testing.T) {
	cfg := testParams()
	cfg.DedupeLimit = 2
	h := newHarness(t, cfg, true)
	finish := func(id wire.ID, ack bool) {
		h.recv(wire.Data, id, "p")
		h.deliverAll()
		if ack {
			h.recv(wire.Ack, id, "")
		} else {
			for h.s.Busy() {
				d := h.s.NextDeadline()
				h.now = d
				h.s.Tick(d)
			}
		}
		h.packets()
	}
	finish(wire.ID{1}, true)
	finish(wire.ID{2}, true)
	finish(wire.ID{3}, true) // evicts {1}
	if st := h.s.Stats(); st.DedupeEvicted != 1 || st.Remembered != 2 {
		t.Fatalf("evicted %d remembered %d, want 1 2", st.DedupeEvicted, st.Remembered)
	}
	finish(wire.ID{4}, false) // evicts {2}; {3} acked, {4} not
	finish(wire.ID{5}, false) // evicts {3}; now both remembered ended without ACK
	h.recv(wire.Data, wire.ID{6}, "p")
	if _, ok := h.s.Next(); ok {
		t.Fatal("took new DATA although the only ids it could forget may still be re-sent")
	}
	if st := h.s.Stats(); st.Withheld != 1 {
		t.Fatalf("withheld %d, want 1", st.Withheld)
	}
}

// A DATA the socket refuses is re-sent like a lost one, and if its message
// ends undelivered the error carries the last write error; an error no
// re-send can cure (here EMSGSIZE, or the net package's AddrError for an
// address of the wrong family) ends the message at once.
func TestState_WriteErrors(t *testing.T) {
	h := newHarness(t, testParams(), true)
	h.send(1, "transient")
	h.s.TakeDatagrams(nil)
	h.s.WriteFailed(h.now, 0, syscall.ENOBUFS)
	h.at(time.Hour) // every attempt, then the attempt limit
	for range 10 {
		h.s.TakeDatagrams(nil)
		h.s.WriteFailed(h.now, 0, syscall.ENOBUFS)
		h.at(h.now.Sub(epoch) + time.Hour)
	}
	outs := h.outcomes()
	var ue *peer.UndeliveredError
	if len(outs) != 1 || !errors.As(outs[0].Receipt.Err, &ue) || !errors.Is(outs[0].Receipt.Err, syscall.ENOBUFS) || !strings.Contains(ue.Error(), "no buffer space") {
		t.Fatalf("outcomes %+v: want an UndeliveredError wrapping ENOBUFS", outs)
	}

	for _, err := range []error{syscall.EMSGSIZE, &net.AddrError{Err: "non-IPv4 address", Addr: "::1"}} {
		h.send(2, "permanent")
		h.s.TakeDatagrams(nil)
		h.s.WriteFailed(h.now, 0, err)
		outs = h.outcomes()
		if len(outs) != 1 || !errors.Is(outs[0].Receipt.Err, peer.ErrUndelivered) || outs[0].Receipt.Attempts != 1 || !strings.Contains(outs[0].Receipt.Err.Error(), err.Error()) {
			t.Fatalf("after %v: outcomes %+v, want an immediate failure naming it", err, outs)
		}
		if h.s.Busy() {
			t.Fatal("the message is still in flight")
		}
	}
	h.send(3, "ack")
	h.s.TakeDatagrams(nil)
	h.s.WriteFailed(h.now, 5, syscall.EMSGSIZE) // no such datagram: ignored
	if len(h.outcomes()) != 0 {
		t.Fatal("a failure of a datagram that was not written ended a message")
	}
}

// A sender that restarts draws new ids; a new message of it whose id and
// payload equal those of one the receiver still remembers is taken for a
// repeat: answered RECV, never delivered (a silent loss). The chance per
// message is (messages remembered with that payload) / 2^32. Exchanges
// ended by the sender's ACK are remembered only for max(2 s, 4 RTO), so
// after a steady stream of identical payloads at 10,000 messages/s the
// receiver remembers ~20,000 of them, not the 200,000 of a 10-minute
// horizon: the expected losses of a restart burst of 32,768 identical
// messages fall from 32,768 x 200,000 / 2^32 = 1.5 to 0.15.
func TestState_RestartRisk(t *testing.T) {
	cfg := testParams()
	cfg.DedupeLimit, cfg.DedupeHorizon, cfg.Window, cfg.RecvWindow = 1<<20, 10*time.Minute, 1, 1
	now := epoch
	recv := peer.NewState(cfg, remote, now, [5]uint32{9}, true)
	var dgrams [][]byte
	hop := func(from, to *peer.State) {
		dgrams = wireHop(wire.DefaultFormat(), dgrams, from, to, now)
	}
	payload := []byte("same payload every time")
	stream := func(seed uint32, n int) (lost int) {
		send := peer.NewState(cfg, remote, now, [5]uint32{seed, seed + 1, seed + 2, seed + 3, seed + 4}, true)
		for range n {
			now = now.Add(100 * time.Microsecond)
			if err := send.Send(now, peer.Outgoing{ID: uuid.New(), Data: payload}); err != nil {
				t.Fatal(err)
			}
			hop(send, recv) // DATA
			if _, ok := recv.Next(); ok {
				recv.Delivered(now)
			} else {
				lost++ // answered as a repeat: the sender is told it arrived
			}
			hop(recv, send) // RECV
			hop(send, recv) // ACK
			send.TakeOutcomes(nil)
			recv.Tick(now)
		}
		return lost
	}
	if lost := stream(1, 200_000); lost != 0 {
		t.Fatalf("%d messages of one sender taken for repeats", lost)
	}
	remembered := recv.Stats().Remembered
	lost := stream(1000, 32_768) // the sender restarted: new ids
	expect := 32_768 * float64(remembered) / (1 << 32)
	t.Logf("remembered %d after 20 s at 10,000 msg/s; restart burst of 32,768 identical messages: %d lost (expected %.2f)", remembered, lost, expect)
	if remembered > 25_000 {
		t.Fatalf("remembered %d exchanges ended by ACK: more than 2.5 s of the stream", remembered)
	}
	if lost > 3 {
		t.Fatalf("%d silent losses in a restart burst, expected %.2f", lost, expect)
	}
}

// A message sent once and then held back by the amplification limit when
// it was due again is still answered by the RECV for its first
// transmission.
func TestState_RecvAnswersAHeldBackResend(t *testing.T) {
	h := newHarness(t, testParams(), false)
	h.recv(wire.Data, wire.ID{9}, "") // 5 bytes in: 15 may go out
	h.send(1, "123")                  // 8 bytes out
	data := h.onePacket(wire.Data)
	h.at(100 * time.Millisecond) // the probe timeout: its re-send would pass 15
	h.packets()
	if st := h.s.Stats(); st.Limited == 0 {
		t.Fatalf("stats %+v: want the re-send held back", st)
	}
	h.recv(wire.Recv, data.ID, "")
	if out := h.outcomes(); len(out) != 1 || out[0].Receipt.Err != nil {
		t.Fatalf("outcomes %+v, want the message confirmed", out)
	}
}

// Hungry takes messages while the bytes not yet sent once are below twice
// the congestion window, and at least 64 KiB: to the byte, before and
// after the window has grown past half of that.
func TestState_Hungry(t *testing.T) {
	cfg := testParams()
	cfg.Window = 10000
	h := newHarness(t, cfg, true)
	data := string(make([]byte, 1024))
	sent, out := 0, 0 // messages sent, and DATA transmitted once
	seen := map[wire.ID]bool{}
	var unanswered []wire.ID
	take := func() {
		for _, p := range h.packets() {
			if p.Kind == wire.Data && !seen[p.ID] {
				seen[p.ID] = true
				out++
				unanswered = append(unanswered, p.ID)
			}
		}
	}
	check := func(phase string) {
		t.Helper()
		unsent := (sent - out) * 1024
		limit := max(2*h.s.Stats().Cwnd, 64<<10)
		if got := h.s.Hungry(); got != (unsent < limit) {
			t.Fatalf("%s: %d bytes unsent, window %d: Hungry %v, want %v", phase, unsent, h.s.Stats().Cwnd, got, unsent < limit)
		}
	}

	// The initial window: 64 KiB unsent is the limit, reached exactly.
	for sent-out <= 64 {
		h.send(byte(sent), data)
		sent++
		take()
		check("initial window")
	}
	if (sent-out)*1024 != 65<<10 || h.s.Hungry() {
		t.Fatalf("%d bytes unsent, hungry %v: the loop did not pass the limit", (sent-out)*1024, h.s.Hungry())
	}

	// Grow the window by answering, a round trip of 5 ms at a time.
	now := time.Duration(0)
	for h.s.Stats().Cwnd <= 48<<10 || h.s.InFlight() > 0 {
		if h.s.Stats().Cwnd <= 48<<10 {
			for h.s.Hungry() {
				h.send(byte(sent), data)
				sent++
			}
		}
		take()
		ids := unanswered
		unanswered = nil
		now += 5 * time.Millisecond
		h.at(now)
		for _, id := range ids {
			h.recv(wire.Recv, id, "")
		}
		if now > 10*time.Second {
			t.Fatalf("the window did not grow: %+v", h.s.Stats())
		}
	}
	take()
	if sent != out {
		t.Fatalf("%d sent, %d transmitted, with nothing in flight", sent, out)
	}
	// Now twice the window is the limit.
	for sent-out <= 2*h.s.Stats().Cwnd/1024 {
		h.send(byte(sent), data)
		sent++
		take()
		check("grown window")
	}
	if h.s.Hungry() {
		t.Fatal("hungry past twice the window")
	}
}

// Loss detection (RFC 9002 6.1): an answer to a later message makes the
// earlier ones lost three transmissions back at once, the others at 9/8
// of the RTT after their transmission; a RECV sooner than the least RTT
// after a re-send is spurious and widens the time threshold by half.
func TestState_LossByPacketAndTimeThresholds(t *testing.T) {
	const ms = time.Millisecond
	cfg := testParams()
	cfg.Window = 8
	h := newHarness(t, cfg, true)
	var ids []wire.ID
	for i, m := range []string{"a", "b", "c", "d", "e"} {
		h.send(byte(i), m)
		ids = append(ids, h.onePacket(wire.Data).ID)
	}
	want := func(what string, kinds ...string) {
		t.Helper()
		var got []string
		for _, p := range h.packets() {
			got = append(got, fmt.Sprintf("%v %s", p.Kind, p.Payload))
		}
		if !slices.Equal(got, kinds) {
			t.Fatalf("%s: packets %q, want %q", what, got, kinds)
		}
	}

	// RECV(e) at 10 ms: a and b are three and more behind, lost now; c
	// and d wait for the time threshold, 9/8 of 10 ms after they went.
	h.at(10 * ms)
	h.recv(wire.Recv, ids[4], "")
	want("RECV for e", "ACK ", "DATA a", "DATA b")
	if d := h.s.NextDeadline(); d != epoch.Add(11250*time.Microsecond) {
		t.Fatalf("NextDeadline %v, want the time threshold 11.25ms", d.Sub(epoch))
	}
	h.at(11250*time.Microsecond - 1)
	want("before the time threshold")
	h.at(11250 * time.Microsecond)
	want("at the time threshold", "DATA c", "DATA d")
	if st := h.s.Stats(); st.Lost != 4 || st.DataResent != 4 {
		t.Fatalf("lost %d resent %d, want 4 4", st.Lost, st.DataResent)
	}

	// RECV(a) 2 ms after its re-send, under the least RTT of 10 ms: it
	// answers the first transmission, 12 ms ago, an RTT sample.
	h.at(12 * ms)
	h.recv(wire.Recv, ids[0], "")
	want("RECV for a", "ACK ")
	if st := h.s.Stats(); st.Spurious != 1 || st.SRTT != 10250*time.Microsecond {
		t.Fatalf("spurious %d srtt %v, want 1 and (7·10+12)/8 ms", st.Spurious, st.SRTT)
	}
	// RECV(b) a least RTT after its re-send: it may answer it, not spurious.
	h.at(20 * ms)
	h.recv(wire.Recv, ids[1], "")
	want("RECV for b", "ACK ")
	if st := h.s.Stats(); st.Spurious != 1 || st.SRTT != 10250*time.Microsecond {
		t.Fatalf("spurious %d srtt %v, want still 1 and no sample", st.Spurious, st.SRTT)
	}
	// RECV(d) at 25 ms: c is one behind, lost by time at 11.25 ms plus
	// 9/8 × 1.5 of the latest RTT (12 ms): 31.5 ms.
	h.at(25 * ms)
	h.recv(wire.Recv, ids[3], "")
	want("RECV for d", "ACK ")
	if d := h.s.NextDeadline(); d != epoch.Add(31500*time.Microsecond) {
		t.Fatalf("NextDeadline %v, want the widened time threshold 31.5ms", d.Sub(epoch))
	}
	h.at(31500 * time.Microsecond)
	want("at the widened threshold", "DATA c")
}

// Three probe timeouts in a row are persistent congestion: the window
// falls to its minimum at the third, not before.
func TestState_PersistentCongestionAtThirdPTO(t *testing.T) {
	const ms = time.Millisecond
	h := newHarness(t, testParams(), true)
	h.send(1, "x")
	h.onePacket(wire.Data)
	initial := h.s.Stats().Cwnd
	for i, at := range []time.Duration{100 * ms, 300 * ms, 700 * ms} {
		h.at(at)
		h.onePacket(wire.Data)
		st := h.s.Stats()
		if st.Timeouts != uint64(i+1) {
			t.Fatalf("at %v: %d timeouts, want %d", at, st.Timeouts, i+1)
		}
		want := initial
		if i == 2 {
			want = 2 * (1200 + 28) // two path-safe datagrams with their headers
		}
		if st.Cwnd != want {
			t.Fatalf("PTO %d: window %d, want %d", i+1, st.Cwnd, want)
		}
	}
}

// The ACK of a probe sent once is an RTT sample (Karn: not of one sent
// twice); an unanswered probe goes again an RTO after it went, to the
// nanosecond.
func TestState_ProbeRTTAndRetry(t *testing.T) {
	const ms = time.Millisecond
	start := func() (*harness, wire.ID) {
		h := newHarness(t, testParams(), false)
		h.recv(wire.Data, wire.ID{6}, "") // 5 bytes in: 15 may go out
		h.deliverAll()
		h.onePacket(wire.Recv)
		h.at(50 * ms)
		h.send(1, strings.Repeat("x", 1000)) // held back: a probe goes
		return h, h.onePacket(wire.Recv).ID
	}

	h, probe := start()
	h.at(80 * ms)
	h.recv(wire.Ack, probe, "")
	h.onePacket(wire.Data)
	if st := h.s.Stats(); st.SRTT != 30*ms || st.RTO != 90*ms {
		t.Fatalf("probe answered after 30ms: srtt %v rto %v, want 30ms 90ms", st.SRTT, st.RTO)
	}
	// Paced at twice the window per RTT in slow start: 2 × 12,280 B / 30 ms.
	if st := h.s.Stats(); st.PacingRate < 818666 || st.PacingRate > 818667 {
		t.Fatalf("pacing rate %d B/s, want 818,666", st.PacingRate)
	}

	h, probe = start()
	h.at(150*ms - 1)
	h.noPackets()
	h.at(150 * ms) // InitialRTO after the first
	if p := h.onePacket(wire.Recv); p.ID != probe {
		t.Fatalf("re-sent probe %v, want %v", p.ID, probe)
	}
	h.at(180 * ms)
	h.recv(wire.Ack, probe, "")
	h.onePacket(wire.Data)
	if st := h.s.Stats(); st.SRTT != 0 || !st.Validated {
		t.Fatalf("probe sent twice, answered: srtt %v validated %v, want no sample, validated", st.SRTT, st.Validated)
	}
}

// An exchange ended by ACK is remembered four RTOs when that is longer
// than 2 s, and never past DedupeHorizon.
func TestState_AckedHorizonFollowsRTO(t *testing.T) {
	for _, tt := range []struct {
		horizon, want time.Duration
	}{
		{10 * time.Second, 4 * time.Second}, // 4 × RTO of 1 s
		{3 * time.Second, 3 * time.Second},  // DedupeHorizon caps it
	} {
		cfg := testParams()
		cfg.InitialRTO, cfg.MinRTO, cfg.MaxRTO = time.Second, time.Second, 10*time.Second
		cfg.DedupeHorizon = tt.horizon
		h := newHarness(t, cfg, true)
		h.recv(wire.Data, wire.ID{1}, "m")
		h.deliverAll()
		h.packets()
		h.at(100 * time.Millisecond)
		h.recv(wire.Ack, wire.ID{1}, "")
		if d, want := h.s.NextDeadline(), epoch.Add(100*time.Millisecond+tt.want); d != want {
			t.Errorf("DedupeHorizon %v: forgotten at %v, want %v", tt.horizon, d.Sub(epoch), want.Sub(epoch))
		}
	}
}

// What a State forgets when it ends early, the next State for the address
// recalls: a repeat of a message delivered before is still known, until
// it expires, within DedupeLimit (the newest kept). A message delivered
// and awaiting its ACK is remembered as ended without it, from then.
func TestState_ForgetAndRecall(t *testing.T) {
	const s = time.Second
	h := newHarness(t, testParams(), true)
	h.recv(wire.Data, wire.ID{1}, "acked")
	h.deliverAll()
	h.recv(wire.Ack, wire.ID{1}, "") // remembered until 2 s
	h.at(s)
	h.recv(wire.Data, wire.ID{2}, "open")
	h.recv(wire.Data, wire.ID{3}, "open too")
	h.deliverAll() // awaiting ACK: remembered until 1 s + DedupeHorizon
	h.packets()
	m := h.s.Forget(h.now)
	if len(m) != 3 || !m.Until().Equal(epoch.Add(11*s)) {
		t.Fatalf("Forget: %d remembered until %v, want 3 until 11s", len(m), m.Until().Sub(epoch))
	}

	for _, tt := range []struct {
		name  string
		at    time.Duration
		limit int
		known []bool // of ids 1, 2, 3
	}{
		{"all", s, 100, []bool{true, true, true}},
		{"the acked one expired", 2 * s, 100, []bool{false, true, true}},
		{"the newest within the limit", s, 1, []bool{false, false, true}},
		{"the newest two within the limit", s, 2, []bool{false, true, true}},
		{"all expired", 11 * s, 100, []bool{false, false, false}},
	} {
		cfg := testParams()
		cfg.DedupeLimit = tt.limit
		n := newHarness(t, cfg, true)
		n.at(tt.at)
		n.s.Recall(n.now, m)
		for i, payload := range []string{"acked", "open", "open too"} {
			dups := n.s.Stats().Duplicates
			n.recv(wire.Data, wire.ID{byte(i + 1)}, payload)
			n.deliverAll()
			if known := n.s.Stats().Duplicates > dups; known != tt.known[i] {
				t.Errorf("%s: a repeat of message %d known %v, want %v", tt.name, i+1, known, tt.known[i])
			}
		}
	}
}

// A RECV whose ACK is late goes again as the pacer allows, after a large
// DATA has spent its tokens: it waits for the pacer when that takes less
// than the RECV's own timeout, and goes at once when it would take longer.
func TestState_RecvResentAsThePacerAllows(t *testing.T) {
	const ms = time.Millisecond
	for _, tt := range []struct {
		maxRTO, recvTimeout time.Duration
		waits               bool
	}{
		{10 * time.Second, 6 * time.Second, true},                 // RTO 3 s
		{1500 * time.Millisecond, 1500 * time.Millisecond, false}, // RTO capped
	} {
		cfg := testParams()
		cfg.InitialRTO, cfg.MaxRTO = 5*time.Second, tt.maxRTO
		h := newHarness(t, cfg, true)
		h.send(1, "x")
		ours := h.onePacket(wire.Data).ID
		h.at(time.Second)
		h.recv(wire.Recv, ours, "") // an RTT of 1 s: the pacer's rate is low
		h.onePacket(wire.Ack)
		h.recv(wire.Data, wire.ID{7}, "theirs")
		h.deliverAll()
		h.onePacket(wire.Recv)
		due := time.Second + tt.recvTimeout
		h.at(due - 100*ms)
		h.send(2, strings.Repeat("y", 60000)) // spends far more than the bucket held
		h.onePacket(wire.Data)

		h.at(due)
		if !tt.waits {
			// The pacer owes 1.85 s, longer than the RECV waits.
			if p := h.onePacket(wire.Recv); p.ID != (wire.ID{7}) {
				t.Fatalf("MaxRTO %v: RECV for %v, want 07000000", tt.maxRTO, p.ID)
			}
			continue
		}
		h.noPackets()
		next := h.s.NextDeadline().Sub(epoch)
		if next < due+1800*ms || next > due+1900*ms {
			t.Fatalf("MaxRTO %v: next deadline %v, want the pacer's, about %v", tt.maxRTO, next, due+1850*ms)
		}
		h.at(next - 1)
		h.noPackets()
		h.at(next)
		if p := h.onePacket(wire.Recv); p.ID != (wire.ID{7}) {
			t.Fatalf("MaxRTO %v: RECV for %v, want 07000000", tt.maxRTO, p.ID)
		}
	}
}

// Messages the window has room for but the pacer holds back go when the
// pacer allows: the next deadline is the pacer's, not a timeout's.
func TestState_PacerSpacesABurst(t *testing.T) {
	const ms = time.Millisecond
	cfg := testParams()
	cfg.InitialRTO, cfg.MaxRTO, cfg.Window = 5*time.Second, 10*time.Second, 100
	h := newHarness(t, cfg, true)
	h.send(1, "x")
	ours := h.onePacket(wire.Data).ID
	h.at(time.Second)
	h.recv(wire.Recv, ours, "") // an RTT of 1 s
	h.packets()
	h.send(2, strings.Repeat("y", 60000)) // grows the window when answered
	big := h.onePacket(wire.Data).ID
	h.at(1500 * ms)
	h.recv(wire.Recv, big, "")
	h.packets()
	if st := h.s.Stats(); st.Cwnd < 60000 {
		t.Fatalf("window %d after a 60 kB message was answered, want it grown", st.Cwnd)
	}

	// 20 messages of 1 kB: the window has room for all, the bucket for
	// about 12 kB.
	for i := range 20 {
		h.send(byte(10+i), strings.Repeat("z", 1000))
	}
	first := len(h.packets())
	if first == 0 || first >= 20 {
		t.Fatalf("%d of 20 went at once, want the bucket's worth", first)
	}
	next := h.s.NextDeadline().Sub(epoch)
	if next <= 1500*ms || next > 1510*ms {
		t.Fatalf("next deadline %v, want the pacer's, within 10 ms", next)
	}
	h.at(next - 1)
	h.noPackets()
	h.at(next)
	if n := len(h.packets()); n == 0 {
		t.Fatalf("nothing went at the pacer's deadline %v", next)
	}
}

// The receiver samples the RTT from its RECV to the ACK, only for a RECV
// sent once (Karn): not after a timer re-send, nor after a repeat of the
// DATA made it answer again.
func TestState_RecvToAckRTTAndKarn(t *testing.T) {
	const ms = time.Millisecond
	for _, tt := range []struct {
		name    string
		between func(h *harness)
		srtt    time.Duration
	}{
		{"sent once", func(h *harness) {}, 30 * ms},
		{"re-sent on the timer", func(h *harness) { h.at(250 * ms); h.onePacket(wire.Recv) }, 0},
		{"answered a repeat", func(h *harness) { h.recv(wire.Data, wire.ID{3}, "m"); h.onePacket(wire.Recv) }, 0},
	} {
		h := newHarness(t, testParams(), true)
		h.at(50 * ms)
		h.recv(wire.Data, wire.ID{3}, "m")
		h.deliverAll()
		h.onePacket(wire.Recv)
		tt.between(h)
		h.now = h.now.Add(30 * ms)
		h.recv(wire.Ack, wire.ID{3}, "")
		if st := h.s.Stats(); st.SRTT != tt.srtt || st.Open != 0 {
			t.Errorf("%s: srtt %v open %d, want %v 0", tt.name, st.SRTT, st.Open, tt.srtt)
		}
	}
}

// RecvWindow bounds the open exchanges, held or awaiting ACK, exactly.
func TestState_RecvWindowBoundsOpenExchanges(t *testing.T) {
	cfg := testParams()
	cfg.RecvWindow, cfg.HoldLimit = 2, 10
	h := newHarness(t, cfg, true)
	for i := range 3 {
		h.recv(wire.Data, wire.ID{byte(i)}, "m")
	}
	if st := h.s.Stats(); h.s.Held() != 2 || st.Withheld != 1 || st.Open != 2 {
		t.Fatalf("3 DATA, RecvWindow 2: held %d withheld %d open %d; want 2 1 2", h.s.Held(), st.Withheld, st.Open)
	}
}
