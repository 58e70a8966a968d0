//go:build unix

package vfs

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// PowerLossEnv names the environment variable that turns the power-loss
// journal on: when it names a file, Default returns a Journal writing to
// it, so that every change ckpt makes to files (the file store, file
// sinks, durable directories) is logged, with what it overwrote, before it
// is made. After the process is killed, ApplyPowerLoss reads the log and
// undoes what a power loss would have lost. `ckpt crashtest --power-loss`
// sets it for each run. Unset (the normal case) it costs nothing.
const PowerLossEnv = "CKPT_POWERLOSS_LOG"

var (
	defaultOnce sync.Once
	defaultFS   FS
)

// Default returns the file system of the operating system, which code uses
// when it is given no other; a Journal over it when PowerLossEnv is set.
func Default() FS {
	defaultOnce.Do(func() {
		defaultFS = OS{}
		if p := os.Getenv(PowerLossEnv); p != "" {
			j, err := NewJournal(p)
			if err != nil {
				defaultFS = brokenFS{err: err}
				return
			}
			defaultFS = j
		}
	})
	return defaultFS
}

// journalRecord is one line of the power-loss log. Name changes and data
// changes are logged before they are made, with what they replace; syncs
// after they return. A "cancel" record withdraws the record before it,
// whose operation failed.
type journalRecord struct {
	Op   string `json:"op"`             // create write truncate sync syncdir rename link remove mkdir cancel
	Path string `json:"path,omitempty"` // absolute
	New  string `json:"new,omitempty"`  // rename and link: the new name
	Dev  uint64 `json:"dev,omitempty"`  // write, truncate, sync, rename: the file
	Ino  uint64 `json:"ino,omitempty"`
	Off  int64  `json:"off,omitempty"`  // write: offset; truncate: new size
	Size int64  `json:"size,omitempty"` // write, truncate: size before
	Pre  []byte `json:"pre,omitempty"`  // write, truncate: the bytes replaced
	Keep string `json:"keep,omitempty"` // remove, rename: a link to the file replaced
	Dir  bool   `json:"dir,omitempty"`  // remove: of a directory
	// A path may name several directories in turn (made, removed, made
	// again), and a sync covers only the one it was made on; inode
	// numbers are reused, so the journal numbers the directories it
	// makes: Gen of a mkdir, of a directory's remove and of a syncdir;
	// PGen and NGen of the directories holding Path and New. Zero is a
	// directory that existed before the log began.
	Gen  int64 `json:"gen,omitempty"`
	PGen int64 `json:"pgen,omitempty"`
	NGen int64 `json:"ngen,omitempty"`

	last bool // the log's last record: the kill may have come before its change was made
}

// withParents sets r's directory generations from the names it holds.
// Call with j.mu held.
func (j *Journal) withParents(r journalRecord) journalRecord {
	r.PGen = j.gen[filepath.Dir(r.Path)]
	if r.New != "" {
		r.NGen = j.gen[filepath.Dir(r.New)]
	}
	return r
}

// Journal is the operating system's file system, logging every change to
// a power-loss log as it goes (see PowerLossEnv). It serializes changes,
// so that the log's order is the order they took effect in; it is meant
// for crash tests, not for speed.
type Journal struct {
	mu   sync.Mutex
	log  *os.File
	keep string // directory of links to files removed or replaced
	seq  int
	gen  map[string]int64 // the generation of each directory made through the journal
	gens int64
	err  error // the first failure to log: every later change fails with it
}

// NewJournal opens (appending) the power-loss log at path, and the
// directory path+".keep" where removed and replaced files are kept.
func NewJournal(path string) (*Journal, error) {
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("vfs: power-loss log: %w", err)
	}
	keep := path + ".keep"
	if err := os.MkdirAll(keep, 0o755); err != nil {
		return nil, fmt.Errorf("vfs: power-loss log: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("vfs: power-loss log: %w", err)
	}
	return &Journal{log: f, keep: keep, gen: map[string]int64{}}, nil
}

