package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ckptdev/ckpt/convert"
	"github.com/ckptdev/ckpt/internal/testenv"
	"github.com/ckptdev/ckpt/pipeline"
)

// The test runs the example's workers as real processes: this test
// binary, re-executed with FLEET_CHILD set, runs main with the arguments
// after the program name. FLEET_DIE_AT makes a worker kill itself
// (SIGKILL) once a conversion has read that many records.
func TestMain(m *testing.M) {
	if os.Getenv("FLEET_CHILD") != "" {
		if n, _ := strconv.ParseInt(os.Getenv("FLEET_DIE_AT"), 10, 64); n > 0 {
			progressHook = func(p pipeline.Progress) {
				if p.Records >= n {
					syscall.Kill(os.Getpid(), syscall.SIGKILL)
				}
			}
		}
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// A worker killed in the middle of a file is taken over by another, which
// resumes the conversion from the dead one's last checkpoint; the output
// is byte for byte that of an uninterrupted conversion.
func TestTakeOverResumesConversion(t *testing.T) {
	if testing.Short() {
		t.Skip("runs worker processes; not with -short")
	}
	d := t.TempDir()
	if err := os.MkdirAll(filepath.Join(d, "in"), 0o755); err != nil {
		t.Fatal(err)
	}
	const rows = 200000
	for i, name := range []string{"a", "b"} {
		if err := writeInput(filepath.Join(d, "in", name+".csv"), i, rows); err != nil {
			t.Fatal(err)
		}
	}
	env := append(os.Environ(), "FLEET_CHILD=1", "FLEET_DIR="+d, "CKPT_STORE="+filepath.Join(d, "store"), "CKPT_EVENTS="+testenv.NewPostgresDatabase(t))
	start := func(extra []string, args ...string) (*exec.Cmd, *lockedBuffer) {
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(env, extra...)
		out := &lockedBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, out
	}
	workerArgs := []string{"workers", "--parallel", "1", "--heartbeat", "200ms", "--dead-after", "1s", "--log-level", "info"}
	doomed, doomedOut := start([]string{"FLEET_DIE_AT=120000"}, workerArgs...)
	sub, subOut := start(nil, "assets", "materialize", "--executor", "river")
	err := doomed.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the doomed worker ended with %v, not SIGKILL:\n%s", err, doomedOut)
	}
	rescuer, rescuerOut := start(nil, workerArgs...)
	defer func() {
		rescuer.Process.Signal(syscall.SIGTERM)
		rescuer.Wait()
	}()
	done := make(chan error, 1)
	go func() { done <- sub.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("materialize: %v\n%s\nrescuer:\n%s", err, subOut, rescuerOut)
		}
	case <-time.After(5 * time.Minute):
		sub.Process.Kill()
		t.Fatalf("the run did not end:\n%s\nrescuer:\n%s", subOut, rescuerOut)
	}
	if !strings.Contains(rescuerOut.String(), "conversion resumed") {
		t.Errorf("the rescuing worker did not resume a conversion:\n%s", rescuerOut)
	}
	for _, name := range []string{"a", "b"} {
		want := filepath.Join(t.TempDir(), name+".jsonl")
		cfg := pipeline.Config{Job: "ref", Params: map[string]string{"to": "jsonl"}}
		cfg.Store, cfg.NoSignals = filepath.Join(t.TempDir(), "store"), true
		if _, err := convert.Run(context.Background(), convert.Options{Input: filepath.Join(d, "in", name+".csv"), Output: want, InferTypes: true, Pipeline: cfg}); err != nil {
			t.Fatal(err)
		}
		wb, err := os.ReadFile(want)
		if err != nil {
			t.Fatal(err)
		}
		gb, err := os.ReadFile(filepath.Join(d, "out", name+".jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(gb, wb) {
			t.Errorf("%s.jsonl: %d bytes differ from the uninterrupted conversion's %d", name, len(gb), len(wb))
		}
	}
}

// lockedBuffer is a bytes.Buffer that a running process writes to while
// the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
