// Package wire is the gtUDP packet format: encoding, decoding and validation
// of the three packet kinds under a configurable Format, and of the gtudp
// extension (a trailer on RECV and ACK, and EXT datagrams of records) that
// only gtudp peers exchange.
//
// Every packet is
//
//	MAGIC ‖ TYPE ‖ ID ‖ PAYLOAD
//
// where MAGIC is an optional prefix of any length (empty by default), TYPE is
// one of three distinct type identifiers of equal length (0x1D, 0x5F, 0xAE by
// default), ID is the 4-byte packet identity chosen by the sender, and PAYLOAD
// is the message (DATA) or ignored trailing bytes (RECV, ACK). The default
// format is byte-for-byte the one of the Python original.
//
// The extension (see Trailer, ExtHeader and Record) adds a fourth type
// identifier, Format.Ext, that the original never receives: a Format whose
// Ext is nil decodes exactly as the original does.
//
// The package has no goroutines, does no I/O and keeps no state: a Format is a
// plain value, safe for concurrent use as long as nobody modifies its slices.
// Encoding appends into the caller's buffer and decoding returns slices of the
// caller's datagram; neither allocates.
package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
)

// Kind is the kind of a gtUDP packet.
type Kind uint8

// The three packet kinds of the exchange DATA → RECV → ACK, and the
// extension datagram. Code that handles only the original protocol can
// switch over the first three: Decode returns Ext only under a Format with
// a non-nil Ext.
const (
	// Data carries a message; the receiver answers Recv.
	Data Kind = 1 + iota
	// Recv confirms a Data; the sender answers Ack.
	Recv
	// Ack confirms a Recv; it ends the exchange.
	Ack
	// Ext is an extension datagram between gtudp peers: its Payload is an
	// EXT header and records, read with ParseExt. Format.Append refuses it;
	// EXT datagrams are built with Format.AppendExt.
	Ext
)

