package wire_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/gtudp/gtudp/wire"
	"pgregory.net/rapid"
)

// extFormat is the default format with the extension on, under its derived
// identifier b8.
var extFormat = withExt(wire.DefaultFormat(), "b8")

// extMagicFormat is magicFormat with the extension on, under its derived
// identifier 1da4.
var extMagicFormat = withExt(magicFormat, "1da4")

func withExt(f wire.Format, ext string) wire.Format {
	f = f.Clone()
	f.Ext = unhex(ext)
	return f
}

func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func TestFormat_DeriveExt(t *testing.T) {
	tests := []struct {
		name   string
		format wire.Format
		want   string
	}{
		// 1d ^ a5.
		{"default", wire.DefaultFormat(), "b8"},
		// 1d01 with 01 ^ a5 in its last byte.
		{"magic and 2-byte types", magicFormat, "1da4"},
		// b8 is taken by RECV: 1d ^ 5a.
		{"first collides", wire.Format{Data: unhex("1d"), Recv: unhex("b8"), Ack: unhex("ae")}, "47"},
		// b8 and 47 are taken, in either order: 1d ^ 3c.
		{"first two collide", wire.Format{Data: unhex("1d"), Recv: unhex("b8"), Ack: unhex("47")}, "21"},
		{"first two collide, swapped", wire.Format{Data: unhex("1d"), Recv: unhex("47"), Ack: unhex("b8")}, "21"},
		// Only the last byte changes; 01 ^ a5 = a4, 01 ^ 5a = 5b, 01 ^ 3c = 3d.
		{"2-byte, first two collide", wire.Format{Data: unhex("1d01"), Recv: unhex("1da4"), Ack: unhex("1d5b")}, "1d3d"},
		{"empty DATA", wire.Format{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := bytes.Clone(tt.format.Data)
			got := tt.format.DeriveExt()
			if h := hex.EncodeToString(got); h != tt.want {
				t.Errorf("%v.DeriveExt() = %s, want %s", tt.format, h, tt.want)
			}
			if !bytes.Equal(tt.format.Data, data) {
				t.Errorf("DeriveExt changed Data from %x to %x", data, tt.format.Data)
			}
			if tt.want == "" {
				if got != nil {
					t.Errorf("DeriveExt() = %#v, want nil", got)
				}
				return
			}
			f := tt.format
			f.Ext = got
			if err := f.Validate(); err != nil {
				t.Errorf("with the derived Ext, Validate() = %v", err)
			}
		})
	}
}

func TestFormat_ValidateExt(t *testing.T) {
	hugeMagic := func(n int, ext []byte) wire.Format {
		f := wire.DefaultFormat()
		f.Magic, f.Ext = make([]byte, n), ext
		return f
	}
	tests := []struct {
		name   string
		format wire.Format
		want   string // substring of the error; "" for valid
	}{
		{"default with ext", extFormat, ""},
		{"magic with ext", extMagicFormat, ""},
		{"empty ext", withExt(wire.DefaultFormat(), ""), "EXT type identifier is empty"},
		{"ext too long", withExt(wire.DefaultFormat(), "b8b8"), "EXT type identifier is 2 bytes but DATA is 1"},
		{"ext is DATA", withExt(wire.DefaultFormat(), "1d"), "DATA and EXT type identifiers are both 1d"},
		{"ext is RECV", withExt(wire.DefaultFormat(), "5f"), "RECV and EXT type identifiers are both 5f"},
		{"ext is ACK", withExt(wire.DefaultFormat(), "ae"), "ACK and EXT type identifiers are both ae"},
		// Magic, type and ID fill a datagram exactly: an empty DATA fits.
		{"header fills the datagram", hugeMagic(wire.MaxDatagram-5, nil), ""},
		// Without the extension, no EXT header has to fit.
		{"no ext, header fits", hugeMagic(wire.MaxDatagram-11, nil), ""},
		{"ext header fills the datagram", hugeMagic(wire.MaxDatagram-11, unhex("b8")), ""},
		{"ext header too long", hugeMagic(wire.MaxDatagram-10, unhex("b8")), "EXT header does not fit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.format.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, wire.ErrInvalidFormat)):
				t.Errorf("Validate() = %v, want an ErrInvalidFormat saying %q", err, tt.want)
			}
		})
	}
}

func TestFormat_ExtStringCloneOverhead(t *testing.T) {
	if got, want := extMagicFormat.String(), "magic=677455445021 types=1d01,5f01,ae01 ext=1da4"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got, want := wire.DefaultFormat().String(), "magic= types=1d,5f,ae"; got != want {
		t.Errorf("String() without Ext = %q, want %q", got, want)
	}
	f := extFormat.Clone()
	f.Ext[0] = 0
	if extFormat.Ext[0] != 0xb8 {
		t.Error("Clone shares Ext with the original")
	}
	if wire.DefaultFormat().Clone().Ext != nil {
		t.Error("Clone of a Format without Ext has an Ext")
	}
	if got := extFormat.ExtOverhead(); got != 11 {
		t.Errorf("extFormat.ExtOverhead() = %d, want 1+10", got)
	}
	if got := extMagicFormat.ExtOverhead(); got != 18 {
		t.Errorf("extMagicFormat.ExtOverhead() = %d, want 6+2+10", got)
	}
}

func TestKind_StringExt(t *testing.T) {
	if got := wire.Ext.String(); got != "EXT" {
		t.Errorf("Ext.String() = %q, want EXT", got)
	}
	for k, want := range map[wire.RecordType]string{
		wire.RecData: "DATA", wire.RecFrag: "FRAG", wire.RecRecv: "RECV", wire.RecAck: "ACK",
		0: "RecordType(0)", 5: "RecordType(5)",
	} {
		if got := k.String(); got != want {
			t.Errorf("RecordType(%d).String() = %q, want %q", uint8(k), got, want)
		}
	}
}

