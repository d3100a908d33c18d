package mailbox_test

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/gtudp/gtudp/mailbox"
)

// item is the size of what the actors pass around (a decoded packet header
// and a payload slice).
type item struct {
	kind uint8
	_    [4]byte // the id
	data []byte
	_    int // the datagram's size
}

// The benchmarks below move b.N items from producers to one owner, through a
// Mailbox and through a plain buffered channel of the same capacity. The
// owner drains the mailbox in batches and receives from the channel one item
// at a time, as each would be used.

const benchCap = 1024

func consumeMailbox(m *mailbox.Mailbox[item], stop <-chan struct{}, done chan<- int) {
	var batch []item
	n := 0
	for {
		select {
		case <-m.Ready():
			batch = m.Drain(batch[:0], 0)
			n += len(batch)
		case <-stop:
			done <- n + len(m.Drain(batch[:0], 0))
			return
		}
	}
}

func consumeChannel(c chan item, stop <-chan struct{}, done chan<- int) {
	n := 0
	for {
		select {
		case <-c:
			n++
		case <-stop:
			for {
				select {
				case <-c:
					n++
				default:
					done <- n
					return
				}
			}
		}
	}
}

func BenchmarkMailbox_Put(b *testing.B) {
	m := mailbox.New[item](benchCap)
	stop, done := make(chan struct{}), make(chan int)
	go consumeMailbox(m, stop, done)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		it := item{kind: 1}
		for pb.Next() {
			m.Put(ctx, it)
		}
	})
	close(stop)
	<-done
}

func BenchmarkChannel_Send(b *testing.B) {
	c := make(chan item, benchCap)
	stop, done := make(chan struct{}), make(chan int)
	go consumeChannel(c, stop, done)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		it := item{kind: 1}
		for pb.Next() {
			c <- it
		}
	})
	close(stop)
	<-done
}

func BenchmarkMailbox_TryPut(b *testing.B) {
	m := mailbox.New[item](benchCap)
	stop, done := make(chan struct{}), make(chan int)
	go consumeMailbox(m, stop, done)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		it := item{kind: 1}
		for pb.Next() {
			m.TryPut(it)
		}
	})
	close(stop)
	reportDelivered(b, <-done)
}

func BenchmarkChannel_TrySend(b *testing.B) {
	c := make(chan item, benchCap)
	stop, done := make(chan struct{}), make(chan int)
	go consumeChannel(c, stop, done)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		it := item{kind: 1}
		for pb.Next() {
			select {
			case c <- it:
			default:
			}
		}
	})
	close(stop)
	reportDelivered(b, <-done)
}

// reportDelivered reports what share of the non-blocking puts reached the
// owner, and the time per delivered item: a full channel refuses puts very
// cheaply, so ns/op alone would flatter it.
func reportDelivered(b *testing.B, delivered int) {
	b.ReportMetric(float64(delivered)/float64(b.N), "delivered/op")
	if delivered > 0 {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(delivered), "ns/delivered")
	}
}

// TestNoAllocs fails when the non-blocking put or a drain into a buffer with
// room allocates once the ring has grown.
func TestNoAllocs(t *testing.T) {
	m := mailbox.New[item](benchCap)
	batch := make([]item, 0, benchCap)
	for range benchCap {
		m.TryPut(item{})
	}
	batch = m.Drain(batch[:0], 0) // the ring is at its full size now
	if len(batch) != benchCap || m.Len() != 0 {
		t.Fatalf("Drain of a full box took %d items and left %d, want %d and 0", len(batch), m.Len(), benchCap)
	}
	it := item{kind: 1, data: make([]byte, 8)}
	if n := testing.AllocsPerRun(1000, func() {
		m.TryPut(it)
		m.TryPut(it)
		batch = m.Drain(batch[:0], 0)
	}); n != 0 {
		t.Errorf("TryPut+Drain: %v allocs per run, want 0", n)
	}
	// In a bubble, so that a Put that waits where it should not fails the
	// test at once (a deadlock) instead of hanging it.
	synctest.Test(t, func(t *testing.T) {
		if n := testing.AllocsPerRun(1000, func() { m.Put(t.Context(), it); batch = m.Drain(batch[:0], 0) }); n != 0 {
			t.Errorf("Put with room: %v allocs per run, want 0", n)
		}
	})
}
