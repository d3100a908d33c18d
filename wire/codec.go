package wire

import "bytes"

// Packet is one decoded gtUDP packet.
type Packet struct {
	Kind Kind
	ID   ID
	// Payload is everything after the ID. For Data it is the message. For
	// Recv and Ack it is trailing bytes that the protocol ignores, as the
	// original does (they are reserved for a compatible extension).
	Payload []byte
}

// Append appends the encoding of p under f to dst and returns the extended
// buffer. It allocates only if dst has too little capacity. It does not check
// the datagram size: see MaxPayload.
//
// Append panics if p.Kind is not Data, Recv or Ack: that is a programming
// error, not bad input.
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
// A datagram that is not a gtUDP packet under f gives an error matching
// ErrForeign (and one of ErrNotMagic, ErrUnknownType, ErrTruncated); Decode
// never panics, whatever b holds.
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