func TestAppendTrailer_Golden(t *testing.T) {
	tr := wire.Trailer{Version: 1, Flags: 0, Incarnation: 0x0102030405060708}
	const want = "6774" + "01" + "00" + "0102030405060708"
	got := wire.AppendTrailer([]byte("x"), tr)
	if h := hex.EncodeToString(got); h != "78"+want {
		t.Fatalf("AppendTrailer(x, %+v) = %s, want 78%s", tr, h, want)
	}
	if len(got)-1 != wire.TrailerLen {
		t.Errorf("trailer is %d bytes, TrailerLen %d", len(got)-1, wire.TrailerLen)
	}

	// On a RECV: the original reads the id and ignores the rest; Decode
	// keeps the rest as the Payload, with or without the extension on.
	pkt := unhex("5f 75790714" + want)
	for _, f := range []wire.Format{wire.DefaultFormat(), extFormat} {
		p, err := f.Decode(pkt)
		if err != nil || p.Kind != wire.Recv || p.ID != (wire.ID{0x75, 0x79, 0x07, 0x14}) {
			t.Fatalf("Decode(%x) = %v, %v, want a RECV of 75790714", pkt, p, err)
		}
		if got, ok := wire.ParseTrailer(p.Payload); !ok || got != tr {
			t.Errorf("ParseTrailer(%x) = %+v, %v, want %+v", p.Payload, got, ok, tr)
		}
	}
	// Every truncated trailer is refused.
	for n := range wire.TrailerLen {
		if got, ok := wire.ParseTrailer(unhex(want)[:n]); ok {
			t.Errorf("ParseTrailer(%s) = %+v, true, want false", want[:2*n], got)
		}
	}
}

func TestParseTrailer(t *testing.T) {
	tests := []struct {
		hex  string
		want wire.Trailer
		ok   bool
	}{
		{"6774 01 00 0000000000000000", wire.Trailer{Version: 1}, true},
		// Later versions add bytes; flags are returned as they came.
		{"6774 02 ff 8000000000000001 aabb", wire.Trailer{Version: 2, Flags: 0xff, Incarnation: 1<<63 | 1}, true},
		{"6774 ff 00 0000000000000000", wire.Trailer{Version: 255}, true},
		{"6774 00 00 0000000000000000", wire.Trailer{}, false},
		{"6874 01 00 0000000000000000", wire.Trailer{}, false},
		{"6775 01 00 0000000000000000", wire.Trailer{}, false},
		{"", wire.Trailer{}, false},
	}
	for _, tt := range tests {
		b := unhex(tt.hex)
		if got, ok := wire.ParseTrailer(b); ok != tt.ok || got != tt.want {
			t.Errorf("ParseTrailer(%x) = %+v, %v, want %+v, %v", b, got, ok, tt.want, tt.ok)
		}
	}
}

// extRec is one record of a golden EXT datagram: its bytes, and what Next
// returns for it (nothing, for a skipped record).
type extRec struct {
	hex     string
	skipped bool
	want    wire.Record
}

// extGolden holds EXT datagrams as the extension spec lays them out.
var extGolden = []struct {
	name    string
	format  wire.Format
	header  string // MAGIC ‖ EXT ‖ version ‖ flags ‖ incarnation
	h       wire.ExtHeader
	records []extRec
}{
	{
		name: "no records", format: extFormat,
		header: "b8 01 00 1122334455667788", h: wire.ExtHeader{Version: 1, Incarnation: 0x1122334455667788},
	},
	{
		// type 1, length 9, id, "Hello".
		name: "one DATA", format: extFormat,
		header: "b8 01 00 1122334455667788", h: wire.ExtHeader{Version: 1, Incarnation: 0x1122334455667788},
		records: []extRec{
			{hex: "01 09 75790714 48656c6c6f", want: wire.Record{Type: wire.RecData, ID: wire.ID{0x75, 0x79, 0x07, 0x14}, Payload: []byte("Hello")}},
		},
	},
	{
		name: "DATA FRAG RECV ACK", format: extFormat,
		header: "b8 01 00 0000000000000002", h: wire.ExtHeader{Version: 1, Incarnation: 2},
		records: []extRec{
			{hex: "01 06 01020304 6869", want: wire.Record{Type: wire.RecData, ID: wire.ID{1, 2, 3, 4}, Payload: []byte("hi")}},
			// Length 15: two ids, total 300 (ac 02), offset 200 (c8 01), "xyz".
			{hex: "02 0f 0a0b0c0d 11111111 ac02 c801 78797a", want: wire.Record{
				Type: wire.RecFrag, ID: wire.ID{10, 11, 12, 13}, Msg: wire.ID{0x11, 0x11, 0x11, 0x11},
				Total: 300, Offset: 200, Payload: []byte("xyz")}},
			{hex: "03 0c 00000001 00000002 00000003", want: wire.Record{Type: wire.RecRecv, IDs: unhex("00000001 00000002 00000003")}},
			{hex: "04 04 deadbeef", want: wire.Record{Type: wire.RecAck, IDs: unhex("deadbeef")}},
		},
	},
	{
		// Types 0x7f and 0 are unknown to version 1: skipped, whatever
		// their body.
		name: "unknown records skipped", format: extFormat,
		header: "b8 01 00 0000000000000003", h: wire.ExtHeader{Version: 1, Incarnation: 3},
		records: []extRec{
			{hex: "01 06 01020304 6869", want: wire.Record{Type: wire.RecData, ID: wire.ID{1, 2, 3, 4}, Payload: []byte("hi")}},
			{hex: "7f 03 aabbcc", skipped: true},
			{hex: "00 00", skipped: true},
			{hex: "04 04 deadbeef", want: wire.Record{Type: wire.RecAck, IDs: unhex("deadbeef")}},
		},
	},
	{
		// 6-byte magic "gtUDP!", 2-byte types, Ext derived as 1da4.
		name: "magic and 2-byte types", format: extMagicFormat,
		header: "677455445021 1da4 01 00 0000000000000001", h: wire.ExtHeader{Version: 1, Incarnation: 1},
		records: []extRec{
			// The shortest FRAG: total 1, offset 0, "!".
			{hex: "02 0b 01020304 05060708 01 00 21", want: wire.Record{
				Type: wire.RecFrag, ID: wire.ID{1, 2, 3, 4}, Msg: wire.ID{5, 6, 7, 8}, Total: 1, Offset: 0, Payload: []byte("!")}},
			{hex: "03 08 01020304 0a0b0c0d", want: wire.Record{Type: wire.RecRecv, IDs: unhex("01020304 0a0b0c0d")}},
			// A DATA with an empty payload is still a message.
			{hex: "01 04 cafebabe", want: wire.Record{Type: wire.RecData, ID: wire.ID{0xca, 0xfe, 0xba, 0xbe}, Payload: []byte{}}},
		},
	},
}

