// Package actor is the supervisor of a gtudp endpoint: it reads one socket,
// routes every decoded packet to the actor of its remote address (package
// peer), starts and reaps those actors, and carries the users' sends to
// them. Package gtudp is its public face; the test kit for it is
// actor/actortest.
package actor

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/gtudp/gtudp/peer"
	"github.com/gtudp/gtudp/wire"
)

// Errors of the endpoint, beside those of peer and wire that package gtudp
// re-exports.
var (
	// ErrPeerLimit: a send to a new address was refused because MaxPeers
	// peers are live.
	ErrPeerLimit = errors.New("gtudp: too many peers")
)

// Endpoint is a gtUDP endpoint on one socket. All its methods are safe for
// concurrent use.
//
// Goroutines: New starts the socket reader and the Outbox loop; each remote
// address with state has its own peer goroutine, started on its first
// packet or send and ended when it has been idle for IdleTimeout. Close
// ends them all before it returns.
//
// Ownership: the peer table (mu) belongs to the supervisor; each peer's
// protocol state belongs to its goroutine alone. The App's channels belong
// to package gtudp, which closes them when App.Closed is called.
type Endpoint struct {
	conn  net.PacketConn
	udp   *net.UDPConn // conn, when it is one: reads without allocating
	out   peer.Sender  // the one write path, for peers, reader and raw sends
	reach reach        // the address families the socket can send to
	own   bool         // Close closes conn
	cfg   *Settings
	app   App
	local netip.AddrPort

	mu      sync.Mutex
	peers   map[netip.AddrPort]*peer.Peer
	order   []*peer.Peer // eviction order (evict.go); may hold peers that left
	graves  graves       // what evicted peers remembered
	gone    peer.Stats   // totals of peers that have ended
	closing bool         // Close is draining: no new peers
	broken  error        // the socket failed underneath: no new peers
	seeds   [32]byte     // key of the peers' id sequences
	seedCtr uint64

	// peerCtx ends every peer at once (abort): Close when its context
	// ends, or the reader when the socket fails underneath.
	peerCtx context.Context
	abort   context.CancelFunc

	// gate admits sends; Close shuts it and waits for the sends under
	// way, so that a send accepted before Close is carried out in full.
	gate      gate
	closingCh chan struct{} // closed when Close begins
	stop      chan struct{} // closed to stop the reader and the Outbox loop
	closed    chan struct{} // closed when Close has finished
	closeErr  error
	wg        sync.WaitGroup

	ctr counters

	// outboxPlaces holds a token for every message from the Outbox that a
	// peer keeps and has not yet sent: at most OutboxQueue.
	outboxPlaces chan struct{}

	// The reader's own: its buffer for the ACKs of stray RECVs, and the
	// peer of the last datagram it handed over.
	ack      [][]byte
	trailer  []byte
	strayIDs []wire.ID
	lastSrc  netip.AddrPort
	lastPeer *peer.Peer
	hook     func(netip.AddrPort, peer.Inbound) // beforePacket, read once
}

// New returns an endpoint serving conn for app, with settings s (which it
// keeps and must not be changed). If own is true, Close closes conn;
// otherwise Close leaves it open and unblocks the reader with a read
// deadline in the past, then clears the deadline.
//
// It starts two goroutines; peers start theirs as traffic arrives.
func New(conn net.PacketConn, s *Settings, app App, own bool) (*Endpoint, error) {
	local, err := addrPort(conn.LocalAddr())
	if err != nil {
		return nil, fmt.Errorf("gtudp: local address of the socket: %w", err)
	}
	if err := checkConn(conn); err != nil {
		return nil, err
	}
	e := &Endpoint{
		conn:      conn,
		out:       newSender(conn, s.Batch),
		reach:     socketReach(conn),
		own:       own,
		cfg:       s,
		app:       app,
		local:     local,
		peers:     make(map[netip.AddrPort]*peer.Peer),
		closingCh: make(chan struct{}),
		gate:      gate{idle: make(chan struct{})},
		stop:      make(chan struct{}),
		closed:    make(chan struct{}),
		graves:    graves{max: s.Params.DedupeLimit * 4},

		outboxPlaces: make(chan struct{}, s.OutboxQueue),
		ack:          [][]byte{make([]byte, 0, s.Params.Format.HeaderLen())},
		hook:         beforePacket,
	}
	e.udp, _ = conn.(*net.UDPConn)
	if s.Params.ReadBuffers == nil {
		s.Params.ReadBuffers = peer.NewBuffers(lentBuffers, readBufferSize)
	}
	if s.Params.Spares == nil && s.Params.Format.Ext != nil {
		// Without the extension no message comes in fragments: a buffer
		// given back would never be used (a nil Spares keeps none).
		s.Params.Spares = peer.NewSpares(spareBytes)
	}
	if _, err := rand.Read(e.seeds[:]); err != nil {
		return nil, fmt.Errorf("gtudp: seeding message ids: %w", err)
	}
	if s.SocketBuffer > 0 {
		rcv, snd := setSocketBuffers(conn, s.SocketBuffer)
		if (rcv > 0 && rcv < s.SocketBuffer || snd > 0 && snd < s.SocketBuffer) && s.Logger != nil {
			s.Logger.Warn("gtudp: the kernel capped the socket buffers; bursts may be dropped and re-sent (raise net.core.rmem_max and wmem_max)",
				"asked", s.SocketBuffer, "receive", rcv, "send", snd)
		}
	}
	e.peerCtx, e.abort = context.WithCancel(context.Background())
	e.wg.Add(2)
	go e.readLoop()
	go e.outboxLoop()
	return e, nil
}

