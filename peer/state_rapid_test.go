package peer_test

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gtudp/gtudp/peer"
	"github.com/gtudp/gtudp/wire"
	"pgregory.net/rapid"
)

// pairModel runs two State machines, a and b, that talk through a model
// network rapid controls packet by packet: it delivers any packet in flight
// (so packets reorder), drops or duplicates it, moves time, sends messages
// both ways and lets each application take its deliveries or not (a full
// Inbox). The model records what a correct pair must guarantee.
type pairModel struct {
	cfg     *peer.Params
	now     time.Time
	ends    [2]*end
	flight  []packet // in flight, either direction
	nextMsg uint64
}

type end struct {
	s *peer.State
	// sent: messages this end sent, by ID, with their payload.
	sent map[uuid.UUID]string
	// receipts: outcomes of this end's messages.
	receipts map[uuid.UUID][]peer.Receipt
	// delivered: payloads this end's application received, with a count.
	delivered map[string]int
}

type packet struct {
	to   int // index of the receiving end
	pkt  wire.Packet
	sent time.Time
}

// maxLinger is the longest a packet stays in the model's network: copies
// arrive in any order, any number of times, but not later than this,
// which is within the least time an exchange ended by ACK is remembered
// (2 s). A copy delayed longer than that could be delivered again.
const maxLinger = 1500 * time.Millisecond

var addrs = [2]netip.AddrPort{
	netip.MustParseAddrPort("10.0.0.1:1000"),
	netip.MustParseAddrPort("10.0.0.2:2000"),
}

func newPairModel(t *rapid.T) *pairModel {
	cfg := &peer.Params{
		Format:        wire.DefaultFormat(),
		InitialRTO:    time.Duration(rapid.IntRange(1, 300).Draw(t, "initialRTOms")) * time.Millisecond,
		MinRTO:        5 * time.Millisecond,
		MaxRTO:        time.Duration(rapid.IntRange(300, 2000).Draw(t, "maxRTOms")) * time.Millisecond,
		MaxAttempts:   rapid.IntRange(1, 10).Draw(t, "maxAttempts"),
		Lifetime:      time.Duration(rapid.IntRange(1, 20).Draw(t, "lifetimeS")) * time.Second,
		RecvAttempts:  rapid.IntRange(1, 6).Draw(t, "recvAttempts"),
		DedupeHorizon: 60 * time.Second, // outlasts the longest sender here
		Window:        rapid.IntRange(1, 8).Draw(t, "window"),
		RecvWindow:    16,
		HoldLimit:     rapid.IntRange(1, 4).Draw(t, "holdLimit"),
		DedupeLimit:   1 << 16,
		MaxMessage:    1 << 20,
	}
	m := &pairModel{cfg: cfg, now: epoch}
	for i := range m.ends {
		var seed [5]uint32
		for j := range seed {
			seed[j] = rapid.Uint32().Draw(t, fmt.Sprintf("seed%d", i))
		}
		m.ends[i] = &end{
			s:         peer.NewState(cfg, addrs[1-i], m.now, seed, i == 0),
			sent:      map[uuid.UUID]string{},
			receipts:  map[uuid.UUID][]peer.Receipt{},
			delivered: map[string]int{},
		}
	}
	return m
}

// collect moves each end's outputs into the network and the records.
func (m *pairModel) collect() {
	for i, e := range m.ends {
		for _, p := range decode(panics{}, e.s.TakeDatagrams(nil)) { // copies: the network outlives the buffer
			m.flight = append(m.flight, packet{to: 1 - i, pkt: p, sent: m.now})
		}
		for _, o := range e.s.TakeOutcomes(nil) {
			e.receipts[o.Receipt.ID] = append(e.receipts[o.Receipt.ID], o.Receipt)
		}
	}
}

