//go:build unix

package filestore_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/ckptdev/ckpt/store"
)

// holdLockInChild starts a process that takes lock name in the store at
// dir and holds it; it returns the child and the token it got.
func holdLockInChild(t *testing.T, dir, name string) (*child, uint64) {
	t.Helper()
	c := startChild(t, "hold-lock", "CKPT_TEST_DIR="+dir, "CKPT_TEST_LOCK="+name)
	var token uint64
	if line := c.line(t); !scan(line, "locked %d", &token) {
		t.Fatalf("child: unexpected line %q", line)
	}
	return c, token
}

func TestLockHeldByAnotherProcessIsRefused(t *testing.T) {
	dir := t.TempDir()
	const name = "jobs/j/LOCK"
	c, childToken := holdLockInChild(t, dir, name)
	pid := c.cmd.Process.Pid
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}

	var logs logBuffer
	st := openStore(t, dir, logs.logger())
	for range 2 {
		_, err := st.Lock(t.Context(), name, store.Owner{ID: "parent", PID: os.Getpid(), Host: host})
		if !errors.Is(err, store.ErrLocked) {
			t.Fatalf("Lock held by process %d: %v, want an error matching store.ErrLocked", pid, err)
		}
		var le *store.LockedError
		if !errors.As(err, &le) {
			t.Fatalf("Lock held by process %d: %v is not a *store.LockedError", pid, err)
		}
		if le.Holder.PID != pid || le.Holder.Host != host || le.Holder.ID != "child-hold-lock" || le.Holder.Since.IsZero() {
			t.Errorf("LockedError.Holder = %+v, want the child: pid %d on %s, with the time it took the lock", le.Holder, pid, host)
		}
		if msg := err.Error(); !strings.Contains(msg, fmt.Sprintf("pid %d on %s", pid, host)) {
			t.Errorf("error %q does not name the holder, pid %d on %s", msg, pid, host)
		}
	}
	if warnings := logs.records(t, slog.LevelWarn); len(warnings) != 0 {
		t.Errorf("refused Locks logged warnings: %v", warnings)
	}

	// The holder dies without releasing: the kernel drops its lock, and
	// the next Lock takes it over.
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	c.cmd.Wait()
	l, err := st.Lock(t.Context(), name, store.Owner{ID: "parent", PID: os.Getpid(), Host: host})
	if err != nil {
		t.Fatalf("Lock after its holder was killed: %v", err)
	}
	defer l.Release(t.Context())
	if l.Token() <= childToken {
		t.Errorf("token %d after the killed holder's %d, want it greater", l.Token(), childToken)
	}
	wantTakeoverWarning(t, &logs, pid, host)
}

// A lock released by its holder is taken without a takeover warning, with a
// greater token.
func TestLockReleasedByAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	const name = "LOCK"
	c, childToken := holdLockInChild(t, dir, name)
	c.stdin.Close()
	if line := c.line(t); line != "released" {
		t.Fatalf("child: unexpected line %q", line)
	}
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("child: %v; its stderr:\n%s", err, c.stderr.buf.String())
	}
	var logs logBuffer
	st := openStore(t, dir, logs.logger())
	l, err := st.Lock(t.Context(), name, store.Owner{ID: "parent"})
	if err != nil {
		t.Fatalf("Lock after its holder released it: %v", err)
	}
	defer l.Release(t.Context())
	if l.Token() <= childToken {
		t.Errorf("token %d after the previous holder's %d, want it greater", l.Token(), childToken)
	}
	if warnings := logs.records(t, slog.LevelWarn); len(warnings) != 0 {
		t.Errorf("taking a released lock logged warnings: %v", warnings)
	}
}

// Lock removes the temporary files that interrupted writes left below the
// lock's directory, and nothing else.
func TestLockRemovesLeftoverTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir, nil)
	put := func(name string) {
		t.Helper()
		if err := st.Put(t.Context(), name, strings.NewReader(name)); err != nil {
			t.Fatalf("Put %s: %v", name, err)
		}
	}
	put("jobs/x/blobs/ab12")
	put("jobs/x/checkpoints/001")
	put("jobs/y/blobs/cd34")
	// What a writer killed inside Put leaves: a temporary file beside
	// the object it was writing.
	leftovers := []string{"jobs/x/blobs/.tmp-123", "jobs/x/checkpoints/.tmp-456", "jobs/x/.tmp-789", "jobs/y/blobs/.tmp-999"}
	for _, p := range leftovers {
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(p)), []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	names, err := st.List(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"jobs/x/blobs/ab12", "jobs/x/checkpoints/001", "jobs/y/blobs/cd34"}; !slices.Equal(names, want) {
		t.Fatalf("List = %q, want %q: temporary files are not objects", names, want)
	}

	l, err := st.Lock(t.Context(), "jobs/x/LOCK", store.Owner{ID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(t.Context())
	// Only job y's own lock holder may remove job y's temporary files: a
	// live writer of job y may own it.
	if temps := tempFiles(t, dir); !slices.Equal(temps, []string{filepath.Join(dir, "jobs", "y", "blobs", ".tmp-999")}) {
		t.Errorf("temporary files after Lock of jobs/x/LOCK: %q, want only job y's", temps)
	}
	for _, name := range []string{"jobs/x/blobs/ab12", "jobs/x/checkpoints/001", "jobs/y/blobs/cd34"} {
		rc, err := st.Get(t.Context(), name)
		if err != nil {
			t.Errorf("Get %s after Lock: %v", name, err)
			continue
		}
		rc.Close()
	}
}

// No write leaves a temporary file behind when it returns, whether it
// succeeded or failed.
func TestWritesLeaveNoTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir, nil)
	errBoom := errors.New("boom")
	const name = "jobs/j/blobs/obj"
	tests := []struct {
		what    string
		write   func() error
		wantErr error
	}{
		{"a Put", func() error { return st.Put(t.Context(), name, strings.NewReader("first")) }, nil},
		{"a Put that replaces", func() error { return st.Put(t.Context(), name, strings.NewReader("second")) }, nil},
		{"a Create", func() error { return st.Create(t.Context(), "jobs/j/new", strings.NewReader("x")) }, nil},
		{"a Create of an existing name", func() error { return st.Create(t.Context(), name, strings.NewReader("third")) }, store.ErrExist},
		{"a Put whose reader fails", func() error {
			return st.Put(t.Context(), name, io.MultiReader(strings.NewReader(strings.Repeat("x", 1<<20)), iotest.ErrReader(errBoom)))
		}, errBoom},
		{"a Put cancelled midway", func() error {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			r := io.MultiReader(strings.NewReader(strings.Repeat("x", 1<<20)), cancelOnRead{cancel}, strings.NewReader(strings.Repeat("y", 1<<20)))
			return st.Put(ctx, name, r)
		}, context.Canceled},
	}
	for _, tc := range tests {
		if err := tc.write(); !errors.Is(err, tc.wantErr) {
			t.Fatalf("%s: %v, want %v", tc.what, err, tc.wantErr)
		}
		wantNoTempFiles(t, dir, tc.what)
	}
	rc, err := st.Get(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if b, _ := io.ReadAll(rc); string(b) != "second" {
		t.Errorf("Get %s = %q after the failed writes, want %q", name, b, "second")
	}
}

// cancelOnRead cancels a context when it is read, and reads nothing.
type cancelOnRead struct{ cancel context.CancelFunc }

func (c cancelOnRead) Read([]byte) (int, error) { c.cancel(); return 0, io.EOF }
