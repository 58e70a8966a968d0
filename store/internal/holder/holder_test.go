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
	since := time.Now().Add(time.Minute) // the lock taken after the process started
	live := store.Owner{PID: cmd.Process.Pid, Host: host, Since: since}
	if Gone(live) {
		t.Fatalf("a live process is reported gone")
	}
	if Gone(store.Owner{PID: cmd.Process.Pid, Host: host + "-other", Since: since}) {
		t.Fatalf("a process of another host is reported gone")
	}
	// A lock taken long before the process with its pid started: the
	// pid was reused.
	if _, ok := startTime(cmd.Process.Pid); ok {
		if !Gone(store.Owner{PID: cmd.Process.Pid, Host: host, Since: time.Now().Add(-time.Hour)}) {
			t.Errorf("a pid that started after the lock was taken is not reported gone")
		}
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