func extGoldenBytes(header string, recs []extRec) []byte {
	s := header
	for _, r := range recs {
		s += r.hex
	}
	return unhex(s)
}

func recordEqual(a, b wire.Record) bool {
	return a.Type == b.Type && a.ID == b.ID && a.Msg == b.Msg && a.Total == b.Total && a.Offset == b.Offset &&
		bytes.Equal(a.Payload, b.Payload) && bytes.Equal(a.IDs, b.IDs)
}

// collect returns every record Next gives.
func collect(rs wire.Records) []wire.Record {
	var out []wire.Record
	for r, ok := rs.Next(); ok; r, ok = rs.Next() {
		out = append(out, r)
	}
	return out
}

// wantRecords returns what Next gives for recs.
func wantRecords(recs []extRec) []wire.Record {
	var out []wire.Record
	for _, r := range recs {
		if !r.skipped {
			out = append(out, r.want)
		}
	}
	return out
}

func recordsEqual(a, b []wire.Record) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !recordEqual(a[i], b[i]) {
			return false
		}
	}
	return true
}

// appendRecord encodes r with the append function of its type.
func appendRecord(dst []byte, r wire.Record) []byte {
	switch r.Type {
	case wire.RecData:
		return wire.AppendData(dst, r.ID, r.Payload)
	case wire.RecFrag:
		return wire.AppendFrag(dst, r.ID, r.Msg, r.Total, r.Offset, r.Payload)
	}
	ids := make([]wire.ID, r.NumIDs())
	for i := range ids {
		ids[i] = r.IDAt(i)
	}
	return wire.AppendIDs(dst, r.Type, ids)
}

func TestAppendExt_Golden(t *testing.T) {
	for _, tt := range extGolden {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.format.AppendExt(nil, tt.h)
			for _, r := range tt.records {
				if r.skipped {
					got = append(got, unhex(r.hex)...)
					continue
				}
				got = appendRecord(got, r.want)
			}
			if want := extGoldenBytes(tt.header, tt.records); !bytes.Equal(got, want) {
				t.Errorf("AppendExt and records = %x, want %x", got, want)
			}
		})
	}
}

func TestParseExt_Golden(t *testing.T) {
	for _, tt := range extGolden {
		t.Run(tt.name, func(t *testing.T) {
			b := extGoldenBytes(tt.header, tt.records)
			p, err := tt.format.Decode(b)
			if err != nil || p.Kind != wire.Ext || p.ID != (wire.ID{}) {
				t.Fatalf("Decode(%x) = %v, %v, want an EXT packet with a zero ID", b, p, err)
			}
			if skip := len(tt.format.Magic) + len(tt.format.Ext); !bytes.Equal(p.Payload, b[skip:]) {
				t.Fatalf("Decode(%x).Payload = %x, want everything after the type, %x", b, p.Payload, b[skip:])
			}
			h, recs, err := wire.ParseExt(p.Payload)
			if err != nil || h != tt.h {
				t.Fatalf("ParseExt(%x) = %+v, %v, want %+v", p.Payload, h, err, tt.h)
			}
			got, want := collect(recs), wantRecords(tt.records)
			if !recordsEqual(got, want) {
				t.Errorf("ParseExt(%x) records = %+v, want %+v", p.Payload, got, want)
			}
		})
	}
}

