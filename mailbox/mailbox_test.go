package mailbox_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/gtudp/gtudp/mailbox"
	"pgregory.net/rapid"
)

func TestMailbox_TryPutFullAndDrain(t *testing.T) {
	m := mailbox.New[int](3)
	for i := range 3 {
		if err := m.TryPut(i); err != nil {
			t.Fatalf("TryPut(%d) = %v", i, err)
		}
	}
	if err := m.TryPut(3); err != mailbox.ErrFull {
		t.Fatalf("TryPut on a full box = %v, want ErrFull", err)
	}
	if got := m.Drain(nil, 0); !slices.Equal(got, []int{0, 1, 2}) {
		t.Fatalf("Drain = %v, want [0 1 2]", got)
	}
	if got := m.Drain(nil, 0); len(got) != 0 {
		t.Fatalf("second Drain = %v, want nothing", got)
	}
	if err := m.TryPut(3); err != nil {
		t.Fatalf("TryPut after Drain = %v", err)
	}
}

func TestMailbox_DrainMax(t *testing.T) {
	m := mailbox.New[int](10)
	for i := range 5 {
		m.TryPut(i)
	}
	<-m.Ready()
	if got := m.Drain(nil, 2); !slices.Equal(got, []int{0, 1}) {
		t.Fatalf("Drain(max 2) = %v, want [0 1]", got)
	}
	// Items are left, so the owner must be told to come back.
	select {
	case <-m.Ready():
	default:
		t.Fatal("no Ready token while items remain after a partial Drain")
	}
	if got := m.Drain([]int{-1}, 0); !slices.Equal(got, []int{-1, 2, 3, 4}) {
		t.Fatalf("Drain appending = %v, want [-1 2 3 4]", got)
	}
}

func TestMailbox_ReadySignalledOnFirstPut(t *testing.T) {
	m := mailbox.New[int](4)
	select {
	case <-m.Ready():
		t.Fatal("Ready token on an empty new mailbox")
	default:
	}
	m.TryPut(1)
	m.TryPut(2)
	select {
	case <-m.Ready():
	default:
		t.Fatal("no Ready token after a put into an empty box")
	}
	m.Drain(nil, 0)
	m.TryPut(3)
	select {
	case <-m.Ready():
	default:
		t.Fatal("no Ready token after the box emptied and filled again")
	}
}

// The ring buffer wraps around and grows while items are in it.
func TestMailbox_WrapAndGrowKeepsOrder(t *testing.T) {
	m := mailbox.New[int](100)
	next, want := 0, 0
	for round := range 50 {
		for range round%13 + 1 {
			if m.TryPut(next) == nil {
				next++
			}
		}
		for _, v := range m.Drain(nil, round%7+1) {
			if v != want {
				t.Fatalf("round %d: drained %d, want %d", round, v, want)
			}
			want++
		}
	}
}

func TestMailbox_PutWaitsForRoom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := mailbox.New[int](1)
		m.TryPut(1)
		done := make(chan error)
		go func() { done <- m.Put(context.Background(), 2) }()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("Put on a full box returned %v without waiting", err)
		default:
		}
		m.Drain(nil, 0)
		if err := <-done; err != nil {
			t.Fatalf("Put = %v after room appeared", err)
		}
		if got := m.Drain(nil, 0); !slices.Equal(got, []int{2}) {
			t.Fatalf("Drain = %v, want [2]", got)
		}
	})
}

func TestMailbox_PutHonoursContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := mailbox.New[int](1)
		m.TryPut(1)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- m.Put(ctx, 2) }()
		synctest.Wait()
		cancel()
		if err := <-done; err != context.Canceled {
			t.Fatalf("Put = %v after cancel, want context.Canceled", err)
		}
		if got := m.Drain(nil, 0); !slices.Equal(got, []int{1}) {
			t.Fatalf("Drain = %v, want only [1]: the cancelled item must not be queued", got)
		}
	})
}

