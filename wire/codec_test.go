package wire_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/gtudp/gtudp/wire"
	"pgregory.net/rapid"
)

// magicFormat is the seed README's second example: a 6-byte magic number and
// 2-byte packet types.
var magicFormat = wire.Format{
	Magic: []byte("gtUDP!"),
	Data:  []byte{0x1d, 0x01},
	Recv:  []byte{0x5f, 0x01},
	Ack:   []byte{0xae, 0x01},
}

// golden holds packets exactly as the seed README and DESIGN.md lay them out.
var golden = []struct {
	name   string
	format wire.Format
	hex    string
	want   wire.Packet
}{
	{
		// DESIGN.md section 1: "1d 75 79 07 14 48 65 6c 6c 6f is DATA, id
		// 75790714, payload Hello". Seed README: byte 0 TYPE, bytes 1-4 the
		// packet identity hash, DATA from byte 5.
		name: "default DATA", format: wire.DefaultFormat(),
		hex:  "1d75790714" + "48656c6c6f",
		want: wire.Packet{Kind: wire.Data, ID: wire.ID{0x75, 0x79, 0x07, 0x14}, Payload: []byte("Hello")},
	},
	{
		// A DATA with an empty payload is still a message.
		name: "default DATA empty", format: wire.DefaultFormat(),
		hex:  "1d00000000",
		want: wire.Packet{Kind: wire.Data, ID: wire.ID{}, Payload: []byte{}},
	},
	{
		// Seed README "Default RECV & ACK packets": TYPE then the 4-byte hash.
		name: "default RECV", format: wire.DefaultFormat(),
		hex:  "5f75790714",
		want: wire.Packet{Kind: wire.Recv, ID: wire.ID{0x75, 0x79, 0x07, 0x14}, Payload: []byte{}},
	},
	{
		name: "default ACK", format: wire.DefaultFormat(),
		hex:  "aedeadbeef",
		want: wire.Packet{Kind: wire.Ack, ID: wire.ID{0xde, 0xad, 0xbe, 0xef}, Payload: []byte{}},
	},
	{
		// The original slices the ID out of RECV and ACK and ignores the
		// rest; so do we, but the bytes are kept for a later extension.
		name: "default RECV with trailer", format: wire.DefaultFormat(),
		hex:  "5f75790714" + "ff00",
		want: wire.Packet{Kind: wire.Recv, ID: wire.ID{0x75, 0x79, 0x07, 0x14}, Payload: []byte{0xff, 0x00}},
	},
	{
		// Seed README, 6-byte magic and 2-byte TYPEs: bytes 0-5 magic, 6-7
		// type, 8-11 identity hash, DATA after. (The README's diagram labels
		// the DATA row 16; the row after bytes 8-11 starts at byte 12.)
		name: "magic DATA", format: magicFormat,
		hex:  "677455445021" + "1d01" + "01020304" + "6869",
		want: wire.Packet{Kind: wire.Data, ID: wire.ID{1, 2, 3, 4}, Payload: []byte("hi")},
	},
	{
		name: "magic RECV", format: magicFormat,
		hex:  "677455445021" + "5f01" + "01020304",
		want: wire.Packet{Kind: wire.Recv, ID: wire.ID{1, 2, 3, 4}, Payload: []byte{}},
	},
	{
		name: "magic ACK", format: magicFormat,
		hex:  "677455445021" + "ae01" + "01020304",
		want: wire.Packet{Kind: wire.Ack, ID: wire.ID{1, 2, 3, 4}, Payload: []byte{}},
	},
}

func TestDecode_Golden(t *testing.T) {
	for _, tt := range golden {
		t.Run(tt.name, func(t *testing.T) {
			b, err := hex.DecodeString(tt.hex)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tt.format.Decode(b)
			if err != nil {
				t.Fatalf("Decode(%x) error %v", b, err)
			}
			if got.Kind != tt.want.Kind || got.ID != tt.want.ID || !bytes.Equal(got.Payload, tt.want.Payload) {
				t.Errorf("Decode(%x) = {%v %v %x}, want {%v %v %x}",
					b, got.Kind, got.ID, got.Payload, tt.want.Kind, tt.want.ID, tt.want.Payload)
			}
		})
	}
}

func TestAppend_Golden(t *testing.T) {
	for _, tt := range golden {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.format.Append(nil, tt.want)
			if h := hex.EncodeToString(got); h != tt.hex {
				t.Errorf("Append(%v %v %x) = %s, want %s", tt.want.Kind, tt.want.ID, tt.want.Payload, h, tt.hex)
			}
		})
	}
}

