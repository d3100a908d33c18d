// Package actortest is a test kit for code that uses gtudp, and for gtudp
// itself, in the manner of net/http/httptest.
//
// Network is an in-memory network of net.PacketConns built on channels and
// a clock.Clock, with per-link loss, duplication, reordering, delay and
// partitions, and Bottlenecks (a rate and a drop-tail queue, shared by the
// Links that cross them): inside a testing/synctest bubble, with
// clock.NewMock, tests over it are deterministic and take no real time.
// Relay is a lossy path on real loopback sockets.
package actortest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/benbjohnson/clock"
)

// errMissingAddress is WriteTo's error for a nil address, as in package net.
var errMissingAddress = errors.New("missing address")

// DefaultQueueLen is how many datagrams a Conn holds unread before it
// drops more, like a socket's receive buffer.
const DefaultQueueLen = 1024

// Link is the behaviour of the path in one direction between two
// addresses. The zero Link is perfect and instant.
type Link struct {
	Loss      float64       // probability a datagram is dropped
	Duplicate float64       // probability a datagram is delivered twice
	Reorder   float64       // probability a datagram is held back by ReorderDelay, so later ones overtake it
	Delay     time.Duration // one-way delay
	Jitter    time.Duration // extra uniform random delay in [0, Jitter)
	// ReorderDelay is how long a reordered datagram is held back.
	// Default twice Delay, or 1 ms when Delay is 0.
	ReorderDelay time.Duration
	// Bottleneck, if not nil, is a queue and a rate the datagrams cross
	// after Loss and Duplicate are decided (a lost datagram never takes
	// room in it; each copy does) and before Delay, Jitter and Reorder,
	// which they take after leaving it. Links may share one.
	Bottleneck *Bottleneck
}

// Fate is a test's decision for one datagram; see Network.SetFate.
type Fate struct {
	Drop   bool // lose it
	Copies int  // extra copies to deliver
	// Delay is how long after it was sent it (and its copies) is
	// delivered; on a Link with a Bottleneck, how long after it leaves
	// the bottleneck.
	Delay time.Duration
}

// NetStats count what a Network did with the datagrams written to it.
type NetStats struct {
	Sent       uint64 // datagrams written
	Delivered  uint64 // datagrams (copies included) queued at a receiver
	Dropped    uint64 // lost to Loss, a partition, a Fate or a full Bottleneck
	Duplicated uint64 // extra copies made
	QueueFull  uint64 // dropped because the receiver's queue was full
	NoListener uint64 // sent to an address nobody listens on
}

// Network is a set of in-memory sockets that exchange datagrams. Its
// methods and those of its Conns are safe for concurrent use.
//
// Datagrams without delay are queued at the receiver inside WriteTo;
// delayed ones, and those through a Bottleneck, are queued by a
// clock.AfterFunc, which the mock clock runs inside Add. No goroutine is
// started otherwise.
type Network struct {
	clk clock.Clock

	mu        sync.Mutex
	conns     map[netip.AddrPort]*Conn
	links     map[[2]netip.AddrPort]Link
	deflink   Link
	cut       map[[2]netip.AddrPort]bool
	fate      func(from, to netip.AddrPort, b []byte) Fate
	rng       *rand.Rand
	nextPort  uint16
	queueLen  int
	stats     NetStats
	delivered atomic.Uint64
}

// NewNetwork returns an empty network whose delays run on clk (nil is the
// real clock).
func NewNetwork(clk clock.Clock) *Network {
	if clk == nil {
		clk = clock.New()
	}
	n := &Network{
		clk:      clk,
		conns:    make(map[netip.AddrPort]*Conn),
		links:    make(map[[2]netip.AddrPort]Link),
		cut:      make(map[[2]netip.AddrPort]bool),
		nextPort: 10000,
		queueLen: DefaultQueueLen,
	}
	n.Seed(1)
	return n
}

// Seed resets the randomness of Link decisions, so runs are reproducible.
func (n *Network) Seed(seed uint64) {
	n.mu.Lock()
	n.rng = rand.New(rand.NewPCG(seed, seed^0x9E3779B97F4A7C15))
	n.mu.Unlock()
}

