package peer_test

import (
	"math"
	"testing"
	"testing/synctest"

	"github.com/gtudp/gtudp/peer"
	"github.com/gtudp/gtudp/wire"
)

// A budget gives out bytes up to its limit exactly, takes them back, and
// has plenty while at most half is used.
func TestBudget_TakeGive(t *testing.T) {
	b := peer.NewBudget(1000)
	if !b.Plenty() {
		t.Fatal("an unused budget has not plenty")
	}
	if !b.Take(500) || !b.Plenty() {
		t.Fatalf("Take(500) of 1000: used %d, plenty %v; want taken and plenty (half used)", b.Used(), b.Plenty())
	}
	if !b.Take(1) || b.Plenty() {
		t.Fatalf("Take(1) more: used %d, plenty %v; want taken and not plenty", b.Used(), b.Plenty())
	}
	if !b.Take(499) || b.Used() != 1000 {
		t.Fatalf("Take(499) to the limit: used %d, want 1000", b.Used())
	}
	if b.Take(1) || b.Used() != 1000 {
		t.Fatalf("Take(1) past the limit succeeded: used %d", b.Used())
	}
	b.Give(600)
	if b.Used() != 400 || !b.Plenty() {
		t.Fatalf("after Give(600): used %d plenty %v, want 400 and plenty", b.Used(), b.Plenty())
	}

	var none *peer.Budget
	if !none.Take(math.MaxInt) || none.Used() != 0 || !none.Plenty() {
		t.Fatal("a nil budget limits")
	}
	none.Give(5) // must not panic
}

// Held counts the message bytes a packet carries: a DATA's payload, the
// DATA and FRAG records of an EXT datagram, nothing else.
func TestHeld(t *testing.T) {
	f := wire.DefaultFormat()
	f.Ext = f.DeriveExt()
	ext := f.AppendExt(nil, wire.ExtHeader{Version: wire.ExtVersion})
	ext = wire.AppendData(ext, wire.ID{1}, make([]byte, 100))
	ext = wire.AppendFrag(ext, wire.ID{2}, wire.ID{3}, 1000, 0, make([]byte, 30))
	ext = wire.AppendIDs(ext, wire.RecRecv, []wire.ID{{4}, {5}})
	pkt, err := f.Decode(ext)
	if err != nil {
		t.Fatal(err)
	}
	bad := pkt
	bad.Payload = append([]byte{}, pkt.Payload...)
	bad.Payload = bad.Payload[:len(bad.Payload)-1] // the RECV record cut short
	for _, tt := range []struct {
		name string
		p    wire.Packet
		want int
	}{
		{"DATA", wire.Packet{Kind: wire.Data, Payload: make([]byte, 77)}, 77},
		{"RECV", wire.Packet{Kind: wire.Recv, Payload: make([]byte, 12)}, 0},
		{"EXT", pkt, 130},
		{"malformed EXT", bad, 0},
	} {
		if got := peer.Held(tt.p); got != tt.want {
			t.Errorf("Held(%s) = %d, want %d", tt.name, got, tt.want)
		}
	}
}

// Buffers lends at most max buffers of its size, takes back its own, and
// lends the one it took back last first (the one still in the caches).
// With all lent, Get waits for one to come back, or for stop.
func TestBuffers_Bounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := peer.NewBuffers(2, 64)
		x, ok1 := b.Get(nil)
		y, ok2 := b.Get(nil)
		if !ok1 || !ok2 || len(*x) != 64 || len(*y) != 64 || x == y {
			t.Fatalf("two Gets of 2: ok %v %v, same %v", ok1, ok2, x == y)
		}
		stop := make(chan struct{})
		got := make(chan *[]byte)
		get := func() {
			p, ok := b.Get(stop)
			if !ok {
				p = nil
			}
			got <- p
		}
		go get()
		synctest.Wait()
		select {
		case p := <-got:
			t.Fatalf("a third Get of 2 returned (buffer %v) with both lent", p != nil)
		default:
		}
		b.Put(x)
		if p := <-got; p != x {
			t.Fatalf("the waiting Get after Put(x): x %v, y %v", p == x, p == y)
		}

		go get()
		synctest.Wait()
		close(stop)
		if p := <-got; p != nil {
			t.Fatal("a Get waiting with all lent returned a buffer when stop closed")
		}

		b.Put(x)
		b.Put(y)
		foreign := make([]byte, 64)
		b.Put(&foreign) // not one of ours: no room for it, let go
		if p, _ := b.Get(stop); p != y {
			t.Fatalf("Get after Put(x), Put(y), Put(foreign): foreign %v, x %v; want y", p == &foreign, p == x)
		}
		if p, _ := b.Get(stop); p != x {
			t.Fatalf("the next Get: foreign %v; want x", p == &foreign)
		}
	})
}