func TestAppend_AppendsToDst(t *testing.T) {
	dst := []byte("prefix")
	got := wire.DefaultFormat().Append(dst, wire.Packet{Kind: wire.Ack, ID: wire.ID{9, 8, 7, 6}})
	if want := "prefix\xae\x09\x08\x07\x06"; string(got) != want {
		t.Errorf("Append kept %q, want %q", got, want)
	}
}

func TestAppend_InvalidKindPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Append with Kind(0) did not panic")
		}
	}()
	wire.DefaultFormat().Append(nil, wire.Packet{})
}

// Every strict prefix of a valid packet that ends before its payload starts
// is foreign: a truncated header must never decode.
func TestDecode_TruncatedPrefixes(t *testing.T) {
	for _, tt := range golden {
		b, _ := hex.DecodeString(tt.hex)
		for n := 0; n < tt.format.HeaderLen(); n++ {
			p, err := tt.format.Decode(b[:n])
			if !errors.Is(err, wire.ErrForeign) {
				t.Errorf("%s: Decode(%x) = %v, %v, want an ErrForeign error", tt.name, b[:n], p, err)
			}
		}
	}
}

func TestDecode_Foreign(t *testing.T) {
	tests := []struct {
		name   string
		format wire.Format
		hex    string
		want   error
	}{
		{"empty", wire.DefaultFormat(), "", wire.ErrTruncated},
		{"unknown type", wire.DefaultFormat(), "0075790714", wire.ErrUnknownType},
		{"unknown type short", wire.DefaultFormat(), "6869", wire.ErrUnknownType},
		// A whole type identifier and nothing after: the type is read
		// before the ID is missed.
		{"unknown type only", wire.DefaultFormat(), "00", wire.ErrUnknownType},
		{"unknown type only, magic", magicFormat, "677455445021" + "0000", wire.ErrUnknownType},
		{"short id", wire.DefaultFormat(), "1d757907", wire.ErrTruncated},
		{"wrong magic", magicFormat, "677455445022" + "1d01" + "01020304", wire.ErrNotMagic},
		{"shorter than magic", magicFormat, "6774", wire.ErrNotMagic},
		{"magic only", magicFormat, "677455445021", wire.ErrTruncated},
		{"half a type", magicFormat, "677455445021" + "1d", wire.ErrTruncated},
		{"type of other kind mixed", magicFormat, "677455445021" + "1d02" + "01020304", wire.ErrUnknownType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, _ := hex.DecodeString(tt.hex)
			p, err := tt.format.Decode(b)
			if err != tt.want || !errors.Is(err, wire.ErrForeign) {
				t.Errorf("Decode(%x) = %v, %v, want %v (an ErrForeign)", b, p, err, tt.want)
			}
		})
	}
}

func TestFormat_Validate(t *testing.T) {
	tests := []struct {
		name   string
		format wire.Format
		want   string // substring of the error; "" for valid
	}{
		{"default", wire.DefaultFormat(), ""},
		{"magic and 2-byte types", magicFormat, ""},
		{"zero", wire.Format{}, "DATA type identifier is empty"},
		{"empty ACK", wire.Format{Data: []byte{1}, Recv: []byte{2}}, "ACK type identifier is empty"},
		{"unequal", wire.Format{Data: []byte{1}, Recv: []byte{2, 2}, Ack: []byte{3}}, "RECV type identifier is 2 bytes but DATA is 1"},
		{"repeated", wire.Format{Data: []byte{1}, Recv: []byte{2}, Ack: []byte{1}}, "DATA and ACK type identifiers are both 01"},
		{"repeated RECV ACK", wire.Format{Data: []byte{1}, Recv: []byte{2}, Ack: []byte{2}}, "RECV and ACK type identifiers are both 02"},
		{"huge magic", wire.Format{Magic: make([]byte, wire.MaxDatagram), Data: []byte{1}, Recv: []byte{2}, Ack: []byte{3}}, "does not fit"},
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

func TestFormat_MaxPayload(t *testing.T) {
	if got, want := wire.DefaultFormat().MaxPayload(), 65507-5; got != want {
		t.Errorf("DefaultFormat().MaxPayload() = %d, want %d", got, want)
	}
	if got, want := magicFormat.MaxPayload(), 65507-12; got != want {
		t.Errorf("magicFormat.MaxPayload() = %d, want %d", got, want)
	}
}

func TestFormat_Clone(t *testing.T) {
	f := magicFormat.Clone()
	f.Magic[0] = 'X'
	f.Data[0] = 0
	if magicFormat.Magic[0] != 'g' || magicFormat.Data[0] != 0x1d {
		t.Error("Clone shares memory with the original")
	}
}

func TestKind_String(t *testing.T) {
	for k, want := range map[wire.Kind]string{wire.Data: "DATA", wire.Recv: "RECV", wire.Ack: "ACK", 7: "Kind(7)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", uint8(k), got, want)
		}
	}
	if got := (wire.ID{0x75, 0x79, 0x07, 0x14}).String(); got != "75790714" {
		t.Errorf("ID.String() = %q, want 75790714", got)
	}
}

