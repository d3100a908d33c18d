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
