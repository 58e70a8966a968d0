package asset_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ckptdev/ckpt/asset"
	"github.com/ckptdev/ckpt/asset/eventlog"
)

// The kill tests run materializations in real child processes (this test
// binary, re-executed with CKPT_ASSET_CHILD set) and kill them with
// SIGKILL at chosen instants.
func TestMain(m *testing.M) {
	if mode := os.Getenv("CKPT_ASSET_CHILD"); mode != "" {
		os.Exit(child(mode))
	}
	os.Exit(m.Run())
}

// child runs one materialization (or resume, with CKPT_ASSET_RESUME set to
// a run id) of the graph mode names, printing "computing KEY" on stdout as
// each compute starts. It returns the process's exit code.
func child(mode string) int {
	ctx := context.Background()
	e := env{store: os.Getenv("CKPT_ASSET_STORE")}
	var g *asset.Graph
	var parallel int
	switch mode {
	case "pipeline":
		// Blocks forever in the asset CKPT_ASSET_BLOCK names, so that the
		// parent kills it there.
		p := newPipeline(nil)
		block := os.Getenv("CKPT_ASSET_BLOCK")
		p.hook = func(c *asset.Context) {
			fmt.Printf("computing %s\n", name(c.Key, c.Partition))
			if c.Key == block {
				select {}
			}
		}
		g, parallel = p.g, 1
	case "backfill":
		n, _ := strconv.Atoi(os.Getenv("CKPT_ASSET_PARTS"))
		g = backfillGraph(n, func(c *asset.Context) {
			fmt.Printf("computing %s\n", name(c.Key, c.Partition))
		})
		parallel = 2
	case "file":
		block := os.Getenv("CKPT_ASSET_BLOCK")
		g = fileGraph(filepath.Dir(e.store), func(c *asset.Context) {
			fmt.Printf("computing %s\n", c.Key)
			if c.Key == block {
				select {}
			}
		})
		parallel = 1
	default:
		fmt.Fprintln(os.Stderr, "unknown child mode", mode)
		return 2
	}
	cfg := e.config()
	cfg.Parallelism = parallel
	cfg.WorkDir = os.Getenv("CKPT_ASSET_WORK")
	in, err := asset.Open(ctx, g, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer in.Close()
	if id := os.Getenv("CKPT_ASSET_RESUME"); id != "" {
		_, err = in.Resume(ctx, id, asset.ResumeOptions{})
	} else {
		_, err = in.Materialize(ctx, asset.MaterializeOptions{})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// skipShort skips a test that kills child processes under -short; they
// run in the full test suite.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("kills child processes: runs without -short")
	}
}

// proc is a running child.
type proc struct {
	cmd   *exec.Cmd
	lines chan string // its stdout, line by line; closed at EOF
}

func startChild(t *testing.T, mode string, e env, extra ...string) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "CKPT_ASSET_CHILD="+mode, "CKPT_ASSET_STORE="+e.store)
	cmd.Env = append(cmd.Env, extra...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, lines: make(chan string, 1024)}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		io.Copy(io.Discard, out)
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return p
}

// kill sends SIGKILL and reaps the child, so that its pid is gone.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
	for range p.lines {
	}
}

// next returns the child's next line, failing the test if it ends first.
func (p *proc) next(t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			p.cmd.Wait()
			t.Fatalf("child exited (%v) before saying what it computes", p.cmd.ProcessState)
		}
		return l
	case <-time.After(60 * time.Second):
		t.Fatal("child said nothing for 60s")
	}
	return ""
}

