package asset_test

import (
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/ckptdev/ckpt/asset"
	"github.com/ckptdev/ckpt/asset/eventlog"
)

// dailyGraph: daily sales (partitioned), a per-day report of them, and a
// total over every day.
type dailyGraph struct {
	g      *asset.Graph
	calls  *counter
	faults *faults
}

var (
	jan1 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	days = asset.DailyPartitions(jan1).Until(jan1.AddDate(0, 0, 10)) // 2026-01-01 ... 2026-01-10
)

func newDailyGraph() *dailyGraph {
	d := &dailyGraph{g: asset.New(), calls: newCounter(), faults: newFaults()}
	sales := asset.Define(d.g, asset.Spec{Key: "sales", CodeVersion: "1", Partitions: days}, func(c *asset.Context) (int, error) {
		d.calls.add(c)
		if err := d.faults.hit(c); err != nil {
			return 0, err
		}
		return c.WindowStart.Day() * 10, nil
	})
	report := asset.Define1(d.g, asset.Spec{Key: "report", CodeVersion: "1", Partitions: days}, sales, func(c *asset.Context, v int) (string, error) {
		d.calls.add(c)
		if err := d.faults.hit(c); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s=%d", c.Partition, v), nil
	})
	asset.Define1(d.g, asset.Spec{Key: "total", CodeVersion: "1"}, asset.AllPartitions(sales), func(c *asset.Context, all map[string]int) (int, error) {
		d.calls.add(c)
		sum := 0
		for _, v := range all {
			sum += v
		}
		return sum, nil
	})
	_ = report
	return d
}

func day(i int) string { return jan1.AddDate(0, 0, i-1).Format(asset.DailyLayout) }

func TestPartitionedMaterializeAndStatus(t *testing.T) {
	d := newDailyGraph()
	in := newEnv(t).open(t, d.g)
	run, err := in.Materialize(tctx, asset.MaterializeOptions{Selection: "sales report", Partitions: []string{day(2) + "..." + day(4), day(7)}})
	if err != nil {
		t.Fatal(err)
	}
	want := counts()
	for _, i := range []int{2, 3, 4, 7} {
		want[name("sales", day(i))] = 1
		want[name("report", day(i))] = 1
	}
	sameCounts(t, "partition range", d.calls.take(), want)
	if len(run.Steps) != 8 {
		t.Errorf("%d steps, want 8", len(run.Steps))
	}
	st, err := in.Status(tctx, asset.StatusOptions{Selection: "sales total"})
	if err != nil {
		t.Fatal(err)
	}
	sales, total := st[0], st[1]
	if !sales.Partitioned || sales.State != asset.StateMissing || sales.Counts[asset.StateFresh] != 4 || sales.Counts[asset.StateMissing] != 6 || len(sales.Partitions) != 10 {
		t.Errorf("sales status: %s %v (%d partitions)", sales.State, sales.Counts, len(sales.Partitions))
	}
	if got := sales.Partitions[2]; got.Partition != day(3) || got.State != asset.StateFresh || got.RunID != run.ID {
		t.Errorf("sales[%s] status %+v", day(3), got)
	}
	if total.State != asset.StateMissing {
		t.Errorf("total is %s, want missing", total.State)
	}

	// total needs every partition of sales: it fails with only some.
	if _, err := in.Materialize(tctx, asset.MaterializeOptions{Selection: "total"}); !isFailed(err) {
		t.Fatalf("total over missing partitions: %v, want failure", err)
	}
	if _, err := in.Materialize(tctx, asset.MaterializeOptions{Selection: "sales+", Stale: true}); err != nil {
		t.Fatal(err)
	}
	c := d.calls.take()
	if c["total"] != 1 || c[name("sales", day(1))] != 1 || c[name("sales", day(2))] != 0 {
		t.Errorf("--stale backfill computed %v: want only the missing partitions and total", sorted(c))
	}
	if got := value[int](t, in, "total", ""); got != 550 {
		t.Errorf("total = %d, want 550", got)
	}
	if got := value[string](t, in, "report", day(3)); got != day(3)+"=30" {
		t.Errorf("report[%s] = %q", day(3), got)
	}

	// One day's sales recomputed with new data would make only that day's
	// report stale, and total: here the data version is the same.
	d.calls.take()
	if _, err := in.Materialize(tctx, asset.MaterializeOptions{Selection: "sales", Partitions: []string{day(5)}}); err != nil {
		t.Fatal(err)
	}
	wantStates(t, in, map[string]asset.State{name("report", day(5)): asset.StateFresh, "total": asset.StateFresh})

	_, err = in.Materialize(tctx, asset.MaterializeOptions{Selection: "sales", Partitions: []string{"2027-01-01"}})
	if !errors.Is(err, asset.ErrSelection) {
		t.Errorf("an unknown partition: %v, want ErrSelection", err)
	}
}