// Done returns a channel closed when Close begins.
func (e *Endpoint) Done() <-chan struct{} { return e.closingCh }

// LocalAddr returns the address the socket is bound to.
func (e *Endpoint) LocalAddr() netip.AddrPort { return e.local }

// Send sends data to addr and waits for its outcome: nil once the peer has
// answered RECV (it has the message), or the reason it has not: an error
// matching peer.ErrUndelivered, ctx.Err(), peer.ErrClosed, wire.ErrTooLarge
// or ErrPeerLimit. If ctx ends, the endpoint stops re-sending the message;
// a RECV that arrived first still wins. data must not be modified until
// Send returns.
func (e *Endpoint) Send(ctx context.Context, addr netip.AddrPort, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err // done before it started: nothing is sent
	}
	addr, err := e.check(addr, data)
	if err != nil {
		return err
	}
	if !e.gate.enter() {
		return peer.ErrClosed
	}
	id := newID()
	done := make(chan peer.Receipt, 1)
	p, err := e.submit(addr, peer.Outgoing{ID: id, Data: data, Done: done})
	e.gate.leave()
	if err != nil {
		return err
	}
	select {
	case r := <-done:
		return r.Err
	case <-ctx.Done():
		p.Cancel(id, ctx.Err())
		return (<-done).Err
	}
}

// spareBytes bounds the buffers given back by Release and kept for reuse:
// a 1 MiB stream on loopback has 5 to 9 MiB in flight, and a buffer given
// back is taken again by the next message to start, so a few suffice.
const spareBytes = 8 << 20

// Release gives back the payload of a received message the application is
// done with, for a later message in fragments to be received into (see
// peer.Spares); an endpoint without the extension has no Spares and keeps
// nothing. The caller must not use data afterwards. Safe for concurrent
// use.
func (e *Endpoint) Release(data []byte) { e.cfg.Params.Spares.Put(data) }

// SendRaw writes data to addr as one datagram, without gtUDP framing and
// without any guarantee: the raw send of the original's passthrough. It
// returns the socket's error, ErrClosed once Close has begun, or
// wire.ErrTooLarge.
func (e *Endpoint) SendRaw(addr netip.AddrPort, data []byte) error {
	select {
	case <-e.closingCh:
		return peer.ErrClosed
	default:
	}
	addr = unmap(addr)
	if err := e.reach.check(addr); err != nil {
		return err
	}
	if len(data) > wire.MaxDatagram {
		return fmt.Errorf("%w: %d bytes, at most %d fit", wire.ErrTooLarge, len(data), wire.MaxDatagram)
	}
	if _, err := e.out.WriteBatch([][]byte{data}, addr); err != nil {
		return fmt.Errorf("gtudp: raw send to %v: %w", addr, err)
	}
	e.ctr.rawSent.Add(1)
	return nil
}

// check validates a reliable send before it takes any resource.
func (e *Endpoint) check(addr netip.AddrPort, data []byte) (netip.AddrPort, error) {
	addr = unmap(addr)
	if err := e.reach.check(addr); err != nil {
		return addr, err
	}
	if max := e.cfg.Params.MaxMessage; len(data) > max {
		return addr, fmt.Errorf("%w: %d bytes, at most %d (MaxMessage)", wire.ErrTooLarge, len(data), max)
	}
	return addr, nil
}

