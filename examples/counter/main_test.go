package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Ctrl-C stops the counter with exit code 75 after releasing its job: the
// next run finds the lock released, not left behind by a holder that is
// gone (on S3, a lease left behind would refuse every run until it
// expired).
func TestInterruptReleasesTheJob(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and signals the example: skipped with -short")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go tool is not on PATH")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "counter")
	if out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	checkpoints := func() int {
		m, _ := filepath.Glob(filepath.Join(dir, ".ckpt", "jobs", "counter", "checkpoints", "[0-9]*"))
		return len(m)
	}
	for run := range 2 {
		cmd := exec.Command(bin)
		cmd.Dir = dir
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		// Signal it once it has taken a checkpoint of its own.
		before := checkpoints()
		for checkpoints() == before {
			select {
			case err := <-done:
				t.Fatalf("run %d ended before a checkpoint: %v\n%s%s", run, err, &stdout, &stderr)
			case <-time.After(2 * time.Millisecond):
			}
		}
		cmd.Process.Signal(os.Interrupt)
		err := <-done
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 75 {
			t.Fatalf("run %d after Ctrl-C: %v, want exit code 75\n%s%s", run, err, &stdout, &stderr)
		}
		if strings.Contains(stderr.String(), "holder is gone") {
			t.Fatalf("run %d found the job's lock left behind by the previous run:\n%s", run, &stderr)
		}
	}
}
