package actortest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/benbjohnson/clock"
)

// RelayConfig is the behaviour of a Relay's path, the same both ways.
type RelayConfig struct {
	Loss      float64       // probability a datagram is dropped
	Duplicate float64       // probability a datagram is forwarded twice
	Reorder   float64       // probability a datagram is held back by ReorderDelay, so later ones overtake it
	Delay     time.Duration // one-way delay added to every datagram
	Jitter    time.Duration // extra uniform random delay in [0, Jitter)
	// ReorderDelay is how long a reordered datagram is held back.
	// Default 2 ms.
	ReorderDelay time.Duration
	// Cut drops everything, both ways: a partition until it is set
	// false again.
	Cut bool
}

// RelayStats count what a Relay did.
type RelayStats struct {
	Forwarded, Dropped, Duplicated, Reordered uint64
}

// Relay is a UDP relay on real sockets: datagrams sent to Addr go on to
// the server, and the server's answers come back, through a path with
// loss, duplication, reordering and delay. Each client address gets its
// own socket towards the server, as behind a NAT, so the server sees one
// source per client.
//
// It starts one goroutine for its socket and one per client; Close ends
// them all. Delays run on the Clock given to NewRelay. Its methods are safe
// for concurrent use.
type Relay struct {
	conn   *net.UDPConn
	server netip.AddrPort
	clk    clock.Clock

	mu      sync.Mutex
	cfg     RelayConfig
	rng     *rand.Rand
	clients map[netip.AddrPort]*net.UDPConn
	timers  map[*clock.Timer]struct{} // delayed datagrams
	closed  bool

	forwarded, dropped, duplicated, reordered atomic.Uint64
	wg                                        sync.WaitGroup
}

// NewRelay listens on addr (for example "127.0.0.1:0") and relays to
// server. clk drives the delays (nil is the real clock); seed makes the
// random decisions reproducible.
func NewRelay(addr string, server netip.AddrPort, cfg RelayConfig, clk clock.Clock, seed uint64) (*Relay, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("actortest: relay address: %w", err)
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("actortest: relay: %w", err)
	}
	if clk == nil {
		clk = clock.New()
	}
	r := &Relay{
		conn:    conn,
		server:  server,
		clk:     clk,
		cfg:     cfg,
		rng:     rand.New(rand.NewPCG(seed, seed^0x9E3779B97F4A7C15)),
		clients: make(map[netip.AddrPort]*net.UDPConn),
		timers:  make(map[*clock.Timer]struct{}),
	}
	_ = conn.SetReadBuffer(4 << 20)
	_ = conn.SetWriteBuffer(4 << 20)
	r.wg.Add(1)
	go r.fromClients()
	return r, nil
}

// Addr is the address clients send to.
func (r *Relay) Addr() netip.AddrPort { return r.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// SetConfig changes the path's behaviour from now on.
func (r *Relay) SetConfig(cfg RelayConfig) {
	r.mu.Lock()
	r.cfg = cfg
	r.mu.Unlock()
}

// Config returns the path's behaviour.
func (r *Relay) Config() RelayConfig {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cfg
}

// Stats returns the relay's counters.
func (r *Relay) Stats() RelayStats {
	return RelayStats{
		Forwarded: r.forwarded.Load(), Dropped: r.dropped.Load(),
		Duplicated: r.duplicated.Load(), Reordered: r.reordered.Load(),
	}
}

// Close closes the relay's sockets and waits for its goroutines. Datagrams
// still delayed are dropped.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return net.ErrClosed
	}
	r.closed = true
	err := r.conn.Close()
	for _, c := range r.clients {
		c.Close()
	}
	for t := range r.timers {
		if t.Stop() { // else it is firing and calls wg.Done itself
			r.wg.Done()
		}
	}
	r.mu.Unlock()
	r.wg.Wait()
	return err
}

// fromClients runs in its own goroutine: it reads what clients send and
// passes it on towards the server from each client's own socket.
func (r *Relay) fromClients() {
	defer r.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, from, err := r.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		up, err := r.upstream(from)
		if err != nil {
			continue
		}
		r.forward(buf[:n], func(b []byte) { up.WriteToUDPAddrPort(b, r.server) })
	}
}

// upstream returns the socket towards the server for client, opening it
// (and its reader) on first use.
func (r *Relay) upstream(client netip.AddrPort) (*net.UDPConn, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, net.ErrClosed
	}
	if c := r.clients[client]; c != nil {
		return c, nil
	}
	local := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	if r.server.Addr().Is6() && !r.server.Addr().Is4In6() {
		local = &net.UDPAddr{IP: net.IPv6loopback}
	}
	c, err := net.ListenUDP("udp", local)
	if err != nil {
		return nil, err
	}
	_ = c.SetReadBuffer(4 << 20)
	_ = c.SetWriteBuffer(4 << 20)
	r.clients[client] = c
	r.wg.Add(1)
	go r.fromServer(c, client)
	return c, nil
}

// fromServer runs in its own goroutine per client: it reads the server's
// answers to that client and passes them back.
func (r *Relay) fromServer(up *net.UDPConn, client netip.AddrPort) {
	defer r.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, _, err := up.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		r.forward(buf[:n], func(b []byte) { r.conn.WriteToUDPAddrPort(b, client) })
	}
}

// forward decides the fate of one datagram and sends it with send, now or
// later. b is copied when it must outlive the call.
func (r *Relay) forward(b []byte, send func([]byte)) {
	r.mu.Lock()
	cfg := r.cfg
	drop := cfg.Cut || r.rng.Float64() < cfg.Loss
	copies := 1
	if r.rng.Float64() < cfg.Duplicate {
		copies = 2
	}
	delays := make([]time.Duration, copies)
	reordered := false
	for i := range delays {
		d := cfg.Delay
		if cfg.Jitter > 0 {
			d += time.Duration(r.rng.Int64N(int64(cfg.Jitter)))
		}
		if r.rng.Float64() < cfg.Reorder {
			rd := cfg.ReorderDelay
			if rd == 0 {
				rd = 2 * time.Millisecond
			}
			d += rd
			reordered = true
		}
		delays[i] = d
	}
	r.mu.Unlock()
	if drop {
		r.dropped.Add(1)
		return
	}
	if copies > 1 {
		r.duplicated.Add(1)
	}
	if reordered {
		r.reordered.Add(1)
	}
	for _, d := range delays {
		r.forwarded.Add(1)
		if d <= 0 {
			send(b)
			continue
		}
		r.later(d, append([]byte(nil), b...), send)
	}
}

// later sends b after d, unless the relay closes first.
func (r *Relay) later(d time.Duration, b []byte, send func([]byte)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.wg.Add(1)
	var t *clock.Timer
	t = r.clk.AfterFunc(d, func() {
		defer r.wg.Done()
		r.mu.Lock()
		delete(r.timers, t)
		r.mu.Unlock()
		send(b)
	})
	r.timers[t] = struct{}{}
}
