package peer_test

import (
	"slices"
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

// recvPacedAt sets up a RECV due when the pacer owes for a large DATA:
// an RTT of 1 s paces at two windows a second (24,560 B/s, a bucket of
// 12,280 bytes); a DATA of 60,000 bytes, sent 100 ms before the RECV is
// due, leaves the bucket far below zero. It returns the harness at that
// time, the RECV not yet handled.
func recvPacedAt(t *testing.T, maxRTO time.Duration) (*harness, time.Duration) {
	t.Helper()
	cfg := testParams()
	cfg.InitialRTO, cfg.MaxRTO = 5*time.Second, maxRTO
	h := newHarness(t, cfg, true)
	h.send(1, "x")
	ours := h.onePacket(wire.Data).ID
	h.at(time.Second)
	h.recv(wire.Recv, ours, "")
	h.onePacket(wire.Ack)
	h.recv(wire.Data, wire.ID{7}, "theirs")
	h.deliverAll()
	h.onePacket(wire.Recv)
	due := h.s.NextDeadline().Sub(epoch)
	h.at(due - 100*time.Millisecond)
	h.send(2, strings.Repeat("y", 60000))
	h.onePacket(wire.Data)
	return h, due
}

// A RECV re-sent is charged to the pacer what it takes on the link: its
// header and 28 bytes of IP and UDP headers. It waits until the pacer has
// that many tokens.
func TestState_RecvResendChargedItsWireSize(t *testing.T) {
	h, due := recvPacedAt(t, 10*time.Second)
	h.at(due)
	h.noPackets()
	st := h.s.Stats()
	if st.PacingRate != 24560 {
		t.Fatalf("pacing rate %d B/s, want 24,560", st.PacingRate)
	}
	rate := float64(st.PacingRate) / float64(time.Second) // bytes a nanosecond
	header := testParams().Format.HeaderLen()
	tokens := 12280 - float64(header+60000+28) + float64(100*time.Millisecond)*rate
	want := due + time.Duration((float64(header+28)-tokens)/rate)
	if next := h.s.NextDeadline().Sub(epoch); next < want-time.Microsecond || next > want+time.Microsecond {
		t.Fatalf("RECV re-sent at %v, want %v: when the pacer has its %d bytes", next, want, header+28)
	}
}

// A RECV waits for the pacer when that takes as long as the RECV's own
// timeout, and no longer: then it goes at once. The wait is measured with
// a MaxRTO that does not bound the timeout, and the timeout then set to
// it, and to a nanosecond less, through MaxRTO.
func TestState_RecvWaitsForThePacerUpToItsTimeout(t *testing.T) {
	h, due := recvPacedAt(t, 10*time.Second)
	h.at(due)
	h.noPackets()
	wait := h.s.NextDeadline().Sub(epoch) - due
	for _, tt := range []struct {
		timeout time.Duration
		waits   bool
	}{{wait, true}, {wait - 1, false}} {
		h, due := recvPacedAt(t, tt.timeout) // RTO and RECV timeout: MaxRTO
		if due != time.Second+tt.timeout {
			t.Fatalf("RECV due at %v, want a timeout of %v after 1s", due, tt.timeout)
		}
		h.at(due)
		if got := len(h.packets()) == 0; got != tt.waits {
			t.Fatalf("the pacer owes %v, the RECV's timeout is %v: waits %v, want %v", wait, tt.timeout, got, tt.waits)
		}
	}
}

// EXT datagrams are packed to an eighth of the window (at least 1,200
// bytes), however large the datagram size: a loss then costs an eighth
// of the window, and the datagrams after it find it.
func TestState_PacksAnEighthOfTheWindow(t *testing.T) {
	pa := extParams(1)
	pa.DatagramSize = 9000
	d := negotiated(t, pa, extParams(2))
	eighth := d.a.Stats().Cwnd / 8
	for range 40 {
		d.send(d.a, strings.Repeat("m", 100))
	}
	dgs := d.a.TakeDatagrams(nil)
	if len(dgs) < 3 {
		t.Fatalf("40 messages of 100 bytes in %d datagrams, want them spread over datagrams of %d bytes", len(dgs), eighth)
	}
	for i, dg := range dgs {
		if len(dg) > eighth {
			t.Fatalf("datagram %d of %d bytes, more than an eighth of the window, %d", i, len(dg), eighth)
		}
	}
}

// BytesOut counts every byte of the datagrams written, EXT ones too.
func TestState_CountsBytesOut(t *testing.T) {
	d := negotiated(t, extParams(1), extParams(2))
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

// RECVs answering many messages at once go as records of many ids, in as
// many EXT datagrams as it takes, none larger than the datagram size, to
// the byte: here the records' room is 2 more than a multiple of 4 (an id's
// length), and a record past 31 ids has a 2-byte length.
func TestState_RecvRecordsFitTheDatagram(t *testing.T) {
	pa, pb := extParams(1), extParams(2)
	pa.Window = 1000
	pb.DatagramSize = 1200 + (2-(1200-pb.Format.ExtOverhead())%4+4)%4
	d := negotiated(t, pa, pb)
	const n = 700
	for range n {
		d.send(d.a, "m")
	}
	d.hop("a", d.a, d.fa, d.b, d.fb)
	for {
		if _, ok := d.b.Next(); !ok {
			break
		}
		d.b.Delivered(d.now)
	}
	ids := 0
	for _, dg := range d.b.TakeDatagrams(nil) {
		if len(dg) > pb.DatagramSize {
			t.Fatalf("an EXT datagram of %d bytes, more than %d", len(dg), pb.DatagramSize)
		}
		p, err := d.fb.Decode(dg)
		if err != nil || p.Kind != wire.Ext {
			t.Fatalf("b wrote %x (%v), want EXT datagrams", dg, err)
		}
		_, recs, _ := wire.ParseExt(p.Payload)
		for r, ok := recs.Next(); ok; r, ok = recs.Next() {
			if r.Type == wire.RecRecv {
				ids += r.NumIDs()
			}
		}
	}
	if ids != n {
		t.Fatalf("%d ids in RECV records, want %d", ids, n)
	}
}

// Compact keeps what the state produced and was not yet taken: the
// datagrams to write and the outcomes of finished messages.
func TestState_CompactKeepsWhatIsNotYetTaken(t *testing.T) {
	h := newHarness(t, testParams(), true)
	h.send(1, "a")
	p := h.onePacket(wire.Data)
	h.recv(wire.Recv, p.ID, "") // an ACK to write, an outcome to take
	h.send(2, "b")              // a DATA to write
	h.s.Compact()
	var got []wire.Kind
	for _, p := range h.packets() {
		got = append(got, p.Kind)
	}
	if !slices.Equal(got, []wire.Kind{wire.Ack, wire.Data}) {
		t.Fatalf("after Compact: packets %v, want the ACK and the DATA", got)
	}
	if out := h.outcomes(); len(out) != 1 || out[0].Receipt.Err != nil {
		t.Fatalf("after Compact: %d outcomes, want the first message's success", len(out))
	}
}