func (m *pairModel) Send(t *rapid.T) {
	from := rapid.IntRange(0, 1).Draw(t, "from")
	e := m.ends[from]
	if e.s.Room() == 0 {
		t.Skip("window full")
	}
	m.nextMsg++
	var id uuid.UUID
	binary.BigEndian.PutUint64(id[:], m.nextMsg)
	// Unique payloads make a double delivery visible; some are empty.
	payload := ""
	if rapid.Bool().Draw(t, "nonEmpty") {
		payload = fmt.Sprintf("m%d", m.nextMsg)
	}
	if payload == "" {
		// Empty payloads are all equal: keep at most one in flight per
		// direction so they stay distinguishable by count.
		for _, p := range e.sent {
			if p == "" {
				t.Skip("one empty message per end")
			}
		}
	}
	if err := e.s.Send(m.now, peer.Outgoing{ID: id, Data: []byte(payload)}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	e.sent[id] = payload
	m.collect()
}

func (m *pairModel) pick(t *rapid.T) int {
	if len(m.flight) == 0 {
		t.Skip("nothing in flight")
	}
	return rapid.IntRange(0, len(m.flight)-1).Draw(t, "packet")
}

func (m *pairModel) Deliver(t *rapid.T) {
	i := m.pick(t)
	p := m.flight[i]
	m.flight = append(m.flight[:i], m.flight[i+1:]...)
	m.receive(p)
}

func (m *pairModel) receive(p packet) {
	payload := append([]byte(nil), p.pkt.Payload...) // the receiver owns it
	pkt := p.pkt
	pkt.Payload = payload
	m.ends[p.to].s.Receive(m.now, pkt, m.cfg.Format.HeaderLen()+len(payload))
	m.collect()
}

func (m *pairModel) Drop(t *rapid.T) {
	i := m.pick(t)
	m.flight = append(m.flight[:i], m.flight[i+1:]...)
}

func (m *pairModel) Duplicate(t *rapid.T) {
	i := m.pick(t)
	m.flight = append(m.flight, m.flight[i])
}

// TakeDeliveries: one application reads its Inbox (only then is RECV sent).
func (m *pairModel) TakeDeliveries(t *rapid.T) {
	m.takeAll(m.ends[rapid.IntRange(0, 1).Draw(t, "end")])
	m.collect()
}

func (m *pairModel) takeAll(e *end) {
	for {
		msg, ok := e.s.Next()
		if !ok {
			return
		}
		e.delivered[string(msg.Data)]++
		e.s.Delivered(m.now)
	}
}

func (m *pairModel) Advance(t *rapid.T) {
	d := time.Duration(rapid.Int64Range(1, int64(3*time.Second)).Draw(t, "advance"))
	m.advance(d)
}

// Compact may come at any moment (the actor calls it when a peer goes
// quiet or parks): it must change nothing but memory.
func (m *pairModel) Compact(t *rapid.T) {
	for _, e := range m.ends {
		e.s.Compact()
	}
}

func (m *pairModel) advance(d time.Duration) {
	m.now = m.now.Add(d)
	live := m.flight[:0]
	for _, p := range m.flight {
		if m.now.Sub(p.sent) <= maxLinger {
			live = append(live, p)
		}
	}
	m.flight = live
	for _, e := range m.ends {
		e.s.Tick(m.now)
	}
	m.collect()
}

// Check holds after every step.
func (m *pairModel) Check(t *rapid.T) {
	for i, e := range m.ends {
		other := m.ends[1-i]
		for p, n := range other.delivered {
			if n > 1 {
				t.Fatalf("end %d delivered %q %d times", 1-i, p, n)
			}
		}
		for id, rs := range e.receipts {
			if len(rs) != 1 {
				t.Fatalf("end %d message %v has %d receipts: %+v", i, id, len(rs), rs)
			}
			if _, ok := e.sent[id]; !ok {
				t.Fatalf("end %d receipt for a message it never sent: %v", i, id)
			}
			if rs[0].Err == nil && other.delivered[e.sent[id]] != 1 {
				t.Fatalf("end %d message %v (%q) confirmed but delivered %d times",
					i, id, e.sent[id], other.delivered[e.sent[id]])
			}
		}
		if got := e.s.Stats().InFlight; got > m.cfg.Window {
			t.Fatalf("end %d has %d in flight, window %d", i, got, m.cfg.Window)
		}
	}
}

// heal delivers everything, with no more loss, until nothing is pending.
func (m *pairModel) heal(t *rapid.T) {
	limit := m.now.Add(m.cfg.Lifetime + time.Duration(m.cfg.RecvAttempts+2)*m.cfg.MaxRTO + time.Minute)
	for m.now.Before(limit) {
		for {
			for _, e := range m.ends {
				m.takeAll(e)
			}
			m.collect()
			if len(m.flight) == 0 {
				break
			}
			p := m.flight[0]
			m.flight = m.flight[1:]
			m.receive(p)
		}
		if !m.ends[0].s.Busy() && !m.ends[1].s.Busy() {
			return
		}
		m.advance(m.cfg.MinRTO)
	}
	t.Fatalf("still busy after the network healed: %+v / %+v", m.ends[0].s.Stats(), m.ends[1].s.Stats())
}

func TestState_PairProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := newPairModel(t)
		t.Repeat(map[string]func(*rapid.T){
			"Send":           m.Send,
			"Deliver":        m.Deliver,
			"Drop":           m.Drop,
			"Duplicate":      m.Duplicate,
			"TakeDeliveries": m.TakeDeliveries,
			"Advance":        m.Advance,
			"":               m.Check,
		})
		m.heal(t)
		m.Check(t)
		for i, e := range m.ends {
			for id := range e.sent {
				if len(e.receipts[id]) != 1 {
					t.Fatalf("end %d message %v ended with %d receipts", i, id, len(e.receipts[id]))
				}
			}
			if e.s.Stats().InFlight != 0 || e.s.Stats().Open != 0 {
				t.Fatalf("end %d still has state: %+v", i, e.s.Stats())
			}
		}
	})
}