// Every strict prefix of a valid EXT datagram: one that ends inside the
// header does not decode (ErrNotMagic or ErrTruncated); one that ends on a
// record boundary parses to the records before it; one that ends inside a
// record is malformed as a whole (ErrMalformed).
func TestParseExt_TruncatedPrefixes(t *testing.T) {
	for _, tt := range extGolden {
		b := extGoldenBytes(tt.header, tt.records)
		overhead := tt.format.ExtOverhead()
		boundary := map[int][]extRec{overhead: nil}
		end := overhead
		for i, r := range tt.records {
			end += len(unhex(r.hex))
			boundary[end] = tt.records[:i+1]
		}
		if end != len(b) {
			t.Fatalf("%s: records end at %d of %d bytes", tt.name, end, len(b))
		}
		for n := range len(b) {
			prefix := b[:n]
			p, err := tt.format.Decode(prefix)
			if n < overhead {
				want := wire.ErrTruncated
				if n < len(tt.format.Magic) {
					want = wire.ErrNotMagic
				}
				if err != want {
					t.Errorf("%s: Decode(%x) = %v, %v, want %v", tt.name, prefix, p, err, want)
				}
				continue
			}
			if err != nil || p.Kind != wire.Ext {
				t.Fatalf("%s: Decode(%x) = %v, %v, want an EXT packet", tt.name, prefix, p, err)
			}
			h, recs, err := wire.ParseExt(p.Payload)
			before, atBoundary := boundary[n]
			switch {
			case atBoundary:
				if got, want := collect(recs), wantRecords(before); err != nil || h != tt.h || !recordsEqual(got, want) {
					t.Errorf("%s: ParseExt(%x) = %+v, %+v, %v, want %+v, %+v", tt.name, p.Payload, h, got, err, tt.h, want)
				}
			case err != wire.ErrMalformed:
				t.Errorf("%s: ParseExt(%x) = %+v, %v, want ErrMalformed", tt.name, p.Payload, h, err)
			}
		}
	}
}

// hdr is a valid EXT header (version 1, incarnation 7) for the tables below.
const hdr = "01 00 0000000000000007"

func TestParseExt_Malformed(t *testing.T) {
	tests := []struct {
		name    string
		payload string // after the type identifier
		want    error
	}{
		{"empty", "", wire.ErrTruncated},
		{"short header", "01 00 00000000000000", wire.ErrTruncated},
		{"version 0", "00 00 0000000000000007", wire.ErrExtVersion},
		{"version 2", "02 00 0000000000000007", wire.ErrExtVersion},
		{"type only", hdr + "01", wire.ErrMalformed},
		{"length truncated", hdr + "7f 80", wire.ErrMalformed},
		{"length over 64 bits", hdr + "7f ffffffffffffffffff02", wire.ErrMalformed},
		{"length not minimal", hdr + "01 8400 01020304", wire.ErrMalformed},
		{"length zero not minimal", hdr + "7f 8000", wire.ErrMalformed},
		{"unknown past the end", hdr + "7f 03 aabb", wire.ErrMalformed},
		{"DATA past the end by one", hdr + "01 06 01020304 68", wire.ErrMalformed},
		{"DATA past the end by two", hdr + "01 07 01020304 68", wire.ErrMalformed},
		{"DATA shorter than an id", hdr + "01 03 010203", wire.ErrMalformed},
		{"DATA empty", hdr + "01 00", wire.ErrMalformed},
		{"bad record after a good one", hdr + "01 04 01020304" + "03 05 0102030405", wire.ErrMalformed},
		{"RECV empty", hdr + "03 00", wire.ErrMalformed},
		{"RECV 5 bytes", hdr + "03 05 0102030405", wire.ErrMalformed},
		{"ACK 6 bytes", hdr + "04 06 010203040506", wire.ErrMalformed},
		{"ACK 3 bytes", hdr + "04 03 010203", wire.ErrMalformed},
		{"FRAG 6 bytes", hdr + "02 06 010203040506", wire.ErrMalformed},
		{"FRAG ids only", hdr + "02 08 01020304 05060708", wire.ErrMalformed},
		{"FRAG empty payload", hdr + "02 0a 01020304 05060708 05 00", wire.ErrMalformed},
		{"FRAG empty payload, long total", hdr + "02 0b 01020304 05060708 8001 00", wire.ErrMalformed},
		{"FRAG total truncated", hdr + "02 0b 01020304 05060708 ffffff", wire.ErrMalformed},
		{"FRAG offset truncated", hdr + "02 0b 01020304 05060708 05 ffff", wire.ErrMalformed},
		{"FRAG total not minimal", hdr + "02 0c 01020304 05060708 8500 00 61", wire.ErrMalformed},
		{"FRAG offset not minimal", hdr + "02 0c 01020304 05060708 05 8000 61", wire.ErrMalformed},
		{"FRAG payload past total", hdr + "02 0d 01020304 05060708 02 00 616263", wire.ErrMalformed},
		{"FRAG payload past total at offset", hdr + "02 0d 01020304 05060708 05 03 616263", wire.ErrMalformed},
		{"FRAG offset past total", hdr + "02 0b 01020304 05060708 01 02 61", wire.ErrMalformed},
		{"FRAG offset at total", hdr + "02 0b 01020304 05060708 01 01 61", wire.ErrMalformed},
		{"FRAG offset near 2^64", hdr + "02 14 01020304 05060708 0a ffffffffffffffffff01 61", wire.ErrMalformed},
		// total 2^40 + 1 (2^40 is 8080808080 20), offset 0.
		{"FRAG total past MaxMessage", hdr + "02 10 01020304 05060708 818080808020 00 61", wire.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := unhex(tt.payload)
			h, recs, err := wire.ParseExt(b)
			if err != tt.want || !errors.Is(err, wire.ErrForeign) {
				t.Errorf("ParseExt(%x) = %+v, %v, want %v (an ErrForeign)", b, h, err, tt.want)
			}
			if h != (wire.ExtHeader{}) {
				t.Errorf("ParseExt(%x) header %+v on error, want zero", b, h)
			}
			if r, ok := recs.Next(); ok {
				t.Errorf("ParseExt(%x) failed but its Records gave %+v", b, r)
			}
		})
	}
}

