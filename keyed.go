package ckpt

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/ckptdev/ckpt/codec"
	"github.com/ckptdev/ckpt/store"
)

// Keyed is a map from keys to values owned by a job, saved by every
// checkpoint of the job and restored exactly on resume, whose checkpoints
// cost what changed since the previous one rather than its whole size.
// NewKeyed obtains one.
//
// The state is kept as immutable sorted runs (see docs/ARCHITECTURE.md):
// a checkpoint writes the changes since the previous checkpoint as a new
// run and references the runs of earlier checkpoints, which it does not
// write again; runs are merged in the background of later checkpoints.
// While the state fits in the memory budget (Config.Memory) every value is
// also held decoded in memory, and Get and Put cost about a Go map's
// operations; past it, the memory is cleared and lookups go to the local
// runs (a filter and a small index per run keep that to one read).
//
// Values are stored by value: a Put records v as it is at the call, and the
// caller must not change memory that v references (a slice's elements, a
// map) afterwards, since a checkpoint in flight may be encoding it. Put a
// new value instead.
//
// A Keyed is used from the job's goroutine, like the Job.
type Keyed[K Key, V any] struct {
	name   string
	kk     keyKind
	codec  codec.Codec
	comp   codec.Compression
	merge  func(older, newer V) V
	dir    string
	budget int64

	// cache holds a slot per key in memory: every live key when complete,
	// else the keys read or changed since the memory was last cleared.
	// A slot changed since the last checkpoint is listed in dirty, once:
	// its epoch is the current one.
	cache    *keyedMap[K, V]
	complete bool
	nocache  bool
	dirty    []dirtyKey[K]
	// batch holds merge operands given by MergeAll to a state without
	// cache, older than every dirty slot; lookups write it out first.
	batch []frozenEntry[K, V]
	epoch uint32
	count int64 // live keys, unless unsure
	// unsure: a Merge of a key not in memory may have added a key, so
	// count is not known until Len counts.
	unsure bool
	ops    int

	// perEntry is the estimated memory of one entry, learned from the
	// encoded size of what was written (by the checkpoint in flight too).
	perEntry atomic.Int64

	mu sync.Mutex // guards frozen, frozenIdx and runs: the checkpoint in flight changes them
	// frozen holds the changes a checkpoint in flight is writing as a run;
	// frozenIdx indexes it by key, built when a lookup needs it.
	frozen    []frozenEntry[K, V]
	frozenIdx map[K]int
	frozenLen atomic.Int64 // len(frozen), read without the lock
	// runs hold every change up to the last checkpoint (and spill), oldest
	// first: the state is their merge, the newest entry of a key winning.
	runs     []*run
	inflight chan struct{} // closed when the checkpoint in flight has its run
	// pend lists MergeEncoded's batches not yet taken by a checkpoint,
	// oldest first, all older than batch and dirty; encInFlight is set
	// while batches are being written in the background, which lookups
	// must wait for.
	pend        []EncodedBatch
	encInFlight bool
	failed      error // set when a checkpoint could not write its run

	// snap is the copy of a checkpoint's changes that the background
	// commit makes after the job's pause (keyed_snap.go); copying is set
	// until it is over, and meanwhile changes to cache take cmu. spare
	// is the list of keys of a copy that is over, for reuse.
	snap    *keyedSnap[K, V]
	copying atomic.Bool
	cmu     sync.Mutex
	spare   []dirtyKey[K]

	buf []byte
}

// slot is a key's value in memory: a put, a deletion or (past the memory
// budget) a merge operand not yet folded onto the value on disk.
type slot[V any] struct {
	v     V
	kind  byte
	ctrl  byte   // keyedMap's control byte of the entry
	epoch uint32 // when it last changed; 0 if read from the runs
}

// frozenEntry is a change as a checkpoint captured it.
type frozenEntry[K Key, V any] struct {
	key  K
	v    V
	kind byte
}

