package ckpt_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ckptdev/ckpt"
)

// jsonBatch is an ckpt.EncodedBatch of JSON values, as the job's default
// codec encodes them, counting its Release calls.
type jsonBatch struct {
	keys     []string
	vals     map[string][2]int64
	released *atomic.Int32
	sorted   atomic.Int32
}

func newJSONBatch(m map[string][2]int64, released *atomic.Int32) *jsonBatch {
	return &jsonBatch{keys: slices.Sorted(maps.Keys(m)), vals: m, released: released}
}

func (b *jsonBatch) Len() int { return len(b.keys) }

func (b *jsonBatch) Sorted(yield func(key, val []byte) error) error {
	b.sorted.Add(1)
	for _, k := range b.keys {
		v, err := json.Marshal(b.vals[k])
		if err != nil {
			return err
		}
		if err := yield([]byte(k), v); err != nil {
			return err
		}
	}
	return nil
}

func (b *jsonBatch) Release() { b.released.Add(1) }

// MergeEncoded's batches fold into the state as MergeAll's would, in
// order with Merge, Put and Delete before and after them, with and
// without a cache and past the memory budget, across checkpoints, a
// Flush, and resumes; each batch is written once and released once.
func TestKeyedMergeEncoded(t *testing.T) {
	for _, tc := range []struct {
		name    string
		memory  int64
		nocache bool
	}{{"cache", 0, false}, {"budget", 32 << 10, false}, {"nocache", 64 << 10, true}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			st := openDirStore(t, t.TempDir())
			cfg := ckpt.Config{Backend: st, NoSignals: true, LocalDir: t.TempDir(), Memory: tc.memory, Logger: quietLogger()}
			// Associative, not commutative: an operand lost or folded out
			// of order changes the result.
			merge := func(a, b [2]int64) [2]int64 { return [2]int64{a[0] + b[0], b[1]} }
			opts := ckpt.KeyedOptions[[2]int64]{Merge: merge, NoCache: tc.nocache}
			r := rand.New(rand.NewPCG(21, 22))
			model := make(map[string][2]int64)
			apply := func(key string, v [2]int64) {
				if old, ok := model[key]; ok {
					v = merge(old, v)
				}
				model[key] = v
			}
			var released atomic.Int32
			var batches []*jsonBatch
			for round := range 3 {
				j, err := ckpt.Open[keyedJobState](ctx, "enc", cfg)
				if err != nil {
					t.Fatal(err)
				}
				k, err := ckpt.NewKeyed[string, [2]int64](j, "m", opts)
				if err != nil {
					t.Fatal(err)
				}
				for step := range 8 {
					for range 200 {
						key := fmt.Sprintf("k%05d", r.IntN(3000))
						switch op := r.IntN(10); {
						case op == 0 && !tc.nocache:
							if err := k.Delete(key); err != nil {
								t.Fatal(err)
							}
							delete(model, key)
						case op == 1 && !tc.nocache:
							if err := k.Put(key, [2]int64{5, 5}); err != nil {
								t.Fatal(err)
							}
							model[key] = [2]int64{5, 5}
						default:
							v := [2]int64{int64(r.IntN(100)), int64(r.IntN(100))}
							if err := k.Merge(key, v); err != nil {
								t.Fatal(err)
							}
							apply(key, v)
						}
					}
					m := make(map[string][2]int64)
					for range 1000 {
						m[fmt.Sprintf("k%05d", r.IntN(3000))] = [2]int64{int64(r.IntN(100)), int64(r.IntN(100))}
					}
					b := newJSONBatch(m, &released)
					batches = append(batches, b)
					if err := k.MergeEncoded(b); err != nil {
						t.Fatal(err)
					}
					for key, v := range m {
						apply(key, v)
					}
					switch step % 4 {
					case 0:
						if err := k.Flush(); err != nil {
							t.Fatal(err)
						}
					case 1:
						key := fmt.Sprintf("k%05d", r.IntN(3000))
						got, ok, err := k.Get(key)
						if want, wok := model[key]; err != nil || ok != wok || got != want {
							t.Fatalf("round %d: Get(%s) = %v, %v, %v; want %v, %v", round, key, got, ok, err, want, wok)
						}
					}
					if _, err := j.Checkpoint(ctx); err != nil {
						t.Fatal(err)
					}
				}
				if n, err := k.Len(); err != nil || n != int64(len(model)) {
					t.Fatalf("round %d: Len = %d, %v; want %d", round, n, err, len(model))
				}
				n := 0
				if err := k.Range(func(key string, v [2]int64) bool {
					if model[key] != v {
						t.Errorf("round %d: %s = %v, want %v", round, key, v, model[key])
					}
					n++
					return true
				}); err != nil {
					t.Fatal(err)
				}
				if n != len(model) {
					t.Fatalf("round %d: Range gave %d keys, want %d", round, n, len(model))
				}
				// RangeEncoded gives the same entries, encoded.
				n = 0
				if err := k.RangeEncoded(func(key, val []byte) bool {
					var v [2]int64
					if err := json.Unmarshal(val, &v); err != nil || model[string(key)] != v {
						t.Errorf("round %d: RangeEncoded: %s = %s (%v), want %v", round, key, val, err, model[string(key)])
					}
					n++
					return true
				}); err != nil {
					t.Fatal(err)
				}
				if n != len(model) {
					t.Fatalf("round %d: RangeEncoded gave %d keys, want %d", round, n, len(model))
				}
				if err := j.Close(); err != nil {
					t.Fatal(err)
				}
			}
			for i, b := range batches {
				if b.sorted.Load() != 1 {
					t.Fatalf("batch %d was read %d times", i, b.sorted.Load())
				}
			}
			if got := released.Load(); int(got) != len(batches) {
				t.Fatalf("%d releases of %d batches", got, len(batches))
			}
			checkNoOrphans(t, st, "enc")
		})
	}
}

