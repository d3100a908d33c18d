package peer_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gtudp/gtudp/peer"
	"github.com/gtudp/gtudp/wire"
)

// wireHop decodes the datagrams from's state wrote into to, as the socket
// path does; DATA payloads are copied, as the socket reader copies them.
func wireHop(f wire.Format, dgrams [][]byte, from, to *peer.State, now time.Time) [][]byte {
	dgrams = from.TakeDatagrams(dgrams[:0])
	for _, b := range dgrams {
		q, err := f.Decode(b)
		if err != nil {
			panic(err)
		}
		if q.Kind == wire.Data {
			q.Payload = append([]byte(nil), q.Payload...)
		} else {
			q.Payload = nil
		}
		to.Receive(now, q, len(b))
	}
	return dgrams
}

// benchParams are the gtudp defaults, with overrides.
func benchParams(mod func(*peer.Params)) *peer.Params {
	p := &peer.Params{
		Format:     wire.DefaultFormat(),
		InitialRTO: 250 * time.Millisecond, MinRTO: 10 * time.Millisecond, MaxRTO: 2 * time.Second,
		MaxAttempts: 20, Lifetime: 30 * time.Second, RecvAttempts: 8, DedupeHorizon: 40 * time.Second,
		Window: 1024, RecvWindow: 4096, HoldLimit: 1024, DedupeLimit: 16384, MaxMessage: 16 << 20,
	}
	mod(p)
	return p
}

// BenchmarkStateExchange is one full DATA→RECV→ACK cycle between two pure
// state machines, through the codec, with no socket and no goroutine. The
// clock moves 1 ms per exchange and the dedupe horizon is 1 s, so each
// state keeps about a thousand finished ids: the steady state of a busy
// peer, not a map that grows with b.N. The allocations are the receiver's
// copy of the payload (none for an empty one) plus amortised map growth.
func BenchmarkStateExchange(b *testing.B) {
	for _, size := range []int{0, 64, 1200} {
		b.Run(fmt.Sprintf("payload=%d", size), func(b *testing.B) {
			cfg := benchParams(func(p *peer.Params) { p.DedupeHorizon, p.Lifetime = time.Second, 500*time.Millisecond })
			now := epoch
			a := peer.NewState(cfg, remote, now, [5]uint32{1}, true)
			r := peer.NewState(cfg, remote, now, [5]uint32{2}, true)
			f := wire.DefaultFormat()
			data := make([]byte, size)
			var dgrams [][]byte
			var outs []peer.Outcome
			id := uuid.New()
			b.ReportAllocs()
			for b.Loop() {
				now = now.Add(time.Millisecond)
				if err := a.Send(now, peer.Outgoing{ID: id, Data: data}); err != nil {
					b.Fatal(err)
				}
				dgrams = wireHop(f, dgrams, a, r, now) // DATA
				if _, ok := r.Next(); !ok {
					b.Fatal("nothing to deliver")
				}
				r.Delivered(now)
				dgrams = wireHop(f, dgrams, r, a, now) // RECV
				dgrams = wireHop(f, dgrams, a, r, now) // ACK
				if outs = a.TakeOutcomes(outs[:0]); len(outs) != 1 || outs[0].Receipt.Err != nil {
					b.Fatalf("outcomes %+v", outs)
				}
				a.Tick(now)
				r.Tick(now)
			}
		})
	}
}

// BenchmarkPending100k measures a state with 100,000 messages in flight:
// the memory each costs (beyond its payload, which is the caller's), and
// the work of a timer wake-up with nothing due and with one message due.
func BenchmarkPending100k(b *testing.B) {
	const n = 100_000
	cfg := benchParams(func(p *peer.Params) {
		p.Window, p.InitialRTO, p.MaxRTO, p.Lifetime = n, time.Second, time.Minute, time.Hour
	})
	fill := func(spread bool) *peer.State {
		s := peer.NewState(cfg, remote, epoch, [5]uint32{3}, true)
		now := epoch
		var dgrams [][]byte
		for i := range n {
			if spread {
				now = epoch.Add(time.Duration(i) * time.Microsecond)
			}
			if err := s.Send(now, peer.Outgoing{ID: uuid.UUID{byte(i)}, Data: nil}); err != nil {
				b.Fatal(err)
			}
			dgrams = s.TakeDatagrams(dgrams[:0])
		}
		return s
	}
	b.Run("memory", func(b *testing.B) {
		var before, after runtime.MemStats
		var s *peer.State
		for b.Loop() {
			runtime.GC()
			runtime.ReadMemStats(&before)
			s = fill(false)
			runtime.GC()
			runtime.ReadMemStats(&after)
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/pending")
		runtime.KeepAlive(s)
	})
	b.Run("tick-none-due", func(b *testing.B) {
		s := fill(false)
		now := epoch.Add(time.Millisecond)
		b.ReportAllocs()
		for b.Loop() {
			s.Tick(now)
			s.NextDeadline()
		}
	})
	b.Run("tick-one-due", func(b *testing.B) {
		// Messages sent 1 µs apart; each wake-up moves the clock 1 µs past
		// the next one's timeout, so exactly one is re-sent.
		s := fill(true)
		now := epoch.Add(time.Second)
		var dgrams [][]byte
		b.ReportAllocs()
		for b.Loop() {
			s.Tick(now)
			s.NextDeadline()
			dgrams = s.TakeDatagrams(dgrams[:0])
			now = now.Add(time.Microsecond)
		}
	})
}
