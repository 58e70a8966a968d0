package ckpt

import (
	"hash/maphash"
	"unsafe"
)

// keyedMap is the memory of a keyed state: an open-addressing hash table
// from keys to slots. Unlike a Go map it hands out a pointer to a slot,
// so that a read-modify-write (Keyed.Update) looks the key up once and
// changes the slot in place, where a map needs a lookup and an
// assignment. The pointer is valid until the next insert.
type keyedMap[K Key, V any] struct {
	kk    keyKind
	seed  maphash.Seed
	ents  []mapEntry[K, V]
	n     int // live entries
	dead  int // deleted entries still in the table
	mask  uint64
	iseed uint64 // for integer keys
	last  uint64 // the hash of the key last given to find or insert
	sink  uint8  // keeps findEach's loads from being dropped
}

// dirtyKey is a key listed for the next checkpoint, with its hash (the
// same in every map of one state: see empty), so that finding it again
// reads neither its bytes nor anything but its place in the table.
type dirtyKey[K Key] struct {
	key K
	h   uint64
}

// mapEntry is an entry of the table; its control byte (s.ctrl: empty,
// deleted, or a tag of the key's hash) is in the slot's padding, so that
// a probe reads one place.
type mapEntry[K Key, V any] struct {
	key K
	s   slot[V]
}

const (
	ctrlEmpty   = 0
	ctrlDeleted = 1
)

func newKeyedMap[K Key, V any](kk keyKind, size int) *keyedMap[K, V] {
	m := &keyedMap[K, V]{kk: kk, seed: maphash.MakeSeed()}
	m.iseed = maphash.Comparable(m.seed, uint64(0x9e3779b97f4a7c15)) | 1
	m.alloc(size)
	return m
}

// empty returns an empty map with m's hash seed, so that the hashes of
// m's keys hold in it too.
func (m *keyedMap[K, V]) empty() *keyedMap[K, V] {
	e := &keyedMap[K, V]{kk: m.kk, seed: m.seed, iseed: m.iseed}
	e.alloc(0)
	return e
}

// alloc makes room for size entries, empty.
func (m *keyedMap[K, V]) alloc(size int) {
	c := 16
	for c*3/4 < size {
		c *= 2
	}
	m.ents = make([]mapEntry[K, V], c)
	m.mask = uint64(c - 1)
	m.n, m.dead = 0, 0
}

// hash returns key's hash.
func (m *keyedMap[K, V]) hash(key K) uint64 {
	p := unsafe.Pointer(&key)
	if m.kk.name == "string" {
		return maphash.String(m.seed, *(*string)(p))
	}
	// A multiply-xorshift mix of the key's bits: integers need no more.
	h := intBits(p, m.kk) * m.iseed
	h ^= h >> 29
	h *= 0xbf58476d1ce4e5b9
	return h ^ h>>32
}

// tag is the control byte of a hash: never empty or deleted.
func tag(h uint64) uint8 { return uint8(h>>57) | 2 }

// len returns the number of keys.
func (m *keyedMap[K, V]) len() int { return m.n }

// find returns key's slot, or nil.
func (m *keyedMap[K, V]) find(key K) *slot[V] {
	m.last = m.hash(key)
	return m.findHash(key, m.last)
}

// keyOf returns the key stored with s, which is a slot of m's. A key
// listed from here shares its bytes with the table's copy, so looking it
// up again compares pointers, not bytes far away in memory.
func (m *keyedMap[K, V]) keyOf(s *slot[V]) K {
	var e mapEntry[K, V]
	return (*mapEntry[K, V])(unsafe.Add(unsafe.Pointer(s), -int(unsafe.Offsetof(e.s)))).key
}

