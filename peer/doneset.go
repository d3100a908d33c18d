package peer

// doneSet is the set of finished exchanges a peer remembers, by a 64-bit
// key (doneKey): open addressing with linear probing over a power-of-two
// table kept at most half full, deletion by backward shift (no
// tombstones). One 8-byte slot per entry: a 16,384-id dedupe window is a
// 256 KiB table, and a lookup usually reads one cache line. The map it
// replaces held 24-byte entries and read a control word and a slot; with
// every new DATA looked up, its cache misses cost a single message's round
// trip about 0.25 µs on loopback.
//
// Keys are hashes keyed by a secret seed (see doneKey), so a remote host
// cannot aim for collisions; the slot is taken from the key's high bits.
type doneSet struct {
	slots []uint64 // 0: empty
	n     int
	shift uint // 64 - log2(len(slots))
}

// inUse reports whether the set has a table: it keeps it, empty or not,
// until shrink drops it or it is reset.
func (d *doneSet) inUse() bool { return d.slots != nil }

// minDoneSlots is the smallest table.
const minDoneSlots = 32

func (d *doneSet) index(k uint64) int { return int(k >> d.shift) }

func (d *doneSet) has(k uint64) bool {
	if d.n == 0 {
		return false
	}
	mask := len(d.slots) - 1
	for i := d.index(k); ; i = (i + 1) & mask {
		switch d.slots[i] {
		case k:
			return true
		case 0:
			return false
		}
	}
}

// add inserts k, which must not be in the set.
func (d *doneSet) add(k uint64) {
	if 2*(d.n+1) > len(d.slots) {
		d.resize(max(minDoneSlots, 2*len(d.slots)))
	}
	d.insert(k)
	d.n++
}

func (d *doneSet) insert(k uint64) {
	mask := len(d.slots) - 1
	i := d.index(k)
	for d.slots[i] != 0 {
		i = (i + 1) & mask
	}
	d.slots[i] = k
}

// del removes k if it is in the set.
func (d *doneSet) del(k uint64) {
	if d.n == 0 {
		return
	}
	mask := len(d.slots) - 1
	i := d.index(k)
	for d.slots[i] != k {
		if d.slots[i] == 0 {
			return
		}
		i = (i + 1) & mask
	}
	// Shift back the entries after i that would no longer be found past
	// the hole.
	for j := (i + 1) & mask; d.slots[j] != 0; j = (j + 1) & mask {
		home := d.index(d.slots[j])
		// Move slots[j] into the hole at i unless its home lies in the
		// cyclic range (i, j].
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			d.slots[i], d.slots[j] = d.slots[j], 0
			i = j
		}
	}
	d.slots[i] = 0
	d.n--
}

func (d *doneSet) resize(size int) {
	old := d.slots
	d.slots = make([]uint64, size)
	d.shift = 64
	for s := size; s > 1; s >>= 1 {
		d.shift--
	}
	for _, k := range old {
		if k != 0 {
			d.insert(k)
		}
	}
}

// shrink resizes the table to fit n entries, or drops it when empty.
func (d *doneSet) shrink() {
	if d.n == 0 {
		*d = doneSet{}
		return
	}
	size := minDoneSlots
	for 2*d.n > size {
		size *= 2
	}
	if size < len(d.slots) {
		d.resize(size)
	}
}
