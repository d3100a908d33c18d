package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
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

// BatchWriter is a Writer that also writes several datagrams to one
// address in one call, as sendmmsg(2) does. A peer whose Conn is one
// writes everything a wake-up produced in one batch. WriteBatch returns
// how many of bufs were written, and the error that stopped it, if any;
// it must be safe for concurrent use (every peer writes through it) and
// must not keep bufs.
type BatchWriter interface {
	Writer
	WriteBatch(bufs [][]byte, addr netip.AddrPort) (int, error)
}

// Inbound is a decoded packet from the peer, as the socket reader hands it
// over. For Data, Packet.Payload is a copy the peer owns.
type Inbound struct {
	Packet wire.Packet
	Size   int       // bytes on the wire
	At     time.Time // when it was read from the socket; zero: when the peer takes it
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
	// Resume, if not nil, lets the peer park: after ParkAfter with
	// nothing in flight (it may still remember finished ids), Run returns
	// true and the goroutine ends, so an idle peer costs no stack. The
	// first packet, send, cancel, Drain or deadline after that calls
	// Resume, once, from whichever goroutine brought it; Resume must
	// start a goroutine that calls Run again. Without Resume the peer's
	// goroutine lives until the peer ends.
	Resume func(p *Peer)
	// ParkAfter is how long the peer stays quiet before it parks.
	// Default (zero) 1 s: a peer in steady use keeps its goroutine; one
	// that goes quiet gives it back soon after.
	ParkAfter time.Duration
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
	bw   BatchWriter  // opt.Conn when it is one
	udp  *net.UDPConn // opt.Conn when it is one: writes to opt.Addr without converting it
	addr *net.UDPAddr // otherwise, made once: WriteTo needs a net.Addr
	log  *slog.Logger // opt.Logger with the peer's address, or nil
	st   *State

	net     *mailbox.Mailbox[Inbound]
	sends   *mailbox.Mailbox[Outgoing]
	cancels *mailbox.Mailbox[cancel]
	// window holds a token for every message accepted and not finished:
	// Send waits on it when Window messages are in flight.
	window chan struct{}

	drainOnce sync.Once
	drain     atomic.Bool   // set by Drain, which then wakes the loop
	closing   chan struct{} // closed when the peer takes no more sends
	closeOnce sync.Once
	done      chan struct{} // closed when Run returns

	statsMu sync.Mutex
	stats   Stats

	// parked is set while the peer has no goroutine; whoever clears it
	// (CompareAndSwap) calls Resume.
	parked atomic.Bool
	// timer is the peer's one timer, for every deadline: it calls alarm,
	// which wakes the running loop or resumes a parked peer.
	timer *clock.Timer
	// wake is the loop's one wake-up channel, buffered(1): the three
	// mailboxes share it as their ready channel, and alarm and Drain
	// leave a token on it too. One channel, not four, keeps the select
	// the loop parks in cheap.
	wakeup chan struct{}

	// Owned by Run (whichever goroutine runs it; a resume hands them on).
	buf         []byte   // packets of one flush, encoded back to back
	bufs        [][]byte // and each of them, for WriteBatch
	inb         []Inbound
	outb        []Outgoing
	cancb       []cancel
	pkts        []wire.Packet
	outs        []Outcome
	routed      int       // outcomes of outs already handed on
	late        []Receipt // receipts waiting for room in Receipts, oldest first
	writeErrors uint64
	armed       bool
	armedFor    time.Time
	quietSince  time.Time // nothing in flight since; zero while busy
	idleSince   time.Time // nothing at all (no remembered id) since
}

// defaultParkAfter is Options.ParkAfter's default.
const defaultParkAfter = time.Second

// parkSlack delays a parked peer's wake-up for its next dedupe expiry, so
// that one wake-up forgets the ids of a second of traffic rather than one
// each. Remembering an id a little longer is harmless.
const parkSlack = time.Second

// flushEvery is how many packets the loop takes from its mailbox before
// it flushes: a quarter of the default HoldLimit.
const flushEvery = 256

// netMailbox bounds the packets waiting for a peer: a burst of a full
// window of DATA from the remote (up to RecvWindow of them are taken) and
// the RECV and ACK for a full window of ours must fit, or the burst is
// dropped and costs the sender a timeout. The ring grows only as far as it
// is used.
func netMailbox(c Config) int { return max(2048, c.RecvWindow+2*c.Window) }