// findEach calls fn with each key and its slot (nil if absent), in
// order. The keys are looked up a batch at a time, each batch's first
// probes loaded before any is used: in a table far larger than the CPU's
// caches almost every lookup misses them, and this way the misses
// overlap instead of coming one after another. fn may delete keys.
func (m *keyedMap[K, V]) findEach(keys []dirtyKey[K], fn func(K, *slot[V])) {
	const batch = 16
	for len(keys) > 0 {
		n := min(len(keys), batch)
		var x uint8
		for _, d := range keys[:n] {
			x += m.ents[d.h&m.mask].s.ctrl
		}
		m.sink += x
		for _, d := range keys[:n] {
			fn(d.key, m.findHash(d.key, d.h))
		}
		keys = keys[n:]
	}
}

// findHash returns key's slot, or nil; h is key's hash.
func (m *keyedMap[K, V]) findHash(key K, h uint64) *slot[V] {
	t := tag(h)
	for i := h & m.mask; ; i = (i + 1) & m.mask {
		e := &m.ents[i]
		switch e.s.ctrl {
		case ctrlEmpty:
			return nil
		case t:
			if e.key == key {
				return &e.s
			}
		}
	}
}

// insert adds key, which find did not find, with a zero slot, and returns
// the slot.
func (m *keyedMap[K, V]) insert(key K) *slot[V] {
	return m.insertHash(key, m.hash(key))
}

// insertHash is insert of a key whose hash is h.
func (m *keyedMap[K, V]) insertHash(key K, h uint64) *slot[V] {
	if (m.n+m.dead+1)*4 > len(m.ents)*3 {
		m.rehash()
	}
	m.last = h
	i := h & m.mask
	for m.ents[i].s.ctrl > ctrlDeleted {
		i = (i + 1) & m.mask
	}
	if m.ents[i].s.ctrl == ctrlDeleted {
		m.dead--
	}
	m.ents[i] = mapEntry[K, V]{key: key, s: slot[V]{ctrl: tag(h)}}
	m.n++
	return &m.ents[i].s
}

// insertEach inserts the keys of es, none of which is in the table, with
// their values. The keys are hashed a batch at a time and their first
// slots loaded before any is used, as in findEach.
func (m *keyedMap[K, V]) insertEach(es []frozenEntry[K, V]) {
	const batch = 16
	var hs [batch]uint64
	for len(es) > 0 {
		n := min(len(es), batch)
		var x uint8
		for i := range n {
			hs[i] = m.hash(es[i].key)
			x += m.ents[hs[i]&m.mask].s.ctrl
		}
		m.sink += x
		for i := range n {
			m.insertHash(es[i].key, hs[i]).v = es[i].v
		}
		es = es[n:]
	}
}

// delete removes key, if present.
func (m *keyedMap[K, V]) delete(key K) {
	h := m.hash(key)
	t := tag(h)
	for i := h & m.mask; ; i = (i + 1) & m.mask {
		switch m.ents[i].s.ctrl {
		case ctrlEmpty:
			return
		case t:
			if m.ents[i].key == key {
				m.ents[i] = mapEntry[K, V]{s: slot[V]{ctrl: ctrlDeleted}}
				m.n--
				m.dead++
				return
			}
		}
	}
}

// rehash moves the live entries to a table sized for them, dropping the
// deleted ones: twice the size when the table is mostly live.
func (m *keyedMap[K, V]) rehash() {
	ents := m.ents
	m.alloc(2*m.n + 1)
	for i := range ents {
		if ents[i].s.ctrl > ctrlDeleted {
			s := m.insert(ents[i].key)
			s.v, s.kind, s.epoch = ents[i].s.v, ents[i].s.kind, ents[i].s.epoch
		}
	}
}

// all calls fn for every key and its slot, in no order, until fn returns
// false.
func (m *keyedMap[K, V]) all(fn func(K, *slot[V]) bool) {
	for i := range m.ents {
		if m.ents[i].s.ctrl > ctrlDeleted && !fn(m.ents[i].key, &m.ents[i].s) {
			return
		}
	}
}
