package peer_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/gtudp/gtudp/peer"
)

// Messages parked while the probe asks whether the peer speaks the
// extension count apart from the backlog in Hungry, up to maxParked (1
// MiB), which they may not reach.
func TestState_HungryCountsParkedApart(t *testing.T) {
	a := peer.NewState(extParams(1), remote, epoch, [5]uint32{1}, true)
	send := func(n int) {
		t.Helper()
		if err := a.Send(epoch, peer.Outgoing{ID: uuid.New(), Data: make([]byte, n)}); err != nil {
			t.Fatal(err)
		}
	}
	send(1 << 19)
	if !a.Hungry() {
		t.Fatal("not hungry with only half a MiB parked")
	}
	send(1 << 19)
	if a.Hungry() {
		t.Fatal("hungry with 1 MiB parked")
	}
	if n := len(a.TakeDatagrams(nil)); n != 1 {
		t.Fatalf("%d datagrams, want the probe alone: both messages parked", n)
	}
}