// New returns a peer ready to Run.
func New(opt Options) *Peer {
	wake := make(chan struct{}, 1)
	p := &Peer{
		opt:     opt,
		net:     mailbox.NewShared[Inbound](netMailbox(opt.Config), wake),
		sends:   mailbox.NewShared[Outgoing](opt.Config.Window, wake),
		cancels: mailbox.NewShared[cancel](64, wake),
		window:  make(chan struct{}, opt.Config.Window),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
		wakeup:  wake,
	}
	p.st = newState(&p.opt.Config, opt.Addr, opt.Clock.Now(), opt.Seed, opt.Validated)
	if p.opt.ParkAfter <= 0 {
		p.opt.ParkAfter = defaultParkAfter
	}
	p.timer = opt.Clock.AfterFunc(time.Hour, p.alarm)
	p.timer.Stop()
	p.bw, _ = opt.Conn.(BatchWriter)
	if p.udp, _ = opt.Conn.(*net.UDPConn); p.udp == nil && p.bw == nil {
		p.addr = net.UDPAddrFromAddrPort(opt.Addr)
	}
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
func (p *Peer) Put(in Inbound) error {
	err := p.net.TryPut(in)
	if err == nil {
		p.wake()
	}
	return err
}

// wake resumes the peer if it is parked, and reports whether it did.
// Call it after putting work where the peer's loop looks.
func (p *Peer) wake() bool {
	if p.parked.Load() && p.parked.CompareAndSwap(true, false) {
		p.opt.Resume(p)
		return true
	}
	return false
}

// alarm is the timer's function: it wakes the loop, or the parked peer.
func (p *Peer) alarm() {
	if p.wake() {
		return
	}
	select {
	case p.wakeup <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// Parked reports whether the peer is parked: idle, with no goroutine.
func (p *Peer) Parked() bool { return p.parked.Load() }

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
	p.wake()
	return nil
}

// Cancel asks the peer to end the message with the given ID with err, if
// it is still in flight. The outcome arrives on the message's Done channel
// as usual: the failure, or the success that won the race.
func (p *Peer) Cancel(id uuid.UUID, err error) {
	// The peer drains its cancels at every wake-up, so this waits only
	// for a moment; on a closed peer every outcome is out already.
	if p.cancels.Put(context.Background(), cancel{id: id, err: err}) == nil {
		p.wake()
	}
}

// Drain tells the peer the endpoint is closing: it takes no new sends and
// no new DATA, finishes the exchanges under way, and exits.
func (p *Peer) Drain() {
	p.drainOnce.Do(func() {
		p.stopSends()
		p.drain.Store(true)
		p.alarm() // wake the loop, or resume the parked peer
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
// ErrClosed). Every message accepted by Send gets its outcome before the
// peer ends. It returns true, instead, when the peer parks (see
// Options.Resume): the peer has not ended, and Resume will ask for Run
// again.
//
// The loop waits on one wake-up channel, where the mailboxes, the single
// timer (armed to the earliest deadline of the state, or the idle or park
// deadline), Drain and the end of ctx all leave a token; also on the Inbox
// when a delivery is held back and on Receipts when a receipt is. A timer
// fire only wakes the loop; due work is found by comparing deadlines with
// now.
func (p *Peer) Run(ctx context.Context) (parked bool) {
	defer func() {
		if !parked {
			close(p.done)
		}
	}()
	// The loop waits on its wake-up channel alone: ctx ending leaves a
	// token there too.
	stop := context.AfterFunc(ctx, p.alarm)
	defer stop()
	st := p.st
	now := p.opt.Clock.Now()
	st.Tick(now)    // a resumed peer may have been woken for a deadline
	p.armed = false // and its timer may have fired, or be set for a parked peer
	draining := false
	for {
		if !draining && p.drain.Load() {
			draining = true
			st.Drain()
		}
		p.flush(now)
		if draining && !st.Busy() && p.sends.Len() == 0 {
			p.shut(ErrClosed)
			return false
		}
		if !draining && !st.Busy() && len(p.late) == 0 {
			if p.quietSince.IsZero() {
				p.quietSince = now
			}
			if !st.Idle() {
				p.idleSince = time.Time{}
			} else if p.idleSince.IsZero() {
				// Memory is given back when the peer parks, a second
				// from now: a stream whose window drains for a moment
				// must not reallocate its tables every time.
				p.idleSince = now
			}
			if !p.idleSince.IsZero() && !now.Before(p.idleSince.Add(p.opt.IdleTimeout)) {
				if p.opt.Retire(p) {
					p.shut(ErrClosed)
					return false
				}
				// Refused (a send is waiting, or the owner wants the
				// peer kept): ask again a full IdleTimeout later rather
				// than spin on a deadline in the past.
				p.idleSince = now
			}
			if p.opt.Resume != nil && !now.Before(p.quietSince.Add(p.opt.ParkAfter)) && p.park(ctx, now) {
				return true
			}
		} else {
			p.quietSince, p.idleSince = time.Time{}, time.Time{}
		}
		p.arm(now)

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
		if inbox == nil && receipts == nil {
			// Nothing to hand over: a plain receive parks and wakes
			// cheaper than a select.
			<-p.wakeup
			now = p.onWakeup()
		} else {
			select {
			case <-p.wakeup:
				now = p.onWakeup()
			case inbox <- next:
				now = p.opt.Clock.Now()
				st.Delivered(now)
			case receipts <- late:
				now = p.opt.Clock.Now()
				p.late[0] = Receipt{}
				p.late = p.late[1:]
				p.handLate()
			}
		}
		if ctx.Err() != nil {
			p.flush(now)
			p.shut(ErrClosed)
			return false
		}
		st.Tick(now)
	}
}

// onWakeup handles a token on the wake-up channel: packets, cancels and
// sends waiting in the mailboxes, and the timer. It returns the time now.
func (p *Peer) onWakeup() time.Time {
	st := p.st
	now := p.opt.Clock.Now()
	if p.armed && !now.Before(p.armedFor) {
		p.armed = false // the timer has fired, or is about to: re-arm
	}
	p.inb = p.net.Drain(p.inb[:0], 0)
	for i, in := range p.inb {
		if i > 0 && i%flushEvery == 0 {
			// A long batch: deliver and answer what it has so far, so a
			// burst beyond HoldLimit is not withheld while the Inbox has
			// room, and RECVs go out sooner.
			p.flush(now)
		}
		if p.opt.BeforePacket != nil {
			p.opt.BeforePacket(in)
		}
		if in.Packet.Kind != wire.Recv || !p.opt.Config.AckOnArrival {
			p.logPacket("IN", in.Packet, in.Size) // else the owner logged it with its ACK
		}
		st.ReceiveAt(now, in.At, in.Packet, in.Size)
	}
	clear(p.inb)
	// Cancels first, then sends: a message is put before its cancel, so
	// every cancel taken finds its message taken too.
	p.cancb = p.cancels.Drain(p.cancb[:0], 0)
	if p.sends.Len() > 0 {
		// A DATA's round trip starts when it is written, just after: not
		// when the loop woke up.
		now = p.opt.Clock.Now()
		p.takeSends(now)
	}
	for _, c := range p.cancb {
		st.Cancel(now, c.id, c.err)
	}
	clear(p.cancb)
	return now
}

// park gives the peer's goroutine up, if nothing is waiting for it: it
// releases what the loop keeps for reuse, arms the timer for the next
// dedupe expiry or the idle deadline, and marks the peer parked. It
// reports whether the peer parked; false means there is work, and the
// loop goes on.
//
// Whoever puts work for the peer after that finds it parked and resumes
// it (wake); park looks for work after marking the peer parked, so of the
// two at least one sees the other and the work is never left unseen.
func (p *Peer) park(ctx context.Context, now time.Time) bool {
	if p.hasWork(ctx) {
		return false
	}
	at, ok := p.st.NextDeadline() // a dedupe expiry: nothing is in flight
	if ok {
		at = at.Add(parkSlack)
	}
	if !p.idleSince.IsZero() {
		if r := p.idleSince.Add(p.opt.IdleTimeout); !ok || r.Before(at) {
			at, ok = r, true
		}
	}
	if ok && !at.After(now) {
		return false // due already: the loop does it first
	}
	p.st.Compact()
	p.net.Shrink()
	p.sends.Shrink()
	p.cancels.Shrink()
	p.buf, p.bufs, p.inb, p.outb, p.cancb, p.pkts, p.outs, p.late = nil, nil, nil, nil, nil, nil, nil, nil
	p.publish()
	p.timer.Stop()
	p.armed = ok
	if ok {
		p.armedFor = at
		p.timer.Reset(at.Sub(now))
	}
	p.parked.Store(true)
	if p.hasWork(ctx) && p.parked.CompareAndSwap(true, false) {
		return false
	}
	// Parked, or already resumed by whoever brought the work: either way
	// this goroutine must not touch the peer again.
	return true
}

// hasWork reports whether anything is waiting for the loop.
func (p *Peer) hasWork(ctx context.Context) bool {
	return p.net.Len() > 0 || p.sends.Len() > 0 || p.cancels.Len() > 0 || ctx.Err() != nil || p.drain.Load()
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
	p.writePackets()

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
	p.writePackets() // deliveries produce RECVs
	p.publish()
}

// writePackets writes the packets the state has produced, encoded back to
// back in p.buf: in one batch through a BatchWriter, else one by one.
func (p *Peer) writePackets() {
	p.pkts = p.st.TakePackets(p.pkts[:0])
	if len(p.pkts) == 0 {
		return
	}
	p.buf = p.buf[:0]
	for _, pkt := range p.pkts {
		n := len(p.buf)
		p.buf = p.opt.Format.Append(p.buf, pkt)
		p.logPacket("OUT", pkt, len(p.buf)-n)
	}
	// Slice only now: appending may have moved p.buf.
	p.bufs = p.bufs[:0]
	off := 0
	for _, pkt := range p.pkts {
		n := p.opt.Format.HeaderLen() + len(pkt.Payload)
		p.bufs = append(p.bufs, p.buf[off:off+n:off+n])
		off += n
	}
	for sent := 0; sent < len(p.bufs); {
		n, err := p.writeBatch(p.bufs[sent:])
		sent += n
		if sent < len(p.bufs) && (err != nil || n == 0) {
			// The datagram at sent failed: count it and go on with the
			// rest, as one-by-one writes would.
			if err == nil {
				err = io.ErrShortWrite
			}
			p.writeFailed(p.pkts[sent].Kind, err)
			sent++
		}
	}
	clear(p.bufs)
	clear(p.pkts)
}

// writeBatch writes bufs to the peer: in one call through a BatchWriter,
// else one datagram per call. It returns how many were written, with the
// error that stopped it.
func (p *Peer) writeBatch(bufs [][]byte) (int, error) {
	if p.bw != nil {
		return p.bw.WriteBatch(bufs, p.opt.Addr)
	}
	for i, b := range bufs {
		var err error
		if p.udp != nil {
			_, err = p.udp.WriteToUDPAddrPort(b, p.opt.Addr)
		} else {
			_, err = p.opt.Conn.WriteTo(b, p.addr)
		}
		if err != nil {
			return i, err
		}
	}
	return len(bufs), nil
}

func (p *Peer) writeFailed(k wire.Kind, err error) {
	p.writeErrors++
	if p.log != nil && !errors.Is(err, net.ErrClosed) {
		p.log.Warn("gtudp: write failed", "kind", k, "err", err)
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

// arm sets the timer to the state's next deadline, or to the idle or park
// deadline. An alarm already set earlier is kept: it will fire, find
// nothing due and re-arm, which is cheaper than resetting the timer for
// every message.
func (p *Peer) arm(now time.Time) {
	at, ok := p.st.NextDeadline()
	consider := func(t time.Time) {
		if !ok || t.Before(at) {
			at, ok = t, true
		}
	}
	if !p.idleSince.IsZero() {
		consider(p.idleSince.Add(p.opt.IdleTimeout))
	}
	if !p.quietSince.IsZero() && p.opt.Resume != nil {
		consider(p.quietSince.Add(p.opt.ParkAfter))
	}
	if !ok {
		return
	}
	if p.armed && !at.Before(p.armedFor) {
		return
	}
	// at is after now: Tick has done everything due at now. A zero or
	// negative Reset would not fire on the mock clock until it moves.
	p.timer.Reset(max(at.Sub(now), time.Nanosecond))
	p.armed, p.armedFor = true, at
}

// stopTimer stops the timer. A fire already on its way only ticks a loop
// that finds nothing due.
func (p *Peer) stopTimer() {
	p.timer.Stop()
	p.armed = false
}

// shut ends the peer: every message still in flight, or waiting in the
// sends mailbox, fails with err, and no mailbox takes anything more.
func (p *Peer) shut(err error) {
	p.stopTimer()
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
	p.stopTimer()
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
