package actortest_test

// Edge cases of the in-memory network: several readers, wildcard and
// IPv4-mapped addresses in partitions and links, a nil destination, a Fate
// over a lossy link, a delivery after Close, and concurrent writers.

import (
	"net"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/gtudp/gtudp/actor/actortest"
)

// Two readers blocked on one Conn; two datagrams arrive. Both should return.
func TestConn_TwoBlockedReadersBothWake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := actortest.NewNetwork(clock.NewMock())
		a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
		done := make(chan string, 2)
		for range 2 {
			go func() {
				buf := make([]byte, 10)
				k, _, err := b.ReadFrom(buf)
				if err != nil {
					done <- err.Error()
					return
				}
				done <- string(buf[:k])
			}()
		}
		synctest.Wait()
		send(t, a, b, "x")
		send(t, a, b, "y")
		synctest.Wait()
		if len(done) != 2 {
			t.Errorf("only %d of 2 blocked readers returned with 2 datagrams queued", len(done))
		}
		b.Close()
	})
}

func TestNetwork_PartitionWildcard(t *testing.T) {
	n := actortest.NewNetwork(nil)
	a, w := listen(t, n, "10.0.0.1:1"), listen(t, n, "[::]:7")
	n.Partition(a.AddrPort(), w.AddrPort())
	a.WriteTo([]byte("x"), net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:7")))
	if got := pending(t, w); len(got) != 0 {
		t.Errorf("Partition(a, [::]:7) let %v through to the wildcard socket", got)
	}
}

func TestNetwork_SetLinkMapped(t *testing.T) {
	n := actortest.NewNetwork(nil)
	a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
	n.SetLink(a.AddrPort(), netip.MustParseAddrPort("[::ffff:10.0.0.2]:2"), actortest.Link{Loss: 1})
	send(t, a, b, "x")
	if got := pending(t, b); len(got) != 0 {
		t.Errorf("SetLink to a mapped address ignored: %v delivered", got)
	}
}

func TestConn_WriteToNilAddressFails(t *testing.T) {
	n := actortest.NewNetwork(nil)
	a := listen(t, n, "10.0.0.1:1")
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("WriteTo(nil addr) panicked: %v", r)
		}
	}()
	if _, err := a.WriteTo([]byte("x"), nil); err == nil {
		t.Errorf("WriteTo(nil addr) succeeded")
	}
}

func TestNetwork_FateOverridesLinkAndDelays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mock := clock.NewMock()
		n := actortest.NewNetwork(mock)
		a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
		n.SetLink(a.AddrPort(), b.AddrPort(), actortest.Link{Loss: 1})
		n.SetFate(func(from, to netip.AddrPort, p []byte) actortest.Fate {
			return actortest.Fate{Delay: 5 * time.Millisecond}
		})
		send(t, a, b, "x")
		if got := pending(t, b); len(got) != 0 {
			t.Fatalf("early %v", got)
		}
		synctest.Wait()
		mock.Add(5 * time.Millisecond)
		synctest.Wait()
		if got := pending(t, b); len(got) != 1 {
			t.Fatalf("Fate did not override Loss 1 / delay: %v", got)
		}
	})
}

func TestNetwork_DeliveryAfterCloseIsNoListener(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mock := clock.NewMock()
		n := actortest.NewNetwork(mock)
		a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
		n.SetDefaultLink(actortest.Link{Delay: time.Millisecond})
		send(t, a, b, "x")
		b.Close()
		synctest.Wait()
		mock.Add(time.Millisecond)
		synctest.Wait()
		if st := n.Stats(); st.Delivered != 0 || st.NoListener != 1 {
			t.Errorf("stats %+v", st)
		}
	})
}

func TestNetwork_ConcurrentRace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mock := clock.NewMock()
		n := actortest.NewNetwork(mock)
		n.SetDefaultLink(actortest.Link{Delay: time.Millisecond, Jitter: time.Millisecond, Duplicate: 0.1, Reorder: 0.1, Loss: 0.1})
		srv := listen(t, n, "10.0.0.9:9")
		got := make(chan int)
		go func() {
			buf := make([]byte, 64)
			k := 0
			for {
				if _, _, err := srv.ReadFrom(buf); err != nil {
					got <- k
					return
				}
				k++
			}
		}()
		for range 4 {
			c := listen(t, n, "10.0.0.1:0")
			go func() {
				p := make([]byte, 8)
				for range 100 {
					c.WriteTo(p, srv.LocalAddr())
				}
			}()
		}
		synctest.Wait()
		mock.Add(10 * time.Millisecond)
		synctest.Wait()
		srv.Close()
		k := <-got
		st := n.Stats()
		if uint64(k) != st.Delivered || st.Sent != 400 {
			t.Errorf("read %d, stats %+v", k, st)
		}
	})
}
