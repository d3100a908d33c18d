package wire

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
)

// The gtudp extension, version 1, spoken between gtudp peers only. The
// original reads of a RECV or ACK only MAGIC ‖ TYPE ‖ ID and ignores the rest,
// so a Trailer there is safe to send to anyone; an EXT datagram is sent only
// to a peer whose trailer has been seen.
//
// Everything here appends into the caller's buffer or returns slices of the
// caller's datagram: nothing allocates, except an append that has to grow
// its dst.

// ExtVersion is the version of the extension this package writes and reads,
// in a Trailer and in an ExtHeader.
const ExtVersion = 1

// extCandidates are XORed, in order, into the last byte of Format.Data by
// DeriveExt. Eight values and only two identifiers to avoid: one always fits.
var extCandidates = [...]byte{0xa5, 0x5a, 0x3c, 0xc3, 0x96, 0x69, 0x0f, 0xf0}

// DeriveExt returns the default Ext type identifier of f, in a new slice:
// f.Data with its last byte XORed with the first of 0xA5, 0x5A, 0x3C, 0xC3,
// 0x96, 0x69, 0x0F, 0xF0 that gives an identifier distinct from Data, Recv
// and Ack. For DefaultFormat it is b8. It returns nil (no extension) if
// f.Data is empty. It does not modify f.
func (f Format) DeriveExt() []byte {
	if len(f.Data) == 0 {
		return nil
	}
	ext := bytes.Clone(f.Data)
	last := len(ext) - 1
	for _, c := range extCandidates {
		ext[last] = f.Data[last] ^ c
		// c is never zero, so ext differs from Data.
		if !bytes.Equal(ext, f.Recv) && !bytes.Equal(ext, f.Ack) {
			return ext
		}
	}
	panic("wire: DeriveExt found no free identifier") // unreachable: see extCandidates
}

// TrailerLen is the length of a Trailer on the wire.
const TrailerLen = 12

// trailerMark opens every Trailer: ASCII "gt".
const trailerMark = "gt"

// Trailer is the negotiation trailer gtudp appends after the ID of the RECV
// and ACK it sends. On the wire, TrailerLen bytes:
//
//	offset  0    1    2        3       4 .. 11
//	      +----+----+--------+-------+-------------------------------+
//	      | 'g'| 't'| version| flags | incarnation (8 B, big-endian) |
//	      +----+----+--------+-------+-------------------------------+
type Trailer struct {
	// Version is ExtVersion when sent; a receiver accepts any version ≥ 1
	// (later versions only add bytes after these twelve).
	Version uint8
	// Flags are reserved: sent as 0, ignored on receipt.
	Flags uint8
	// Incarnation names the sending endpoint's life, so that a restarted
	// peer is recognised.
	Incarnation uint64
}

// AppendTrailer appends t, as laid out in Trailer's comment, to dst and
// returns the extended buffer. It writes Version and Flags as given.
// It allocates only if dst has too little capacity.
func AppendTrailer(dst []byte, t Trailer) []byte {
	dst = append(dst, trailerMark...)
	dst = append(dst, t.Version, t.Flags)
	return binary.BigEndian.AppendUint64(dst, t.Incarnation)
}

// ParseTrailer reads the Trailer at the start of b, the Payload of a decoded
// RECV or ACK. ok is true iff b holds at least TrailerLen bytes, starts with
// the mark "gt" and has a version of at least 1; bytes after the twelve are
// ignored (room for later versions). It never panics and does not allocate.
func ParseTrailer(b []byte) (t Trailer, ok bool) {
	if len(b) < TrailerLen || string(b[:len(trailerMark)]) != trailerMark || b[2] < 1 {
		return Trailer{}, false
	}
	return Trailer{Version: b[2], Flags: b[3], Incarnation: binary.BigEndian.Uint64(b[4:TrailerLen])}, true
}

// ExtHeaderLen is the length of an ExtHeader on the wire, after the Ext type
// identifier.
const ExtHeaderLen = 10

