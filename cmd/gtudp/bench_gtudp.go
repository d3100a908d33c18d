package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"github.com/gtudp/gtudp"
	"github.com/gtudp/gtudp/actor/actortest"
)

// benchGtudp streams messages from one endpoint to another, window in
// flight, directly or through a relay losing the given fraction.
func benchGtudp(ctx context.Context, o benchOptions, relayed bool, loss float64) (benchResult, error) {
	r := benchResult{name: "gtudp", hist: newHist()}
	if o.common.noExt {
		r.name = "gtudp, no extension"
	}
	if o.release {
		r.name += ", receiver releases"
	}
	if relayed {
		r.name += fmt.Sprintf(", relay, %.0f%% loss", 100*loss)
	}
	cfg, err := o.common.config(io.Discard)
	if err != nil {
		return r, err
	}
	far, err := startReceiver(ctx, o, "gtudp")
	if err != nil {
		return r, err
	}
	defer far.stop()
	to := far.addr
	if relayed {
		relay, err := actortest.NewRelay("127.0.0.1:0", to, actortest.RelayConfig{Loss: loss}, nil, 1)
		if err != nil {
			return r, err
		}
		defer relay.Close()
		to = relay.Addr()
	}
	send, err := openEndpoint("udp4", "127.0.0.1:0", cfg)
	if err != nil {
		return r, err
	}
	defer func() {
		// The run is over and its receipts are counted; those still to
		// come would wait for a reader (a receipt holds its place in the
		// window until it is taken) and keep Close waiting forever.
		go func() {
			for range send.Receipts() {
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		send.Close(ctx)
	}()

	// Every message sends the same payload: the endpoint only reads a
	// message's Data, so one buffer serves them all, and a window of
	// large messages costs one payload of memory, not a window's worth.
	// At most twice the window is handed over at once, so that gtudp's
	// own window, not the bench, limits what is in flight.
	data := make([]byte, o.size)
	if o.profile != "" && !relayed {
		stopProfile, err := startCPUProfile(o.profile)
		if err != nil {
			return r, err
		}
		defer stopProfile()
	}
	// One goroutine sends and takes receipts, as an application streaming
	// through the Outbox would.
	var failed error
	pending := 0 // sent, receipt not in yet
	var seq uint64
	start, cpu0, st0, far0 := time.Now(), cpuTime(), send.Stats(), far.counts()
	end, stopClock := runFor(o.duration)
	defer stopClock()
	var giveUp <-chan time.Time // after the run: the last receipts' deadline
	for end != nil || pending > 0 {
		var outbox chan<- gtudp.Message
		var m gtudp.Message
		if end != nil && pending < 2*o.window {
			var id uuid.UUID // any unique ID: gtudp only matches receipts
			binary.BigEndian.PutUint64(id[8:], seq+1)
			outbox, m = send.Outbox(), gtudp.Message{ID: id, Addr: to, Data: data}
		}
		select {
		case outbox <- m:
			seq++
			pending++
		case rc := <-send.Receipts():
			pending--
			switch {
			case errors.Is(rc.Err, gtudp.ErrTooLarge):
				r.refused = rc.Err
				return r, nil
			case rc.Err != nil:
				failed = rc.Err
			case end != nil:
				r.hist.RecordValue(max(rc.RTT.Nanoseconds(), 1))
				r.messages++
			}
		case <-end:
			st, fc := send.Stats(), far.counts().sub(far0)
			r.elapsed, r.cpu = time.Since(start), cpuTime()-cpu0+fc.cpu
			r.datagrams = st.PacketsOut - st0.PacketsOut + fc.datagrams
			r.resent = int64(st.DataResent - st0.DataResent)
			if ps, ok := send.PeerStats(to); ok {
				r.detail = fmt.Sprintf("lost %d, spurious %d, probe timeouts %d; at the end cwnd %d B, SRTT %v, min RTT %v",
					st.Lost-st0.Lost, st.Spurious-st0.Spurious, st.Timeouts-st0.Timeouts, ps.Cwnd, ps.SRTT, ps.MinRTT)
			}
			end, giveUp = nil, time.After(10*time.Second)
		case <-giveUp:
			pending = 0
		case <-ctx.Done():
			return r, ctx.Err()
		}
	}
	if failed != nil && !errors.Is(failed, gtudp.ErrClosed) {
		return r, fmt.Errorf("a message failed: %w", failed)
	}
	return r, ctx.Err()
}

// serveGtudp is an endpoint that drains its Inbox, giving each message's
// Data back with -release.
func serveGtudp(o benchOptions) (receiver, error) {
	cfg, err := o.common.config(io.Discard)
	if err != nil {
		return receiver{}, err
	}
	ep, err := openEndpoint("udp4", "127.0.0.1:0", cfg)
	if err != nil {
		return receiver{}, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range ep.Inbox() {
			if o.release {
				ep.Release(m.Data)
			}
		}
	}()
	return receiver{
		addr: ep.LocalAddr(),
		stop: func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			ep.Close(ctx)
			<-done
		},
		counts: func() farCounts {
			st := ep.Stats()
			return farCounts{datagrams: st.PacketsOut, messages: st.Delivered}
		},
	}, nil
}
