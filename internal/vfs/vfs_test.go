package vfs

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, fsys FS, name, data string, syncData bool) {
	t.Helper()
	f, err := fsys.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	must(t, err)
	_, err = f.Write([]byte(data))
	must(t, err)
	if syncData {
		must(t, f.Sync())
	}
	must(t, f.Close())
}

// content returns a file's data, or "<missing>".
func content(t *testing.T, m *MemFS, name string) string {
	t.Helper()
	b, err := m.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return "<missing>"
	}
	must(t, err)
	return string(b)
}

func TestCrashKeepsOnlySyncedState(t *testing.T) {
	for _, tc := range []struct {
		name string
		ops  func(t *testing.T, m *MemFS)
		want map[string]string
	}{
		{"unsynced name is lost, even with synced data", func(t *testing.T, m *MemFS) {
			writeFile(t, m, "a", "data", true)
		}, map[string]string{"a": "<missing>"}},
		{"unsynced data is lost, synced name stays", func(t *testing.T, m *MemFS) {
			writeFile(t, m, "a", "data", false)
			must(t, m.SyncDir("/"))
		}, map[string]string{"a": ""}},
		{"synced data and name stay", func(t *testing.T, m *MemFS) {
			writeFile(t, m, "a", "data", true)
			must(t, m.SyncDir("/"))
		}, map[string]string{"a": "data"}},
		{"writes after the sync are lost", func(t *testing.T, m *MemFS) {
			f, err := m.OpenFile("a", os.O_RDWR|os.O_CREATE, 0o644)
			must(t, err)
			f.Write([]byte("one"))
			must(t, f.Sync())
			f.Write([]byte("two"))
			must(t, m.SyncDir("."))
		}, map[string]string{"a": "one"}},
		{"unsynced truncation is undone", func(t *testing.T, m *MemFS) {
			writeFile(t, m, "a", "0123456789", true)
			must(t, m.SyncDir("/"))
			f, err := m.OpenFile("a", os.O_RDWR, 0)
			must(t, err)
			must(t, f.Truncate(3))
		}, map[string]string{"a": "0123456789"}},
		{"synced truncation stays", func(t *testing.T, m *MemFS) {
			writeFile(t, m, "a", "0123456789", true)
			must(t, m.SyncDir("/"))
			f, err := m.OpenFile("a", os.O_RDWR, 0)
			must(t, err)
			must(t, f.Truncate(3))
			must(t, f.Sync())
		}, map[string]string{"a": "012"}},
		{"unsynced rename is undone", func(t *testing.T, m *MemFS) {
			writeFile(t, m, "a", "data", true)
			must(t, m.SyncDir("/"))
			must(t, m.Rename("a", "b"))
		}, map[string]string{"a": "data", "b": "<missing>"}},
		{"synced rename stays", func(t *testing.T, m *MemFS) {
			writeFile(t, m, "a", "data", true)
			must(t, m.SyncDir("/"))
			must(t, m.Rename("a", "b"))
			must(t, m.SyncDir("/"))
		}, map[string]string{"a": "<missing>", "b": "data"}},
		{"rename across directories needs both synced", func(t *testing.T, m *MemFS) {
			must(t, MkdirAll(m, "/x", 0o755))
			must(t, MkdirAll(m, "/y", 0o755))
			writeFile(t, m, "x/a", "data", true)
			must(t, m.SyncDir("x"))
			must(t, m.Rename("x/a", "y/a"))
			must(t, m.SyncDir("y")) // x not synced: the old name comes back too
		}, map[string]string{"x/a": "data", "y/a": "data"}},
		{"replacing rename unsynced keeps the old file", func(t *testing.T, m *MemFS) {
			writeFile(t, m, "cur", "old", true)
			must(t, m.SyncDir("/"))
			writeFile(t, m, "tmp", "new", true)
			must(t, m.Rename("tmp", "cur"))
		}, map[string]string{"cur": "old", "tmp": "<missing>"}},
		{"unsynced remove is undone", func(t *testing.T, m *MemFS) {
			writeFile(t, m, "a", "data", true)
			must(t, m.SyncDir("/"))
			must(t, m.Remove("a"))
		}, map[string]string{"a": "data"}},
		{"synced remove stays", func(t *testing.T, m *MemFS) {
			writeFile(t, m, "a", "data", true)
			must(t, m.SyncDir("/"))
			must(t, m.Remove("a"))
			must(t, m.SyncDir("/"))
		}, map[string]string{"a": "<missing>"}},
		{"unsynced link is lost", func(t *testing.T, m *MemFS) {
			writeFile(t, m, "a", "data", true)
			must(t, m.SyncDir("/"))
			must(t, m.Link("a", "b"))
		}, map[string]string{"a": "data", "b": "<missing>"}},
		{"hard links share synced data", func(t *testing.T, m *MemFS) {
			writeFile(t, m, "a", "", false)
			must(t, m.Link("a", "b"))
			must(t, m.SyncDir("/"))
			writeFile(t, m, "a", "data", true)
		}, map[string]string{"a": "data", "b": "data"}},
		{"a directory's unsynced entry loses its whole subtree", func(t *testing.T, m *MemFS) {
			must(t, m.Mkdir("d", 0o755))
			writeFile(t, m, "d/a", "data", true)
			must(t, m.SyncDir("d"))
		}, map[string]string{"d/a": "<missing>"}},
		{"durable MkdirAll keeps the subtree", func(t *testing.T, m *MemFS) {
			must(t, MkdirAll(m, "d/e", 0o755))
			writeFile(t, m, "d/e/a", "data", true)
			must(t, m.SyncDir("d/e"))
		}, map[string]string{"d/e/a": "data"}},
		{"directory synced by Open and Sync", func(t *testing.T, m *MemFS) {
			writeFile(t, m, "a", "data", true)
			d, err := m.Open("/")
			must(t, err)
			must(t, d.Sync())
			must(t, d.Close())
		}, map[string]string{"a": "data"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMemFS()
			tc.ops(t, m)
			c := m.CrashClone()
			for name, want := range tc.want {
				if got := content(t, c, name); got != want {
					t.Errorf("after crash, %s = %q, want %q", name, got, want)
				}
			}
			// A crash changes nothing more when it happens again, and
			// leaves the live file system as it was.
			if got, want := dump(t, c.CrashClone()), dump(t, c); got != want {
				t.Errorf("second crash changed the state:\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// dump lists every file and its content.
func dump(t *testing.T, m *MemFS) string {
	t.Helper()
	var b bytes.Buffer
	must(t, WalkDir(m, "/", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		b.WriteString(p)
		if !d.IsDir() {
			data, err := m.ReadFile(p)
			if err != nil {
				return err
			}
			b.WriteString("=" + string(data))
		}
		b.WriteString("\n")
		return nil
	}))
	return b.String()
}

// atomicWrite is the durable replace: temp file in the same directory,
// write, fsync, close, rename, fsync the directory. skip names a step to
// leave out, to show that the crash test catches it.
func atomicWrite(fsys FS, dir, name, data, skip string) error {
	f, err := fsys.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	if _, err := io.WriteString(f, data); err != nil {
		return err
	}
	if skip != "file sync" {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fsys.Rename(f.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	if skip == "dir sync" {
		return nil
	}
	return fsys.SyncDir(dir)
}

// A crash after the durable replace returns leaves the new content; with
// either fsync left out it does not, and the check sees it.
func TestAtomicWriteSurvivesCrashOnlyWithItsFsyncs(t *testing.T) {
	for _, skip := range []string{"", "file sync", "dir sync"} {
		m := NewMemFS()
		must(t, MkdirAll(m, "/store", 0o755))
		must(t, atomicWrite(m, "/store", "manifest", "v1", ""))
		must(t, atomicWrite(m, "/store", "manifest", "v2", skip))
		got := content(t, m.CrashClone(), "/store/manifest")
		if ok := got == "v2"; ok != (skip == "") {
			t.Errorf("skip %q: after crash the manifest is %q", skip, got)
		}
	}
}

func TestMemFSErrors(t *testing.T) {
	m := NewMemFS()
	if _, err := m.Open("nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open missing: %v", err)
	}
	writeFile(t, m, "a", "x", false)
	if _, err := m.OpenFile("a", os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); !errors.Is(err, fs.ErrExist) {
		t.Errorf("O_EXCL on existing: %v", err)
	}
	if err := m.Link("a", "a"); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Link onto existing: %v", err)
	}
	must(t, m.Mkdir("d", 0o755))
	writeFile(t, m, "d/f", "", false)
	if err := m.Remove("d"); err == nil {
		t.Error("Remove of a non-empty directory succeeded")
	}
	if err := m.Mkdir("d", 0o755); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Mkdir existing: %v", err)
	}
	if _, err := m.Stat("a/b"); err == nil {
		t.Error("Stat under a file succeeded")
	}
	f, err := m.Open("a")
	must(t, err)
	if _, err := f.Write([]byte("x")); err == nil {
		t.Error("Write on a read-only file succeeded")
	}
	must(t, f.Close())
	if _, err := f.Read(make([]byte, 1)); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Read after Close: %v", err)
	}
}

// The OS and the MemFS implementations agree on what the seam's users
// see, before any crash.
func TestOSAndMemAgree(t *testing.T) {
	run := func(fsys FS, root string) string {
		must(t, MkdirAll(fsys, filepath.Join(root, "a", "b"), 0o755))
		must(t, atomicWrite(fsys, filepath.Join(root, "a"), "m1", "one", ""))
		must(t, atomicWrite(fsys, filepath.Join(root, "a"), "m1", "two", ""))
		must(t, fsys.Link(filepath.Join(root, "a", "m1"), filepath.Join(root, "a", "b", "m2")))
		f, err := fsys.OpenFile(filepath.Join(root, "a", "out"), os.O_RDWR|os.O_CREATE, 0o644)
		must(t, err)
		io.WriteString(f, "0123456789")
		must(t, f.Truncate(4))
		_, err = f.Seek(0, io.SeekEnd)
		must(t, err)
		io.WriteString(f, "x")
		_, err = f.WriteAt([]byte("AB"), 2)
		must(t, err)
		_, err = f.WriteAt([]byte("yz"), 7)
		must(t, err)
		buf := make([]byte, 3)
		_, err = f.ReadAt(buf, 1)
		must(t, err)
		must(t, f.Close())
		var b bytes.Buffer
		b.Write(buf)
		must(t, WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
			must(t, err)
			rel, _ := filepath.Rel(root, p)
			b.WriteString("\n" + rel)
			if !d.IsDir() {
				fi, err := fsys.Stat(p)
				must(t, err)
				r, err := fsys.Open(p)
				must(t, err)
				data, err := io.ReadAll(r)
				must(t, err)
				r.Close()
				b.WriteString("=" + string(data))
				if fi.Size() != int64(len(data)) {
					t.Errorf("%s: size %d, read %d bytes", p, fi.Size(), len(data))
				}
			}
			return nil
		}))
		return b.String()
	}
	osState := run(OS{}, t.TempDir())
	memState := run(NewMemFS(), "/root")
	if osState != memState {
		t.Errorf("OS:\n%s\nMemFS:\n%s", osState, memState)
	}
}

func TestCrashingStopsBeforeItsOperation(t *testing.T) {
	m := NewMemFS()
	c := NewCrashing(m, 3)
	f, err := c.OpenFile("a", os.O_RDWR|os.O_CREATE, 0o644) // 1
	must(t, err)
	_, err = f.Write([]byte("x")) // 2
	must(t, err)
	if c.Crashed() {
		t.Fatal("crashed early")
	}
	if err := f.Sync(); !errors.Is(err, ErrCrashed) { // 3: not done
		t.Fatalf("third operation: %v, want ErrCrashed", err)
	}
	if _, err := c.Stat("a"); !errors.Is(err, ErrCrashed) {
		t.Errorf("read after the crash: %v", err)
	}
	if err := c.SyncDir("/"); !errors.Is(err, ErrCrashed) {
		t.Errorf("operation after the crash: %v", err)
	}
	if got := c.Ops(); len(got) != 2 || got[0] != "open a create" || got[1] != "write a 1 bytes" {
		t.Errorf("ops = %q", got)
	}
	if got := content(t, m.CrashClone(), "a"); got != "<missing>" {
		t.Errorf("after the crash a = %q", got)
	}
	// Positioned writes count as writes.
	c = NewCrashing(NewMemFS(), 2)
	f, err = c.OpenFile("b", os.O_RDWR|os.O_CREATE, 0o644) // 1
	must(t, err)
	if _, err := f.WriteAt([]byte("x"), 3); !errors.Is(err, ErrCrashed) { // 2
		t.Errorf("WriteAt at the crash point: %v, want ErrCrashed", err)
	}
	// at = 0 never crashes.
	c = NewCrashing(NewMemFS(), 0)
	for range 100 {
		must(t, c.Mkdir("d", 0o755))
		must(t, c.Remove("d"))
	}
	if c.Crashed() || len(c.Ops()) != 200 {
		t.Errorf("crashed %v after %d ops", c.Crashed(), len(c.Ops()))
	}
}

// Both implementations lock an open file as flock(2) does: a second open
// file of the same inode cannot take the lock until the first unlocks or
// closes; and SameFile tells the lock file from a new one of the same name.
func TestLockAndSameFile(t *testing.T) {
	for _, tc := range []struct {
		name string
		fsys FS
		root string
	}{{"OS", OS{}, t.TempDir()}, {"MemFS", NewMemFS(), "/"}, {"Crashing", NewCrashing(NewMemFS(), 0), "/"}} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(tc.root, "lock")
			open := func() File {
				f, err := tc.fsys.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
				must(t, err)
				return f
			}
			a, b := open(), open()
			must(t, TryLock(a))
			must(t, TryLock(a)) // again by its holder: no change
			if err := TryLock(b); !errors.Is(err, syscall.EWOULDBLOCK) {
				t.Fatalf("second open file locked a held lock: %v", err)
			}
			must(t, Unlock(a))
			must(t, TryLock(b))
			if err := TryLock(a); !errors.Is(err, syscall.EWOULDBLOCK) {
				t.Fatalf("lock taken from its new holder: %v", err)
			}
			must(t, b.Close())
			must(t, TryLock(a)) // closing the holder released it

			ai, err := a.Stat()
			must(t, err)
			ni, err := tc.fsys.Stat(p)
			must(t, err)
			if !SameFile(ai, ni) {
				t.Error("Stat of the name and of the open file: not the same file")
			}
			must(t, tc.fsys.Remove(p))
			c := open()
			defer c.Close()
			ni, err = tc.fsys.Stat(p)
			must(t, err)
			if SameFile(ai, ni) {
				t.Error("a new file of the same name is the same file as the removed one")
			}
			// The removed file's lock is on the removed inode.
			must(t, TryLock(c))
			must(t, a.Close())
		})
	}
}

// A lock is not durable: the file system a crash leaves has no holder.
func TestCrashCloneDropsLocks(t *testing.T) {
	m := NewMemFS()
	f, err := m.OpenFile("/lock", os.O_RDWR|os.O_CREATE, 0o644)
	must(t, err)
	must(t, m.SyncDir("/"))
	must(t, TryLock(f))
	g, err := m.CrashClone().OpenFile("/lock", os.O_RDWR, 0)
	must(t, err)
	must(t, TryLock(g))
}
