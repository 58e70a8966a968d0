package asset_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ckptdev/ckpt/asset"
)

func src[T any](v T) func(*asset.Context) (T, error) {
	return func(*asset.Context) (T, error) { return v, nil }
}

func TestValidate(t *testing.T) {
	day := asset.DailyPartitions(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	other := asset.StaticPartitions("x", "y")
	cases := []struct {
		name   string
		define func(g *asset.Graph)
		kind   error
		msg    string // a part of the message
	}{
		{"unknown dependency", func(g *asset.Graph) {
			asset.Define1(g, asset.Spec{Key: "b"}, asset.Ref[int]("nope"), func(_ *asset.Context, v int) (int, error) { return v, nil })
		}, asset.ErrUnknownAsset, `asset b depends on "nope"`},
		{"duplicate", func(g *asset.Graph) {
			asset.Define(g, asset.Spec{Key: "a"}, src(1))
			asset.Define(g, asset.Spec{Key: "a"}, src("x"))
		}, asset.ErrDuplicate, `"a" is defined twice`},
		{"cycle", func(g *asset.Graph) {
			a := asset.Define1(g, asset.Spec{Key: "a"}, asset.Ref[int]("c"), func(_ *asset.Context, v int) (int, error) { return v, nil })
			b := asset.Define1(g, asset.Spec{Key: "b"}, a, func(_ *asset.Context, v int) (int, error) { return v, nil })
			asset.Define1(g, asset.Spec{Key: "c"}, b, func(_ *asset.Context, v int) (int, error) { return v, nil })
			asset.Define(g, asset.Spec{Key: "free"}, src(1))
		}, asset.ErrCycle, "a -> b -> c -> a"},
		{"self cycle", func(g *asset.Graph) {
			asset.Define1(g, asset.Spec{Key: "s"}, asset.Ref[int]("s"), func(_ *asset.Context, v int) (int, error) { return v, nil })
		}, asset.ErrCycle, "s -> s"},
		{"type mismatch", func(g *asset.Graph) {
			asset.Define(g, asset.Spec{Key: "a"}, src(1))
			asset.Define1(g, asset.Spec{Key: "b"}, asset.Ref[string]("a"), func(_ *asset.Context, v string) (string, error) { return v, nil })
		}, asset.ErrTypeMismatch, "asset b reads a as string, but a is a int"},
		{"check type mismatch", func(g *asset.Graph) {
			asset.Define(g, asset.Spec{Key: "a", Checks: []asset.Check{
				asset.CheckOf("positive", func(_ context.Context, v string) error { return nil }),
			}}, src(1))
		}, asset.ErrTypeMismatch, `check "positive" of asset a takes a string`},
		{"unpartitioned reads partitioned", func(g *asset.Graph) {
			d := asset.Define(g, asset.Spec{Key: "d", Partitions: day}, src(1))
			asset.Define1(g, asset.Spec{Key: "u"}, d, func(_ *asset.Context, v int) (int, error) { return v, nil })
		}, asset.ErrPartitionMismatch, "asset.AllPartitions(d)"},
		{"different partitions", func(g *asset.Graph) {
			d := asset.Define(g, asset.Spec{Key: "d", Partitions: day}, src(1))
			asset.Define1(g, asset.Spec{Key: "s", Partitions: other}, d, func(_ *asset.Context, v int) (int, error) { return v, nil })
		}, asset.ErrPartitionMismatch, "their partitions differ"},
		{"all partitions of unpartitioned", func(g *asset.Graph) {
			a := asset.Define(g, asset.Spec{Key: "a"}, src(1))
			asset.Define1(g, asset.Spec{Key: "b"}, asset.AllPartitions(a), func(_ *asset.Context, v map[string]int) (int, error) { return 0, nil })
		}, asset.ErrPartitionMismatch, "not partitioned"},
		{"bad key", func(g *asset.Graph) {
			asset.Define(g, asset.Spec{Key: "a b"}, src(1))
		}, asset.ErrInvalidGraph, `asset key "a b"`},
		{"bad partition key", func(g *asset.Graph) {
			asset.Define(g, asset.Spec{Key: "a", Partitions: asset.StaticPartitions("x,y")}, src(1))
		}, asset.ErrInvalidGraph, "must not contain ','"},
		{"bad retry", func(g *asset.Graph) {
			asset.Define(g, asset.Spec{Key: "a", Retry: asset.RetryPolicy{Jitter: 2}}, src(1))
		}, asset.ErrInvalidGraph, "Jitter"},
		{"handle of another graph", func(g *asset.Graph) {
			h := asset.Define(asset.New(), asset.Spec{Key: "a"}, src(1))
			asset.Define(g, asset.Spec{Key: "a"}, src(1))
			asset.Define1(g, asset.Spec{Key: "b"}, h, func(_ *asset.Context, v int) (int, error) { return v, nil })
		}, asset.ErrUnknownAsset, "another graph"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := asset.New()
			c.define(g)
			err := g.Validate()
			if !errors.Is(err, c.kind) || !errors.Is(err, asset.ErrInvalidGraph) {
				t.Fatalf("Validate() = %v, want %v", err, c.kind)
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Errorf("Validate() = %q, want it to say %q", err, c.msg)
			}
			if _, oerr := asset.Open(context.Background(), g, newEnv(t).config()); !errors.Is(oerr, c.kind) {
				t.Errorf("Open accepted an invalid graph: %v", oerr)
			}
		})
	}
}

