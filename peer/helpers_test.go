package peer_test

import (
	"fmt"
	"time"

	"github.com/gtudp/gtudp/peer"
	"github.com/gtudp/gtudp/wire"
)

// testParams are small, quick limits for the tests. Params have no
// defaults: every field is set.
func testParams() *peer.Params {
	return &peer.Params{
		Format:        wire.DefaultFormat(),
		InitialRTO:    100 * time.Millisecond,
		MinRTO:        10 * time.Millisecond,
		MaxRTO:        400 * time.Millisecond,
		MaxAttempts:   5,
		Lifetime:      time.Hour,
		RecvAttempts:  3,
		DedupeHorizon: 10 * time.Second,
		Window:        4,
		RecvWindow:    8,
		HoldLimit:     2,
		DedupeLimit:   100,
		MaxMessage:    1 << 20,
	}
}

// fataler is what decode needs of a test: *testing.T, *rapid.T, or panics.
type fataler interface {
	Fatalf(format string, args ...any)
}

// panics is a fataler for code without a test at hand.
type panics struct{}

func (panics) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

// decode decodes datagrams the state wrote, under the default format.
func decode(t fataler, dgrams [][]byte) []wire.Packet {
	var pkts []wire.Packet
	for _, b := range dgrams {
		p, err := wire.DefaultFormat().Decode(b)
		if err != nil {
			t.Fatalf("the state wrote %x, which does not decode: %v", b, err)
		}
		p.Payload = append([]byte(nil), p.Payload...) // the datagram is reused
		pkts = append(pkts, p)
	}
	return pkts
}
