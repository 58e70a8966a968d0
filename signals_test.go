//go:build linux

package ckpt_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/ckptdev/ckpt"
)

// The signal tests run a job in a child process (this test binary,
// selected by signalChildEnv), send it real signals, and look at how it
// ended.

const signalChildEnv = "CKPT_SIGNAL_CHILD_STORE"

// TestSignalChild is the child process of the signal tests: it opens a
// job with the default signal handling, logs as JSON on stdout, says
// "stopping" once a shutdown signal has reached the job, and then waits
// for its standard input to close. It never takes the shutdown
// checkpoint: only a second signal can end it early.
func TestSignalChild(t *testing.T) {
	dir := os.Getenv(signalChildEnv)
	if dir == "" {
		t.Skip("the child process of the signal tests; runs only as that")
	}
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	j, err := ckpt.Open[counterState](context.Background(), "signals", ckpt.Config{Store: dir, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	os.Stdout.WriteString("ready\n")
	go func() {
		for !j.Stopping() {
			time.Sleep(time.Millisecond) // polls a flag in the child; the parent waits on what it prints
		}
		os.Stdout.WriteString("stopping\n")
	}()
	io.Copy(io.Discard, os.Stdin)
}

type signalChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	exit  chan error
}

// startSignalChild starts the child, through a shell that ignores SIGINT
// first when ignoreInt is set, and waits until its job is open.
func startSignalChild(t *testing.T, ignoreInt bool) *signalChild {
	t.Helper()
	c := &signalChild{lines: make(chan string, 16), exit: make(chan error, 1)}
	args := []string{"-test.run=^TestSignalChild$", "-test.count=1"}
	if ignoreInt {
		// A disposition of "ignored" survives exec: the test binary
		// starts with SIGINT ignored, as under nohup.
		c.cmd = exec.Command("/bin/sh", append([]string{"-c", `trap "" INT; exec "$0" "$@"`, os.Args[0]}, args...)...)
	} else {
		c.cmd = exec.Command(os.Args[0], args...)
	}
	c.cmd.Env = append(os.Environ(), signalChildEnv+"="+t.TempDir())
	c.cmd.Stderr = os.Stderr
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		c.stdin.Close()
	})
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		c.exit <- c.cmd.Wait()
	}()
	c.expect(t, "ready")
	return c
}

// expect waits for the child to print want, and returns the log lines
// printed before it.
func (c *signalChild) expect(t *testing.T, want string) []string {
	t.Helper()
	var before []string
	timeout := time.After(60 * time.Second) // a hung child, not a timing assertion
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				t.Fatalf("the child ended before printing %q (after %q)", want, before)
			}
			if line == want {
				return before
			}
			before = append(before, line)
		case <-timeout:
			t.Fatalf("the child did not print %q in 60s (printed %q)", want, before)
		}
	}
}

func (c *signalChild) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := c.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("send %v: %v", sig, err)
	}
}

// wantKilledBy waits for the child to end and checks that sig killed it.
func (c *signalChild) wantKilledBy(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if ws := c.waitEnd(t); !ws.Signaled() || ws.Signal() != sig {
		t.Fatalf("the child ended with %v, want killed by %v", ws, sig)
	}
}

// waitEnd waits for the child to end, and returns how it ended.
func (c *signalChild) waitEnd(t *testing.T) syscall.WaitStatus {
	t.Helper()
	var err error
	timeout := time.After(60 * time.Second) // a hung child, not a timing assertion
wait:
	for {
		select {
		case <-c.lines:
		case err = <-c.exit:
			break wait
		case <-timeout:
			t.Fatalf("the child is still running 60s after the second signal: the signal was lost")
		}
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("the child ended with %v, want ended by a signal", err)
	}
	return ee.Sys().(syscall.WaitStatus)
}

// A second signal ends the process at once, also when it is sent
// immediately after the first, before the job has seen either. Back to
// back, the two are SIGINT then SIGTERM: two signals of one kind sent
// before the first is taken merge into one, in the kernel and in the Go
// runtime, so no program can see two. Pending together, the two may reach
// the program in either order (seen under load), so whichever comes second
// is the one that ends the process.
func TestSecondSignalEndsTheProcess(t *testing.T) {
	if os.Getenv(signalChildEnv) != "" {
		t.Skip("in the child process")
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String()+" later", func(t *testing.T) {
			c := startSignalChild(t, false)
			c.signal(t, sig)
			c.expect(t, "stopping") // alive after the first
			c.signal(t, sig)
			c.wantKilledBy(t, sig)
		})
	}
	// Several children: a lost second signal is a race that one child
	// might win by chance.
	for i := range 3 {
		t.Run(fmt.Sprintf("back to back %d", i+1), func(t *testing.T) {
			c := startSignalChild(t, false)
			c.signal(t, syscall.SIGINT)
			c.signal(t, syscall.SIGTERM)
			if ws := c.waitEnd(t); !ws.Signaled() || (ws.Signal() != syscall.SIGTERM && ws.Signal() != syscall.SIGINT) {
				t.Fatalf("the child ended with %v, want killed by the second signal", ws)
			}
		})
	}
}

// A process started with SIGINT ignored (a background job of a script,
// nohup) handles it all the same: ckpt's jobs are stopped with SIGINT by
// scripts that start them in the background, and a second SIGINT ends the
// process at once. The ignored disposition is restored before the second
// is re-raised, so the process exits with 128+SIGINT, as a shell reports a
// death by that signal.
func TestIgnoredInterruptIsHandled(t *testing.T) {
	if os.Getenv(signalChildEnv) != "" {
		t.Skip("in the child process")
	}
	c := startSignalChild(t, true)
	c.signal(t, syscall.SIGINT)
	logs := c.expect(t, "stopping")
	var got []string
	for _, l := range logs {
		var rec struct{ Msg, Signal string }
		if json.Unmarshal([]byte(l), &rec) == nil && rec.Signal != "" {
			got = append(got, rec.Signal)
		}
	}
	if len(got) != 1 || got[0] != syscall.SIGINT.String() {
		t.Fatalf("the job logged signals %q, want only %q", got, syscall.SIGINT.String())
	}
	c.signal(t, syscall.SIGINT)
	c.wantEndedBy(t, syscall.SIGINT)
}

// wantEndedBy waits for the child to end and checks that sig ended it:
// killed by it, or exited with 128+sig where its disposition was ignored.
func (c *signalChild) wantEndedBy(t *testing.T, sig syscall.Signal) {
	t.Helper()
	ws := c.waitEnd(t)
	if (ws.Signaled() && ws.Signal() == sig) || (ws.Exited() && ws.ExitStatus() == 128+int(sig)) {
		return
	}
	t.Fatalf("the child ended with %v, want ended by %v", ws, sig)
}
