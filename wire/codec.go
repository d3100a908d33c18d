package wire

import "bytes"

// Packet is one decoded gtUDP packet.
type Packet struct {
	Kind Kind
	ID   ID
	// Payload is everything after the ID. For Data it is the message. For
	// Recv and Ack it is trailing bytes that the protocol ignores, as the
	// original does; gtudp puts a Trailer there (see ParseTrailer). For Ext
	// (whose ID is zero) it is everything after the type identifier: the
	// EXT header and records, for ParseExt.
	Payload []byte
}

// Append appends the encoding of p under f to dst and returns the extended
// buffer. It allocates only if dst has too little capacity. It does not check
// the datagram size: see MaxPayload.
//
// Append panics if p.Kind is not Data, Recv or Ack (Ext included: see
// AppendExt): that is a programming error, not bad input.
func (f Format) Append(dst []byte, p Packet) []byte {
	typ := f.typeOf(p.Kind)
	if typ == nil {
		panic("wire: Append of a packet with invalid " + p.Kind.String())
	}
	dst = append(dst, f.Magic...)
	dst = append(dst, typ...)
	dst = append(dst, p.ID[:]...)
	return append(dst, p.Payload...)
}

// Decode parses one datagram under f. The returned Payload aliases b; Decode
// does not copy or allocate.
//
// Under a Format with a non-nil Ext, an EXT datagram decodes to Kind Ext
// once its header is complete and of version ExtVersion; its records are
// not looked at (ParseExt does that).
//
// A datagram that is not a gtUDP packet under f gives an error matching
// ErrForeign (and one of ErrNotMagic, ErrUnknownType, ErrTruncated,
// ErrExtVersion); Decode never panics, whatever b holds.
func (f Format) Decode(b []byte) (Packet, error) {
	if !bytes.HasPrefix(b, f.Magic) {
		return Packet{}, ErrNotMagic
	}
	rest := b[len(f.Magic):]
	n := len(f.Data)
	if len(rest) < n {
		return Packet{}, ErrTruncated
	}
	var p Packet
	switch typ := rest[:n]; {
	case bytes.Equal(typ, f.Data):
		p.Kind = Data
	case bytes.Equal(typ, f.Recv):
		p.Kind = Recv
	case bytes.Equal(typ, f.Ack):
		p.Kind = Ack
	case bytes.Equal(typ, f.Ext):
		// A nil Ext never matches: typ is not empty under a valid Format,
		// and an empty typ has matched Data above.
		return decodeExt(rest[n:])
	default:
		return Packet{}, ErrUnknownType
	}
	if len(rest) < n+IDLen {
		return Packet{}, ErrTruncated
	}
	p.ID = ID(rest[n : n+IDLen])
	p.Payload = rest[n+IDLen:]
	return p, nil
}

// decodeExt checks the EXT header at the start of b, the bytes after the
// type identifier.
func decodeExt(b []byte) (Packet, error) {
	if len(b) < ExtHeaderLen {
		return Packet{}, ErrTruncated
	}
	if b[0] != ExtVersion {
		return Packet{}, ErrExtVersion
	}
	return Packet{Kind: Ext, Payload: b}, nil
}