// Close closes the log.
func (j *Journal) Close() error { return j.log.Close() }

// record appends r to the log in one write. Call with j.mu held.
func (j *Journal) record(r journalRecord) error {
	if j.err != nil {
		return j.err
	}
	b, err := json.Marshal(r)
	if err == nil {
		_, err = j.log.Write(append(b, '\n'))
	}
	if err != nil {
		j.err = fmt.Errorf("vfs: power-loss log: %w", err)
	}
	return j.err
}

// change logs r, runs op, and withdraws r if op fails. Call with j.mu held.
func (j *Journal) change(r journalRecord, op func() error) error {
	if err := j.record(r); err != nil {
		return err
	}
	if err := op(); err != nil {
		if r.Keep != "" {
			os.Remove(r.Keep)
		}
		if cerr := j.record(journalRecord{Op: "cancel"}); cerr != nil {
			return errors.Join(err, cerr)
		}
		return err
	}
	return nil
}

// keepLink keeps the file at p reachable from the keep directory (a hard
// link, or a copy where a link cannot be made), for undoing its removal.
func (j *Journal) keepLink(p string) (string, error) {
	j.seq++
	k := filepath.Join(j.keep, strconv.Itoa(os.Getpid())+"-"+strconv.Itoa(j.seq))
	if err := os.Link(p, k); err == nil {
		return k, nil
	}
	in, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.OpenFile(k, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return "", err
	}
	return k, out.Close()
}

func abs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return filepath.Clean(p)
}

func identity(fi fs.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), uint64(st.Ino)
	}
	return 0, 0
}

// OpenFile implements FS: creating a file and truncating one are logged.
func (j *Journal) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	if flag&(os.O_CREATE|os.O_TRUNC) == 0 {
		return j.open(name, flag, perm)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	p := abs(name)
	fi, err := os.Lstat(p)
	var f *os.File
	open := func() (err error) { f, err = os.OpenFile(name, flag, perm); return err }
	switch {
	case errors.Is(err, fs.ErrNotExist) && flag&os.O_CREATE != 0:
		err = j.change(j.withParents(journalRecord{Op: "create", Path: p}), open)
	case err == nil && fi.Mode().IsRegular() && flag&os.O_TRUNC != 0 && flag&(os.O_WRONLY|os.O_RDWR) != 0 && fi.Size() > 0:
		var pre []byte
		if pre, err = os.ReadFile(p); err == nil {
			dev, ino := identity(fi)
			err = j.change(journalRecord{Op: "truncate", Path: p, Dev: dev, Ino: ino, Off: 0, Size: int64(len(pre)), Pre: pre}, open)
		}
	default:
		err = open()
	}
	if err != nil {
		return nil, err
	}
	return j.wrap(f, p, flag)
}

func (j *Journal) open(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return j.wrap(f, abs(name), flag)
}

func (j *Journal) wrap(f *os.File, p string, flag int) (File, error) {
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	dev, ino := identity(fi)
	return &journalFile{File: f, osf: f, j: j, path: p, dir: fi.IsDir(), dev: dev, ino: ino, append: flag&os.O_APPEND != 0}, nil
}

// Open implements FS.
func (j *Journal) Open(name string) (File, error) { return j.open(name, os.O_RDONLY, 0) }

// CreateTemp implements FS, naming the file as os.CreateTemp does.
func (j *Journal) CreateTemp(dir, pattern string) (File, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	if strings.ContainsRune(pattern, os.PathSeparator) {
		return nil, &fs.PathError{Op: "createtemp", Path: pattern, Err: errors.New("pattern contains path separator")}
	}
	prefix, suffix := pattern, ""
	if i := strings.LastIndexByte(pattern, '*'); i >= 0 {
		prefix, suffix = pattern[:i], pattern[i+1:]
	}
	for try := 0; ; try++ {
		name := filepath.Join(dir, prefix+strconv.FormatUint(uint64(rand.Uint32()), 10)+suffix)
		f, err := j.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) && try < 10000 {
			continue
		}
		return f, err
	}
}

