package ckpt

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os"
	"slices"

	"github.com/ckptdev/ckpt/store"
)

// A keyed state's part of a checkpoint: the changes frozen at the
// checkpoint's instant are written as a run, runs are merged, and every
// run is uploaded, in the background commit (see keyed_commit.go).

// writeRun writes changes as a local run, sorted by encoded key.
func (k *Keyed[K, V]) writeRun(changes []frozenEntry[K, V]) (*run, error) {
	type ent struct {
		key []byte
		i   int
	}
	ents := make([]ent, len(changes))
	var keys []byte
	for i := range changes {
		start := len(keys)
		keys = appendKey(keys, k.kk, changes[i].key)
		ents[i] = ent{i: i}
		ents[i].key = keys[start:len(keys):len(keys)]
	}
	// The slices into keys were taken as it grew: take them again.
	off := 0
	for i := range ents {
		n := len(ents[i].key)
		ents[i].key = keys[off : off+n : off+n]
		off += n
	}
	// Of a key listed twice (MergeAll's operands, then a change of the
	// same key), the later change comes later.
	slices.SortFunc(ents, func(a, b ent) int {
		if c := bytes.Compare(a.key, b.key); c != 0 {
			return c
		}
		return cmp.Compare(a.i, b.i)
	})
	w, err := newRunWriter(k.dir, int64(len(changes)), k.nocache)
	if err != nil {
		return nil, err
	}
	var val bytes.Buffer
	for i, e := range ents {
		if i+1 < len(ents) && bytes.Equal(e.key, ents[i+1].key) {
			// Fold into the later change of the same key.
			c, next := &changes[e.i], &changes[ents[i+1].i]
			switch {
			case next.kind != entryMerge:
			case c.kind == entryPut:
				next.v, next.kind = k.merge(c.v, next.v), entryPut
			case c.kind == entryDelete:
				next.kind = entryPut
			default:
				next.v = k.merge(c.v, next.v)
			}
			continue
		}
		c := &changes[e.i]
		val.Reset()
		if c.kind != entryDelete {
			if err := k.codec.Encode(&val, &c.v); err != nil {
				w.abort()
				return nil, fmt.Errorf("encode value: %w", err)
			}
		}
		if err := w.add(e.key, val.Bytes(), c.kind); err != nil {
			w.abort()
			return nil, err
		}
	}
	r, err := w.finish()
	if err != nil {
		return nil, err
	}
	k.learn(r.size, r.entries)
	return r, nil
}

// freeze is the keyed state's part of a checkpoint's capture: the changes
// since the last checkpoint become the frozen run to write, and the
// runs before it are the rest of the checkpoint's state.
func (k *Keyed[K, V]) freeze() keyedFinish {
	if err := k.waitFrozen(); err != nil {
		return func(context.Context, store.Store, string, blobSet) (KeyedRef, int64, error) {
			return KeyedRef{}, 0, err
		}
	}
	// The job's pause: a state held whole in memory only takes the list
	// of changed keys, and the commit copies their values (keyed_snap.go).
	var frozen []frozenEntry[K, V]
	var sn *keyedSnap[K, V]
	if k.cowOK() {
		sn = k.snapshot()
	} else {
		frozen = k.takeDirty(false)
	}
	enc := k.pend
	k.pend = nil
	k.encInFlight = len(enc) > 0
	k.mu.Lock()
	k.frozen, k.frozenIdx = frozen, nil
	k.frozenLen.Store(int64(len(frozen)))
	if sn != nil {
		k.frozenLen.Store(int64(len(sn.keys)))
	}
	runs := slices.Clone(k.runs)
	k.mu.Unlock()
	n := int64(-1) // not known
	if !k.unsure {
		n = k.count
	}
	done := make(chan struct{})
	k.inflight = done
	return func(ctx context.Context, st store.Store, prefix string, known blobSet) (KeyedRef, int64, error) {
		if sn != nil {
			frozen = k.copyAll(sn)
		}
		runs, err := k.settle(enc, frozen, runs, done)
		if err != nil || st == nil {
			return KeyedRef{}, 0, err
		}
		ref := KeyedRef{Name: k.name, Key: k.kk.name, Codec: k.codec.Name(), Compression: k.comp.String(), Len: n}
		var written int64
		for _, r := range runs {
			k.mu.Lock()
			have := r.chunks
			k.mu.Unlock()
			if uploaded(r, have, known) {
				// Saved by an earlier checkpoint that is still kept: the
				// run is not read again.
				ref.Runs = append(ref.Runs, r.ref())
				continue
			}
			chunks, w, err := uploadRun(ctx, st, prefix, r, k.comp, known)
			if err != nil {
				return KeyedRef{}, 0, fmt.Errorf("keyed state %q: %w", k.name, err)
			}
			k.mu.Lock()
			r.chunks = chunks
			k.mu.Unlock()
			written += w
			ref.Runs = append(ref.Runs, r.ref())
		}
		return ref, written, nil
	}
}