func TestMailbox_PutWithRoomWinsOverCancelledContext(t *testing.T) {
	m := mailbox.New[int](1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.Put(ctx, 1); err != nil {
		t.Fatalf("Put with room and a cancelled ctx = %v, want nil", err)
	}
}

func TestMailbox_CloseWakesBlockedPuts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := mailbox.New[int](1)
		m.TryPut(1)
		errs := make(chan error, 3)
		for i := range 3 {
			go func() { errs <- m.Put(context.Background(), 10+i) }()
		}
		synctest.Wait()
		m.Close()
		for range 3 {
			if err := <-errs; err != mailbox.ErrClosed {
				t.Fatalf("blocked Put after Close = %v, want ErrClosed", err)
			}
		}
		if err := m.TryPut(5); err != mailbox.ErrClosed {
			t.Fatalf("TryPut after Close = %v, want ErrClosed", err)
		}
		if err := m.Put(context.Background(), 5); err != mailbox.ErrClosed {
			t.Fatalf("Put after Close = %v, want ErrClosed", err)
		}
		// What was accepted before Close is still there for the owner.
		if got := m.Drain(nil, 0); !slices.Equal(got, []int{1}) {
			t.Fatalf("Drain after Close = %v, want [1]", got)
		}
		m.Close() // idempotent
		if err := m.TryPut(6); err != mailbox.ErrClosed {
			t.Fatalf("TryPut after a second Close = %v, want ErrClosed", err)
		}
	})
}

func TestMailbox_CloseIfEmpty(t *testing.T) {
	m := mailbox.New[int](2)
	m.TryPut(1)
	if m.CloseIfEmpty() {
		t.Fatal("CloseIfEmpty closed a box with an item in it")
	}
	if err := m.TryPut(2); err != nil {
		t.Fatalf("TryPut after a refused CloseIfEmpty = %v", err)
	}
	m.Drain(nil, 0)
	if !m.CloseIfEmpty() {
		t.Fatal("CloseIfEmpty refused an empty box")
	}
	if err := m.TryPut(3); err != mailbox.ErrClosed {
		t.Fatalf("TryPut after CloseIfEmpty = %v, want ErrClosed", err)
	}
}

func TestMailbox_Shrink(t *testing.T) {
	m := mailbox.New[int](64)
	for i := range 64 {
		m.TryPut(i)
	}
	m.Shrink() // not empty: must keep the items
	if got := m.Drain(nil, 0); len(got) != 64 || got[63] != 63 {
		t.Fatalf("Shrink of a full box lost items: %d left", len(got))
	}
	m.Shrink()
	m.TryPut(7)
	if got := m.Drain(nil, 0); !slices.Equal(got, []int{7}) {
		t.Fatalf("after Shrink, Drain = %v, want [7]", got)
	}
}

func TestNew_PanicsOnZeroCapacity(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New(0) did not panic")
		}
	}()
	mailbox.New[int](0)
}

// Many producers, blocking and non-blocking, race a closing owner. Every
// item is either refused (the producer saw an error) or drained exactly once.
func TestMailbox_ConcurrentProducersLoseNothing(t *testing.T) {
	const producers, each = 8, 2000
	m := mailbox.New[int](16)
	var wg sync.WaitGroup
	accepted := make([][]int, producers)
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				v := p*each + i
				var err error
				if i%2 == 0 {
					err = m.Put(context.Background(), v)
				} else {
					err = m.TryPut(v)
				}
				switch {
				case err == nil:
					accepted[p] = append(accepted[p], v)
				case errors.Is(err, mailbox.ErrClosed):
					return
				case errors.Is(err, mailbox.ErrFull):
				default:
					t.Errorf("put: %v", err)
					return
				}
			}
		}()
	}

	seen := make(map[int]bool)
	var got []int
	for len(seen) < producers*each/4 {
		<-m.Ready()
		got = m.Drain(got[:0], 5)
		for _, v := range got {
			if seen[v] {
				t.Fatalf("item %d drained twice", v)
			}
			seen[v] = true
		}
	}
	m.Close()
	wg.Wait()
	for _, v := range m.Drain(nil, 0) {
		if seen[v] {
			t.Fatalf("item %d drained twice", v)
		}
		seen[v] = true
	}

	n := 0
	for p := range producers {
		last := -1
		for _, v := range accepted[p] {
			if !seen[v] {
				t.Fatalf("accepted item %d never drained", v)
			}
			if v <= last {
				t.Fatalf("producer %d: items out of order", p)
			}
			last = v
		}
		n += len(accepted[p])
	}
	if n != len(seen) {
		t.Fatalf("drained %d items but producers had %d accepted", len(seen), n)
	}
}

// mailboxMachine checks the Mailbox against a slice model under random
// sequences of puts, drains and closes.
type mailboxMachine struct {
	m      *mailbox.Mailbox[int]
	model  []int
	cap    int
	next   int
	closed bool
}

func (mm *mailboxMachine) TryPut(t *rapid.T) {
	err := mm.m.TryPut(mm.next)
	switch {
	case mm.closed:
		if err != mailbox.ErrClosed {
			t.Fatalf("TryPut after close = %v", err)
		}
	case len(mm.model) == mm.cap:
		if err != mailbox.ErrFull {
			t.Fatalf("TryPut on full = %v", err)
		}
	default:
		if err != nil {
			t.Fatalf("TryPut with room = %v", err)
		}
		mm.model = append(mm.model, mm.next)
	}
	mm.next++
}