// genFormat draws a valid Format: a magic of 0-8 bytes and distinct types of
// 1-3 bytes.
func genFormat(t *rapid.T) wire.Format {
	magic := rapid.SliceOfN(rapid.Byte(), 0, 8).Draw(t, "magic")
	n := rapid.IntRange(1, 3).Draw(t, "typeLen")
	types := rapid.SliceOfNDistinct(rapid.SliceOfN(rapid.Byte(), n, n), 3, 3, func(b []byte) string { return string(b) }).Draw(t, "types")
	return wire.Format{Magic: magic, Data: types[0], Recv: types[1], Ack: types[2]}
}

// propRoundTrip: any packet under any valid format decodes to itself.
func propRoundTrip(t *rapid.T) {
	f := genFormat(t)
	if err := f.Validate(); err != nil {
		t.Fatalf("genFormat made an invalid format: %v", err)
	}
	p := wire.Packet{
		Kind:    rapid.SampledFrom([]wire.Kind{wire.Data, wire.Recv, wire.Ack}).Draw(t, "kind"),
		ID:      wire.ID(rapid.SliceOfN(rapid.Byte(), 4, 4).Draw(t, "id")),
		Payload: rapid.SliceOfN(rapid.Byte(), 0, 64).Draw(t, "payload"),
	}
	b := f.Append(nil, p)
	if len(b) != f.HeaderLen()+len(p.Payload) {
		t.Fatalf("Append wrote %d bytes, want header %d + payload %d", len(b), f.HeaderLen(), len(p.Payload))
	}
	got, err := f.Decode(b)
	if err != nil {
		t.Fatalf("Decode(Append(%v)) error %v", p, err)
	}
	if got.Kind != p.Kind || got.ID != p.ID || !bytes.Equal(got.Payload, p.Payload) {
		t.Fatalf("Decode(Append(%v)) = %v", p, got)
	}
}

func TestRoundTrip(t *testing.T) { rapid.Check(t, propRoundTrip) }

// FuzzRoundTrip reuses the rapid property as a coverage-guided fuzz target.
func FuzzRoundTrip(f *testing.F) { f.Fuzz(rapid.MakeFuzz(propRoundTrip)) }

// FuzzDecode feeds arbitrary datagrams to Decode under the default format and
// the magic format, each with and without the extension: it must never
// panic, and whatever decodes must re-encode to exactly the same bytes (an
// EXT packet from its header and payload, a trailer from its fields).
// Without the extension, nothing decodes as EXT.
func FuzzDecode(f *testing.F) {
	for _, tt := range golden {
		b, _ := hex.DecodeString(tt.hex)
		f.Add(b)
	}
	for _, tt := range extGolden {
		f.Add(extGoldenBytes(tt.header, tt.records))
	}
	f.Add(wire.AppendTrailer(unhex("5f75790714"), wire.Trailer{Version: 1, Incarnation: 7}))
	f.Add([]byte{})
	f.Add([]byte("not gtudp at all"))
	formats := []wire.Format{wire.DefaultFormat(), magicFormat, extFormat, extMagicFormat}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, format := range formats {
			p, err := format.Decode(b)
			if err != nil {
				if !errors.Is(err, wire.ErrForeign) {
					t.Fatalf("Decode(%x) error %v does not match ErrForeign", b, err)
				}
				continue
			}
			if p.Kind == wire.Ext {
				if format.Ext == nil || p.ID != (wire.ID{}) {
					t.Fatalf("Decode(%x) under %v = %v", b, format, p)
				}
				h := wire.ExtHeader{Version: p.Payload[0], Flags: p.Payload[1], Incarnation: binary.BigEndian.Uint64(p.Payload[2:])}
				again := append(format.AppendExt(nil, h), p.Payload[wire.ExtHeaderLen:]...)
				if !bytes.Equal(again, b) {
					t.Fatalf("Decode(%x) = %v, re-encoded as %x", b, p, again)
				}
				continue
			}
			if again := format.Append(nil, p); !bytes.Equal(again, b) {
				t.Fatalf("Decode(%x) = %v, re-encoded as %x", b, p, again)
			}
			if tr, ok := wire.ParseTrailer(p.Payload); ok {
				if again := wire.AppendTrailer(nil, tr); !bytes.Equal(again, p.Payload[:wire.TrailerLen]) {
					t.Fatalf("ParseTrailer(%x) = %+v, re-encoded as %x", p.Payload, tr, again)
				}
			}
		}
	})
}
