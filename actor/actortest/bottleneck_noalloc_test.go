//go:build !race

// The race detector makes values escape that otherwise stay on the stack,
// so allocation counts are checked without it.

package actortest_test

import (
	"testing"

	"github.com/benbjohnson/clock"
	"github.com/gtudp/gtudp/actor/actortest"
)

func TestBottleneck_StatsNoAllocs(t *testing.T) {
	n := actortest.NewNetwork(clock.NewMock())
	bn := actortest.NewBottleneck(1_000_000, 1000)
	n.SetDefaultLink(actortest.Link{Bottleneck: bn})
	a := listen(t, n, "10.0.0.1:1")
	sendBytes(t, a, a, []byte("x"))
	if allocs := testing.AllocsPerRun(100, func() { bn.Stats() }); allocs != 0 {
		t.Fatalf("Stats allocates %v times", allocs)
	}
}
