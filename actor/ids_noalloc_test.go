//go:build !race

// The race detector makes values escape that otherwise stay on the stack,
// so allocation counts are checked without it (as CI's benchmark pass and a
// plain go test run do).

package actor

import "testing"

func TestNewID_NoAllocs(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { _ = newID() }); n != 0 {
		t.Fatalf("newID allocates %v times per call", n)
	}
}
