package actor_test

// Attacks from forged source addresses, judged from the outside: by what
// the victim's address actually receives on the network.

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/gtudp/gtudp"
	"github.com/gtudp/gtudp/actor/actortest"
	"github.com/gtudp/gtudp/wire"
)

// victimCounter reads everything that reaches conn and counts its bytes.
type victimCounter struct {
	mu    sync.Mutex
	bytes int
	n     int
}

func countInto(conn *actortest.Conn, c *victimCounter) {
	buf := make([]byte, 65536)
	for {
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			return
		}
		c.mu.Lock()
		c.bytes += n
		c.n++
		c.mu.Unlock()
	}
}

// An attacker forges a DATA from a victim's address with an id of its
// choosing, then the ACK for it, then more DATA: an ACK only echoes the
// remote's own id, so it must not count as proof that the address receives
// what we send. Whatever the application does (a plain receiver, whose
// RECVs are re-sent until ACKed, or an echo that replies twice as large),
// the victim receives at most 3x the bytes "it" sent.
func TestAttack_ForgedAckDoesNotValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		echo bool
		cfg  gtudp.Config
	}{
		{"plain/default", false, gtudp.Config{}},
		{"plain/fast", false, gtudp.Config{InitialRTO: 5 * time.Millisecond, MinRTO: time.Millisecond, MaxRTO: 50 * time.Millisecond}},
		{"echo/default", true, gtudp.Config{}},
		{"echo/fast", true, gtudp.Config{InitialRTO: 5 * time.Millisecond, MinRTO: time.Millisecond, MaxRTO: 50 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mock := clock.NewMock()
				network := actortest.NewNetwork(mock)
				sc, _ := network.Listen("10.0.0.1:4323")
				cfg := tc.cfg
				cfg.Clock = mock
				ep, err := gtudp.New(sc, &cfg)
				if err != nil {
					t.Fatal(err)
				}
				go func() {
					for m := range ep.Inbox() {
						if tc.echo {
							ep.Outbox() <- gtudp.Message{Addr: m.Addr, Data: append(m.Data, m.Data...)}
						}
					}
				}()
				go func() {
					for range ep.Receipts() {
					}
				}()
				victim, _ := network.Listen("10.9.9.9:99")
				var got victimCounter
				go countInto(victim, &got)
				sent := 0
				forge := func(b []byte) {
					sent += len(b)
					victim.WriteTo(b, sc.LocalAddr())
				}
				for i := range 40 {
					id := wire.ID{byte(i), 7, 7, 7}
					payload := "" // a plain receiver: the smallest DATA, as many RECVs as it gets
					if tc.echo {
						payload = fmt.Sprintf("forged %02d", i)
					}
					forge(dataPacket(id, payload))
					synctest.Wait()
					mock.Add(time.Millisecond)
					synctest.Wait()
					if i == 0 {
						forge(format.Append(nil, wire.Packet{Kind: wire.Ack, ID: id}))
					}
					for range 10 {
						synctest.Wait()
						mock.Add(100 * time.Millisecond)
					}
				}
				for range 600 { // a minute: every re-send and give-up
					synctest.Wait()
					mock.Add(100 * time.Millisecond)
				}
				synctest.Wait()
				got.mu.Lock()
				recv := got.bytes
				got.mu.Unlock()
				t.Logf("victim received %d bytes for %d forged (%.2fx)", recv, sent, float64(recv)/float64(sent))
				if recv > 3*sent {
					t.Fatalf("victim received %d bytes, above 3x the %d forged from its address", recv, sent)
				}
				victim.Close()
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				ep.Close(ctx)
			})
		})
	}
}

