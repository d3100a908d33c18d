package peer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/google/uuid"
	"github.com/gtudp/gtudp/mailbox"
	"github.com/gtudp/gtudp/wire"
)

// Writer writes one datagram to an address. net.PacketConn satisfies it.
type Writer interface {
	WriteTo(b []byte, addr net.Addr) (int, error)
}

// Inbound is a decoded packet from the peer, as the socket reader hands it
// over. For Data, Packet.Payload is a copy the peer owns.
type Inbound struct {
	Packet wire.Packet
	Size   int // bytes on the wire
}

// cancel asks the peer to end a message early.
type cancel struct {
	id  uuid.UUID
	err error
}

// Options configure a Peer.
type Options struct {
	Addr   netip.AddrPort
	Config Config // with defaults, validated
	Format wire.Format
	Clock  clock.Clock
	Conn   Writer
	// Inbox receives delivered messages (non-blocking: a full Inbox holds
	// them back). Receipts receives the outcomes of messages without a
	// Done channel: one that finds it full waits in the peer, which hands
	// it over as soon as there is room; past Window waiting receipts, or
	// when the peer ends, they are dropped and counted in DroppedReceipts.
	Inbox           chan<- Message
	Receipts        chan<- Receipt
	DroppedReceipts *atomic.Uint64
	// Logger, if not nil, gets one line per packet at Debug level and
	// write errors at Warn.
	Logger *slog.Logger
	// IdleTimeout is how long the peer waits, with nothing at all to do,
	// before offering to Retire.
	IdleTimeout time.Duration
	// Validated: see NewState.
	Validated bool
	// Seed keys the id sequence; see NewState.
	Seed [5]uint32
	// Retire is called from the peer's goroutine when it has been idle
	// for IdleTimeout. The owner removes the peer from its table if
	// p.CloseIfIdle() succeeds, and reports whether the peer is to exit.
	Retire func(p *Peer) bool
	// BeforePacket, if not nil, is called in the peer's goroutine before
	// each packet is handled. It exists for tests: a panic in it behaves
	// as a bug in the peer would.
	BeforePacket func(Inbound)
}

// Peer is the actor of one remote address: a goroutine (Run) that owns a
// State, fed through mailboxes and woken by one timer from the Clock.
//
// Ownership: the State, the write buffer and the batches belong to the
// goroutine in Run. Other goroutines reach the peer only through its
// methods, which are safe for concurrent use: Put (the socket reader),
// Send and Cancel (user sends), Drain and Stats.
type Peer struct {
	opt  Options
	addr *net.UDPAddr // made once: WriteTo needs a net.Addr
	udp  *net.UDPConn // opt.Conn when it is one: writes to opt.Addr without converting it
	log  *slog.Logger // opt.Logger with the peer's address, or nil
	st   *State

	net     *mailbox.Mailbox[Inbound]
	sends   *mailbox.Mailbox[Outgoing]
	cancels *mailbox.Mailbox[cancel]
	// window holds a token for every message accepted and not finished:
	// Send waits on it when Window messages are in flight.
	window chan struct{}

	drainOnce sync.Once
	drain     chan struct{} // closed by Drain
	closing   chan struct{} // closed when the peer takes no more sends
	closeOnce sync.Once
	done      chan struct{} // closed when Run returns

	statsMu sync.Mutex
	stats   Stats

	// Owned by Run.
	buf         []byte
	inb         []Inbound
	outb        []Outgoing
	cancb       []cancel
	pkts        []wire.Packet
	outs        []Outcome
	routed      int       // outcomes of outs already handed on
	late        []Receipt // receipts waiting for room in Receipts, oldest first
	writeErrors uint64
	timer       *clock.Timer
	armed       bool
	armedFor    time.Time
}

// netMailboxSize bounds the packets waiting for a peer. It is larger than
// the default window so that a burst of a full window of DATA, RECV or ACK
// from a fast sender is not dropped.
const netMailboxSize = 2048

