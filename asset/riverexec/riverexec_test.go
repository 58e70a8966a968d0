package riverexec_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ckptdev/ckpt/asset"
	"github.com/ckptdev/ckpt/asset/eventlog"
	"github.com/ckptdev/ckpt/asset/riverexec"
	"github.com/ckptdev/ckpt/internal/testenv"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fixture is a graph of n partitions: raw, double (per partition) and
// total (of every partition); fail names partitions whose double fails.
type fixture struct {
	g     *asset.Graph
	calls atomic.Int64
	fail  func(part string, attempt int) error
}

func parts(n int) []string {
	ps := make([]string, n)
	for i := range ps {
		ps[i] = fmt.Sprintf("p%04d", i)
	}
	return ps
}

func newFixture(n int, retry asset.RetryPolicy) *fixture {
	f := &fixture{g: asset.New()}
	p := asset.StaticPartitions(parts(n)...)
	raw := asset.Define(f.g, asset.Spec{Key: "raw", Partitions: p}, func(c *asset.Context) (int, error) {
		f.calls.Add(1)
		var i int
		fmt.Sscanf(c.Partition, "p%d", &i)
		return i, nil
	})
	double := asset.Define1(f.g, asset.Spec{Key: "double", Partitions: p, Retry: retry}, raw, func(c *asset.Context, v int) (int, error) {
		f.calls.Add(1)
		if f.fail != nil {
			if err := f.fail(c.Partition, c.Attempt); err != nil {
				return 0, err
			}
		}
		return 2 * v, nil
	})
	asset.Define1(f.g, asset.Spec{Key: "total"}, asset.AllPartitions(double), func(c *asset.Context, m map[string]int) (int, error) {
		f.calls.Add(1)
		t := 0
		for _, v := range m {
			t += v
		}
		return t, nil
	})
	return f
}

type env struct {
	store, events string
	cfg           riverexec.Config
}

func newEnv(t *testing.T) *env {
	return &env{
		store:  t.TempDir(),
		events: testenv.NewPostgresDatabase(t),
		cfg:    riverexec.Config{HeartbeatInterval: 100 * time.Millisecond, DeadAfter: 400 * time.Millisecond, PollInterval: 20 * time.Millisecond, Logger: quiet},
	}
}

