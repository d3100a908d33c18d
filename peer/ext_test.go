package peer_test

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/google/uuid"
	"github.com/gtudp/gtudp/peer"
	"github.com/gtudp/gtudp/wire"
)

// extParams are testParams with the extension on.
func extParams(inc uint64) *peer.Params {
	p := testParams()
	p.Format.Ext = p.Format.DeriveExt()
	p.DatagramSize = 1200
	p.Incarnation = inc
	p.Window, p.RecvWindow, p.HoldLimit = 256, 1024, 1024
	return p
}

// duo is two States talking to each other through a wire the test
// controls: what each writes is decoded, counted and handed over.
type duo struct {
	t        *testing.T
	now      time.Time
	a, b     *peer.State
	fa, fb   wire.Format
	seen     map[string]int // "a:EXT" etc.: datagrams by sender and kind
	bytes    map[string]int // "a", "b": bytes of the datagrams each wrote
	drop     func(from string, p wire.Packet) bool
	received []string // payloads b's application got
}

func newDuo(t *testing.T, pa, pb *peer.Params) *duo { return newDuoAt(t, remote, pa, pb) }

// newDuoAt is newDuo with a's peer, b, at addr.
func newDuoAt(t *testing.T, addr netip.AddrPort, pa, pb *peer.Params) *duo {
	return &duo{
		t: t, now: epoch,
		a:  peer.NewState(pa, addr, epoch, [5]uint32{1, 2, 3, 4, 5}, true),
		b:  peer.NewState(pb, remote, epoch, [5]uint32{6, 7, 8, 9, 10}, true),
		fa: pa.Format, fb: pb.Format, seen: map[string]int{}, bytes: map[string]int{},
	}
}

// hop carries what from (named name, writing with format f) wrote to to,
// decoded under to's format, and reports how many datagrams it carried.
// negotiated returns a duo of states with pa and pb whose a knows b speaks
// the extension (a's first message was answered, its outcome taken): a's
// messages go as EXT records, large ones in fragments, at once.
func negotiated(t *testing.T, pa, pb *peer.Params) *duo {
	t.Helper()
	d := newDuo(t, pa, pb)
	d.send(d.a, "negotiate")
	d.run()
	if out := d.a.TakeOutcomes(nil); len(out) != 1 || out[0].Receipt.Err != nil || !d.a.Stats().Extension {
		t.Fatalf("negotiation: outcomes %+v, extension %v", out, d.a.Stats().Extension)
	}
	d.received = nil
	return d
}

func (d *duo) hop(name string, from *peer.State, f wire.Format, to *peer.State, tf wire.Format) int {
	dg := from.TakeDatagrams(nil)
	for _, b := range dg {
		p, err := f.Decode(b)
		if err != nil {
			d.t.Fatalf("%s wrote %x, which does not decode: %v", name, b, err)
		}
		d.seen[name+":"+p.Kind.String()]++
		d.bytes[name] += len(b)
		if d.drop != nil && d.drop(name, p) {
			continue
		}
		q, err := tf.Decode(b)
		if err != nil {
			continue // foreign to the receiver (an EXT datagram to a plain peer)
		}
		q.Payload = append([]byte(nil), q.Payload...)
		to.Receive(d.now, q, len(b))
	}
	return len(dg)
}

// deliver hands to the datagrams dg, decoded under f, as if they had just
// come.
func (d *duo) deliver(to *peer.State, f wire.Format, dg [][]byte) {
	d.t.Helper()
	for _, b := range dg {
		p, err := f.Decode(b)
		if err != nil {
			d.t.Fatalf("%x does not decode: %v", b, err)
		}
		p.Payload = append([]byte(nil), p.Payload...)
		to.Receive(d.now, p, len(b))
	}
}

// take lets b's application take every delivery.
func (d *duo) take() {
	for {
		m, ok := d.b.Next()
		if !ok {
			return
		}
		d.received = append(d.received, string(m.Data))
		d.b.Delivered(d.now)
	}
}

// run moves everything until both are quiet, and lets b's application
// take every delivery.
func (d *duo) run() {
	for range 100 {
		n := d.hop("a", d.a, d.fa, d.b, d.fb)
		d.take()
		n += d.hop("b", d.b, d.fb, d.a, d.fa)
		if n == 0 {
			return
		}
	}
	d.t.Fatal("no quiet after 100 rounds")
}

func (d *duo) send(s *peer.State, data string) {
	d.t.Helper()
	if err := s.Send(d.now, peer.Outgoing{ID: uuid.New(), Data: []byte(data)}); err != nil {
		d.t.Fatal(err)
	}
}

