package main

import (
	"bufio"
	"bytes"
	"errors"
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

	"github.com/ckptdev/ckpt/internal/gen"
)

// These tests run the real ckpt binary as a user would, kill it with real
// signals, and compare its output byte for byte with an uninterrupted run.

// cli is a built ckpt binary.
type cli struct {
	t   *testing.T
	bin string
}

// in returns c reporting to t: a subtest's failures must end the subtest,
// not its parent.
func (c *cli) in(t *testing.T) *cli { return &cli{t: t, bin: c.bin} }

// built is the ckpt binary the tests share: linking it takes seconds, and
// every test that runs it would otherwise pay them.
var built struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// testVersion is the version the tests' binary is built with.
const testVersion = "v0.0.0-test"

func buildCLI(t *testing.T) *cli {
	t.Helper()
	if testing.Short() {
		// Linking ckpt takes most of this package's test time; the
		// in-process tests cover the commands under -short.
		t.Skip("runs the built ckpt binary: skipped with -short")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go tool is not on PATH")
	}
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "ckpt-cli-test-"); built.err != nil {
			return
		}
		built.bin = filepath.Join(built.dir, "ckpt")
		// The version is set as a release build sets it (TestBinary checks it).
		if out, err := exec.Command(goTool, "build", "-o", built.bin, "-ldflags", "-X main.version="+testVersion, ".").CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return &cli{t: t, bin: built.bin}
}

// run runs ckpt to completion and returns its exit code and output.
func (c *cli) run(dir string, args ...string) (int, string) {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	case err != nil:
		c.t.Fatalf("run ckpt %v: %v", args, err)
	}
	return 0, string(out)
}

func writeSample(t *testing.T, path string, o gen.Options) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := gen.Write(f, o); err != nil {
		t.Fatal(err)
	}
}

func sameFile(t *testing.T, got, want string) {
	t.Helper()
	g, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g, w) {
		i := 0
		for i < len(g) && i < len(w) && g[i] == w[i] {
			i++
		}
		t.Fatalf("%s differs from the uninterrupted run's %s at byte %d (sizes %d and %d)", got, want, i, len(g), len(w))
	}
}

func longTests() bool { return os.Getenv("CKPT_LONG") == "1" }

// crashUntilDone runs ckpt with args in dir, SIGKILLs it at random moments
// until a run finishes by itself, and returns how many runs were killed.
// Kill moments are drawn from [0, window), the window growing with each
// kill so that a run eventually completes.
func (c *cli) crashUntilDone(dir string, seed uint64, window time.Duration, args ...string) int {
	c.t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	kills := 0
	for attempt := 0; ; attempt++ {
		if attempt > 500 {
			c.t.Fatalf("no run finished after %d attempts", attempt)
		}
		cmd := exec.Command(c.bin, args...)
		cmd.Dir = dir
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			c.t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		delay := time.Duration(r.Int64N(int64(window)))
		select {
		case err := <-done:
			if err != nil {
				c.t.Fatalf("run %d of ckpt %v failed: %v\n%s", attempt, args, err, out.String())
			}
			return kills
		case <-time.After(delay):
			cmd.Process.Kill() // SIGKILL
			err := <-done
			var ee *exec.ExitError
			if err == nil {
				return kills // it finished just before the kill
			}
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				c.t.Fatalf("run %d of ckpt %v failed: %v\n%s", attempt, args, err, out.String())
			}
			kills++
			window += window / 8
		}
	}
}

func TestPipelineCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("a kill -9 loop: skipped with -short")
	}
	c := buildCLI(t)
	rows := int64(60_000)
	minKills := 8
	if longTests() {
		rows, minKills = 1_000_000, 60
	}

	// Each case converts or aggregates generated data twice: once without
	// interruption (the reference) and once killed with SIGKILL at random
	// moments until it completes; then the outputs must be byte-identical.
	cases := []struct {
		name  string
		gen   gen.Options
		input string // file name of the input; a .jsonl input is made by converting the CSV first
		out   string
		args  []string
		extra []string // more outputs to compare
	}{
		{name: "convert-csv-to-jsonl", gen: gen.Options{Rows: rows, Seed: 1}, input: "in.csv", out: "out.jsonl",
			args: []string{"convert"}},
		{name: "convert-crlf-bom-infer", gen: gen.Options{Rows: rows, Seed: 2, CRLF: true, BOM: true}, input: "in.csv", out: "out.jsonl",
			args: []string{"convert", "--infer-types"}},
		{name: "convert-jsonl-to-csv", gen: gen.Options{Rows: rows, Seed: 3}, input: "in.jsonl", out: "out.csv",
			args: []string{"convert"}},
		{name: "convert-dead-letter", gen: gen.Options{Rows: rows, Seed: 4, BadEvery: 500}, input: "in.csv", out: "out.jsonl",
			args: []string{"convert", "--dead-letter", "rejects.jsonl"}, extra: []string{"rejects.jsonl"}},
		{name: "aggregate-csv", gen: gen.Options{Rows: rows, Seed: 5}, input: "in.csv", out: "agg.csv",
			args: []string{"aggregate", "--group-by", "city,active", "--agg", "count,sum:amount,min:amount,max:amount,mean:qty,sum:qty"}},
		{name: "aggregate-jsonl-skip", gen: gen.Options{Rows: rows, Seed: 6, BadEvery: 300}, input: "in.csv", out: "agg.jsonl",
			args: []string{"aggregate", "--on-error", "skip", "--group-by", "name", "--agg", "count,mean:amount,max:day"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := c.in(t)
			dir := t.TempDir()
			csvPath := filepath.Join(dir, "in.csv")
			writeSample(t, csvPath, tc.gen)
			if tc.input == "in.jsonl" {
				if code, out := c.run(dir, "convert", "in.csv", "in.jsonl", "--infer-types"); code != 0 {
					t.Fatalf("make the JSONL input: exit %d\n%s", code, out)
				}
			}
			ref := filepath.Join(dir, "ref")
			if err := os.Mkdir(ref, 0o755); err != nil {
				t.Fatal(err)
			}
			args := func(out string, extra ...string) []string {
				a := append([]string{}, tc.args...)
				a = append(a, "../"+tc.input, out)
				return append(a, extra...)
			}
			refArgs := args(tc.out)
			for i, a := range refArgs {
				if a == "rejects.jsonl" {
					refArgs[i] = "rejects.jsonl"
				}
			}
			if code, out := c.run(ref, refArgs...); code != 0 {
				t.Fatalf("uninterrupted run: exit %d\n%s", code, out)
			}

			crash := filepath.Join(dir, "crash")
			if err := os.Mkdir(crash, 0o755); err != nil {
				t.Fatal(err)
			}
			// Small triggers: many checkpoints, so many kills land during
			// one, in the output's fsync or the manifest's write.
			kills := c.crashUntilDone(crash, uint64(len(tc.name)), 150*time.Millisecond,
				args(tc.out, "--every", "3000", "--interval", "5ms", "--no-progress")...)
			for kills < minKills {
				// Finished too soon: start over, with checkpoints kept, and
				// kill more.
				if err := os.Remove(filepath.Join(crash, tc.out)); err != nil {
					t.Fatal(err)
				}
				kills += c.crashUntilDone(crash, uint64(kills), 100*time.Millisecond,
					args(tc.out, "--every", "3000", "--interval", "5ms", "--no-progress", "--restart")...)
			}
			t.Logf("%d kills", kills)
			sameFile(t, filepath.Join(crash, tc.out), filepath.Join(ref, tc.out))
			for _, x := range tc.extra {
				sameFile(t, filepath.Join(crash, x), filepath.Join(ref, x))
			}
			// Running it again only says it is done.
			code, out := c.run(crash, args(tc.out)...)
			if code != 0 || !strings.Contains(out, "already finished") {
				t.Fatalf("rerun of a finished job: exit %d\n%s", code, out)
			}
		})
	}
}

// startUntilCheckpoint starts ckpt and waits until the job's first
// checkpoint is committed in store, so that a signal reaches a running job
// that has something to resume from.
func startUntilCheckpoint(t *testing.T, c *cli, dir, store, job string, args ...string) (*exec.Cmd, *bytes.Buffer, chan error) {
	t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Wait for the first checkpoint to exist: then the job is running.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m, _ := filepath.Glob(filepath.Join(store, "jobs", job, "checkpoints", "[0-9]*")); len(m) > 0 {
			return cmd, &out, done
		}
		select {
		case err := <-done:
			t.Fatalf("ckpt ended before its first checkpoint: %v\n%s", err, out.String())
		case <-time.After(2 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint after 30s")
		}
	}
}

