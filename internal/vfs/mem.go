package vfs

import (
	"bytes"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MemFS is a file system in memory that remembers what is durable: for each
// file the data as of its last Sync, for each directory the entries as of
// its last sync. CrashClone builds the file system a power loss would
// leave. It is safe for concurrent use.
//
// Paths are cleaned and taken from the root: "a/b", "/a/b" and "./a/b"
// name the same file. There are no symbolic links, permissions or owners.
type MemFS struct {
	mu   sync.Mutex
	root *node
	seq  int // for CreateTemp
}

// node is a file or directory (an inode: hard links share it).
type node struct {
	dir     bool
	mode    fs.FileMode
	modTime time.Time
	// A file's data now, and as of its last Sync.
	data, synced []byte
	// A directory's entries now, and as of its last sync.
	children, syncedChildren map[string]*node
	// The open file holding the file's lock (see TryLock), if any. A
	// lock is not durable: CrashClone drops it, as a machine crash ends
	// the process that held it.
	locker *memFile
}

func newDir() *node {
	return &node{dir: true, mode: fs.ModeDir | 0o755, modTime: time.Now(), children: map[string]*node{}, syncedChildren: map[string]*node{}}
}

// NewMemFS returns an empty MemFS: a root directory, durable.
func NewMemFS() *MemFS { return &MemFS{root: newDir()} }

// CrashClone returns the file system a machine crash would leave now: only
// the names that their directory's last sync recorded, each file with the
// data of its last Sync. m itself is unchanged, and files open on it stay
// open on it.
func (m *MemFS) CrashClone() *MemFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := map[*node]*node{}
	var clone func(n *node) *node
	clone = func(n *node) *node {
		if c, ok := seen[n]; ok {
			return c // a hard link: the same inode under another name
		}
		c := &node{dir: n.dir, mode: n.mode, modTime: n.modTime}
		seen[n] = c
		if !n.dir {
			c.data = bytes.Clone(n.synced)
			c.synced = bytes.Clone(n.synced)
			return c
		}
		c.children = make(map[string]*node, len(n.syncedChildren))
		for name, child := range n.syncedChildren {
			c.children[name] = clone(child)
		}
		c.syncedChildren = maps.Clone(c.children)
		return c
	}
	return &MemFS{root: clone(m.root), seq: m.seq}
}

// split cleans name and returns its parent's path and its base name.
func split(name string) (dir, base string) {
	p := path.Clean("/" + filepath.ToSlash(name))
	return path.Dir(p), path.Base(p)
}

// lookup returns the node at p (cleaned, absolute). Call with m.mu held.
func (m *MemFS) lookup(p string) (*node, error) {
	n := m.root
	for _, part := range strings.Split(strings.Trim(path.Clean("/"+filepath.ToSlash(p)), "/"), "/") {
		if part == "" {
			continue
		}
		if !n.dir {
			return nil, syscall.ENOTDIR
		}
		c, ok := n.children[part]
		if !ok {
			return nil, fs.ErrNotExist
		}
		n = c
	}
	return n, nil
}

// parent returns the directory that holds name, and name's base. Call with
// m.mu held.
func (m *MemFS) parent(op, name string) (*node, string, error) {
	dir, base := split(name)
	if base == "/" {
		return nil, "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	d, err := m.lookup(dir)
	if err != nil {
		return nil, "", &fs.PathError{Op: op, Path: name, Err: err}
	}
	if !d.dir {
		return nil, "", &fs.PathError{Op: op, Path: name, Err: syscall.ENOTDIR}
	}
	return d, base, nil
}

// OpenFile implements FS.
func (m *MemFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var (
		d, n *node
		base string
		ok   bool
	)
	if _, b := split(name); b == "/" {
		n, ok = m.root, true
	} else {
		var err error
		if d, base, err = m.parent("open", name); err != nil {
			return nil, err
		}
		n, ok = d.children[base]
	}
	switch {
	case ok && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrExist}
	case !ok && flag&os.O_CREATE == 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	case !ok:
		n = &node{mode: perm & fs.ModePerm, modTime: time.Now()}
		d.children[base] = n
		d.modTime = n.modTime
	}
	writable := flag&(os.O_WRONLY|os.O_RDWR) != 0
	if n.dir && writable {
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EISDIR}
	}
	if flag&os.O_TRUNC != 0 && writable {
		n.data = nil
		n.modTime = time.Now()
	}
	return &memFile{fs: m, n: n, name: name, read: flag&os.O_WRONLY == 0, write: writable, append: flag&os.O_APPEND != 0}, nil
}

// Open implements FS.
func (m *MemFS) Open(name string) (File, error) { return m.OpenFile(name, os.O_RDONLY, 0) }

