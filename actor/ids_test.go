package actor

import (
	"testing"

	"github.com/google/uuid"
)

func TestNewID_IsRandomVersion4(t *testing.T) {
	seen := map[uuid.UUID]bool{}
	for range 1000 {
		id := newID()
		if id.Version() != 4 || id.Variant() != uuid.RFC4122 {
			t.Fatalf("%v: version %d, variant %v; want a version 4 RFC 4122 UUID", id, id.Version(), id.Variant())
		}
		if seen[id] {
			t.Fatalf("%v twice", id)
		}
		seen[id] = true
	}
}
