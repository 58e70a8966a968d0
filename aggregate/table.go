package aggregate

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"hash/maphash"
	"math/big"
	"slices"
	"sync"
	"unsafe"
)

// table holds the groups seen since they were last handed to the keyed
// state, laid out so that a group costs no heap object of its own: the
// keys one after another in one byte slice, a fixed-size entry per group,
// the accumulators of all groups in one slice, and an open-addressing
// index of entry numbers. Millions of groups are a handful of large
// allocations without pointers, which the garbage collector does not
// scan (the rare sums past int64 aside), where a map of *group held
// several small objects per group and made the collector a quarter of
// the job's time.
//
// A table is changed only by the job's goroutine; once handed over
// (handoff) it is never changed again, and the keyed state reads it,
// possibly from another goroutine, to write it as a sorted run.
type table struct {
	spare *spares // where Release puts the table; nil: nowhere
	na    int     // accumulators per group
	// idx maps each aggregation to its accumulator in a group, or -1
	// for one that needs none (a count: the group's count is its
	// entry's).
	idx   []int
	keys  []byte   // the groups' keys (appendGroupKey's form), one after another
	ents  []tent   // one per group, in insertion order
	accs  []facc   // na per group, in the order of ents
	slots []uint64 // the hash's high 32 bits, then 1 + an index into ents; 0 is empty
	text  []byte   // the texts of minima and maxima, one after another
	bigs  []num    // the sums past the int64 form
	seed  maphash.Seed
}

// facc is acc without pointers, so that the collector need not scan a
// table's accumulators, nor zero them: the number is m × 10^-scale, or
// bigs[-scale-1] when scale is negative; a minimum's or maximum's text is
// text[toff:toff+tlen].
type facc struct {
	n     int64
	m     int64
	toff  int64
	tlen  uint32
	scale int32
}

// tent is a group's entry.
type tent struct {
	hash   uint64
	prefix uint64 // the key's first 8 bytes, big-endian, zero-padded: sorts most keys alone
	off    int    // of the key in keys
	n      uint32 // the key's length
	count  int64
}

// len returns the number of groups.
func (t *table) len() int {
	if t == nil {
		return 0
	}
	return len(t.ents)
}

// memory returns the bytes the table's groups take.
func (t *table) memory() int64 {
	if t == nil {
		return 0
	}
	return int64(len(t.keys)+len(t.text)) + int64(len(t.ents))*(entSize+3*8) + int64(len(t.accs))*accSize + int64(len(t.bigs))*64
}

// The sizes of a group's parts: its entry, each accumulator, and two to
// four index slots of 8 bytes (the index is kept at most half full).
const (
	entSize = int64(unsafe.Sizeof(tent{}))
	accSize = int64(unsafe.Sizeof(facc{}))
)

// groupsIn returns at least how many groups of na accumulators fit in
// memory bytes as memory() counts them, whatever their keys' length: the
// capacity a table never has to grow past.
func groupsIn(memory int64, na int) int {
	return int(memory / (entSize + 3*8 + int64(na)*accSize))
}

// key returns group i's key.
func (t *table) key(i int) []byte {
	e := &t.ents[i]
	return t.keys[e.off : e.off+int(e.n)]
}

// group returns group i's accumulators.
func (t *table) group(i int) []facc { return t.accs[i*t.na : (i+1)*t.na] }

// num returns c's number.
func (t *table) num(c *facc) num {
	if c.scale < 0 {
		return t.bigs[-c.scale-1]
	}
	return num{m: c.m, scale: c.scale}
}

// setNum sets c's number to n.
func (t *table) setNum(c *facc, n num) {
	switch {
	case n.b == nil && c.scale >= 0:
		c.m, c.scale = n.m, n.scale
	case c.scale < 0:
		t.bigs[-c.scale-1] = n
	default:
		t.bigs = append(t.bigs, n)
		c.m, c.scale = 0, -int32(len(t.bigs))
	}
}

// add folds v into c, which computes op, as acc.add does.
func (t *table) add(c *facc, op Op, v *value, scratch *big.Int) {
	switch op {
	case Min, Max:
		if c.n > 0 {
			cur := t.num(c)
			if d := v.num.cmp(&cur); op == Min && d >= 0 || op == Max && d <= 0 {
				break
			}
		}
		t.setNum(c, v.num)
		c.toff, c.tlen = int64(len(t.text)), uint32(len(v.text))
		t.text = append(t.text, v.text...)
	default:
		n := t.num(c)
		n.add(&v.num, scratch)
		t.setNum(c, n)
	}
	c.n++
}