// KeyedOptions configure a keyed state. The zero value is ready to use.
type KeyedOptions[V any] struct {
	// Codec encodes the values. Nil means the job's (Config.Codec).
	Codec codec.Codec
	// Memory is the state's memory budget in bytes. Zero means the job's
	// (Config.Memory).
	Memory int64
	// NoCache keeps no values in memory beyond the changes since the last
	// checkpoint: Get reads the local runs. For a state written with
	// Merge and read once with Range, such as an aggregation's groups,
	// whose memory is then only the recent changes.
	NoCache bool
	// Merge, if set, enables Keyed.Merge: it returns the value that
	// results from folding newer onto older. It must not change older or
	// newer (a checkpoint in flight may be encoding them), must be
	// associative: merge(merge(a, b), c) == merge(a, merge(b, c)), and
	// must be safe to call from two goroutines at once: the background
	// commit merges runs with it while the job goes on.
	Merge func(older, newer V) V
}

// KeyedJob is what NewKeyed needs of a job: every *Job is one.
type KeyedJob interface {
	keyedHost() *keyedHost
}

// keyedHost is a job's side of its keyed states.
type keyedHost struct {
	job      string
	codec    codec.Codec
	comp     codec.Compression
	dir      string
	memory   int64
	parts    []keyedPart
	restored map[string]*restoredKeyed // of the resumed checkpoint, not yet opened
	capture  []func() error            // run before every capture (OnCapture)
	finished bool                      // the final checkpoint is committed
}

// keyedPart is what a Job knows of a keyed state.
type keyedPart interface {
	keyedName() string
	// freeze takes the state as it is now, in the job's goroutine at the
	// checkpoint's instant; the returned function completes it (writes
	// and uploads runs) in the commit, possibly in the background.
	freeze() keyedFinish
	// closeKeyed releases the state's files, and removes them if
	// removeLocal is set.
	closeKeyed(removeLocal bool)
}

// keyedFinish writes a frozen keyed state to the store and returns its
// reference and the bytes it wrote. Every frozen state must be finished,
// also when its checkpoint fails: with a nil store it only moves the
// frozen changes into a local run, which the next checkpoint uploads.
type keyedFinish func(ctx context.Context, st store.Store, prefix string, known blobSet) (KeyedRef, int64, error)

// restoredKeyed is a keyed state of the checkpoint a job resumed from,
// fetched to local disk, until NewKeyed claims it.
type restoredKeyed struct {
	ref  KeyedRef
	runs []*run
}

// NewKeyed returns the job's keyed state called name, restored from the
// checkpoint the job resumed from (or empty), and makes every later
// checkpoint of the job save it. Keys are encoded in an order-preserving
// form of their own (docs/FORMAT.md), values with opts.Codec or the job's
// codec. Call it once per name, after Open and before the job's first
// checkpoint.
func NewKeyed[K Key, V any](j KeyedJob, name string, opts KeyedOptions[V]) (*Keyed[K, V], error) {
	h := j.keyedHost()
	if err := store.ValidName(name); err != nil || strings.Contains(name, "/") {
		return nil, fmt.Errorf("ckpt: keyed state name %q: use letters, digits, '.', '_' and '-'", name)
	}
	for _, p := range h.parts {
		if p.keyedName() == name {
			return nil, fmt.Errorf("ckpt: job %q: keyed state %q is already open", h.job, name)
		}
	}
	k := &Keyed[K, V]{
		name:     name,
		kk:       keyKindOf[K](),
		codec:    opts.Codec,
		comp:     h.comp,
		merge:    opts.Merge,
		dir:      filepath.Join(h.dir, name),
		budget:   h.memory,
		cache:    newKeyedMap[K, V](keyKindOf[K](), 0),
		complete: true,
		epoch:    1,
	}
	if k.codec == nil {
		k.codec = h.codec
	}
	if opts.Memory > 0 {
		k.budget = opts.Memory
	}
	var zk K
	var zv V
	k.perEntry.Store(int64(unsafe.Sizeof(zk)+unsafe.Sizeof(zv)) + entryOverhead)
	if r := h.restored[name]; r != nil {
		delete(h.restored, name)
		if r.ref.Key != k.kk.name || r.ref.Codec != k.codec.Name() {
			closeRuns(r.runs)
			return nil, fmt.Errorf("ckpt: job %q: keyed state %q was saved with %s keys and codec %s; it is opened with %s keys and codec %s", h.job, name, r.ref.Key, r.ref.Codec, k.kk.name, k.codec.Name())
		}
		k.runs = r.runs
		if err := k.load(r.ref, opts.NoCache); err != nil {
			closeRuns(r.runs)
			return nil, fmt.Errorf("ckpt: job %q: keyed state %q: %w", h.job, name, err)
		}
	}
	if opts.NoCache && k.complete {
		k.complete = false
		k.cache = k.cache.empty()
	}
	k.nocache = opts.NoCache
	k.removeStale()
	h.parts = append(h.parts, k)
	return k, nil
}