func TestValidGraphs(t *testing.T) {
	day := asset.DailyPartitions(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	g := asset.New()
	// A Ref to an asset defined later is fine, and so are the same
	// partitions defined twice.
	late := asset.Ref[[]int]("late")
	asset.Define1(g, asset.Spec{Key: "early"}, late, func(_ *asset.Context, v []int) (int, error) { return len(v), nil })
	asset.Define(g, asset.Spec{Key: "late"}, src([]int{1}))
	d := asset.Define(g, asset.Spec{Key: "d", Partitions: day}, src(1))
	asset.Define1(g, asset.Spec{Key: "d2", Partitions: asset.DailyPartitions(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))}, d, func(_ *asset.Context, v int) (int, error) { return v, nil })
	asset.Define1(g, asset.Spec{Key: "sum"}, asset.AllPartitions(d), func(_ *asset.Context, v map[string]int) (int, error) { return len(v), nil })
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	keys, err := g.Keys()
	if err != nil {
		t.Fatal(err)
	}
	if slices.Index(keys, "late") > slices.Index(keys, "early") || slices.Index(keys, "d") > slices.Index(keys, "d2") {
		t.Errorf("Keys not in topological order: %v", keys)
	}
}

func TestSelect(t *testing.T) {
	g := newPipeline(nil).g
	cases := []struct {
		sel  string
		want []string
		err  error
	}{
		{"", allKeys, nil},
		{"all", allKeys, nil},
		{"joined", []string{"joined"}, nil},
		{"+joined", []string{"customers", "clean", "joined"}, nil},
		{"++joined", []string{"raw", "customers", "clean", "joined"}, nil},
		{"*joined", []string{"raw", "customers", "clean", "joined"}, nil},
		{"clean+", []string{"clean", "joined"}, nil},
		{"clean*", []string{"clean", "joined", "report"}, nil},
		{"*clean*", []string{"raw", "clean", "joined", "report"}, nil},
		{"other, report", []string{"report", "other"}, nil},
		{"group:ingest", []string{"raw", "customers"}, nil},
		{"nope", nil, asset.ErrUnknownAsset},
		{"+", nil, asset.ErrSelection},
		{"group:none", nil, asset.ErrSelection},
	}
	for _, c := range cases {
		got, err := g.Select(c.sel)
		if c.err != nil {
			if !errors.Is(err, c.err) {
				t.Errorf("Select(%q) error = %v, want %v", c.sel, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Select(%q): %v", c.sel, err)
			continue
		}
		want := slices.Clone(c.want)
		slices.SortFunc(want, func(a, b string) int { return slices.Index(allKeysTopo, a) - slices.Index(allKeysTopo, b) })
		if !slices.Equal(got, want) {
			t.Errorf("Select(%q) = %v, want %v", c.sel, got, want)
		}
	}
}

// allKeysTopo is the pipeline's topological order (definition order among
// independent assets).
var allKeysTopo = []string{"raw", "customers", "other", "clean", "other2", "joined", "report"}

func TestPartitionKeys(t *testing.T) {
	start := time.Date(2026, 3, 30, 0, 0, 0, 0, time.UTC)
	now := time.Date(2026, 4, 2, 13, 30, 0, 0, time.UTC)
	day := asset.DailyPartitions(start)
	if got := day.Keys(now); !slices.Equal(got, []string{"2026-03-30", "2026-03-31", "2026-04-01"}) {
		t.Errorf("daily keys = %v (today is not complete yet)", got)
	}
	hour := asset.HourlyPartitions(start).Until(start.Add(3 * time.Hour))
	if got := hour.Keys(now); !slices.Equal(got, []string{"2026-03-30-00:00", "2026-03-30-01:00", "2026-03-30-02:00"}) {
		t.Errorf("hourly keys = %v", got)
	}
	if got, err := day.Range("2026-03-31", "2026-04-01", now); err != nil || !slices.Equal(got, []string{"2026-03-31", "2026-04-01"}) {
		t.Errorf("Range = %v, %v", got, err)
	}
	if _, err := day.Range("2026-04-01", "2026-03-31", now); !errors.Is(err, asset.ErrSelection) {
		t.Errorf("backwards range: %v", err)
	}
	if _, err := day.Range("2026-03-31", "2026-04-02", now); !errors.Is(err, asset.ErrSelection) {
		t.Errorf("range into an incomplete day: %v", err)
	}
	s, e, err := day.Window("2026-03-31")
	if err != nil || !s.Equal(start.AddDate(0, 0, 1)) || !e.Equal(start.AddDate(0, 0, 2)) {
		t.Errorf("Window = %v %v %v", s, e, err)
	}
	for _, bad := range []string{"2026-3-31", "2026-03-29", "x"} {
		if day.Has(bad, now) {
			t.Errorf("Has(%q) = true", bad)
		}
	}
	st := asset.StaticPartitions("eu", "us", "asia")
	if got, err := st.Range("us", "asia", now); err != nil || !slices.Equal(got, []string{"us", "asia"}) {
		t.Errorf("static Range = %v, %v", got, err)
	}
}

func TestRetryWait(t *testing.T) {
	cases := []struct {
		p    asset.RetryPolicy
		n    int
		want time.Duration
	}{
		{asset.RetryPolicy{Delay: time.Second}, 1, time.Second},
		{asset.RetryPolicy{Delay: time.Second}, 3, 4 * time.Second},
		{asset.RetryPolicy{Delay: time.Second, Backoff: 1}, 3, time.Second},
		{asset.RetryPolicy{Delay: time.Second, Backoff: 3, MaxDelay: 5 * time.Second}, 3, 5 * time.Second},
	}
	for _, c := range cases {
		if got := asset.RetryWait(c.p, c.n); got != c.want {
			t.Errorf("%+v wait after attempt %d = %v, want %v", c.p, c.n, got, c.want)
		}
	}
	p := asset.RetryPolicy{Delay: time.Second, Backoff: 1, Jitter: 0.5}
	lo, hi := time.Hour, time.Duration(0)
	for range 200 {
		d := asset.RetryWait(p, 1)
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo < 500*time.Millisecond || hi > 1500*time.Millisecond || hi-lo < 200*time.Millisecond {
		t.Errorf("jittered waits span [%v, %v], want within [0.5s, 1.5s] and spread", lo, hi)
	}
}

// TestFirstUseConcurrent: a defined graph may be used by several
// goroutines at once, also for its first validation (under -race).
func TestFirstUseConcurrent(t *testing.T) {
	g := newPipeline(nil).g
	var wg sync.WaitGroup
	keys := make([][]string, 4)
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			keys[i], _ = g.Keys()
		}()
	}
	wg.Wait()
	for i, k := range keys {
		if len(k) != len(allKeys) {
			t.Errorf("goroutine %d: keys %v", i, k)
		}
	}
}
