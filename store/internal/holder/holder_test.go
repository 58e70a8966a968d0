package holder

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/ckptdev/ckpt/store"
)

func TestGone(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start a process to watch: %v", err)
	}
	live := store.Owner{PID: cmd.Process.Pid, Host: host, Since: time.Now()}
	if Gone(live) {
		t.Fatalf("a live process is reported gone")
	}
	if Gone(store.Owner{PID: cmd.Process.Pid, Host: host + "-other"}) {
		t.Fatalf("a process of another host is reported gone")
	}
	if start, ok := startTime(cmd.Process.Pid); ok {
		live.Start = start
		if Gone(live) {
			t.Fatalf("a live process with its start time recorded is reported gone")
		}
		// The pid now belongs to a process that started at another time
		// than the holder: it was reused.
		if !Gone(store.Owner{PID: cmd.Process.Pid, Host: host, Start: start.Add(-time.Hour)}) {
			t.Errorf("a pid whose process started at another time than the holder is not reported gone")
		}
	}
	if me := Stamp(store.Owner{PID: os.Getpid(), Host: host}); me.Start.IsZero() {
		if _, ok := startTime(os.Getpid()); ok {
			t.Errorf("Stamp did not record this process's start time")
		}
	} else if Gone(me) {
		t.Errorf("this process, stamped, is reported gone")
	}
	cmd.Process.Kill()
	cmd.Wait()
	if !Gone(live) {
		t.Fatalf("a process killed and reaped is not reported gone")
	}
	if Gone(store.Owner{PID: os.Getpid(), Host: host}) {
		t.Fatalf("this process is reported gone")
	}
}