// entryOverhead is the estimated memory of an entry besides its encoded
// size: the map slots of the cache and the changes, headers, padding.
const entryOverhead = 160

func closeRuns(runs []*run) {
	for _, r := range runs {
		r.close()
	}
}

// load reads the restored runs into memory when they fit the budget.
func (k *Keyed[K, V]) load(ref KeyedRef, nocache bool) error {
	var raw int64
	for _, r := range ref.Runs {
		raw += r.Raw
	}
	if ref.Len > 0 {
		k.learn(raw, ref.Len)
	}
	k.count, k.unsure = ref.Len, ref.Len < 0
	if nocache || k.budget > 0 && raw+max(ref.Len, 0)*k.perEntry.Load() > k.budget {
		k.complete = false
		return nil
	}
	k.cache = newKeyedMap[K, V](k.kk, int(max(ref.Len, 0)))
	// The merge yields each key once: inserted without a lookup. A
	// duplicate would show in the count below.
	err := k.decodeRuns(k.runs, func(es []frozenEntry[K, V]) {
		k.cache.insertEach(es)
	})
	if err != nil {
		return err
	}
	if ref.Len >= 0 && int64(k.cache.len()) != ref.Len {
		return fmt.Errorf("the manifest says %d keys, its runs hold %d", ref.Len, k.cache.len())
	}
	k.count, k.unsure = int64(k.cache.len()), false
	return nil
}

// removeStale removes files of the local directory that no run of the
// state uses: runs of older checkpoints, and temporary files of a process
// that died.
func (k *Keyed[K, V]) removeStale() {
	ents, err := os.ReadDir(k.dir)
	if err != nil {
		return
	}
	used := make(map[string]bool, len(k.runs))
	for _, r := range k.runs {
		used[filepath.Base(r.path)] = true
	}
	for _, e := range ents {
		if !used[e.Name()] {
			os.Remove(filepath.Join(k.dir, e.Name()))
		}
	}
}

func (k *Keyed[K, V]) keyedName() string { return k.name }

// Len returns the number of keys. After Merge calls on a state larger
// than its memory budget it reads the local runs to count them.
func (k *Keyed[K, V]) Len() (int64, error) {
	if k.unsure {
		if err := k.flushDirty(false); err != nil {
			return 0, err
		}
		var n int64
		if err := k.scan(k.runs, func(_, _ []byte) error { n++; return nil }); err != nil {
			return 0, fmt.Errorf("ckpt: keyed state %q: %w", k.name, err)
		}
		k.count, k.unsure = n, false
	}
	return k.count, nil
}

