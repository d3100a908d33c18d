package peer

import (
	"encoding/binary"

	"github.com/gtudp/gtudp/wire"
)

// idSequence hands out the 4-byte ids of a peer's outgoing messages: a
// counter from a random start, passed through a keyed 4-round Feistel
// permutation of 32 bits. Being a permutation, it repeats no id until 2^32
// messages have gone to the peer — far beyond any dedupe horizon, so a
// receiver never mistakes a new message for a remembered one, which random
// ids would risk after a few tens of thousands (the birthday bound) — while
// the keys, drawn at random per peer, leave an off-path host nothing to
// predict.
type idSequence struct {
	next uint32
	keys [4]uint32
}

func newIDSequence(seed [5]uint32) idSequence {
	return idSequence{next: seed[0], keys: [4]uint32(seed[1:])}
}

func (s *idSequence) id() wire.ID {
	x := s.next
	s.next++
	l, r := uint16(x>>16), uint16(x)
	for _, k := range s.keys {
		l, r = r, l^round(r, k)
	}
	var id wire.ID
	binary.BigEndian.PutUint32(id[:], uint32(l)<<16|uint32(r))
	return id
}

// round is the Feistel round function: any function makes a permutation;
// this one mixes all key bits into each output bit.
func round(r uint16, k uint32) uint16 {
	h := (uint32(r) ^ k) * 0x9e3779b1
	h ^= h >> 15
	h *= 0x85ebca77
	return uint16(h >> 16)
}