// submit hands m to the peer of addr, starting it if needed, and returns
// the peer. It never waits: the peer keeps m until its window has room.
func (e *Endpoint) submit(addr netip.AddrPort, m peer.Outgoing) (*peer.Peer, error) {
	for {
		e.mu.Lock()
		p := e.peers[addr]
		var err error
		if p == nil {
			p, err = e.startLocked(addr, true)
		}
		e.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if p.Send(m) == nil {
			return p, nil
		}
		// The peer no longer takes sends: Close is draining it, or it
		// retired or crashed between the lookup and the send. In the
		// latter cases forget it if the table still has it (its
		// goroutine removes it too, a moment later) and start anew.
		e.mu.Lock()
		closing := e.closing
		if e.peers[addr] == p {
			delete(e.peers, addr)
		}
		e.mu.Unlock()
		if closing {
			return nil, peer.ErrClosed
		}
	}
}

// outboxLoop runs in its own goroutine: it takes the messages users put on
// the Outbox and hands each to its peer, which sends it when its window
// has room. It never waits on one peer: a dead peer's full window holds
// back only messages to that peer. What the peers hold for the Outbox is
// bounded by Settings.OutboxQueue places over all peers; with every place
// taken, the loop waits for one, and so does the Outbox.
//
// It waits on the Outbox from inside the gate: a message it has taken is
// sent in full even if Close begins meanwhile, unless it still waits for a
// place (it then gets ErrClosed, unsent). Once the gate is shut it answers
// every message with an ErrClosed receipt, until Close stops it.
func (e *Endpoint) outboxLoop() {
	defer e.wg.Done()
	for {
		if !e.gate.enter() {
			m, ok := e.app.Next(e.stop)
			if !ok {
				return
			}
			e.refuse(m, peer.ErrClosed)
			continue
		}
		if m, ok := e.app.Next(e.closingCh); ok {
			e.post(m)
		}
		e.gate.leave()
	}
}

// post sends one message from the Outbox; its outcome goes to the App.
func (e *Endpoint) post(m Post) {
	if m.ID == (uuid.UUID{}) {
		m.ID = newID()
	}
	if m.Raw {
		// Raw datagrams have no exchange: nil says only that the socket
		// took it.
		r := peer.Receipt{ID: m.ID, Addr: unmap(m.Addr), Data: m.Data, Raw: true, Attempts: 1}
		if r.Err = e.SendRaw(m.Addr, m.Data); r.Err != nil {
			r.Attempts = 0
		}
		e.report(r)
		return
	}
	addr, err := e.check(m.Addr, m.Data)
	if err != nil {
		e.refuse(Post{ID: m.ID, Addr: addr, Data: m.Data}, err)
		return
	}
	if !e.takePlace() {
		e.refuse(Post{ID: m.ID, Addr: addr, Data: m.Data}, peer.ErrClosed)
		return
	}
	if _, err := e.submit(addr, peer.Outgoing{ID: m.ID, Data: m.Data, Queued: true, NoReceipt: e.cfg.DiscardReceipts}); err != nil {
		<-e.outboxPlaces
		e.refuse(Post{ID: m.ID, Addr: addr, Data: m.Data}, err)
	}
}

// takePlace takes an Outbox place, waiting for one while Close has not
// begun; a free place wins over Close.
func (e *Endpoint) takePlace() bool {
	select {
	case e.outboxPlaces <- struct{}{}:
		return true
	default:
	}
	select {
	case e.outboxPlaces <- struct{}{}:
		return true
	case <-e.closingCh:
		return false
	}
}

// dequeued gives an Outbox place back: a message that held one went out,
// or ended unsent (peer.Options.Dequeued).
func (e *Endpoint) dequeued() { <-e.outboxPlaces }

// refuse reports a message from the Outbox that was never sent.
func (e *Endpoint) refuse(m Post, err error) {
	if e.cfg.DiscardReceipts {
		return
	}
	if m.ID == (uuid.UUID{}) {
		m.ID = newID()
	}
	e.report(peer.Receipt{ID: m.ID, Addr: unmap(m.Addr), Data: m.Data, Err: err})
}

// report hands r to the App without waiting.
func (e *Endpoint) report(r peer.Receipt) {
	if !e.app.Report(r) {
		e.ctr.receiptsDropped.Add(1)
	}
}

