//go:build linux

package ckpt_test

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/ckptdev/ckpt"
)

// keyedBenchKeys is the number of keys of BenchmarkKeyedState: 1,000,000
// (about 100 MiB of state) unless CKPT_KEYED_BENCH_KEYS says otherwise.
func keyedBenchKeys() int {
	if n, err := strconv.Atoi(os.Getenv("CKPT_KEYED_BENCH_KEYS")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

// keyedBenchCheckpoints is the number of checkpoints of the space test of
// BenchmarkKeyedState: 200 unless CKPT_KEYED_BENCH_CHECKPOINTS says
// otherwise.
func keyedBenchCheckpoints() int {
	if n, err := strconv.Atoi(os.Getenv("CKPT_KEYED_BENCH_CHECKPOINTS")); err == nil && n > 0 {
		return n
	}
	return 200
}

func benchValue(i, round int) string {
	return fmt.Sprintf("%016x%016x%016x%016x", uint64(i)*0x9e3779b97f4a7c15, uint64(round), uint64(i)^0xdeadbeef, uint64(i+round)*31)
}

type fullState struct {
	M map[string]string `json:"m"`
}

// BenchmarkKeyedState measures, in one run, keyed state against the full
// state path holding the same map (ckpt.Job's State, saved whole by every
// checkpoint) and against a plain Go map:
//
//   - written/full: bytes a checkpoint writes after 1 % of the keys
//     changed, over the bytes of a full checkpoint (mean and max of 20);
//   - pause-p99-ms, pause-p50-ms: the job's pause per checkpoint (the
//     Advance that takes it; the commit runs in the background), 99th
//     percentile (of 20: the longest) and median;
//   - ckpt-time/full: the whole checkpoint (capture to manifest) over a
//     full checkpoint's;
//   - update/map: read-modify-write throughput of keyed state held in
//     memory over a Go map's, doing the same updates (the best of three
//     passes each);
//   - restore/load: opening the job and its keyed state from the store
//     with an empty local directory (download), and with the local copy
//     (local), over opening the full-state job (the best of three each);
//   - space/live: the store's bytes after 200 checkpoints (or
//     CKPT_KEYED_BENCH_CHECKPOINTS) of 1 % each with three retained, over
//     the bytes of one full checkpoint of the state.
//
// Run it once: go test -run '^$' -bench KeyedState -benchtime 1x.
func BenchmarkKeyedState(b *testing.B) {
	n := keyedBenchKeys()
	ctx := context.Background()
	for b.Loop() {
		dir := b.TempDir()
		st := openDirStore(b, filepath.Join(dir, "store"))

		// The full-state path: one checkpoint of the whole map, then a
		// resume that loads it.
		full, err := ckpt.Open[fullState](ctx, "full", ckpt.Config{Backend: st, NoSignals: true, Logger: quietLogger()})
		if err != nil {
			b.Fatal(err)
		}
		full.State.M = make(map[string]string, n)
		for i := range n {
			full.State.M[fmt.Sprintf("key-%09d", i)] = benchValue(i, 0)
		}
		fullStart := time.Now()
		fullCp, err := full.Checkpoint(ctx)
		if err != nil {
			b.Fatal(err)
		}
		fullTime := time.Since(fullStart)
		full.Close()
		fullLoad := func() time.Duration {
			start := time.Now()
			full, err := ckpt.Open[fullState](ctx, "full", ckpt.Config{Backend: st, NoSignals: true, Logger: quietLogger()})
			if err != nil {
				b.Fatal(err)
			}
			took := time.Since(start)
			if len(full.State.M) != n {
				b.Fatalf("full load: %d keys", len(full.State.M))
			}
			full.Close()
			return took
		}

		// Keyed state: a full first checkpoint, then 20 of 1 % each.
		local := filepath.Join(dir, "local")
		step := int64(n / 100)
		cfg := ckpt.Config{Backend: st, NoSignals: true, LocalDir: local, Retain: -1, Every: ckpt.Every{Records: step}, Logger: quietLogger()}
		j, err := ckpt.Open[keyedJobState](ctx, "keyed", cfg)
		if err != nil {
			b.Fatal(err)
		}
		k, err := ckpt.NewKeyed[string, string](j, "kv", ckpt.KeyedOptions[string]{})
		if err != nil {
			b.Fatal(err)
		}
		for i := range n {
			if err := k.Put(fmt.Sprintf("key-%09d", i), benchValue(i, 0)); err != nil {
				b.Fatal(err)
			}
		}
		first, err := j.Checkpoint(ctx)
		if err != nil {
			b.Fatal(err)
		}
		r := rand.New(rand.NewPCG(1, 2))
		var pauses []time.Duration
		for round := 1; round <= 20; round++ {
			if err := j.Wait(); err != nil {
				b.Fatal(err)
			}
			for u := int64(0); u < step; u++ {
				i := r.IntN(n)
				if err := k.Put(fmt.Sprintf("key-%09d", i), benchValue(i, round)); err != nil {
					b.Fatal(err)
				}
				t0 := time.Now()
				if err := j.Advance(ctx, 1, 0); err != nil {
					b.Fatal(err)
				}
				if u == step-1 {
					pauses = append(pauses, time.Since(t0))
				}
			}
		}
		if err := j.Wait(); err != nil {
			b.Fatal(err)
		}
		entries, err := ckpt.List(ctx, st, "keyed")
		if err != nil {
			b.Fatal(err)
		}
		var sumWritten, maxWritten int64
		var sumTime time.Duration
		incr := 0
		for _, e := range entries {
			if e.Checkpoint == nil || e.Seq <= first.Seq {
				continue
			}
			incr++
			sumWritten += e.Checkpoint.SizeBytes
			maxWritten = max(maxWritten, e.Checkpoint.SizeBytes)
			sumTime += e.Checkpoint.Duration
		}
		if incr != 20 {
			b.Fatalf("%d incremental checkpoints, want 20", incr)
		}
		slices.Sort(pauses)
		b.ReportMetric(float64(pauses[len(pauses)/2].Microseconds())/1000, "pause-p50-ms")
		b.ReportMetric(float64(sumWritten)/20/float64(fullCp.SizeBytes), "written/full")
		b.ReportMetric(float64(maxWritten)/float64(fullCp.SizeBytes), "written-max/full")
		b.ReportMetric(float64(pauses[len(pauses)*99/100].Microseconds())/1000, "pause-p99-ms")
		b.ReportMetric(float64(sumTime)/20/float64(fullTime), "ckpt-time/full")
		if err := j.Close(); err != nil {
			b.Fatal(err)
		}

		// Restore: from the store into an empty local directory, and from
		// the local copy, against the full-state load. On a shared machine
		// one measurement can be stalled: each is the least of three,
		// taken in turns.
		restore := func(local string) time.Duration {
			start := time.Now()
			cfg.LocalDir = local
			j, err := ckpt.Open[keyedJobState](ctx, "keyed", cfg)
			if err != nil {
				b.Fatal(err)
			}
			k, err := ckpt.NewKeyed[string, string](j, "kv", ckpt.KeyedOptions[string]{})
			if err != nil {
				b.Fatal(err)
			}
			took := time.Since(start)
			if got, _ := k.Len(); got != int64(n) {
				b.Fatalf("restored %d keys", got)
			}
			j.Close()
			return took
		}
		loadTime, fresh, reuse := time.Duration(1<<62), time.Duration(1<<62), time.Duration(1<<62)
		for i := range 3 {
			loadTime = min(loadTime, fullLoad())
			fresh = min(fresh, restore(filepath.Join(dir, fmt.Sprint("fresh", i))))
			reuse = min(reuse, restore(local))
		}
		b.ReportMetric(float64(fresh)/float64(loadTime), "restore/load")
		b.ReportMetric(float64(reuse)/float64(loadTime), "restore-local/load")

		// Update throughput in memory, against a Go map.
		ops := 4 * n
		m := make(map[uint64]int64)
		kj, err := ckpt.Open[keyedJobState](ctx, "counts", ckpt.Config{Backend: st, NoSignals: true, LocalDir: local, Logger: quietLogger()})
		if err != nil {
			b.Fatal(err)
		}
		kc, err := ckpt.NewKeyed[uint64, int64](kj, "c", ckpt.KeyedOptions[int64]{})
		if err != nil {
			b.Fatal(err)
		}
		keys := make([]uint64, ops)
		for i := range keys {
			keys[i] = uint64(r.IntN(n))
		}
		plusOne := func(v int64, _ bool) int64 { return v + 1 }
		// Three passes each, in turns; the least time of each side.
		mapTime, keyedTime := time.Duration(1<<62), time.Duration(1<<62)
		for range 3 {
			t0 := time.Now()
			for _, key := range keys {
				m[key]++
			}
			mapTime = min(mapTime, time.Since(t0))
			t0 = time.Now()
			for _, key := range keys {
				if err := kc.Update(key, plusOne); err != nil {
					b.Fatal(err)
				}
			}
			keyedTime = min(keyedTime, time.Since(t0))
		}
		for key, v := range m {
			if got, _, _ := kc.Get(key); got != v {
				b.Fatalf("key %d: %d, want %d", key, got, v)
			}
		}
		kj.Close()
		b.ReportMetric(float64(mapTime)/float64(keyedTime), "update/map")

		// Space after many checkpoints with three retained.
		sdir := filepath.Join(dir, "space")
		sst := openDirStore(b, sdir)
		scfg := ckpt.Config{Backend: sst, NoSignals: true, LocalDir: filepath.Join(dir, "space-local"), Retain: 3, Logger: quietLogger()}
		sj, err := ckpt.Open[keyedJobState](ctx, "space", scfg)
		if err != nil {
			b.Fatal(err)
		}
		sk, err := ckpt.NewKeyed[string, string](sj, "kv", ckpt.KeyedOptions[string]{})
		if err != nil {
			b.Fatal(err)
		}
		for i := range n {
			if err := sk.Put(fmt.Sprintf("key-%09d", i), benchValue(i, 0)); err != nil {
				b.Fatal(err)
			}
		}
		for round := range keyedBenchCheckpoints() {
			for range step {
				i := r.IntN(n)
				if err := sk.Put(fmt.Sprintf("key-%09d", i), benchValue(i, round+1)); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := sj.Checkpoint(ctx); err != nil {
				b.Fatal(err)
			}
		}
		sj.Close()
		var used int64
		filepath.WalkDir(filepath.Join(sdir, "jobs"), func(_ string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if fi, err := d.Info(); err == nil {
					used += fi.Size()
				}
			}
			return nil
		})
		b.ReportMetric(float64(used)/float64(fullCp.SizeBytes), "space/live")
	}
}