func TestPipelineSignals(t *testing.T) {
	c := buildCLI(t)
	dir := t.TempDir()
	writeSample(t, filepath.Join(dir, "in.csv"), gen.Options{Rows: 300_000, Seed: 9})
	if code, out := c.run(dir, "convert", "in.csv", "ref.jsonl", "--job", "ref"); code != 0 {
		t.Fatalf("reference: exit %d\n%s", code, out)
	}
	store := filepath.Join(dir, ".ckpt")

	t.Run("SIGINT takes a checkpoint and exits 75", func(t *testing.T) {
		c := c.in(t)
		cmd, out, done := startUntilCheckpoint(t, c, dir, filepath.Join(dir, "sig"), defaultJob(t, "convert", filepath.Join(dir, "out.jsonl")), "convert", "in.csv", "out.jsonl", "--store", "sig", "--every", "5000", "--no-progress")
		cmd.Process.Signal(os.Interrupt)
		err := <-done
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
			t.Fatalf("after SIGINT: %v, want exit %d\n%s", err, exitInterrupted, out)
		}
		if !strings.Contains(out.String(), "run the same command again to resume") {
			t.Errorf("message does not say how to resume:\n%s", out)
		}
		code, msg := c.run(dir, "convert", "in.csv", "out.jsonl", "--store", "sig")
		if code != 0 || !strings.Contains(msg, "resumed from checkpoint") {
			t.Fatalf("resume: exit %d\n%s", code, msg)
		}
		sameFile(t, filepath.Join(dir, "out.jsonl"), filepath.Join(dir, "ref.jsonl"))
	})

	t.Run("SIGTERM too", func(t *testing.T) {
		c := c.in(t)
		cmd, out, done := startUntilCheckpoint(t, c, dir, filepath.Join(dir, "term"), defaultJob(t, "convert", filepath.Join(dir, "term.jsonl")), "convert", "in.csv", "term.jsonl", "--store", "term", "--every", "5000", "--no-progress")
		cmd.Process.Signal(syscall.SIGTERM)
		err := <-done
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
			t.Fatalf("after SIGTERM: %v, want exit %d\n%s", err, exitInterrupted, out)
		}
		if code, msg := c.run(dir, "convert", "in.csv", "term.jsonl", "--store", "term"); code != 0 {
			t.Fatalf("resume: exit %d\n%s", code, msg)
		}
		sameFile(t, filepath.Join(dir, "term.jsonl"), filepath.Join(dir, "ref.jsonl"))
	})

	t.Run("a second run of the same job is refused", func(t *testing.T) {
		c := c.in(t)
		cmd, out, done := startUntilCheckpoint(t, c, dir, store, defaultJob(t, "convert", filepath.Join(dir, "busy.jsonl")), "convert", "in.csv", "busy.jsonl", "--every", "5000", "--no-progress")
		code, msg := c.run(dir, "convert", "in.csv", "busy.jsonl")
		cmd.Process.Kill()
		<-done
		if code != exitLocked || !strings.Contains(msg, "pid "+strconv.Itoa(cmd.Process.Pid)) {
			t.Fatalf("second run: exit %d, want %d naming pid %d\n%s\nfirst run:\n%s", code, exitLocked, cmd.Process.Pid, msg, out)
		}
		// The first one died holding the lock; the next run takes over.
		if code, msg := c.run(dir, "convert", "in.csv", "busy.jsonl"); code != 0 {
			t.Fatalf("run after the holder died: exit %d\n%s", code, msg)
		}
		sameFile(t, filepath.Join(dir, "busy.jsonl"), filepath.Join(dir, "ref.jsonl"))
	})
}

