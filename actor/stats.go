package actor

import (
	"sync/atomic"

	"github.com/gtudp/gtudp/peer"
)

// Stats are the counters of an Endpoint. The embedded peer.Stats are the
// totals over every peer the endpoint has had, live or gone (its Addr,
// SRTT, RTTVar, RTO and Validated are not meaningful there; see
// Endpoint.PeerStats for those).
type Stats struct {
	peer.Stats

	// Peers is the number of live peers; PeersStarted and PeersRetired
	// count peers started and ended since the endpoint began.
	Peers                      int
	PeersStarted, PeersRetired uint64
	// PeersParked is the number of live peers that are parked: quiet for
	// a second with nothing in flight, they keep their state (the ids
	// they remember) but no goroutine, until traffic or a deadline
	// resumes them.
	PeersParked int
	// PeersEvicted counts peers ended to make room for another (see
	// Endpoint's eviction order).
	PeersEvicted uint64
	// PeerCrashes counts peer actors that panicked and were recovered.
	PeerCrashes uint64
	// PeerLimited counts packets from new addresses dropped because
	// MaxPeers peers were live.
	PeerLimited uint64
	// MailboxFull counts packets dropped because their peer was behind;
	// the protocol re-sends them.
	MailboxFull uint64
	// Foreign counts datagrams that are not gtUDP under the Format
	// (dropped, or delivered raw with Passthrough), the empty datagram
	// among them; Malformed counts those that begin as gtUDP but end before
	// the id.
	Foreign, Malformed uint64
	// RawDelivered counts foreign datagrams handed to the Inbox with
	// Passthrough; RawDropped those dropped because the Inbox was full.
	RawDelivered, RawDropped uint64
	// RawSent counts raw datagrams the socket accepted.
	RawSent uint64
	// StrayRecv counts RECV from addresses without a peer (answered ACK,
	// as the original does); StrayAck counts ignored ACK from them.
	StrayRecv, StrayAck uint64
	// ReceiptsDropped counts receipts lost because nobody read Receipts
	// (see Config.ReceiptsSize).
	ReceiptsDropped uint64
	// ReadErrors counts socket read errors other than the socket closing.
	ReadErrors uint64
	// OverBudget counts DATA dropped unanswered because the payloads held
	// had reached the endpoint's budget; BudgetUsed is those bytes now.
	OverBudget uint64
	BudgetUsed int64
	// SpareBytes is the bytes of buffers given back by Release and kept
	// for reuse.
	SpareBytes int
}

// counters are the endpoint's own counters, updated by several goroutines.
type counters struct {
	started, retired, crashes         atomic.Uint64
	peerLimited, mailboxFull          atomic.Uint64
	foreign, malformed                atomic.Uint64
	rawDelivered, rawDropped, rawSent atomic.Uint64
	strayRecv, strayAck               atomic.Uint64
	receiptsDropped, readErrors       atomic.Uint64
	overBudget, evicted               atomic.Uint64
	ackWriteErrors                    atomic.Uint64 // ACKs the reader wrote
}

func (c *counters) fill(s *Stats) {
	s.PeersStarted = c.started.Load()
	s.PeersRetired = c.retired.Load()
	s.PeerCrashes = c.crashes.Load()
	s.PeerLimited = c.peerLimited.Load()
	s.MailboxFull = c.mailboxFull.Load()
	s.Foreign = c.foreign.Load()
	s.Malformed = c.malformed.Load()
	s.RawDelivered = c.rawDelivered.Load()
	s.RawDropped = c.rawDropped.Load()
	s.RawSent = c.rawSent.Load()
	s.StrayRecv = c.strayRecv.Load()
	s.StrayAck = c.strayAck.Load()
	s.ReceiptsDropped = c.receiptsDropped.Load()
	s.ReadErrors = c.readErrors.Load()
	s.OverBudget = c.overBudget.Load()
	s.PeersEvicted = c.evicted.Load()
	s.WriteErrors += c.ackWriteErrors.Load()
}