// Records at the edges of the rules: each must parse.
func TestParseExt_Edges(t *testing.T) {
	tests := []struct {
		name    string
		payload string // after the header
		want    []wire.Record
	}{
		{"DATA with an empty payload", "01 04 01020304", []wire.Record{{Type: wire.RecData, ID: wire.ID{1, 2, 3, 4}}}},
		{"FRAG, whole message in one", "02 0d 01020304 05060708 03 00 616263", []wire.Record{{
			Type: wire.RecFrag, ID: wire.ID{1, 2, 3, 4}, Msg: wire.ID{5, 6, 7, 8}, Total: 3, Payload: []byte("abc")}}},
		{"FRAG, last piece", "02 0d 01020304 05060708 05 02 616263", []wire.Record{{
			Type: wire.RecFrag, ID: wire.ID{1, 2, 3, 4}, Msg: wire.ID{5, 6, 7, 8}, Total: 5, Offset: 2, Payload: []byte("abc")}}},
		// total = 2^40 = MaxMessage, offset 2^40 - 1 (ffffffffff1f).
		{"FRAG, last byte of the largest message", "02 15 01020304 05060708 808080808020 ffffffffff1f 61", []wire.Record{{
			Type: wire.RecFrag, ID: wire.ID{1, 2, 3, 4}, Msg: wire.ID{5, 6, 7, 8}, Total: wire.MaxMessage, Offset: wire.MaxMessage - 1, Payload: []byte("a")}}},
		{"RECV of one id", "03 04 01020304", []wire.Record{{Type: wire.RecRecv, IDs: unhex("01020304")}}},
		{"unknown types, empty and not", "05 00 ff 02 0000 00 01 00", nil},
		{"unknown with a 2-byte length", "7f 8001" + strings.Repeat("00", 128) + "04 04 01020304", []wire.Record{{Type: wire.RecAck, IDs: unhex("01020304")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := unhex(hdr + tt.payload)
			h, recs, err := wire.ParseExt(b)
			if err != nil || h != (wire.ExtHeader{Version: 1, Incarnation: 7}) {
				t.Fatalf("ParseExt(%x) = %+v, %v", b, h, err)
			}
			if got := collect(recs); !recordsEqual(got, tt.want) {
				t.Errorf("ParseExt(%x) records = %+v, want %+v", b, got, tt.want)
			}
		})
	}
}

func TestParseExt_FlagsIgnored(t *testing.T) {
	b := unhex("01 a5 0000000000000009 01 04 01020304")
	h, recs, err := wire.ParseExt(b)
	if err != nil || h != (wire.ExtHeader{Version: 1, Flags: 0xa5, Incarnation: 9}) {
		t.Fatalf("ParseExt(%x) = %+v, %v", b, h, err)
	}
	if got := collect(recs); len(got) != 1 || got[0].ID != (wire.ID{1, 2, 3, 4}) {
		t.Errorf("ParseExt(%x) records = %+v", b, got)
	}
}

func TestDecode_Ext(t *testing.T) {
	tests := []struct {
		name   string
		format wire.Format
		hex    string
		want   error
	}{
		{"extension off", wire.DefaultFormat(), "b8 " + hdr, wire.ErrUnknownType},
		{"header short", extFormat, "b8 01 00 00000000000000", wire.ErrTruncated},
		{"type only", extFormat, "b8", wire.ErrTruncated},
		{"version 0", extFormat, "b8 00 00 0000000000000000", wire.ErrExtVersion},
		{"version 2", extFormat, "b8 02 00 0000000000000000", wire.ErrExtVersion},
		{"magic, header short", extMagicFormat, "677455445021 1da4 01", wire.ErrTruncated},
		// Decode looks at the header only: records are ParseExt's.
		{"bad records", extFormat, "b8 " + hdr + "01 03 010203", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := unhex(tt.hex)
			p, err := tt.format.Decode(b)
			if err != tt.want || (err != nil && !errors.Is(err, wire.ErrForeign)) {
				t.Errorf("Decode(%x) = %v, %v, want %v", b, p, err, tt.want)
			}
		})
	}
	// With the extension on, the original's packets decode as before.
	for _, tt := range golden {
		f := withExt(tt.format, hex.EncodeToString(tt.format.DeriveExt()))
		b, _ := hex.DecodeString(tt.hex)
		got, err := f.Decode(b)
		if err != nil || got.Kind != tt.want.Kind || got.ID != tt.want.ID || !bytes.Equal(got.Payload, tt.want.Payload) {
			t.Errorf("%s with Ext %x: Decode(%x) = %v, %v", tt.name, f.Ext, b, got, err)
		}
	}
}

func TestRecord_IDs(t *testing.T) {
	r := wire.Record{Type: wire.RecRecv, IDs: unhex("00000001 00000002 00000003")}
	if got := r.NumIDs(); got != 3 {
		t.Fatalf("NumIDs() = %d, want 3", got)
	}
	for i := range 3 {
		if got, want := r.IDAt(i), (wire.ID{0, 0, 0, byte(i + 1)}); got != want {
			t.Errorf("IDAt(%d) = %v, want %v", i, got, want)
		}
	}
	for _, i := range []int{-1, 3} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("IDAt(%d) of 3 ids did not panic", i)
				}
			}()
			r.IDAt(i)
		}()
	}
}

