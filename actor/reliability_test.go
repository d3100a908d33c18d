package actor_test

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/gtudp/gtudp"
	"github.com/gtudp/gtudp/actor/actortest"
	"github.com/gtudp/gtudp/wire"
)

var long = flag.Bool("long", false, "run the long variants of the reliability tests (20,000 messages per loss rate)")

// TestReliability_LossLevels sends messages over real loopback sockets
// through the relay at 0%, 10%, 30% and 50% loss with duplication and
// reordering: every message gets exactly one receipt, nothing is delivered
// twice, and once the relay is healed, every message that failed goes
// through when sent again. 5,000 messages per rate (20,000 in all) in CI;
// -long sends 20,000 per rate.
func TestReliability_LossLevels(t *testing.T) {
	perLevel := 5000
	if *long {
		perLevel = 20000
	}
	for _, loss := range []float64{0, 0.1, 0.3, 0.5} {
		t.Run(fmt.Sprintf("loss=%.0f%%", 100*loss), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			b := listen(t, "udp4", "127.0.0.1:0", nil)
			relay, err := actortest.NewRelay("127.0.0.1:0", b.LocalAddr(), actortest.RelayConfig{
				Loss: loss, Duplicate: 0.05, Reorder: 0.05, Jitter: time.Millisecond,
			}, nil, uint64(100*loss)+1)
			if err != nil {
				t.Fatal(err)
			}
			defer relay.Close()
			a := listen(t, "udp4", "127.0.0.1:0", &gtudp.Config{Lifetime: 10 * time.Second})

			counts := make([]int, perLevel)
			got := make(chan uint32, 1024)
			go func() {
				for m := range b.Inbox() {
					got <- binary.BigEndian.Uint32(m.Data)
				}
				close(got)
			}()
			// send sends the given messages and returns those that
			// failed; every one must have exactly one receipt.
			send := func(seqs []uint32) []uint32 {
				go func() {
					for _, s := range seqs {
						m := gtudp.Message{ID: seqUUID(s), Addr: relay.Addr(), Data: binary.BigEndian.AppendUint32(nil, s)}
						select {
						case a.Outbox() <- m:
						case <-ctx.Done():
							return
						}
					}
				}()
				var failed []uint32
				receipts := make(map[uint32]int, len(seqs))
				for len(receipts) < len(seqs) {
					select {
					case r := <-a.Receipts():
						s := binary.BigEndian.Uint32(r.ID[12:])
						if receipts[s]++; receipts[s] > 1 {
							t.Fatalf("message %d has two receipts", s)
						}
						if r.Err != nil {
							failed = append(failed, s)
						}
					case s := <-got:
						counts[s]++
					case <-ctx.Done():
						t.Fatalf("timed out: %d of %d receipts", len(receipts), len(seqs))
					}
				}
				return failed
			}
			all := make([]uint32, perLevel)
			for i := range all {
				all[i] = uint32(i)
			}
			failed := send(all)
			// A failed message may have arrived (its RECVs were lost):
			// sending it again may deliver it again. Only those may.
			again := make(map[uint32]bool, len(failed))
			for _, s := range failed {
				again[s] = true
			}
			relay.SetConfig(actortest.RelayConfig{})
			if still := send(failed); len(still) > 0 {
				t.Fatalf("%d messages failed again through the healed relay", len(still))
			}
			// Every success receipt means b has the message; drain what
			// the Inbox reader has not forwarded yet.
			b.Close(ctx)
			for s := range got {
				counts[s]++
			}
			for s, c := range counts {
				if c == 0 || (c > 1 && !again[uint32(s)]) || c > 2 {
					t.Fatalf("message %d delivered %d times (failed first: %v)", s, c, again[uint32(s)])
				}
			}
			st, rs := a.Stats(), relay.Stats()
			t.Logf("%d messages, %d failed at first; DATA re-sent %d; relay dropped %d, duplicated %d, reordered %d",
				perLevel, len(failed), st.DataResent, rs.Dropped, rs.Duplicated, rs.Reordered)
		})
	}
}

func seqUUID(s uint32) (id [16]byte) {
	binary.BigEndian.PutUint32(id[12:], s)
	id[6] = 0x40
	return id
}

