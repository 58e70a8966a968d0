//go:build linux

package aggregate_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ckptdev/ckpt/aggregate"
	"github.com/ckptdev/ckpt/pipeline"
)

const (
	childEnv  = "CKPT_AGGREGATE_CHILD"
	memoryEnv = "CKPT_AGGREGATE_MEMORY"
)

// TestKilledChild is the process that TestKilledAggregationIsByteIdentical
// kills: one run of the aggregation in the directory named by childEnv.
func TestKilledChild(t *testing.T) {
	dir := os.Getenv(childEnv)
	if dir == "" {
		t.Skip("the child process of TestKilledAggregationIsByteIdentical; runs only as that")
	}
	// A run killed after its final checkpoint, before the process
	// exited, finished the job: this run finds it done, and the output
	// complete, as the CLI reports it.
	opts := aggOptions(dir, 1500)
	if m := os.Getenv(memoryEnv); m != "" {
		// Many groups past a small budget: the keyed state spills.
		opts.Pipeline.Memory, _ = strconv.ParseInt(m, 10, 64)
		opts.Pipeline.LocalDir = filepath.Join(dir, "local")
		opts.Pipeline.Every.Records = 700
	}
	_, err := aggregate.Run(context.Background(), opts)
	if err != nil && !errors.Is(err, pipeline.ErrAlreadyDone) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(0)
}

// An aggregation killed with SIGKILL at random moments, over and over,
// ends with the same bytes as one uninterrupted run: every resume starts
// from exact sums, minima and maxima.
func TestKilledAggregationIsByteIdentical(t *testing.T) {
	if testing.Short() {
		t.Skip("a kill loop: runs without -short")
	}
	rows, minKills := 60_000, 12
	if os.Getenv("CKPT_LONG") == "1" {
		rows, minKills = 400_000, 60
	}
	killLoop(t, arithInput(rows, 3), minKills)
}

// The same with thousands of groups and a memory budget they exceed: the
// groups spill to local runs, are merged, and are read back sorted.
func TestKilledManyGroupsAggregationIsByteIdentical(t *testing.T) {
	if testing.Short() {
		t.Skip("a kill loop: runs without -short")
	}
	rows, minKills := 60_000, 12
	if os.Getenv("CKPT_LONG") == "1" {
		rows, minKills = 400_000, 60
	}
	t.Setenv(memoryEnv, "65536")
	killLoop(t, manyGroupsInput(rows, 5000, 3), minKills)
}

func killLoop(t *testing.T, in string, minKills int) {
	rows := strings.Count(in, "\n")
	ref, dir := t.TempDir(), t.TempDir()
	for _, d := range []string{ref, dir} {
		if err := os.WriteFile(filepath.Join(d, "in.csv"), []byte(in), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The reference: no checkpoint before the end, no budget.
	if _, err := aggregate.Run(context.Background(), aggOptions(ref, 0)); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(ref, "out.csv"))
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(uint64(rows), 7))
	window, kills := 100*time.Millisecond, 0
	for attempt := 0; ; attempt++ {
		if attempt > 1000 {
			t.Fatalf("no run finished after %d attempts", attempt)
		}
		finished, killed := runKilled(t, dir, time.Duration(r.Int64N(int64(window))))
		if killed {
			kills++
			window += window / 16
			continue
		}
		if finished && kills >= minKills {
			break
		}
		// Finished too soon: start the job over, and kill more.
		if err := os.Remove(filepath.Join(dir, "out.csv")); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(filepath.Join(dir, "store")); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d kills", kills)
	got, err := os.ReadFile(filepath.Join(dir, "out.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("after %d kills the output differs from the uninterrupted run's:\n%s\nwant\n%s", kills, got, want)
	}
}

// runKilled runs the child in dir and sends it SIGKILL after delay,
// unless it finished before.
func runKilled(t *testing.T, dir string, delay time.Duration) (finished, killed bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("child failed: %v\n%s", err, out.String())
		}
		return true, false
	case <-time.After(delay):
		cmd.Process.Kill() // SIGKILL
		err := <-done
		if err == nil {
			return true, false // it finished just before the kill
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("child failed: %v\n%s", err, out.String())
		}
		return false, true
	}
}