func (mm *mailboxMachine) Put(t *rapid.T) {
	if !mm.closed && len(mm.model) == mm.cap {
		t.Skip("Put would block")
	}
	err := mm.m.Put(context.Background(), mm.next)
	if mm.closed {
		if err != mailbox.ErrClosed {
			t.Fatalf("Put after close = %v", err)
		}
	} else {
		if err != nil {
			t.Fatalf("Put with room = %v", err)
		}
		mm.model = append(mm.model, mm.next)
	}
	mm.next++
}

func (mm *mailboxMachine) Drain(t *rapid.T) {
	max := rapid.IntRange(0, mm.cap+1).Draw(t, "max")
	got := mm.m.Drain(nil, max)
	k := len(mm.model)
	if max > 0 && max < k {
		k = max
	}
	if !slices.Equal(got, mm.model[:k]) {
		t.Fatalf("Drain(%d) = %v, want %v", max, got, mm.model[:k])
	}
	mm.model = mm.model[k:]
}

func (mm *mailboxMachine) CloseIfEmpty(t *rapid.T) {
	ok := mm.m.CloseIfEmpty()
	if want := len(mm.model) == 0; ok != want {
		t.Fatalf("CloseIfEmpty = %v with %d items", ok, len(mm.model))
	}
	mm.closed = mm.closed || ok
}

func (mm *mailboxMachine) Close(t *rapid.T) {
	mm.m.Close()
	mm.closed = true
}

func (mm *mailboxMachine) Shrink(t *rapid.T) { mm.m.Shrink() }

func (mm *mailboxMachine) check(t *rapid.T) {
	if got := mm.m.Len(); got != len(mm.model) {
		t.Fatalf("Len() = %d, model has %d", got, len(mm.model))
	}
}

func TestMailbox_StateMachine(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		capacity := rapid.IntRange(1, 20).Draw(t, "cap")
		mm := &mailboxMachine{m: mailbox.New[int](capacity), cap: capacity}
		t.Repeat(map[string]func(*rapid.T){
			"TryPut":       mm.TryPut,
			"Put":          mm.Put,
			"Drain":        mm.Drain,
			"CloseIfEmpty": mm.CloseIfEmpty,
			"Close":        mm.Close,
			"Shrink":       mm.Shrink,
			"":             mm.check,
		})
	})
}

// Mailboxes sharing a ready channel: a put into any of them leaves the one
// token; the owner drains them all.
func TestNewShared(t *testing.T) {
	ready := make(chan struct{}, 1)
	a, b := mailbox.NewShared[int](4, ready), mailbox.NewShared[string](4, ready)
	if err := a.TryPut(1); err != nil {
		t.Fatal(err)
	}
	if err := b.TryPut("x"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ready:
	default:
		t.Fatal("no token after puts")
	}
	if got, got2 := a.Drain(nil, 0), b.Drain(nil, 0); len(got) != 1 || len(got2) != 1 {
		t.Fatalf("drained %v %v", got, got2)
	}
	if err := b.TryPut("y"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ready:
	default:
		t.Fatal("no token after a put into an emptied box")
	}
	for _, f := range []func(){
		func() { mailbox.NewShared[int](1, make(chan struct{})) },
		func() { mailbox.NewShared[int](0, ready) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		}()
	}
}

// A capacity of 1 is the smallest allowed, for NewShared as for New.
func TestNewShared_CapacityOne(t *testing.T) {
	m := mailbox.NewShared[int](1, make(chan struct{}, 1))
	if err := m.TryPut(1); err != nil {
		t.Fatalf("TryPut into an empty box of capacity 1 = %v", err)
	}
	if err := m.TryPut(2); err != mailbox.ErrFull {
		t.Fatalf("second TryPut = %v, want ErrFull", err)
	}
}

// A Drain that takes everything leaves no token behind: the owner is not
// woken for nothing.
func TestMailbox_FullDrainLeavesNoToken(t *testing.T) {
	m := mailbox.New[int](4)
	m.TryPut(1)
	m.TryPut(2)
	<-m.Ready()
	if got := m.Drain(nil, 2); !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("Drain(max 2) = %v, want [1 2]", got)
	}
	select {
	case <-m.Ready():
		t.Fatal("Ready token after a Drain that emptied the box")
	default:
	}
}