// Once ACK(id) is written, DATA(id) never is: the original forgets an id
// when its ACK arrives, so a DATA after it is delivered a second time. A
// peer that answers RECV just as our re-send falls due (its RECV delayed
// by exactly our timeout) is where a queued re-send could follow the ACK.
func TestEndpoint_NoDataAfterItsAck(t *testing.T) {
	for _, delay := range []time.Duration{249 * time.Millisecond, 250 * time.Millisecond, 251 * time.Millisecond} {
		t.Run(delay.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mock := clock.NewMock()
				network := actortest.NewNetwork(mock)
				ec, _ := network.Listen("10.0.0.1:4323")
				raw, _ := network.Listen("10.0.0.2:4323") // an original-style receiver
				var mu sync.Mutex
				acked := map[wire.ID]bool{}
				var after []wire.ID
				network.SetFate(func(from, to netip.AddrPort, b []byte) actortest.Fate {
					p, err := format.Decode(b)
					if err != nil {
						return actortest.Fate{}
					}
					mu.Lock()
					defer mu.Unlock()
					switch {
					case from == ec.AddrPort() && p.Kind == wire.Ack:
						acked[p.ID] = true
					case from == ec.AddrPort() && p.Kind == wire.Data && acked[p.ID]:
						after = append(after, p.ID)
					case from == raw.AddrPort():
						return actortest.Fate{Delay: delay} // the RECV, late
					}
					return actortest.Fate{}
				})
				ep, err := gtudp.New(ec, &gtudp.Config{Clock: mock})
				if err != nil {
					t.Fatal(err)
				}
				go func() { // answer every DATA with its RECV, as the original does
					buf := make([]byte, 2048)
					for {
						n, from, err := raw.ReadFrom(buf)
						if err != nil {
							return
						}
						if p, err := format.Decode(buf[:n]); err == nil && p.Kind == wire.Data {
							raw.WriteTo(format.Append(nil, wire.Packet{Kind: wire.Recv, ID: p.ID}), from)
						}
					}
				}()
				var wg sync.WaitGroup
				for i := range 64 {
					wg.Go(func() {
						if err := ep.Send(context.Background(), raw.AddrPort(), []byte(fmt.Sprint(i))); err != nil {
							t.Errorf("Send: %v", err)
						}
					})
				}
				for range 100 {
					synctest.Wait()
					mock.Add(10 * time.Millisecond)
				}
				wg.Wait()
				mu.Lock()
				defer mu.Unlock()
				if len(after) > 0 || len(acked) != 64 {
					t.Fatalf("%d DATA written after their own ACK (%d ids ACKed)", len(after), len(acked))
				}
				raw.Close()
				ep.Close(context.Background())
			})
		})
	}
}

// With the Inbox stalled, forged sources sending 60 KB DATA could make the
// endpoint hold HoldLimit payloads per peer (~66 MB each, ~63 GiB over the
// product of the per-peer caps). One endpoint-wide budget bounds what it
// holds: past it DATA is dropped unanswered and counted, and the heap
// stays under the budget plus a stated overhead: the Inbox's own buffer
// (InboxSize delivered payloads nobody has read) and 4 MiB of bookkeeping.
func TestAttack_HeldBytesBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const budget = 8 << 20
		const payload = 60_000
		const inboxSize = 16
		mock := clock.NewMock()
		network := actortest.NewNetwork(mock)
		sc, _ := network.Listen("10.0.0.1:4323")
		ep, err := gtudp.New(sc, &gtudp.Config{Clock: mock, HoldBytes: budget, InboxSize: inboxSize})
		if err != nil {
			t.Fatal(err)
		}
		before := heapInUse()
		var peak uint64
		big := make([]byte, payload)
		for src := range 8 {
			c, _ := network.Listen(fmt.Sprintf("10.66.0.%d:666", src+1))
			defer c.Close()
			for i := range 200 { // 12 MB from each source, 96 MB in all
				big[0], big[1] = byte(i), byte(i>>8)
				c.WriteTo(dataPacket(wire.ID{byte(src), byte(i), byte(i >> 8), 1}, string(big)), sc.LocalAddr())
				if i%20 == 0 {
					synctest.Wait()
					peak = max(peak, heapInUse())
				}
			}
		}
		synctest.Wait()
		peak = max(peak, heapInUse())
		st := ep.Stats()
		overhead := uint64(inboxSize*payload + 4<<20)
		t.Logf("heap %d MB before, %d MB at peak (budget %d MB + overhead %d MB); held %d B, %d DATA over budget",
			before>>20, peak>>20, budget>>20, overhead>>20, st.HeldBytes, st.OverBudget)
		if st.HeldBytes > budget || st.OverBudget == 0 {
			t.Fatalf("held %d bytes (budget %d), %d over budget", st.HeldBytes, budget, st.OverBudget)
		}
		if peak > before+budget+overhead {
			t.Fatalf("heap grew by %d bytes, above the budget %d plus %d", peak-before, budget, overhead)
		}
		// Read the Inbox: everything held is handed over, the budget is
		// given back in full.
		go func() {
			for range ep.Inbox() {
			}
		}()
		synctest.Wait()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		ep.Close(ctx)
		if st := ep.Stats(); st.HeldBytes != 0 {
			t.Fatalf("%d bytes still held after the Inbox was read and the endpoint closed", st.HeldBytes)
		}
	})
}
