// Package filestore is the local-directory store, ckpt's embedded default.
//
// Every object is a file below the root directory. A write goes to a
// temporary file in the destination directory, is fsynced and closed, then
// renamed (Put) or hard-linked (Create, which must fail if the name exists)
// into place, and the directory is fsynced. A crash at any instant therefore
// leaves either the old state or the whole new file; at worst a temporary
// ".tmp-*" file, which the next holder of the job's lock removes. New
// directories are fsynced into their parents before anything is written in
// them, so that a file never survives a crash in a directory that did not.
//
// PutDeferred and DeleteDeferred (store.Deferred) leave out the directory
// fsync and remember the directory instead; Sync fsyncs each remembered
// directory once. A checkpoint of 64 blobs so costs 64 file fsyncs and
// one of the blob directory, not 128.
package filestore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/ckptdev/ckpt/internal/durable"
	"github.com/ckptdev/ckpt/internal/vfs"
	"github.com/ckptdev/ckpt/store"
)

const tmpPrefix = ".tmp-"

// Options configure a Store. The zero value is ready to use.
type Options struct {
	// Logger receives warnings such as the takeover of a stale lock.
	// Nil means slog.Default().
	Logger *slog.Logger
	// FS is the file system the store lives in. Nil means the operating
	// system's; tests give a vfs.MemFS (through crashtest.FS) to find
	// what a power loss would undo. Locks are flock(2) on the operating
	// system's file system, and held within the process on a MemFS.
	FS vfs.FS
}

// Store is a store.Store over a local directory.
type Store struct {
	root string
	log  *slog.Logger
	fs   vfs.FS

	mu     sync.Mutex
	closed bool
	held   map[*lease]struct{} // the locks this store holds
	// dirty holds the directories (absolute paths) in which a deferred
	// write or delete changed a name since their last fsync by Sync.
	dirty map[string]struct{}
}

var (
	_ store.Store    = (*Store)(nil)
	_ store.Deferred = (*Store)(nil)
)

// Open returns the store rooted at dir, creating the directory (durably) if
// it does not exist.
func Open(dir string, opts Options) (*Store, error) {
	if dir == "" {
		return nil, errors.New("filestore: empty directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("filestore: %w", err)
	}
	fsys := vfs.Or(opts.FS)
	if fi, err := fsys.Stat(abs); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("filestore: %s exists and is not a directory", abs)
	}
	if err := durable.MkdirAll(fsys, abs); err != nil {
		return nil, fmt.Errorf("filestore: create store directory: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Store{root: abs, log: log, fs: fsys, held: make(map[*lease]struct{}), dirty: make(map[string]struct{})}, nil
}

// Root returns the store's absolute directory.
func (s *Store) Root() string { return s.root }

func (s *Store) path(name string) (string, error) {
	if err := store.ValidName(name); err != nil {
		return "", fmt.Errorf("filestore: %w", err)
	}
	if err := s.checkOpen(); err != nil {
		return "", err
	}
	return filepath.Join(s.root, filepath.FromSlash(name)), nil
}

func (s *Store) checkOpen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("filestore: %w", store.ErrClosed)
	}
	return nil
}

// Put writes name atomically and durably, replacing any existing object.
func (s *Store) Put(ctx context.Context, name string, r io.Reader) error {
	return s.write(ctx, name, r, true, false)
}

// PutDeferred writes name atomically, replacing any existing object: the
// file's data is fsynced before it is renamed into place, so a crash
// leaves the old object or the new one, whole, but the rename is durable
// only once Sync has fsynced the directory.
func (s *Store) PutDeferred(ctx context.Context, name string, r io.Reader) error {
	return s.write(ctx, name, r, true, true)
}

// Create writes name atomically and durably, failing with store.ErrExist if
// it exists. The temporary file is hard-linked into place, which the kernel
// refuses if the name exists: check and write are one step.
func (s *Store) Create(ctx context.Context, name string, r io.Reader) error {
	return s.write(ctx, name, r, false, false)
}

