package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// errInterruptedAgain ends a drain cut short by a second interrupt.
var errInterruptedAgain = errors.New("interrupted again: quitting without waiting")

// interrupter turns the user's interrupts into two contexts: the first
// interrupt cancels the command's context (stop sending, drain briefly);
// the second cancels the abort context, which ends any drain at once.
// Its methods are safe for concurrent use.
type interrupter struct {
	mu    sync.Mutex
	n     int
	first context.CancelFunc
	abort context.CancelCauseFunc
}

type abortKey struct{}

// newInterrupter returns the command's context, canceled by the first
// interrupt and carrying the abort context that drainContext finds.
func newInterrupter(parent context.Context) (context.Context, *interrupter) {
	abort, cancelAbort := context.WithCancelCause(context.WithoutCancel(parent))
	ctx, cancel := context.WithCancel(context.WithValue(parent, abortKey{}, abort))
	return ctx, &interrupter{first: cancel, abort: cancelAbort}
}

// interrupt is one Ctrl-C: the first cancels the command's context, any
// later one the abort context too.
func (i *interrupter) interrupt() {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.n++
	i.first()
	if i.n > 1 {
		i.abort(errInterruptedAgain)
	}
}

// notifySignals feeds SIGINT and SIGTERM to i until stop is called. A
// command that does not honour the abort context (a bug) still ends: the
// process exits a second after the second interrupt.
func notifySignals(i *interrupter) (stop func()) {
	c := make(chan os.Signal, 2)
	signal.Notify(c, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		var f echoFilter
		for {
			select {
			case <-c:
				if !f.count(time.Now()) {
					continue
				}
				i.interrupt()
				if f.n == 2 {
					time.AfterFunc(time.Second, func() { os.Exit(130) })
				}
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(c); close(done) }
}

// echoWindow is how soon after an interrupt a signal counts as the same
// one. GNU timeout(1) sends its SIGTERM to the command and then to its
// whole process group, so the command gets it twice at once; counted
// twice, it would skip the drain it asks for. A person pressing Ctrl-C
// twice is slower than this.
const echoWindow = 100 * time.Millisecond

// echoFilter counts interrupts among signals, by their arrival times.
type echoFilter struct {
	n    int       // interrupts counted
	last time.Time // arrival of the last one counted
}

// count reports whether a signal arriving at now is a new interrupt.
func (f *echoFilter) count(now time.Time) bool {
	if f.n > 0 && now.Sub(f.last) < echoWindow {
		return false
	}
	f.n, f.last = f.n+1, now
	return true
}

// drainContext returns the context of a drain of at most d: one that ends
// at the next interrupt. Before any interrupt that is the first (ctx
// ends); while draining because of the first, it is the second.
// context.Cause of the drain context is errInterruptedAgain when an
// interrupt cut it short.
func drainContext(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	var until context.Context
	switch abort, _ := ctx.Value(abortKey{}).(context.Context); {
	case ctx.Err() == nil:
		until = ctx
	case abort != nil:
		until = abort
	default: // no interrupter: a test's context, already canceled
		until = context.WithoutCancel(ctx)
	}
	dctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	stop := context.AfterFunc(until, func() { cancel(errInterruptedAgain) })
	tctx, tcancel := context.WithTimeout(dctx, d)
	return tctx, func() { stop(); tcancel(); cancel(nil) }
}
