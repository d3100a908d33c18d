package peer

import "time"

// parkSlack: see lifecycle.parkedWake.
const parkSlack = time.Second

// lifecycle is the Peer's account of its own quiet and idle time: when it
// may park (give its goroutine up, keeping its State) and when it offers to
// retire (end, state and all). The loop tells it at every turn whether
// the State is busy or idle; it answers with what is due, and the time it
// next needs the loop (next).
type lifecycle struct {
	parkAfter   time.Duration // 0: never park
	idleTimeout time.Duration

	quietSince time.Time // nothing in flight since; zero while busy
	idleSince  time.Time // nothing remembered either since; zero otherwise
}

// advance records the state at now: busy (an exchange under way, or a
// receipt still to hand over) or not, and, if not, idle (nothing
// remembered) or not. It reports whether the idle timeout has run out
// (retire) and whether the peer has been quiet long enough to park.
func (l *lifecycle) advance(now time.Time, busy, idle bool) (retire, park bool) {
	if busy {
		l.quietSince, l.idleSince = time.Time{}, time.Time{}
		return false, false
	}
	if l.quietSince.IsZero() {
		l.quietSince = now
	}
	switch {
	case !idle:
		l.idleSince = time.Time{}
	case l.idleSince.IsZero():
		// Memory is given back when the peer parks: a stream whose
		// window drains for a moment must not reallocate its tables
		// every time.
		l.idleSince = now
	}
	retire = !l.idleSince.IsZero() && !now.Before(l.idleSince.Add(l.idleTimeout))
	park = l.parkAfter > 0 && !now.Before(l.quietSince.Add(l.parkAfter))
	return retire, park
}

// refused records that the owner refused to retire the peer at now (a
// send is waiting, or it wants the peer kept): it asks again a full
// IdleTimeout later rather than spin on a deadline in the past.
func (l *lifecycle) refused(now time.Time) { l.idleSince = now }

// retireAt returns when the idle timeout runs out, or zero.
func (l *lifecycle) retireAt() time.Time {
	if l.idleSince.IsZero() {
		return time.Time{}
	}
	return l.idleSince.Add(l.idleTimeout)
}

// parkedWake returns when a parked peer must wake, given the State's next
// deadline (a dedupe expiry: nothing is in flight), or zero for never. The
// expiry is put off by parkSlack, so that one wake-up forgets the ids of a
// second of traffic rather than one each; remembering an id a little
// longer is harmless.
func (l *lifecycle) parkedWake(state time.Time) time.Time {
	if !state.IsZero() {
		state = state.Add(parkSlack)
	}
	return firstTime(state, l.retireAt())
}

// next returns the earliest of the retire and park deadlines, or zero.
func (l *lifecycle) next() time.Time {
	var park time.Time
	if !l.quietSince.IsZero() && l.parkAfter > 0 {
		park = l.quietSince.Add(l.parkAfter)
	}
	return firstTime(l.retireAt(), park)
}

// firstTime returns the earlier of a and b, where the zero Time means
// none.
func firstTime(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}