func (s *Store) write(ctx context.Context, name string, r io.Reader, replace, deferred bool) (err error) {
	p, err := s.path(name)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("filestore: put %s: %w", name, err)
	}
	dir := filepath.Dir(p)
	if l := s.leaseOver(dir); l != nil {
		// A job's objects are written only while its lock file is the
		// one this process locked, and never into a recreated directory.
		if err := l.Check(ctx); err != nil {
			return fmt.Errorf("filestore: put %s: %w", name, err)
		}
		if err := mkdirBelow(s.fs, l.dir, dir); err != nil {
			if notExist(err) {
				return fmt.Errorf("filestore: put %s: %w: the directory %s of lock %s is gone", name, store.ErrLeaseLost, l.dir, l.name)
			}
			return fmt.Errorf("filestore: put %s: %w", name, err)
		}
	} else if err := durable.MkdirAll(s.fs, dir); err != nil {
		return fmt.Errorf("filestore: put %s: %w", name, err)
	}
	f, err := s.fs.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return fmt.Errorf("filestore: put %s: %w", name, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			s.fs.Remove(tmp)
		}
	}()
	if mr, ok := r.(inMemory); ok {
		// The bytes are in memory (a blob and its header): written as
		// they are, without a copy through a buffer. The context is
		// checked after, before anything is renamed.
		_, err = mr.WriteTo(writerOnly{f})
	} else {
		bufp := copyBufs.Get().(*[]byte)
		_, err = io.CopyBuffer(writerOnly{f}, ctxReader{ctx, r}, *bufp)
		copyBufs.Put(bufp)
	}
	if err != nil {
		return fmt.Errorf("filestore: put %s: write: %w", name, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("filestore: put %s: fsync: %w", name, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("filestore: put %s: close: %w", name, err)
	}
	if err = ctx.Err(); err != nil {
		return fmt.Errorf("filestore: put %s: %w", name, err)
	}
	if replace {
		if err = s.fs.Rename(tmp, p); err != nil {
			return fmt.Errorf("filestore: put %s: rename: %w", name, err)
		}
	} else {
		if err = s.fs.Link(tmp, p); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("filestore: create %s: %w", name, store.ErrExist)
			}
			return fmt.Errorf("filestore: create %s: link: %w", name, err)
		}
		// The object is in place; the temporary name is garbage now, and a
		// failure to remove it must not fail a write that happened.
		s.fs.Remove(tmp)
	}
	if deferred {
		s.markDirty(dir)
		return nil
	}
	if err = durable.SyncDir(s.fs, dir); err != nil {
		return fmt.Errorf("filestore: put %s: fsync directory: %w", name, err)
	}
	return nil
}

// Get opens name for reading.
func (s *Store) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	p, err := s.path(name)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("filestore: get %s: %w", name, err)
	}
	f, err := s.fs.Open(p)
	if err != nil {
		if notExist(err) {
			return nil, fmt.Errorf("filestore: get %s: %w", name, store.ErrNotFound)
		}
		return nil, fmt.Errorf("filestore: get %s: %w", name, err)
	}
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		f.Close()
		return nil, fmt.Errorf("filestore: get %s: is a directory: %w", name, store.ErrNotFound)
	}
	return f, nil
}

// List returns the names below the store root that start with prefix.
// Temporary files and lock files' internals are not objects and are skipped.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	if err := store.ValidPrefix(prefix); err != nil {
		return nil, fmt.Errorf("filestore: %w", err)
	}
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	// Walk only the deepest directory that the prefix names completely.
	base := ""
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		base = prefix[:i]
	}
	start := filepath.Join(s.root, filepath.FromSlash(base))
	var names []string
	err := vfs.WalkDir(s.fs, start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if notExist(err) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") && p != start {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("filestore: list %q: %w", prefix, err)
	}
	sort.Strings(names)
	return names, nil
}

// Delete removes name durably: when it returns, the removal survives a
// crash. Callers delete manifests before the blobs they name and rely on
// this order surviving.
func (s *Store) Delete(ctx context.Context, name string) error {
	return s.remove(ctx, name, false)
}

// DeleteDeferred removes name; the removal is durable once Sync has
// fsynced the directory, and a crash before that may bring the object
// back whole.
func (s *Store) DeleteDeferred(ctx context.Context, name string) error {
	return s.remove(ctx, name, true)
}

