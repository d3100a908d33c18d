package actortest_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"testing/synctest"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/gtudp/gtudp/actor/actortest"
)

func listen(t *testing.T, n *actortest.Network, addr string) *actortest.Conn {
	t.Helper()
	c, err := n.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func send(t *testing.T, from, to *actortest.Conn, msg string) {
	t.Helper()
	if _, err := from.WriteTo([]byte(msg), to.LocalAddr()); err != nil {
		t.Fatal(err)
	}
}

// pending reports how many datagrams c can read now.
func pending(t *testing.T, c *actortest.Conn) []string {
	t.Helper()
	var got []string
	buf := make([]byte, 100)
	for {
		c.SetReadDeadline(time.Unix(1, 0))
		n, _, err := c.ReadFrom(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.SetReadDeadline(time.Time{})
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(buf[:n]))
	}
}

func TestConn_RoundTrip(t *testing.T) {
	n := actortest.NewNetwork(nil)
	a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
	msg := []byte("hello")
	if _, err := a.WriteTo(msg, b.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	msg[0] = 'J' // the network has its own copy
	buf := make([]byte, 3)
	k, from, err := b.ReadFrom(buf)
	if err != nil || string(buf[:k]) != "hel" || from.String() != "10.0.0.1:1" {
		t.Fatalf("ReadFrom = %q, %v, %v; want the datagram truncated to 3 bytes, from 10.0.0.1:1", buf[:k], from, err)
	}
	if _, ok := from.(*net.UDPAddr); !ok {
		t.Fatalf("source address is a %T, want *net.UDPAddr", from)
	}
}

func TestConn_CloseUnblocksAndFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := actortest.NewNetwork(clock.NewMock())
		a := listen(t, n, "10.0.0.1:1")
		errc := make(chan error)
		go func() {
			_, _, err := a.ReadFrom(make([]byte, 10))
			errc <- err
		}()
		synctest.Wait()
		a.Close()
		if err := <-errc; !errors.Is(err, net.ErrClosed) {
			t.Fatalf("blocked ReadFrom after Close: %v, want net.ErrClosed", err)
		}
		if _, err := a.WriteTo([]byte("x"), a.LocalAddr()); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("WriteTo after Close: %v, want net.ErrClosed", err)
		}
		if err := a.Close(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("second Close: %v, want net.ErrClosed", err)
		}
		// The address is free again.
		listen(t, n, "10.0.0.1:1")
	})
}

func TestConn_PastDeadlineUnblocksReader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := actortest.NewNetwork(clock.NewMock())
		a := listen(t, n, "10.0.0.1:1")
		errc := make(chan error)
		go func() {
			_, _, err := a.ReadFrom(make([]byte, 10))
			errc <- err
		}()
		synctest.Wait()
		a.SetReadDeadline(time.Unix(1, 0))
		err := <-errc
		var ne net.Error
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("ReadFrom past its deadline: %v, want a timeout", err)
		}
	})
}

func TestNetwork_DelayRunsOnTheClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mock := clock.NewMock()
		n := actortest.NewNetwork(mock)
		a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
		n.SetLink(a.AddrPort(), b.AddrPort(), actortest.Link{Delay: 10 * time.Millisecond})
		send(t, a, b, "late")
		if got := pending(t, b); len(got) != 0 {
			t.Fatalf("delivered %v before the delay", got)
		}
		mock.Add(10 * time.Millisecond)
		if got := pending(t, b); len(got) != 1 {
			t.Fatalf("after the delay: %v, want the datagram", got)
		}
	})
}

func TestNetwork_LossDuplicateReorder(t *testing.T) {
	n := actortest.NewNetwork(nil)
	a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
	n.SetLink(a.AddrPort(), b.AddrPort(), actortest.Link{Loss: 1})
	send(t, a, b, "x")
	if got := pending(t, b); len(got) != 0 {
		t.Fatalf("Loss 1 delivered %v", got)
	}
	n.SetLink(a.AddrPort(), b.AddrPort(), actortest.Link{Loss: 0.5})
	for i := range 1000 {
		send(t, a, b, fmt.Sprint(i))
	}
	if got := len(pending(t, b)); got < 400 || got > 600 {
		t.Fatalf("Loss 0.5 delivered %d of 1000", got)
	}
	n.SetLink(a.AddrPort(), b.AddrPort(), actortest.Link{Duplicate: 1})
	send(t, a, b, "twice")
	if got := pending(t, b); len(got) != 2 {
		t.Fatalf("Duplicate 1 delivered %v, want two copies", got)
	}
	if st := n.Stats(); st.Dropped == 0 || st.Duplicated == 0 {
		t.Fatalf("stats %+v do not count the loss and the copy", st)
	}
}

