//go:build unix

package vfs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// plOp is one step of a random program run on two file systems in
// lockstep: MemFS, and a Journal over a real directory.
type plOp struct {
	kind   string
	a, b   string // names relative to the root: "d1/f2"
	off, n int64
	data   []byte
}

var (
	plNames = []string{"d1/f1", "d1/f2", "d1/f3", "d2/f1", "d2/f2", "d1/s/f1", "d1/s/f2"}
	plDirs  = []string{"d1", "d2", "d1/s"}
)

// genOps draws n steps. exists and sameFile answer from the real directory,
// so that no step is one whose outcome MemFS and the operating system
// define differently (renaming a file onto another name of itself).
func genOp(rng *rand.Rand, exists func(string) bool, sameFile func(a, b string) bool) plOp {
	pick := func() string { return plNames[rng.IntN(len(plNames))] }
	data := make([]byte, 1+rng.IntN(40))
	for i := range data {
		data[i] = byte('a' + rng.IntN(26))
	}
	for {
		a, b := pick(), pick()
		switch k := rng.IntN(14); k {
		case 0, 1:
			return plOp{kind: "writeat", a: a, off: int64(rng.IntN(60)), data: data}
		case 2:
			return plOp{kind: "append", a: a, data: data}
		case 3:
			if exists(a) {
				return plOp{kind: "truncate", a: a, n: int64(rng.IntN(50))}
			}
		case 4:
			return plOp{kind: "trunc-open", a: a, data: data}
		case 5, 6:
			if exists(a) {
				return plOp{kind: "sync", a: a}
			}
		case 7:
			if exists(a) && a != b && !sameFile(a, b) {
				return plOp{kind: "rename", a: a, b: b}
			}
		case 8:
			if exists(a) && !exists(b) {
				return plOp{kind: "link", a: a, b: b}
			}
		case 9:
			if exists(a) {
				return plOp{kind: "remove", a: a}
			}
		case 10:
			if d := plDirs[rng.IntN(len(plDirs))]; exists(d) {
				return plOp{kind: "syncdir", a: d}
			}
		case 12:
			if !exists("d1/s") {
				return plOp{kind: "mkdir", a: "d1/s"}
			}
		case 13:
			if exists("d1/s") && !exists("d1/s/f1") && !exists("d1/s/f2") {
				return plOp{kind: "remove", a: "d1/s"}
			}
		case 11:
			// The durable-write pattern: temporary file, sync, rename.
			return plOp{kind: "replace", a: a, data: data}
		}
	}
}

func (o plOp) String() string {
	return fmt.Sprintf("%s %s %s off=%d n=%d len=%d", o.kind, o.a, o.b, o.off, o.n, len(o.data))
}