// startLocked starts the peer of addr; e.mu is held. validated says the
// address is trusted (we are the first to send to it).
func (e *Endpoint) startLocked(addr netip.AddrPort, validated bool) (*peer.Peer, error) {
	if e.closing {
		return nil, peer.ErrClosed
	}
	if e.broken != nil {
		return nil, e.broken
	}
	if len(e.peers) >= e.cfg.MaxPeers && !e.evictLocked(validated) {
		return nil, ErrPeerLimit
	}
	var hook func(peer.Inbound)
	if h := e.hook; h != nil {
		hook = func(in peer.Inbound) { h(addr, in) }
	}
	p := peer.New(peer.Options{
		Addr:            addr,
		Params:          &e.cfg.Params,
		Clock:           e.cfg.Clock,
		Sender:          e.out,
		Outlet:          e.app,
		DroppedReceipts: &e.ctr.receiptsDropped,
		Logger:          e.cfg.Logger,
		IdleTimeout:     e.cfg.IdleTimeout,
		Validated:       validated,
		Seed:            e.seedLocked(),
		Retire:          e.retire,
		Memory:          e.graves.take(addr),
		Bury:            e.bury,
		Dequeued:        e.dequeued,
		Resume:          e.resume,
		BeforePacket:    hook,
	})
	e.peers[addr] = p
	e.orderLocked(p)
	e.ctr.started.Add(1)
	e.resume(p)
	return p, nil
}

// resume starts a goroutine for p: a new peer, or a parked one that has
// work again (the peer's Resume callback).
func (e *Endpoint) resume(p *peer.Peer) {
	e.wg.Add(1)
	go e.runPeer(p)
}

// seedLocked derives a fresh key for a peer's id sequence from the
// endpoint's random key, so ids are not predictable off-path.
func (e *Endpoint) seedLocked() [5]uint32 {
	e.seedCtr++
	var s [5]uint32
	for i := range s {
		s[i] = binary.LittleEndian.Uint32(e.seeds[4*i:]) ^ uint32(e.seedCtr*0x9E3779B97F4A7C15>>(8*i))
	}
	return s
}

// runPeer runs in its own goroutine: the peer's loop, under the
// supervisor's recover, then, unless the peer only parked, its removal
// from the table.
//
// Close waits for the peers it drains (Done), then for this WaitGroup: a
// parked peer is resumed by Drain before that, so wg.Add never races the
// final Wait.
func (e *Endpoint) runPeer(p *peer.Peer) {
	defer e.wg.Done()
	parked := false
	defer func() {
		if r := recover(); r != nil {
			e.ctr.crashes.Add(1)
			if e.cfg.Logger != nil {
				e.cfg.Logger.Error("gtudp: peer actor panicked; its messages fail, the endpoint goes on",
					"peer", p.Addr(), "panic", r, "stack", string(debug.Stack()))
			}
			p.Crash(r)
			parked = false
		}
		if !parked {
			e.reap(p)
		}
	}()
	parked = p.Run(e.peerCtx)
}

// reap removes an ended peer from the table, if it is still the entry, and
// keeps its counters.
func (e *Endpoint) reap(p *peer.Peer) {
	now := e.cfg.Clock.Now()
	e.mu.Lock()
	if e.peers[p.Addr()] == p {
		delete(e.peers, p.Addr())
	}
	e.graves.sweep(now) // peers end as a flood ages out: so do its graves
	e.gone.Add(p.Stats())
	e.mu.Unlock()
	e.ctr.retired.Add(1)
}

// retire is the peers' Retire callback: an idle peer leaves the table,
// unless a send reached it meanwhile. Closing its mailboxes under the lock
// makes sure no lookup finds a peer that will not run again.
func (e *Endpoint) retire(p *peer.Peer) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.peers[p.Addr()] != p {
		return true
	}
	if !p.CloseIfIdle() {
		return false
	}
	delete(e.peers, p.Addr())
	return true
}

// Stats returns the endpoint's counters: its own, and the totals over its
// peers as of their last wake-up.
func (e *Endpoint) Stats() Stats {
	var s Stats
	e.mu.Lock()
	s.Stats = e.gone
	for _, p := range e.peers {
		s.Stats.Add(p.Stats())
		if p.Parked() {
			s.PeersParked++
		}
	}
	s.Peers = len(e.peers)
	e.mu.Unlock()
	s.Addr = e.local
	e.ctr.fill(&s)
	s.BudgetUsed = e.cfg.Params.Budget.Used()
	s.SpareBytes = e.cfg.Params.Spares.Bytes()
	return s
}

// PeerStats returns the counters of the live peer of addr, if there is one.
func (e *Endpoint) PeerStats(addr netip.AddrPort) (peer.Stats, bool) {
	e.mu.Lock()
	p := e.peers[unmap(addr)]
	e.mu.Unlock()
	if p == nil {
		return peer.Stats{}, false
	}
	return p.Stats(), true
}

