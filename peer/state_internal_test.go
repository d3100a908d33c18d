package peer

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/gtudp/gtudp/wire"
)

// after saturates at never instead of wrapping.
func TestAfter(t *testing.T) {
	for _, tt := range []struct {
		t    int64
		d    time.Duration
		want int64
	}{
		{0, time.Second, int64(time.Second)},
		{5, -3, 2},
		{never - 10, 10, never},
		{never - 10, 11, never},
		{never - 10, math.MaxInt64, never},
		{1, math.MaxInt64, never},
		{never - 11, 10, never - 1},
	} {
		if got := after(tt.t, tt.d); got != tt.want {
			t.Errorf("after(%d, %d) = %d, want %d", tt.t, tt.d, got, tt.want)
		}
	}
}

// Until the peer proves its address, it is sent at most 3× what it sent;
// spare leaves half of that unused.
func TestAmplification(t *testing.T) {
	a := amplification{}
	a.received(100)
	if !a.spare(150) || a.spare(151) {
		t.Fatalf("100 in, nothing out: spare(150) %v spare(151) %v, want true false", a.spare(150), a.spare(151))
	}
	if !a.allow(299) || !a.allow(1) {
		t.Fatal("allow up to 300 of 3×100 refused")
	}
	if a.allow(1) || a.out != 300 {
		t.Fatalf("allow past 3×100: out %d", a.out)
	}
	if a.spare(0) {
		t.Fatal("spare with the limit reached")
	}
	a.received(10)
	if !a.allow(30) || a.out != 330 {
		t.Fatalf("after 10 more in: out %d, want 330", a.out)
	}
	v := amplification{validated: true}
	if !v.allow(1<<30) || !v.spare(1<<30) || v.out != 1<<30 {
		t.Fatalf("a validated peer is limited: out %d", v.out)
	}
}

// output packs records into EXT datagrams of its size: a record goes in
// the open datagram while it fits to the byte, else it opens the next;
// records answered by the time the batch is taken are left out, and a
// datagram of nothing but such records is not sent.
func TestOutput_Packing(t *testing.T) {
	p := &Params{Format: wire.DefaultFormat()}
	p.Format.Ext = p.Format.DeriveExt()
	over := p.Format.ExtOverhead() // 11
	o := newOutput(p, over+40)     // room for 40 bytes of records
	if o.room() != 40 {
		t.Fatalf("room %d, want 40", o.room())
	}
	flying3 := &outbound{id: wire.ID{1}, msg: Outgoing{Data: []byte("abc")}, where: flying, seq: 7}
	dead20 := &outbound{id: wire.ID{2}, msg: Outgoing{Data: make([]byte, 20)}, where: done, seq: 8}

	o.extIDs(wire.Recv, wire.ID{9}) // 6 bytes
	if got := o.left(); got != 0 {
		t.Fatalf("left %d with no DATA in the open datagram, want 0", got)
	}
	o.extData(sentRef{o: flying3, seq: 7}) // 9 bytes: 15
	if got := o.left(); got != 25 {
		t.Fatalf("left %d, want 25", got)
	}
	o.extIDs(wire.Recv, wire.ID{10}) // 4 more: 19
	o.extIDs(wire.Ack, wire.ID{11})  // 6: 25
	o.extData(sentRef{o: dead20, seq: 8})
	if n := len(o.ext.groups); n != 2 || o.ext.groups[0].used != 25 || o.ext.groups[1].used != 26 {
		t.Fatalf("groups %+v, want 25 and 26 bytes", o.ext.groups)
	}
	if got := o.left(); got != 14 {
		t.Fatalf("left %d in the second datagram, want 14", got)
	}
	if o.ext.bytes != 2*over+25+26 {
		t.Fatalf("bytes %d, want %d", o.ext.bytes, 2*over+25+26)
	}
	n, bytes := o.assemble(false)
	if n != 1 || bytes != uint64(over+25) {
		t.Fatalf("assemble: %d datagrams of %d bytes, want 1 of %d (the second only dead)", n, bytes, over+25)
	}
	if o.ext.bytes != 0 || len(o.ext.groups) != 0 {
		t.Fatalf("after assemble: bytes %d groups %d", o.ext.bytes, len(o.ext.groups))
	}
	dgrams := o.takeDatagrams(nil)
	if len(dgrams) != 1 {
		t.Fatalf("%d datagrams, want 1", len(dgrams))
	}
	pkt, err := p.Format.Decode(dgrams[0])
	if err != nil {
		t.Fatal(err)
	}
	_, recs, err := wire.ParseExt(pkt.Payload)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for r, ok := recs.Next(); ok; r, ok = recs.Next() {
		got = append(got, fmt.Sprintf("%v %d %x", r.Type, r.NumIDs(), r.Payload))
	}
	if want := []string{"ACK 1 ", "RECV 2 ", "DATA 0 616263"}; !slices.Equal(got, want) {
		t.Fatalf("records %q, want %q", got, want)
	}
	if k, _, ok := o.what(0); !ok || k != wire.Ext {
		t.Fatalf("what(0) = %v %v, want Ext", k, ok)
	}
	for _, i := range []int{-1, 1} {
		if _, _, ok := o.what(i); ok {
			t.Fatalf("what(%d) found a datagram of a batch of 1", i)
		}
	}
}

// A second RECV id adds 4 bytes to its record, until the record's length
// takes a second byte; full is reached at maxBatch bytes exactly.
func TestOutput_IDsGrowAndFull(t *testing.T) {
	p := &Params{Format: wire.DefaultFormat()}
	p.Format.Ext = p.Format.DeriveExt()
	o := newOutput(p, 1<<16)
	for i := range 32 {
		o.extIDs(wire.Recv, wire.ID{byte(i)})
		if got, want := o.ext.groups[0].used, wire.IDsLen(i+1); got != want {
			t.Fatalf("%d ids: %d bytes, want %d", i+1, got, want)
		}
	}
	o.ext.bytes = maxBatch - 1 - len(o.buf)
	if o.full() {
		t.Fatal("full a byte short of maxBatch")
	}
	o.ext.bytes++
	if !o.full() {
		t.Fatal("not full at maxBatch")
	}
}
