package vfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
)

// ErrCrashed is returned by every operation of a Crashing file system once
// its crash point is reached: the machine is off.
var ErrCrashed = errors.New("vfs: simulated machine crash")

// Crashing wraps a file system and stops it before its at-th operation
// that changes anything (create, write, truncate, sync, rename, link,
// remove, mkdir; reads are not counted): that operation and every later
// one, reads included, fail with ErrCrashed. With at = 0 it never crashes,
// and counts the operations of a whole run. Ops lists the operations done,
// to name the crash point in a report.
type Crashing struct {
	fs FS
	at int

	mu      sync.Mutex
	ops     []string
	crashed bool
}

// NewCrashing returns fsys, crashing before its at-th changing operation.
func NewCrashing(fsys FS, at int) *Crashing { return &Crashing{fs: fsys, at: at} }

// Ops returns the changing operations done before the crash, in order.
func (c *Crashing) Ops() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.ops...)
}

// Crashed reports whether the crash point was reached.
func (c *Crashing) Crashed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.crashed
}

// step counts one changing operation, or reports the crash. The operation
// runs with the lock held, so that operations from several goroutines are
// counted in the order they take effect.
func (c *Crashing) step(desc string, op func() error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.crashed || (c.at > 0 && len(c.ops)+1 >= c.at) {
		c.crashed = true
		return ErrCrashed
	}
	if err := op(); err != nil {
		return err
	}
	c.ops = append(c.ops, desc)
	return nil
}

// read runs an operation that changes nothing, unless crashed.
func (c *Crashing) read(op func() error) error {
	c.mu.Lock()
	crashed := c.crashed
	c.mu.Unlock()
	if crashed {
		return ErrCrashed
	}
	return op()
}

// OpenFile implements FS; opening with O_CREATE or O_TRUNC counts.
func (c *Crashing) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	var f File
	op := func() (err error) { f, err = c.fs.OpenFile(name, flag, perm); return err }
	var err error
	if flag&(os.O_CREATE|os.O_TRUNC) != 0 {
		err = c.step("open "+name+flagString(flag), op)
	} else {
		err = c.read(op)
	}
	if err != nil {
		return nil, err
	}
	return &crashingFile{File: f, c: c}, nil
}

func flagString(flag int) string {
	s := ""
	if flag&os.O_CREATE != 0 {
		s += " create"
	}
	if flag&os.O_EXCL != 0 {
		s += " excl"
	}
	if flag&os.O_TRUNC != 0 {
		s += " trunc"
	}
	return s
}

// Open implements FS.
func (c *Crashing) Open(name string) (File, error) { return c.OpenFile(name, os.O_RDONLY, 0) }

// CreateTemp implements FS.
func (c *Crashing) CreateTemp(dir, pattern string) (File, error) {
	var f File
	err := c.step("", func() (err error) { f, err = c.fs.CreateTemp(dir, pattern); return err })
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.ops[len(c.ops)-1] = "create " + f.Name()
	c.mu.Unlock()
	return &crashingFile{File: f, c: c}, nil
}

// Rename implements FS.
func (c *Crashing) Rename(oldpath, newpath string) error {
	return c.step("rename "+oldpath+" "+newpath, func() error { return c.fs.Rename(oldpath, newpath) })
}

// Link implements FS.
func (c *Crashing) Link(oldname, newname string) error {
	return c.step("link "+oldname+" "+newname, func() error { return c.fs.Link(oldname, newname) })
}

// Remove implements FS.
func (c *Crashing) Remove(name string) error {
	return c.step("remove "+name, func() error { return c.fs.Remove(name) })
}

// Mkdir implements FS.
func (c *Crashing) Mkdir(name string, perm fs.FileMode) error {
	return c.step("mkdir "+name, func() error { return c.fs.Mkdir(name, perm) })
}

// SyncDir implements FS.
func (c *Crashing) SyncDir(dir string) error {
	return c.step("syncdir "+dir, func() error { return c.fs.SyncDir(dir) })
}

// Stat implements FS.
func (c *Crashing) Stat(name string) (fi fs.FileInfo, err error) {
	err = c.read(func() error { fi, err = c.fs.Stat(name); return err })
	return fi, err
}

// Lstat implements FS.
func (c *Crashing) Lstat(name string) (fi fs.FileInfo, err error) {
	err = c.read(func() error { fi, err = c.fs.Lstat(name); return err })
	return fi, err
}

// ReadDir implements FS.
func (c *Crashing) ReadDir(name string) (es []fs.DirEntry, err error) {
	err = c.read(func() error { es, err = c.fs.ReadDir(name); return err })
	return es, err
}

// crashingFile counts a file's writes, truncations and syncs.
type crashingFile struct {
	File
	c *Crashing
}

func (f *crashingFile) Write(p []byte) (n int, err error) {
	err = f.c.step(fmt.Sprintf("write %s %d bytes", f.Name(), len(p)), func() error { n, err = f.File.Write(p); return err })
	return n, err
}

func (f *crashingFile) WriteAt(p []byte, off int64) (n int, err error) {
	err = f.c.step(fmt.Sprintf("write %s %d bytes at %d", f.Name(), len(p), off), func() error { n, err = f.File.WriteAt(p, off); return err })
	return n, err
}

func (f *crashingFile) tryLock() error {
	return f.c.read(func() error { return TryLock(f.File) })
}

func (f *crashingFile) unlock() error {
	return f.c.read(func() error { return Unlock(f.File) })
}

func (f *crashingFile) Truncate(size int64) error {
	return f.c.step(fmt.Sprintf("truncate %s %d", f.Name(), size), func() error { return f.File.Truncate(size) })
}

func (f *crashingFile) Sync() error {
	return f.c.step("sync "+f.Name(), f.File.Sync)
}

func (f *crashingFile) Read(p []byte) (n int, err error) {
	err = f.c.read(func() error { n, err = f.File.Read(p); return err })
	return n, err
}

func (f *crashingFile) ReadAt(p []byte, off int64) (n int, err error) {
	err = f.c.read(func() error { n, err = f.File.ReadAt(p, off); return err })
	return n, err
}

func (f *crashingFile) Seek(offset int64, whence int) (n int64, err error) {
	err = f.c.read(func() error { n, err = f.File.Seek(offset, whence); return err })
	return n, err
}

var _ FS = (*Crashing)(nil)
