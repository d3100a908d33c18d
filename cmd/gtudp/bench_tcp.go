package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// benchTCP streams length-prefixed messages over one loopback TCP
// connection for o.duration, one Write per message (Go's default
// TCP_NODELAY), as an application hands each message to its transport;
// the receiver counts the messages it reads, into one buffer it reuses,
// or, fresh, each into a new one.
func benchTCP(ctx context.Context, o benchOptions, fresh bool) (benchResult, error) {
	r := benchResult{name: "TCP stream", resent: -1}
	mode := "tcp"
	if fresh {
		r.name, mode = tcpFresh, "tcp-fresh"
	}
	far, err := startReceiver(ctx, o, mode)
	if err != nil {
		return r, err
	}
	defer far.stop()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", far.addr.String())
	if err != nil {
		return r, err
	}
	defer c.Close()
	frame := kcpFrame(o.size) // the same 4-byte length and payload

	start, cpu0, far0 := time.Now(), cpuTime(), far.counts()
	// A Write waits while the socket's buffers are full: the deadline ends
	// the one under way when the run is over.
	c.SetWriteDeadline(start.Add(o.duration))
	for ctx.Err() == nil {
		if _, err := c.Write(frame); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			return r, err
		}
	}
	fc := far.counts().sub(far0)
	r.elapsed, r.cpu = time.Since(start), cpuTime()-cpu0+fc.cpu
	r.messages = int64(fc.messages)
	if r.messages == 0 {
		return r, fmt.Errorf("no message arrived in %v", o.duration)
	}
	return r, ctx.Err()
}

// tcpFresh names the TCP stream whose reader reads each message into a
// new buffer.
const tcpFresh = "TCP stream, new buffer each"

// serveTCP accepts connections and reads length-prefixed messages from
// each, counting them; fresh, each into a new buffer.
func serveTCP(fresh bool) (receiver, error) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return receiver{}, err
	}
	var messages atomic.Uint64
	// The accepting goroutine alone appends to conns until accepted is
	// closed; readers counts the goroutines reading them.
	var readers sync.WaitGroup
	var conns []net.Conn
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			readers.Add(1)
			go func() {
				defer readers.Done()
				readFrames(c, &messages, fresh)
			}()
		}
	}()
	return receiver{
		addr: l.Addr().(*net.TCPAddr).AddrPort(),
		stop: func() {
			l.Close()
			<-accepted
			for _, c := range conns {
				c.Close()
			}
			readers.Wait()
		},
		counts: func() farCounts { return farCounts{messages: messages.Load()} },
	}, nil
}