func TestAppend_PanicsOnBadInput(t *testing.T) {
	id := wire.ID{1, 2, 3, 4}
	for name, f := range map[string]func(){
		"Append of an EXT packet":    func() { extFormat.Append(nil, wire.Packet{Kind: wire.Ext}) },
		"AppendExt without Ext":      func() { wire.DefaultFormat().AppendExt(nil, wire.ExtHeader{Version: 1}) },
		"AppendExt with empty Ext":   func() { withExt(wire.DefaultFormat(), "").AppendExt(nil, wire.ExtHeader{Version: 1}) },
		"AppendIDs DATA":             func() { wire.AppendIDs(nil, wire.RecData, []wire.ID{id}) },
		"AppendIDs FRAG":             func() { wire.AppendIDs(nil, wire.RecFrag, []wire.ID{id}) },
		"AppendIDs type 5":           func() { wire.AppendIDs(nil, 5, []wire.ID{id}) },
		"AppendIDs RECV of none":     func() { wire.AppendIDs(nil, wire.RecRecv, nil) },
		"AppendIDs ACK of none":      func() { wire.AppendIDs(nil, wire.RecAck, []wire.ID{}) },
		"AppendFrag empty":           func() { wire.AppendFrag(nil, id, id, 5, 0, nil) },
		"AppendFrag past total":      func() { wire.AppendFrag(nil, id, id, 2, 0, []byte("abc")) },
		"AppendFrag past at offset":  func() { wire.AppendFrag(nil, id, id, 5, 3, []byte("abc")) },
		"AppendFrag offset at total": func() { wire.AppendFrag(nil, id, id, 5, 5, []byte("a")) },
		"AppendFrag huge total":      func() { wire.AppendFrag(nil, id, id, wire.MaxMessage+1, 0, []byte("a")) },
		"AppendFragHeader empty":     func() { wire.AppendFragHeader(nil, id, id, 5, 0, 0) },
		"AppendFragHeader negative":  func() { wire.AppendFragHeader(nil, id, id, 5, 0, -1) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", name)
				}
			}()
			f()
		}()
	}
	// The edges that are allowed.
	wire.AppendFrag(nil, id, id, 3, 0, []byte("abc"))
	wire.AppendFrag(nil, id, id, 5, 2, []byte("abc"))
	wire.AppendFrag(nil, id, id, wire.MaxMessage, wire.MaxMessage-1, []byte("a"))
	wire.AppendIDs(nil, wire.RecAck, []wire.ID{id})
}

// uvarintLen is the length of x as a uvarint, by the standard library.
func uvarintLen(x uint64) int { return len(binary.AppendUvarint(nil, x)) }

// varintEdges are the values around every change of uvarint length.
func varintEdges() []uint64 {
	v := []uint64{0, math.MaxUint64}
	for k := 7; k < 64; k += 7 {
		v = append(v, 1<<k-1, 1<<k)
	}
	return v
}

func TestRecordLengths(t *testing.T) {
	// Pinned: type, length, body.
	for _, tt := range []struct {
		name      string
		got, want int
	}{
		{"DataLen(0)", wire.DataLen(0), 1 + 1 + 4},
		{"DataLen(64)", wire.DataLen(64), 1 + 1 + 68},
		{"DataLen(123)", wire.DataLen(123), 1 + 1 + 127},
		{"DataLen(124)", wire.DataLen(124), 1 + 2 + 128},
		{"IDsLen(1)", wire.IDsLen(1), 1 + 1 + 4},
		{"IDsLen(300)", wire.IDsLen(300), 1 + 2 + 1200},
		{"FragLen(300, 200, 3)", wire.FragLen(300, 200, 3), 1 + 1 + 15},
		{"FragLen(1, 0, 1)", wire.FragLen(1, 0, 1), 1 + 1 + 11},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %d, want %d", tt.name, tt.got, tt.want)
		}
	}
	// Against what the append functions write.
	id := wire.ID{1, 2, 3, 4}
	big := make([]byte, 1<<21+1)
	for _, n := range []int{0, 1, 123, 124, 125, 16379, 16380, 16381, 1<<21 - 5, 1<<21 - 4} {
		if got, want := wire.DataLen(n), len(wire.AppendData(nil, id, big[:n])); got != want {
			t.Errorf("DataLen(%d) = %d, AppendData wrote %d", n, got, want)
		}
	}
	ids := make([]wire.ID, 4100)
	for _, n := range []int{1, 31, 32, 33, 4095, 4096, 4097} {
		if got, want := wire.IDsLen(n), len(wire.AppendIDs(nil, wire.RecRecv, ids[:n])); got != want {
			t.Errorf("IDsLen(%d) = %d, AppendIDs wrote %d", n, got, want)
		}
	}
	for _, total := range varintEdges() {
		for _, offset := range varintEdges() {
			for _, n := range []int{1, 100, 16370} {
				body := 8 + uvarintLen(total) + uvarintLen(offset) + n
				if got, want := wire.FragLen(total, offset, n), 1+uvarintLen(uint64(body))+body; got != want {
					t.Errorf("FragLen(%d, %d, %d) = %d, want %d", total, offset, n, got, want)
				}
				if total <= wire.MaxMessage && offset <= total-uint64(n) && uint64(n) <= total {
					whole := wire.AppendFrag(nil, id, id, total, offset, big[:n])
					if got, want := wire.FragLen(total, offset, n), len(whole); got != want {
						t.Errorf("FragLen(%d, %d, %d) = %d, AppendFrag wrote %d", total, offset, n, got, want)
					}
					head := wire.AppendFragHeader(nil, id, id, total, offset, n)
					if !bytes.Equal(append(head, big[:n]...), whole) {
						t.Errorf("AppendFragHeader(%d, %d, %d) and the payload are not AppendFrag's record", total, offset, n)
					}
				}
			}
		}
	}
}

// fataler is what checkMax needs of a *testing.T or a *rapid.T.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

