package actor_test

import (
	"bytes"
	"context"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/gtudp/gtudp"
	"github.com/gtudp/gtudp/actor/actortest"
	"github.com/gtudp/gtudp/wire"
)

// A small message to a peer not yet known to speak the extension does not
// wait for the probe that large messages queued before it wait for: it
// fits a plain DATA, so it goes within a round trip even when the probe is
// lost. The peer here speaks only the original protocol (NoExtension), as
// the Python original does; the path loses the first probe, as 20% loss
// each way did in the interop runs against the original, where every
// message of a burst waited for the probe's re-send.
func TestOriginalPeer_SmallMessageNotHeldByLostProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mock := clock.NewMock()
		network := actortest.NewNetwork(mock)
		const oneWay = 5 * time.Millisecond
		var mu sync.Mutex
		probesDropped := 0
		network.SetFate(func(from, to netip.AddrPort, b []byte) actortest.Fate {
			mu.Lock()
			defer mu.Unlock()
			// The sender's first RECV is its probe: it has received no
			// DATA to answer.
			if p, err := wire.DefaultFormat().Decode(b); err == nil && p.Kind == wire.Recv && from.Port() == 1 && probesDropped == 0 {
				probesDropped++
				return actortest.Fate{Drop: true}
			}
			return actortest.Fate{Delay: oneWay}
		})
		ca, _ := network.Listen("10.0.0.1:1")
		cb, _ := network.Listen("10.0.0.2:2")
		a, err := gtudp.New(ca, &gtudp.Config{Clock: mock})
		if err != nil {
			t.Fatal(err)
		}
		b, err := gtudp.New(cb, &gtudp.Config{Clock: mock, NoExtension: true})
		if err != nil {
			t.Fatal(err)
		}
		small := []byte("small message")
		var smallAt time.Time
		delivered := make(chan struct{})
		go func() {
			for m := range b.Inbox() {
				if bytes.Equal(m.Data, small) {
					smallAt = mock.Now()
					close(delivered)
				}
			}
		}()
		start := mock.Now()
		// Two large messages, 80 KB together: both wait for the probe.
		for range 2 {
			a.Outbox() <- gtudp.Message{Addr: b.LocalAddr(), Data: make([]byte, 40_000)}
		}
		a.Outbox() <- gtudp.Message{Addr: b.LocalAddr(), Data: small}
		for waited := time.Duration(0); ; waited += time.Millisecond {
			synctest.Wait()
			select {
			case <-delivered:
			default:
				if waited > 10*time.Second {
					t.Fatal("small message not delivered within 10 s")
				}
				mock.Add(time.Millisecond)
				continue
			}
			break
		}
		mu.Lock()
		dropped := probesDropped
		mu.Unlock()
		if dropped != 1 {
			t.Fatalf("%d probes dropped, want 1", dropped)
		}
		// Its DATA needs half a round trip; allow four round trips.
		if took := smallAt.Sub(start); took > 8*oneWay {
			t.Errorf("small message delivered %v after it was sent, on a %v round trip: it waited for the large messages' probe", took, 2*oneWay)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		a.Close(ctx)
		b.Close(ctx)
	})
}