// Get returns the value of key and whether it is present. It fails only
// when the state is larger than its memory budget and reading the local
// disk fails.
func (k *Keyed[K, V]) Get(key K) (V, bool, error) {
	// No lock while a checkpoint copies from the table: a read looks at
	// nothing the copier writes (keyed_snap.go).
	if err := k.flushBatch(); err != nil {
		var zero V
		return zero, false, err
	}
	if s := k.cache.find(key); s != nil {
		switch s.kind {
		case entryPut:
			return s.v, true, nil
		case entryDelete:
			var zero V
			return zero, false, nil
		}
		// A merge operand: fold it onto what is under it, once.
		v, _, err := k.lookup(key, []V{s.v})
		if err != nil {
			return v, false, err
		}
		s.v, s.kind = v, entryPut
		return v, true, nil
	}
	var zero V
	if k.complete {
		return zero, false, nil
	}
	v, ok, err := k.lookup(key, nil)
	if err == nil && ok && !k.nocache && k.fits() {
		k.cache.insert(key).v = v
	}
	return v, ok, err
}

// lookup finds key below memory: in the changes a checkpoint in flight is
// writing, then in the runs, newest first, folding ops (merge operands,
// newest first) and those it meets onto the value under them.
func (k *Keyed[K, V]) lookup(key K, ops []V) (V, bool, error) {
	var zero V
	resolve := func(base V, ok bool) (V, bool, error) {
		for i := len(ops) - 1; i >= 0; i-- {
			if ok {
				base = k.merge(base, ops[i])
			} else {
				base, ok = ops[i], true
			}
		}
		return base, ok, nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.frozen) > 0 {
		if k.frozenIdx == nil {
			k.frozenIdx = make(map[K]int, len(k.frozen))
			for i, e := range k.frozen {
				k.frozenIdx[e.key] = i
			}
		}
		if i, ok := k.frozenIdx[key]; ok {
			e := k.frozen[i]
			if e.kind != entryMerge {
				return resolve(e.v, e.kind == entryPut)
			}
			ops = append(ops, e.v)
		}
	}
	enc := appendKey(k.buf[:0], k.kk, key)
	k.buf = enc
	for i := len(k.runs) - 1; i >= 0; i-- {
		val, kind, found, err := k.runs[i].get(enc, nil)
		if err != nil {
			return zero, false, fmt.Errorf("ckpt: keyed state %q: %w", k.name, err)
		}
		if !found {
			continue
		}
		if kind == entryDelete {
			return resolve(zero, false)
		}
		v, err := k.decode(val)
		if err != nil {
			return zero, false, fmt.Errorf("ckpt: keyed state %q: %w", k.name, err)
		}
		if kind == entryPut {
			return resolve(v, true)
		}
		ops = append(ops, v)
	}
	return resolve(zero, false)
}

// exists reports whether key is live, for the count.
func (k *Keyed[K, V]) exists(key K) (bool, error) {
	if k.complete || k.unsure {
		return false, nil
	}
	_, ok, err := k.lookup(key, nil)
	return ok, err
}

// touch lists the key of slot s among the changes since the last
// checkpoint, once. It is called before s changes: a copy in progress
// that has yet to copy s copies it first.
func (k *Keyed[K, V]) touch(s *slot[V]) {
	if s.epoch != k.epoch {
		k.save(s)
		s.epoch = k.epoch
		// The table's copy of the key, and its hash (s's key is the
		// last one looked up or inserted): takeDirty finds it faster.
		k.dirty = append(k.dirty, dirtyKey[K]{k.cache.keyOf(s), k.cache.last})
	}
}

// Put sets the value of key.
func (k *Keyed[K, V]) Put(key K, v V) error {
	if k.copying.Load() {
		k.cmu.Lock()
		err := k.put(key, v)
		k.cmu.Unlock()
		if err != nil {
			return err
		}
		return k.account()
	}
	if err := k.put(key, v); err != nil {
		return err
	}
	return k.account()
}

func (k *Keyed[K, V]) put(key K, v V) error {
	if err := k.flushBatch(); err != nil {
		return err
	}
	s := k.cache.find(key)
	switch {
	case s == nil:
		ok, err := k.exists(key)
		if err != nil {
			return err
		}
		if !ok {
			k.count++
		}
		s = k.cache.insert(key)
	case s.kind == entryDelete:
		k.count++
	}
	k.touch(s)
	s.v, s.kind = v, entryPut
	return nil
}