// Rename implements FS.
func (j *Journal) Rename(oldpath, newpath string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	fi, err := os.Lstat(oldpath)
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	dev, ino := identity(fi)
	r := j.withParents(journalRecord{Op: "rename", Path: abs(oldpath), New: abs(newpath), Dev: dev, Ino: ino})
	if nfi, err := os.Lstat(newpath); err == nil && !os.SameFile(fi, nfi) && nfi.Mode().IsRegular() {
		if r.Keep, err = j.keepLink(newpath); err != nil {
			return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
		}
	}
	return j.change(r, func() error { return os.Rename(oldpath, newpath) })
}

// Link implements FS.
func (j *Journal) Link(oldname, newname string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, err := os.Lstat(newname); err == nil {
		return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: fs.ErrExist}
	}
	return j.change(j.withParents(journalRecord{Op: "link", Path: abs(oldname), New: abs(newname)}), func() error { return os.Link(oldname, newname) })
}

// Remove implements FS.
func (j *Journal) Remove(name string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	fi, err := os.Lstat(name)
	if err != nil {
		return &fs.PathError{Op: "remove", Path: name, Err: err}
	}
	p := abs(name)
	r := j.withParents(journalRecord{Op: "remove", Path: p, Dir: fi.IsDir()})
	if r.Dir {
		r.Gen = j.gen[p]
	}
	if fi.Mode().IsRegular() {
		if r.Keep, err = j.keepLink(name); err != nil {
			return &fs.PathError{Op: "remove", Path: name, Err: err}
		}
	}
	if err := j.change(r, func() error { return os.Remove(name) }); err != nil {
		return err
	}
	if r.Dir {
		delete(j.gen, p)
	}
	return nil
}

// Mkdir implements FS.
func (j *Journal) Mkdir(name string, perm fs.FileMode) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, err := os.Lstat(name); err == nil {
		return &fs.PathError{Op: "mkdir", Path: name, Err: fs.ErrExist}
	}
	p := abs(name)
	j.gens++
	r := j.withParents(journalRecord{Op: "mkdir", Path: p, Gen: j.gens})
	if err := j.change(r, func() error { return os.Mkdir(name, perm) }); err != nil {
		return err
	}
	j.gen[p] = r.Gen
	return nil
}

// Stat implements FS.
func (j *Journal) Stat(name string) (fs.FileInfo, error) { return os.Stat(name) }

// Lstat implements FS.
func (j *Journal) Lstat(name string) (fs.FileInfo, error) { return os.Lstat(name) }

// ReadDir implements FS.
func (j *Journal) ReadDir(name string) ([]fs.DirEntry, error) { return os.ReadDir(name) }

// SyncDir implements FS.
func (j *Journal) SyncDir(dir string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := (OS{}).SyncDir(dir); err != nil {
		return err
	}
	p := abs(dir)
	return j.record(journalRecord{Op: "syncdir", Path: p, Gen: j.gen[p]})
}

// journalFile is a file of a Journal: writes, truncations and syncs are
// logged.
type journalFile struct {
	File     // an *os.File, embedded as the interface so that none of its other methods (ReadFrom) bypass the log
	osf      *os.File
	j        *Journal
	path     string
	dir      bool
	dev, ino uint64
	append   bool
	reader   *os.File // for reading what a write replaces, when File is write-only
}

// preimage returns the bytes of [off, off+n) that exist now, and the
// file's size.
func (f *journalFile) preimage(off, n int64) ([]byte, int64, error) {
	fi, err := f.File.Stat()
	if err != nil {
		return nil, 0, err
	}
	size := fi.Size()
	end := min(off+n, size)
	if end <= off {
		return nil, size, nil
	}
	if f.reader == nil {
		r, err := os.Open("/proc/self/fd/" + strconv.Itoa(int(f.osf.Fd())))
		if err != nil {
			return nil, 0, err
		}
		f.reader = r
	}
	pre := make([]byte, end-off)
	if _, err := f.reader.ReadAt(pre, off); err != nil {
		return nil, 0, err
	}
	return pre, size, nil
}

