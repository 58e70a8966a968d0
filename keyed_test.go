package ckpt_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/store"
)

type keyedJobState struct {
	N int `json:"n"`
}

func openKeyedJob(t *testing.T, st store.Store, local string, cfg ckpt.Config) (*ckpt.Job[keyedJobState], *ckpt.Keyed[string, int64]) {
	t.Helper()
	cfg.Backend = st
	cfg.NoSignals = true
	cfg.LocalDir = local
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	j, err := ckpt.Open[keyedJobState](context.Background(), "kv", cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	k, err := ckpt.NewKeyed[string, int64](j, "counts", ckpt.KeyedOptions[int64]{})
	if err != nil {
		j.Close()
		t.Fatalf("keyed: %v", err)
	}
	return j, k
}

// checkKeyed compares k with want: Len, Get of every key and of absent
// ones, and Range in key order.
func checkKeyed(t *testing.T, k *ckpt.Keyed[string, int64], want map[string]int64) {
	t.Helper()
	if n, err := k.Len(); err != nil || n != int64(len(want)) {
		t.Fatalf("Len = %d, %v; want %d", n, err, len(want))
	}
	for key, v := range want {
		got, ok, err := k.Get(key)
		if err != nil || !ok || got != v {
			t.Fatalf("Get(%q) = %d, %v, %v; want %d", key, got, ok, err, v)
		}
	}
	if _, ok, err := k.Get("absent"); ok || err != nil {
		t.Fatalf("Get of an absent key: %v, %v", ok, err)
	}
	keys := slices.Sorted(maps.Keys(want))
	var got []string
	err := k.Range(func(key string, v int64) bool {
		if want[key] != v {
			t.Errorf("Range: %q = %d, want %d", key, v, want[key])
		}
		got = append(got, key)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, keys) {
		t.Fatalf("Range gave %d keys, want %d in order", len(got), len(keys))
	}
}

// randomOps applies n random puts and deletes to k and to the model.
func randomOps(t *testing.T, r *rand.Rand, k *ckpt.Keyed[string, int64], model map[string]int64, n, space int) {
	t.Helper()
	for range n {
		key := fmt.Sprintf("key-%06d", r.IntN(space))
		if r.IntN(10) == 0 {
			if err := k.Delete(key); err != nil {
				t.Fatal(err)
			}
			delete(model, key)
			continue
		}
		d := int64(r.IntN(100)) + 1
		if r.IntN(2) == 0 {
			if err := k.Update(key, func(v int64, _ bool) int64 { return v + d }); err != nil {
				t.Fatal(err)
			}
			model[key] += d
			continue
		}
		v, _, err := k.Get(key)
		if err != nil {
			t.Fatal(err)
		}
		v += d
		if err := k.Put(key, v); err != nil {
			t.Fatal(err)
		}
		model[key] = v
	}
}

// checkNoOrphans lists the job's blobs and checks that every one is named
// by a kept manifest, and that every blob a manifest names is there.
func checkNoOrphans(t *testing.T, st store.Store, job string) {
	t.Helper()
	bc, err := ckpt.CheckBlobs(context.Background(), st, job)
	if err != nil {
		t.Fatal(err)
	}
	if len(bc.Unreferenced) > 0 || len(bc.Missing) > 0 {
		t.Errorf("%d blobs: %d named by no kept checkpoint (%q), %d named by one but missing (%q)",
			bc.Blobs, len(bc.Unreferenced), bc.Unreferenced, len(bc.Missing), bc.Missing)
	}
}

func TestKeyedResumesExactly(t *testing.T) {
	for _, tc := range []struct {
		name   string
		memory int64
	}{{"in memory", 0}, {"spilling", 64 << 10}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			st := openDirStore(t, t.TempDir())
			local := t.TempDir()
			r := rand.New(rand.NewPCG(1, 2))
			model := make(map[string]int64)
			cfg := ckpt.Config{Memory: tc.memory, Retain: 3}
			for round := range 6 {
				// Even rounds reuse the local copy; odd ones start from
				// an empty directory and download.
				dir := local
				if round%2 == 1 {
					dir = t.TempDir()
				}
				j, k := openKeyedJob(t, st, dir, cfg)
				checkKeyed(t, k, model)
				for range 5 {
					randomOps(t, r, k, model, 3000, 5000)
					if _, err := j.Checkpoint(ctx); err != nil {
						t.Fatal(err)
					}
				}
				// Changes after the last checkpoint are lost with the
				// process.
				lost := maps.Clone(model)
				randomOps(t, r, k, lost, 500, 5000)
				if err := j.Close(); err != nil {
					t.Fatal(err)
				}
			}
			j, k := openKeyedJob(t, st, local, cfg)
			defer j.Close()
			checkKeyed(t, k, model)
			checkNoOrphans(t, st, "kv")
		})
	}
}