// Update sets the value of key to fn(old, ok), where old and ok are what
// Get would return: a read-modify-write that looks a key held in memory
// up once. fn must not use the state.
func (k *Keyed[K, V]) Update(key K, fn func(old V, ok bool) V) error {
	// The path with the lock and the one without are spelled out: folded
	// into one behind a "locked" flag and helpers, Update ran at 0.55 of
	// a Go map's speed instead of 0.8 to 0.9 (a million keys).
	if k.copying.Load() {
		k.cmu.Lock()
		if s := k.cache.find(key); s != nil && s.kind == entryPut && len(k.batch) == 0 {
			k.touch(s)
			s.v = fn(s.v, true)
			k.cmu.Unlock()
			return k.account()
		}
		k.cmu.Unlock()
	} else if s := k.cache.find(key); s != nil && s.kind == entryPut && len(k.batch) == 0 {
		k.touch(s)
		s.v = fn(s.v, true)
		return k.account()
	}
	old, ok, err := k.Get(key)
	if err != nil {
		return err
	}
	return k.Put(key, fn(old, ok))
}

// Merge folds v onto the value of key with KeyedOptions.Merge (v becomes
// the value of a missing key). On a state larger than its memory budget
// it reads nothing: the operand is written as it is, and folded when the
// key is read or runs are merged.
func (k *Keyed[K, V]) Merge(key K, v V) error {
	if k.merge == nil {
		return fmt.Errorf("ckpt: keyed state %q: Merge needs KeyedOptions.Merge", k.name)
	}
	if k.copying.Load() {
		k.cmu.Lock()
		k.mergeOne(key, v)
		k.cmu.Unlock()
	} else {
		k.mergeOne(key, v)
	}
	return k.account()
}

func (k *Keyed[K, V]) mergeOne(key K, v V) {
	s := k.cache.find(key)
	if s == nil {
		s = k.cache.insert(key)
		k.touch(s)
		s.v, s.kind = v, entryMerge
		if k.complete {
			s.kind = entryPut
			k.count++
		} else {
			k.unsure = true
		}
		return
	}
	k.touch(s)
	if s.kind == entryDelete {
		s.v, s.kind = v, entryPut
		k.count++
	} else {
		s.v = k.merge(s.v, v)
	}
}

// MergeAll merges every entry of seq as Merge would; its keys must be
// distinct. On a state without cache (NoCache) whose memory is empty, as
// it is after a checkpoint or a Flush, it reads nothing and builds no
// table: the operands are listed for the next run as they come.
func (k *Keyed[K, V]) MergeAll(seq iter.Seq2[K, V]) error {
	if k.merge == nil {
		return fmt.Errorf("ckpt: keyed state %q: MergeAll needs KeyedOptions.Merge", k.name)
	}
	if !k.nocache || k.cache.len() > 0 {
		for key, v := range seq {
			if err := k.Merge(key, v); err != nil {
				return err
			}
		}
		return nil
	}
	n := len(k.batch)
	for key, v := range seq {
		k.batch = append(k.batch, frozenEntry[K, V]{key: key, v: v, kind: entryMerge})
	}
	if len(k.batch) > n {
		k.unsure = true
	}
	k.ops += len(k.batch) - n
	if k.budget > 0 && !k.fits() {
		return k.spill()
	}
	return nil
}

// flushBatch writes MergeAll's operands out before a lookup.
func (k *Keyed[K, V]) flushBatch() error {
	if len(k.batch) == 0 && len(k.pend) == 0 && !k.encInFlight {
		return nil
	}
	return k.flushDirty(k.nocache)
}

// Delete removes key; a missing key is not an error.
func (k *Keyed[K, V]) Delete(key K) error {
	if k.copying.Load() {
		k.cmu.Lock()
		changed, err := k.delete(key)
		k.cmu.Unlock()
		if !changed || err != nil {
			return err
		}
		return k.account()
	}
	if changed, err := k.delete(key); !changed || err != nil {
		return err
	}
	return k.account()
}

