package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/google/uuid"
	"github.com/gtudp/gtudp/mailbox"
	"github.com/gtudp/gtudp/wire"
)

// Sender writes datagrams to one address. It is the one way out for every
// datagram an endpoint sends: the peers', the socket reader's and the
// application's raw ones. WriteBatch writes bufs in order and returns how
// many it wrote, with the error that stopped it, if any. It must be safe
// for concurrent use and must not keep bufs.
type Sender interface {
	WriteBatch(bufs [][]byte, to netip.AddrPort) (int, error)
}

// PartsSender is a Sender that can also write datagrams given in two
// parts (sendmsg's gather): a peer whose Sender is one sends the payload
// of a large fragment from the message's own buffer, uncopied.
// WriteParts writes each of d, Head then Tail, as one datagram, and
// returns how many it wrote, with the error that stopped it; it keeps no
// reference to d or its bytes.
type PartsSender interface {
	Sender
	WriteParts(d []Datagram, to netip.AddrPort) (int, error)
}

// Datagram is one datagram to write: Head, then Tail (often empty).
type Datagram struct{ Head, Tail []byte }

// Outlet is where a peer hands the application what it received and what
// became of the messages sent without a Done channel. Package gtudp
// provides it over the channels users read (Inbox, Receipts).
//
// Deliver and Report never wait: false means there is no room now. Wait
// waits until wake has a token, or d was delivered, or r was reported,
// whichever comes first, and says which; a nil d or r is not offered. All
// three are called from the peer's goroutine only.
type Outlet interface {
	Deliver(d Delivery) bool
	Report(r Receipt) bool
	Wait(wake <-chan struct{}, d *Delivery, r *Receipt) Handed
}

// Handed is what Outlet.Wait did.
type Handed int

const (
	// Woken: a token came on the wake-up channel; nothing was handed over.
	Woken Handed = iota
	// DeliveryHanded: the delivery offered went to the application.
	DeliveryHanded
	// ReceiptHanded: the receipt offered went to the application.
	ReceiptHanded
)

// Inbound is a decoded packet from the peer, as the socket reader hands it
// over. For Data, Packet.Payload is a copy the peer owns.
type Inbound struct {
	Packet wire.Packet
	Size   int       // bytes on the wire
	At     time.Time // when it was read from the socket; zero: when the peer takes it
	// Lent, if set, is the socket reader's buffer the payload lies in,
	// lent rather than copied (an EXT datagram with fragments of large
	// messages: they are copied once, into their message). The peer
	// copies what it keeps and puts Lent back in Params.ReadBuffers.
	Lent *[]byte
}

// cancel asks the peer to end a message early.
type cancel struct {
	id  uuid.UUID
	err error
}