// TestBackfillFailsThenResumes: a backfill with failing partitions goes on
// with the others; resuming computes only the failed partitions and
// what depends on them, never a partition that succeeded.
func TestBackfillFailsThenResumes(t *testing.T) {
	eventLogs(t, func(t *testing.T, e env) {
		d := newDailyGraph()
		in := e.open(t, d.g, func(c *asset.Config) { c.Parallelism = 3 })
		d.faults.set(name("sales", day(3)), -1)
		d.faults.set(name("report", day(8)), -1)
		run, err := in.Materialize(tctx, asset.MaterializeOptions{})
		if !isFailed(err) {
			t.Fatalf("backfill: %v, want failure", err)
		}
		o := outcomes(run)
		if o[name("sales", day(3))] != asset.OutcomeFailed || o[name("report", day(3))] != asset.OutcomeSkipped || o["total"] != asset.OutcomeSkipped ||
			o[name("report", day(8))] != asset.OutcomeFailed || o[name("report", day(4))] != asset.OutcomeMaterialized {
			t.Errorf("outcomes: %v", o)
		}
		if run.Steps.Count(asset.OutcomeMaterialized) != 17 {
			t.Errorf("%d materialized, want 17", run.Steps.Count(asset.OutcomeMaterialized))
		}
		d.calls.take()
		d.faults.set(name("sales", day(3)), 0)
		d.faults.set(name("report", day(8)), 0)
		res, err := in.Resume(tctx, run.ID, asset.ResumeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sameCounts(t, "resume", d.calls.take(), counts(name("sales", day(3)), name("report", day(3)), name("report", day(8)), "total"))
		if res.Steps.Count(asset.OutcomeReused) != 17 {
			t.Errorf("reused %d, want 17", res.Steps.Count(asset.OutcomeReused))
		}
		// Each partition has its own history: sales of day 3 failed, then
		// was materialized.
		hist, err := in.EventLog().Events(tctx, eventlog.EventFilter{Key: "sales", Partition: ptr(day(3)),
			Kinds: []eventlog.Kind{eventlog.KindMaterialization, eventlog.KindStepFailure}})
		if err != nil {
			t.Fatal(err)
		}
		if len(hist) != 2 || hist[0].Kind != eventlog.KindStepFailure || hist[0].RunID != run.ID || hist[1].Kind != eventlog.KindMaterialization || hist[1].RunID != res.ID {
			t.Errorf("history of sales[%s]: %+v", day(3), hist)
		}
		if got := value[int](t, in, "total", ""); got != 550 {
			t.Errorf("total = %d, want 550", got)
		}
	})
}

func ptr[T any](v T) *T { return &v }

// TestBackfill10000 backfills 10,000 hourly partitions, with failures,
// then resumes: only the failed partitions are computed again. Under the
// race detector (or -short) it backfills 1,000 unless CKPT_LONG=1.
func TestBackfill10000(t *testing.T) {
	parts := 10000
	if (testing.Short() || raceEnabled) && os.Getenv("CKPT_LONG") != "1" {
		parts = 1000
	}
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	hours := asset.HourlyPartitions(start).Until(start.Add(time.Duration(parts) * time.Hour))
	calls := newCounter()
	f := newFaults()
	g := asset.New()
	events := asset.Define(g, asset.Spec{Key: "events", CodeVersion: "1", Partitions: hours}, func(c *asset.Context) (int64, error) {
		calls.add(c)
		if err := f.hit(c); err != nil {
			return 0, err
		}
		return c.WindowStart.Unix() / 3600, nil
	})
	asset.Define1(g, asset.Spec{Key: "total", CodeVersion: "1"}, asset.AllPartitions(events), func(c *asset.Context, all map[string]int64) (int64, error) {
		calls.add(c)
		var sum int64
		for _, v := range all {
			sum += v
		}
		return sum, nil
	})
	var failing []string
	for i := 7; i < parts; i += 997 {
		p := start.Add(time.Duration(i) * time.Hour).Format(asset.HourlyLayout)
		f.set(name("events", p), 1)
		failing = append(failing, name("events", p))
	}
	in := newEnv(t).open(t, g)
	t0 := time.Now()
	run, err := in.Materialize(tctx, asset.MaterializeOptions{})
	if !isFailed(err) {
		t.Fatalf("backfill: %v, want failure", err)
	}
	t.Logf("%d partitions: backfill %v", parts, time.Since(t0))
	if n := run.Steps.Count(asset.OutcomeFailed); n != len(failing) {
		t.Errorf("%d failed, want %d", n, len(failing))
	}
	if n := run.Steps.Count(asset.OutcomeMaterialized); n != parts-len(failing) {
		t.Errorf("%d materialized, want %d", n, parts-len(failing))
	}
	calls.take()
	st, err := in.Status(tctx, asset.StatusOptions{Selection: "events"})
	if err != nil {
		t.Fatal(err)
	}
	if st[0].Counts[asset.StateFailed] != len(failing) || st[0].Counts[asset.StateFresh] != parts-len(failing) {
		t.Errorf("status counts %v", st[0].Counts)
	}
	t0 = time.Now()
	res, err := in.Resume(tctx, run.ID, asset.ResumeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("resume %v", time.Since(t0))
	sameCounts(t, "resume", calls.take(), counts(append(failing, "total")...))
	if res.Steps.Count(asset.OutcomeReused) != parts-len(failing) {
		t.Errorf("reused %d", res.Steps.Count(asset.OutcomeReused))
	}
	var want int64
	for i := range parts {
		want += start.Add(time.Duration(i)*time.Hour).Unix() / 3600
	}
	if got := value[int64](t, in, "total", ""); got != want {
		t.Errorf("total = %d, want %d", got, want)
	}
	if os.Getenv("CKPT_LONG") != "1" {
		return
	}
	// The long variant also checks status and planning at this size.
	t0 = time.Now()
	if _, err := in.Status(tctx, asset.StatusOptions{}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("status of %d partitions took %v", parts, d)
	}
}