// ExtHeader opens every EXT datagram. On the wire:
//
//	MAGIC ‖ EXT ‖ version(1) ‖ flags(1) ‖ incarnation(8, big-endian) ‖ record*
//
// where the header is the ExtHeaderLen bytes after the type identifier and
// zero or more records (see Record) follow it to the end of the datagram.
type ExtHeader struct {
	// Version is ExtVersion; a datagram of any other version does not decode.
	Version uint8
	// Flags are reserved: sent as 0, ignored on receipt.
	Flags uint8
	// Incarnation is the sending endpoint's, as in Trailer.
	Incarnation uint64
}

// AppendExt appends MAGIC ‖ EXT ‖ h to dst and returns the extended buffer;
// the caller then appends records with AppendData, AppendFrag and
// AppendIDs. It writes h.Version and h.Flags as given. It allocates only if
// dst has too little capacity.
//
// AppendExt panics if f.Ext is empty: a Format without the extension cannot
// send EXT datagrams.
func (f Format) AppendExt(dst []byte, h ExtHeader) []byte {
	if len(f.Ext) == 0 {
		panic("wire: AppendExt under a Format without an Ext type identifier")
	}
	dst = append(dst, f.Magic...)
	dst = append(dst, f.Ext...)
	dst = append(dst, h.Version, h.Flags)
	return binary.BigEndian.AppendUint64(dst, h.Incarnation)
}

// ExtOverhead returns the length of an EXT datagram with no records:
// len(Magic) + len(Ext) + ExtHeaderLen.
func (f Format) ExtOverhead() int { return len(f.Magic) + len(f.Ext) + ExtHeaderLen }

// RecordType is the type byte of a record in an EXT datagram.
type RecordType uint8

// The record types of version 1. A receiver skips records of any other type,
// so later versions can add types.
const (
	// RecData carries one message: body id(4) ‖ payload.
	RecData RecordType = 1 + iota
	// RecFrag carries a piece of a message: body id(4) ‖ msg(4) ‖
	// total(uvarint) ‖ offset(uvarint) ‖ payload (at least 1 byte).
	RecFrag
	// RecRecv confirms DATA and FRAG ids: body id(4) × n, n ≥ 1.
	RecRecv
	// RecAck confirms RECV ids: body id(4) × n, n ≥ 1.
	RecAck
)

// String returns "DATA", "FRAG", "RECV" or "ACK", or "RecordType(n)" for
// any other value.
func (t RecordType) String() string {
	switch t {
	case RecData:
		return "DATA"
	case RecFrag:
		return "FRAG"
	case RecRecv:
		return "RECV"
	case RecAck:
		return "ACK"
	}
	return fmt.Sprintf("RecordType(%d)", uint8(t))
}

// MaxMessage bounds a FRAG record's total: a sanity limit of the format.
// An endpoint applies its own, smaller one.
const MaxMessage uint64 = 1 << 40

// Record is one record of an EXT datagram. On the wire:
//
//	type(1) ‖ length(uvarint) ‖ body(length)
//
// with the body laid out as the RecordType constants say. Every uvarint is
// canonical (the shortest encoding); any other encoding is malformed, so
// that parsing and re-encoding give back the same bytes.
//
// Payload and IDs alias the datagram the record was parsed from.
type Record struct {
	Type    RecordType
	ID      ID     // DATA, FRAG: the exchange id, RECV'd and ACK'd like any
	Msg     ID     // FRAG: the message this piece belongs to
	Total   uint64 // FRAG: the whole message's length
	Offset  uint64 // FRAG: where Payload goes in the message
	Payload []byte // DATA, FRAG
	IDs     []byte // RECV, ACK: NumIDs() ids of IDLen bytes each
}

// NumIDs returns the number of ids of a RECV or ACK record.
func (r Record) NumIDs() int { return len(r.IDs) / IDLen }

// IDAt returns the i-th id of a RECV or ACK record. It panics if i is not
// in [0, NumIDs()).
func (r Record) IDAt(i int) ID { return ID(r.IDs[i*IDLen : (i+1)*IDLen]) }

// Records iterates over the records of an EXT datagram that ParseExt
// accepted, skipping types it does not know. A Records is used by one
// goroutine; it does not allocate.
type Records struct {
	b []byte // the records not yet returned
}

// Next returns the next record of a known type, or false when there is
// none left. It never fails: ParseExt has checked every record.
func (r *Records) Next() (Record, bool) {
	for len(r.b) > 0 {
		rec, rest, _ := parseRecord(r.b)
		r.b = rest
		if rec.Type >= RecData && rec.Type <= RecAck {
			return rec, true
		}
	}
	return Record{}, false
}