// A peer counts as speaking the extension once its trailer comes back on
// a RECV for one of our DATA; from then on our messages go many to an EXT
// datagram, and their RECVs and ACKs as records, many to a datagram.
func TestExt_NegotiationAndPacking(t *testing.T) {
	d := newDuo(t, extParams(1), extParams(2))
	d.send(d.a, "first")
	d.run()
	if d.seen["a:DATA"] != 1 || d.seen["b:RECV"] != 1 || d.seen["a:ACK"] != 1 {
		t.Fatalf("first exchange: %v, want one plain DATA, RECV and ACK", d.seen)
	}
	if !d.a.Stats().Extension {
		t.Fatal("a does not count b as speaking the extension after its trailer")
	}
	clear(d.seen)
	const n = 200
	for i := range n {
		d.send(d.a, fmt.Sprintf("message %03d", i))
	}
	d.run()
	if len(d.received) != n+1 {
		t.Fatalf("b got %d messages, want %d", len(d.received), n+1)
	}
	if d.seen["a:DATA"] != 0 || d.seen["b:RECV"] != 0 || d.seen["a:ACK"] != 0 {
		t.Fatalf("plain packets after the negotiation: %v", d.seen)
	}
	// 200 messages of 11 bytes: 17 bytes a record, about 70 to a datagram.
	if total := d.seen["a:EXT"] + d.seen["b:EXT"]; total > 12 {
		t.Fatalf("%d EXT datagrams for %d messages: %v", total, n, d.seen)
	}
	for _, o := range d.a.TakeOutcomes(nil) {
		if o.Receipt.Err != nil {
			t.Fatalf("outcome %+v", o)
		}
	}
}

// A peer without the extension never answers with a trailer: it never
// gets an EXT datagram, and after a few answers ours go without trailers.
func TestExt_PlainPeerStaysPlain(t *testing.T) {
	plain := testParams()
	d := newDuo(t, extParams(1), plain)
	for i := range 10 {
		d.send(d.a, fmt.Sprint(i))
		d.run()
	}
	if d.seen["a:EXT"] != 0 || d.a.Stats().Extension {
		t.Fatalf("EXT datagrams to a plain peer: %v", d.seen)
	}
	if len(d.received) != 10 {
		t.Fatalf("b got %d messages", len(d.received))
	}
	// b's messages to a: a's RECVs carry no trailer any more.
	d.b.Send(d.now, peer.Outgoing{ID: uuid.New(), Data: []byte("x")})
	d.hop("b", d.b, d.fb, d.a, d.fa)
	if m, ok := d.a.Next(); !ok || string(m.Data) != "x" {
		t.Fatal("a did not get b's message")
	}
	d.a.Delivered(d.now)
	for _, b := range d.a.TakeDatagrams(nil) {
		if p, _ := d.fa.Decode(b); p.Kind == wire.Recv && len(p.Payload) != 0 {
			t.Fatalf("RECV %x to a known-plain peer carries a trailer", b)
		}
	}
}