// delete removes key, and reports whether that changed the state.
func (k *Keyed[K, V]) delete(key K) (bool, error) {
	if err := k.flushBatch(); err != nil {
		return false, err
	}
	s := k.cache.find(key)
	switch {
	case s == nil:
		ok, err := k.exists(key)
		if err != nil {
			return false, err
		}
		if k.complete || !ok && !k.unsure {
			return false, nil
		}
		if ok {
			k.count--
		}
		s = k.cache.insert(key)
	case s.kind == entryDelete:
		return false, nil
	case s.kind == entryPut:
		k.count--
	}
	// A merge operand's key exists once it is folded: unsure already.
	k.touch(s)
	var zero V
	s.v, s.kind = zero, entryDelete
	return true, nil
}

// account checks the memory budget every so many changes, spilling the
// changes to a local run and clearing the cache when it is exceeded.
func (k *Keyed[K, V]) account() error {
	if k.ops++; k.ops&1023 != 0 || k.budget <= 0 || k.fits() {
		return nil
	}
	return k.spill()
}

// fits reports whether memory holds less than the budget.
func (k *Keyed[K, V]) fits() bool {
	if k.budget <= 0 {
		return true
	}
	return (int64(k.cache.len()+len(k.batch))+k.frozenLen.Load())*k.perEntry.Load() < k.budget
}

// learn raises the estimate of an entry's memory to what entries
// encoded in raw bytes suggest: the encoded size plus the overhead.
func (k *Keyed[K, V]) learn(raw, entries int64) {
	if entries <= 0 {
		return
	}
	est := raw/entries + entryOverhead
	for {
		old := k.perEntry.Load()
		if est <= old || k.perEntry.CompareAndSwap(old, est) {
			return
		}
	}
}

// Flush writes the changes held in memory to a local run, which the next
// checkpoint uploads, and, for a state without cache (NoCache), empties
// its memory: for a caller that hands over a batch of changes when its
// own memory is full.
func (k *Keyed[K, V]) Flush() error {
	if len(k.pend) > 0 && len(k.dirty) == 0 && len(k.batch) == 0 {
		return k.flushPendingAsync()
	}
	return k.flushDirty(k.nocache)
}

// spill writes the changes to a local run (the next checkpoint uploads
// it) and empties the memory: from now on lookups read the runs.
func (k *Keyed[K, V]) spill() error {
	if err := k.flushDirty(true); err != nil {
		return fmt.Errorf("ckpt: keyed state %q: spill to disk: %w", k.name, err)
	}
	k.complete = false
	k.cache = k.cache.empty()
	return nil
}

// takeDirty returns the changes since the last checkpoint as they are now
// and starts a new epoch. Slots that are not whole values (merge
// operands), and deletions while every key is in memory, leave the
// cache: the run written from the changes holds them.
// With clear set, the cache is emptied instead.
func (k *Keyed[K, V]) takeDirty(clear bool) []frozenEntry[K, V] {
	clear = clear || k.nocache
	out := slices.Grow(k.batch, len(k.dirty))
	k.batch = nil
	// Part of the job's pause at every checkpoint: the lookups overlap.
	k.cache.findEach(k.dirty, func(key K, s *slot[V]) {
		out = append(out, frozenEntry[K, V]{key: key, v: s.v, kind: s.kind})
		if !clear && (s.kind == entryMerge || s.kind == entryDelete && k.complete) {
			k.cache.delete(key)
		}
	})
	k.dirty = make([]dirtyKey[K], 0, len(k.dirty))
	k.nextEpoch()
	if clear {
		k.cache = k.cache.empty()
	}
	return out
}

// nextEpoch starts a new epoch. No epoch is 0: a slot read from the runs
// or copied by a checkpoint has epoch 0.
func (k *Keyed[K, V]) nextEpoch() {
	if k.epoch++; k.epoch == 0 {
		k.epoch = 1
	}
}

