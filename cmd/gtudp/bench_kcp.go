package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	kcp "github.com/xtaci/kcp-go/v5"
)

// kcpSetup gives a kcp-go session the bench's settings: fast mode
// (NoDelay 1, 10, 2, 1: no delayed ACKs' worth of backoff, a 10 ms
// internal clock, fast resend after 2 duplicate ACKs, no congestion
// window), the window both ways, and the socket buffers gtudp asks for
// (4 MiB). Message mode is kcp-go's default; FEC and encryption are off
// because the session was made without them.
func kcpSetup(s *kcp.UDPSession, window int) {
	s.SetNoDelay(1, 10, 2, 1)
	s.SetWindowSize(window, window)
	s.SetReadBuffer(4 << 20)
	s.SetWriteBuffer(4 << 20)
}

// kcpFrame is a message as the bench writes it to kcp-go: a 4-byte length,
// then the payload. kcp-go's session cuts a Write longer than its MSS
// (1,376 bytes by default) into messages of that size, so the receiver
// finds the message boundaries from the length, as over TCP.
func kcpFrame(size int) []byte {
	b := make([]byte, 4+size)
	binary.BigEndian.PutUint32(b, uint32(size))
	return b
}

// readFrames reads length-prefixed messages from r until it fails,
// counting each whole one: into one buffer it reuses, or, fresh, each
// into a new one, as an application that keeps or hands on each message
// must (as gtudp's Inbox does).
func readFrames(r io.Reader, count *atomic.Uint64, fresh bool) {
	br := bufio.NewReaderSize(r, 64<<10)
	var hdr [4]byte
	var buf []byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(hdr[:]))
		if fresh || cap(buf) < n {
			buf = make([]byte, n)
		}
		if _, err := io.ReadFull(br, buf[:n]); err != nil {
			return
		}
		count.Add(1)
	}
}

// kcpSent is what this process's kcp-go sessions have sent: datagrams and
// re-sent segments (kcp-go counts per process, in DefaultSnmp).
func kcpSent() (datagrams, resent uint64) {
	return atomic.LoadUint64(&kcp.DefaultSnmp.OutPkts), atomic.LoadUint64(&kcp.DefaultSnmp.RetransSegs)
}

// benchKCP streams messages over one kcp-go session for o.duration; the
// receiver counts the messages its application reads.
func benchKCP(ctx context.Context, o benchOptions) (benchResult, error) {
	r := benchResult{name: "kcp-go"}
	far, err := startReceiver(ctx, o, "kcp")
	if err != nil {
		return r, err
	}
	defer far.stop()
	sess, err := kcp.DialWithOptions(far.addr.String(), nil, 0, 0)
	if err != nil {
		return r, err
	}
	defer sess.Close()
	kcpSetup(sess, o.window)
	frame := kcpFrame(o.size)

	// One message first, and wait for it: kcp-go makes the receiving
	// session on the first datagram, with its default window of 32, and
	// the receiver sets the bench's window when it accepts the session.
	// A burst before then fills the default window; the receiver
	// advertises a zero window, and the sender waits for its probe (7 s)
	// whatever the receiver reads meanwhile. Seen with -procs 2 in about
	// one run of two: 32 messages, then nothing for the rest of the run.
	if _, err := sess.Write(frame); err != nil {
		return r, err
	}
	for warm := time.Now(); far.counts().messages == 0; time.Sleep(time.Millisecond) {
		if time.Since(warm) > 10*time.Second || ctx.Err() != nil {
			return r, fmt.Errorf("the first message did not arrive in 10 s")
		}
	}

	start, cpu0, far0 := time.Now(), cpuTime(), far.counts()
	out0, resent0 := kcpSent()
	// A Write waits while the window is full: the deadline ends the one
	// under way when the run is over.
	sess.SetWriteDeadline(start.Add(o.duration))
	for ctx.Err() == nil {
		if _, err := sess.Write(frame); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				break
			}
			return r, err
		}
	}
	fc := far.counts().sub(far0)
	out, resent := kcpSent()
	r.elapsed, r.cpu = time.Since(start), cpuTime()-cpu0+fc.cpu
	r.messages = int64(fc.messages)
	r.datagrams = out - out0
	if o.procs == 2 { // else this process's count has the receiver's already
		r.datagrams += fc.datagrams
	}
	r.resent = int64(resent - resent0)
	if r.messages == 0 {
		return r, fmt.Errorf("no message arrived in %v", o.duration)
	}
	return r, ctx.Err()
}

// serveKCP accepts kcp-go sessions and reads length-prefixed messages
// from each, counting them.
func serveKCP(o benchOptions) (receiver, error) {
	l, err := kcp.ListenWithOptions("127.0.0.1:0", nil, 0, 0)
	if err != nil {
		return receiver{}, err
	}
	l.SetReadBuffer(4 << 20)
	l.SetWriteBuffer(4 << 20)
	var messages atomic.Uint64
	// The accepting goroutine alone appends to sessions until accepted
	// is closed; readers counts the goroutines reading them.
	var readers sync.WaitGroup
	var sessions []*kcp.UDPSession
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			s, err := l.AcceptKCP()
			if err != nil {
				return
			}
			kcpSetup(s, o.window)
			sessions = append(sessions, s)
			readers.Add(1)
			go func() {
				defer readers.Done()
				readFrames(s, &messages, false)
			}()
		}
	}()
	return receiver{
		addr: l.Addr().(*net.UDPAddr).AddrPort(),
		stop: func() {
			l.Close()
			<-accepted
			for _, s := range sessions {
				s.Close()
			}
			readers.Wait()
		},
		counts: func() farCounts {
			out, _ := kcpSent()
			return farCounts{datagrams: out, messages: messages.Load()}
		},
	}, nil
}