// String returns "DATA", "RECV" or "ACK" (the names of the original's debug
// output), "EXT", or "Kind(n)" for any other value.
func (k Kind) String() string {
	switch k {
	case Data:
		return "DATA"
	case Recv:
		return "RECV"
	case Ack:
		return "ACK"
	case Ext:
		return "EXT"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// IDLen is the length of a packet identity on the wire.
const IDLen = 4

// ID is the 4-byte packet identity ("packet identity hash" in the original).
// It is opaque to the receiver; the sender chooses it.
type ID [IDLen]byte

// String returns the identity as 8 lower-case hex digits, as the original's
// debug output prints it.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// MaxDatagram is the largest UDP payload gtudp sends or expects: 65,535 bytes
// less the IPv4 and UDP headers. IPv6 allows 20 bytes more; gtudp uses one
// limit for both families so that a message that fits, fits on any path.
const MaxDatagram = 65507

// Format is the configurable part of the wire format: the magic prefix, the
// three type identifiers and, for the extension, a fourth. Both ends of a
// conversation must use the same Format. The zero Format is not valid; start
// from DefaultFormat.
//
// A Format holds slices: callers must not modify them while the Format is in
// use. Methods never modify the Format.
type Format struct {
	// Magic is an optional prefix of every packet, of any length.
	Magic []byte
	// Data, Recv and Ack are the type identifiers. They must be non-empty,
	// of the same length, and distinct.
	Data, Recv, Ack []byte
	// Ext is the type identifier of extension datagrams, or nil for none:
	// then Decode treats it as any unknown type (foreign), as the original
	// does. When set it must have the length of the other three and differ
	// from each; DeriveExt gives a default.
	Ext []byte
}

// DefaultFormat returns the format of the Python original: no magic prefix
// and the one-byte types 0x1D (DATA), 0x5F (RECV) and 0xAE (ACK).
func DefaultFormat() Format {
	return Format{Data: []byte{0x1d}, Recv: []byte{0x5f}, Ack: []byte{0xae}}
}

// Validate reports why f cannot be used, or nil. The error wraps
// ErrInvalidFormat and names the offending identifier. Ext is checked only
// when it is not nil.
func (f Format) Validate() error {
	all := [...]struct {
		kind Kind
		b    []byte
	}{{Data, f.Data}, {Recv, f.Recv}, {Ack, f.Ack}, {Ext, f.Ext}}
	types := all[:3]
	if f.Ext != nil {
		types = all[:]
	}
	for _, t := range types {
		if len(t.b) == 0 {
			return fmt.Errorf("%w: the %v type identifier is empty", ErrInvalidFormat, t.kind)
		}
	}
	for _, t := range types[1:] {
		if len(t.b) != len(f.Data) {
			return fmt.Errorf("%w: the %v type identifier is %d bytes but DATA is %d: all three must have the same length",
				ErrInvalidFormat, t.kind, len(t.b), len(f.Data))
		}
	}
	for i, a := range types {
		for _, b := range types[i+1:] {
			if bytes.Equal(a.b, b.b) {
				return fmt.Errorf("%w: the %v and %v type identifiers are both %x: they must differ",
					ErrInvalidFormat, a.kind, b.kind, a.b)
			}
		}
	}
	if f.HeaderLen() > MaxDatagram {
		return fmt.Errorf("%w: a %d-byte header does not fit in a %d-byte datagram",
			ErrInvalidFormat, f.HeaderLen(), MaxDatagram)
	}
	if f.Ext != nil && f.ExtOverhead() > MaxDatagram {
		return fmt.Errorf("%w: a %d-byte EXT header does not fit in a %d-byte datagram",
			ErrInvalidFormat, f.ExtOverhead(), MaxDatagram)
	}
	return nil
}

// HeaderLen returns the length of a packet with an empty payload: magic, type
// and ID.
func (f Format) HeaderLen() int { return len(f.Magic) + len(f.Data) + IDLen }

// MaxPayload returns the largest DATA payload that fits in one datagram of
// MaxDatagram bytes under f.
func (f Format) MaxPayload() int { return MaxDatagram - f.HeaderLen() }

// String describes f in the notation of the command-line flags, for example
// "magic= types=1d,5f,ae", followed by " ext=b8" when Ext is set.
func (f Format) String() string {
	s := fmt.Sprintf("magic=%x types=%x,%x,%x", f.Magic, f.Data, f.Recv, f.Ack)
	if f.Ext != nil {
		s += fmt.Sprintf(" ext=%x", f.Ext)
	}
	return s
}

// Clone returns a copy of f that shares no memory with it, so the caller can
// keep using its slices.
func (f Format) Clone() Format {
	return Format{
		Magic: bytes.Clone(f.Magic),
		Data:  bytes.Clone(f.Data),
		Recv:  bytes.Clone(f.Recv),
		Ack:   bytes.Clone(f.Ack),
		Ext:   bytes.Clone(f.Ext), // nil stays nil: no extension
	}
}

// typeOf returns the type identifier of k under f, or nil for a kind that
// Append does not encode (Ext included: its datagrams have a header of their
// own, written by AppendExt).
func (f Format) typeOf(k Kind) []byte {
	switch k {
	case Data:
		return f.Data
	case Recv:
		return f.Recv
	case Ack:
		return f.Ack
	}
	return nil
}

// Errors of this package. Every error a decode returns matches ErrForeign;
// the finer ones say why.
var (
	// ErrForeign matches every decode error: the datagram is not a gtUDP
	// packet under the format (a "non-gtUDP source" in the original).
	ErrForeign error = decodeError("gtudp: not a gtUDP packet")
	// ErrNotMagic: the datagram does not start with the magic prefix.
	ErrNotMagic error = decodeError("gtudp: datagram does not start with the magic prefix")
	// ErrUnknownType: the type identifier is none of the three.
	ErrUnknownType error = decodeError("gtudp: datagram has an unknown type identifier")
	// ErrTruncated: the magic matches but the datagram is too short to hold
	// a type identifier and a 4-byte ID (or, for EXT, the EXT header).
	ErrTruncated error = decodeError("gtudp: datagram shorter than a gtUDP header")
	// ErrExtVersion: an EXT datagram of a version this package does not
	// read (not ExtVersion).
	ErrExtVersion error = decodeError("gtudp: EXT datagram of an unknown version")
	// ErrMalformed: an EXT datagram whose records do not parse; none of it
	// may be used.
	ErrMalformed error = decodeError("gtudp: malformed EXT datagram")

	// ErrInvalidFormat is wrapped by the errors of Format.Validate.
	ErrInvalidFormat = errors.New("gtudp: invalid wire format")
	// ErrTooLarge: a message does not fit in one datagram with its header.
	ErrTooLarge = errors.New("gtudp: message too large for one UDP datagram")
)

// decodeError is a constant error that matches ErrForeign, so that decoding
// can say why without allocating.
type decodeError string

func (e decodeError) Error() string { return string(e) }

// Is reports every decode error as ErrForeign.
func (e decodeError) Is(target error) bool { return target == ErrForeign }
