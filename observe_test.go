package ckpt

import (
	"errors"
	"testing"
	"time"
)

// The helpers the engine calls report commits, failures and restores to
// the observer, and ignore a nil one.
func TestObserveHelpers(t *testing.T) {
	var got []string
	o := ObserverFuncs{
		Committed: func(job string, cp *Checkpoint, took time.Duration) { got = append(got, "committed "+job) },
		Failed:    func(job string, err error, took time.Duration) { got = append(got, "failed "+job+": "+err.Error()) },
		Restore: func(job string, cp *Checkpoint, took time.Duration) {
			if cp == nil {
				got = append(got, "restored "+job+" from the beginning")
			}
		},
	}
	start := time.Now()
	observeRestore(o, "j", nil, start)
	observeCommit(o, "j", &Checkpoint{Seq: 1}, start, nil)
	observeCommit(o, "j", nil, start, errors.New("disk full"))
	observeCommit(nil, "j", nil, start, nil)
	observeRestore(nil, "j", nil, start)
	ObserverFuncs{}.CheckpointCommitted("j", nil, 0) // nil functions are ignored
	want := []string{"restored j from the beginning", "committed j", "failed j: disk full"}
	if len(got) != len(want) {
		t.Fatalf("observer saw %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d: %q, want %q", i, got[i], want[i])
		}
	}
}