// SetQueueLen sets how many unread datagrams a Conn opened later holds.
func (n *Network) SetQueueLen(l int) {
	n.mu.Lock()
	n.queueLen = l
	n.mu.Unlock()
}

// Listen binds a socket to addr, "ip:port". Port 0 picks a free port. An
// unspecified IP ("0.0.0.0" or "::") receives datagrams sent to any address
// with its port, as a dual-stack wildcard socket does.
func (n *Network) Listen(addr string) (*Conn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("actortest: listen %q: %w", addr, err)
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	n.mu.Lock()
	defer n.mu.Unlock()
	if ap.Port() == 0 {
		for {
			n.nextPort++
			if n.nextPort == 0 {
				n.nextPort = 10000
			}
			try := netip.AddrPortFrom(ap.Addr(), n.nextPort)
			if n.conns[try] == nil {
				ap = try
				break
			}
		}
	}
	if n.conns[ap] != nil {
		return nil, &net.OpError{Op: "listen", Net: "udp", Addr: net.UDPAddrFromAddrPort(ap), Err: errors.New("address already in use")}
	}
	c := &Conn{
		net:    n,
		addr:   ap,
		ready:  make(chan struct{}, 1),
		closed: make(chan struct{}),
		limit:  n.queueLen,
	}
	c.deadlineChanged = make(chan struct{})
	n.conns[ap] = c
	return c, nil
}

// SetLink sets the behaviour of the path from one address to another.
func (n *Network) SetLink(from, to netip.AddrPort, l Link) {
	n.mu.Lock()
	n.links[pathKey(from, to)] = l
	n.mu.Unlock()
}

// SetDefaultLink sets the behaviour of every path without its own Link.
func (n *Network) SetDefaultLink(l Link) {
	n.mu.Lock()
	n.deflink = l
	n.mu.Unlock()
}

// Partition drops everything between a and b, both ways, until Heal.
func (n *Network) Partition(a, b netip.AddrPort) {
	n.mu.Lock()
	n.cut[pathKey(a, b)] = true
	n.cut[pathKey(b, a)] = true
	n.mu.Unlock()
}

// Heal ends the partition between a and b.
func (n *Network) Heal(a, b netip.AddrPort) {
	n.mu.Lock()
	delete(n.cut, pathKey(a, b))
	delete(n.cut, pathKey(b, a))
	n.mu.Unlock()
}

// HealAll ends every partition.
func (n *Network) HealAll() {
	n.mu.Lock()
	clear(n.cut)
	n.mu.Unlock()
}

// SetFate makes f decide the fate of every datagram, in place of the Links'
// randomness (partitions still apply). f is called from the writer's
// goroutine, without the network's lock held, and must not block. nil
// restores the Links.
//
// A fate replaces everything a Link decides for each datagram: Loss,
// Duplicate, Delay, Jitter and Reorder. It does not remove the Link's
// Bottleneck, which is the path's capacity and is shared with other
// flows: a datagram the fate keeps, and each of its copies, crosses it
// and reaches the receiver Fate.Delay after leaving it. A fate that
// drops a datagram drops it before the bottleneck.
func (n *Network) SetFate(f func(from, to netip.AddrPort, b []byte) Fate) {
	n.mu.Lock()
	n.fate = f
	n.mu.Unlock()
}

// Stats returns the network's counters.
func (n *Network) Stats() NetStats {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.stats
	s.Delivered = n.delivered.Load()
	return s
}