// settle writes the batches of MergeEncoded, then the frozen changes, as
// runs after runs, merges runs where
// the policy says (see compactPlan), and installs the result as the
// state's runs. It returns the checkpoint's runs. done is closed once the
// frozen changes are in a run (or failed to be).
func (k *Keyed[K, V]) settle(enc []EncodedBatch, frozen []frozenEntry[K, V], runs []*run, done chan struct{}) ([]*run, error) {
	defer close(done)
	for _, b := range enc {
		r, err := k.writeEncodedRun(b)
		if err != nil {
			k.mu.Lock()
			k.failed = err
			k.mu.Unlock()
			return nil, fmt.Errorf("keyed state %q: %w", k.name, err)
		}
		runs = append(runs, r)
	}
	if len(frozen) > 0 {
		r, err := k.writeRun(frozen)
		if err != nil {
			k.mu.Lock()
			k.failed = err
			k.mu.Unlock()
			return nil, fmt.Errorf("keyed state %q: %w", k.name, err)
		}
		runs = append(runs, r)
	}
	var replaced []*run
	for {
		lo, hi := compactPlan(runs, k.nocache)
		if hi-lo < 2 {
			break
		}
		m, err := mergeRuns(k.dir, runs[lo:hi], lo == 0, k.nocache, k.combine)
		if err != nil {
			// The runs stay as they are; the checkpoint is taken without
			// merging.
			break
		}
		replaced = append(replaced, runs[lo:hi]...)
		runs = slices.Concat(runs[:lo:lo], []*run{m}, runs[hi:])
	}
	k.mu.Lock()
	k.runs = runs
	k.frozen, k.frozenIdx = nil, nil
	k.frozenLen.Store(0)
	k.mu.Unlock()
	for _, r := range replaced {
		if !slices.Contains(runs, r) {
			r.close()
			os.Remove(r.path)
		}
	}
	return runs, nil
}

// Merge policy: tiered with a fanout of four, plus a full merge when the
// newer runs together reach the size of the oldest. A change is written
// again about log4 of (state size / changes per checkpoint) times before
// the full merge, a state that grows is rewritten a logarithmic number of
// times, the number of runs stays small (a lookup checks each one's
// filter), and the runs take at most about twice the space of the merged
// state.
const (
	mergeFanout = 4
	maxRuns     = 12
)

// compactPlan returns the range of runs to merge next; an empty one when
// none is due. A state without a cache (KeyedOptions.NoCache) is read
// once, at the end, by a merge of all its runs: its runs are merged only
// to keep their number small, never all at once for space, since the
// changes of an aggregation over distinct keys hardly overlap.
func compactPlan(runs []*run, nocache bool) (lo, hi int) {
	n := len(runs)
	if n < 2 {
		return 0, 0
	}
	var newer int64
	for _, r := range runs[1:] {
		newer += r.size
	}
	if newer >= runs[0].size && !nocache {
		return 0, n
	}
	if n >= mergeFanout+1 && runs[n-mergeFanout].size <= 2*runs[n-1].size {
		return n - mergeFanout, n
	}
	if n > maxRuns {
		return n - 2, n
	}
	return 0, 0
}

func (k *Keyed[K, V]) closeKeyed(removeLocal bool) {
	if k.inflight != nil {
		<-k.inflight
		k.inflight = nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	closeRuns(k.runs)
	if removeLocal {
		os.RemoveAll(k.dir)
	}
}
