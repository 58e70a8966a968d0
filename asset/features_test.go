package asset_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ckptdev/ckpt/asset"
	"github.com/ckptdev/ckpt/asset/eventlog"
)

type row struct {
	ID    int     `json:"id"`
	Name  *string `json:"name"`
	Score float64 `json:"score"`
}

func TestBuiltinChecks(t *testing.T) {
	s := "x"
	cases := []struct {
		name  string
		check asset.Check
		value any
		pass  bool
	}{
		{"rows ok", asset.RowsAtLeast(2), []int{1, 2}, true},
		{"rows short", asset.RowsAtLeast(3), []int{1, 2}, false},
		{"rows of a map", asset.RowsAtLeast(1), map[string]int{"a": 1}, true},
		{"rows unknown", asset.RowsAtLeast(1), 7, false},
		{"no nulls, struct", asset.NoNulls("name"), []row{{1, &s, 0}}, true},
		{"a null, struct by json name", asset.NoNulls("name"), []row{{1, &s, 0}, {2, nil, 0}}, false},
		{"a null, struct by field name", asset.NoNulls("Name"), []row{{2, nil, 0}}, false},
		{"no such column", asset.NoNulls("nope"), []row{{1, &s, 0}}, false},
		{"maps", asset.NoNulls("a"), []map[string]any{{"a": 1}, {"a": "x"}}, true},
		{"map with nil", asset.NoNulls("a"), []map[string]any{{"a": 1}, {"a": nil}}, false},
		{"map missing the column", asset.NoNulls("a"), []map[string]any{{"b": 1}}, false},
		{"sql.Null", asset.NoNulls("v"), []struct{ V sql.NullString }{{sql.NullString{String: "a", Valid: true}}, {}}, false},
		{"not rows", asset.NoNulls("a"), 3, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := asset.RunCheck(c.check, c.value)
			if (err == nil) != c.pass {
				t.Errorf("check %q on %v: %v, want pass=%v", c.check.Name, c.value, err, c.pass)
			}
		})
	}
}