// run does o on fsys, whose root is root.
func (o plOp) run(fsys FS, root string) error {
	p := func(s string) string { return filepath.Join(root, s) }
	withFile := func(flag int, fn func(File) error) error {
		f, err := fsys.OpenFile(p(o.a), flag, 0o644)
		if err != nil {
			return err
		}
		err = fn(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	}
	switch o.kind {
	case "writeat":
		return withFile(os.O_RDWR|os.O_CREATE, func(f File) error { _, err := f.WriteAt(o.data, o.off); return err })
	case "append":
		return withFile(os.O_WRONLY|os.O_CREATE|os.O_APPEND, func(f File) error { _, err := f.Write(o.data); return err })
	case "truncate":
		return withFile(os.O_RDWR, func(f File) error { return f.Truncate(o.n) })
	case "trunc-open":
		return withFile(os.O_WRONLY|os.O_CREATE|os.O_TRUNC, func(f File) error { _, err := f.Write(o.data); return err })
	case "sync":
		return withFile(os.O_RDWR, func(f File) error { return f.Sync() })
	case "rename":
		return fsys.Rename(p(o.a), p(o.b))
	case "link":
		return fsys.Link(p(o.a), p(o.b))
	case "remove":
		return fsys.Remove(p(o.a))
	case "syncdir":
		return fsys.SyncDir(p(o.a))
	case "mkdir":
		return fsys.Mkdir(p(o.a), 0o755)
	case "replace":
		f, err := fsys.CreateTemp(filepath.Dir(p(o.a)), ".tmp-*")
		if err != nil {
			return err
		}
		if _, err := f.Write(o.data); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		return fsys.Rename(f.Name(), p(o.a))
	}
	return fmt.Errorf("unknown op %s", o.kind)
}

// tree lists the files under root of fsys, with their contents; temporary
// files are listed by their prefix only, as their names are random.
func tree(t *testing.T, fsys FS, root string) []string {
	t.Helper()
	var out []string
	err := WalkDir(fsys, root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			out = append(out, rel+"/")
			return nil
		}
		f, err := fsys.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		var b bytes.Buffer
		if _, err := b.ReadFrom(f); err != nil {
			return err
		}
		if i := strings.Index(rel, ".tmp-"); i >= 0 {
			rel = rel[:i] + ".tmp-*"
		}
		out = append(out, rel+"="+b.String())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// TestPowerLossMatchesMemFS runs random programs on MemFS and on a Journal
// over a real directory, stops both after a random step, and checks that
// ApplyPowerLoss leaves on disk exactly what MemFS.CrashClone keeps.
func TestPowerLossMatchesMemFS(t *testing.T) {
	programs := 300
	if testing.Short() {
		programs = 60
	}
	for prog := range programs {
		rng := rand.New(rand.NewPCG(uint64(prog), 7))
		disk := t.TempDir()
		root := filepath.Join(disk, "root")
		mem := NewMemFS()
		for _, d := range []string{"root", "root/d1", "root/d2"} {
			if err := os.Mkdir(filepath.Join(disk, d), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := mem.Mkdir("/"+d, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := mem.SyncDir(filepath.Dir("/" + d)); err != nil {
				t.Fatal(err)
			}
		}
		j, err := NewJournal(filepath.Join(disk, "log"))
		if err != nil {
			t.Fatal(err)
		}
		exists := func(s string) bool { _, err := os.Lstat(filepath.Join(root, s)); return err == nil }
		sameFile := func(a, b string) bool {
			fa, ea := os.Lstat(filepath.Join(root, a))
			fb, eb := os.Lstat(filepath.Join(root, b))
			return ea == nil && eb == nil && os.SameFile(fa, fb)
		}
		steps := 1 + rng.IntN(30)
		var done []string
		for range steps {
			op := genOp(rng, exists, sameFile)
			done = append(done, op.String())
			errMem := op.run(mem, "/root")
			errDisk := op.run(j, root)
			if (errMem == nil) != (errDisk == nil) {
				t.Fatalf("program %d: %s: MemFS says %v, the journal %v", prog, op, errMem, errDisk)
			}
		}
		j.Close()
		if _, err := ApplyPowerLoss(filepath.Join(disk, "log")); err != nil {
			t.Fatalf("program %d: %v", prog, err)
		}
		want := tree(t, mem.CrashClone(), "/root")
		got := tree(t, OS{}, root)
		if !slices.Equal(got, want) {
			t.Fatalf("program %d after\n  %s\npower loss on disk left\n  %q\nMemFS keeps\n  %q", prog, strings.Join(done, "\n  "), got, want)
		}
	}
}

// TestPowerLossTornRecord: a record cut short by the kill is a change never
// begun, and a record withdrawn after its operation failed is not undone.
func TestPowerLossTornRecord(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	j, err := NewJournal(log)
	if err != nil {
		t.Fatal(err)
	}
	keep := filepath.Join(dir, "keep.txt")
	if err := os.WriteFile(keep, []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A failing create (the directory is missing) is withdrawn.
	if _, err := j.OpenFile(filepath.Join(dir, "missing", "f"), os.O_WRONLY|os.O_CREATE, 0o644); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("create in a missing directory: %v", err)
	}
	// A failing rename onto an existing name keeps that name's file.
	if err := j.Rename(filepath.Join(dir, "nothing"), keep); err == nil {
		t.Fatal("rename of a missing file succeeded")
	}
	f, err := j.OpenFile(filepath.Join(dir, "new.txt"), os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	j.Close()
	// The kill cut the next record short.
	lf, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	lf.WriteString(`{"op":"remove","path":"` + keep)
	lf.Close()

	st, err := ApplyPowerLoss(log)
	if err != nil {
		t.Fatal(err)
	}
	if st.Changes != 1 || st.Undone != 1 {
		t.Errorf("stats %+v, want the one create, undone", st)
	}
	if _, err := os.Stat(filepath.Join(dir, "new.txt")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the unsynced create survived: %v", err)
	}
	if b, err := os.ReadFile(keep); err != nil || string(b) != "kept" {
		t.Errorf("keep.txt: %q, %v", b, err)
	}

	// A line that is not JSON before the end is a broken log, not a torn one.
	if err := os.WriteFile(log, []byte("garbage\n{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ApplyPowerLoss(log); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("broken log: %v", err)
	}
}

// TestJournalLocks: files of a Journal take flock(2) locks as the
// operating system's do.
func TestJournalLocks(t *testing.T) {
	dir := t.TempDir()
	j, err := NewJournal(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	p := filepath.Join(dir, "lock")
	a, err := j.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := TryLock(a); err != nil {
		t.Fatal(err)
	}
	if err := TryLock(b); err == nil {
		t.Fatal("a second lock was granted")
	}
}
