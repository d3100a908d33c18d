package actor

import (
	"net/netip"
	"time"

	"github.com/gtudp/gtudp/peer"
)

// When the table is full, a new peer takes the place of one that never
// proved its address (it never answered one of our DATA, or a probe),
// oldest first, sparing once any that was used since the last look (a
// CLOCK scan): a flood of forged sources cannot lock honest peers out, and
// a validated peer keeps its place. A new peer for a forged or unproven
// source may evict only peers with none of our messages; a local send or
// a validated peer may also evict one with our messages, which then fail
// saying why. What an evicted peer remembered of the messages it delivered
// is kept (graves) and handed to the next peer of its address, so a late
// repeat of one of them is still not delivered twice.

// evictLocked evicts one peer to make room and reports whether it could;
// e.mu is held. mayFailOurs allows evicting a peer with our messages.
func (e *Endpoint) evictLocked(mayFailOurs bool) bool {
	for scanned, n := 0, 2*len(e.order); scanned < n && len(e.order) > 0; scanned++ {
		p := e.order[0]
		e.order[0] = nil
		e.order = e.order[1:]
		if e.peers[p.Addr()] != p {
			continue // gone already
		}
		if !p.Evictable(mayFailOurs) {
			e.order = append(e.order, p)
			continue
		}
		delete(e.peers, p.Addr())
		p.Evict()
		e.ctr.evicted.Add(1)
		return true
	}
	return false
}

// orderLocked records a new peer at the back of the eviction order, and
// drops the entries of peers that have left the table when they outnumber
// the live ones; e.mu is held.
func (e *Endpoint) orderLocked(p *peer.Peer) {
	e.order = append(e.order, p)
	if len(e.order) > 2*len(e.peers)+64 {
		live := e.order[:0]
		for _, q := range e.order {
			if e.peers[q.Addr()] == q {
				live = append(live, q)
			}
		}
		clear(e.order[len(live):])
		e.order = live
	}
}

// bury keeps what an evicted peer remembered (its Options.Bury).
func (e *Endpoint) bury(p *peer.Peer, m peer.Memory) {
	now := e.cfg.Clock.Now()
	e.mu.Lock()
	e.graves.put(p.Addr(), m, now)
	e.mu.Unlock()
}

// graves keeps the memory of evicted peers by address until it expires,
// oldest burials dropped first beyond max entries in all.
type graves struct {
	byAddr map[netip.AddrPort]grave
	order  []netip.AddrPort // burial order; may hold addresses taken back
	n, max int
}

type grave struct {
	m     peer.Memory
	until time.Time // when all of m has expired
}

func (g *graves) put(a netip.AddrPort, m peer.Memory, now time.Time) {
	if g.byAddr == nil {
		g.byAddr = make(map[netip.AddrPort]grave)
	}
	if len(m) > 0 {
		old, ok := g.byAddr[a]
		if ok {
			g.n -= len(old.m)
			m = append(old.m, m...)
		} else {
			g.order = append(g.order, a)
		}
		g.byAddr[a] = grave{m: m, until: m.Until()}
		g.n += len(m)
	}
	g.sweep(now)
}

// sweep drops the oldest burials while over the bound or expired.
func (g *graves) sweep(now time.Time) {
	for len(g.order) > 0 {
		old := g.order[0]
		gr, ok := g.byAddr[old]
		if ok && g.n <= g.max && gr.until.After(now) {
			break
		}
		g.order = g.order[1:]
		if ok {
			g.n -= len(gr.m)
			delete(g.byAddr, old)
		}
	}
}

// take removes and returns the memory kept for a.
func (g *graves) take(a netip.AddrPort) peer.Memory {
	gr, ok := g.byAddr[a]
	if ok {
		delete(g.byAddr, a)
		g.n -= len(gr.m)
	}
	return gr.m
}