// acc returns c as an acc.
func (t *table) acc(c *facc) acc {
	return acc{n: c.n, v: t.num(c), text: string(t.text[c.toff : c.toff+int64(c.tlen)])}
}

// setAcc sets c to x.
func (t *table) setAcc(c *facc, x *acc) {
	c.n = x.n
	t.setNum(c, x.v)
	c.toff, c.tlen = int64(len(t.text)), uint32(len(x.text))
	t.text = append(t.text, x.text...)
}

// appendAccs appends group i's accumulators to dst as accs, one per
// aggregation (a count's empty).
func (t *table) appendAccs(dst []acc, i int) []acc {
	g := t.group(i)
	for _, j := range t.idx {
		if j < 0 {
			dst = append(dst, acc{})
			continue
		}
		dst = append(dst, t.acc(&g[j]))
	}
	return dst
}

// appendPartial appends group i's aggregates as partial.AppendBinary
// encodes them.
func (t *table) appendPartial(b []byte, i int) []byte {
	b = binary.AppendVarint(b, t.ents[i].count)
	g := t.group(i)
	b = binary.AppendUvarint(b, uint64(len(t.idx)))
	for _, j := range t.idx {
		if j < 0 {
			// An empty accumulator, as acc{} encodes.
			b = binary.AppendVarint(b, 0)
			b = binary.AppendUvarint(b, 0)
			b = appendNumBinary(b, &num{})
			continue
		}
		c := &g[j]
		b = binary.AppendVarint(b, c.n)
		b = binary.AppendUvarint(b, uint64(c.tlen))
		b = append(b, t.text[c.toff:c.toff+int64(c.tlen)]...)
		if c.tlen == 0 {
			n := t.num(c)
			b = appendNumBinary(b, &n)
		}
	}
	return b
}

// find returns the index of key's group, or -1 and the key's hash, which
// insert takes.
func (t *table) find(key []byte) (int, uint64) {
	h := maphash.Bytes(t.seed, key)
	return t.findHash(key, h), h
}

// findHash returns the index of key's group, whose hash is h, or -1.
func (t *table) findHash(key []byte, h uint64) int {
	if len(t.slots) == 0 {
		return -1
	}
	mask := uint64(len(t.slots) - 1)
	tag := h &^ (1<<32 - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := t.slots[i]
		if s == 0 {
			return -1
		}
		// The tag spares reading the entries of other keys.
		if s&^(1<<32-1) != tag {
			continue
		}
		if e := &t.ents[uint32(s)-1]; bytes.Equal(t.keys[e.off:e.off+int(e.n)], key) {
			return int(uint32(s) - 1)
		}
	}
}

// insert adds a group of key, which find did not find, and returns its
// index.
func (t *table) insert(key []byte, h uint64) int {
	if (len(t.ents)+1)*2 > len(t.slots) {
		t.grow()
	}
	i := len(t.ents)
	if i == cap(t.ents) || len(t.accs)+t.na > cap(t.accs) {
		// Doubling, where append grows a large slice by a quarter: each
		// group is copied about once, not four times.
		t.reserve(max(2*i, 1024), 0)
	}
	if len(t.keys)+len(key) > cap(t.keys) {
		t.keys = regrow(t.keys, 2*len(t.keys)+len(key))
	}
	t.ents = append(t.ents, tent{hash: h, prefix: keyPrefix(key), off: len(t.keys), n: uint32(len(key))})
	t.keys = append(t.keys, key...)
	t.accs = t.accs[:len(t.accs)+t.na] // zero: reserve allocated it so
	t.place(uint32(i+1), h)
	return i
}

// reserve makes room for n groups and keyBytes bytes of keys in all.
// Memory is taken with make, not slices.Grow, which would clear it all
// (and so touch every page) at once: make's large allocations come from
// the operating system zeroed, and cost nothing until used.
func (t *table) reserve(n, keyBytes int) {
	if n > cap(t.ents) {
		t.ents = regrow(t.ents, n)
	}
	if n*t.na > cap(t.accs) {
		t.accs = regrow(t.accs, n*t.na)
	}
	if keyBytes > cap(t.keys) {
		t.keys = regrow(t.keys, keyBytes)
	}
	if slots := 2 * n; len(t.slots) < slots {
		size := 1024
		for size < slots {
			size *= 2
		}
		t.slots = make([]uint64, size)
		for i := range t.ents {
			t.place(uint32(i+1), t.ents[i].hash)
		}
	}
}

// regrow returns s with a capacity of n, the same elements and zeros
// beyond them.
func regrow[E any](s []E, n int) []E {
	out := make([]E, len(s), n)
	copy(out, s)
	return out
}

