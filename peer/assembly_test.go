package peer_test

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gtudp/gtudp/peer"
	"github.com/gtudp/gtudp/wire"
)

// truth is byte off of message msg: every fragment the fuzzer makes
// carries the true bytes, so a message delivered must be them all.
func truth(msg wire.ID, off int) byte { return byte(int(msg[3])*31 + off*7) }

// FuzzAssembly feeds a State arbitrary sequences of fragments: any
// messages, totals (the same message claimed with two totals), offsets,
// lengths, repeats and orders, with the application taking deliveries
// now and then and time passing. The State never panics, delivers a
// message only whole and true, never twice, and gives every byte of the
// budget back in the end.
func FuzzAssembly(f *testing.F) {
	f.Add([]byte{0, 10, 0, 4, 1, 10, 4, 6})
	f.Add([]byte{0, 30, 0, 10, 0, 30, 20, 10, 0, 30, 10, 10, 0, 30, 10, 10})
	f.Add([]byte{2, 5, 0, 5, 3, 200, 0, 255, 255, 0, 0, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		p := extParams(1)
		p.MaxMessage = 1000
		p.Budget = peer.NewBudget(4000)
		p.Lifetime = time.Second
		s := peer.NewState(p, remote, epoch, [5]uint32{1, 2, 3, 4, 5}, true)
		now := epoch
		// A message is its id and its total: the same id with another
		// total is another message.
		delivered := map[[2]any]int{}
		take := func() {
			for {
				d, ok := s.Next()
				if !ok {
					return
				}
				if len(d.Data) < 1 {
					t.Fatalf("delivered an empty fragmented message")
				}
				s.Delivered(now)
				// Which message: the one whose true bytes these are.
				found := false
				for m := range 4 {
					msg := wire.ID{0, 0, 0, byte(m)}
					ok := true
					for i, b := range d.Data {
						if b != truth(msg, i) {
							ok = false
							break
						}
					}
					if ok {
						found = true
						k := [2]any{msg, len(d.Data)}
						if delivered[k]++; delivered[k] > 1 {
							t.Fatalf("message %v of %d bytes delivered twice", msg, len(d.Data))
						}
					}
				}
				if !found {
					t.Fatalf("delivered %d bytes that are no message's", len(d.Data))
				}
			}
		}
		id := uint32(0)
		for len(ops) >= 4 {
			op, a, b, c := ops[0], int(ops[1]), int(ops[2]), int(ops[3])
			ops = ops[4:]
			switch op % 8 {
			case 6:
				take()
				continue
			case 7:
				// Time passes, within the dedupe horizon (a message is
				// remembered that long; after it, the same id is a new
				// message).
				if next := now.Add(time.Duration(a) * 10 * time.Millisecond); next.Sub(epoch) < p.DedupeHorizon {
					now = next
				}
				s.Tick(now)
				continue
			}
			msg := wire.ID{0, 0, 0, op % 4}
			total := 1 + a*5                   // up to 1,276: some above MaxMessage
			off, n := b*5%total, 1+c%(total+1) // some past the end: not decodable, not sent
			if off+n > total {
				continue
			}
			payload := make([]byte, n)
			for i := range payload {
				payload[i] = truth(msg, off+i)
			}
			id++
			var fid wire.ID
			binary.BigEndian.PutUint32(fid[:], id)
			dg := p.Format.AppendExt(nil, wire.ExtHeader{Version: wire.ExtVersion, Incarnation: 9})
			dg = wire.AppendFrag(dg, fid, msg, uint64(total), uint64(off), payload)
			pkt, err := p.Format.Decode(dg)
			if err != nil {
				t.Fatalf("a fragment of our own does not decode: %v", err)
			}
			// The reader takes the bytes from the budget before the State.
			if !p.Budget.Take(n) {
				continue
			}
			pkt.Payload = append([]byte(nil), pkt.Payload...)
			s.Receive(now, pkt, len(dg))
			s.TakeDatagrams(nil)
		}
		take()
		s.Drain(now)
		s.Salvage(nil, func(uuid.UUID, int) error { return nil })
		if used := p.Budget.Used(); used != 0 {
			t.Fatalf("%d bytes of the budget not given back", used)
		}
	})
}

// fragOf returns an EXT datagram from incarnation 1 with one FRAG record
// of total-byte message msg, payload n bytes at off, as exchange id.
func fragOf(p *peer.Params, id uint32, msg byte, total, off, n int) (wire.Packet, int) {
	var fid wire.ID
	binary.BigEndian.PutUint32(fid[:], id)
	dg := p.Format.AppendExt(nil, wire.ExtHeader{Version: wire.ExtVersion, Incarnation: 1})
	dg = wire.AppendFrag(dg, fid, wire.ID{msg}, uint64(total), uint64(off), make([]byte, n))
	pkt, err := p.Format.Decode(dg)
	if err != nil {
		panic(err)
	}
	return pkt, len(dg)
}

