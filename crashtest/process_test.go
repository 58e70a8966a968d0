package crashtest

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// alive reports whether pid is a running process (not gone, not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] != "Z" && fields[0] != "X"
}

// A kill takes the program's children with it: the program announces a
// phase once its child is running, and is killed right there.
func TestKillTakesTheProcessGroup(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	dir := t.TempDir()
	h := &harness{cfg: Config{
		Command: []string{"sh", "-c", "sleep 600 & echo $! > child.pid; echo ready >&3; read x <&4; wait"},
		Grace:   DefaultGrace,
	}}
	r, err := h.execute(context.Background(), dir, runSpec{phase: "ready", phaseHit: 1, signal: syscall.SIGKILL, timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Interrupted || r.Signal != "KILL" || len(r.Phases) != 1 {
		t.Fatalf("run = %+v", r)
	}
	b, err := os.ReadFile(filepath.Join(dir, "child.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	// SIGKILL is final, but the child's exit is asynchronous: wait for it,
	// with a deadline far beyond any scheduling delay.
	deadline := time.Now().Add(30 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the program's child %d survived the kill", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A program that ignores SIGTERM is killed after the grace period.
func TestTermEscalatesToKill(t *testing.T) {
	h := &harness{cfg: Config{
		Command: []string{"sh", "-c", "trap '' TERM; echo ready >&3; read x <&4; while :; do sleep 1; done"},
		Grace:   100 * time.Millisecond,
	}}
	r, err := h.execute(context.Background(), t.TempDir(), runSpec{phase: "ready", phaseHit: 1, signal: syscall.SIGTERM, timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Interrupted || !r.Escalated || r.Signal != "TERM" || r.TimedOut {
		t.Fatalf("run = %+v", r)
	}
}

// A run over its timeout is killed and says so.
func TestRunTimeout(t *testing.T) {
	h := &harness{cfg: Config{Command: []string{"sh", "-c", "while :; do sleep 1; done"}, Grace: DefaultGrace}}
	r, err := h.execute(context.Background(), t.TempDir(), runSpec{timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !r.TimedOut || r.Interrupted {
		t.Fatalf("run = %+v", r)
	}
}
