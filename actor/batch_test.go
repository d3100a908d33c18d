package actor_test

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gtudp/gtudp/actor"
	"github.com/gtudp/gtudp/wire"
)

func listenUDP(t *testing.T, network, addr string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Skipf("no %s loopback here: %v", network, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadBuffer(4 << 20)
	c.SetWriteBuffer(4 << 20)
	return c
}

// readN reads n datagrams from b within a few seconds of real time.
func readN(t *testing.T, c *net.UDPConn, b *actor.BatchConn, n int) (got [][]byte, from []netip.AddrPort) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	for len(got) < n {
		k, err := b.Read()
		if err != nil {
			t.Fatalf("after %d of %d datagrams: %v", len(got), n, err)
		}
		for i := range k {
			d, src := b.Datagram(i)
			got = append(got, bytes.Clone(d))
			from = append(from, src)
		}
	}
	return got, from
}

// Batches in both directions, over IPv4 and IPv6 loopback, with sizes up
// to the largest datagram, more of them than one system call takes: every
// datagram arrives whole, in order, from the right address.
func TestBatchConn_RoundTrip(t *testing.T) {
	for _, tc := range []struct{ network, addr string }{
		{"udp4", "127.0.0.1:0"},
		{"udp6", "[::1]:0"},
	} {
		for _, batch := range []int{1, 16} {
			t.Run(fmt.Sprintf("%s/batch%d", tc.network, batch), func(t *testing.T) {
				a, b := listenUDP(t, tc.network, tc.addr), listenUDP(t, tc.network, tc.addr)
				ba, bb := actor.NewBatchConn(a, batch), actor.NewBatchConn(b, batch)
				sizes := []int{1, 5, 64, 1400, 9000, wire.MaxDatagram}
				var out [][]byte
				for i := range 40 {
					d := make([]byte, sizes[i%len(sizes)])
					for j := range d {
						d[j] = byte(i + j)
					}
					out = append(out, d)
				}
				to := b.LocalAddr().(*net.UDPAddr).AddrPort()
				if n, err := ba.WriteBatch(out, to); n != len(out) || err != nil {
					t.Fatalf("WriteBatch = %d, %v; want %d, nil", n, err, len(out))
				}
				got, from := readN(t, b, bb, len(out))
				want := a.LocalAddr().(*net.UDPAddr).AddrPort()
				for i := range out {
					if !bytes.Equal(got[i], out[i]) {
						t.Fatalf("datagram %d: %d bytes, want %d as sent", i, len(got[i]), len(out[i]))
					}
					if from[i] != want {
						t.Fatalf("datagram %d from %v, want %v", i, from[i], want)
					}
				}
			})
		}
	}
}

// A dual-stack socket writes to and reads from IPv4 peers, which it sees
// unmapped, as the endpoint keys them.
func TestBatchConn_DualStack(t *testing.T) {
	six := listenUDP(t, "udp", "[::]:0")
	four := listenUDP(t, "udp4", "127.0.0.1:0")
	b6, b4 := actor.NewBatchConn(six, 16), actor.NewBatchConn(four, 16)
	port := six.LocalAddr().(*net.UDPAddr).AddrPort().Port()
	if _, err := b4.WriteBatch([][]byte{[]byte("ping")}, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)); err != nil {
		t.Fatal(err)
	}
	got, from := readN(t, six, b6, 1)
	if string(got[0]) != "ping" || from[0] != four.LocalAddr().(*net.UDPAddr).AddrPort() {
		t.Fatalf("got %q from %v, want ping from %v", got[0], from[0], four.LocalAddr())
	}
	if _, err := b6.WriteBatch([][]byte{[]byte("pong")}, from[0]); err != nil {
		t.Fatalf("writing to an IPv4 peer from a dual-stack socket: %v", err)
	}
	if got, _ := readN(t, four, b4, 1); string(got[0]) != "pong" {
		t.Fatalf("got %q, want pong", got[0])
	}
}

// Errors are reported, not hidden: an IPv6 destination from an IPv4
// socket, and a closed socket.
func TestBatchConn_Errors(t *testing.T) {
	c := listenUDP(t, "udp4", "127.0.0.1:0")
	b := actor.NewBatchConn(c, 16)
	if n, err := b.WriteBatch([][]byte{{1}}, netip.MustParseAddrPort("[::1]:9")); n != 0 || err == nil {
		t.Fatalf("IPv6 destination from an IPv4 socket: %d, %v; want an error", n, err)
	}
	c.Close()
	if _, err := b.Read(); err == nil {
		t.Fatal("Read on a closed socket: no error")
	}
	if n, err := b.WriteBatch([][]byte{{1}}, netip.MustParseAddrPort("127.0.0.1:9")); n != 0 || err == nil {
		t.Fatalf("WriteBatch on a closed socket: %d, %v; want an error", n, err)
	}
}

// A datagram longer than any gtUDP packet (IPv6 allows 65,527 bytes) is
// read as longer than wire.MaxDatagram, never cut down to a length that
// could pass for a packet.
func TestBatchConn_OversizedIsNotTruncatedToFit(t *testing.T) {
	a, b := listenUDP(t, "udp6", "[::1]:0"), listenUDP(t, "udp6", "[::1]:0")
	bb := actor.NewBatchConn(b, 16)
	if _, err := a.WriteToUDPAddrPort(make([]byte, 65527), b.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
		t.Skipf("this host does not send 65,527-byte datagrams on ::1: %v", err)
	}
	got, _ := readN(t, b, bb, 1)
	if len(got[0]) <= wire.MaxDatagram {
		t.Fatalf("read %d bytes of a 65,527-byte datagram: it could pass for a packet", len(got[0]))
	}
}

// An empty datagram is a datagram too.
func TestBatchConn_EmptyDatagram(t *testing.T) {
	a, b := listenUDP(t, "udp4", "127.0.0.1:0"), listenUDP(t, "udp4", "127.0.0.1:0")
	ba, bb := actor.NewBatchConn(a, 16), actor.NewBatchConn(b, 16)
	if n, err := ba.WriteBatch([][]byte{{}, []byte("x"), {}}, b.LocalAddr().(*net.UDPAddr).AddrPort()); n != 3 || err != nil {
		t.Fatalf("WriteBatch = %d, %v", n, err)
	}
	got, _ := readN(t, b, bb, 3)
	if len(got[0]) != 0 || string(got[1]) != "x" || len(got[2]) != 0 {
		t.Fatalf("got %q", got)
	}
}