// TestSIGKILLThenResume kills the whole process while it computes an asset
// mid-graph. The run is then detected as dead, and resuming it computes
// only that asset and what depends on it; every value equals a clean
// run's.
func TestSIGKILLThenResume(t *testing.T) {
	skipShort(t)
	e := newEnv(t)
	c := startChild(t, "pipeline", e, "CKPT_ASSET_BLOCK=joined")
	var before []string
	for {
		l := c.next(t)
		before = append(before, strings.TrimPrefix(l, "computing "))
		if l == "computing joined" {
			break
		}
	}
	c.kill(t)
	// One worker computes in topological order: everything before joined
	// was materialized, and is durable, before joined started.
	sameCounts(t, "killed run", counts(before...), counts("raw", "customers", "other", "clean", "other2", "joined"))

	p := newPipeline(nil)
	in := e.open(t, p.g)
	runs, err := in.EventLog().Runs(tctx, eventlog.RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || runs[0].Status != eventlog.RunStarted || runs[0].Alive(in.Liveness()) {
		t.Fatalf("the killed run should be started and dead: %+v", runs)
	}
	res, err := in.Resume(tctx, runs[0].ID, asset.ResumeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sameCounts(t, "resume", p.calls.take(), counts("joined", "report"))
	if n := res.Steps.Count(asset.OutcomeReused); n != 5 {
		t.Errorf("resume reused %d steps, want 5", n)
	}
	parent, err := in.EventLog().Run(tctx, runs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if parent.Status != eventlog.RunFailure || !strings.Contains(parent.Error, "died") {
		t.Errorf("the dead run was not marked failed: %+v", parent)
	}
	checkValues(t, in)
}

// backfillGraph is an hourly-partitioned asset, a per-partition rollup of
// it, and an unpartitioned total of every rollup partition.
func backfillGraph(parts int, hook func(*asset.Context)) *asset.Graph {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	hours := asset.HourlyPartitions(start).Until(start.Add(time.Duration(parts) * time.Hour))
	g := asset.New()
	events := asset.Define(g, asset.Spec{Key: "events", CodeVersion: "1", Partitions: hours}, func(c *asset.Context) (int, error) {
		hook(c)
		return c.WindowStart.Hour()*100 + c.WindowStart.YearDay(), nil
	})
	rollup := asset.Define1(g, asset.Spec{Key: "rollup", CodeVersion: "1", Partitions: hours}, events, func(c *asset.Context, v int) (int, error) {
		hook(c)
		return v * 2, nil
	})
	asset.Define1(g, asset.Spec{Key: "total", CodeVersion: "1"}, asset.AllPartitions(rollup), func(c *asset.Context, all map[string]int) (int, error) {
		hook(c)
		sum := 0
		for _, v := range all {
			sum += v
		}
		return sum, nil
	})
	return g
}

func backfillWant(parts int) (map[string]int, int) {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	want := map[string]int{}
	total := 0
	for i := range parts {
		t := start.Add(time.Duration(i) * time.Hour)
		v := (t.Hour()*100 + t.YearDay()) * 2
		want[t.Format(asset.HourlyLayout)] = v
		total += v
	}
	return want, total
}

// TestBackfillKilledRepeatedly kills a backfill at random instants, again
// and again, resuming each time from the first run's id. No partition is
// ever materialized twice, and the result is a clean run's.
func TestBackfillKilledRepeatedly(t *testing.T) {
	skipShort(t)
	parts, kills := 150, 2
	if os.Getenv("CKPT_LONG") == "1" {
		parts, kills = 5000, 20
	}
	e := newEnv(t)
	extra := "CKPT_ASSET_PARTS=" + strconv.Itoa(parts)
	steps := 2*parts + 1
	first := ""
	for k := 0; ; k++ {
		var c *proc
		if first == "" {
			c = startChild(t, "backfill", e, extra)
		} else {
			c = startChild(t, "backfill", e, extra, "CKPT_ASSET_RESUME="+first)
		}
		if k == kills {
			for range c.lines {
			}
			if err := c.cmd.Wait(); err != nil {
				t.Fatalf("the last resume failed: %v", err)
			}
			break
		}
		// Kill after a random number of computations, within the first
		// half of what is left so that every run has work to cut.
		n := 1 + rand.IntN(max(steps/(2*(kills+1)), 1))
		for range n {
			c.next(t)
		}
		c.kill(t)
		if first == "" {
			in := e.open(t, asset.New())
			runs, err := in.EventLog().Runs(tctx, eventlog.RunFilter{})
			if err != nil || len(runs) != 1 {
				t.Fatalf("runs after the first kill: %v %v", runs, err)
			}
			first = runs[0].ID
			in.Close()
		}
	}

	g := backfillGraph(parts, func(*asset.Context) {})
	in := e.open(t, g)
	evs, err := in.EventLog().Events(tctx, eventlog.EventFilter{Kinds: []eventlog.Kind{eventlog.KindMaterialization}})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, ev := range evs {
		seen[name(ev.Key, ev.Partition)]++
	}
	if len(seen) != steps {
		t.Errorf("%d asset partitions materialized, want %d", len(seen), steps)
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%s materialized %d times", k, n)
		}
	}
	runs, err := in.EventLog().Runs(tctx, eventlog.RunFilter{Root: first})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != kills+1 || runs[0].Status != eventlog.RunSuccess {
		t.Errorf("chain of %d runs, newest %s; want %d, success", len(runs), runs[0].Status, kills+1)
	}
	want, total := backfillWant(parts)
	for p, v := range want {
		if got := value[int](t, in, "rollup", p); got != v {
			t.Fatalf("rollup[%s] = %d, want %d", p, got, v)
		}
	}
	if got := value[int](t, in, "total", ""); got != total {
		t.Errorf("total = %d, want %d", got, total)
	}
}

// fileGraph is a File asset written in dir and an asset that reads it,
// restored from the store.
func fileGraph(dir string, hook func(*asset.Context)) *asset.Graph {
	g := asset.New()
	big := asset.Define(g, asset.Spec{Key: "big", CodeVersion: "1"}, func(c *asset.Context) (asset.File, error) {
		hook(c)
		p := filepath.Join(dir, "big.bin")
		f, err := os.Create(p)
		if err != nil {
			return asset.File{}, err
		}
		defer f.Close()
		_, err = io.CopyN(f, &counting{}, 1<<20)
		return asset.File{Path: p}, err
	})
	asset.Define1(g, asset.Spec{Key: "digest", CodeVersion: "1"}, big, func(c *asset.Context, f asset.File) (string, error) {
		hook(c)
		return fileDigest(f.Path)
	})
	return g
}

// TestSIGKILLLeavesNoRestoredFiles: a run killed while an asset reads a
// File value leaves the restored copy in its work directory; resuming it
// removes that, and the resumed run's own.
func TestSIGKILLLeavesNoRestoredFiles(t *testing.T) {
	skipShort(t)
	e := newEnv(t)
	work := t.TempDir()
	c := startChild(t, "file", e, "CKPT_ASSET_BLOCK=digest", "CKPT_ASSET_WORK="+work)
	for c.next(t) != "computing digest" {
	}
	c.kill(t)
	left, err := os.ReadDir(work)
	if err != nil || len(left) != 1 {
		t.Fatalf("the killed run's work directory: %v %v, want one run directory", left, err)
	}

	in := e.open(t, fileGraph(filepath.Dir(e.store), func(*asset.Context) {}), func(c *asset.Config) { c.WorkDir = work })
	runs, err := in.EventLog().Runs(tctx, eventlog.RunFilter{})
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs: %v %v", runs, err)
	}
	res, err := in.Resume(tctx, runs[0].ID, asset.ResumeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if o := outcomes(res); o["big"] != asset.OutcomeReused || o["digest"] != asset.OutcomeMaterialized {
		t.Errorf("resume outcomes %v", o)
	}
	want, err := fileDigest(filepath.Join(filepath.Dir(e.store), "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if got := value[string](t, in, "digest", ""); got != want {
		t.Errorf("digest %s, want %s", got, want)
	}
	if left, _ := os.ReadDir(work); len(left) != 0 {
		t.Errorf("%d entries left in the work directory after the resume, want none", len(left))
	}
}