// New returns a peer ready to Run.
func New(opt Options) *Peer {
	p := &Peer{
		opt:     opt,
		addr:    net.UDPAddrFromAddrPort(opt.Addr),
		st:      NewState(opt.Config, opt.Addr, opt.Clock.Now(), opt.Seed, opt.Validated),
		net:     mailbox.New[Inbound](netMailboxSize),
		sends:   mailbox.New[Outgoing](opt.Config.Window),
		cancels: mailbox.New[cancel](64),
		window:  make(chan struct{}, opt.Config.Window),
		drain:   make(chan struct{}),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	p.udp, _ = opt.Conn.(*net.UDPConn)
	if opt.Logger != nil {
		p.log = opt.Logger.With("peer", opt.Addr)
	}
	p.stats = p.st.Stats()
	return p
}

// Addr returns the peer's address.
func (p *Peer) Addr() netip.AddrPort { return p.opt.Addr }

// Put hands the peer a packet from the socket without waiting. It returns
// mailbox.ErrFull when the peer is behind (the packet is dropped; the
// protocol re-sends) and mailbox.ErrClosed when the peer has exited.
func (p *Peer) Put(in Inbound) error { return p.net.TryPut(in) }

// Send hands the peer a message to send reliably. It waits while the
// peer's window is full, and returns ctx.Err() if ctx ends first, or
// ErrClosed if the peer stops taking sends (it exited, or the endpoint is
// closing). On nil the message will get exactly one outcome: on m.Done,
// or on the endpoint's Receipts when m.Done is nil.
func (p *Peer) Send(ctx context.Context, m Outgoing) error {
	select {
	case <-p.closing:
		return ErrClosed
	default:
	}
	select {
	case p.window <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-p.closing:
		return ErrClosed
	}
	// The window token bounds what is queued and in flight together, so
	// this Put finds room at once; it can only fail on a closed mailbox.
	if err := p.sends.Put(context.Background(), m); err != nil {
		<-p.window
		return ErrClosed
	}
	return nil
}

// Cancel asks the peer to end the message with the given ID with err, if
// it is still in flight. The outcome arrives on the message's Done channel
// as usual: the failure, or the success that won the race.
func (p *Peer) Cancel(id uuid.UUID, err error) {
	// The peer drains its cancels at every wake-up, so this waits only
	// for a moment; on a closed peer every outcome is out already.
	_ = p.cancels.Put(context.Background(), cancel{id: id, err: err})
}

// Drain tells the peer the endpoint is closing: it takes no new sends and
// no new DATA, finishes the exchanges under way, and exits.
func (p *Peer) Drain() {
	p.drainOnce.Do(func() {
		p.stopSends()
		close(p.drain)
	})
}

// stopSends makes later Sends fail with ErrClosed and wakes those waiting
// for the window.
func (p *Peer) stopSends() {
	p.closeOnce.Do(func() {
		p.sends.Close()
		close(p.closing)
	})
}

// CloseIfIdle closes the peer's mailboxes if no send is waiting in them,
// and reports whether it did. The owner calls it from Retire, under the
// lock of its peer table, so that no send can reach a peer that exits.
func (p *Peer) CloseIfIdle() bool {
	if !p.sends.CloseIfEmpty() {
		return false
	}
	p.stopSends()
	p.net.Close()
	p.cancels.Close()
	return true
}

// Done returns a channel closed when Run has returned.
func (p *Peer) Done() <-chan struct{} { return p.done }

// Stats returns the peer's counters as of its last wake-up.
func (p *Peer) Stats() Stats {
	p.statsMu.Lock()
	defer p.statsMu.Unlock()
	return p.stats
}

// Run is the peer's loop; it runs in its own goroutine and returns when the
// peer retires (idle for IdleTimeout and Retire agreed), when it has drained
// after Drain, or when ctx ends (every message in flight then fails with
// ErrClosed). Every message accepted by Send gets its outcome before Run
// returns.
//
// One select waits on the mailboxes, the single timer (armed to the
// earliest deadline of the state, or the idle deadline), the Inbox when a
// delivery is held back, the drain signal and ctx. A timer fire only wakes
// the loop; due work is found by comparing deadlines with now.
func (p *Peer) Run(ctx context.Context) {
	defer close(p.done)
	p.timer = p.opt.Clock.Timer(time.Hour)
	p.stopTimer()
	defer p.stopTimer()

	st := p.st
	now := p.opt.Clock.Now()
	var idleSince time.Time
	draining := false
	drainCh := p.drain
	for {
		p.flush(now)
		if draining && !st.Busy() && p.sends.Len() == 0 {
			p.shut(ErrClosed)
			return
		}
		if !draining && st.Idle() {
			if idleSince.IsZero() {
				idleSince = now
				st.Compact()
				p.net.Shrink()
				p.buf = nil
			}
			if !now.Before(idleSince.Add(p.opt.IdleTimeout)) {
				if p.opt.Retire(p) {
					p.shut(ErrClosed)
					return
				}
				// Refused (a send is waiting, or the owner wants the
				// peer kept): ask again a full IdleTimeout later rather
				// than spin on a deadline in the past.
				idleSince = now
			}
		} else {
			idleSince = time.Time{}
		}
		p.arm(now, idleSince)

		var inbox chan<- Message
		next, ok := st.Next()
		if ok {
			inbox = p.opt.Inbox
		}
		var receipts chan<- Receipt
		var late Receipt
		if len(p.late) > 0 {
			receipts, late = p.opt.Receipts, p.late[0]
		}
		select {
		case <-p.net.Ready():
			now = p.opt.Clock.Now()
			p.inb = p.net.Drain(p.inb[:0], 0)
			for _, in := range p.inb {
				if p.opt.BeforePacket != nil {
					p.opt.BeforePacket(in)
				}
				if in.Packet.Kind != wire.Recv || !p.opt.Config.AckOnArrival {
					p.logPacket("IN", in.Packet, in.Size) // else the owner logged it with its ACK
				}
				st.Receive(now, in.Packet, in.Size)
			}
			clear(p.inb)
		case <-p.sends.Ready():
			now = p.opt.Clock.Now()
			p.takeSends(now)
		case <-p.cancels.Ready():
			now = p.opt.Clock.Now()
			// Cancels first, then sends: a message is put before its
			// cancel, so every cancel taken finds its message taken too.
			p.cancb = p.cancels.Drain(p.cancb[:0], 0)
			p.takeSends(now)
			for _, c := range p.cancb {
				st.Cancel(now, c.id, c.err)
			}
			clear(p.cancb)
		case <-p.timer.C:
			p.armed = false
			now = p.opt.Clock.Now()
		case inbox <- next:
			now = p.opt.Clock.Now()
			st.Delivered(now)
		case receipts <- late:
			now = p.opt.Clock.Now()
			p.late[0] = Receipt{}
			p.late = p.late[1:]
			p.handLate()
		case <-drainCh:
			now = p.opt.Clock.Now()
			draining, drainCh = true, nil
			st.Drain()
		case <-ctx.Done():
			now = p.opt.Clock.Now()
			p.flush(now)
			p.shut(ErrClosed)
			return
		}
		st.Tick(now)
	}
}

// takeSends moves the messages waiting in the sends mailbox into the state.
func (p *Peer) takeSends(now time.Time) {
	p.outb = p.sends.Drain(p.outb[:0], 0)
	for _, m := range p.outb {
		if err := p.st.Send(now, m); err != nil {
			// Cannot happen while the window token is honoured; the
			// message still gets its one outcome.
			p.route(Outcome{Receipt: Receipt{ID: m.ID, Addr: p.opt.Addr, Err: err}, Done: m.Done})
		}
	}
	clear(p.outb)
}

// flush writes the packets the state produced, then hands out outcomes and
// as many deliveries as the Inbox takes, and publishes the stats. Packets go
// first: a DATA aliases its message's Data, which is the user's again once
// the outcome is out.
func (p *Peer) flush(now time.Time) {
	p.pkts = p.st.TakePackets(p.pkts[:0])
	for _, pkt := range p.pkts {
		p.write(pkt)
	}
	clear(p.pkts)

	p.outs = p.st.TakeOutcomes(p.outs[:0])
	// Stats first: whoever gets an outcome finds it counted.
	if len(p.outs) > 0 {
		p.publish()
		p.handLate() // the older receipts first
	}
	for p.routed = 0; p.routed < len(p.outs); {
		o := p.outs[p.routed]
		p.routed++
		p.route(o)
	}
	clear(p.outs)
	p.outs, p.routed = p.outs[:0], 0

	for {
		m, ok := p.st.Next()
		if !ok {
			break
		}
		select {
		case p.opt.Inbox <- m:
			p.st.Delivered(now)
			continue
		default:
		}
		break
	}
	// Deliveries produce RECVs.
	p.pkts = p.st.TakePackets(p.pkts[:0])
	for _, pkt := range p.pkts {
		p.write(pkt)
	}
	clear(p.pkts)

	p.publish()
}

func (p *Peer) write(pkt wire.Packet) {
	p.buf = p.opt.Format.Append(p.buf[:0], pkt)
	p.logPacket("OUT", pkt, len(p.buf))
	var err error
	if p.udp != nil {
		_, err = p.udp.WriteToUDPAddrPort(p.buf, p.opt.Addr)
	} else {
		_, err = p.opt.Conn.WriteTo(p.buf, p.addr)
	}
	if err != nil {
		p.writeErrors++
		if p.log != nil && !errors.Is(err, net.ErrClosed) {
			p.log.Warn("gtudp: write failed", "kind", pkt.Kind, "err", err)
		}
	}
}

// route hands one outcome on and frees its window token: the message is
// done, even if its receipt has to wait for room in Receipts.
func (p *Peer) route(o Outcome) {
	<-p.window
	if o.Done != nil {
		o.Done <- o.Receipt // capacity 1, one receipt per message: never blocks
		return
	}
	if len(p.late) == 0 {
		select {
		case p.opt.Receipts <- o.Receipt:
			return
		default:
		}
	}
	// Receipts is full for a moment (a batch of RECVs finishes many
	// messages at once) or nobody reads it: keep the receipt, within
	// bounds, and hand it over from the loop.
	if len(p.late) >= p.opt.Config.Window {
		p.dropReceipts(1)
		p.late[0] = Receipt{}
		p.late = p.late[1:]
	}
	p.late = append(p.late, o.Receipt)
}

// handLate hands waiting receipts to Receipts while it has room.
func (p *Peer) handLate() {
	for len(p.late) > 0 {
		select {
		case p.opt.Receipts <- p.late[0]:
			p.late[0] = Receipt{}
			p.late = p.late[1:]
			continue
		default:
		}
		return
	}
	p.late = nil // let the backing array go
}

func (p *Peer) dropReceipts(n int) {
	if p.opt.DroppedReceipts != nil {
		p.opt.DroppedReceipts.Add(uint64(n))
	}
}

// dropLate hands over what receipts fit and drops the rest: the peer is
// ending and nobody will hand them over later.
func (p *Peer) dropLate() {
	p.handLate()
	p.dropReceipts(len(p.late))
	p.late = nil
}

func (p *Peer) publish() {
	s := p.st.Stats()
	s.WriteErrors = p.writeErrors
	p.statsMu.Lock()
	p.stats = s
	p.statsMu.Unlock()
}

// arm sets the timer to the state's next deadline, or to the idle deadline.
// An alarm already set earlier is kept: it will fire, find nothing due and
// re-arm, which is cheaper than resetting the timer for every message.
func (p *Peer) arm(now, idleSince time.Time) {
	at, ok := p.st.NextDeadline()
	if !idleSince.IsZero() {
		at, ok = idleSince.Add(p.opt.IdleTimeout), true
	}
	if !ok {
		return
	}
	if p.armed && !at.Before(p.armedFor) {
		return
	}
	p.stopTimer()
	// at is after now: Tick has done everything due at now. A zero or
	// negative Reset would not fire on the mock clock until it moves.
	p.timer.Reset(max(at.Sub(now), time.Nanosecond))
	p.armed, p.armedFor = true, at
}

// stopTimer stops the timer and empties its channel: the mock clock's
// channel is buffered and a fire that was not received would block the
// next one (and the clock with it).
func (p *Peer) stopTimer() {
	if !p.timer.Stop() {
		select {
		case <-p.timer.C:
		default:
		}
	}
	p.armed = false
}

// shut ends the peer: every message still in flight, or waiting in the
// sends mailbox, fails with err, and no mailbox takes anything more.
func (p *Peer) shut(err error) {
	p.stopSends()
	p.net.Close()
	p.cancels.Close()
	p.st.Abort(err)
	p.outb = p.sends.Drain(p.outb[:0], 0)
	for _, m := range p.outb {
		p.route(Outcome{Receipt: Receipt{ID: m.ID, Addr: p.opt.Addr, Err: err}, Done: m.Done})
	}
	clear(p.outb)
	p.outs = p.st.TakeOutcomes(p.outs[:0])
	for _, o := range p.outs {
		p.route(o)
	}
	clear(p.outs)
	p.dropLate()
	p.publish()
}

// Crash ends a peer whose goroutine panicked with r: the supervisor calls it
// from its recover. Outcomes already taken and not yet handed on, messages
// in flight and sends waiting in the mailbox all fail with an
// UndeliveredError naming the panic. The state may be inconsistent after a
// panic, so this relies only on its message table and outcome list.
func (p *Peer) Crash(r any) {
	reason := fmt.Sprintf("peer actor failed: %v", r)
	p.stopSends()
	p.net.Close()
	p.cancels.Close()
	if p.timer != nil {
		p.stopTimer()
	}
	for _, o := range p.outs[p.routed:] {
		p.route(o)
	}
	p.outs, p.routed = nil, 0
	fail := func(id uuid.UUID, attempts int, done chan<- Receipt) {
		err := &UndeliveredError{Addr: p.opt.Addr, ID: id, Attempts: attempts, Reason: reason}
		p.route(Outcome{Receipt: Receipt{ID: id, Addr: p.opt.Addr, Err: err, Attempts: attempts}, Done: done})
	}
	for _, o := range p.st.outcomes {
		p.route(o)
	}
	p.st.outcomes = nil
	for id, o := range p.st.out {
		fail(o.msg.ID, o.attempts, o.msg.Done)
		delete(p.st.out, id)
	}
	for _, m := range p.sends.Drain(nil, 0) {
		fail(m.ID, 0, m.Done)
	}
	p.dropLate()
	p.publish()
}

// logPacket writes the original's debug line: direction, kind, id, size.
func (p *Peer) logPacket(dir string, pkt wire.Packet, size int) {
	if p.log == nil || !p.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	p.log.LogAttrs(context.Background(), slog.LevelDebug, dir,
		slog.String("kind", pkt.Kind.String()),
		slog.String("id", pkt.ID.String()),
		slog.Int("size", size))
}