func TestKeyedCheckpointWritesOnlyChanges(t *testing.T) {
	ctx := context.Background()
	st := openDirStore(t, t.TempDir())
	j, k := openKeyedJob(t, st, t.TempDir(), ckpt.Config{Uncompressed: true})
	defer j.Close()
	const n = 100_000
	for i := range n {
		if err := k.Put(fmt.Sprintf("key-%08d", i), int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	full, err := j.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 5 {
		for range n / 100 {
			i := r.IntN(n)
			if err := k.Put(fmt.Sprintf("key-%08d", i), int64(-i)); err != nil {
				t.Fatal(err)
			}
		}
		cp, err := j.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if cp.SizeBytes*20 > full.SizeBytes {
			t.Errorf("checkpoint %d after 1%% of the keys changed wrote %d bytes; the full one wrote %d", cp.Seq, cp.SizeBytes, full.SizeBytes)
		}
		if cp.FullSizeBytes < full.FullSizeBytes {
			t.Errorf("checkpoint %d: full size %d is less than the first's %d", cp.Seq, cp.FullSizeBytes, full.FullSizeBytes)
		}
	}
	got, err := ckpt.Get(ctx, st, "kv", full.Seq+5)
	if err != nil {
		t.Fatal(err)
	}
	if got.SizeBytes == 0 || got.FullSizeBytes == 0 || got.Keyed[0].Len != n {
		t.Fatalf("manifest records size %d, full size %d, %d keys", got.SizeBytes, got.FullSizeBytes, got.Keyed[0].Len)
	}
}

// Many checkpoints with three kept: the store holds only what they name,
// and not much more than the live state.
func TestKeyedRetentionLeavesNoOrphans(t *testing.T) {
	ctx := context.Background()
	st := openDirStore(t, t.TempDir())
	j, k := openKeyedJob(t, st, t.TempDir(), ckpt.Config{Retain: 3})
	r := rand.New(rand.NewPCG(5, 6))
	model := make(map[string]int64)
	for range 60 {
		randomOps(t, r, k, model, 400, 4000)
		if _, err := j.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
	}
	checkNoOrphans(t, st, "kv")
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j, k = openKeyedJob(t, st, t.TempDir(), ckpt.Config{Retain: 3})
	defer j.Close()
	checkKeyed(t, k, model)
}

// A corrupt blob of the newest checkpoint's keyed state makes it invalid:
// the job resumes from the one before, which does not use it.
func TestKeyedCorruptRunFallsBack(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openDirStore(t, dir)
	j, k := openKeyedJob(t, st, t.TempDir(), ckpt.Config{Retain: -1})
	r := rand.New(rand.NewPCG(7, 8))
	model := make(map[string]int64)
	randomOps(t, r, k, model, 2000, 3000)
	first, err := j.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := maps.Clone(model)
	randomOps(t, r, k, model, 10, 3000)
	second, err := j.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	// The newest run is the second checkpoint's alone.
	runs := second.Keyed[0].Runs
	id := runs[len(runs)-1].Chunks[0].ID
	if slices.ContainsFunc(first.Keyed[0].Runs[0].Chunks, func(c ckpt.ChunkRef) bool { return c.ID == id }) {
		t.Fatal("the second checkpoint's newest run is shared with the first")
	}
	path := filepath.Join(dir, "jobs", "kv", "blobs", id)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 0xff
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ckpt.Verify(ctx, st, second); !errors.Is(err, ckpt.ErrCorrupt) {
		t.Fatalf("Verify of the damaged checkpoint: %v, want ErrCorrupt", err)
	}
	// A fresh local directory: nothing to reuse, so the damage is read.
	j, k = openKeyedJob(t, st, t.TempDir(), ckpt.Config{Retain: -1})
	defer j.Close()
	if j.Resumed() == nil || j.Resumed().Seq != first.Seq {
		t.Fatalf("resumed from %v, want checkpoint %d", j.Resumed(), first.Seq)
	}
	checkKeyed(t, k, want)
}

func openDirStore(t testing.TB, dir string) store.Store {
	t.Helper()
	st, err := ckpt.OpenStore(context.Background(), dir, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Merge folds operands without reading on a state past its budget; the
// state resumes, ranges and counts as if every merge had been a Get and a
// Put.
func TestKeyedMerge(t *testing.T) {
	for _, memory := range []int64{0, 32 << 10} {
		t.Run(fmt.Sprint("memory=", memory), func(t *testing.T) {
			ctx := context.Background()
			st := openDirStore(t, t.TempDir())
			local := t.TempDir()
			cfg := ckpt.Config{Backend: st, NoSignals: true, LocalDir: local, Memory: memory, Logger: quietLogger()}
			// Associative, not commutative: a lost operand changes the sum, one
			// folded out of order the last.
			opts := ckpt.KeyedOptions[[2]int64]{Merge: func(a, b [2]int64) [2]int64 { return [2]int64{a[0] + b[0], b[1]} }}
			r := rand.New(rand.NewPCG(9, 10))
			model := make(map[uint32][2]int64)
			for round := range 4 {
				j, err := ckpt.Open[keyedJobState](ctx, "merge", cfg)
				if err != nil {
					t.Fatal(err)
				}
				k, err := ckpt.NewKeyed[uint32, [2]int64](j, "m", opts)
				if err != nil {
					t.Fatal(err)
				}
				if n, err := k.Len(); err != nil || n != int64(len(model)) {
					t.Fatalf("round %d: Len = %d, %v; want %d", round, n, err, len(model))
				}
				for range 4 {
					for range 3000 {
						key := uint32(r.IntN(4000))
						switch op := r.IntN(10); {
						case op == 0:
							if err := k.Delete(key); err != nil {
								t.Fatal(err)
							}
							delete(model, key)
						case op == 1:
							if err := k.Put(key, [2]int64{7, 7}); err != nil {
								t.Fatal(err)
							}
							model[key] = [2]int64{7, 7}
						default:
							v := [2]int64{int64(r.IntN(1000)), int64(r.IntN(1000))}
							if err := k.Merge(key, v); err != nil {
								t.Fatal(err)
							}
							if old, ok := model[key]; ok {
								v = opts.Merge(old, v)
							}
							model[key] = v
						}
					}
					if _, err := j.Checkpoint(ctx); err != nil {
						t.Fatal(err)
					}
				}
				for key, want := range model {
					if got, ok, err := k.Get(key); err != nil || !ok || got != want {
						t.Fatalf("round %d: Get(%d) = %d, %v, %v; want %d", round, key, got, ok, err, want)
					}
				}
				var prev int64 = -1
				n := 0
				if err := k.Range(func(key uint32, v [2]int64) bool {
					if int64(key) <= prev || model[key] != v {
						t.Errorf("Range: %d = %d after %d", key, v, prev)
					}
					prev = int64(key)
					n++
					return true
				}); err != nil {
					t.Fatal(err)
				}
				if n != len(model) {
					t.Fatalf("Range gave %d keys, want %d", n, len(model))
				}
				if err := j.Close(); err != nil {
					t.Fatal(err)
				}
			}
			checkNoOrphans(t, st, "merge")
		})
	}
}

func TestKeyedIntegerKeysInOrder(t *testing.T) {
	st := openDirStore(t, t.TempDir())
	j, err := ckpt.Open[keyedJobState](context.Background(), "ints", ckpt.Config{Backend: st, NoSignals: true, LocalDir: t.TempDir(), Memory: 1, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	k, err := ckpt.NewKeyed[int16, string](j, "i", ckpt.KeyedOptions[string]{})
	if err != nil {
		t.Fatal(err)
	}
	want := []int16{-32768, -300, -1, 0, 1, 255, 256, 32767}
	for _, i := range slices.Backward(want) {
		if err := k.Put(i, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	var got []int16
	if err := k.Range(func(key int16, v string) bool {
		got = append(got, key)
		if v != fmt.Sprint(key) {
			t.Errorf("%d = %q", key, v)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Range order %v, want %v", got, want)
	}
}

// A checkpoint does not read again the runs that a kept checkpoint saved:
// damaging their local copies (same size, other bytes) after they were
// saved changes nothing in the next checkpoint, which names the same
// chunks and writes only the new run.
func TestKeyedCheckpointKeepsSavedRuns(t *testing.T) {
	ctx := context.Background()
	st := openDirStore(t, t.TempDir())
	local := t.TempDir()
	j, k := openKeyedJob(t, st, local, ckpt.Config{})
	defer j.Close()
	for i := range 20000 {
		if err := k.Put(fmt.Sprintf("key-%06d", i), int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	first, err := j.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	runs, _ := filepath.Glob(filepath.Join(local, "kv", "counts", "*.run"))
	if len(runs) == 0 {
		t.Fatal("no local run after a checkpoint")
	}
	for _, path := range runs {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for i := range b {
			b[i] ^= 0x5a
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.Put("key-new", 1); err != nil {
		t.Fatal(err)
	}
	second, err := j.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	old := first.Keyed[0].Runs
	got := second.Keyed[0].Runs
	if len(got) != len(old)+1 || !slices.EqualFunc(got[:len(old)], old, func(a, b ckpt.RunRef) bool {
		return a.ID == b.ID && slices.EqualFunc(a.Chunks, b.Chunks, func(x, y ckpt.ChunkRef) bool { return x.ID == y.ID })
	}) {
		t.Fatalf("second checkpoint's runs %+v, want the first's %+v and one more", got, old)
	}
	if second.SizeBytes*10 > first.SizeBytes {
		t.Fatalf("second checkpoint wrote %d bytes, the first %d: the saved run was written again", second.SizeBytes, first.SizeBytes)
	}
}

// A finished job leaves no local copy of its keyed state behind.
func TestKeyedFinishedJobRemovesLocalCopy(t *testing.T) {
	ctx := context.Background()
	st := openDirStore(t, t.TempDir())
	local := t.TempDir()
	j, k := openKeyedJob(t, st, local, ckpt.Config{})
	for i := range 1000 {
		if err := k.Put(fmt.Sprint(i), int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := j.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(local, "kv", "counts")); len(ents) == 0 {
		t.Fatal("no local run after a checkpoint")
	}
	if _, err := j.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(local, "kv")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("local directory of the finished job: %v", err)
	}
}

// Automatic checkpoints commit in the background while the job goes on
// reading and changing the state past its budget (run with -race).
func TestKeyedAsyncCheckpoints(t *testing.T) {
	ctx := context.Background()
	st := openDirStore(t, t.TempDir())
	local := t.TempDir()
	cfg := ckpt.Config{Memory: 48 << 10, Every: ckpt.Every{Records: 700}, Retain: 2}
	j, k := openKeyedJob(t, st, local, cfg)
	r := rand.New(rand.NewPCG(11, 12))
	model := make(map[string]int64)
	for range 10 {
		randomOps(t, r, k, model, 1000, 6000)
		if err := j.Advance(ctx, 1000, 0); err != nil {
			t.Fatal(err)
		}
		for range 700 {
			randomOps(t, r, k, model, 1, 6000)
			if err := j.Advance(ctx, 1, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := j.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	checkKeyed(t, k, model)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j, k = openKeyedJob(t, st, t.TempDir(), cfg)
	defer j.Close()
	checkKeyed(t, k, model)
	checkNoOrphans(t, st, "kv")
}

// A checkpoint of a state held in memory copies the changed values in
// the background, while the job goes on changing them: resumed, each
// checkpoint holds the state of its instant, not of the moment its copy
// got to a key.
func TestKeyedCheckpointCopiesWhileTheJobChanges(t *testing.T) {
	ctx := context.Background()
	st := openDirStore(t, t.TempDir())
	local := t.TempDir()
	cfg := ckpt.Config{Every: ckpt.Every{Records: 1}, Retain: 2}
	r := rand.New(rand.NewPCG(21, 22))
	model := make(map[string]int64)
	for round := range 6 {
		dir := local
		if round%2 == 1 {
			dir = t.TempDir()
		}
		j, k := openKeyedJob(t, st, dir, cfg)
		checkKeyed(t, k, model)
		randomOps(t, r, k, model, 20000, 30000)
		at := maps.Clone(model)
		// The checkpoint, in the background; then changes to the keys it
		// is copying.
		if err := j.Advance(ctx, 1, 0); err != nil {
			t.Fatal(err)
		}
		randomOps(t, r, k, model, 5000, 30000)
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		model = at
	}
	j, k := openKeyedJob(t, st, local, cfg)
	defer j.Close()
	checkKeyed(t, k, model)
	checkNoOrphans(t, st, "kv")
}

// A state reopened with a value type its values do not decode to fails
// to open, naming the state, whichever batch of the parallel restore
// meets the first bad value.
func TestKeyedRestoreOfUndecodableValuesFails(t *testing.T) {
	ctx := context.Background()
	st := openDirStore(t, t.TempDir())
	cfg := ckpt.Config{Backend: st, NoSignals: true, LocalDir: t.TempDir(), Logger: quietLogger()}
	j, err := ckpt.Open[keyedJobState](ctx, "kv", cfg)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ckpt.NewKeyed[string, string](j, "counts", ckpt.KeyedOptions[string]{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50_000 {
		if err := k.Put(fmt.Sprintf("key-%06d", i), fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := j.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	j.Close()
	for range 3 {
		j, err = ckpt.Open[keyedJobState](ctx, "kv", cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, err = ckpt.NewKeyed[string, int64](j, "counts", ckpt.KeyedOptions[int64]{})
		j.Close()
		if err == nil || !strings.Contains(err.Error(), `keyed state "counts"`) || !strings.Contains(err.Error(), "decode value") {
			t.Fatalf("opened string values as int64: %v", err)
		}
	}
	// Opened right, the same state is whole.
	j, err = ckpt.Open[keyedJobState](ctx, "kv", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	k, err = ckpt.NewKeyed[string, string](j, "counts", ckpt.KeyedOptions[string]{})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := k.Len(); n != 50_000 {
		t.Fatalf("Len %d", n)
	}
	if v, ok, _ := k.Get("key-012345"); !ok || v != "12345" {
		t.Fatalf("Get: %q, %v", v, ok)
	}
}

// MergeAll on a state without cache lists batches of operands without a
// table; mixed with single changes and reads, the state is as if each
// operand had been folded in order.
func TestKeyedMergeAllWithoutCache(t *testing.T) {
	ctx := context.Background()
	st := openDirStore(t, t.TempDir())
	cfg := ckpt.Config{Backend: st, NoSignals: true, LocalDir: t.TempDir(), Memory: 64 << 10, Logger: quietLogger()}
	merge := func(a, b [2]int64) [2]int64 { return [2]int64{a[0] + b[0], b[1]} }
	opts := ckpt.KeyedOptions[[2]int64]{Merge: merge, NoCache: true}
	r := rand.New(rand.NewPCG(13, 14))
	model := make(map[string][2]int64)
	apply := func(key string, v [2]int64) {
		if old, ok := model[key]; ok {
			v = merge(old, v)
		}
		model[key] = v
	}
	for round := range 3 {
		j, err := ckpt.Open[keyedJobState](ctx, "all", cfg)
		if err != nil {
			t.Fatal(err)
		}
		k, err := ckpt.NewKeyed[string, [2]int64](j, "m", opts)
		if err != nil {
			t.Fatal(err)
		}
		for range 6 {
			batch := make(map[string][2]int64)
			for range 1500 {
				batch[fmt.Sprintf("k%05d", r.IntN(5000))] = [2]int64{int64(r.IntN(100)), int64(r.IntN(100))}
			}
			if err := k.MergeAll(maps.All(batch)); err != nil {
				t.Fatal(err)
			}
			for key, v := range batch {
				apply(key, v)
			}
			key, v := fmt.Sprintf("k%05d", r.IntN(5000)), [2]int64{1, 2}
			if err := k.Merge(key, v); err != nil {
				t.Fatal(err)
			}
			apply(key, v)
			if r.IntN(2) == 0 {
				key := fmt.Sprintf("k%05d", r.IntN(5000))
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
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	}
	checkNoOrphans(t, st, "all")
}

// A damaged local copy of a run is not used: the run is downloaded again,
// and the job resumes from the newest checkpoint.
func TestKeyedDamagedLocalCopyIsDownloaded(t *testing.T) {
	ctx := context.Background()
	st := openDirStore(t, t.TempDir())
	local := t.TempDir()
	j, k := openKeyedJob(t, st, local, ckpt.Config{})
	r := rand.New(rand.NewPCG(15, 16))
	model := make(map[string]int64)
	randomOps(t, r, k, model, 3000, 2000)
	cp, err := j.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(local, "kv", "counts")
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) == 0 {
		t.Fatalf("local runs: %v, %v", ents, err)
	}
	for _, e := range ents {
		path := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 1
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	j, k = openKeyedJob(t, st, local, ckpt.Config{})
	defer j.Close()
	if j.Resumed() == nil || j.Resumed().Seq != cp.Seq {
		t.Fatalf("resumed from %v, want checkpoint %d", j.Resumed(), cp.Seq)
	}
	checkKeyed(t, k, model)
}

// CheckBlobs finds a blob that no kept checkpoint names and a named blob
// that is gone.
func TestCheckBlobs(t *testing.T) {
	ctx := context.Background()
	st := openDirStore(t, t.TempDir())
	j, k := openKeyedJob(t, st, t.TempDir(), ckpt.Config{Retain: 2})
	model := map[string]int64{}
	r := rand.New(rand.NewPCG(3, 4))
	for range 3 {
		randomOps(t, r, k, model, 2000, 3000)
		if _, err := j.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	bc, err := ckpt.CheckBlobs(ctx, st, "kv")
	if err != nil || bc.Blobs == 0 || len(bc.Unreferenced) > 0 || len(bc.Missing) > 0 {
		t.Fatalf("after clean checkpoints: %+v, %v; want blobs, none unreferenced or missing", bc, err)
	}
	names, err := st.List(ctx, "jobs/kv/blobs/")
	if err != nil || len(names) == 0 {
		t.Fatal(names, err)
	}
	if err := st.Delete(ctx, names[0]); err != nil {
		t.Fatal(err)
	}
	stray := "jobs/kv/blobs/" + strings.Repeat("ab", 32)
	if err := st.Put(ctx, stray, bytes.NewReader([]byte("left by a crash"))); err != nil {
		t.Fatal(err)
	}
	bc, err = ckpt.CheckBlobs(ctx, st, "kv")
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimPrefix(names[0], "jobs/kv/blobs/"); len(bc.Missing) != 1 || bc.Missing[0] != want {
		t.Errorf("missing %q, want %q", bc.Missing, want)
	}
	if len(bc.Unreferenced) != 1 || bc.Unreferenced[0] != strings.Repeat("ab", 32) {
		t.Errorf("unreferenced %q, want the stray blob", bc.Unreferenced)
	}
}