// outOfOrder is a batch whose keys do not increase.
type outOfOrder struct{}

func (outOfOrder) Len() int { return 2 }
func (outOfOrder) Sorted(yield func(key, val []byte) error) error {
	if err := yield([]byte("b"), []byte("[1,1]")); err != nil {
		return err
	}
	return yield([]byte("a"), []byte("[1,1]"))
}

// A batch that breaks its contract fails the checkpoint that writes it,
// which leaves the previous one the newest.
func TestKeyedMergeEncodedOutOfOrder(t *testing.T) {
	ctx := context.Background()
	st := openDirStore(t, t.TempDir())
	cfg := ckpt.Config{Backend: st, NoSignals: true, LocalDir: t.TempDir(), Logger: quietLogger()}
	j, err := ckpt.Open[keyedJobState](ctx, "bad", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	k, err := ckpt.NewKeyed[string, [2]int64](j, "m", ckpt.KeyedOptions[[2]int64]{Merge: func(a, b [2]int64) [2]int64 { return b }})
	if err != nil {
		t.Fatal(err)
	}
	first, err := j.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.MergeEncoded(outOfOrder{}); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Checkpoint(ctx); err == nil || !strings.Contains(err.Error(), "out of order") {
		t.Fatalf("checkpoint of an unsorted batch: %v", err)
	}
	cp, err := ckpt.Latest(ctx, st, "bad", quietLogger())
	if err != nil || cp.Seq != first.Seq {
		t.Fatalf("newest checkpoint %v, %v; want %d", cp, err, first.Seq)
	}
	noMerge, err := ckpt.NewKeyed[string, int64](j, "plain", ckpt.KeyedOptions[int64]{})
	if err != nil {
		t.Fatal(err)
	}
	if err := noMerge.MergeEncoded(outOfOrder{}); err == nil {
		t.Fatal("MergeEncoded without a merge function: no error")
	}
}