// send carries one datagram written by from.
func (n *Network) send(from netip.AddrPort, to netip.AddrPort, b []byte) {
	to = unmap(to)
	n.mu.Lock()
	n.stats.Sent++
	key := pathKey(from, to)
	// A wildcard receiver is known to the test by the address it bound,
	// not by the one the datagram was sent to, so its partitions and
	// links are found under that address too.
	bound := key
	if c := n.lookup(to); c != nil {
		bound = pathKey(from, c.addr)
	}
	if n.cut[key] || n.cut[bound] {
		n.stats.Dropped++
		n.mu.Unlock()
		return
	}
	l, ok := n.links[key]
	if !ok {
		l, ok = n.links[bound]
	}
	if !ok {
		l = n.deflink
	}
	fate := n.fate
	var delays []time.Duration
	if fate == nil {
		delays = n.decide(l)
		if delays == nil {
			n.stats.Dropped++
		}
	}
	n.mu.Unlock()

	if fate != nil {
		f := fate(from, to, b)
		if f.Drop {
			n.mu.Lock()
			n.stats.Dropped++
			n.mu.Unlock()
			return
		}
		delays = make([]time.Duration, 1+max(f.Copies, 0))
		for i := range delays {
			delays[i] = f.Delay
		}
	}
	if len(delays) > 1 {
		n.mu.Lock()
		n.stats.Duplicated += uint64(len(delays) - 1)
		n.mu.Unlock()
	}
	for _, d := range delays {
		// Every copy is the receiver's own: writers reuse their buffers.
		c := append([]byte(nil), b...)
		if l.Bottleneck != nil {
			if !l.Bottleneck.enter(n, from, to, c, d) {
				n.mu.Lock()
				n.stats.Dropped++
				n.mu.Unlock()
			}
			continue
		}
		if d <= 0 {
			n.deliver(from, to, c)
			continue
		}
		n.clk.AfterFunc(d, func() { n.deliver(from, to, c) })
	}
}

// decide draws the delays of the copies of one datagram over l, or nil if
// it is lost. n.mu is held.
func (n *Network) decide(l Link) []time.Duration {
	if l.Loss > 0 && n.rng.Float64() < l.Loss {
		return nil
	}
	copies := 1
	if l.Duplicate > 0 && n.rng.Float64() < l.Duplicate {
		copies = 2
	}
	delays := make([]time.Duration, copies)
	for i := range delays {
		d := l.Delay
		if l.Jitter > 0 {
			d += time.Duration(n.rng.Int64N(int64(l.Jitter)))
		}
		if l.Reorder > 0 && n.rng.Float64() < l.Reorder {
			rd := l.ReorderDelay
			if rd == 0 {
				rd = max(2*l.Delay, time.Millisecond)
			}
			d += rd
		}
		delays[i] = d
	}
	return delays
}

// deliver queues b at the socket bound to to, or at a wildcard socket on
// its port.
func (n *Network) deliver(from, to netip.AddrPort, b []byte) {
	n.mu.Lock()
	c := n.lookup(to)
	if c == nil {
		n.stats.NoListener++
		n.mu.Unlock()
		return
	}
	n.mu.Unlock()
	if !c.enqueue(datagram{from: from, b: b}) {
		n.mu.Lock()
		n.stats.QueueFull++
		n.mu.Unlock()
		return
	}
	n.delivered.Add(1)
}

// lookup returns the socket bound to to, or else a wildcard socket on its
// port. n.mu is held.
func (n *Network) lookup(to netip.AddrPort) *Conn {
	if c := n.conns[to]; c != nil {
		return c
	}
	if to.Addr().Is4() {
		if c := n.conns[netip.AddrPortFrom(netip.IPv4Unspecified(), to.Port())]; c != nil {
			return c
		}
	}
	return n.conns[netip.AddrPortFrom(netip.IPv6Unspecified(), to.Port())]
}

func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// pathKey is the key of the direction from->to in links and cut; it
// unmaps both ends so either spelling of an IPv4 address names one path.
func pathKey(from, to netip.AddrPort) [2]netip.AddrPort {
	return [2]netip.AddrPort{unmap(from), unmap(to)}
}

// unbind frees c's address.
func (n *Network) unbind(c *Conn) {
	n.mu.Lock()
	if n.conns[c.addr] == c {
		delete(n.conns, c.addr)
	}
	n.mu.Unlock()
}

type datagram struct {
	from netip.AddrPort
	b    []byte
}

// Conn is a socket of a Network. It implements net.PacketConn; addresses
// are *net.UDPAddr.
type Conn struct {
	net  *Network
	addr netip.AddrPort

	mu              sync.Mutex
	queue           []datagram
	limit           int
	ready           chan struct{} // has a token when queue may be non-empty
	closed          chan struct{}
	isClosed        bool
	deadline        time.Time
	deadlineChanged chan struct{} // closed and replaced when the read deadline changes
}

