package actor_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gtudp/gtudp"
	"github.com/gtudp/gtudp/actor/actortest"
)

// TestEndpoint_LossyRelay sends through a real-socket relay that drops 30%
// of the datagrams each way, duplicates and reorders others: every message
// is delivered exactly once and has a success receipt. Then the relay is
// cut: every message fails.
func TestEndpoint_LossyRelay(t *testing.T) {
	const n = 2000
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b := listen(t, "udp4", "127.0.0.1:0", nil)
	relay, err := actortest.NewRelay("127.0.0.1:0", b.LocalAddr(), actortest.RelayConfig{
		Loss: 0.3, Duplicate: 0.1, Reorder: 0.1, Jitter: time.Millisecond,
	}, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	// 30 attempts: a message fails only if 30 exchanges in a row lose the
	// DATA or the RECV (0.51^30 ≈ 2e-9), so a failure here is a bug.
	const lifetime = 3 * time.Second
	a := listen(t, "udp4", "127.0.0.1:0", &gtudp.Config{MaxAttempts: 30, Lifetime: time.Minute})

	got := make(chan gtudp.Message, n)
	go func() {
		for m := range b.Inbox() {
			got <- m
		}
	}()
	go func() {
		for i := range n {
			m := gtudp.Message{Addr: relay.Addr(), Data: binary.BigEndian.AppendUint32(nil, uint32(i))}
			select {
			case a.Outbox() <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	receipts := make(chan error, 1)
	go func() {
		for range n {
			select {
			case r := <-a.Receipts():
				if r.Err != nil {
					receipts <- fmt.Errorf("receipt %+v", r)
					return
				}
			case <-ctx.Done():
				receipts <- errors.New("timed out waiting for receipts")
				return
			}
		}
		receipts <- nil
	}()
	if err := <-receipts; err != nil {
		t.Fatalf("%v; sender %+v", err, a.Stats())
	}
	// Every success receipt means b has delivered: all n are in got.
	seen := make([]bool, n)
	for range n {
		m := <-got
		i := binary.BigEndian.Uint32(m.Data)
		if seen[i] {
			t.Fatalf("message %d delivered twice", i)
		}
		seen[i] = true
	}
	st, rs := a.Stats(), relay.Stats()
	t.Logf("relay %+v; sender re-sent %d DATA for %d messages", rs, st.DataResent, n)
	if rs.Dropped == 0 || rs.Duplicated == 0 || rs.Reordered == 0 {
		t.Fatalf("the relay did not drop, duplicate and reorder: %+v", rs)
	}

	// Cut: a sender with a short Lifetime gets a failure for each message.
	// (That it comes at the Lifetime exactly is tested on the mock clock,
	// in package peer.)
	c := listen(t, "udp4", "127.0.0.1:0", &gtudp.Config{Lifetime: lifetime})
	cfg := relay.Config()
	cfg.Cut = true
	relay.SetConfig(cfg)
	const cut = 100
	for i := range cut {
		c.Outbox() <- gtudp.Message{Addr: relay.Addr(), Data: []byte{byte(i)}}
	}
	for range cut {
		select {
		case r := <-c.Receipts():
			if !errors.Is(r.Err, gtudp.ErrUndelivered) {
				t.Fatalf("receipt through the cut relay %+v, want ErrUndelivered", r)
			}
		case <-ctx.Done():
			t.Fatal("timed out waiting for failure receipts")
		}
	}
}
