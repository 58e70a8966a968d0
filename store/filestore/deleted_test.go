//go:build unix

package filestore_test

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/store"
)

// A job's directory deleted under the holder of its lock: the holder
// notices at its next check or write and stops with store.ErrLeaseLost,
// writes recreate nothing, and a second opener can take the job.
func TestLockDirectoryDeletedUnderTheHolder(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	st := openStore(t, dir, nil)
	l, err := st.Lock(ctx, "jobs/j/LOCK", store.Owner{ID: "first"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(ctx)
	if err := st.Put(ctx, "jobs/j/blobs/a", strings.NewReader("a")); err != nil {
		t.Fatalf("Put below the held lock: %v", err)
	}
	if err := l.Check(ctx); err != nil {
		t.Fatalf("Check of a held lease: %v", err)
	}

	jobDir := filepath.Join(dir, "jobs", "j")
	if err := os.RemoveAll(jobDir); err != nil {
		t.Fatal(err)
	}
	if err := l.Check(ctx); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("Check after the job's directory was deleted: %v, want ErrLeaseLost", err)
	}
	for _, name := range []string{"jobs/j/checkpoints/00000000000000000001", "jobs/j/blobs/b", "jobs/j/LOCKED"} {
		if err := st.Create(ctx, name, strings.NewReader("x")); !errors.Is(err, store.ErrLeaseLost) {
			t.Errorf("Create %s: %v, want ErrLeaseLost", name, err)
		}
	}
	if _, err := os.Stat(jobDir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the job's directory was recreated behind its lock: %v", err)
	}
	// Other jobs are not affected.
	if err := st.Put(ctx, "jobs/k/blobs/a", strings.NewReader("a")); err != nil {
		t.Fatalf("Put of another job: %v", err)
	}

	// The second opener may be this process, through the same store.
	st2 := st
	l2, err := st2.Lock(ctx, "jobs/j/LOCK", store.Owner{ID: "second"})
	if err != nil {
		t.Fatalf("a second opener cannot take the job: %v", err)
	}
	defer l2.Release(ctx)
	if err := st2.Create(ctx, "jobs/j/checkpoints/00000000000000000001", strings.NewReader("second")); err != nil {
		t.Fatal(err)
	}
	// The first holder stays out, though the directory exists again.
	if err := l.Check(ctx); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("Check of the first lease after a second holder took the job: %v", err)
	}
	if err := st2.Put(ctx, "jobs/j/blobs/c", strings.NewReader("c")); err != nil {
		t.Fatalf("Put by the second holder, with the first's lost lease not released: %v", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatalf("Release of the lost lease: %v", err)
	}
	if err := l2.Check(ctx); err != nil {
		t.Fatalf("the second holder lost its lease when the first released: %v", err)
	}
}

// The same through the engine: the job's next checkpoint fails with
// store.ErrLeaseLost, and a second run takes the job.
func TestJobStopsWhenItsDirectoryIsDeleted(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	cfg := ckpt.Config{Store: dir, NoSignals: true, Logger: slog.New(slog.DiscardHandler)}
	job, err := ckpt.Open[int](ctx, "j", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer job.Close()
	if _, err := job.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	jobDir := filepath.Join(dir, "jobs", "j")
	if err := os.RemoveAll(jobDir); err != nil {
		t.Fatal(err)
	}
	if _, err := job.Checkpoint(ctx); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("Checkpoint after the job's directory was deleted: %v, want ErrLeaseLost", err)
	}
	if _, err := os.Stat(jobDir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the job's directory was recreated: %v", err)
	}
	second, err := ckpt.Open[int](ctx, "j", cfg)
	if err != nil {
		t.Fatalf("a second run cannot take the job: %v", err)
	}
	defer second.Close()
	if _, err := second.Checkpoint(ctx); err != nil {
		t.Fatalf("the second run's checkpoint: %v", err)
	}
}
