package wire_test

import (
	"testing"

	"github.com/gtudp/gtudp/wire"
)

var (
	sink       wire.Packet
	sinkRecord wire.Record
	sinkErr    error
	sinkOK     bool
)

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

// extDatagramSize is the path-safe datagram size the extension fills.
const extDatagramSize = 1200

// appendExtData fills dst with an EXT datagram of as many DATA records of
// payload as fit in extDatagramSize bytes.
func appendExtData(dst []byte, payload []byte) []byte {
	f := extFormat
	dst = f.AppendExt(dst, wire.ExtHeader{Version: wire.ExtVersion, Incarnation: 1})
	for id := uint8(0); len(dst)+wire.DataLen(len(payload)) <= extDatagramSize; id++ {
		dst = wire.AppendData(dst, wire.ID{id}, payload)
	}
	return dst
}

// BenchmarkAppendExt_Data fills a 1200-byte EXT datagram with 64-byte DATA
// records (16 of them).
func BenchmarkAppendExt_Data(b *testing.B) {
	payload := make([]byte, 64)
	buf := make([]byte, 0, extDatagramSize)
	b.ReportAllocs()
	b.SetBytes(int64(len(appendExtData(nil, payload))))
	for b.Loop() {
		buf = appendExtData(buf[:0], payload)
	}
}

// BenchmarkParseExt_Data decodes the datagram of BenchmarkAppendExt_Data,
// parses it and iterates over its records.
func BenchmarkParseExt_Data(b *testing.B) {
	pkt := appendExtData(nil, make([]byte, 64))
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		parseAll(pkt)
	}
}

// parseAll decodes an EXT datagram under extFormat and reads every record.
func parseAll(pkt []byte) {
	p, err := extFormat.Decode(pkt)
	if err != nil {
		panic(err)
	}
	_, recs, err := wire.ParseExt(p.Payload)
	if err != nil {
		panic(err)
	}
	for r, ok := recs.Next(); ok; r, ok = recs.Next() {
		sinkRecord = r
	}
}

func BenchmarkAppendIDs_300(b *testing.B) {
	ids := make([]wire.ID, 300)
	buf := make([]byte, 0, wire.IDsLen(len(ids)))
	b.ReportAllocs()
	b.SetBytes(int64(wire.IDsLen(len(ids))))
	for b.Loop() {
		buf = wire.AppendIDs(buf[:0], wire.RecRecv, ids)
	}
}

// BenchmarkParseExt_IDs300 parses a datagram of one 300-id RECV record and
// reads every id.
func BenchmarkParseExt_IDs300(b *testing.B) {
	pkt := wire.AppendIDs(extFormat.AppendExt(nil, wire.ExtHeader{Version: wire.ExtVersion}), wire.RecRecv, make([]wire.ID, 300))
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	var id wire.ID
	for b.Loop() {
		_, recs, _ := wire.ParseExt(pkt[1:])
		r, _ := recs.Next()
		for i := range r.NumIDs() {
			id = r.IDAt(i)
		}
	}
	sinkRecord.ID = id
}

// TestNoAllocs fails when encoding into a buffer with room, or decoding, or
// reporting a foreign datagram, or any extension form's append, parse or
// iteration, allocates.
func TestNoAllocs(t *testing.T) {
	f := magicFormat
	p := wire.Packet{Kind: wire.Data, ID: wire.ID{1, 2, 3, 4}, Payload: make([]byte, 64)}
	buf := make([]byte, 0, 2048)
	pkt := f.Append(nil, p)

	id := wire.ID{1, 2, 3, 4}
	ids := make([]wire.ID, 300)
	tr := wire.Trailer{Version: wire.ExtVersion, Incarnation: 5}
	recv := wire.AppendTrailer(wire.DefaultFormat().Append(nil, wire.Packet{Kind: wire.Recv, ID: id}), tr)
	ext := extMagicFormat.AppendExt(nil, wire.ExtHeader{Version: wire.ExtVersion, Incarnation: 5})
	ext = wire.AppendData(ext, id, make([]byte, 64))
	ext = wire.AppendFrag(ext, id, id, 1<<20, 1<<10, make([]byte, 64))
	ext = wire.AppendIDs(ext, wire.RecRecv, ids[:3])
	ext = append(ext, 0x7f, 0) // an unknown record, skipped
	ext = wire.AppendIDs(ext, wire.RecAck, ids[:1])
	extPayload := ext[extMagicFormat.ExtOverhead()-wire.ExtHeaderLen:]
	if n := len(collectOrFail(t, extPayload)); n != 4 {
		t.Fatalf("the EXT datagram has %d records, want 4", n)
	}

	for name, fn := range map[string]func(){
		"Append":         func() { buf = f.Append(buf[:0], p) },
		"Decode":         func() { sink, _ = f.Decode(pkt) },
		"Decode foreign": func() { sink, _ = f.Decode(pkt[1:]) },
		"Decode short":   func() { sink, _ = f.Decode(pkt[:8]) },
		"AppendTrailer":  func() { buf = wire.AppendTrailer(buf[:0], tr) },
		"ParseTrailer":   func() { _, sinkOK = wire.ParseTrailer(recv[5:]) },
		"AppendExt":      func() { buf = extMagicFormat.AppendExt(buf[:0], wire.ExtHeader{Version: wire.ExtVersion}) },
		"AppendData":     func() { buf = wire.AppendData(buf[:0], id, p.Payload) },
		"AppendFrag":     func() { buf = wire.AppendFrag(buf[:0], id, id, 1<<20, 1<<10, p.Payload) },
		"AppendIDs":      func() { buf = wire.AppendIDs(buf[:0], wire.RecAck, ids) },
		"Decode EXT":     func() { sink, _ = extMagicFormat.Decode(ext) },
		"Decode EXT bad": func() { sink, _ = extMagicFormat.Decode(ext[:10]) },
		"ParseExt":       func() { _, _, sinkErr = wire.ParseExt(extPayload) },
		"ParseExt bad":   func() { _, _, sinkErr = wire.ParseExt(extPayload[:len(extPayload)-1]) },
		"ParseExt and Next": func() {
			_, recs, _ := wire.ParseExt(extPayload)
			for r, ok := recs.Next(); ok; r, ok = recs.Next() {
				sinkRecord = r
			}
		},
	} {
		if n := testing.AllocsPerRun(100, fn); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", name, n)
		}
	}
}

func collectOrFail(t *testing.T, payload []byte) []wire.Record {
	t.Helper()
	_, recs, err := wire.ParseExt(payload)
	if err != nil {
		t.Fatalf("ParseExt(%x): %v", payload, err)
	}
	return collect(recs)
}