// checkMax checks that the Max functions give the largest value that fits
// in room, and nothing when nothing fits.
func checkMax(t fataler, room int, total, offset uint64) {
	t.Helper()
	if p := wire.MaxDataPayload(room); p < 0 {
		if p != -1 || wire.DataLen(0) <= room {
			t.Fatalf("MaxDataPayload(%d) = %d, but DataLen(0) = %d", room, p, wire.DataLen(0))
		}
	} else if wire.DataLen(p) > room || wire.DataLen(p+1) <= room {
		t.Fatalf("MaxDataPayload(%d) = %d: DataLen %d, and %d for one more", room, p, wire.DataLen(p), wire.DataLen(p+1))
	}
	if n := wire.MaxIDs(room); n == 0 {
		if wire.IDsLen(1) <= room {
			t.Fatalf("MaxIDs(%d) = 0, but IDsLen(1) = %d", room, wire.IDsLen(1))
		}
	} else if n < 0 || wire.IDsLen(n) > room || wire.IDsLen(n+1) <= room {
		t.Fatalf("MaxIDs(%d) = %d: IDsLen %d, and %d for one more", room, n, wire.IDsLen(n), wire.IDsLen(n+1))
	}
	if p := wire.MaxFragPayload(room, total, offset); p == 0 {
		if wire.FragLen(total, offset, 1) <= room {
			t.Fatalf("MaxFragPayload(%d, %d, %d) = 0, but FragLen(1) = %d", room, total, offset, wire.FragLen(total, offset, 1))
		}
	} else if p < 0 || wire.FragLen(total, offset, p) > room || wire.FragLen(total, offset, p+1) <= room {
		t.Fatalf("MaxFragPayload(%d, %d, %d) = %d: FragLen %d, and %d for one more",
			room, total, offset, p, wire.FragLen(total, offset, p), wire.FragLen(total, offset, p+1))
	}
}

func TestMaxSizes(t *testing.T) {
	for _, tt := range []struct {
		name      string
		got, want int
	}{
		{"MaxDataPayload(5)", wire.MaxDataPayload(5), -1},
		{"MaxDataPayload(6)", wire.MaxDataPayload(6), 0},
		{"MaxDataPayload(129)", wire.MaxDataPayload(129), 123},
		{"MaxDataPayload(130)", wire.MaxDataPayload(130), 123},
		{"MaxDataPayload(131)", wire.MaxDataPayload(131), 124},
		{"MaxDataPayload(1189)", wire.MaxDataPayload(1200 - 11), 1189 - 3 - 4},
		{"MaxIDs(5)", wire.MaxIDs(5), 0},
		{"MaxIDs(6)", wire.MaxIDs(6), 1},
		{"MaxIDs(9)", wire.MaxIDs(9), 1},
		{"MaxIDs(10)", wire.MaxIDs(10), 2},
		{"MaxIDs(1189)", wire.MaxIDs(1189), 296},
		{"MaxFragPayload(12, 1, 0)", wire.MaxFragPayload(12, 1, 0), 0},
		{"MaxFragPayload(13, 1, 0)", wire.MaxFragPayload(13, 1, 0), 1},
		{"MaxFragPayload(1189, 300, 200)", wire.MaxFragPayload(1189, 300, 200), 1189 - 3 - 12},
		{"MaxDataPayload(0)", wire.MaxDataPayload(0), -1},
		{"MaxDataPayload(MinInt)", wire.MaxDataPayload(math.MinInt), -1},
		{"MaxIDs(MinInt)", wire.MaxIDs(math.MinInt), 0},
		{"MaxFragPayload(MinInt)", wire.MaxFragPayload(math.MinInt, 1, 0), 0},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %d, want %d", tt.name, tt.got, tt.want)
		}
	}
	// Every room up to the largest datagram, and some around each change
	// of length of a length.
	for room := -3; room <= wire.MaxDatagram; room++ {
		checkMax(t, room, 300, 200)
	}
	for _, e := range varintEdges() {
		if e > 1<<56 {
			continue // room is an int
		}
		for d := -12; d <= 12; d++ {
			checkMax(t, int(e)+d, wire.MaxMessage, 1<<21)
		}
	}
}

// genRecord draws a record of a known type, valid by the rules of the spec.
func genRecord(t *rapid.T) wire.Record {
	id := func(label string) wire.ID { return wire.ID(rapid.SliceOfN(rapid.Byte(), 4, 4).Draw(t, label)) }
	typ := rapid.SampledFrom([]wire.RecordType{wire.RecData, wire.RecFrag, wire.RecRecv, wire.RecAck}).Draw(t, "type")
	r := wire.Record{Type: typ}
	switch typ {
	case wire.RecData:
		r.ID, r.Payload = id("id"), rapid.SliceOfN(rapid.Byte(), 0, 200).Draw(t, "payload")
	case wire.RecFrag:
		r.ID, r.Msg = id("id"), id("msg")
		r.Payload = rapid.SliceOfN(rapid.Byte(), 1, 200).Draw(t, "payload")
		p := uint64(len(r.Payload))
		r.Total = rapid.OneOf(rapid.Uint64Range(p, 1<<16), rapid.Uint64Range(p, wire.MaxMessage)).Draw(t, "total")
		r.Offset = rapid.Uint64Range(0, r.Total-p).Draw(t, "offset")
	default:
		n := 4 * rapid.IntRange(1, 70).Draw(t, "ids")
		r.IDs = rapid.SliceOfN(rapid.Byte(), n, n).Draw(t, "idBytes")
	}
	return r
}

// recordLen is the length of r by the size functions.
func recordLen(r wire.Record) int {
	switch r.Type {
	case wire.RecData:
		return wire.DataLen(len(r.Payload))
	case wire.RecFrag:
		return wire.FragLen(r.Total, r.Offset, len(r.Payload))
	}
	return wire.IDsLen(r.NumIDs())
}

