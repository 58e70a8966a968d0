// Package vfs is the file-system seam in front of ckpt's own file I/O (the
// file store, file sinks, durable directory creation), so that tests can
// run that I/O against a file system that simulates a machine crash.
//
// Two implementations: OS, the real file system, and MemFS, in memory,
// whose CrashClone returns the file system a power loss would leave:
// everything not fsynced is gone.
//
// The durability contract the code above relies on, and MemFS enforces:
//
//   - a file's data (writes, truncation) is durable once the file's Sync
//     returns;
//   - a name (create, rename, link, remove, mkdir) is durable once the
//     directory holding it is synced (SyncDir, or Sync of the directory
//     opened with Open);
//   - nothing else is: a file whose data was synced but whose name was not
//     is lost, and a rename not followed by SyncDir of both directories
//     may be undone.
package vfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// File is an open file, or a directory opened with Open (whose Sync makes
// its entries durable).
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.WriterAt
	io.Seeker
	io.Closer
	// Name is the name the file was opened with.
	Name() string
	// Stat describes the file.
	Stat() (fs.FileInfo, error)
	// Sync makes the file's data (or, for a directory, its entries)
	// durable.
	Sync() error
	// Truncate changes the file's size; durable after Sync.
	Truncate(size int64) error
}

// FS is the file-system operations ckpt's durable I/O uses. Paths are
// those of package os; errors match fs.ErrNotExist, fs.ErrExist and
// friends with errors.Is, as those of package os do.
type FS interface {
	// OpenFile opens name with os.OpenFile's flags (O_RDONLY, O_WRONLY,
	// O_RDWR, O_CREATE, O_EXCL, O_TRUNC, O_APPEND).
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	// Open opens name for reading; a directory can be opened to Sync it.
	Open(name string) (File, error)
	// CreateTemp creates a new file in dir, named from pattern as
	// os.CreateTemp does, open for reading and writing.
	CreateTemp(dir, pattern string) (File, error)
	// Rename renames oldpath to newpath, replacing a file there.
	Rename(oldpath, newpath string) error
	// Link makes newname a hard link to the file oldname; it fails with
	// fs.ErrExist if newname exists.
	Link(oldname, newname string) error
	// Remove removes a file or an empty directory.
	Remove(name string) error
	// Mkdir creates a directory.
	Mkdir(name string, perm fs.FileMode) error
	// Stat and Lstat describe name (MemFS has no symbolic links: they
	// are the same).
	Stat(name string) (fs.FileInfo, error)
	Lstat(name string) (fs.FileInfo, error)
	// ReadDir lists a directory, sorted by name.
	ReadDir(name string) ([]fs.DirEntry, error)
	// SyncDir makes the entries of directory dir durable.
	SyncDir(dir string) error
}

// SameFile reports whether a and b, from Stat or Lstat of one file system,
// describe the same file (inode): os.SameFile for the operating system's,
// node identity for MemFS.
func SameFile(a, b fs.FileInfo) bool {
	if os.SameFile(a, b) {
		return true
	}
	ma, ok := a.(memInfo)
	if !ok {
		return false
	}
	mb, ok := b.(memInfo)
	return ok && ma.n == mb.n
}

// Or returns fsys, or Default() when fsys is nil: for options structs whose
// zero value means the real file system.
func Or(fsys FS) FS {
	if fsys == nil {
		return Default()
	}
	return fsys
}

// OS is the operating system's file system.
type OS struct{}

// OpenFile implements FS.
func (OS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Open implements FS.
func (OS) Open(name string) (File, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// CreateTemp implements FS.
func (OS) CreateTemp(dir, pattern string) (File, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Rename implements FS.
func (OS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }

// Link implements FS.
func (OS) Link(oldname, newname string) error { return os.Link(oldname, newname) }

// Remove implements FS.
func (OS) Remove(name string) error { return os.Remove(name) }

// Mkdir implements FS.
func (OS) Mkdir(name string, perm fs.FileMode) error { return os.Mkdir(name, perm) }

// Stat implements FS.
func (OS) Stat(name string) (fs.FileInfo, error) { return os.Stat(name) }

// Lstat implements FS.
func (OS) Lstat(name string) (fs.FileInfo, error) { return os.Lstat(name) }

// ReadDir implements FS.
func (OS) ReadDir(name string) ([]fs.DirEntry, error) { return os.ReadDir(name) }

// SyncDir implements FS.
func (OS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// MkdirAll creates dir and its missing parents in fsys, syncing each parent
// after a child is created in it, so that the new directories are durable
// before anything is written in them.
func MkdirAll(fsys FS, dir string, perm fs.FileMode) error {
	fi, err := fsys.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: fmt.Errorf("not a directory: %w", fs.ErrExist)}
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := MkdirAll(fsys, parent, perm); err != nil {
			return err
		}
	}
	if err := fsys.Mkdir(dir, perm); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return fsys.SyncDir(parent)
}

// WalkDir walks the tree at root in fsys as filepath.WalkDir does: in
// lexical order, calling fn for root and every entry below it.
func WalkDir(fsys FS, root string, fn fs.WalkDirFunc) error {
	fi, err := fsys.Lstat(root)
	if err != nil {
		err = fn(root, nil, err)
	} else {
		err = walk(fsys, root, fs.FileInfoToDirEntry(fi), fn)
	}
	if errors.Is(err, fs.SkipDir) || errors.Is(err, fs.SkipAll) {
		return nil
	}
	return err
}

func walk(fsys FS, p string, d fs.DirEntry, fn fs.WalkDirFunc) error {
	if err := fn(p, d, nil); err != nil || !d.IsDir() {
		if errors.Is(err, fs.SkipDir) && d.IsDir() {
			err = nil
		}
		return err
	}
	entries, err := fsys.ReadDir(p)
	if err != nil {
		if err = fn(p, d, err); err != nil {
			if errors.Is(err, fs.SkipDir) {
				err = nil
			}
			return err
		}
	}
	for _, e := range entries {
		if err := walk(fsys, filepath.Join(p, e.Name()), e, fn); err != nil {
			if errors.Is(err, fs.SkipDir) {
				break
			}
			return err
		}
	}
	return nil
}
