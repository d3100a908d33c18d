package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gtudp/gtudp/actor"
	"github.com/gtudp/gtudp/wire"
)

// benchBare runs the 3-packet exchange with plain sockets: the sender
// writes DATA while fewer than window are in flight; the receiver answers
// each DATA with RECV; the sender answers RECV with ACK and counts the
// message. Nothing is re-sent, so it runs on a loss-free path only.
func benchBare(ctx context.Context, o benchOptions) (benchResult, error) {
	r := benchResult{name: "bare exchange", hist: newHist(), resent: -1}
	f, err := parseFormat(o.common.magic, o.common.types)
	if err != nil {
		return r, err
	}
	if n := f.HeaderLen() + o.size; n > wire.MaxDatagram {
		r.refused = fmt.Errorf("a DATA of %d bytes does not fit in one UDP datagram (at most %d)", n, wire.MaxDatagram)
		return r, nil
	}
	snd, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return r, err
	}
	defer snd.Close()
	snd.SetReadBuffer(4 << 20)
	snd.SetWriteBuffer(4 << 20)
	far, err := startReceiver(ctx, o, "bare")
	if err != nil {
		return r, err
	}
	defer far.stop()
	bc := actor.NewBatchConn(snd, o.common.batch)
	hl := f.HeaderLen()

	var wg sync.WaitGroup
	window := make(chan struct{}, o.window)
	sentAt := make([]atomic.Int64, 1<<16) // by the low 16 bits of the id
	var done, written atomic.Int64
	// The sender's reader: ACK for every RECV, written at once as
	// gtudp's reader does.
	wg.Add(1)
	go func() {
		defer wg.Done()
		ack := make([][]byte, 1)
		buf := make([]byte, 0, hl)
		for {
			k, err := bc.Read()
			if err != nil {
				return
			}
			for i := range k {
				b, _ := bc.Datagram(i)
				p, err := f.Decode(b)
				if err != nil || p.Kind != wire.Recv {
					continue
				}
				// The round trip ends when the RECV is read, as gtudp
				// measures it.
				seq := binary.BigEndian.Uint32(p.ID[:])
				r.hist.RecordValue(max(time.Now().UnixNano()-sentAt[seq&0xffff].Load(), 1))
				ack[0] = f.Append(buf[:0], wire.Packet{Kind: wire.Ack, ID: p.ID})
				bc.WriteBatch(ack, far.addr)
				written.Add(1)
				done.Add(1)
				<-window
			}
		}
	}()
	// The sender: DATA while the window has room, as many at once as it
	// has (a gtudp peer writes what a wake-up produced in one batch).
	payload := make([]byte, o.size)
	pkt := make([]byte, 0, o.window*(hl+o.size))
	pkts := make([][]byte, 0, o.window)
	start, cpu0, far0 := time.Now(), cpuTime(), far.counts()
	over, stopClock := runFor(o.duration)
	defer stopClock()
	var seq uint32
send:
	for {
		select {
		case window <- struct{}{}:
		case <-over:
			break send
		case <-ctx.Done():
			break send
		}
		n := 1
	more:
		for n < o.window {
			select {
			case window <- struct{}{}:
				n++
			default:
				break more
			}
		}
		pkt, pkts = pkt[:0], pkts[:0]
		now := time.Now().UnixNano()
		for range n {
			var id wire.ID
			binary.BigEndian.PutUint32(id[:], seq)
			sentAt[seq&0xffff].Store(now)
			seq++
			off := len(pkt)
			pkt = f.Append(pkt, wire.Packet{Kind: wire.Data, ID: id, Payload: payload})
			pkts = append(pkts, pkt[off:])
		}
		if _, err := bc.WriteBatch(pkts, far.addr); err != nil {
			return r, err
		}
		written.Add(int64(n))
	}
	fc := far.counts().sub(far0)
	r.messages, r.elapsed, r.cpu = done.Load(), time.Since(start), cpuTime()-cpu0+fc.cpu
	r.datagrams = uint64(written.Load()) + fc.datagrams
	snd.Close()
	wg.Wait()
	if ctx.Err() != nil {
		return r, ctx.Err()
	}
	return r, nil
}

// serveBare answers every DATA with RECV and ignores the rest.
func serveBare(o benchOptions) (receiver, error) {
	f, err := parseFormat(o.common.magic, o.common.types)
	if err != nil {
		return receiver{}, err
	}
	rcv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return receiver{}, err
	}
	rcv.SetReadBuffer(4 << 20)
	rcv.SetWriteBuffer(4 << 20)
	var written atomic.Uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		// RECV for every DATA of a read, written in one batch as a
		// gtudp peer writes the RECVs of one wake-up.
		bc := actor.NewBatchConn(rcv, o.common.batch)
		hl := f.HeaderLen()
		buf := make([]byte, 0, max(o.common.batch, 1)*hl)
		var out [][]byte
		var to netip.AddrPort
		flush := func() {
			if len(out) > 0 {
				bc.WriteBatch(out, to)
				written.Add(uint64(len(out)))
			}
			buf, out = buf[:0], out[:0]
		}
		for {
			k, err := bc.Read()
			if err != nil {
				return
			}
			for i := range k {
				b, from := bc.Datagram(i)
				p, err := f.Decode(b)
				if err != nil || p.Kind != wire.Data {
					continue
				}
				if from != to {
					flush()
					to = from
				}
				off := len(buf)
				buf = f.Append(buf, wire.Packet{Kind: wire.Recv, ID: p.ID})
				out = append(out, buf[off:])
			}
			flush()
		}
	}()
	return receiver{
		addr:   rcv.LocalAddr().(*net.UDPAddr).AddrPort(),
		stop:   func() { rcv.Close(); <-done },
		counts: func() farCounts { return farCounts{datagrams: written.Load()} },
	}, nil
}
