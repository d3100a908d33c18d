//go:build linux && (amd64 || arm64 || ppc64 || ppc64le || mips64 || mips64le || riscv64 || s390x || loong64)

package actor_test

import (
	"net"
	"testing"
	"time"

	"github.com/gtudp/gtudp/actor"
)

// After a read that brought a large datagram (a fragment of a large
// message), a batched read asks for a few datagrams at a time, so that
// what it reads is copied out while still in the cache; after small ones
// the batch grows back to its full size.
func TestBatchConn_LargeDatagramsReadFewAtATime(t *testing.T) {
	a, b := listenUDP(t, "udp4", "127.0.0.1:0"), listenUDP(t, "udp4", "127.0.0.1:0")
	ba, bb := actor.NewBatchConn(a, 16), actor.NewBatchConn(b, 16)
	to := b.LocalAddr().(*net.UDPAddr).AddrPort()
	send := func(n, size int) {
		t.Helper()
		bufs := make([][]byte, n)
		for i := range bufs {
			bufs[i] = make([]byte, size)
		}
		if k, err := ba.WriteBatch(bufs, to); k != n || err != nil {
			t.Fatalf("WriteBatch of %d: %d, %v", n, k, err)
		}
	}
	// reads reads the n datagrams sent and returns the largest count one
	// Read returned.
	reads := func(n int) (most int) {
		t.Helper()
		for got := 0; got < n; {
			b.SetReadDeadline(time.Now().Add(5 * time.Second))
			k, err := bb.Read()
			if err != nil {
				t.Fatalf("after %d of %d datagrams: %v", got, n, err)
			}
			most = max(most, k)
			got += k
		}
		return most
	}
	send(1, 32<<10)
	reads(1)
	send(16, 32<<10)
	if most := reads(16); most > actor.LargeBatch {
		t.Fatalf("after a large datagram, a read returned %d of 16 large ones waiting, want at most %d", most, actor.LargeBatch)
	}
	// Small datagrams: the batch doubles while reads come back full, to
	// the whole 16 within 1+2+4+8+16 datagrams.
	send(32, 100)
	if most := reads(32); most != 16 {
		t.Fatalf("with 32 small datagrams waiting, the most one read returned is %d, want 16", most)
	}
}