func (s *Store) remove(ctx context.Context, name string, deferred bool) error {
	p, err := s.path(name)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("filestore: delete %s: %w", name, err)
	}
	if fi, err := s.fs.Lstat(p); err == nil && fi.IsDir() {
		// A directory holds other objects and is not one itself: the
		// object name is missing. Removing the directory instead would
		// race with a Put creating a file in it.
		return nil
	}
	if err := s.fs.Remove(p); err != nil {
		if notExist(err) {
			return nil
		}
		return fmt.Errorf("filestore: delete %s: %w", name, err)
	}
	if deferred {
		s.markDirty(filepath.Dir(p))
		return nil
	}
	if err := durable.SyncDir(s.fs, filepath.Dir(p)); err != nil {
		return fmt.Errorf("filestore: delete %s: fsync directory: %w", name, err)
	}
	return nil
}

// markDirty records that a name in dir changed without a directory fsync.
// It is called after the change, so a Sync that starts later sees it.
func (s *Store) markDirty(dir string) {
	s.mu.Lock()
	s.dirty[dir] = struct{}{}
	s.mu.Unlock()
}

// Sync fsyncs every directory in which a deferred write or delete of a
// name starting with prefix changed a name, each once. A directory is
// taken off the list before its fsync, so a change made during the fsync
// marks it again and the next Sync covers it.
func (s *Store) Sync(ctx context.Context, prefix string) error {
	if err := store.ValidPrefix(prefix); err != nil {
		return fmt.Errorf("filestore: %w", err)
	}
	if err := s.checkOpen(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("filestore: sync %q: %w", prefix, err)
	}
	var dirs []string
	s.mu.Lock()
	for dir := range s.dirty {
		if s.holds(dir, prefix) {
			dirs = append(dirs, dir)
			delete(s.dirty, dir)
		}
	}
	s.mu.Unlock()
	sort.Strings(dirs)
	var errs []error
	for i, dir := range dirs {
		if err := durable.SyncDir(s.fs, dir); err != nil {
			// Not durable: the directories not synced stay on the list,
			// and the error fails the caller's commit.
			for _, d := range dirs[i:] {
				s.markDirty(d)
			}
			errs = append(errs, fmt.Errorf("filestore: sync %q: fsync directory: %w", prefix, err))
			break
		}
	}
	return errors.Join(errs...)
}

// holds reports whether the directory dir (absolute) may hold an object
// whose name starts with prefix: its objects' names start with its own
// path and a slash, which either extends prefix or is extended by it.
func (s *Store) holds(dir, prefix string) bool {
	rel, err := filepath.Rel(s.root, dir)
	if err != nil {
		return true
	}
	names := ""
	if rel != "." {
		names = filepath.ToSlash(rel) + "/"
	}
	return strings.HasPrefix(names, prefix) || strings.HasPrefix(prefix, names)
}

// Close marks the store closed. Files are opened per call, so there is
// nothing else to release.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// removeTemps deletes temporary files left by crashed writers below dir.
// It runs with the lock of that directory's job held, so no live writer can
// own them.
func (s *Store) removeTemps(dir string) {
	_ = vfs.WalkDir(s.fs, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if !d.IsDir() && strings.HasPrefix(d.Name(), tmpPrefix) {
			if err := s.fs.Remove(p); err == nil {
				s.log.Debug("filestore: removed temporary file left by an interrupted write", "path", p)
			}
		}
		return nil
	})
}

// notExist reports whether err means that a path names nothing. ENOTDIR
// counts: "a/b" does not exist when the object "a" is a file.
func notExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// copyBufs holds copy buffers larger than io.Copy's 32 KiB, so that a
// large object is written in few system calls.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// inMemory is a reader over bytes it holds, such as *bytes.Reader and
// *strings.Reader: Len says how many are left, and WriteTo hands them
// over without a copy. A reader that streams (a file, a network body)
// goes through the copy loop, which checks the context between reads.
type inMemory interface {
	io.WriterTo
	Len() int
}

// writerOnly hides *os.File's ReadFrom, which would ignore our buffer.
type writerOnly struct{ io.Writer }

// ctxReader stops a long copy when its context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
