package wire_test

import (
	"testing"

	"github.com/gtudp/gtudp/wire"
)

var sink wire.Packet

func BenchmarkAppend(b *testing.B) {
	f := wire.DefaultFormat()
	p := wire.Packet{Kind: wire.Data, ID: wire.ID{1, 2, 3, 4}, Payload: make([]byte, 64)}
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	b.SetBytes(int64(f.HeaderLen() + len(p.Payload)))
	for b.Loop() {
		buf = f.Append(buf[:0], p)
	}
}

func BenchmarkDecode(b *testing.B) {
	f := wire.DefaultFormat()
	pkt := f.Append(nil, wire.Packet{Kind: wire.Data, ID: wire.ID{1, 2, 3, 4}, Payload: make([]byte, 64)})
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		sink, _ = f.Decode(pkt)
	}
}

func BenchmarkDecode_Foreign(b *testing.B) {
	f := magicFormat
	pkt := []byte("GET / HTTP/1.1\r\n\r\n")
	b.ReportAllocs()
	for b.Loop() {
		sink, _ = f.Decode(pkt)
	}
}

// TestNoAllocs fails when encoding into a buffer with room, or decoding, or
// reporting a foreign datagram, allocates.
func TestNoAllocs(t *testing.T) {
	f := magicFormat
	p := wire.Packet{Kind: wire.Data, ID: wire.ID{1, 2, 3, 4}, Payload: make([]byte, 64)}
	buf := make([]byte, 0, 128)
	pkt := f.Append(nil, p)
	for name, fn := range map[string]func(){
		"Append":         func() { buf = f.Append(buf[:0], p) },
		"Decode":         func() { sink, _ = f.Decode(pkt) },
		"Decode foreign": func() { sink, _ = f.Decode(pkt[1:]) },
		"Decode short":   func() { sink, _ = f.Decode(pkt[:8]) },
	} {
		if n := testing.AllocsPerRun(100, fn); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", name, n)
		}
	}
}
