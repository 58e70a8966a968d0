package main

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ckptdev/ckpt/internal/gen"
	"github.com/ckptdev/ckpt/internal/testenv"
)

// TestPipelineCLI's crash test with checkpoints in S3 (a versitygw server
// on loopback): the real ckpt binary killed with SIGKILL at random moments
// until it completes, its output compared with an uninterrupted run's.

// s3CrashUntilDone is crashUntilDone for a store whose lock outlives a
// killed holder: the lease of a run killed with SIGKILL stays in the
// bucket until its TTL runs out. The next run, started at once, must see
// that the holder's process is gone and take the job over without
// waiting: a run refused as locked fails the test.
func (c *cli) s3CrashUntilDone(dir string, seed uint64, window time.Duration, args ...string) (kills int) {
	c.t.Helper()
	r := rand.New(rand.NewPCG(seed, 2))
	deadline := time.Now().Add(10 * time.Minute)
	for attempt := 0; ; attempt++ {
		if time.Now().After(deadline) {
			c.t.Fatalf("no run finished in 10 minutes (%d kills)", kills)
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
		timer := time.NewTimer(time.Duration(r.Int64N(int64(window))))
		var err error
		killed := false
		select {
		case err = <-done:
		case <-timer.C:
			cmd.Process.Kill() // SIGKILL
			err = <-done
			killed = true
		}
		timer.Stop()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return kills
		case errors.As(err, &ee) && ee.ExitCode() == exitLocked:
			c.t.Fatalf("run %d, started right after run %d was killed, was refused: its lease was not taken over at once\n%s", attempt, attempt-1, out.String())
		case killed && errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL:
			kills++
			window += window / 8
		default:
			c.t.Fatalf("run %d of ckpt %v failed: %v\n%s", attempt, args, err, out.String())
		}
	}
}

func TestPipelineCLIS3Store(t *testing.T) {
	if testing.Short() {
		t.Skip("a kill -9 loop: skipped with -short")
	}
	bucket := testenv.S3(t)
	// The child processes find their credentials where any AWS program
	// does: in the standard environment variables.
	for _, kv := range bucket.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	c := buildCLI(t)
	rows, minKills := int64(60_000), 8
	if longTests() {
		rows, minKills = 1_000_000, 40
	}
	dir := t.TempDir()
	writeSample(t, filepath.Join(dir, "in.csv"), gen.Options{Rows: rows, Seed: 31})
	if code, out := c.run(dir, "convert", "in.csv", "ref.jsonl", "--store", "ref-store"); code != 0 {
		t.Fatalf("uninterrupted run: exit %d\n%s", code, out)
	}

	// The default lease of half a minute, and no waiting for it: each run
	// must take over its killed predecessor's lease at once.
	url := bucket.URL("ckpt", "lock_wait=false", "request_timeout=10s")
	args := []string{"convert", "in.csv", "out.jsonl", "--store", url, "--every", "3000", "--interval", "5ms", "--no-progress"}
	kills := c.s3CrashUntilDone(dir, 1, 300*time.Millisecond, args...)
	for kills < minKills {
		// Finished too soon: start over and kill more.
		if err := os.Remove(filepath.Join(dir, "out.jsonl")); err != nil {
			t.Fatal(err)
		}
		kills += c.s3CrashUntilDone(dir, uint64(kills), 200*time.Millisecond, append(args, "--restart")...)
	}
	t.Logf("%d kills, each run restarted at once", kills)
	sameFile(t, filepath.Join(dir, "out.jsonl"), filepath.Join(dir, "ref.jsonl"))

	// The job is done, and its checkpoints in the bucket verify.
	code, out := c.run(dir, args...)
	if code != 0 || !strings.Contains(out, "already finished") {
		t.Fatalf("rerun of a finished job: exit %d\n%s", code, out)
	}
	if code, out := c.run(dir, "checkpoints", "verify", "--store", url, "--job", defaultJob(t, "convert", filepath.Join(dir, "out.jsonl"))); code != 0 {
		t.Fatalf("checkpoints verify: exit %d\n%s", code, out)
	}
}
