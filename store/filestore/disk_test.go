//go:build linux

package filestore_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ckptdev/ckpt/store"
)

// mountTmpfs mounts a tmpfs of size (as "2m") on a new directory and
// unmounts it when the test ends. A real full disk and a real read-only
// filesystem need a mount: root, who runs these tests in CI, ignores
// permission bits, so chmod cannot produce either.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		if errors.Is(err, unix.EPERM) {
			t.Skipf("skipping: mounting a tmpfs is not permitted here (%v); this test needs root or CAP_SYS_ADMIN to make a real full or read-only filesystem", err)
		}
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

func getBytes(t *testing.T, st store.Store, name string) []byte {
	t.Helper()
	rc, err := st.Get(t.Context(), name)
	if err != nil {
		t.Fatalf("Get %s: %v", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return b
}

func TestFullDisk(t *testing.T) {
	mnt := mountTmpfs(t, "2m")
	dir := filepath.Join(mnt, "store")
	st := openStore(t, dir, nil)
	const name = "jobs/j/blobs/obj"
	old := bytes.Repeat([]byte("old "), 50_000)
	if err := st.Put(t.Context(), name, reader(old)); err != nil {
		t.Fatalf("Put %s: %v", name, err)
	}
	wantIntact := func(after string) {
		t.Helper()
		if got := getBytes(t, st, name); !bytes.Equal(got, old) {
			t.Fatalf("after %s, %s holds %d bytes, want the %d old ones", after, name, len(got), len(old))
		}
		if names, err := st.List(t.Context(), ""); err != nil || !slices.Equal(names, []string{name}) {
			t.Fatalf("after %s, List = %q, %v; want only %s", after, names, err, name)
		}
		wantNoTempFiles(t, dir, after)
	}

	// A replacement larger than the free space.
	err := st.Put(t.Context(), name, reader(bytes.Repeat([]byte("new "), 1<<20)))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Put larger than the disk: %v, want an error matching ENOSPC", err)
	}
	wantIntact("a Put that filled the disk")

	// A disk already full: even a small write fails.
	filler, err := os.Create(filepath.Join(mnt, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err = filler.Write(chunk); err != nil {
			break
		}
	}
	filler.Close()
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling the disk: %v", err)
	}
	if err := st.Put(t.Context(), name, reader(bytes.Repeat([]byte("x"), 10_000))); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Put on a full disk: %v, want an error matching ENOSPC", err)
	}
	if err := st.Create(t.Context(), "jobs/j/blobs/new", reader(bytes.Repeat([]byte("x"), 10_000))); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Create on a full disk: %v, want an error matching ENOSPC", err)
	}
	wantIntact("writes on a full disk")

	// With space back, writes work again: the failures leaked nothing.
	if err := os.Remove(filepath.Join(mnt, "filler")); err != nil {
		t.Fatal(err)
	}
	fresh := bytes.Repeat([]byte("fresh "), 100_000)
	if err := st.Put(t.Context(), name, reader(fresh)); err != nil {
		t.Fatalf("Put once space is free: %v", err)
	}
	if got := getBytes(t, st, name); !bytes.Equal(got, fresh) {
		t.Fatalf("Get %s: %d bytes, want the %d just written", name, len(got), len(fresh))
	}
}

func TestReadOnlyFilesystem(t *testing.T) {
	mnt := mountTmpfs(t, "2m")
	dir := filepath.Join(mnt, "store")
	st := openStore(t, dir, nil)
	const name = "jobs/j/blobs/obj"
	old := []byte("written before the filesystem turned read-only")
	if err := st.Put(t.Context(), name, reader(old)); err != nil {
		t.Fatalf("Put %s: %v", name, err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount %s read-only: %v", mnt, err)
	}

	writes := []struct {
		what string
		err  error
	}{
		{"Put of an existing name", st.Put(t.Context(), name, reader([]byte("new")))},
		{"Put in an existing directory", st.Put(t.Context(), "jobs/j/blobs/other", reader([]byte("new")))},
		{"Put in a new directory", st.Put(t.Context(), "jobs/k/blobs/obj", reader([]byte("new")))},
		{"Create", st.Create(t.Context(), "jobs/j/blobs/created", reader([]byte("new")))},
		{"Delete", st.Delete(t.Context(), name)},
	}
	for _, w := range writes {
		if !errors.Is(w.err, syscall.EROFS) {
			t.Errorf("%s on a read-only filesystem: %v, want an error matching EROFS", w.what, w.err)
		}
	}
	l, err := st.Lock(t.Context(), "jobs/j/LOCK", store.Owner{ID: "test"})
	if err == nil {
		l.Release(t.Context())
	}
	if !errors.Is(err, syscall.EROFS) || errors.Is(err, store.ErrLocked) {
		t.Errorf("Lock on a read-only filesystem: %v, want an error matching EROFS and not ErrLocked", err)
	}

	if got := getBytes(t, st, name); !bytes.Equal(got, old) {
		t.Errorf("Get %s on a read-only filesystem = %q, want %q", name, got, old)
	}
	if names, err := st.List(t.Context(), ""); err != nil || !slices.Equal(names, []string{name}) {
		t.Errorf("List on a read-only filesystem = %q, %v; want only %s", names, err, name)
	}
}