// CreateTemp implements FS.
func (m *MemFS) CreateTemp(dir, pattern string) (File, error) {
	prefix, suffix, _ := strings.Cut(pattern, "*")
	if !strings.Contains(pattern, "*") {
		prefix, suffix = pattern, ""
	}
	for {
		m.mu.Lock()
		m.seq++
		seq := m.seq
		m.mu.Unlock()
		f, err := m.OpenFile(filepath.Join(dir, prefix+strconv.Itoa(seq)+suffix), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if pe, ok := err.(*fs.PathError); ok && pe.Err == fs.ErrExist {
			continue
		}
		return f, err
	}
}

// Rename implements FS.
func (m *MemFS) Rename(oldpath, newpath string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	od, ob, err := m.parent("rename", oldpath)
	if err != nil {
		return err
	}
	nd, nb, err := m.parent("rename", newpath)
	if err != nil {
		return err
	}
	n, ok := od.children[ob]
	if !ok {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: fs.ErrNotExist}
	}
	if t, ok := nd.children[nb]; ok && t != n {
		if t.dir && (!n.dir || len(t.children) > 0) {
			return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: syscall.EEXIST}
		}
		if !t.dir && n.dir {
			return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: syscall.ENOTDIR}
		}
	}
	delete(od.children, ob)
	nd.children[nb] = n
	return nil
}

// Link implements FS.
func (m *MemFS) Link(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	od, ob, err := m.parent("link", oldname)
	if err != nil {
		return err
	}
	nd, nb, err := m.parent("link", newname)
	if err != nil {
		return err
	}
	n, ok := od.children[ob]
	if !ok {
		return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: fs.ErrNotExist}
	}
	if n.dir {
		return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: syscall.EPERM}
	}
	if _, ok := nd.children[nb]; ok {
		return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: fs.ErrExist}
	}
	nd.children[nb] = n
	return nil
}

// Remove implements FS.
func (m *MemFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, base, err := m.parent("remove", name)
	if err != nil {
		return err
	}
	n, ok := d.children[base]
	if !ok {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	if n.dir && len(n.children) > 0 {
		return &fs.PathError{Op: "remove", Path: name, Err: syscall.ENOTEMPTY}
	}
	delete(d.children, base)
	return nil
}

// Mkdir implements FS.
func (m *MemFS) Mkdir(name string, perm fs.FileMode) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, base, err := m.parent("mkdir", name)
	if err != nil {
		return err
	}
	if _, ok := d.children[base]; ok {
		return &fs.PathError{Op: "mkdir", Path: name, Err: fs.ErrExist}
	}
	n := newDir()
	n.mode = fs.ModeDir | perm&fs.ModePerm
	d.children[base] = n
	return nil
}

// Stat implements FS.
func (m *MemFS) Stat(name string) (fs.FileInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookup(name)
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	_, base := split(name)
	return n.info(base), nil
}

// Lstat implements FS.
func (m *MemFS) Lstat(name string) (fs.FileInfo, error) { return m.Stat(name) }

