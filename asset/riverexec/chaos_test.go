package riverexec_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ckptdev/ckpt/asset"
	"github.com/ckptdev/ckpt/asset/assetcli"
	"github.com/ckptdev/ckpt/asset/eventlog"
	"github.com/ckptdev/ckpt/asset/riverexec"
	"github.com/ckptdev/ckpt/internal/testenv"
)

// The chaos test runs workers and submitters as real child processes:
// this test binary, re-executed with CKPT_RIVER_CHILD set, runs the
// command line of package assetcli on the chaos graph.
func TestMain(m *testing.M) {
	if os.Getenv("CKPT_RIVER_SPINFOR") != "" {
		os.Exit(spinChild())
	}
	if os.Getenv("CKPT_RIVER_CHILD") != "" {
		os.Exit(chaosChild())
	}
	os.Exit(m.Run())
}

// chaosGraph has n partitions of "part" (a value computed from the
// partition's name, CPU work of a few milliseconds and a pause standing
// for I/O) and "summary", which reads them all. Every compute appends a
// line to the file log names, when set, as it starts.
func chaosGraph(n int, log string) *asset.Graph {
	g := asset.New()
	started := func(c *asset.Context) {
		if log == "" {
			return
		}
		f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			panic(err)
		}
		fmt.Fprintf(f, "%s[%s]\n", c.Key, c.Partition)
		f.Close()
	}
	part := asset.Define(g, asset.Spec{Key: "part", Partitions: asset.StaticPartitions(parts(n)...)}, func(c *asset.Context) (string, error) {
		started(c)
		sum := sha256.Sum256([]byte(c.Partition))
		for range 20000 {
			sum = sha256.Sum256(sum[:])
		}
		select {
		case <-time.After(60 * time.Millisecond):
		case <-c.Done():
			return "", c.Err()
		}
		return hex.EncodeToString(sum[:]), nil
	})
	asset.Define1(g, asset.Spec{Key: "summary"}, asset.AllPartitions(part), func(c *asset.Context, m map[string]string) (string, error) {
		started(c)
		h := sha256.New()
		for _, p := range parts(n) {
			fmt.Fprintf(h, "%s=%s\n", p, m[p])
		}
		return fmt.Sprintf("%d %x", len(m), h.Sum(nil)), nil
	})
	return g
}

func chaosChild() int {
	n, _ := strconv.Atoi(os.Getenv("CKPT_RIVER_PARTS"))
	g := chaosGraph(n, os.Getenv("CKPT_RIVER_LOG"))
	if spin, _ := strconv.Atoi(os.Getenv("CKPT_RIVER_SPIN")); spin > 0 {
		g = spinGraph(n, spin)
	}
	o := assetcli.Options{Name: "chaos", River: riverexec.Config{PollInterval: 50 * time.Millisecond}}
	return assetcli.Run(context.Background(), g, o, os.Args[1:], os.Stdout, os.Stderr)
}

// proc is a child process.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	code int
	out  *strings.Builder
	// ready is closed once a worker says it started: from then on it
	// handles SIGTERM (before, the signal's default action kills it).
	ready chan struct{}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

type chaos struct {
	t      *testing.T
	env    []string
	store  string
	events string
	mu     sync.Mutex
	logs   []*strings.Builder
}

