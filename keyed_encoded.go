package ckpt

import (
	"bytes"
	"errors"
	"fmt"
)

// An EncodedBatch is a batch of merge operands that its caller encoded
// itself, handed to a keyed state with Keyed.MergeEncoded: for a caller
// that keeps its recent changes in a layout of its own (an aggregation's
// table of groups, say) and would otherwise convert each to a K and a V
// only for the state to encode them again.
type EncodedBatch interface {
	// Len returns the number of entries.
	Len() int
	// Sorted calls yield with every entry, keys strictly increasing in
	// byte order, and returns the first error yield returns. A key is
	// in its encoded form (a string key's bytes, an integer key's 8
	// bytes big-endian with a signed integer's sign bit flipped: see
	// Key), a value as the state's codec encodes a V. The slices are
	// read only during the call. Sorted is called once, possibly from
	// another goroutine (the background commit), after MergeEncoded has
	// returned; the batch must not change after it is handed over.
	Sorted(yield func(key, val []byte) error) error
}

// release tells a batch that has a Release method that the state is done
// with it: its run is written, or could not be. A caller can then reuse
// the batch's memory for its next one. Release may be called from
// another goroutine.
func release(b EncodedBatch) {
	if r, ok := b.(interface{ Release() }); ok {
		r.Release()
	}
}

// MergeEncoded folds every entry of b into the state as Merge would fold
// it (KeyedOptions.Merge must be set). It only lists the batch: the next
// checkpoint (or Flush, or a lookup) writes it as a run, sorted already,
// without decoding it, in the background when a checkpoint takes it. The
// batch's memory is its caller's to account for until then; if the batch
// has a method Release(), it is called once the state is done with the
// batch (possibly from another goroutine), so that its memory can be
// reused.
func (k *Keyed[K, V]) MergeEncoded(b EncodedBatch) error {
	if k.merge == nil {
		return fmt.Errorf("ckpt: keyed state %q: MergeEncoded needs KeyedOptions.Merge", k.name)
	}
	if b.Len() == 0 {
		return nil
	}
	k.finishCopy()
	// Batches are older than the changes held in memory, which the run
	// written after theirs holds: changes made before this batch go to
	// a run of their own first.
	if len(k.dirty) > 0 || len(k.batch) > 0 {
		if err := k.flushDirty(true); err != nil {
			return err
		}
	}
	// Values held in memory no longer include every operand.
	if k.complete || k.cache.len() > 0 {
		k.complete = false
		k.cache = k.cache.empty()
	}
	k.pend = append(k.pend, b)
	k.unsure = true
	return nil
}

// writeEncodedRun writes a batch as a local run of merge operands.
func (k *Keyed[K, V]) writeEncodedRun(b EncodedBatch) (*run, error) {
	defer release(b)
	w, err := newRunWriter(k.dir, int64(b.Len()), k.nocache)
	if err != nil {
		return nil, err
	}
	err = b.Sorted(func(key, val []byte) error { return w.add(key, val, entryMerge) })
	if err != nil {
		w.abort()
		return nil, fmt.Errorf("encoded batch: %w", err)
	}
	r, err := w.finish()
	if err != nil {
		return nil, err
	}
	k.learn(r.size, r.entries)
	return r, nil
}

// writePending writes the batches of MergeEncoded as runs, after the
// state's runs. Called with no checkpoint in flight.
func (k *Keyed[K, V]) writePending() error {
	for len(k.pend) > 0 {
		r, err := k.writeEncodedRun(k.pend[0])
		if err != nil {
			return fmt.Errorf("ckpt: keyed state %q: %w", k.name, err)
		}
		k.pend = k.pend[1:]
		k.mu.Lock()
		k.runs = append(k.runs, r)
		k.mu.Unlock()
	}
	k.pend = nil
	return nil
}

// flushPendingAsync writes the batches of MergeEncoded as runs in the
// background, as a checkpoint in flight would: the next checkpoint,
// Flush or lookup waits for it. For a Flush with nothing else to write,
// so that the caller's next batch fills while this one is written.
func (k *Keyed[K, V]) flushPendingAsync() error {
	if err := k.waitFrozen(); err != nil {
		return err
	}
	pend := k.pend
	k.pend = nil
	done := make(chan struct{})
	k.inflight, k.encInFlight = done, true
	go func() {
		defer close(done)
		for _, b := range pend {
			r, err := k.writeEncodedRun(b)
			k.mu.Lock()
			if err != nil {
				k.failed = err
			} else {
				k.runs = append(k.runs, r)
			}
			k.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return nil
}

// RangeEncoded is Range with keys and values in their encoded forms (see
// EncodedBatch), for a caller that decodes them itself. The slices are
// valid only during the call of fn.
func (k *Keyed[K, V]) RangeEncoded(fn func(key, val []byte) bool) error {
	if k.complete {
		var key []byte
		var val bytes.Buffer
		var err error
		rerr := k.Range(func(kd K, v V) bool {
			key = appendKey(key[:0], k.kk, kd)
			val.Reset()
			if err = k.codec.Encode(&val, &v); err != nil {
				err = fmt.Errorf("ckpt: keyed state %q: encode value: %w", k.name, err)
				return false
			}
			return fn(key, val.Bytes())
		})
		if err != nil {
			return err
		}
		return rerr
	}
	if err := k.flushDirty(false); err != nil {
		return err
	}
	errStop := errors.New("stop")
	err := k.scan(k.runs, func(key, val []byte) error {
		if !fn(key, val) {
			return errStop
		}
		return nil
	})
	if err != nil && err != errStop {
		return fmt.Errorf("ckpt: keyed state %q: %w", k.name, err)
	}
	return nil
}
