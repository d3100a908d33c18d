//go:build !race

package actor_test

import (
	"net"
	"testing"

	"github.com/gtudp/gtudp/actor"
)

// A batch written and read back allocates nothing, as BatchConn promises
// (and the endpoint's socket paths rely on).
func TestBatchConn_NoAllocs(t *testing.T) {
	a, b := listenUDP(t, "udp4", "127.0.0.1:0"), listenUDP(t, "udp4", "127.0.0.1:0")
	ba, bb := actor.NewBatchConn(a, 16), actor.NewBatchConn(b, 16)
	to := b.LocalAddr().(*net.UDPAddr).AddrPort()
	bufs := make([][]byte, 8)
	for i := range bufs {
		bufs[i] = make([]byte, 64)
	}
	n := testing.AllocsPerRun(50, func() {
		if k, err := ba.WriteBatch(bufs, to); k != len(bufs) || err != nil {
			t.Fatalf("WriteBatch = %d, %v", k, err)
		}
		for got := 0; got < len(bufs); {
			k, err := bb.Read()
			if err != nil {
				t.Fatal(err)
			}
			for i := range k {
				if d, src := bb.Datagram(i); len(d) != 64 || !src.IsValid() {
					t.Fatalf("datagram %d: %d bytes from %v", i, len(d), src)
				}
			}
			got += k
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations per batch written and read", n)
	}
}