func (c *chaos) start(args ...string) *proc {
	c.t.Helper()
	cmd := exec.Command(os.Args[0], append(args, "--store", c.store, "--events", c.events)...)
	cmd.Env = append(os.Environ(), c.env...)
	out := &strings.Builder{}
	var mu sync.Mutex
	r, w, err := os.Pipe()
	if err != nil {
		c.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	w.Close()
	p := &proc{cmd: cmd, done: make(chan struct{}), out: out, ready: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(r)
		ready := false
		for sc.Scan() {
			mu.Lock()
			out.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if !ready && strings.Contains(sc.Text(), " started (pid ") {
				ready = true
				close(p.ready)
			}
		}
		r.Close()
		cmd.Wait()
		p.code = cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	c.mu.Lock()
	c.logs = append(c.logs, out)
	c.mu.Unlock()
	return p
}

// TestChaosBackfill runs a backfill on three worker processes and a
// submitter, SIGKILLs a random worker every second or two (and restarts
// it) and the submitter once (and resumes the run), then checks the
// values against an in-process run, that every step has exactly one
// materialization in the run's chain, committed by the lease that held
// the step last, and that no more steps were executed than there were
// steps plus those in flight at each kill.
func TestChaosBackfill(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes for tens of seconds; not with -short")
	}
	n := 400
	if os.Getenv("CKPT_LONG") != "" {
		n = 2000
	}
	const parallel = 2
	bucket := testenv.S3(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "computes.log")
	c := &chaos{t: t, store: bucket.URL("assets"), events: testenv.NewPostgresDatabase(t),
		env: append(bucket.Env(), "CKPT_RIVER_CHILD=1", "CKPT_RIVER_PARTS="+strconv.Itoa(n), "CKPT_RIVER_LOG="+log)}
	defer func() {
		if t.Failed() {
			c.mu.Lock()
			for i, l := range c.logs {
				t.Logf("process %d:\n%s", i, l.String())
			}
			c.mu.Unlock()
		}
	}()

	workerArgs := []string{"workers", "--parallel", strconv.Itoa(parallel), "--heartbeat", "250ms", "--dead-after", "2s", "--log-level", "warn"}
	workers := make([]*proc, 3)
	for i := range workers {
		workers[i] = c.start(workerArgs...)
	}
	defer func() {
		for _, w := range workers {
			if !w.exited() {
				w.cmd.Process.Kill()
				<-w.done
			}
		}
	}()
	submitter := c.start("assets", "materialize", "--executor", "river", "--quiet")
	submitterKilled := false
	kills := 0
	deadline := time.Now().Add(10 * time.Minute)
	for !submitter.exited() {
		if time.Now().After(deadline) {
			t.Fatal("the run did not end in 10 minutes")
		}
		select {
		case <-submitter.done:
			continue
		case <-time.After(time.Duration(700+rand.IntN(1000)) * time.Millisecond):
		}
		if !submitterKilled && kills == 2 {
			submitter.cmd.Process.Signal(syscall.SIGKILL)
			<-submitter.done
			submitterKilled = true
			submitter = c.start("runs", "resume", "last", "--executor", "river", "--quiet")
			continue
		}
		i := rand.IntN(len(workers))
		if kills%3 == 2 {
			// Presumed dead, then back: stopped longer than --dead-after,
			// its steps are taken over; continued, it must not commit them.
			workers[i].cmd.Process.Signal(syscall.SIGSTOP)
			time.Sleep(3 * time.Second)
			workers[i].cmd.Process.Signal(syscall.SIGCONT)
			kills++
			continue
		}
		workers[i].cmd.Process.Signal(syscall.SIGKILL)
		<-workers[i].done
		kills++
		workers[i] = c.start(workerArgs...)
	}
	if submitter.code != 0 {
		t.Fatalf("the submitter exited with %d:\n%s", submitter.code, submitter.out.String())
	}
	if !submitterKilled {
		t.Logf("the run ended before the submitter was killed")
	}
	t.Logf("%d partitions, %d workers killed or stopped", n, kills)
	for _, w := range workers {
		// A worker restarted a moment ago may not handle SIGTERM yet.
		select {
		case <-w.ready:
		case <-w.done:
		case <-time.After(time.Minute):
			t.Errorf("a worker did not start in a minute")
		}
		w.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, w := range workers {
		<-w.done
		if w.code != 0 {
			t.Errorf("a worker stopped with SIGTERM exited with %d", w.code)
		}
	}

	ctx := context.Background()
	t.Setenv("AWS_ACCESS_KEY_ID", bucket.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", bucket.SecretKey)
	t.Setenv("AWS_REGION", bucket.Region)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	g := chaosGraph(n, "")
	in, err := asset.Open(ctx, g, asset.Config{Store: c.store, EventLog: c.events, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	runs, err := in.EventLog().Runs(ctx, eventlog.RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || runs[0].Status != eventlog.RunSuccess {
		t.Fatalf("runs: %+v, want one that succeeded", runs)
	}
	run := runs[0]

	// Values equal to those of an in-process run.
	ref, err := asset.Open(ctx, chaosGraph(n, ""), asset.Config{Store: filepath.Join(dir, "ref"), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	if _, err := ref.Materialize(ctx, asset.MaterializeOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, s := range append(parts(n), "") {
		key := "part"
		if s == "" {
			key = "summary"
		}
		var got, want string
		if err := in.Load(ctx, key, s, &got); err != nil {
			t.Fatal(err)
		}
		if err := ref.Load(ctx, key, s, &want); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s[%s] = %q, the in-process run has %q", key, s, got, want)
		}
	}

	// Exactly one materialization per step, by the step's last lease.
	evs, err := in.EventLog().Events(ctx, eventlog.EventFilter{Runs: []string{run.ID}, Kinds: []eventlog.Kind{eventlog.KindMaterialization}})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, c.events)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tokens := map[string]int64{}
	rows, err := conn.Query(ctx, `SELECT asset_key, partition_key, token FROM ckpt_river.ckpt_steps WHERE run_id = $1`, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k, p string
		var tok int64
		if err := rows.Scan(&k, &p, &tok); err != nil {
			t.Fatal(err)
		}
		tokens[k+"["+p+"]"] = tok
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	mats := map[string]int{}
	for _, e := range evs {
		name := e.Key + "[" + e.Partition + "]"
		mats[name]++
		if want := fmt.Sprintf("lease token %d", tokens[name]); e.Message != want {
			t.Errorf("%s was committed with %q; the step's last lease is %q", name, e.Message, want)
		}
	}
	if len(mats) != n+1 {
		t.Errorf("%d steps materialized, want %d", len(mats), n+1)
	}
	for name, k := range mats {
		if k != 1 {
			t.Errorf("%s has %d materializations in the run", name, k)
		}
	}
	var fenced int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM ckpt_river.ckpt_fenced`).Scan(&fenced); err != nil {
		t.Fatal(err)
	}

	// Executions: the steps, plus at most those in flight at each kill.
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	execs := strings.Count(string(b), "\n")
	if limit := n + 1 + kills*parallel; execs > limit {
		t.Errorf("%d executions of %d steps with %d kills of workers running %d steps each: more than %d", execs, n+1, kills, parallel, limit)
	}
	t.Logf("%d executions of %d steps; %d commits refused to fenced-out attempts", execs, n+1, fenced)
}
