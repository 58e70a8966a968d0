package ui_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/ui"
)

// TestMain lets the tests run a job in a process of its own: the test
// binary, started with CKPT_UI_TEST_JOB=MODE:DIR, runs job "held" in the
// store DIR, prints "ready" once it has a checkpoint, then either waits
// to be killed (MODE hold) or advances until a signal interrupts it
// (MODE advance).
func TestMain(m *testing.M) {
	if spec := os.Getenv("CKPT_UI_TEST_JOB"); spec != "" {
		if err := childJob(spec); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func childJob(spec string) error {
	mode, dir, _ := strings.Cut(spec, ":")
	ctx := context.Background()
	j, err := ckpt.Open[int](ctx, "held", ckpt.Config{Store: dir, NoSignals: mode == "hold", Logger: quiet})
	if err != nil {
		return err
	}
	defer j.Close()
	if err := j.Advance(ctx, 10, 100); err != nil {
		return err
	}
	if _, err := j.Checkpoint(ctx); err != nil {
		return err
	}
	fmt.Println("ready")
	if mode == "hold" {
		select {}
	}
	// Paced so as not to spin a shared machine; the signal, not the
	// pace, ends the loop.
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for range tick.C {
		if err := j.Advance(ctx, 1, 10); err != nil {
			if errors.Is(err, ckpt.ErrInterrupted) {
				return nil
			}
			return err
		}
	}
	return nil
}

func startChild(t *testing.T, mode, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "CKPT_UI_TEST_JOB="+mode+":"+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("child job: %q, %v", line, err)
	}
	return cmd
}

func heldJob(t *testing.T, f *fixture) ui.JobSummary {
	t.Helper()
	var jobs []ui.JobSummary
	if err := json.Unmarshal([]byte(f.get(t, "/api/jobs", http.StatusOK)), &jobs); err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		if j.Job == "held" {
			return j
		}
	}
	t.Fatalf("no job held in %+v", jobs)
	return ui.JobSummary{}
}

// A job's process is seen running while it lives, and as having died
// once it is killed with SIGKILL, the lock record naming it still.
func TestJobOfAKilledProcess(t *testing.T) {
	f := newFixture(t, ui.Options{})
	cmd := startChild(t, "hold", f.dir)
	pid := "pid " + strconv.Itoa(cmd.Process.Pid)
	if j := heldJob(t, f); j.State != ui.JobRunning || !strings.Contains(j.Holder, pid+" ") {
		t.Errorf("a live job: %s held by %q, want running held by %s", j.State, j.Holder, pid)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if j := heldJob(t, f); j.State != ui.JobDied || !strings.Contains(j.Holder, pid+" ") {
		t.Errorf("a killed job: %s, %q; want died, naming %s", j.State, j.Holder, pid)
	}
}

// A job stopped by SIGINT took a shutdown checkpoint: interrupted.
func TestJobInterrupted(t *testing.T) {
	f := newFixture(t, ui.Options{})
	cmd := startChild(t, "advance", f.dir)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the interrupted job's process: %v", err)
	}
	if j := heldJob(t, f); j.State != ui.JobInterrupted || j.Holder != "" {
		t.Errorf("a job interrupted by SIGINT: %s, %q; want interrupted", j.State, j.Holder)
	}
}