// TestChecks: check results are recorded with the materialization; a
// failed non-blocking check changes nothing else, a failed blocking one
// fails the asset and skips its downstream.
func TestChecks(t *testing.T) {
	var bad atomic.Bool
	calls := newCounter()
	g := asset.New()
	rows := asset.Define(g, asset.Spec{Key: "rows", Checks: []asset.Check{
		asset.RowsAtLeast(1).Block(),
		asset.NoNulls("name"),
		asset.CheckOf("ids positive", func(_ context.Context, rs []row) error {
			for _, r := range rs {
				if r.ID <= 0 {
					return fmt.Errorf("id %d", r.ID)
				}
			}
			return nil
		}),
	}}, func(c *asset.Context) ([]row, error) {
		calls.add(c)
		if bad.Load() {
			return nil, nil
		}
		n := "a"
		return []row{{1, &n, 1}, {-2, nil, 2}}, nil
	})
	asset.Define1(g, asset.Spec{Key: "down"}, rows, func(c *asset.Context, rs []row) (int, error) {
		calls.add(c)
		return len(rs), nil
	})
	in := newEnv(t).open(t, g)
	run, err := in.Materialize(tctx, asset.MaterializeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checks := run.Steps[0].Checks
	if len(checks) != 3 || !checks[0].Passed || checks[1].Passed || checks[2].Passed || !strings.Contains(checks[2].Message, "id -2") {
		t.Errorf("check results %+v", checks)
	}
	mats := runEvents(t, in, run.ID, eventlog.KindMaterialization)
	if len(mats) != 2 || len(mats[0].Materialization.Checks) != 3 {
		t.Fatalf("recorded materializations: %+v", mats)
	}
	sameCounts(t, "non-blocking failures", calls.take(), counts("rows", "down"))

	bad.Store(true)
	run, err = in.Materialize(tctx, asset.MaterializeOptions{})
	if !isFailed(err) {
		t.Fatalf("a failed blocking check: %v, want run failure", err)
	}
	o := outcomes(run)
	if o["rows"] != asset.OutcomeFailed || o["down"] != asset.OutcomeSkipped || !strings.Contains(run.Steps[0].Error, `blocking check "rows >= 1" failed`) {
		t.Errorf("outcomes %v, error %q", o, run.Steps[0].Error)
	}
	sameCounts(t, "blocking failure", calls.take(), counts("rows"))
	wantStates(t, in, map[string]asset.State{"rows": asset.StateFailed, "down": asset.StateStale})
	// A resumed run does not reuse a materialization whose blocking check
	// failed.
	bad.Store(false)
	if _, err := in.Resume(tctx, run.ID, asset.ResumeOptions{}); err != nil {
		t.Fatal(err)
	}
	sameCounts(t, "resume", calls.take(), counts("rows", "down"))
}

// TestExternalAsset: an asset that writes its own file records only where
// it is; downstream gets that description, also in a later run.
func TestExternalAsset(t *testing.T) {
	dir := t.TempDir()
	type Table struct {
		Path string `json:"path"`
		Rows int    `json:"rows"`
	}
	g := asset.New()
	tbl := asset.Define(g, asset.Spec{Key: "table", External: true, CodeVersion: "1"}, func(c *asset.Context) (Table, error) {
		p := filepath.Join(dir, "table.csv")
		if err := os.WriteFile(p, []byte("a\nb\nc\n"), 0o644); err != nil {
			return Table{}, err
		}
		c.SetRows(3)
		c.AddMetadata("path", p)
		return Table{Path: p, Rows: 3}, nil
	})
	asset.Define1(g, asset.Spec{Key: "count"}, tbl, func(c *asset.Context, t Table) (int, error) {
		b, err := os.ReadFile(t.Path)
		return strings.Count(string(b), "\n"), err
	})
	e := newEnv(t)
	in := e.open(t, g)
	run, err := in.Materialize(tctx, asset.MaterializeOptions{Selection: "table"})
	if err != nil {
		t.Fatal(err)
	}
	m := runEvents(t, in, run.ID, eventlog.KindMaterialization)[0].Materialization
	if m.Value != nil || !strings.Contains(string(m.External), "table.csv") || m.Rows != 3 || m.Metadata["path"] == "" {
		t.Errorf("external materialization: %+v", m)
	}
	in.Close()
	in = e.open(t, g)
	if _, err := in.Materialize(tctx, asset.MaterializeOptions{Selection: "count"}); err != nil {
		t.Fatal(err)
	}
	if got := value[int](t, in, "count", ""); got != 3 {
		t.Errorf("count = %d", got)
	}
}

// TestFileValue: a File value is streamed into the store in chunks and
// back into a file for downstream, here 20 MiB (three chunks).
func TestFileValue(t *testing.T) {
	dir := t.TempDir()
	const size = 20 << 20
	g := asset.New()
	big := asset.Define(g, asset.Spec{Key: "big"}, func(c *asset.Context) (asset.File, error) {
		p := filepath.Join(dir, "big.bin")
		f, err := os.Create(p)
		if err != nil {
			return asset.File{}, err
		}
		defer f.Close()
		_, err = io.CopyN(f, &counting{}, size)
		return asset.File{Path: p}, err
	})
	asset.Define1(g, asset.Spec{Key: "digest"}, big, func(c *asset.Context, f asset.File) (string, error) {
		if f.Path == filepath.Join(dir, "big.bin") {
			return "", errors.New("downstream got the upstream's own file, not the stored one")
		}
		return fileDigest(f.Path)
	})
	work := t.TempDir()
	in := newEnv(t).open(t, g, func(c *asset.Config) { c.WorkDir = work })
	run, err := in.Materialize(tctx, asset.MaterializeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := fileDigest(filepath.Join(dir, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if got := value[string](t, in, "digest", ""); got != want {
		t.Errorf("digest of the restored file %s, want %s", got, want)
	}
	m := runEvents(t, in, run.ID, eventlog.KindMaterialization)[0].Materialization
	if m.Value == nil || len(m.Value.Chunks) != 3 || m.Value.RawSize != size {
		t.Errorf("stored as %+v", m.Value)
	}
	if left, _ := os.ReadDir(work); len(left) != 0 {
		t.Errorf("the run left %d entries in its work directory", len(left))
	}
}

// counting produces the bytes 0, 1, 2, ... (mod 251).
type counting struct{ n int }

func (c *counting) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(c.n % 251)
		c.n++
	}
	return len(p), nil
}

func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func TestRetry(t *testing.T) {
	p := newPipeline(nil)
	g := asset.New()
	var attempts atomic.Int32
	flaky := asset.Define(g, asset.Spec{Key: "flaky", Retry: asset.RetryPolicy{MaxAttempts: 3, Delay: 1, Jitter: 0.5}}, func(c *asset.Context) (int, error) {
		if attempts.Add(1) < 3 {
			return 0, errors.New("transient")
		}
		return c.Attempt, nil
	})
	asset.Define1(g, asset.Spec{Key: "perm", Retry: asset.RetryPolicy{MaxAttempts: 5}}, flaky, func(c *asset.Context, v int) (int, error) {
		return 0, asset.Permanent(errors.New("bad input"))
	})
	_ = p
	in := newEnv(t).open(t, g)
	run, err := in.Materialize(tctx, asset.MaterializeOptions{})
	if !isFailed(err) {
		t.Fatalf("run: %v", err)
	}
	if s := run.Steps[0]; s.Outcome != asset.OutcomeMaterialized || s.Attempts != 3 {
		t.Errorf("flaky: %+v", s)
	}
	if got := value[int](t, in, "flaky", ""); got != 3 {
		t.Errorf("flaky's value is attempt %d, want 3", got)
	}
	if s := run.Steps[1]; s.Outcome != asset.OutcomeFailed || s.Attempts != 1 || !strings.Contains(s.Error, "bad input") {
		t.Errorf("perm: %+v", s)
	}
	if n := len(runEvents(t, in, run.ID, eventlog.KindStepRetry)); n != 2 {
		t.Errorf("%d retry events, want 2", n)
	}
}

func TestPanicIsAFailure(t *testing.T) {
	g := asset.New()
	asset.Define(g, asset.Spec{Key: "boom"}, func(c *asset.Context) (int, error) { panic("kaboom") })
	in := newEnv(t).open(t, g)
	run, err := in.Materialize(tctx, asset.MaterializeOptions{})
	if !isFailed(err) || !strings.Contains(run.Steps[0].Error, "panic: kaboom") {
		t.Fatalf("a panicking asset: %v, %+v", err, run)
	}
}

// TestCancelThenResume: canceling the context stops the run; it is
// recorded as canceled (not dead) and resumes.
func TestCancelThenResume(t *testing.T) {
	p := newPipeline(nil)
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	p.hook = func(c *asset.Context) {
		if c.Key == "clean" && ctx.Err() == nil {
			close(started)
			<-c.Done()
		}
	}
	in := newEnv(t).open(t, p.g, func(c *asset.Config) { c.Parallelism = 1 })
	go func() {
		<-started
		cancel()
	}()
	run, err := in.Materialize(ctx, asset.MaterializeOptions{})
	if !errors.Is(err, asset.ErrRunCanceled) {
		t.Fatalf("canceled run: %v", err)
	}
	r, err := in.EventLog().Run(tctx, run.ID)
	if err != nil || r.Status != eventlog.RunCanceled {
		t.Fatalf("recorded run: %+v %v", r, err)
	}
	if o := outcomes(run); o["clean"] != asset.OutcomeCanceled || o["report"] != asset.OutcomeCanceled || o["raw"] != asset.OutcomeMaterialized {
		t.Errorf("outcomes %v", o)
	}
	p.calls.take()
	if _, err := in.Resume(tctx, run.ID, asset.ResumeOptions{}); err != nil {
		t.Fatal(err)
	}
	sameCounts(t, "resume", p.calls.take(), counts("clean", "other2", "joined", "report"))
	checkValues(t, in)
}

func TestResumeRefusesALiveRun(t *testing.T) {
	// A long DeadAfter: the run's heartbeat must not go stale however slow
	// the machine is; only the pid check may judge it.
	in := newEnv(t).open(t, newPipeline(nil).g, func(c *asset.Config) { c.DeadAfter = time.Hour })
	host, _ := os.Hostname()
	if err := in.EventLog().CreateRun(tctx, eventlog.Run{ID: "live", Host: host, PID: os.Getpid(), Spec: []byte(`{"keys":["raw"]}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Resume(tctx, "live", asset.ResumeOptions{}); !errors.Is(err, asset.ErrRunActive) {
		t.Errorf("resuming a live run: %v, want ErrRunActive", err)
	}
}

// TestResumeResumed: a resumed run that fails again is resumed in turn
// (from its id or its parent's); each resume computes only what is left.
func TestResumeResumed(t *testing.T) {
	p := newPipeline(nil)
	in := newEnv(t).open(t, p.g)
	p.faults.set("clean", -1)
	first, err := in.Materialize(tctx, asset.MaterializeOptions{})
	if !isFailed(err) {
		t.Fatal(err)
	}
	p.faults.set("clean", 0)
	p.faults.set("report", -1)
	p.calls.take()
	second, err := in.Resume(tctx, first.ID, asset.ResumeOptions{})
	if !isFailed(err) {
		t.Fatal(err)
	}
	sameCounts(t, "second run", p.calls.take(), counts("clean", "joined", "report"))
	p.faults.set("report", 0)
	// Resuming the first run again follows the chain to the second.
	third, err := in.Resume(tctx, first.ID, asset.ResumeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if third.Parent != second.ID || third.Root != first.ID {
		t.Errorf("third run: parent %s root %s", third.Parent, third.Root)
	}
	sameCounts(t, "third run", p.calls.take(), counts("report"))
	checkValues(t, in)
}

// TestConcurrentRuns: runs in several instances share one store and event
// log at once; every value and state ends up consistent.
func TestConcurrentRuns(t *testing.T) {
	eventLogs(t, func(t *testing.T, e env) {
		const n = 4
		var wg sync.WaitGroup
		errs := make([]error, n)
		ins := make([]*asset.Instance, n)
		// With code versions, every run computes the same data versions,
		// whichever order they commit in. (Unversioned assets would get a
		// new data version per run, and a downstream computed by one run
		// from an upstream another run replaced is rightly stale.)
		for i := range ins {
			ins[i] = e.open(t, newPipeline(versioned).g)
		}
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = ins[i].Materialize(tctx, asset.MaterializeOptions{})
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		checkValues(t, ins[0])
		wantStates(t, ins[0], allState(asset.StateFresh))
		evs, err := ins[0].EventLog().Events(tctx, eventlog.EventFilter{Kinds: []eventlog.Kind{eventlog.KindMaterialization}})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != n*len(allKeys) {
			t.Errorf("%d materializations, want %d", len(evs), n*len(allKeys))
		}
	})
}

// TestParallelismBound: independent assets run at most Parallelism at a
// time, and they do run side by side.
func TestParallelismBound(t *testing.T) {
	const width, parallel = 12, 3
	var cur, peak atomic.Int32
	gate := make(chan struct{})
	var once sync.Once
	g := asset.New()
	for i := range width {
		asset.Define(g, asset.Spec{Key: fmt.Sprintf("a%02d", i)}, func(c *asset.Context) (int, error) {
			n := cur.Add(1)
			defer cur.Add(-1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			if n == parallel {
				once.Do(func() { close(gate) })
			}
			<-gate // until parallel computations were seen at once
			return i, nil
		})
	}
	in := newEnv(t).open(t, g, func(c *asset.Config) { c.Parallelism = parallel })
	if _, err := in.Materialize(tctx, asset.MaterializeOptions{}); err != nil {
		t.Fatal(err)
	}
	if p := peak.Load(); p != parallel {
		t.Errorf("peak concurrency %d, want %d", p, parallel)
	}
}

func TestDefineN(t *testing.T) {
	g := asset.New()
	a := asset.Define(g, asset.Spec{Key: "a"}, src(2))
	b := asset.Define(g, asset.Spec{Key: "b"}, src("x"))
	stray := asset.Define(g, asset.Spec{Key: "stray"}, src(0))
	asset.DefineN(g, asset.Spec{Key: "n"}, []asset.Input{a, b}, func(c *asset.Context) (string, error) {
		return strings.Repeat(asset.Value(c, b), asset.Value(c, a)), nil
	})
	asset.DefineN(g, asset.Spec{Key: "bad"}, []asset.Input{a}, func(c *asset.Context) (int, error) {
		return asset.Value(c, stray), nil
	})
	in := newEnv(t).open(t, g)
	run, err := in.Materialize(tctx, asset.MaterializeOptions{})
	if !isFailed(err) {
		t.Fatalf("run: %v", err)
	}
	if got := value[string](t, in, "n", ""); got != "xx" {
		t.Errorf("n = %q", got)
	}
	if o := outcomes(run); o["bad"] != asset.OutcomeFailed {
		t.Errorf("reading an undeclared input: %v", o)
	}
}

func TestLoadTypeMismatch(t *testing.T) {
	p := newPipeline(nil)
	in := newEnv(t).open(t, p.g)
	if _, err := in.Materialize(tctx, asset.MaterializeOptions{Selection: "raw"}); err != nil {
		t.Fatal(err)
	}
	var s string
	if err := in.Load(tctx, "raw", "", &s); !errors.Is(err, asset.ErrTypeMismatch) {
		t.Errorf("Load into the wrong type: %v", err)
	}
	var v []int
	if err := in.Load(tctx, "clean", "", &v); !errors.Is(err, eventlog.ErrNotFound) {
		t.Errorf("Load of a missing asset: %v", err)
	}
}

// TestPruneValues: pruning old runs with Values deletes the blobs only
// their materializations used, and keeps those the newest ones need.
func TestPruneValues(t *testing.T) {
	var gen atomic.Int32
	g := asset.New()
	asset.Define(g, asset.Spec{Key: "big"}, func(c *asset.Context) ([]int, error) {
		n := int(gen.Add(1))
		out := make([]int, 5000) // well over the size kept inline
		for i := range out {
			out[i] = i * n
		}
		return out, nil
	})
	e := newEnv(t)
	in := e.open(t, g)
	for range 3 {
		if _, err := in.Materialize(tctx, asset.MaterializeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	blobs := func() []string {
		names, err := in.Store().List(tctx, "assets/big/blobs/")
		if err != nil {
			t.Fatal(err)
		}
		return names
	}
	before := len(blobs())
	if before != 3 {
		t.Fatalf("%d value blobs before pruning, want 3", before)
	}
	res, err := in.Prune(tctx, asset.PruneOptions{Before: time.Now(), Values: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Blobs != 2 || res.Runs != 2 {
		t.Errorf("pruned %+v, want 2 runs and 2 blobs", res)
	}
	if n := len(blobs()); n != 1 {
		t.Errorf("%d blobs left, want 1", n)
	}
	v := value[[]int](t, in, "big", "")
	if v[1] != 3 {
		t.Errorf("the newest value was damaged: v[1] = %d", v[1])
	}
}

// TestStoreFailureThenResume: the value store refuses a write (a file
// stands where the asset's blobs go); the asset fails with an error naming
// it, its downstream is skipped, and once the store works again a resume
// computes both.
func TestStoreFailureThenResume(t *testing.T) {
	calls := newCounter()
	g := asset.New()
	big := asset.Define(g, asset.Spec{Key: "big", Retry: asset.RetryPolicy{MaxAttempts: 2}}, func(c *asset.Context) ([]int, error) {
		calls.add(c)
		out := make([]int, 5000) // well over the size kept inline
		for i := range out {
			out[i] = i
		}
		return out, nil
	})
	asset.Define1(g, asset.Spec{Key: "sum"}, big, func(c *asset.Context, v []int) (int, error) {
		calls.add(c)
		s := 0
		for _, x := range v {
			s += x
		}
		return s, nil
	})
	e := newEnv(t)
	in := e.open(t, g)
	blocker := filepath.Join(e.store, "assets", "big")
	if err := os.MkdirAll(filepath.Dir(blocker), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blocker, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	run, err := in.Materialize(tctx, asset.MaterializeOptions{})
	if !isFailed(err) {
		t.Fatalf("run with a failing store: %v, want failure", err)
	}
	o := outcomes(run)
	if o["big"] != asset.OutcomeFailed || o["sum"] != asset.OutcomeSkipped || !strings.Contains(run.Steps[0].Error, `save value "big"`) || run.Steps[0].Attempts != 2 {
		t.Errorf("outcomes %v, big's error %q after %d attempts", o, run.Steps[0].Error, run.Steps[0].Attempts)
	}
	sameCounts(t, "failing store", calls.take(), counts("big", "big"))
	wantStates(t, in, map[string]asset.State{"big": asset.StateFailed, "sum": asset.StateMissing})

	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Resume(tctx, run.ID, asset.ResumeOptions{}); err != nil {
		t.Fatal(err)
	}
	sameCounts(t, "resume", calls.take(), counts("big", "sum"))
	if got := value[int](t, in, "sum", ""); got != 4999*5000/2 {
		t.Errorf("sum = %d", got)
	}
}

// TestCanceledBeforeStart: with its context already canceled, Materialize
// records no run and computes nothing.
func TestCanceledBeforeStart(t *testing.T) {
	p := newPipeline(nil)
	in := newEnv(t).open(t, p.g)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := in.Materialize(ctx, asset.MaterializeOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("materialize with a canceled context: %v, want context.Canceled", err)
	}
	sameCounts(t, "canceled run", p.calls.take(), nil)
	runs, err := in.EventLog().Runs(tctx, eventlog.RunFilter{})
	if err != nil || len(runs) != 0 {
		t.Errorf("runs recorded: %v %v, want none", runs, err)
	}
}

// TestCanceledDuringCheck: a run canceled while a blocking check runs ends
// canceled; the interrupted check is not recorded as the asset's failure,
// and a resume computes the asset.
func TestCanceledDuringCheck(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wait atomic.Bool
	wait.Store(true)
	calls := newCounter()
	g := asset.New()
	asset.Define(g, asset.Spec{Key: "a", Checks: []asset.Check{
		asset.CheckOf("slow", func(ctx context.Context, v int) error {
			if wait.Load() {
				cancel()
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		}).Block(),
	}}, func(c *asset.Context) (int, error) {
		calls.add(c)
		return 1, nil
	})
	in := newEnv(t).open(t, g)
	run, err := in.Materialize(ctx, asset.MaterializeOptions{})
	if !errors.Is(err, asset.ErrRunCanceled) {
		t.Fatalf("run canceled during a check: %v, want ErrRunCanceled", err)
	}
	if o := outcomes(run); o["a"] != asset.OutcomeCanceled {
		t.Errorf("outcomes %v, want a canceled", o)
	}
	if s := states(t, in, ""); s["a"] != asset.StateMissing {
		t.Errorf("a is %s after a canceled check, want missing", s["a"])
	}
	wait.Store(false)
	if _, err := in.Resume(tctx, run.ID, asset.ResumeOptions{}); err != nil {
		t.Fatal(err)
	}
	sameCounts(t, "both runs", calls.take(), counts("a", "a"))
	wantStates(t, in, map[string]asset.State{"a": asset.StateFresh})
}

// TestPruneValuesSharedAcrossStoreNames: an asset's store named two ways
// (the instance's default, then its URL in Spec.Store) is one store;
// pruning the older materialization must not delete the blobs the newer
// one, of the same value, uses.
func TestPruneValuesSharedAcrossStoreNames(t *testing.T) {
	e := newEnv(t)
	graph := func(storeURL string) *asset.Graph {
		g := asset.New()
		asset.Define(g, asset.Spec{Key: "big", Store: storeURL}, func(c *asset.Context) ([]int, error) {
			out := make([]int, 5000) // well over the size kept inline
			for i := range out {
				out[i] = i
			}
			return out, nil
		})
		return g
	}
	in := e.open(t, graph(""))
	if _, err := in.Materialize(tctx, asset.MaterializeOptions{}); err != nil {
		t.Fatal(err)
	}
	in.Close()
	in = e.open(t, graph(e.store))
	if _, err := in.Materialize(tctx, asset.MaterializeOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := in.Prune(tctx, asset.PruneOptions{Before: time.Now(), Values: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Runs != 1 {
		t.Errorf("pruned %+v, want the first run", res)
	}
	if v := value[[]int](t, in, "big", ""); len(v) != 5000 || v[4999] != 4999 {
		t.Errorf("the kept value reads back wrong: %d rows", len(v))
	}
}

// TestRunDetailsAgreeWithRun: what the event log records of a run's steps
// reads back as the outcomes the run returned: canceled steps are
// canceled (not interrupted), failed and skipped ones failed and skipped
// (fresh ones: TestStaleRecomputedToSameVersion).
func TestRunDetailsAgreeWithRun(t *testing.T) {
	p := newPipeline(versioned)
	in := newEnv(t).open(t, p.g, func(c *asset.Config) { c.Parallelism = 1 })
	p.faults.set("other", -1)
	run, err := in.Materialize(tctx, asset.MaterializeOptions{})
	if !isFailed(err) {
		t.Fatal(err)
	}
	if o := outcomes(run); o["other"] != asset.OutcomeFailed || o["other2"] != asset.OutcomeSkipped {
		t.Fatalf("outcomes %v", o)
	}
	logAgrees(t, in, run, "other", "other2")
	p.faults.set("other", 0)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p.hook = func(c *asset.Context) {
		if c.Key == "clean" {
			cancel()
			<-c.Done()
		}
	}
	run, err = in.Materialize(ctx, asset.MaterializeOptions{})
	if !errors.Is(err, asset.ErrRunCanceled) {
		t.Fatal(err)
	}
	if o := outcomes(run); o["clean"] != asset.OutcomeCanceled {
		t.Fatalf("outcomes %v", o)
	}
	logAgrees(t, in, run, "clean")
}

// TestLivenessByTheRunsOwnSettings: a run that beats rarely is judged by
// its own heartbeat interval, not by the shorter deadline of the process
// that looks at it: resuming it is refused while it runs.
func TestLivenessByTheRunsOwnSettings(t *testing.T) {
	e := newEnv(t)
	p := newPipeline(nil)
	started, release := make(chan string, 1), make(chan struct{})
	p.hook = func(c *asset.Context) {
		if c.Key == "clean" {
			started <- c.RunID
			<-release
		}
	}
	slow := e.open(t, p.g, func(c *asset.Config) { c.HeartbeatInterval = time.Hour })
	done := make(chan error, 1)
	go func() {
		_, err := slow.Materialize(tctx, asset.MaterializeOptions{})
		done <- err
	}()
	id := <-started
	// Its heartbeat, recorded when it started, is already older than
	// this instance's deadline.
	eager := e.open(t, newPipeline(nil).g, func(c *asset.Config) { c.HeartbeatInterval, c.DeadAfter = time.Millisecond, time.Nanosecond })
	d, err := eager.RunDetails(tctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Alive || d.HeartbeatInterval != time.Hour {
		t.Errorf("the running run: alive %v, heartbeat interval %s; want alive, 1h", d.Alive, d.HeartbeatInterval)
	}
	if _, err := eager.Resume(tctx, id, asset.ResumeOptions{}); !errors.Is(err, asset.ErrRunActive) {
		t.Errorf("resuming the running run: %v, want ErrRunActive", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("the run: %v", err)
	}
}