// ReadDir implements FS.
func (m *MemFS) ReadDir(name string) ([]fs.DirEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookup(name)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	if !n.dir {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: syscall.ENOTDIR}
	}
	out := make([]fs.DirEntry, 0, len(n.children))
	for base, c := range n.children {
		out = append(out, fs.FileInfoToDirEntry(c.info(base)))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

// SyncDir implements FS.
func (m *MemFS) SyncDir(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookup(dir)
	if err != nil {
		return &fs.PathError{Op: "sync", Path: dir, Err: err}
	}
	if !n.dir {
		return &fs.PathError{Op: "sync", Path: dir, Err: syscall.ENOTDIR}
	}
	n.syncedChildren = maps.Clone(n.children)
	return nil
}

// ReadFile returns the content of the file name, for tests.
func (m *MemFS) ReadFile(name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookup(name)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	if n.dir {
		return nil, &fs.PathError{Op: "read", Path: name, Err: syscall.EISDIR}
	}
	return bytes.Clone(n.data), nil
}

func (n *node) info(name string) fs.FileInfo {
	return memInfo{n: n, name: name, size: int64(len(n.data)), mode: n.mode, modTime: n.modTime}
}

type memInfo struct {
	n       *node // for SameFile
	name    string
	size    int64
	mode    fs.FileMode
	modTime time.Time
}

func (i memInfo) Name() string       { return i.name }
func (i memInfo) Size() int64        { return i.size }
func (i memInfo) Mode() fs.FileMode  { return i.mode }
func (i memInfo) ModTime() time.Time { return i.modTime }
func (i memInfo) IsDir() bool        { return i.mode.IsDir() }
func (i memInfo) Sys() any           { return nil }

// memFile is an open MemFS file.
type memFile struct {
	fs                  *MemFS
	n                   *node
	name                string
	off                 int64
	read, write, append bool
	closed              bool
}

func (f *memFile) check(op string, want bool) error {
	if f.closed {
		return &fs.PathError{Op: op, Path: f.name, Err: fs.ErrClosed}
	}
	if !want {
		return &fs.PathError{Op: op, Path: f.name, Err: syscall.EBADF}
	}
	return nil
}

func (f *memFile) Name() string { return f.name }

func (f *memFile) Read(p []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("read", f.read && !f.n.dir); err != nil {
		return 0, err
	}
	if f.off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.n.data[f.off:])
	f.off += int64(n)
	return n, nil
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("read", f.read && !f.n.dir); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: fs.ErrInvalid}
	}
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.n.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) Write(p []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("write", f.write); err != nil {
		return 0, err
	}
	if f.append {
		f.off = int64(len(f.n.data))
	}
	end := f.off + int64(len(p))
	if end > int64(len(f.n.data)) {
		f.n.data = append(f.n.data, make([]byte, end-int64(len(f.n.data)))...)
	}
	copy(f.n.data[f.off:], p)
	f.off = end
	f.n.modTime = time.Now()
	return len(p), nil
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("write", f.write); err != nil {
		return 0, err
	}
	if f.append {
		// As os.File.WriteAt: positioned writes contradict O_APPEND.
		return 0, &fs.PathError{Op: "writeat", Path: f.name, Err: fs.ErrInvalid}
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "writeat", Path: f.name, Err: fs.ErrInvalid}
	}
	end := off + int64(len(p))
	if end > int64(len(f.n.data)) {
		f.n.data = append(f.n.data, make([]byte, end-int64(len(f.n.data)))...)
	}
	copy(f.n.data[off:], p)
	f.n.modTime = time.Now()
	return len(p), nil
}

func (f *memFile) Seek(offset int64, whence int) (int64, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("seek", true); err != nil {
		return 0, err
	}
	switch whence {
	case io.SeekCurrent:
		offset += f.off
	case io.SeekEnd:
		offset += int64(len(f.n.data))
	}
	if offset < 0 {
		return 0, &fs.PathError{Op: "seek", Path: f.name, Err: fs.ErrInvalid}
	}
	f.off = offset
	return offset, nil
}

func (f *memFile) Stat() (fs.FileInfo, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("stat", true); err != nil {
		return nil, err
	}
	_, base := split(f.name)
	return f.n.info(base), nil
}

// Sync records the file's data, or the directory's entries, as durable.
func (f *memFile) Sync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("sync", true); err != nil {
		return err
	}
	if f.n.dir {
		f.n.syncedChildren = maps.Clone(f.n.children)
	} else {
		f.n.synced = bytes.Clone(f.n.data)
	}
	return nil
}

func (f *memFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("truncate", f.write); err != nil {
		return err
	}
	if size < 0 {
		return &fs.PathError{Op: "truncate", Path: f.name, Err: fs.ErrInvalid}
	}
	if size <= int64(len(f.n.data)) {
		f.n.data = f.n.data[:size:size]
	} else {
		f.n.data = append(f.n.data, make([]byte, size-int64(len(f.n.data)))...)
	}
	f.n.modTime = time.Now()
	return nil
}

func (f *memFile) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return &fs.PathError{Op: "close", Path: f.name, Err: fs.ErrClosed}
	}
	f.closed = true
	if f.n.locker == f {
		f.n.locker = nil
	}
	return nil
}

// tryLock takes the file's lock for f, as flock(2) with LOCK_EX|LOCK_NB:
// EWOULDBLOCK when another open file holds it, released by unlock or
// Close.
func (f *memFile) tryLock() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("lock", true); err != nil {
		return err
	}
	if f.n.locker != nil && f.n.locker != f {
		return &fs.PathError{Op: "lock", Path: f.name, Err: syscall.EWOULDBLOCK}
	}
	f.n.locker = f
	return nil
}

func (f *memFile) unlock() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("unlock", true); err != nil {
		return err
	}
	if f.n.locker == f {
		f.n.locker = nil
	}
	return nil
}

var (
	_ FS   = OS{}
	_ FS   = (*MemFS)(nil)
	_ File = (*os.File)(nil)
)

// SyncAll makes everything in m durable, as if every file and directory had
// been synced: for the inputs a test writes before the code under test runs.
func (m *MemFS) SyncAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	var walk func(n *node)
	walk = func(n *node) {
		if !n.dir {
			n.synced = bytes.Clone(n.data)
			return
		}
		n.syncedChildren = maps.Clone(n.children)
		for _, c := range n.children {
			walk(c)
		}
	}
	walk(m.root)
}
