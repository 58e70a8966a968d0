package ckpt

// A checkpoint of a keyed state held whole in memory does not copy the
// changed values in the job's pause. It takes the list of changed keys
// and starts a new epoch; the background commit then copies the values
// out of the live table, a batch at a time, while the job goes on. A
// slot the job is about to change that still holds its frozen value
// (its epoch is the frozen one) is copied first, by the job: copy on
// write, as Flink's CopyOnWriteStateMap does. While the copy runs, the
// job's changes and the copier take the table's lock (cmu); the job's
// reads take nothing, since the copier writes only the epochs of slots,
// which a read does not look at.
//
// A copied slot's epoch becomes 0, which no epoch is: a copy in progress
// copies a slot once, whichever side gets to it first. Deleted keys
// (tombstones) stay in the table until the copy is over; the job then
// removes those still unchanged.
//
// Only a state with every key in memory is copied this way (cowOK), so
// that no change made under cmu reads the disk or waits for the commit,
// which would wait for the copy. What would end that (a spill past the
// budget, MergeEncoded, a flush, the next capture) first completes the
// copy in the job's goroutine (finishCopy). A state past its budget
// copies its changes in the pause, as they are few: the budget bounds
// them.

// keyedSnap is a copy in progress of the changes of one epoch.
type keyedSnap[K Key, V any] struct {
	epoch uint32
	keys  []dirtyKey[K] // the changed keys
	next  int           // keys[:next] are copied or skipped
	out   []frozenEntry[K, V]
	drop  []K // tombstones copied, to remove from the table
}

// snapBatch is how many keys the background copies per hold of the
// lock: the longest the job waits for it.
const snapBatch = 256

// cowOK reports whether a checkpoint can copy the changes after the
// pause: every key is in memory, so that no change or lookup of the job
// reads the frozen changes, which the copy fills in later.
func (k *Keyed[K, V]) cowOK() bool {
	return k.complete && !k.nocache && len(k.batch) == 0 && len(k.pend) == 0 && !k.encInFlight
}

// snapshot is freeze's part for a state whose changes are copied after
// the pause: it takes the changed keys and starts a new epoch.
func (k *Keyed[K, V]) snapshot() *keyedSnap[K, V] {
	sn := &keyedSnap[K, V]{epoch: k.epoch, keys: k.dirty}
	if len(sn.keys) == 0 {
		k.nextEpoch()
		return sn
	}
	// The previous copy's list, for the new epoch's changes: no
	// allocation in the pause, where the collector could make the job
	// pay for it with marking work. What the list held past its new
	// length is overwritten as it fills.
	k.dirty, k.spare = k.spare[:0], nil
	k.nextEpoch()
	k.snap = sn
	k.copying.Store(true)
	return sn
}

// copySnap copies up to max keys of sn, the copy in progress (all if
// max is negative), unless it is over, and reports whether it is. The
// caller holds cmu.
func (k *Keyed[K, V]) copySnap(sn *keyedSnap[K, V], max int) bool {
	if !k.copying.Load() {
		return true
	}
	if cap(sn.out) < len(sn.keys) {
		sn.out = append(make([]frozenEntry[K, V], 0, len(sn.keys)), sn.out...)
	}
	keys := sn.keys[sn.next:]
	if max >= 0 && len(keys) > max {
		keys = keys[:max]
	}
	k.cache.findEach(keys, func(key K, s *slot[V]) {
		if s == nil || s.epoch != sn.epoch {
			return // copied by the job before it changed the slot
		}
		sn.out = append(sn.out, frozenEntry[K, V]{key: key, v: s.v, kind: s.kind})
		s.epoch = 0
		if s.kind == entryDelete {
			sn.drop = append(sn.drop, key)
		}
	})
	sn.next += len(keys)
	if sn.next < len(sn.keys) {
		return false
	}
	k.copying.Store(false)
	return true
}

// copyAll completes the copy of sn, in the background commit, a batch at
// a time, and returns the changes it froze.
func (k *Keyed[K, V]) copyAll(sn *keyedSnap[K, V]) []frozenEntry[K, V] {
	for done := false; !done; {
		k.cmu.Lock()
		done = k.copySnap(sn, snapBatch)
		k.cmu.Unlock()
	}
	return sn.out
}

// finishCopy completes the copy in progress in the job's goroutine, if
// one is, and removes the tombstones it copied that the job has not
// changed since: for the job's paths that do more than change the table
// (a lookup on disk, a flush, a capture). The caller does not hold cmu.
func (k *Keyed[K, V]) finishCopy() {
	sn := k.snap
	if sn == nil {
		return
	}
	if k.copying.Load() {
		k.cmu.Lock()
		k.copySnap(sn, -1)
		k.cmu.Unlock()
	}
	for _, key := range sn.drop {
		if s := k.cache.find(key); s != nil && s.epoch == 0 && s.kind == entryDelete {
			k.cache.delete(key)
		}
	}
	k.snap = nil
	k.spare = sn.keys
}

// save copies s's value into the copy in progress before the job changes
// it, if s still holds the value the copy is to take (which no slot does
// once the copy is over). While a copy is in progress the caller holds
// cmu; s is the slot of the key last looked up.
func (k *Keyed[K, V]) save(s *slot[V]) {
	if sn := k.snap; sn != nil && s.epoch == sn.epoch {
		sn.out = append(sn.out, frozenEntry[K, V]{key: k.cache.keyOf(s), v: s.v, kind: s.kind})
		s.epoch = 0
	}
}