// propExtRoundTrip: any EXT datagram of valid records, with records of
// unknown types among them, under any valid format with an Ext, decodes to
// its header and its known records, in order.
func propExtRoundTrip(t *rapid.T) {
	f := genFormat(t)
	if rapid.Bool().Draw(t, "derive") {
		f.Ext = f.DeriveExt()
	} else {
		f.Ext = rapid.SliceOfN(rapid.Byte(), len(f.Data), len(f.Data)).Filter(func(b []byte) bool {
			return !bytes.Equal(b, f.Data) && !bytes.Equal(b, f.Recv) && !bytes.Equal(b, f.Ack)
		}).Draw(t, "ext")
	}
	if err := f.Validate(); err != nil {
		t.Fatalf("invalid format %v: %v", f, err)
	}
	h := wire.ExtHeader{Version: wire.ExtVersion, Flags: rapid.Byte().Draw(t, "flags"), Incarnation: rapid.Uint64().Draw(t, "incarnation")}
	b := f.AppendExt(nil, h)
	size := f.ExtOverhead()
	var want []wire.Record
	for range rapid.IntRange(0, 12).Draw(t, "records") {
		if rapid.IntRange(0, 4).Draw(t, "unknown") == 0 {
			typ := rapid.SampledFrom([]byte{0, 5, 6, 0x7f, 0xff}).Draw(t, "unknownType")
			body := rapid.SliceOfN(rapid.Byte(), 0, 200).Draw(t, "body")
			before := len(b)
			b = append(binary.AppendUvarint(append(b, typ), uint64(len(body))), body...)
			size += len(b) - before
			continue
		}
		r := genRecord(t)
		b = appendRecord(b, r)
		size += recordLen(r)
		want = append(want, r)
	}
	if len(b) != size {
		t.Fatalf("datagram is %d bytes, the size functions say %d", len(b), size)
	}
	p, err := f.Decode(b)
	if err != nil || p.Kind != wire.Ext {
		t.Fatalf("Decode(%x) = %v, %v", b, p, err)
	}
	gotH, recs, err := wire.ParseExt(p.Payload)
	if err != nil || gotH != h {
		t.Fatalf("ParseExt(%x) = %+v, %v, want %+v", p.Payload, gotH, err, h)
	}
	if got := collect(recs); !recordsEqual(got, want) {
		t.Fatalf("ParseExt(%x) records = %+v, want %+v", p.Payload, got, want)
	}
}

func TestExtRoundTrip(t *testing.T) { rapid.Check(t, propExtRoundTrip) }

// FuzzExtRoundTrip reuses the rapid property as a coverage-guided fuzz
// target.
func FuzzExtRoundTrip(f *testing.F) { f.Fuzz(rapid.MakeFuzz(propExtRoundTrip)) }

// propMaxSizes: the Max functions are exact for any room and FRAG fields.
func propMaxSizes(t *rapid.T) {
	room := rapid.OneOf(rapid.IntRange(-10, 1<<16), rapid.IntRange(0, math.MaxInt32)).Draw(t, "room")
	total := rapid.Uint64Range(1, wire.MaxMessage).Draw(t, "total")
	checkMax(t, room, total, rapid.Uint64Range(0, total-1).Draw(t, "offset"))
}

func TestMaxSizes_Property(t *testing.T) { rapid.Check(t, propMaxSizes) }

// knownRecords returns the records of a valid EXT payload whose type
// version 1 knows, as bytes: what a re-encoding gives back. It walks the
// records by the spec's framing alone.
func knownRecords(payload []byte) []byte {
	var out []byte
	b := payload[wire.ExtHeaderLen:]
	for len(b) > 0 {
		n, k := binary.Uvarint(b[1:])
		end := 1 + k + int(n)
		if b[0] >= 1 && b[0] <= 4 {
			out = append(out, b[:end]...)
		}
		b = b[end:]
	}
	return out
}

// extSeeds are EXT payloads (after the type identifier) made by the
// encoders.
func extSeeds() [][]byte {
	var seeds [][]byte
	for _, tt := range extGolden {
		b := extGoldenBytes(tt.header, tt.records)
		seeds = append(seeds, b[len(tt.format.Magic)+len(tt.format.Ext):])
	}
	id := wire.ID{1, 2, 3, 4}
	b := extFormat.AppendExt(nil, wire.ExtHeader{Version: 1, Incarnation: 42})
	b = wire.AppendData(b, id, []byte("hello"))
	b = wire.AppendFrag(b, id, id, 1<<20, 1<<19, make([]byte, 130))
	b = wire.AppendIDs(b, wire.RecRecv, make([]wire.ID, 40))
	return append(seeds, b[1:])
}

// FuzzParseExt feeds arbitrary bytes to ParseExt as the payload of an EXT
// packet. It must never panic; an error must match ErrForeign; and what
// parses must re-encode, from its header and records, to the same bytes
// (less the records of unknown types, which are skipped).
func FuzzParseExt(f *testing.F) {
	for _, s := range extSeeds() {
		f.Add(s)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, recs, err := wire.ParseExt(b)
		if err != nil {
			if !errors.Is(err, wire.ErrForeign) {
				t.Fatalf("ParseExt(%x) error %v does not match ErrForeign", b, err)
			}
			return
		}
		again := extFormat.AppendExt(nil, h)[1:]
		for r, ok := recs.Next(); ok; r, ok = recs.Next() {
			again = appendRecord(again, r)
		}
		want := append(bytes.Clone(b[:wire.ExtHeaderLen]), knownRecords(b)...)
		if !bytes.Equal(again, want) {
			t.Fatalf("ParseExt(%x) re-encoded as %x, want %x", b, again, want)
		}
		// Decode agrees that the header is good.
		if p, err := extFormat.Decode(append([]byte{0xb8}, b...)); err != nil || p.Kind != wire.Ext {
			t.Fatalf("ParseExt(%x) succeeded but Decode says %v, %v", b, p, err)
		}
	})
}
