package asset_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ckptdev/ckpt/asset"
)

// wideGraph defines n assets in layers of 100: each asset of a layer reads
// two of the layer before, so the graph is 100 deep and 100 wide at n =
// 10,000, with about 2n edges.
func wideGraph(n int) *asset.Graph {
	g := asset.New()
	const width = 100
	hs := make([]asset.Asset[int], n)
	for i := range n {
		spec := asset.Spec{Key: fmt.Sprintf("a%05d", i), CodeVersion: "1"}
		if i < width {
			hs[i] = asset.Define(g, spec, func(*asset.Context) (int, error) { return i, nil })
			continue
		}
		prev, col := i-i%width-width, i%width
		a, b := hs[prev+col], hs[prev+(col+1)%width]
		hs[i] = asset.Define2(g, spec, a, b, func(_ *asset.Context, x, y int) (int, error) { return x + y, nil })
	}
	return g
}

// materialized10k returns an instance of a 10,000-asset graph, every
// asset materialized once.
func materialized10k(b *testing.B) *asset.Instance {
	b.Helper()
	g := wideGraph(10000)
	in := newEnv(b).open(b, g)
	if _, err := in.Materialize(tctx, asset.MaterializeOptions{}); err != nil {
		b.Fatal(err)
	}
	return in
}

// BenchmarkGraph10k: definition and validation of 10,000 assets.
func BenchmarkGraph10k(b *testing.B) {
	for b.Loop() {
		if err := wideGraph(10000).Validate(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPlan10k plans a run of a 10,000-asset graph whose assets were
// all materialized: every asset, and only the stale ones (none).
func BenchmarkPlan10k(b *testing.B) {
	in := materialized10k(b)
	for _, stale := range []bool{false, true} {
		b.Run(fmt.Sprintf("stale=%v", stale), func(b *testing.B) {
			for b.Loop() {
				plan, err := in.Plan(tctx, asset.MaterializeOptions{Stale: stale})
				if err != nil {
					b.Fatal(err)
				}
				if want := map[bool]int{false: 10000, true: 0}[stale]; len(plan) != want {
					b.Fatalf("plan of %d steps, want %d", len(plan), want)
				}
			}
		})
	}
}

// BenchmarkStatus10k reports the status of a materialized 10,000-asset
// graph.
func BenchmarkStatus10k(b *testing.B) {
	in := materialized10k(b)
	for b.Loop() {
		st, err := in.Status(tctx, asset.StatusOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if len(st) != 10000 || st[9999].State != asset.StateFresh {
			b.Fatal("wrong status")
		}
	}
}

// work is the function the overhead benchmarks run: about a microsecond.
func work(seed int) int {
	s := seed
	for i := range 1000 {
		s = s*31 + i
	}
	return s
}

// BenchmarkMaterializeOverhead compares a function run bare with the same
// function as the asset of a whole run (a run recorded, the value saved, a
// materialization committed) and as one partition of a 1,000-partition
// backfill (per partition).
func BenchmarkMaterializeOverhead(b *testing.B) {
	b.Run("bare", func(b *testing.B) {
		s := 0
		for b.Loop() {
			s += work(s)
		}
		_ = s
	})
	b.Run("run", func(b *testing.B) {
		g := asset.New()
		asset.Define(g, asset.Spec{Key: "w", CodeVersion: "1"}, func(c *asset.Context) (int, error) { return work(c.Attempt), nil })
		in := newEnv(b).open(b, g)
		for b.Loop() {
			if _, err := in.Materialize(tctx, asset.MaterializeOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("partition", func(b *testing.B) {
		start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		hours := asset.HourlyPartitions(start).Until(start.Add(1000 * time.Hour))
		g := asset.New()
		asset.Define(g, asset.Spec{Key: "w", CodeVersion: "1", Partitions: hours}, func(c *asset.Context) (int, error) {
			return work(c.WindowStart.Hour()), nil
		})
		in := newEnv(b).open(b, g)
		b.ResetTimer()
		for range b.N {
			if _, err := in.Materialize(tctx, asset.MaterializeOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/partition")
	})
}
