package ckpt

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"testing"
)

// A checkpoint of a state held in memory copies its changes after the
// pause, while the job goes on changing the table: what the copy takes is
// the state at the checkpoint's instant, whichever side copies each slot
// and whatever the job changed meanwhile (values, deletions, new keys, a
// table that grows).
func TestKeyedSnapshotCopiesOnWrite(t *testing.T) {
	ctx := context.Background()
	st, err := OpenStore(ctx, t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	j, err := Open[struct{}](ctx, "snap", Config{Backend: st, NoSignals: true, LocalDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	k, err := NewKeyed[string, int64](j, "kv", KeyedOptions[int64]{})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	model := make(map[string]int64)
	changed := make(map[string]bool) // since the last snapshot
	space := 500
	op := func() {
		key := fmt.Sprintf("k%05d", r.IntN(space))
		switch r.IntN(4) {
		case 0:
			// Deleting a missing key changes nothing.
			if _, ok := model[key]; ok {
				changed[key] = true
			}
			if err := k.Delete(key); err != nil {
				t.Fatal(err)
			}
			delete(model, key)
		case 1:
			changed[key] = true
			if err := k.Update(key, func(v int64, _ bool) int64 { return v + 3 }); err != nil {
				t.Fatal(err)
			}
			model[key] += 3
		default:
			changed[key] = true
			v := r.Int64N(1000)
			if err := k.Put(key, v); err != nil {
				t.Fatal(err)
			}
			model[key] = v
		}
	}
	for round := range 8 {
		for range 400 {
			op()
		}
		// Later rounds add keys, so that the table grows (and moves its
		// slots) while a copy is in progress.
		space += 300
		at := maps.Clone(model)
		keys := changed
		changed = make(map[string]bool)
		if !k.cowOK() {
			t.Fatal("a state in memory without a budget is not copied after the pause")
		}
		sn := k.snapshot()
		if len(sn.keys) != len(keys) {
			t.Fatalf("round %d: %d keys listed, %d changed", round, len(sn.keys), len(keys))
		}
		// The job and the copier take turns, in bursts of varying length.
		for !func() bool { k.cmu.Lock(); defer k.cmu.Unlock(); return k.copySnap(sn, r.IntN(20)) }() {
			for range r.IntN(30) {
				op()
			}
		}
		out := k.copyAll(sn)
		got := make(map[string]bool)
		for _, e := range out {
			if got[e.key] {
				t.Fatalf("round %d: %q copied twice", round, e.key)
			}
			got[e.key] = true
			want, live := at[e.key]
			switch {
			case !keys[e.key]:
				t.Fatalf("round %d: %q copied, not changed", round, e.key)
			case e.kind == entryDelete && live:
				t.Fatalf("round %d: %q copied deleted; it was %d", round, e.key, want)
			case e.kind == entryPut && (!live || e.v != want):
				t.Fatalf("round %d: %q copied as %d; it was %d (live %v)", round, e.key, e.v, want, live)
			}
		}
		if len(got) != len(keys) {
			t.Fatalf("round %d: %d keys copied, %d changed", round, len(got), len(keys))
		}
		k.finishCopy()
		if k.copying.Load() || k.snap != nil {
			t.Fatalf("round %d: the copy is not over", round)
		}
		for key, v := range model {
			if got, ok, err := k.Get(key); err != nil || !ok || got != v {
				t.Fatalf("round %d: Get(%q) = %d, %v, %v; want %d", round, key, got, ok, err, v)
			}
		}
		if n, _ := k.Len(); n != int64(len(model)) {
			t.Fatalf("round %d: Len %d, want %d", round, n, len(model))
		}
		// Tombstones the copy took are gone from the table, unless the
		// job has changed their key since.
		k.cache.all(func(key string, s *slot[int64]) bool {
			if s.kind == entryDelete && !changed[key] {
				t.Fatalf("round %d: %q: a copied tombstone is left in the table", round, key)
			}
			return true
		})
	}
}