// Close shuts the endpoint down in order, each step below, and returns when
// no goroutine of the endpoint is left. It is idempotent: later calls wait
// for the first (or for their own ctx) and return its result.
//
// Peers finish the exchanges under way as the original's cleanup() does;
// if ctx ends first, what is left fails with ErrClosed and Close returns
// ctx.Err(). Keep reading the Inbox while Close drains, or held messages
// are dropped unanswered (their senders are not told they arrived).
func (e *Endpoint) Close(ctx context.Context) error {
	idle, first := e.gate.shut()
	if !first {
		select {
		case <-e.closed:
			return e.closeErr
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	defer close(e.closed)

	// 1. Stop taking sends: new ones (Send, SendRaw, the Outbox) fail with
	// ErrClosed. Those already taken are handed to their peers first; one
	// waiting for a full window waits until ctx ends.
	close(e.closingCh)
	var err error
	select {
	case <-idle:
	case <-ctx.Done():
		err = ctx.Err()
	}

	// 2. Let every peer drain: no new DATA or sends, the exchanges under
	// way go on until RECV/ACK or their limits. The table cannot grow now.
	e.mu.Lock()
	e.closing = true
	live := make([]*peer.Peer, 0, len(e.peers))
	for _, p := range e.peers {
		live = append(live, p)
	}
	e.mu.Unlock()
	for _, p := range live {
		p.Drain()
	}
	for _, p := range live {
		if err != nil {
			break
		}
		select {
		case <-p.Done():
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	// 3. If ctx ended first, every peer fails what it has left with
	// ErrClosed and exits.
	if err != nil {
		e.abort()
	}
	for _, p := range live {
		<-p.Done()
	}
	e.abort()

	// 4. Stop the reader and the Outbox loop. A socket we own is closed;
	// a caller's is only unblocked, by a read deadline in the past.
	close(e.stop)
	if e.own {
		if cerr := e.conn.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) && err == nil {
			err = fmt.Errorf("gtudp: closing the socket: %w", cerr)
		}
	} else {
		_ = e.conn.SetReadDeadline(time.Unix(1, 0))
	}

	// 5. Wait for every goroutine: reader, Outbox loop, peers.
	e.wg.Wait()
	if !e.own {
		_ = e.conn.SetReadDeadline(time.Time{})
	}

	// 6. Nothing is delivered or reported any more: the App closes its
	// channels, last.
	e.app.Closed()
	if err == nil {
		e.mu.Lock()
		err = e.broken
		e.mu.Unlock()
	}
	e.closeErr = err
	return err
}

// addrPort returns a's address and port, unmapped.
func addrPort(a net.Addr) (netip.AddrPort, error) {
	if u, ok := a.(*net.UDPAddr); ok {
		return unmap(u.AddrPort()), nil
	}
	ap, err := netip.ParseAddrPort(a.String())
	return unmap(ap), err
}

// unmap turns an IPv4-mapped IPv6 address into its IPv4 form, so that one
// remote host is one key whatever the socket's family.
func unmap(a netip.AddrPort) netip.AddrPort {
	if a.Addr().Is4In6() {
		return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
	}
	return a
}

// gate counts the sends under way and, once shut, admits no more.
type gate struct {
	mu     sync.Mutex
	n      int
	isShut bool
	idle   chan struct{} // closed when shut and n is 0
}

// enter admits a send, or reports false once the gate is shut.
func (g *gate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.isShut {
		return false
	}
	g.n++
	return true
}

// leave ends a send admitted by enter.
func (g *gate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n--; g.n == 0 && g.isShut {
		close(g.idle)
	}
}

// shut admits no more sends and returns a channel closed when those under
// way have left; first is false if the gate was shut already.
func (g *gate) shut() (idle <-chan struct{}, first bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.isShut {
		return g.idle, false
	}
	g.isShut = true
	if g.n == 0 {
		close(g.idle)
	}
	return g.idle, true
}

// newID returns a random (version 4) UUID for a message sent without one.
// uuid.New would do, but it allocates on every call (its buffer escapes),
// and this is on the path of every message.
func newID() uuid.UUID {
	var id uuid.UUID
	if _, err := rand.Read(id[:]); err != nil {
		panic(err) // crypto/rand.Read does not fail on supported platforms
	}
	id[6] = id[6]&0x0f | 0x40 // version 4
	id[8] = id[8]&0x3f | 0x80 // RFC 4122 variant
	return id
}