func (e *env) open(t *testing.T, g *asset.Graph, ex asset.Executor) *asset.Instance {
	t.Helper()
	in, err := asset.Open(context.Background(), g, asset.Config{Store: e.store, EventLog: e.events, Logger: quiet, Executor: ex, HeartbeatInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	return in
}

func (e *env) executor(t *testing.T) *riverexec.Executor {
	t.Helper()
	ex, err := riverexec.New(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ex.Close() })
	return ex
}

// startWorkers runs n workers, each with its own instance, until the
// test ends.
func (e *env) startWorkers(t *testing.T, g *asset.Graph, n, parallel int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range n {
		in := e.open(t, g, nil)
		started := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := riverexec.WorkOptions{Config: e.cfg, Parallel: parallel, Started: func(string) { close(started) }}
			if err := riverexec.Work(ctx, in, o); err != nil {
				t.Errorf("worker: %v", err)
			}
		}()
		select {
		case <-started:
		case <-time.After(30 * time.Second):
			t.Fatal("worker did not start")
		}
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}

func TestMaterializeOnWorkers(t *testing.T) {
	e := newEnv(t)
	f := newFixture(40, asset.RetryPolicy{})
	e.startWorkers(t, f.g, 2, 3)
	in := e.open(t, f.g, e.executor(t))
	var progress []asset.Step
	run, err := in.Materialize(context.Background(), asset.MaterializeOptions{Progress: func(s asset.Step) { progress = append(progress, s) }})
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != eventlog.RunSuccess || run.Steps.Count(asset.OutcomeMaterialized) != 81 {
		t.Fatalf("run %s: %d materialized of %d steps", run.Status, run.Steps.Count(asset.OutcomeMaterialized), len(run.Steps))
	}
	if len(progress) != 81 {
		t.Errorf("%d progress reports, want 81", len(progress))
	}
	var total int
	if err := in.Load(context.Background(), "total", "", &total); err != nil {
		t.Fatal(err)
	}
	if want := 2 * 39 * 40 / 2; total != want {
		t.Errorf("total = %d, want %d", total, want)
	}
	if got := f.calls.Load(); got != 81 {
		t.Errorf("%d computations, want 81", got)
	}
	workers := map[string]bool{}
	for _, s := range run.Steps {
		if s.Worker == "" {
			t.Fatalf("step %s[%s] has no worker", s.Key, s.Partition)
		}
		workers[s.Worker] = true
	}
	if len(workers) != 2 {
		t.Logf("steps ran on %d workers", len(workers))
	}
}

func TestFailureSkipsDownstreamAndResumeFinishes(t *testing.T) {
	e := newEnv(t)
	f := newFixture(10, asset.RetryPolicy{MaxAttempts: 2})
	var broken atomic.Bool
	broken.Store(true)
	f.fail = func(part string, attempt int) error {
		if part == "p0003" && broken.Load() {
			return errors.New("broken input")
		}
		if part == "p0005" && attempt == 1 {
			return errors.New("flaky")
		}
		return nil
	}
	e.startWorkers(t, f.g, 2, 2)
	in := e.open(t, f.g, e.executor(t))
	run, err := in.Materialize(context.Background(), asset.MaterializeOptions{})
	if !errors.Is(err, asset.ErrRunFailed) {
		t.Fatalf("err = %v, want ErrRunFailed", err)
	}
	if !strings.Contains(err.Error(), "double[p0003]: broken input") {
		t.Errorf("err = %v: the first failure is not named", err)
	}
	d, err := in.RunDetails(context.Background(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]asset.Step{}
	for _, s := range d.Steps {
		got[s.Key+"["+s.Partition+"]"] = s
	}
	if s := got["double[p0003]"]; s.Outcome != asset.OutcomeFailed || s.Attempts != 2 {
		t.Errorf("double[p0003]: %s after %d attempts, want failed after 2", s.Outcome, s.Attempts)
	}
	if s := got["double[p0005]"]; s.Outcome != asset.OutcomeMaterialized || s.Attempts != 2 {
		t.Errorf("double[p0005]: %s after %d attempts, want materialized at the 2nd", s.Outcome, s.Attempts)
	}
	if s := got["total[]"]; s.Outcome != asset.OutcomeSkipped {
		t.Errorf("total: %s, want skipped", s.Outcome)
	}
	broken.Store(false)
	before := f.calls.Load()
	run2, err := in.Resume(context.Background(), run.ID, asset.ResumeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := f.calls.Load() - before; n != 2 {
		t.Errorf("resume computed %d steps, want 2 (the failed one and total)", n)
	}
	if run2.Parent != run.ID || run2.Steps.Count(asset.OutcomeReused) != 19 {
		t.Errorf("resume: parent %s, %d reused", run2.Parent, run2.Steps.Count(asset.OutcomeReused))
	}
}

func TestCancelDetachedRunThenResume(t *testing.T) {
	e := newEnv(t)
	var blocking atomic.Bool
	blocking.Store(true)
	entered := make(chan string, 100)
	g := asset.New()
	p := asset.StaticPartitions(parts(20)...)
	asset.Define(g, asset.Spec{Key: "slow", Partitions: p}, func(c *asset.Context) (int, error) {
		if blocking.Load() {
			entered <- c.Partition
			<-c.Done() // until the run is canceled
			return 0, c.Err()
		}
		return len(c.Partition), nil
	})
	e.startWorkers(t, g, 1, 2)
	in := e.open(t, g, e.executor(t))
	ctx := context.Background()
	run, err := in.Materialize(ctx, asset.MaterializeOptions{Detach: true})
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != eventlog.RunStarted {
		t.Fatalf("a detached run is %s", run.Status)
	}
	<-entered
	if err := in.Cancel(ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	// Resuming a run the workers still have follows it to its end.
	res, err := in.Resume(ctx, run.ID, asset.ResumeOptions{})
	if !errors.Is(err, asset.ErrRunCanceled) {
		t.Fatalf("following the canceled run: %v, want ErrRunCanceled", err)
	}
	if res.ID != run.ID || res.Status != eventlog.RunCanceled {
		t.Fatalf("followed run %s %s, want %s canceled", res.ID, res.Status, run.ID)
	}
	if n := res.Steps.Count(asset.OutcomeMaterialized); n != 0 {
		t.Errorf("%d steps materialized in the canceled run", n)
	}
	blocking.Store(false)
	res, err = in.Resume(ctx, run.ID, asset.ResumeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Parent != run.ID || res.Steps.Count(asset.OutcomeMaterialized) != 20 {
		t.Fatalf("resumed run: parent %q, %d materialized", res.Parent, res.Steps.Count(asset.OutcomeMaterialized))
	}
	var v int
	if err := in.Load(ctx, "slow", "p0007", &v); err != nil || v != 5 {
		t.Fatalf("slow[p0007] = %d, %v", v, err)
	}
}

// Package asset accepts an executor but does not link River: programs
// that compute in process do not pay for it.
func TestAssetDoesNotLinkRiver(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/ckptdev/ckpt/asset").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "github.com/riverqueue/") {
			t.Errorf("package asset links %s", p)
		}
	}
	if !strings.Contains(string(out), "github.com/ckptdev/ckpt/asset/eventlog") {
		t.Fatalf("the listing is not what the test expects:\n%s", out)
	}
}

// A step whose River job is gone while the step waits for it (River gave
// the job up, or it was lost) is enqueued again by a worker's heartbeat,
// and the run ends.
func TestStepWithoutJobIsEnqueuedAgain(t *testing.T) {
	e := newEnv(t)
	f := newFixture(3, asset.RetryPolicy{})
	in := e.open(t, f.g, e.executor(t))
	ctx := context.Background()
	run, err := in.Materialize(ctx, asset.MaterializeOptions{Detach: true})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, e.events)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tag, err := conn.Exec(ctx, `DELETE FROM ckpt_river.river_job WHERE id = (SELECT job_id FROM ckpt_river.ckpt_steps WHERE run_id = $1 AND asset_key = 'raw' AND partition_key = 'p0001')`, run.ID)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("delete the job of raw[p0001]: %v (%d rows)", err, tag.RowsAffected())
	}
	e.startWorkers(t, f.g, 1, 2)
	res, err := in.Resume(ctx, run.ID, asset.ResumeOptions{}) // follows it
	if err != nil {
		t.Fatal(err)
	}
	if res.ID != run.ID || res.Steps.Count(asset.OutcomeMaterialized) != 7 {
		t.Fatalf("run %s: %d materialized", res.ID, res.Steps.Count(asset.OutcomeMaterialized))
	}
	evs, err := in.EventLog().Events(ctx, eventlog.EventFilter{Runs: []string{run.ID}, Kinds: []eventlog.Kind{eventlog.KindMessage}})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || !strings.Contains(evs[0].Message, "raw[p0001] enqueued again") {
		t.Fatalf("messages: %+v", evs)
	}
}