func TestNetwork_Reorder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mock := clock.NewMock()
		n := actortest.NewNetwork(mock)
		a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
		n.SetLink(a.AddrPort(), b.AddrPort(), actortest.Link{Reorder: 1})
		send(t, a, b, "first")
		n.SetLink(a.AddrPort(), b.AddrPort(), actortest.Link{})
		send(t, a, b, "second")
		mock.Add(time.Millisecond)
		if got := pending(t, b); fmt.Sprint(got) != "[second first]" {
			t.Fatalf("got %v, want the held-back datagram overtaken", got)
		}
	})
}

func TestNetwork_PartitionAndFate(t *testing.T) {
	n := actortest.NewNetwork(nil)
	a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
	n.Partition(a.AddrPort(), b.AddrPort())
	send(t, a, b, "x")
	send(t, b, a, "y")
	if len(pending(t, a))+len(pending(t, b)) != 0 {
		t.Fatal("a partition let a datagram through")
	}
	n.Heal(a.AddrPort(), b.AddrPort())
	send(t, a, b, "z")
	if got := pending(t, b); len(got) != 1 {
		t.Fatalf("after Heal: %v", got)
	}
	n.SetFate(func(from, to netip.AddrPort, b []byte) actortest.Fate {
		return actortest.Fate{Drop: string(b) == "drop", Copies: 2}
	})
	send(t, a, b, "drop")
	send(t, a, b, "keep")
	if got := pending(t, b); fmt.Sprint(got) != "[keep keep keep]" {
		t.Fatalf("with a Fate: %v, want keep three times", got)
	}
}

func TestNetwork_QueueFullDrops(t *testing.T) {
	n := actortest.NewNetwork(nil)
	n.SetQueueLen(2)
	a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
	for range 3 {
		send(t, a, b, "x")
	}
	if got := len(pending(t, b)); got != 2 {
		t.Fatalf("%d datagrams queued, want 2", got)
	}
	if st := n.Stats(); st.QueueFull != 1 {
		t.Fatalf("QueueFull %d, want 1", st.QueueFull)
	}
}

func TestNetwork_ListenAddresses(t *testing.T) {
	n := actortest.NewNetwork(nil)
	a, b := listen(t, n, "10.0.0.1:0"), listen(t, n, "10.0.0.1:0")
	if a.AddrPort() == b.AddrPort() {
		t.Fatalf("port 0 gave the same address twice: %v", a.AddrPort())
	}
	if _, err := n.Listen(a.AddrPort().String()); err == nil {
		t.Fatal("Listen on an address in use succeeded")
	}
	if _, err := n.Listen("nonsense"); err == nil {
		t.Fatal("Listen on a bad address succeeded")
	}
	// A wildcard socket gets datagrams to any address on its port, and
	// IPv4-mapped destinations reach IPv4 sockets.
	w := listen(t, n, "[::]:7")
	c := listen(t, n, "127.0.0.1:9")
	a.WriteTo([]byte("any"), &net.UDPAddr{IP: net.ParseIP("127.0.0.1"), Port: 7})
	a.WriteTo([]byte("mapped"), net.UDPAddrFromAddrPort(netip.MustParseAddrPort("[::ffff:127.0.0.1]:9")))
	if got := pending(t, w); len(got) != 1 {
		t.Fatalf("wildcard socket got %v", got)
	}
	if got := pending(t, c); len(got) != 1 {
		t.Fatalf("IPv4 socket got %v from a mapped destination", got)
	}
}

// Two sockets on the in-memory network, one lossy direction.
func ExampleNetwork() {
	network := actortest.NewNetwork(nil) // the real clock; tests pass clock.NewMock()
	a, _ := network.Listen("10.0.0.1:1000")
	b, _ := network.Listen("10.0.0.2:2000")
	defer a.Close()
	defer b.Close()
	network.SetLink(a.AddrPort(), b.AddrPort(), actortest.Link{Duplicate: 1})

	a.WriteTo([]byte("hi"), b.LocalAddr())
	buf := make([]byte, 16)
	for range 2 {
		n, from, _ := b.ReadFrom(buf)
		fmt.Printf("%s from %v\n", buf[:n], from)
	}
	// Output:
	// hi from 10.0.0.1:1000
	// hi from 10.0.0.1:1000
}