// ParseExt validates the Payload of a decoded EXT packet (the bytes after
// the type identifier) completely and returns its header and an iterator
// over its records. If any record does not parse, the datagram is malformed
// as a whole and ParseExt returns an error, which matches ErrForeign (one of
// ErrTruncated, ErrExtVersion, ErrMalformed): none of it may be used.
//
// Records and what they return alias payload. ParseExt never panics and does
// not allocate.
func ParseExt(payload []byte) (ExtHeader, Records, error) {
	if len(payload) < ExtHeaderLen {
		return ExtHeader{}, Records{}, ErrTruncated
	}
	h := ExtHeader{Version: payload[0], Flags: payload[1], Incarnation: binary.BigEndian.Uint64(payload[2:ExtHeaderLen])}
	if h.Version != ExtVersion {
		return ExtHeader{}, Records{}, ErrExtVersion
	}
	recs := payload[ExtHeaderLen:]
	for b := recs; len(b) > 0; {
		var ok bool
		if _, b, ok = parseRecord(b); !ok {
			return ExtHeader{}, Records{}, ErrMalformed
		}
	}
	return h, Records{b: recs}, nil
}

// parseRecord parses the record at the start of b, which is not empty, and
// returns it with the bytes after it. A record of an unknown type comes back
// with only its Type set. ok is false, and rest nil, if the record is
// malformed.
func parseRecord(b []byte) (r Record, rest []byte, ok bool) {
	r.Type = RecordType(b[0])
	n, body, ok := uvarint(b[1:])
	if !ok || n > uint64(len(body)) {
		return Record{}, nil, false
	}
	body, rest = body[:n], body[n:]
	switch r.Type {
	case RecData:
		if len(body) < IDLen {
			return Record{}, nil, false
		}
		r.ID, r.Payload = ID(body), body[IDLen:]
	case RecFrag:
		// The shortest FRAG: ids, a 1-byte total and offset, 1 byte of payload.
		if len(body) < 2*IDLen+3 {
			return Record{}, nil, false
		}
		r.ID, r.Msg = ID(body), ID(body[IDLen:])
		var ok1, ok2 bool
		r.Total, body, ok1 = uvarint(body[2*IDLen:])
		r.Offset, r.Payload, ok2 = uvarint(body)
		// p ≤ Total is checked before Total-p, so the subtraction cannot wrap.
		p := uint64(len(r.Payload))
		if !ok1 || !ok2 || r.Total > MaxMessage || p == 0 || p > r.Total || r.Offset > r.Total-p {
			return Record{}, nil, false
		}
	case RecRecv, RecAck:
		if len(body) == 0 || len(body)%IDLen != 0 {
			return Record{}, nil, false
		}
		r.IDs = body
	}
	return r, rest, true
}

// uvarint reads a canonical uvarint off the front of b and returns it with
// the bytes after it; ok is false if b does not start with one (truncated,
// over 64 bits, or longer than needed).
func uvarint(b []byte) (v uint64, rest []byte, ok bool) {
	v, n := binary.Uvarint(b)
	// Only the shortest encoding ends in a zero byte when it is the value 0.
	if n <= 0 || (n > 1 && b[n-1] == 0) {
		return 0, nil, false
	}
	return v, b[n:], true
}

// uvarintLen returns the length of the canonical uvarint of x: one byte per
// 7 significant bits, and one for 0.
func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

// AppendData appends a DATA record carrying payload under id to dst and
// returns the extended buffer; DataLen(len(payload)) bytes. It allocates
// only if dst has too little capacity.
func AppendData(dst []byte, id ID, payload []byte) []byte {
	dst = append(dst, byte(RecData))
	dst = binary.AppendUvarint(dst, uint64(IDLen+len(payload)))
	dst = append(dst, id[:]...)
	return append(dst, payload...)
}

// AppendFrag appends a FRAG record to dst and returns the extended buffer;
// FragLen(total, offset, len(payload)) bytes. payload is the piece of the
// total-byte message msg that starts at offset; id is the piece's own
// exchange id. It allocates only if dst has too little capacity.
//
// AppendFrag panics if the record would be malformed (empty payload,
// offset+len(payload) > total, or total > MaxMessage): a receiver would drop
// the whole datagram.
func AppendFrag(dst []byte, id, msg ID, total, offset uint64, payload []byte) []byte {
	return append(AppendFragHeader(dst, id, msg, total, offset, len(payload)), payload...)
}