// The incarnation in every EXT header is mixed into the dedupe key of the
// messages it carries: a restarted sender's new message with the id and
// payload of one the receiver remembers from before is a new message, not
// a repeat silently answered.
func TestExt_IncarnationSeparatesRestarts(t *testing.T) {
	format := extParams(1).Format
	b := peer.NewState(extParams(9), remote, epoch, [5]uint32{6}, true)
	dgram := func(inc uint64) []byte {
		buf := format.AppendExt(nil, wire.ExtHeader{Version: wire.ExtVersion, Incarnation: inc})
		return wire.AppendData(buf, wire.ID{1, 2, 3, 4}, []byte("same"))
	}
	deliver := func(inc uint64) int {
		p, err := format.Decode(dgram(inc))
		if err != nil {
			t.Fatal(err)
		}
		b.Receive(epoch, p, 20)
		n := 0
		for {
			if _, ok := b.Next(); !ok {
				return n
			}
			b.Delivered(epoch)
			n++
		}
	}
	if deliver(100) != 1 || deliver(100) != 0 {
		t.Fatal("a message and its repeat from one incarnation: want one delivery")
	}
	if deliver(200) != 1 {
		t.Fatal("the same id and payload from a new incarnation was taken for a repeat")
	}
	if st := b.Stats(); st.Duplicates != 1 || st.Delivered != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// A peer that stops speaking the extension (the address taken over by a
// plain endpoint) gets plain packets again after three probe timeouts in
// a row: the messages sent in EXT form are not answered, the timeouts
// find nothing heard since, and new messages go plain; those in EXT form
// end at their limits.
func TestExt_FallsBackToPlain(t *testing.T) {
	d := newDuo(t, extParams(1), extParams(2))
	d.send(d.a, "negotiate")
	d.run()
	if !d.a.Stats().Extension {
		t.Fatal("no extension")
	}
	// b's address is taken over by a plain endpoint.
	plain := testParams()
	d.b, d.fb = peer.NewState(plain, remote, d.now, [5]uint32{7}, true), plain.Format
	for i := range 5 {
		d.send(d.a, fmt.Sprint("lost in EXT form ", i))
	}
	d.run() // EXT datagrams: foreign to the plain peer
	if len(d.received) != 1 {
		t.Fatalf("the plain peer got %d messages", len(d.received))
	}
	extSent := d.seen["a:EXT"]
	// Nothing at all comes back: one probe timeout is loss as far as a
	// knows; the third in a row is not.
	for i := 1; i <= 3; i++ {
		d.now = d.now.Add(time.Second) // a probe timeout
		d.a.Tick(d.now)
		d.run()
		if st := d.a.Stats(); i < 3 && !st.Extension {
			t.Fatalf("after %d probe timeout(s) with nothing heard: back to plain, want the extension kept", i)
		}
	}
	if st := d.a.Stats(); st.Extension || st.ExtFallbacks != 1 {
		t.Fatalf("stats %+v: want a back to plain after three probe timeouts", st)
	}
	d.send(d.a, "plain again")
	d.run()
	if got := d.received[len(d.received)-1]; got != "plain again" {
		t.Fatalf("the plain peer got %q last, want the new message", got)
	}
	// The five messages sent in EXT form keep it (a plain re-send would
	// be a new message to a gtudp receiver that had them): their re-sends
	// are all the EXT datagrams that follow, a window's worth at most.
	if n := d.seen["a:EXT"] - extSent; n > 5 {
		t.Fatalf("%d more EXT datagrams after the peer went plain, for 5 messages in EXT form", n)
	}
	if d.seen["a:DATA"] < 1 {
		t.Fatal("no plain DATA after the fallback")
	}
}

// A message larger than one EXT datagram, sent before anything is known
// of the peer, waits for a probe to tell: to a gtudp peer it then goes in
// fragments, none larger than the datagram size, and arrives whole; it
// never goes as one oversized plain DATA.
func TestFrag_ParkedUntilTheExtensionIsKnown(t *testing.T) {
	d := newDuo(t, extParams(1), extParams(2))
	big := strings.Repeat("0123456789", 500)
	d.send(d.a, big)
	if dg := d.a.TakeDatagrams(nil); len(dg) != 1 || len(dg[0]) > 64 {
		t.Fatalf("first datagrams %d, want one probe", len(dg))
	} else if p, _ := d.fa.Decode(dg[0]); p.Kind != wire.Recv {
		t.Fatalf("first datagram a %v, want the probe's RECV", p.Kind)
	} else {
		d.b.Receive(d.now, p, len(dg[0]))
	}
	d.run()
	if len(d.received) != 1 || d.received[0] != big {
		t.Fatalf("b got %d messages, want the one of %d bytes", len(d.received), len(big))
	}
	if d.seen["a:DATA"] != 0 || d.seen["a:EXT"] < len(big)/1200 {
		t.Fatalf("datagrams %v: want only EXT ones, in fragments", d.seen)
	}
	out := d.a.TakeOutcomes(nil)
	if len(out) != 1 || out[0].Receipt.Err != nil {
		t.Fatalf("outcomes %+v, want one success", out)
	}
}

// To a peer that does not speak the extension (its probe answer comes
// without a trailer), a large message goes as one plain DATA if a
// datagram holds it, and fails with ErrTooLarge if not; once the peer is
// known plain, Send refuses such a message at once.
func TestFrag_PlainPeerGetsOneDatagram(t *testing.T) {
	d := newDuo(t, extParams(1), testParams())
	big := strings.Repeat("x", 60000)
	huge := peer.Outgoing{ID: uuid.New(), Data: make([]byte, 70000)}
	d.send(d.a, big)
	if err := d.a.Send(d.now, huge); err != nil {
		t.Fatalf("Send of 70,000 bytes while the peer is unknown: %v, want it taken", err)
	}
	d.run()
	if len(d.received) != 1 || d.received[0] != big || d.seen["a:DATA"] != 1 || d.seen["a:EXT"] != 0 {
		t.Fatalf("b got %d messages, datagrams %v: want the 60,000 bytes in one DATA", len(d.received), d.seen)
	}
	var errs []error
	for _, o := range d.a.TakeOutcomes(nil) {
		errs = append(errs, o.Receipt.Err)
	}
	if len(errs) != 2 || errs[0] != nil && errs[1] != nil || !errors.Is(errors.Join(errs...), wire.ErrTooLarge) {
		t.Fatalf("outcomes %v, want one success and one ErrTooLarge", errs)
	}
	if err := d.a.Send(d.now, peer.Outgoing{ID: uuid.New(), Data: make([]byte, 70000)}); !errors.Is(err, wire.ErrTooLarge) {
		t.Fatalf("Send of 70,000 bytes to a known plain peer: %v, want ErrTooLarge", err)
	}
}

// A fragment whose sender has not proved its address starts nothing: it
// is not answered, and a probe goes out instead; once the probe is
// answered, the re-sent fragment is taken.
// frag returns an EXT datagram from incarnation 1 with one FRAG record: the
// first 1,000 bytes of a 2,000-byte message msg, as exchange id.
func frag(p *peer.Params, id, msg wire.ID) (wire.Packet, int) {
	dg := p.Format.AppendExt(nil, wire.ExtHeader{Version: wire.ExtVersion, Incarnation: 1})
	dg = wire.AppendFrag(dg, id, msg, 2000, 0, make([]byte, 1000))
	pkt, _ := p.Format.Decode(dg)
	return pkt, len(dg)
}

// extAnswers counts the EXT datagrams among dgrams.
func extAnswers(p *peer.Params, dgrams [][]byte) int {
	var n int
	for _, dg := range dgrams {
		if q, _ := p.Format.Decode(dg); q.Kind == wire.Ext {
			n++
		}
	}
	return n
}

func TestFrag_UnprovedSenderIsProbedAndItsFragmentKept(t *testing.T) {
	p := extParams(2)
	p.Budget = peer.NewBudget(1 << 20)
	b := peer.NewState(p, remote, epoch, [5]uint32{6}, false)
	pkt, size := frag(p, wire.ID{1}, wire.ID{2})
	p.Budget.Take(peer.Held(pkt)) // as the socket reader does
	b.Receive(epoch, pkt, size)
	out := decode(t, b.TakeDatagrams(nil))
	if len(out) != 1 || out[0].Kind != wire.Recv {
		t.Fatalf("answer to an unproved fragment: %v; want only a probe", out)
	}
	if st, used := b.Stats(), p.Budget.Used(); st.Withheld != 0 || used != 1000 {
		t.Fatalf("the fragment was not kept for later: %+v, budget used %d, want 1000", st, used)
	}
	// The probe's answer proves the address: the kept fragment is
	// handled then, with no re-send needed.
	b.Receive(epoch, wire.Packet{Kind: wire.Ack, ID: out[0].ID}, 8)
	if st := b.Stats(); st.Withheld != 0 || !st.Validated {
		t.Fatalf("after the probe's answer: %+v", st)
	}
	if n := extAnswers(p, b.TakeDatagrams(nil)); n != 1 {
		t.Fatalf("%d EXT answers to the kept fragment, want its RECV", n)
	}
	if used := p.Budget.Used(); used < 2000 {
		t.Fatalf("budget used %d, want the message's 2,000 bytes taken", used)
	}
}

func TestFrag_UnprovedStashIsDroppedUnanswered(t *testing.T) {
	p := extParams(2)
	p.Budget = peer.NewBudget(1 << 20)
	b := peer.NewState(p, remote, epoch, [5]uint32{6}, false)
	pkt, size := frag(p, wire.ID{1}, wire.ID{2})
	p.Budget.Take(peer.Held(pkt))
	b.Receive(epoch, pkt, size)
	b.TakeDatagrams(nil)
	if used := p.Budget.Used(); used != 1000 {
		t.Fatalf("budget used %d after an unproved fragment, want its 1,000 bytes kept", used)
	}
	// Nobody answers the probe: a forged source. What it sent is let go,
	// unanswered, once the deadline the State names comes.
	for p.Budget.Used() > 0 {
		next := b.NextDeadline()
		if next.IsZero() || next.Sub(epoch) > time.Minute {
			t.Fatalf("no deadline drops the kept fragment (next %v), budget used %d", next, p.Budget.Used())
		}
		b.Tick(next)
		if n := extAnswers(p, b.TakeDatagrams(nil)); n != 0 {
			t.Fatalf("%d EXT answers to an unproved source", n)
		}
	}
	if st := b.Stats(); st.Withheld != 1 {
		t.Fatalf("stats %+v, want the fragment withheld", st)
	}
}

func TestFrag_UnprovedStashIsBounded(t *testing.T) {
	p := extParams(2)
	p.Budget = peer.NewBudget(1 << 30)
	b := peer.NewState(p, remote, epoch, [5]uint32{6}, false)
	const sent = 100
	for i := range sent {
		pkt, size := frag(p, wire.ID{byte(i), 1}, wire.ID{byte(i), 2})
		p.Budget.Take(peer.Held(pkt))
		b.Receive(epoch, pkt, size)
	}
	// A forged source holds no more than 64 KiB, whatever it sends.
	st, used := b.Stats(), p.Budget.Used()
	if used > 64<<10 || used < 60<<10 || st.Withheld != sent-uint64(used/1000) {
		t.Fatalf("after %d unproved fragments of 1,000 bytes: budget used %d, %+v", sent, used, st)
	}
}

// However large the window, one batch of datagrams holds about 1 MiB: the
// State stops at it and goes on at once when asked again, so the batch's
// buffer, a second copy of what is in flight, stays small.
func TestExt_BatchIsBounded(t *testing.T) {
	pa, pb := extParams(1), extParams(2)
	pa.Window, pb.RecvWindow, pb.HoldLimit = 1<<14, 1<<14, 1<<14
	pa.MaxMessage, pb.MaxMessage = 64<<20, 64<<20
	d := newDuo(t, pa, pb)
	d.send(d.a, "first") // the negotiation
	d.run()
	const size = 32 << 20
	if err := d.a.Send(d.now, peer.Outgoing{ID: uuid.New(), Data: make([]byte, size)}); err != nil {
		t.Fatal(err)
	}
	var largest, sent int
	for range 10000 {
		var bytes int
		dg := d.a.TakeDatagrams(nil)
		for _, b := range dg {
			bytes += len(b)
			p, _ := pb.Format.Decode(b)
			p.Payload = append([]byte(nil), p.Payload...)
			d.b.Receive(d.now, p, len(b))
		}
		largest, sent = max(largest, bytes), sent+bytes
		for _, b := range d.b.TakeDatagrams(nil) {
			p, _ := pa.Format.Decode(b)
			d.a.Receive(d.now, p, len(b))
		}
		for {
			if _, ok := d.b.Next(); !ok {
				break
			}
			d.b.Delivered(d.now)
		}
		d.now = d.now.Add(time.Millisecond)
		d.a.Tick(d.now)
		d.b.Tick(d.now)
		if len(dg) == 0 && !d.a.Busy() {
			break
		}
	}
	if o := d.a.TakeOutcomes(nil); len(o) != 2 || o[1].Receipt.Err != nil {
		t.Fatalf("outcomes %+v, want the 32 MiB message delivered", o)
	}
	t.Logf("largest batch %d bytes, %d sent", largest, sent)
	if largest > 1<<20+pa.DatagramSize || largest < 1<<19 {
		t.Fatalf("largest batch %d bytes, want the window to grow to 1 MiB and the batch to stop there", largest)
	}
}

// The RECVs in one EXT datagram are one report, whatever their order (a
// peer answers the fragment that completes a message only when it
// delivers it, after answering later ones): none of the messages they
// answer is taken for lost, however many later ones come ahead of it.
func TestExt_AnswersInOneDatagramAreOneReport(t *testing.T) {
	pa, pb := extParams(1), extParams(2)
	d := newDuo(t, pa, pb)
	d.send(d.a, "first") // the negotiation
	d.run()
	const n = 10
	for i := range n {
		d.send(d.a, fmt.Sprintf("message %d", i))
	}
	var ids []wire.ID
	for _, dg := range d.a.TakeDatagrams(nil) {
		p, err := pa.Format.Decode(dg)
		if err != nil || p.Kind != wire.Ext {
			t.Fatalf("a wrote %x (%v), want EXT datagrams", dg, err)
		}
		_, recs, err := wire.ParseExt(p.Payload)
		if err != nil {
			t.Fatal(err)
		}
		for r, ok := recs.Next(); ok; r, ok = recs.Next() {
			ids = append(ids, r.ID)
		}
	}
	if len(ids) != n {
		t.Fatalf("%d DATA records, want %d", len(ids), n)
	}
	slices.Reverse(ids)
	dg := pb.Format.AppendExt(nil, wire.ExtHeader{Version: wire.ExtVersion, Incarnation: 2})
	dg = wire.AppendIDs(dg, wire.RecRecv, ids)
	p, _ := pa.Format.Decode(dg)
	d.now = d.now.Add(time.Millisecond)
	d.a.Receive(d.now, p, len(dg))
	if st := d.a.Stats(); st.Lost != 0 || st.Spurious != 0 || st.Confirmed != n+1 {
		t.Fatalf("after one datagram answering all %d in reverse: %+v", n, st)
	}
}

// A lost probe goes again after the retransmission timeout of now, not
// of when it went: the first probe often goes before any RTT sample, and
// the samples from small messages sent beside it should not leave a
// parked message waiting InitialRTO for the probe's re-send.
func TestFrag_LostProbeGoesAgainByTheRTTLearnedMeanwhile(t *testing.T) {
	p := extParams(1)
	p.InitialRTO = 250 * time.Millisecond
	a := peer.NewState(p, remote, epoch, [5]uint32{1}, true)
	for i := range 3 {
		if err := a.Send(epoch, peer.Outgoing{ID: uuid.New(), Data: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Send(epoch, peer.Outgoing{ID: uuid.New(), Data: make([]byte, 5000)}); err != nil {
		t.Fatal(err)
	}
	var data []wire.ID
	var probe wire.ID
	for _, q := range decode(t, a.TakeDatagrams(nil)) {
		switch q.Kind {
		case wire.Data:
			data = append(data, q.ID)
		case wire.Recv:
			probe = q.ID
		}
	}
	if len(data) != 3 || probe == (wire.ID{}) {
		t.Fatalf("first datagrams: %d DATA and probe %v, want 3 and a probe", len(data), probe)
	}
	// The probe is lost; the small messages are answered 2 ms later.
	now := epoch.Add(2 * time.Millisecond)
	for _, id := range data {
		a.Receive(now, wire.Packet{Kind: wire.Recv, ID: id}, 5)
	}
	a.TakeDatagrams(nil) // the ACKs
	next := a.NextDeadline()
	if next.IsZero() || next.Sub(epoch) > 50*time.Millisecond {
		t.Fatalf("next deadline %v after the first probe, with an RTT of 2 ms: want the probe again within 50 ms", next.Sub(epoch))
	}
	a.Tick(next)
	var again bool
	for _, q := range decode(t, a.TakeDatagrams(nil)) {
		again = again || q.Kind == wire.Recv && q.ID == probe
	}
	if !again {
		t.Fatalf("no probe re-sent at %v", next.Sub(epoch))
	}
}

// To a peer that speaks the extension, a message that fits in one DATA
// record of a datagram goes as one; a byte more and it goes in fragments.
// MaxMessage bounds both, to the byte.
func TestExt_DataRecordOrFragments(t *testing.T) {
	pa := extParams(1)
	pa.MaxMessage = 5000
	d := newDuo(t, pa, extParams(2))
	d.send(d.a, "negotiate")
	d.run()
	largest := wire.MaxDataPayload(pa.DatagramSize - pa.Format.ExtOverhead())
	for _, tt := range []struct {
		n    int
		want wire.RecordType
	}{{largest, wire.RecData}, {largest + 1, wire.RecFrag}, {5000, wire.RecFrag}} {
		d.send(d.a, strings.Repeat("m", tt.n))
		dg := d.a.TakeDatagrams(nil)
		if len(dg) == 0 {
			t.Fatalf("%d bytes: nothing sent", tt.n)
		}
		pkt, err := pa.Format.Decode(dg[0])
		if err != nil || pkt.Kind != wire.Ext {
			t.Fatalf("%d bytes: %v %v, want an EXT datagram", tt.n, pkt.Kind, err)
		}
		_, recs, err := wire.ParseExt(pkt.Payload)
		if err != nil {
			t.Fatal(err)
		}
		r, ok := recs.Next()
		if !ok || r.Type != tt.want {
			t.Fatalf("%d bytes: first record %v, want %v", tt.n, r.Type, tt.want)
		}
		if len(dg[0]) > pa.DatagramSize {
			t.Fatalf("%d bytes: a datagram of %d, more than %d", tt.n, len(dg[0]), pa.DatagramSize)
		}
	}
	if err := d.a.Send(d.now, peer.Outgoing{ID: uuid.New(), Data: make([]byte, 5001)}); !errors.Is(err, wire.ErrTooLarge) || !strings.Contains(err.Error(), "MaxMessage") {
		t.Fatalf("Send of MaxMessage+1 bytes: %v, want ErrTooLarge naming MaxMessage", err)
	}
}

// A message in fragments fills the room a datagram has left, when at
// least minFill (128) bytes are left: its first fragment is cut to fit.
func TestFrag_FillsTheOpenDatagram(t *testing.T) {
	pa := extParams(1)
	room := pa.DatagramSize - pa.Format.ExtOverhead()
	for _, tt := range []struct {
		left  int // room left after the first message's DATA record
		first int // length of the first datagram
	}{
		{128, pa.DatagramSize},                    // filled to the byte
		{127, pa.DatagramSize - 127},              // too little to cut for
		{room - wire.DataLen(1), pa.DatagramSize}, // after a tiny message
	} {
		d := newDuo(t, pa, extParams(2))
		d.send(d.a, "negotiate")
		d.run()
		// A DATA record of p bytes takes 1 + 2 + 4 + p bytes here.
		p := room - tt.left - 7
		if tt.left == room-wire.DataLen(1) {
			p = 1
		}
		if wire.DataLen(p) != room-tt.left {
			t.Fatalf("a %d-byte record leaves %d, want %d", wire.DataLen(p), room-wire.DataLen(p), tt.left)
		}
		d.send(d.a, strings.Repeat("s", p))
		d.send(d.a, strings.Repeat("f", 3000))
		dg := d.a.TakeDatagrams(nil)
		if len(dg) < 2 || len(dg[0]) != tt.first {
			t.Fatalf("%d bytes left: first datagram of %d bytes (of %d), want %d", tt.left, len(dg[0]), len(dg), tt.first)
		}
	}
}

// Loss by packets counts datagrams, not records: a datagram of many
// messages overtaken by the next one on the way is reordering, not the
// loss of every message in it; three datagrams answered after it are.
func TestExt_PacketThresholdCountsDatagrams(t *testing.T) {
	pa, pb := extParams(1), extParams(2)
	pa.DatagramSize = 200 // a few records to a datagram
	d := newDuo(t, pa, pb)
	d.send(d.a, "negotiate")
	d.run()
	for i := range 40 {
		d.send(d.a, fmt.Sprintf("message %02d", i))
	}
	var datagrams [][]wire.ID
	for _, dg := range d.a.TakeDatagrams(nil) {
		p, err := pa.Format.Decode(dg)
		if err != nil || p.Kind != wire.Ext {
			t.Fatalf("a wrote %x (%v), want EXT datagrams", dg, err)
		}
		_, recs, _ := wire.ParseExt(p.Payload)
		var ids []wire.ID
		for r, ok := recs.Next(); ok; r, ok = recs.Next() {
			if r.Type == wire.RecData {
				ids = append(ids, r.ID)
			}
		}
		datagrams = append(datagrams, ids)
	}
	if len(datagrams) < 4 || len(datagrams[0]) < packetThresholdForTest {
		t.Fatalf("%d datagrams, the first of %d records: want at least 4, with 3 or more records", len(datagrams), len(datagrams[0]))
	}
	answer := func(ids []wire.ID) {
		dg := pb.Format.AppendExt(nil, wire.ExtHeader{Version: wire.ExtVersion, Incarnation: 2})
		dg = wire.AppendIDs(dg, wire.RecRecv, ids)
		p, _ := pa.Format.Decode(dg)
		d.a.Receive(d.now, p, len(dg))
	}
	answer(datagrams[1])
	answer(datagrams[2])
	if lost := d.a.Stats().Lost; lost != 0 {
		t.Fatalf("two datagrams answered after the first: %d lost, want none", lost)
	}
	answer(datagrams[3])
	if lost, want := d.a.Stats().Lost, uint64(len(datagrams[0])); lost != want {
		t.Fatalf("three datagrams answered after the first: %d lost, want its %d", lost, want)
	}
}

// packetThresholdForTest is packetThreshold (RFC 9002's 3).
const packetThresholdForTest = 3

// A peer that answers our DATA plainly three times in a row, while we
// know nothing of it, is taken for one without the extension (fewer could
// be a gtudp peer whose amplification limit left no room for its
// trailer): from then on our answers to it go without our trailer.
func TestExt_ThreePlainAnswersMakeThePeerPlain(t *testing.T) {
	for answered := range 5 {
		d := newDuo(t, extParams(1), testParams())
		for i := range answered {
			d.send(d.a, fmt.Sprint(i))
			d.run() // the plain peer's RECV answers it
		}
		d.send(d.b, "from the plain peer")
		d.hop("b", d.b, d.fb, d.a, d.fa)
		if _, ok := d.a.Next(); !ok {
			t.Fatal("a did not get b's message")
		}
		d.a.Delivered(d.now)
		recv := decode(t, d.a.TakeDatagrams(nil))
		if len(recv) != 1 || recv[0].Kind != wire.Recv {
			t.Fatalf("after %d plain answers: a wrote %v, want its RECV", answered, recv)
		}
		if trailer := len(recv[0].Payload) == wire.TrailerLen; trailer != (answered < 3) {
			t.Fatalf("after %d plain answers: RECV with our trailer %v, want %v", answered, trailer, answered < 3)
		}
	}
}

// PacketsOut and BytesOut count every datagram written, to the byte,
// whatever its form: plain, plain with our trailer, or EXT.
func TestExt_StatsCountEveryDatagram(t *testing.T) {
	for _, tt := range []struct {
		name string
		pb   *peer.Params
	}{{"gtudp peer", extParams(2)}, {"plain peer", testParams()}} {
		d := newDuo(t, extParams(1), tt.pb)
		for i := range 20 {
			d.send(d.a, fmt.Sprint("a to b ", i))
			d.send(d.b, fmt.Sprint("b to a ", i))
			for {
				d.run()
				n := 0 // a's application takes b's messages too
				for _, ok := d.a.Next(); ok; _, ok = d.a.Next() {
					d.a.Delivered(d.now)
					n++
				}
				if n == 0 {
					break
				}
			}
		}
		for name, s := range map[string]*peer.State{"a": d.a, "b": d.b} {
			var n int
			for k, v := range d.seen {
				if strings.HasPrefix(k, name+":") {
					n += v
				}
			}
			if st := s.Stats(); st.PacketsOut != uint64(n) || st.BytesOut != uint64(d.bytes[name]) {
				t.Errorf("%s: %s counts %d datagrams, %d bytes; wrote %d, %d bytes", tt.name, name, st.PacketsOut, st.BytesOut, n, d.bytes[name])
			}
		}
	}
}

// Our trailer must not crowd out a reply of the application's: to a peer
// that has not proved its address and has sent us little, a plain answer
// goes without it unless the amplification limit keeps half its room to
// spare.
func TestExt_TrailerOnlyWithRoomToSpare(t *testing.T) {
	for _, tt := range []struct {
		payload string // of the DATA the unproved peer sends: 5 + len bytes in
		trailer bool   // on our RECV: 5 + 12 bytes, if 2 × 17 ≤ 3 × in
	}{
		{"x", false},      // 6 in: 18 allowed, 9 to spare
		{"123456", false}, // 11 in: 33 allowed, 16.5 to spare
		{"1234567", true}, // 12 in: 36 allowed, 18 to spare
	} {
		h := newHarness(t, extParams(2), false)
		h.recv(wire.Data, wire.ID{1}, tt.payload)
		h.deliverAll()
		recv := h.onePacket(wire.Recv)
		if trailer := len(recv.Payload) == wire.TrailerLen; trailer != tt.trailer {
			t.Errorf("RECV for %d bytes in carries our trailer: %v, want %v", 5+len(tt.payload), trailer, tt.trailer)
		}
	}
}

// A peer on a loopback address gets EXT datagrams of LoopbackDatagramSize,
// if set; others, and a loopback peer without it, DatagramSize: a message
// that fills a datagram's one DATA record goes whole, a byte more goes in
// fragments.
func TestExt_LoopbackDatagramSize(t *testing.T) {
	loopback := netip.MustParseAddrPort("127.0.0.1:4323")
	for _, tt := range []struct {
		addr     netip.AddrPort
		loopSize int
		want     int
	}{
		{remote, 3000, 1200},
		{loopback, 3000, 3000},
		{loopback, 0, 1200},
	} {
		pa := extParams(1)
		pa.LoopbackDatagramSize = tt.loopSize
		largest := wire.MaxDataPayload(tt.want - pa.Format.ExtOverhead())
		for _, n := range []int{largest, largest + 1} {
			d := newDuoAt(t, tt.addr, pa, extParams(2))
			d.send(d.a, "negotiate")
			d.run()
			d.send(d.a, strings.Repeat("m", n))
			dg := d.a.TakeDatagrams(nil)
			if len(dg) == 0 {
				t.Fatalf("%v, LoopbackDatagramSize %d: nothing sent", tt.addr, tt.loopSize)
			}
			pkt, err := pa.Format.Decode(dg[0])
			if err != nil || pkt.Kind != wire.Ext {
				t.Fatalf("%v: %v %v, want an EXT datagram", tt.addr, pkt.Kind, err)
			}
			_, recs, _ := wire.ParseExt(pkt.Payload)
			r, _ := recs.Next()
			if whole := r.Type == wire.RecData; whole != (n == largest) || len(dg[0]) > tt.want {
				t.Errorf("%v, LoopbackDatagramSize %d: %d bytes went whole %v, in a datagram of %d; want whole only up to %d, datagrams up to %d",
					tt.addr, tt.loopSize, n, whole, len(dg[0]), largest, tt.want)
			}
		}
	}
}

// TakeDatagramParts leaves the payload of a large fragment that ends a
// datagram in the message's own buffer, as the datagram's Tail; Head and
// Tail together are the datagram, and the message arrives whole.
func TestState_DatagramPartsGatherLargeFragments(t *testing.T) {
	pa, pb := extParams(1), extParams(2)
	pa.DatagramSize, pb.DatagramSize = 65507, 65507
	d := negotiated(t, pa, pb)
	data := make([]byte, 1<<20) // enough for the window to grow to large datagrams
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := d.a.Send(d.now, peer.Outgoing{ID: uuid.New(), Data: data}); err != nil {
		t.Fatal(err)
	}
	sent, tails := 0, 0
	for range 10000 {
		d.now = d.now.Add(time.Millisecond)
		d.a.Tick(d.now)
		parts := d.a.TakeDatagramParts(nil, true)
		var whole [][]byte
		for _, g := range parts {
			if len(g.Tail) > 0 {
				tails++
				if off := int(uintptr(unsafe.Pointer(&g.Tail[0])) - uintptr(unsafe.Pointer(&data[0]))); off < 0 || off+len(g.Tail) > len(data) {
					t.Fatalf("a Tail of %d bytes outside the message's buffer", len(g.Tail))
				}
			}
			whole = append(whole, append(append([]byte(nil), g.Head...), g.Tail...))
		}
		sent += len(whole)
		d.deliver(d.b, d.fb, whole)
		d.take()
		if d.hop("b", d.b, d.fb, d.a, d.fa) == 0 && len(parts) == 0 && len(d.received) > 0 {
			break
		}
	}
	if tails == 0 {
		t.Fatalf("%d datagrams, none with a Tail", sent)
	}
	if len(d.received) != 1 || d.received[0] != string(data) {
		t.Fatalf("b got %d messages, want the one sent, whole", len(d.received))
	}
}