// The limits on messages in fragments, each at its boundary: MaxMessage,
// RecvWindow messages being received, maxSpans runs of bytes in one, and
// a Lifetime without a new byte.
func TestFrag_Limits(t *testing.T) {
	// check feeds frags to a validated State, each in its own datagram,
	// and checks which it withheld and which it answered at once.
	type f struct {
		msg                byte
		total, off, n      int
		withheld, answered bool
	}
	check := func(name string, p *peer.Params, frags []f) *peer.State {
		t.Helper()
		s := peer.NewState(p, remote, epoch, [5]uint32{1}, true)
		for i, fr := range frags {
			w := s.Stats().Withheld
			pkt, size := fragOf(p, uint32(i+1), fr.msg, fr.total, fr.off, fr.n)
			s.Receive(epoch, pkt, size)
			if got := s.Stats().Withheld - w; got != count(fr.withheld) {
				t.Fatalf("%s: fragment %d (%+v): withheld %v, want %v", name, i, fr, got, fr.withheld)
			}
			if got := extAnswers(p, s.TakeDatagrams(nil)) > 0; got != fr.answered {
				t.Fatalf("%s: fragment %d (%+v): answered %v, want %v", name, i, fr, got, fr.answered)
			}
		}
		return s
	}

	p := extParams(2)
	p.MaxMessage = 5000
	s := check("MaxMessage", p, []f{
		{msg: 1, total: 5001, n: 10, withheld: true},
		{msg: 2, total: 5000, n: 10, answered: true},
	})
	// A repeat is a duplicate, answered again.
	pkt, size := fragOf(p, 2, 2, 5000, 0, 10)
	s.Receive(epoch, pkt, size)
	if st := s.Stats(); st.Duplicates != 1 || st.Withheld != 1 || extAnswers(p, s.TakeDatagrams(nil)) != 1 {
		t.Fatalf("a repeated fragment: %d duplicates, %d withheld; want 1 1 and an answer", st.Duplicates, st.Withheld)
	}

	p = extParams(2)
	p.RecvWindow = 2
	check("RecvWindow", p, []f{
		{msg: 1, total: 100, n: 10, answered: true},
		{msg: 2, total: 100, n: 10, answered: true},
		{msg: 3, total: 100, n: 10, withheld: true},
		{msg: 1, total: 100, off: 10, n: 90}, // completes 1: held for delivery, answered then
		{msg: 3, total: 100, n: 10, answered: true},
	})

	// A fragment that would complete a message is withheld while the
	// deliveries held are at HoldLimit.
	p = extParams(2)
	p.HoldLimit = 1
	check("HoldLimit", p, []f{
		{msg: 1, total: 10, n: 10}, // complete: held for delivery, answered then
		{msg: 2, total: 10, n: 5, answered: true},
		{msg: 2, total: 10, off: 5, n: 5, withheld: true},
	})

	// maxSpans separate runs: one more is withheld, one that joins a run
	// is not.
	p = extParams(2)
	var frags []f
	for i := range 4096 {
		frags = append(frags, f{msg: 1, total: 10000, off: 2 * i, n: 1, answered: true})
	}
	frags = append(frags,
		f{msg: 1, total: 10000, off: 9000, n: 1, withheld: true},
		f{msg: 1, total: 10000, off: 1, n: 1, answered: true}, // joins the first two runs
		f{msg: 1, total: 10000, off: 9000, n: 1, answered: true},
	)
	check("maxSpans", p, frags)

	// A message that gets no new byte for a Lifetime is dropped, to the
	// nanosecond; a new byte puts that off.
	p = extParams(2)
	p.Lifetime = time.Second
	s = check("Lifetime", p, []f{{msg: 1, total: 100, n: 10, answered: true}})
	s.Tick(epoch.Add(500 * time.Millisecond))
	pkt, size = fragOf(p, 99, 1, 100, 10, 10)
	s.Receive(epoch.Add(500*time.Millisecond), pkt, size)
	if d := s.NextDeadline(); !d.Equal(epoch.Add(1500 * time.Millisecond)) {
		t.Fatalf("next deadline %v, want the message dropped at 1.5s", d.Sub(epoch))
	}
	s.Tick(epoch.Add(1500*time.Millisecond - 1))
	if st := s.Stats(); st.Unfinished != 0 {
		t.Fatal("dropped before its Lifetime without a new byte")
	}
	s.Tick(epoch.Add(1500 * time.Millisecond))
	if st := s.Stats(); st.Unfinished != 1 || !s.Idle() {
		t.Fatalf("at its Lifetime: unfinished %d, idle %v; want 1, true", st.Unfinished, s.Idle())
	}
}

// count is 1 for true, 0 for false: what a counter should have grown by.
func count(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// An unproved peer's fragments are kept up to 64 KiB exactly, for 2 s
// exactly from the first.
func TestFrag_StashLimits(t *testing.T) {
	p := extParams(2)
	p.Budget = peer.NewBudget(1 << 30)
	s := peer.NewState(p, remote, epoch, [5]uint32{1}, false)
	for i, tt := range []struct {
		n        int
		withheld bool
	}{{32 << 10, false}, {32 << 10, false}, {1, true}} {
		pkt, size := fragOf(p, uint32(i+1), 1, 1<<17, i*(32<<10), tt.n)
		p.Budget.Take(peer.Held(pkt))
		w := s.Stats().Withheld
		s.Receive(epoch.Add(time.Duration(i)*500*time.Millisecond), pkt, size)
		if got := s.Stats().Withheld - w; got != count(tt.withheld) {
			t.Fatalf("fragment %d of %d bytes: withheld %v, want %v", i, tt.n, got, tt.withheld)
		}
	}
	if used := p.Budget.Used(); used != 64<<10 {
		t.Fatalf("budget used %d, want 64 KiB kept", used)
	}
	s.Tick(epoch.Add(2*time.Second - 1))
	if used := p.Budget.Used(); used != 64<<10 {
		t.Fatalf("budget used %d before 2 s, want 64 KiB kept", used)
	}
	s.Tick(epoch.Add(2 * time.Second))
	if used := p.Budget.Used(); used != 0 {
		t.Fatalf("budget used %d at 2 s, want the stash dropped", used)
	}
}