// flushDirty waits for the checkpoint in flight to write its run, then
// writes the changes since as a local run; clear empties the cache.
func (k *Keyed[K, V]) flushDirty(clear bool) error {
	if err := k.waitFrozen(); err != nil {
		return err
	}
	if err := k.writePending(); err != nil {
		return err
	}
	if len(k.dirty) == 0 && len(k.batch) == 0 {
		return nil
	}
	r, err := k.writeRun(k.takeDirty(clear))
	if err != nil {
		return fmt.Errorf("ckpt: keyed state %q: %w", k.name, err)
	}
	k.mu.Lock()
	k.runs = append(k.runs, r)
	k.mu.Unlock()
	return nil
}

// waitFrozen waits until the checkpoint in flight has written its run.
func (k *Keyed[K, V]) waitFrozen() error {
	k.finishCopy()
	if k.inflight != nil {
		<-k.inflight
		k.inflight, k.encInFlight = nil, false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.failed != nil {
		return fmt.Errorf("ckpt: keyed state %q: %w", k.name, k.failed)
	}
	return nil
}

// Range calls fn for every key and value in key order, until fn returns
// false. fn must not change the state.
func (k *Keyed[K, V]) Range(fn func(key K, v V) bool) error {
	if k.complete {
		// Reads, which take no lock during a checkpoint's copy (Get).
		keys := make([]K, 0, k.cache.len())
		k.cache.all(func(key K, s *slot[V]) bool {
			if s.kind == entryPut {
				keys = append(keys, key)
			}
			return true
		})
		slices.SortFunc(keys, cmp.Compare)
		for _, key := range keys {
			if !fn(key, k.cache.find(key).v) {
				return nil
			}
		}
		return nil
	}
	if err := k.flushDirty(false); err != nil {
		return err
	}
	errStop := errors.New("stop")
	err := k.scan(k.runs, func(key, val []byte) error {
		kd, err := decodeKey[K](k.kk, key)
		if err != nil {
			return err
		}
		v, err := k.decode(val)
		if err != nil {
			return err
		}
		if !fn(kd, v) {
			return errStop
		}
		return nil
	})
	if err != nil && err != errStop {
		return fmt.Errorf("ckpt: keyed state %q: %w", k.name, err)
	}
	return nil
}

// scan calls fn with the live entries of the merge of runs, which are
// the whole state, in key order.
func (k *Keyed[K, V]) scan(runs []*run, fn func(key, val []byte) error) error {
	m := newMergeIter(runs, true, k.combine)
	for m.next() {
		if err := fn(m.key, m.val); err != nil {
			return err
		}
	}
	return m.err
}

// combine folds an encoded merge operand onto an encoded older value.
func (k *Keyed[K, V]) combine(older, newer []byte) ([]byte, error) {
	if k.merge == nil {
		return nil, errors.New("a merge operand in a state opened without KeyedOptions.Merge")
	}
	a, err := k.decode(older)
	if err != nil {
		return nil, err
	}
	b, err := k.decode(newer)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	v := k.merge(a, b)
	if err := k.codec.Encode(&buf, &v); err != nil {
		return nil, fmt.Errorf("encode value: %w", err)
	}
	return buf.Bytes(), nil
}

func (k *Keyed[K, V]) decode(b []byte) (V, error) {
	var v V
	if _, ok := k.codec.(codec.JSON); ok {
		if p, ok := any(&v).(*string); ok {
			if s, ok := plainJSONString(b); ok {
				*p = s
				return v, nil
			}
		}
		// What codec.JSON.Decode does for one value (trailing data is
		// refused too), without a json.Decoder and its buffer per value.
		if err := json.Unmarshal(b, &v); err != nil {
			return v, fmt.Errorf("decode value: %w", err)
		}
		return v, nil
	}
	if err := k.codec.Decode(bytes.NewReader(b), &v); err != nil {
		return v, fmt.Errorf("decode value: %w", err)
	}
	return v, nil
}