var _ net.PacketConn = (*Conn)(nil)

// AddrPort returns the address c is bound to.
func (c *Conn) AddrPort() netip.AddrPort { return c.addr }

// LocalAddr returns the address c is bound to, as a *net.UDPAddr.
func (c *Conn) LocalAddr() net.Addr { return net.UDPAddrFromAddrPort(c.addr) }

func (c *Conn) enqueue(d datagram) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.isClosed || len(c.queue) >= c.limit {
		return false
	}
	c.queue = append(c.queue, d)
	select {
	case c.ready <- struct{}{}:
	default:
	}
	return true
}

// ReadFrom reads one datagram, truncated to len(p) as UDP does. It blocks
// until a datagram arrives, the read deadline passes (an error matching
// os.ErrDeadlineExceeded) or c is closed (an error matching
// net.ErrClosed). The deadline is measured with package time: inside a
// synctest bubble that is the bubble's clock.
func (c *Conn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		c.mu.Lock()
		if c.isClosed {
			c.mu.Unlock()
			return 0, nil, c.opError("read", net.ErrClosed)
		}
		if len(c.queue) > 0 {
			d := c.queue[0]
			c.queue[0] = datagram{}
			c.queue = c.queue[1:]
			if len(c.queue) == 0 {
				c.queue = nil // let the backing array go
			} else {
				// enqueue coalesces tokens, so another reader may be
				// waiting on one for the datagrams still queued.
				select {
				case c.ready <- struct{}{}:
				default:
				}
			}
			c.mu.Unlock()
			return copy(p, d.b), net.UDPAddrFromAddrPort(d.from), nil
		}
		deadline, changed := c.deadline, c.deadlineChanged
		c.mu.Unlock()

		var expired <-chan time.Time
		var t *time.Timer
		if !deadline.IsZero() {
			wait := time.Until(deadline)
			if wait <= 0 {
				return 0, nil, c.opError("read", os.ErrDeadlineExceeded)
			}
			t = time.NewTimer(wait)
			expired = t.C
		}
		timedOut := false
		select {
		case <-c.ready:
		case <-c.closed:
		case <-changed:
		case <-expired:
			timedOut = true
		}
		if t != nil {
			t.Stop()
		}
		if timedOut {
			return 0, nil, c.opError("read", os.ErrDeadlineExceeded)
		}
	}
}

// WriteTo sends a copy of p to addr (a *net.UDPAddr, or any net.Addr whose
// String is "ip:port"); it never blocks. A datagram to an address nobody
// listens on is lost, as with UDP.
func (c *Conn) WriteTo(p []byte, addr net.Addr) (int, error) {
	select {
	case <-c.closed:
		return 0, c.opError("write", net.ErrClosed)
	default:
	}
	if addr == nil {
		return 0, c.opError("write", errMissingAddress)
	}
	var to netip.AddrPort
	if u, ok := addr.(*net.UDPAddr); ok {
		to = u.AddrPort()
	} else {
		var err error
		if to, err = netip.ParseAddrPort(addr.String()); err != nil {
			return 0, c.opError("write", err)
		}
	}
	if len(p) > 65535 {
		return 0, c.opError("write", errors.New("message too long"))
	}
	c.net.send(c.addr, to, p)
	return len(p), nil
}

// Close closes c and frees its address. Blocked reads return an error
// matching net.ErrClosed; so do later calls, and a second Close.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.isClosed {
		c.mu.Unlock()
		return c.opError("close", net.ErrClosed)
	}
	c.isClosed = true
	c.queue = nil
	close(c.closed)
	c.mu.Unlock()
	c.net.unbind(c)
	return nil
}

// SetDeadline sets the read deadline; writes never block.
func (c *Conn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

// SetReadDeadline sets the deadline for ReadFrom, including one already
// blocked; the zero time means none.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline = t
	close(c.deadlineChanged)
	c.deadlineChanged = make(chan struct{})
	return nil
}

// SetWriteDeadline does nothing: writes never block.
func (c *Conn) SetWriteDeadline(time.Time) error { return nil }

func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "udp", Addr: c.LocalAddr(), Err: err}
}