func (f *journalFile) logWrite(off, n int64, op func() error) error {
	pre, size, err := f.preimage(off, n)
	if err != nil {
		return &fs.PathError{Op: "write", Path: f.Name(), Err: fmt.Errorf("power-loss log: %w", err)}
	}
	return f.j.change(journalRecord{Op: "write", Path: f.path, Dev: f.dev, Ino: f.ino, Off: off, Size: size, Pre: pre}, op)
}

func (f *journalFile) Write(p []byte) (n int, err error) {
	f.j.mu.Lock()
	defer f.j.mu.Unlock()
	var off int64
	if f.append {
		fi, err := f.File.Stat()
		if err != nil {
			return 0, err
		}
		off = fi.Size()
	} else if off, err = f.File.Seek(0, io.SeekCurrent); err != nil {
		return 0, err
	}
	err = f.logWrite(off, int64(len(p)), func() (err error) { n, err = f.File.Write(p); return err })
	return n, err
}

func (f *journalFile) WriteAt(p []byte, off int64) (n int, err error) {
	f.j.mu.Lock()
	defer f.j.mu.Unlock()
	err = f.logWrite(off, int64(len(p)), func() (err error) { n, err = f.File.WriteAt(p, off); return err })
	return n, err
}

func (f *journalFile) Truncate(size int64) error {
	f.j.mu.Lock()
	defer f.j.mu.Unlock()
	pre, old, err := f.preimage(size, 1<<62)
	if err != nil {
		return &fs.PathError{Op: "truncate", Path: f.Name(), Err: fmt.Errorf("power-loss log: %w", err)}
	}
	return f.j.change(journalRecord{Op: "truncate", Path: f.path, Dev: f.dev, Ino: f.ino, Off: size, Size: old, Pre: pre}, func() error { return f.File.Truncate(size) })
}

func (f *journalFile) Sync() error {
	f.j.mu.Lock()
	defer f.j.mu.Unlock()
	if err := f.File.Sync(); err != nil {
		return err
	}
	if f.dir {
		return f.j.record(journalRecord{Op: "syncdir", Path: f.path, Gen: f.j.gen[f.path]})
	}
	return f.j.record(journalRecord{Op: "sync", Path: f.path, Dev: f.dev, Ino: f.ino})
}

func (f *journalFile) Close() error {
	if f.reader != nil {
		f.reader.Close()
	}
	return f.File.Close()
}

func (f *journalFile) tryLock() error { return TryLock(f.File) }
func (f *journalFile) unlock() error  { return Unlock(f.File) }

// brokenFS fails every operation with err: the power-loss journal that
// PowerLossEnv asks for could not be opened, and running without it would
// make the crash test prove nothing.
type brokenFS struct{ err error }

func (b brokenFS) OpenFile(string, int, fs.FileMode) (File, error) { return nil, b.err }
func (b brokenFS) Open(string) (File, error)                       { return nil, b.err }
func (b brokenFS) CreateTemp(string, string) (File, error)         { return nil, b.err }
func (b brokenFS) Rename(string, string) error                     { return b.err }
func (b brokenFS) Link(string, string) error                       { return b.err }
func (b brokenFS) Remove(string) error                             { return b.err }
func (b brokenFS) Mkdir(string, fs.FileMode) error                 { return b.err }
func (b brokenFS) Stat(string) (fs.FileInfo, error)                { return nil, b.err }
func (b brokenFS) Lstat(string) (fs.FileInfo, error)               { return nil, b.err }
func (b brokenFS) ReadDir(string) ([]fs.DirEntry, error)           { return nil, b.err }
func (b brokenFS) SyncDir(string) error                            { return b.err }

var (
	_ FS     = (*Journal)(nil)
	_ locker = (*journalFile)(nil)
)