func (t *table) place(s uint32, h uint64) {
	mask := uint64(len(t.slots) - 1)
	i := h & mask
	for t.slots[i] != 0 {
		i = (i + 1) & mask
	}
	t.slots[i] = h&^(1<<32-1) | uint64(s)
}

// grow doubles the index.
func (t *table) grow() {
	n := max(len(t.slots)*2, 1024)
	t.slots = make([]uint64, n)
	for i := range t.ents {
		t.place(uint32(i+1), t.ents[i].hash)
	}
}

func keyPrefix(key []byte) uint64 {
	if len(key) >= 8 {
		return binary.BigEndian.Uint64(key)
	}
	var b [8]byte
	copy(b[:], key)
	return binary.BigEndian.Uint64(b[:])
}

// sorted returns the groups' indices in increasing key order; none for
// a nil table.
func (t *table) sorted() []int32 {
	if t == nil {
		return nil
	}
	o := make([]ord, len(t.ents))
	for i := range t.ents {
		o[i] = ord{t.ents[i].prefix, int32(i)}
	}
	o = radixSort(o, make([]ord, len(o)))
	// Keys of the same first 8 bytes, by the rest.
	for i := 0; i < len(o); {
		j := i + 1
		for j < len(o) && o[j].prefix == o[i].prefix {
			j++
		}
		if j-i > 1 {
			slices.SortFunc(o[i:j], func(a, b ord) int {
				return bytes.Compare(t.key(int(a.i)), t.key(int(b.i)))
			})
		}
		i = j
	}
	out := make([]int32, len(o))
	for i := range o {
		out[i] = o[i].i
	}
	return out
}

// ord is a group in sorted's order: its key's first 8 bytes, its index.
type ord struct {
	prefix uint64
	i      int32
}

// radixSort sorts o by prefix, a byte at a time from the lowest (a stable
// counting sort per byte, skipping bytes that are the same in every
// prefix), using tmp, as long as o, as scratch; it returns whichever of
// the two holds the result. Sorting millions of groups this way takes a
// fraction of a comparison sort's time, and it runs at every checkpoint.
func radixSort(o, tmp []ord) []ord {
	if len(o) < 256 {
		slices.SortFunc(o, func(a, b ord) int { return cmp.Compare(a.prefix, b.prefix) })
		return o
	}
	var counts [8][256]int
	for _, x := range o {
		p := x.prefix
		for b := range 8 {
			counts[b][byte(p>>(8*b))]++
		}
	}
	for b := range 8 {
		c := &counts[b]
		shift := 8 * b
		if c[byte(o[0].prefix>>shift)] == len(o) {
			continue
		}
		sum := 0
		for d := range c {
			c[d], sum = sum, sum+c[d]
		}
		for _, x := range o {
			d := byte(x.prefix >> shift)
			tmp[c[d]] = x
			c[d]++
		}
		o, tmp = tmp, o
	}
	return o
}

// Len is the number of groups, for ckpt.EncodedBatch.
func (t *table) Len() int { return t.len() }

// Sorted yields every group as the keyed state stores it: the key, and
// the group's aggregates as partial.AppendBinary encodes them, in
// increasing key order. It implements ckpt.EncodedBatch: the keyed state
// calls it, once, possibly in its background commit, after the table was
// handed over.
func (t *table) Sorted(yield func(key, val []byte) error) error {
	var val []byte
	for _, i := range t.sorted() {
		val = t.appendPartial(val[:0], int(i))
		if err := yield(t.key(int(i)), val); err != nil {
			return err
		}
	}
	return nil
}

// Release is called by the keyed state once it has written the table
// (ckpt.EncodedBatch): the table's memory serves the next one.
func (t *table) Release() {
	if t.spare != nil {
		t.spare.put(t)
	}
}

// reset empties t for reuse, keeping its memory.
func (t *table) reset() {
	clear(t.accs) // insert takes zeroed accumulators
	clear(t.slots)
	t.keys, t.ents, t.accs, t.text = t.keys[:0], t.ents[:0], t.accs[:0], t.text[:0]
	t.bigs = nil
}

// spares holds tables the keyed state has written, for reuse: a fresh
// table of millions of groups costs page faults and zeroing that a used
// one does not.
type spares struct {
	mu   sync.Mutex
	list []*table
}

func (s *spares) put(t *table) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.list) < 1 {
		s.list = append(s.list, t)
	}
}

func (s *spares) get() *table {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.list) == 0 {
		return nil
	}
	t := s.list[len(s.list)-1]
	s.list = s.list[:len(s.list)-1]
	return t
}
