package peer

import (
	"testing"

	"github.com/gtudp/gtudp/wire"
)

// The debug line of an EXT datagram counts messages and ids by record type.
func TestDescribeExt(t *testing.T) {
	f := wire.DefaultFormat()
	f.Ext = f.DeriveExt()
	body := func(recs ...func([]byte) []byte) []byte {
		b := f.AppendExt(nil, wire.ExtHeader{Version: wire.ExtVersion})
		for _, r := range recs {
			b = r(b)
		}
		p, err := f.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		return p.Payload
	}
	data := func(b []byte) []byte { return wire.AppendData(b, wire.ID{1}, []byte("x")) }
	frag := func(b []byte) []byte { return wire.AppendFrag(b, wire.ID{2}, wire.ID{3}, 10, 0, []byte("y")) }
	recv2 := func(b []byte) []byte { return wire.AppendIDs(b, wire.RecRecv, []wire.ID{{4}, {5}}) }
	recv1 := func(b []byte) []byte { return wire.AppendIDs(b, wire.RecRecv, []wire.ID{{6}}) }
	ack3 := func(b []byte) []byte { return wire.AppendIDs(b, wire.RecAck, []wire.ID{{7}, {8}, {9}}) }
	for _, tt := range []struct {
		body []byte
		want string
	}{
		{body(), ""},
		{body(data), "DATA×1"},
		{body(ack3), "ACK×3"},
		{body(data, recv2, data, frag, recv1), "DATA×2 FRAG×1 RECV×3"},
		{body(ack3, data, recv1), "DATA×1 RECV×1 ACK×3"},
		{body(data)[:wire.ExtHeaderLen+2], "malformed"},
	} {
		if got := describeExt(tt.body); got != tt.want {
			t.Errorf("describeExt(%x) = %q, want %q", tt.body, got, tt.want)
		}
	}
}