// AppendFragHeader appends what AppendFrag would append for an n-byte
// payload, but the payload: the record's first FragLen(total, offset, n) -
// n bytes, which the payload's n complete. A writer that can gather
// (sendmsg with two iovecs) sends the payload from where it is, uncopied.
// It panics as AppendFrag does.
func AppendFragHeader(dst []byte, id, msg ID, total, offset uint64, n int) []byte {
	p := uint64(n)
	if total > MaxMessage || n <= 0 || p > total || offset > total-p {
		panic(fmt.Sprintf("wire: AppendFrag of %d bytes at offset %d of a %d-byte message", n, offset, total))
	}
	dst = append(dst, byte(RecFrag))
	dst = binary.AppendUvarint(dst, uint64(fragBody(total, offset, n)))
	dst = append(dst, id[:]...)
	dst = append(dst, msg[:]...)
	dst = binary.AppendUvarint(dst, total)
	return binary.AppendUvarint(dst, offset)
}

// AppendIDs appends a RECV or ACK record of ids to dst and returns the
// extended buffer; IDsLen(len(ids)) bytes. It allocates only if dst has too
// little capacity. It panics if t is not RecRecv or RecAck, or ids is empty.
func AppendIDs(dst []byte, t RecordType, ids []ID) []byte {
	if (t != RecRecv && t != RecAck) || len(ids) == 0 {
		panic(fmt.Sprintf("wire: AppendIDs of %d ids in a %v record", len(ids), t))
	}
	dst = append(dst, byte(t))
	dst = binary.AppendUvarint(dst, uint64(IDLen*len(ids)))
	for _, id := range ids {
		dst = append(dst, id[:]...)
	}
	return dst
}

// recordLen returns the length on the wire of a record with a body of n bytes.
func recordLen(n int) int { return 1 + uvarintLen(uint64(n)) + n }

// fragBody returns the body length of a FRAG record.
func fragBody(total, offset uint64, payload int) int {
	return 2*IDLen + uvarintLen(total) + uvarintLen(offset) + payload
}

// DataLen returns the length on the wire of a DATA record with a payload of
// payload bytes.
func DataLen(payload int) int { return recordLen(IDLen + payload) }

// FragLen returns the length on the wire of a FRAG record with these fields
// and a payload of payload bytes.
func FragLen(total, offset uint64, payload int) int {
	return recordLen(fragBody(total, offset, payload))
}

// IDsLen returns the length on the wire of a RECV or ACK record of n ids.
func IDsLen(n int) int { return recordLen(IDLen * n) }

// maxBody returns the longest body whose record fits in room bytes, or a
// negative number if not even an empty one does.
func maxBody(room int) int {
	r := max(room, 1) - 1 // after the type byte; max keeps MinInt from wrapping
	// The length of r is never shorter than that of the answer, so b fits;
	// and the answer's length is at most one byte shorter than r's (r is
	// within 10 of b), so b+1 is the only other candidate.
	b := r - uvarintLen(uint64(r))
	if b+1+uvarintLen(uint64(b+1)) <= r {
		b++
	}
	return b
}

// MaxIDs returns the most ids whose RECV or ACK record fits in room bytes,
// or 0 if not even one does.
func MaxIDs(room int) int {
	b := maxBody(room)
	if b < IDLen {
		return 0
	}
	return b / IDLen
}

// MaxDataPayload returns the largest payload whose DATA record fits in room
// bytes, or -1 if not even an empty one does.
func MaxDataPayload(room int) int {
	p := maxBody(room) - IDLen
	if p < 0 {
		return -1
	}
	return p
}

// MaxFragPayload returns the largest payload whose FRAG record with this
// total and offset fits in room bytes, or 0 if not even one byte does. It
// does not bound the payload by total-offset: that is the caller's.
func MaxFragPayload(room int, total, offset uint64) int {
	p := maxBody(room) - fragBody(total, offset, 0)
	if p < 1 {
		return 0
	}
	return p
}