// Options configure a Peer.
type Options struct {
	Addr   netip.AddrPort
	Params *Params // shared by every peer of an endpoint; read-only
	Clock  clock.Clock
	Sender Sender
	Outlet Outlet
	// DroppedReceipts counts receipts for the Outlet that were dropped:
	// past Window waiting for room in Receipts, or still waiting when the
	// peer ended.
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
	// Memory, if not nil, is what an earlier peer of this address
	// remembered when it was evicted: the new one recalls it.
	Memory Memory
	// Bury is called, from the peer's goroutine, when the peer ends
	// because it was evicted, with what its State remembers.
	Bury func(p *Peer, m Memory)
	// Dequeued, if not nil, is called (from the peer's goroutine) for
	// every message with Queued set when it goes out for the first time
	// or ends without going out.
	Dequeued func()
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
// Its fields are grouped by who may touch them. Other goroutines reach the
// peer only through its methods, which are safe for concurrent use: Put
// (the socket reader), Send and Cancel (user sends), Drain, CloseIfIdle and
// Stats (the supervisor).
type Peer struct {
	// Set by New; read-only after.
	opt   Options
	log   *slog.Logger // opt.Logger with the peer's address, or nil
	parts PartsSender  // opt.Sender, if it gathers; else nil

	// Mailboxes: any goroutine puts, the loop drains. They share the
	// loop's one wake-up channel, where the timer and Drain leave tokens
	// too: one channel, not four, keeps the select the loop parks in
	// cheap.
	mail struct {
		net     *mailbox.Mailbox[Inbound]
		sends   *mailbox.Mailbox[Outgoing]
		cancels *mailbox.Mailbox[cancel]
		wakeup  chan struct{} // buffered(1)
	}

	// Shutdown and parking: any goroutine.
	ctl struct {
		drainOnce sync.Once
		drain     atomic.Bool // set by Drain, which then wakes the loop
		evict     atomic.Bool // set by Evict, which then wakes the loop
		// touched is set by every packet and send, and cleared by the
		// supervisor's eviction scan: a peer in use gets a second chance.
		touched atomic.Bool
		// validated says whether the peer has proved its address; ours
		// whether it has messages of ours in flight or waiting. Both as of
		// the loop's last publish, for the supervisor's eviction scan.
		validated, ours atomic.Bool
		closeOnce       sync.Once     //
		closing         chan struct{} // closed when the peer takes no more sends
		done            chan struct{} // closed when Run returns for good
		// parked is set while the peer has no goroutine; whoever clears
		// it (CompareAndSwap) calls Resume.
		parked atomic.Bool
		// timer is the peer's one timer, for every deadline: it calls
		// alarm, which wakes the running loop or resumes a parked peer.
		timer *clock.Timer
	}

	// The loop's last published stats: written by the loop, read by Stats.
	pub struct {
		sync.Mutex
		stats Stats
	}

	// Owned by the loop, whichever goroutine runs it (a resume hands it
	// on): the State and everything the loop keeps between turns.
	loop struct {
		st     *State
		life   lifecycle
		dgrams [][]byte
		parts  []Datagram
		inb    []Inbound
		outb   []Outgoing
		cancb  []cancel
		outs   []Outcome
		routed int       // outcomes of outs already handed on
		late   []Receipt // receipts waiting for room in the Outlet, oldest first
		// waiting holds the messages taken from the sends mailbox that
		// wait for room in the window, oldest first. A cancelled one is
		// marked gone and skipped.
		waiting fifo[waiting]

		writeErrors uint64
		unhandled   uint64 // packets dropped unread at the end
		armed       bool
		armedFor    time.Time
	}
}

// defaultParkAfter is Options.ParkAfter's default.
const defaultParkAfter = time.Second

// flushEvery is how many packets the loop takes from its mailbox, or how
// many messages it holds for the Inbox, before it flushes: a quarter of
// the default HoldLimit.
const flushEvery = 256

// netMailbox bounds the packets waiting for a peer: a burst of a full
// window of DATA from the remote (up to RecvWindow of them are taken) and
// the RECV and ACK for a full window of ours must fit, or the burst is
// dropped and costs the sender a timeout. The ring grows only as far as it
// is used.
func netMailbox(p *Params) int { return max(2048, p.RecvWindow+2*p.Window) }

// New returns a peer ready to Run.
func New(opt Options) *Peer {
	p := &Peer{opt: opt}
	p.parts, _ = opt.Sender.(PartsSender)
	wake := make(chan struct{}, 1)
	p.mail.wakeup = wake
	p.mail.net = mailbox.NewShared[Inbound](netMailbox(opt.Params), wake)
	// The sends mailbox only carries messages to the loop, which keeps
	// those that wait for the window: its bounds are the endpoint's
	// (Outbox places, and one message per blocked Send).
	p.mail.sends = mailbox.NewShared[Outgoing](math.MaxInt32, wake)
	p.mail.cancels = mailbox.NewShared[cancel](64, wake)
	p.ctl.closing = make(chan struct{})
	p.ctl.done = make(chan struct{})
	p.ctl.timer = opt.Clock.AfterFunc(time.Hour, p.alarm)
	p.ctl.timer.Stop()
	p.loop.st = NewState(opt.Params, opt.Addr, opt.Clock.Now(), opt.Seed, opt.Validated)
	if opt.Memory != nil {
		p.loop.st.Recall(opt.Clock.Now(), opt.Memory)
	}
	p.ctl.touched.Store(true)
	p.ctl.validated.Store(opt.Validated)
	p.loop.life = lifecycle{idleTimeout: opt.IdleTimeout}
	if opt.Resume != nil {
		p.loop.life.parkAfter = opt.ParkAfter
		if p.loop.life.parkAfter <= 0 {
			p.loop.life.parkAfter = defaultParkAfter
		}
	}
	if opt.Logger != nil {
		p.log = opt.Logger.With("peer", opt.Addr)
	}
	p.pub.stats = p.loop.st.Stats()
	return p
}

// Addr returns the peer's address.
func (p *Peer) Addr() netip.AddrPort { return p.opt.Addr }

// Put hands the peer a packet from the socket without waiting. It returns
// mailbox.ErrFull when the peer is behind (the packet is dropped; the
// protocol re-sends) and mailbox.ErrClosed when the peer has exited.
func (p *Peer) Put(in Inbound) error {
	err := p.mail.net.TryPut(in)
	if err == nil {
		p.ctl.touched.Store(true)
		p.wake()
	}
	return err
}

// wake resumes the peer if it is parked, and reports whether it did.
// Call it after putting work where the peer's loop looks.
func (p *Peer) wake() bool {
	if p.ctl.parked.Load() && p.ctl.parked.CompareAndSwap(true, false) {
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
	case p.mail.wakeup <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// Parked reports whether the peer is parked: idle, with no goroutine.
func (p *Peer) Parked() bool { return p.ctl.parked.Load() }

// Send hands the peer a message to send reliably, without waiting: the
// peer sends it when its window has room (Window messages in flight or
// with receipts not yet handed over), oldest first. It returns ErrClosed
// if the peer takes no more sends (it exited, or the endpoint is
// closing). On nil the message will get exactly one outcome: on m.Done,
// or through the Outlet when m.Done is nil.
func (p *Peer) Send(m Outgoing) error {
	if err := p.mail.sends.TryPut(m); err != nil {
		return ErrClosed // a full mailbox of 2^31 cannot happen first
	}
	p.ctl.touched.Store(true)
	p.ctl.ours.Store(true)
	p.wake()
	return nil
}

// Evict ends the peer to make room for another: it takes nothing more,
// hands what its State remembers to Options.Bury, and fails its messages
// (those in flight, waiting, or in its mailbox) with an UndeliveredError
// that says it was evicted. The owner takes it out of its table first.
func (p *Peer) Evict() {
	p.ctl.evict.Store(true)
	p.closeMailboxes()
	p.alarm() // wake the loop, or resume the parked peer
}

// Evictable reports, as of the loop's last publish, whether the peer has
// not proved its address, and whether it has none of our messages either
// in flight or waiting (when ours is false). It clears the peer's touched
// mark, and reports false if it was set: a peer in use is spared once.
func (p *Peer) Evictable(ours bool) bool {
	if p.ctl.touched.Swap(false) || p.ctl.validated.Load() {
		return false
	}
	return ours || !p.ctl.ours.Load()
}

// Cancel asks the peer to end the message with the given ID with err, if
// it is still in flight. The outcome arrives on the message's Done channel
// as usual: the failure, or the success that won the race.
func (p *Peer) Cancel(id uuid.UUID, err error) {
	// The peer drains its cancels at every wake-up, so this waits only
	// for a moment; on a closed peer every outcome is out already.
	if p.mail.cancels.Put(context.Background(), cancel{id: id, err: err}) == nil {
		p.wake()
	}
}

// Drain tells the peer the endpoint is closing: it takes no new sends and
// no new DATA, finishes the exchanges under way, and exits.
func (p *Peer) Drain() {
	p.ctl.drainOnce.Do(func() {
		p.stopSends()
		p.ctl.drain.Store(true)
		p.alarm() // wake the loop, or resume the parked peer
	})
}

// stopSends makes later Sends fail with ErrClosed and wakes those waiting
// for the window.
func (p *Peer) stopSends() {
	p.ctl.closeOnce.Do(func() {
		p.mail.sends.Close()
		close(p.ctl.closing)
	})
}

// closeMailboxes makes the peer take nothing more: sends, packets and
// cancels are all refused from now on.
func (p *Peer) closeMailboxes() {
	p.stopSends()
	p.mail.net.Close()
	p.mail.cancels.Close()
}

// CloseIfIdle closes the peer's mailboxes if no send is waiting in them,
// and reports whether it did. The owner calls it from Retire, under the
// lock of its peer table, so that no send can reach a peer that exits.
func (p *Peer) CloseIfIdle() bool {
	if !p.mail.sends.CloseIfEmpty() {
		return false
	}
	p.closeMailboxes()
	return true
}

// Done returns a channel closed when Run has returned for good.
func (p *Peer) Done() <-chan struct{} { return p.ctl.done }

// Stats returns the peer's counters as of its last wake-up.
func (p *Peer) Stats() Stats {
	p.pub.Lock()
	defer p.pub.Unlock()
	return p.pub.stats
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
// timer (armed to the earliest deadline of the state and the lifecycle),
// Drain and the end of ctx all leave a token; also on the Outlet when a
// delivery or a receipt is held back. A timer fire only wakes the loop;
// due work is found by comparing deadlines with now.
func (p *Peer) Run(ctx context.Context) (parked bool) {
	defer func() {
		if !parked {
			close(p.ctl.done)
		}
	}()
	// The loop waits on its wake-up channel alone: ctx ending leaves a
	// token there too.
	stop := context.AfterFunc(ctx, p.alarm)
	defer stop()
	st := p.loop.st
	now := p.opt.Clock.Now()
	st.Tick(now)         // a resumed peer may have been woken for a deadline
	p.loop.armed = false // and its timer may have fired, or be set for a parked peer
	draining := false
	for {
		if p.ctl.evict.Load() {
			p.opt.Bury(p, st.Forget(now))
			p.end(p.evictedErr)
			return false
		}
		if !draining && p.ctl.drain.Load() {
			draining = true
			st.Drain(now)
		}
		p.flush(now)
		if draining && !p.busy() && p.mail.sends.Len() == 0 {
			p.end(closedErr)
			return false
		}
		if !draining {
			retire, park := p.loop.life.advance(now, p.busy(), st.Idle())
			if retire {
				if p.opt.Retire(p) {
					p.end(closedErr)
					return false
				}
				p.loop.life.refused(now)
			}
			if park && p.park(ctx, now) {
				return true
			}
		}
		p.arm(now)

		d, dok := st.Next()
		var r *Receipt
		if len(p.loop.late) > 0 {
			r = &p.loop.late[0]
		}
		if !dok && r == nil {
			// Nothing to hand over: a plain receive parks and wakes
			// cheaper than a select.
			<-p.mail.wakeup
			now = p.onWakeup()
		} else {
			var dp *Delivery
			if dok {
				dp = &d
			}
			switch p.opt.Outlet.Wait(p.mail.wakeup, dp, r) {
			case Woken:
				now = p.onWakeup()
			case DeliveryHanded:
				now = p.opt.Clock.Now()
				st.Delivered(now)
			case ReceiptHanded:
				now = p.opt.Clock.Now()
				p.loop.late[0] = Receipt{}
				p.loop.late = p.loop.late[1:]
				p.handLate()
				p.admit(now) // a place in the window came free
			}
		}
		if ctx.Err() != nil {
			p.flush(now)
			p.end(closedErr)
			return false
		}
		st.Tick(now)
	}
}

// closedErr fails a message with ErrClosed.
func closedErr(uuid.UUID, int) error { return ErrClosed }

// evictedErr fails a message of an evicted peer.
func (p *Peer) evictedErr(id uuid.UUID, attempts int) error {
	return &UndeliveredError{Addr: p.opt.Addr, ID: id, Attempts: attempts,
		Reason: "its peer was evicted: the address had not proved it receives our packets, and the peer table was full"}
}

// onWakeup handles a token on the wake-up channel: packets, cancels and
// sends waiting in the mailboxes, and the timer. It returns the time now.
func (p *Peer) onWakeup() time.Time {
	st := p.loop.st
	now := p.opt.Clock.Now()
	if p.loop.armed && !now.Before(p.loop.armedFor) {
		p.loop.armed = false // the timer has fired, or is about to: re-arm
	}
	p.loop.inb = p.mail.net.Drain(p.loop.inb[:0], 0)
	n := 0 // packets since the last flush
	for i, in := range p.loop.inb {
		if n++; n > flushEvery || st.Held() >= flushEvery {
			// A long batch, or one of EXT datagrams of many messages:
			// deliver and answer what it has so far, so a burst beyond
			// HoldLimit is not withheld while the Inbox has room, and
			// RECVs go out sooner.
			p.flush(now)
			n = 1
		}
		if p.opt.BeforePacket != nil {
			p.opt.BeforePacket(in)
		}
		p.logPacket("IN", in.Packet, in.Size)
		if in.Lent != nil {
			st.ReceiveLent(now, in.At, in.Packet, in.Size)
			// Given back as soon as it is copied: the socket reader
			// may be waiting for it. Marked, so that end, after a
			// panic in this loop, gives back only those not yet given.
			p.opt.Params.ReadBuffers.Put(in.Lent)
			p.loop.inb[i].Lent = nil
		} else {
			st.ReceiveAt(now, in.At, in.Packet, in.Size)
		}
	}
	clear(p.loop.inb)
	// Sends, then cancels, then the window: a message is put before its
	// cancel, so every cancel taken finds its message taken too, and one
	// that has not gone out yet ends without being sent.
	p.loop.cancb = p.mail.cancels.Drain(p.loop.cancb[:0], 0)
	sends := p.takeSends()
	for _, c := range p.loop.cancb {
		if !p.cancelWaiting(c.id, c.err) {
			st.Cancel(now, c.id, c.err)
		}
	}
	clear(p.loop.cancb)
	if sends {
		// A DATA's round trip starts when it is written, just after: not
		// when the loop woke up.
		now = p.opt.Clock.Now()
		p.admit(now)
	}
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
	at := p.loop.life.parkedWake(p.loop.st.NextDeadline())
	if !at.IsZero() && !at.After(now) {
		return false // due already: the loop does it first
	}
	p.loop.st.Compact()
	p.mail.net.Shrink()
	p.mail.sends.Shrink()
	p.mail.cancels.Shrink()
	l := &p.loop
	l.dgrams, l.parts, l.inb, l.outb, l.cancb, l.outs, l.late = nil, nil, nil, nil, nil, nil, nil
	l.waiting.reset(true)
	p.publish()
	p.ctl.timer.Stop()
	l.armed = !at.IsZero()
	if l.armed {
		l.armedFor = at
		p.ctl.timer.Reset(at.Sub(now))
	}
	p.ctl.parked.Store(true)
	if p.hasWork(ctx) && p.ctl.parked.CompareAndSwap(true, false) {
		return false
	}
	// Parked, or already resumed by whoever brought the work: either way
	// this goroutine must not touch the peer again.
	return true
}

// hasWork reports whether anything is waiting for the loop.
func (p *Peer) hasWork(ctx context.Context) bool {
	return p.mail.net.Len() > 0 || p.mail.sends.Len() > 0 || p.mail.cancels.Len() > 0 || ctx.Err() != nil || p.ctl.drain.Load()
}

// takeSends moves the messages in the sends mailbox to those waiting for
// the window, and reports whether there were any.
func (p *Peer) takeSends() bool {
	p.loop.outb = p.mail.sends.Drain(p.loop.outb[:0], 0)
	for _, m := range p.loop.outb {
		p.loop.waiting.push(waiting{m: m})
	}
	n := len(p.loop.outb)
	clear(p.loop.outb)
	return n > 0
}

// waiting is a message that waits for room in the window.
type waiting struct {
	m    Outgoing
	gone bool // cancelled while it waited
}

// room returns how many more messages the window takes: those in flight
// and those whose receipts wait for the Outlet both hold a place, so that
// a slow reader of Receipts slows the sender down rather than lose
// receipts.
func (p *Peer) room() int {
	return p.opt.Params.Window - p.loop.st.InFlight() - len(p.loop.late)
}

// admit sends waiting messages while the window has room and the state
// has sent the bytes it has (State.Hungry).
func (p *Peer) admit(now time.Time) {
	w := &p.loop.waiting
	for w.len() > 0 && p.room() > 0 && p.loop.st.Hungry() {
		q := w.pop()
		if q.gone {
			continue
		}
		p.dequeued(q.m)
		if err := p.loop.st.Send(now, q.m); err != nil {
			// Too large for the format: it still gets its one outcome.
			p.route(Outcome{Receipt: Receipt{ID: q.m.ID, Addr: p.opt.Addr, Data: q.m.Data, Err: err}, Done: q.m.Done, NoReceipt: q.m.NoReceipt})
		}
	}
	if w.len() == 0 {
		w.reset(false)
	}
}

// dequeued gives back the Outbox place of m, if it holds one.
func (p *Peer) dequeued(m Outgoing) {
	if m.Queued && p.opt.Dequeued != nil {
		p.opt.Dequeued()
	}
}

// cancelWaiting ends the waiting message id, unsent, with err, and
// reports whether it found it.
func (p *Peer) cancelWaiting(id uuid.UUID, err error) bool {
	all := p.loop.waiting.all()
	for i := range all {
		if q := &all[i]; !q.gone && q.m.ID == id {
			q.gone = true
			p.dequeued(q.m)
			p.route(Outcome{Receipt: Receipt{ID: id, Addr: p.opt.Addr, Data: q.m.Data, Err: err}, Done: q.m.Done, NoReceipt: q.m.NoReceipt})
			return true
		}
	}
	return false
}

// busy reports whether the peer has work that keeps it from parking or
// retiring: an exchange under way, a message waiting for the window, or
// a receipt waiting for the Outlet.
func (p *Peer) busy() bool {
	return p.loop.st.Busy() || p.loop.waiting.len() > 0 || len(p.loop.late) > 0
}

// flush hands out outcomes and as many deliveries as the Outlet takes,
// then writes the datagrams the state produced (one batch for all of it:
// the RECVs the deliveries produced share datagrams with what the packets
// handled before produced), and publishes the stats.
func (p *Peer) flush(now time.Time) {
	p.handOutcomes(now)
	for p.writeDatagrams() {
		// A write that failed for good ended its message: its receipt
		// goes out now, not at the next wake-up (which an idle peer may
		// not have for a long time).
		p.handOutcomes(now)
	}
	p.publish()
}

// handOutcomes hands out the outcomes the state has, admits the messages
// that made room for, and hands the Outlet as many deliveries as it takes.
func (p *Peer) handOutcomes(now time.Time) {
	st := p.loop.st
	p.loop.outs = st.TakeOutcomes(p.loop.outs[:0])
	// Stats first: whoever gets an outcome finds it counted.
	if len(p.loop.outs) > 0 {
		p.publish()
		p.handLate() // the older receipts first
	}
	for p.loop.routed = 0; p.loop.routed < len(p.loop.outs); {
		o := p.loop.outs[p.loop.routed]
		p.loop.routed++
		p.route(o)
	}
	clear(p.loop.outs)
	p.loop.outs, p.loop.routed = p.loop.outs[:0], 0
	p.admit(now) // finished messages made room

	for {
		d, ok := st.Next()
		if !ok || !p.opt.Outlet.Deliver(d) {
			break
		}
		st.Delivered(now)
	}
}

// writeDatagrams writes what the state has produced, in one batch through
// the Sender, going on past a datagram that fails. It reports whether one
// failed.
func (p *Peer) writeDatagrams() (failed bool) {
	d := p.loop.st.TakeDatagramParts(p.loop.parts[:0], p.parts != nil)
	p.loop.parts = d
	if p.debug() {
		for _, g := range d {
			b := append(g.Head[:len(g.Head):len(g.Head)], g.Tail...)
			if pkt, err := p.opt.Params.Format.Decode(b); err == nil {
				p.logPacket("OUT", pkt, len(b))
			}
		}
	}
	var heads [][]byte // for a Sender that does not gather: the Tails are empty
	if p.parts == nil {
		heads = p.loop.dgrams[:0]
		for _, g := range d {
			heads = append(heads, g.Head)
		}
		p.loop.dgrams = heads
	}
	for sent := 0; sent < len(d); {
		var n int
		var err error
		if p.parts != nil {
			n, err = p.parts.WriteParts(d[sent:], p.opt.Addr)
		} else {
			n, err = p.opt.Sender.WriteBatch(heads[sent:], p.opt.Addr)
		}
		sent += n
		if sent < len(d) && (err != nil || n == 0) {
			// The datagram at sent failed: count it and go on with the
			// rest, as one-by-one writes would.
			if err == nil {
				err = io.ErrShortWrite
			}
			p.writeFailed(err)
			p.loop.st.WriteFailed(p.opt.Clock.Now(), sent, err)
			failed = true
			sent++
		}
	}
	clear(d)
	clear(heads)
	return failed
}

func (p *Peer) writeFailed(err error) {
	p.loop.writeErrors++
	if p.log != nil && !errors.Is(err, net.ErrClosed) {
		p.log.Warn("gtudp: write failed", "err", err)
	}
}

// route hands one outcome on. A receipt the Outlet has no room for waits
// in the peer, holding its place in the window (see room) until the
// Outlet takes it: a reader of Receipts that keeps reading gets every
// receipt, and a slow one slows the sends down.
func (p *Peer) route(o Outcome) {
	switch {
	case o.Done != nil:
		o.Done <- o.Receipt // capacity 1, one receipt per message: never blocks
	case o.NoReceipt:
	case len(p.loop.late) == 0 && p.opt.Outlet.Report(o.Receipt):
	default:
		p.loop.late = append(p.loop.late, o.Receipt)
	}
}

// handLate hands waiting receipts to the Outlet while it has room.
func (p *Peer) handLate() {
	for len(p.loop.late) > 0 && p.opt.Outlet.Report(p.loop.late[0]) {
		p.loop.late[0] = Receipt{}
		p.loop.late = p.loop.late[1:]
	}
	if len(p.loop.late) == 0 {
		p.loop.late = nil // let the backing array go
	}
}

func (p *Peer) dropReceipts(n int) {
	if p.opt.DroppedReceipts != nil {
		p.opt.DroppedReceipts.Add(uint64(n))
	}
}

func (p *Peer) publish() {
	s := p.loop.st.Stats()
	s.WriteErrors = p.loop.writeErrors
	s.Unhandled = p.loop.unhandled
	p.ctl.validated.Store(s.Validated)
	p.ctl.ours.Store(s.InFlight > 0 || p.loop.waiting.len() > 0 || p.mail.sends.Len() > 0)
	p.pub.Lock()
	p.pub.stats = s
	p.pub.Unlock()
}

// arm sets the timer to the earliest deadline of the state and the
// lifecycle. An alarm already set earlier is kept: it will fire, find
// nothing due and re-arm, which is cheaper than resetting the timer for
// every message.
func (p *Peer) arm(now time.Time) {
	at := firstTime(p.loop.st.NextDeadline(), p.loop.life.next())
	if at.IsZero() || p.loop.armed && !at.Before(p.loop.armedFor) {
		return
	}
	// at is after now: Tick has done everything due at now. A zero or
	// negative Reset would not fire on the mock clock until it moves.
	p.ctl.timer.Reset(max(at.Sub(now), time.Nanosecond))
	p.loop.armed, p.loop.armedFor = true, at
}

// end ends the peer: no mailbox takes anything more, and every message it
// has not finished fails with fail's error, those in flight and those
// still in the sends mailbox (never sent: no attempt). Outcomes
// taken and not yet handed on go first. It is the one way a peer ends,
// whether it drained, its context ended, or its goroutine panicked.
func (p *Peer) end(fail func(id uuid.UUID, attempts int) error) {
	p.ctl.timer.Stop()
	p.loop.armed = false
	p.closeMailboxes()
	// Packets taken from the mailbox and not handled: the loop panicked
	// on one of them. Their read buffers go back, or the socket reader
	// would one day wait for them for ever.
	for i, in := range p.loop.inb {
		if in.Lent != nil {
			p.opt.Params.ReadBuffers.Put(in.Lent)
			p.loop.inb[i].Lent = nil
		}
	}
	for _, in := range p.mail.net.Drain(nil, 0) {
		p.loop.unhandled++
		p.opt.Params.Budget.Give(Held(in.Packet)) // never handled
		if in.Lent != nil {
			p.opt.Params.ReadBuffers.Put(in.Lent)
		}
	}
	for _, o := range p.loop.outs[p.loop.routed:] {
		p.route(o)
	}
	p.loop.outs, p.loop.routed = nil, 0
	for _, o := range p.loop.st.Salvage(nil, fail) {
		p.route(o)
	}
	for p.loop.waiting.len() > 0 {
		if q := p.loop.waiting.pop(); !q.gone {
			p.unsent(q.m, fail(q.m.ID, 0))
		}
	}
	for _, m := range p.mail.sends.Drain(nil, 0) {
		p.unsent(m, fail(m.ID, 0))
	}
	// Hand over what receipts fit and drop the rest: nobody will hand
	// them over later.
	p.handLate()
	p.dropReceipts(len(p.loop.late))
	p.loop.late = nil
	p.publish()
}

// unsent ends m, which never went out, with err.
func (p *Peer) unsent(m Outgoing, err error) {
	p.dequeued(m)
	p.route(Outcome{Receipt: Receipt{ID: m.ID, Addr: p.opt.Addr, Data: m.Data, Err: err}, Done: m.Done, NoReceipt: m.NoReceipt})
}

// Crash ends a peer whose goroutine panicked with r: the supervisor calls it
// from its recover. Every message not finished fails with an
// UndeliveredError naming the panic (see end).
func (p *Peer) Crash(r any) {
	reason := fmt.Sprintf("peer actor failed: %v", r)
	p.end(func(id uuid.UUID, attempts int) error {
		return &UndeliveredError{Addr: p.opt.Addr, ID: id, Attempts: attempts, Reason: reason}
	})
}

func (p *Peer) debug() bool {
	return p.log != nil && p.log.Enabled(context.Background(), slog.LevelDebug)
}

// logPacket writes the original's debug line: direction, kind, id, size.
// An EXT datagram's line lists its records instead of one id, e.g.
// "records=DATA×12 RECV×30".
func (p *Peer) logPacket(dir string, pkt wire.Packet, size int) {
	if !p.debug() {
		return
	}
	if pkt.Kind == wire.Ext {
		p.log.LogAttrs(context.Background(), slog.LevelDebug, dir,
			slog.String("kind", pkt.Kind.String()),
			slog.String("records", describeExt(pkt.Payload)),
			slog.Int("size", size))
		return
	}
	p.log.LogAttrs(context.Background(), slog.LevelDebug, dir,
		slog.String("kind", pkt.Kind.String()),
		slog.String("id", pkt.ID.String()),
		slog.Int("size", size))
}

// describeExt says what records an EXT datagram's body holds, for the
// debug log: each type with the number of messages or ids.
func describeExt(body []byte) string {
	_, recs, err := wire.ParseExt(body)
	if err != nil {
		return "malformed"
	}
	var n [wire.RecAck + 1]int
	for r, ok := recs.Next(); ok; r, ok = recs.Next() {
		if r.Type == wire.RecRecv || r.Type == wire.RecAck {
			n[r.Type] += r.NumIDs()
		} else {
			n[r.Type]++
		}
	}
	var b strings.Builder
	for t := wire.RecData; t <= wire.RecAck; t++ {
		if n[t] > 0 {
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%v×%d", t, n[t])
		}
	}
	return b.String()
}