// TestReliability_FloodFromRealAddresses: 50,000 real sockets, each on its
// own 127.x.y.z address, send one DATA. The endpoint stays within
// MaxPeers, an established peer keeps being served, and memory stays
// bounded. (That the flood's state is reaped afterwards is tested on the
// mock clock: TestEndpoint_FloodOfSources.)
func TestReliability_FloodFromRealAddresses(t *testing.T) {
	const sources = 50000
	srv, err := gtudp.Listen("udp4", "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		// The flood's exchanges would drain for RecvAttempts RTOs (their
		// ACKs never come): cut Close short, failing nothing of ours.
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if err := srv.Close(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close: %v", err)
		}
	}()
	collectInbox(srv)
	friend := listen(t, "udp4", "127.0.0.1:0", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := friend.Send(ctx, srv.LocalAddr(), []byte("hi")); err != nil {
		t.Fatal(err)
	}
	before := memInUse()
	data := wire.DefaultFormat().Append(nil, wire.Packet{Kind: wire.Data, ID: wire.ID{1, 2, 3, 4}, Payload: []byte("flood")})
	to := net.UDPAddrFromAddrPort(srv.LocalAddr())
	var peak uint64
	for i := range sources {
		ip := net.IPv4(127, byte(1+i>>16), byte(i>>8), byte(i))
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ip})
		if err != nil {
			t.Fatalf("binding source %d (%v): %v", i, ip, err)
		}
		c.WriteTo(data, to)
		c.Close()
		if i%10000 == 9999 {
			peak = max(peak, memInUse())
			if st := srv.Stats(); st.Peers > gtudpMaxPeers {
				t.Fatalf("%d peers, above MaxPeers", st.Peers)
			}
			if err := friend.Send(ctx, srv.LocalAddr(), []byte("still there?")); err != nil {
				t.Fatalf("established peer during the flood: %v", err)
			}
		}
	}
	st := srv.Stats()
	if st.PeersEvicted == 0 || st.PeersStarted+st.PeerLimited+st.MailboxFull < sources/2 {
		t.Fatalf("flood not accounted for: %+v", st)
	}
	t.Logf("flood of %d sources: %d peers started, %d evicted, %d refused at MaxPeers, %d dropped at a full mailbox; memory in use before %d KiB, peak %d KiB",
		sources, st.PeersStarted, st.PeersEvicted, st.PeerLimited, st.MailboxFull, before>>10, peak>>10)
	if peak > before+256<<20 {
		t.Fatalf("memory grew by %d MiB during the flood", (peak-before)>>20)
	}
}

const gtudpMaxPeers = 1024

// TestReliability_Soak: 100,000 messages on the in-memory network while
// 100 clients come and go; at the end the goroutines and the heap are back
// where they started.
func TestReliability_Soak(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mock := clock.NewMock()
		network := actortest.NewNetwork(mock)
		network.SetQueueLen(1 << 16)
		sc, _ := network.Listen("10.0.0.1:1")
		srv, _ := gtudp.New(sc, &gtudp.Config{Clock: mock})
		delivered := 0
		go func() {
			for range srv.Inbox() {
				delivered++
			}
		}()
		synctest.Wait()
		startG, startHeap := endpointGoroutines(), memInUse()
		const waves, clients, each = 10, 10, 1000
		for w := range waves {
			eps := make([]*gtudp.Endpoint, clients)
			for i := range eps {
				c, err := network.Listen(fmt.Sprintf("10.1.%d.%d:1", w, i))
				if err != nil {
					t.Fatal(err)
				}
				eps[i], _ = gtudp.New(c, &gtudp.Config{Clock: mock})
				defer c.Close()
			}
			var outcomes sync.WaitGroup
			for _, ep := range eps {
				outcomes.Add(1)
				go func() {
					for j := range each {
						ep.Outbox() <- gtudp.Message{Addr: srv.LocalAddr(), Data: binary.BigEndian.AppendUint32(nil, uint32(j))}
					}
				}()
				go func() {
					defer outcomes.Done()
					for range each {
						if r := <-ep.Receipts(); r.Err != nil {
							t.Errorf("receipt %+v", r)
						}
					}
				}()
			}
			// Every message has its outcome (the clock moves in case a
			// datagram must be re-sent), then the clients close.
			all := make(chan struct{})
			go func() { outcomes.Wait(); close(all) }()
			for done := false; !done; {
				synctest.Wait()
				select {
				case <-all:
					done = true
				default:
					mock.Add(100 * time.Millisecond)
				}
			}
			// Close drains: move the clock while it does, in case a
			// datagram was lost and must be re-sent.
			closed := make(chan struct{})
			go func() {
				for _, ep := range eps {
					ep.Close(context.Background())
				}
				close(closed)
			}()
			for done := false; !done; {
				synctest.Wait()
				select {
				case <-closed:
					done = true
				default:
					mock.Add(100 * time.Millisecond)
				}
			}
			// The clients are gone: their peers on the server age out.
			for range 60 {
				mock.Add(time.Second)
				synctest.Wait()
			}
		}
		if delivered != waves*clients*each {
			t.Fatalf("delivered %d, want %d", delivered, waves*clients*each)
		}
		endG, endHeap := endpointGoroutines(), memInUse()
		t.Logf("endpoint goroutines %d → %d, heap and stacks %d KiB → %d KiB", startG, endG, startHeap>>10, endHeap>>10)
		if st := srv.Stats(); st.Peers != 0 || endG != startG {
			t.Fatalf("after the soak: %d peers, %d goroutines (started with %d)", st.Peers, endG, startG)
		}
		if endHeap > startHeap+8<<20 {
			t.Fatalf("heap grew from %d KiB to %d KiB", startHeap>>10, endHeap>>10)
		}
		srv.Close(context.Background())
	})
}

// endpointGoroutines counts the goroutines of endpoints and their peers in
// the calling synctest bubble (runtime.NumGoroutine would count the
// runtime's and other tests' stragglers too).
func endpointGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		header, _, _ := strings.Cut(g, "\n")
		if !strings.Contains(header, "synctest bubble") {
			continue
		}
		for _, f := range []string{"actor.(*Endpoint).readLoop", "actor.(*Endpoint).outboxLoop", "actor.(*Endpoint).runPeer"} {
			if strings.Contains(g, f) {
				count++
				break
			}
		}
	}
	return count
}