func TestPipelineInputChecks(t *testing.T) {
	c := buildCLI(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "in.csv")
	writeSample(t, in, gen.Options{Rows: 100_000, Seed: 11})

	t.Run("changed input is refused, --restart starts over", func(t *testing.T) {
		c := c.in(t)
		cmd, _, done := startUntilCheckpoint(t, c, dir, filepath.Join(dir, "chg"), defaultJob(t, "convert", filepath.Join(dir, "chg.jsonl")), "convert", "in.csv", "chg.jsonl", "--store", "chg", "--every", "5000", "--no-progress")
		cmd.Process.Kill()
		<-done
		f, err := os.OpenFile(in, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, "999999,x,y,1,1,,true,2026-01-01\n")
		f.Close()
		code, msg := c.run(dir, "convert", "in.csv", "chg.jsonl", "--store", "chg")
		if code != exitError || !strings.Contains(msg, "input changed") || !strings.Contains(msg, "--restart") {
			t.Fatalf("resume on changed input: exit %d\n%s", code, msg)
		}
		if code, msg := c.run(dir, "convert", "in.csv", "chg.jsonl", "--store", "chg", "--restart"); code != 0 {
			t.Fatalf("--restart: exit %d\n%s", code, msg)
		}
		if code, msg := c.run(dir, "convert", "in.csv", "chgref.jsonl", "--store", "chg"); code != 0 {
			t.Fatalf("reference: exit %d\n%s", code, msg)
		}
		sameFile(t, filepath.Join(dir, "chg.jsonl"), filepath.Join(dir, "chgref.jsonl"))
	})

	t.Run("bad records", func(t *testing.T) {
		c := c.in(t)
		bad := filepath.Join(dir, "bad.csv")
		if err := os.WriteFile(bad, []byte("a,b\n1,2\n3,x\"y\n5,6,7\n8,9\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		code, msg := c.run(dir, "convert", "bad.csv", "bad.jsonl")
		if code != exitError || !strings.Contains(msg, "bad.csv:3:4") || !strings.Contains(msg, "--on-error") {
			t.Fatalf("fail policy: exit %d, want an error naming bad.csv:3:4\n%s", code, msg)
		}
		code, msg = c.run(dir, "convert", "bad.csv", "skip.jsonl", "--on-error", "skip")
		if code != 0 || !strings.Contains(msg, "skipped 2 bad records") {
			t.Fatalf("skip policy: exit %d\n%s", code, msg)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, "skip.jsonl")); string(got) != "{\"a\":\"1\",\"b\":\"2\"}\n{\"a\":\"8\",\"b\":\"9\"}\n" {
			t.Fatalf("skip output: %q", got)
		}
		code, msg = c.run(dir, "convert", "bad.csv", "dl.jsonl", "--on-error", "dead-letter")
		if code != 0 || !strings.Contains(msg, "wrote 2 bad records to") {
			t.Fatalf("dead-letter policy: exit %d\n%s", code, msg)
		}
		f, err := os.Open(filepath.Join(dir, "dl.jsonl.rejects.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var lines []string
		for sc := bufio.NewScanner(f); sc.Scan(); {
			lines = append(lines, sc.Text())
		}
		if len(lines) != 2 || !strings.Contains(lines[0], `"line":3,"column":4`) || !strings.Contains(lines[0], `"record":"3,x\"y"`) ||
			!strings.Contains(lines[1], `"line":4`) || !strings.Contains(lines[1], `"record":"5,6,7"`) {
			t.Fatalf("dead letters:\n%s", strings.Join(lines, "\n"))
		}
	})

	t.Run("usage errors", func(t *testing.T) {
		c := c.in(t)
		for _, args := range [][]string{
			{"convert", "in.csv"},
			{"convert", "in.csv", "out.txt"},
			{"convert", "in.csv", "out.jsonl", "--on-error", "ignore"},
			{"convert", "in.csv", "out.jsonl", "--every-bytes", "lots"},
			{"aggregate", "in.csv", "out.csv", "--agg", "count"},
			{"aggregate", "in.csv", "out.csv", "--group-by", "city", "--agg", "median:amount"},
		} {
			if code, msg := c.run(dir, args...); code != exitUsage {
				t.Errorf("%v: exit %d, want %d\n%s", args, code, exitUsage, msg)
			}
		}
		if code, msg := c.run(dir, "convert", "missing.csv", "out.jsonl"); code != exitError || !strings.Contains(msg, "missing.csv") {
			t.Errorf("missing input: exit %d\n%s", code, msg)
		}
	})
}
