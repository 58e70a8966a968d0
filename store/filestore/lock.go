//go:build unix

package filestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ckptdev/ckpt/internal/durable"
	"github.com/ckptdev/ckpt/internal/vfs"
	"github.com/ckptdev/ckpt/store"
)

// lockRecord is the content of a lock file. The kernel lock (flock) is the
// lock; the record only tells people who holds it and carries the fencing
// token across holders. flock is released by the kernel when its holder
// dies, however it dies, so a stale lock is one whose file names a holder
// but whose flock nobody holds: taking it over is safe by construction.
type lockRecord struct {
	Token    uint64       `json:"token"`
	Holder   *store.Owner `json:"holder,omitempty"`
	Released bool         `json:"released,omitempty"`
}

// Lock takes the lock file name (created if missing; never deleted, since
// deleting a lock file lets two holders lock two different inodes). On
// success it removes temporary files that crashed writers left in the lock
// file's directory tree.
func (s *Store) Lock(ctx context.Context, name string, owner store.Owner) (store.Lease, error) {
	p, err := s.path(name)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("filestore: lock %s: %w", name, err)
	}
	if err := durable.MkdirAll(s.fs, filepath.Dir(p)); err != nil {
		return nil, fmt.Errorf("filestore: lock %s: %w", name, err)
	}
	f, err := s.fs.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("filestore: lock %s: %w", name, err)
	}
	// The lock file carries the fencing token from holder to holder: its
	// directory entry must be durable before a token is handed out, or a
	// machine crash could bring the token back to 1.
	if err := durable.SyncDir(s.fs, filepath.Dir(p)); err != nil {
		f.Close()
		return nil, fmt.Errorf("filestore: lock %s: fsync directory: %w", name, err)
	}
	if err := vfs.TryLock(f); err != nil {
		rec, _ := readRecord(f)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			le := &store.LockedError{Name: name}
			if rec.Holder != nil {
				le.Holder = *rec.Holder
			}
			return nil, fmt.Errorf("filestore: %w", le)
		}
		return nil, fmt.Errorf("filestore: lock %s: %w", name, err)
	}
	prev, err := readRecord(f)
	if err != nil {
		// An unreadable record (torn by a crash mid-write) only costs us the
		// old token; the time keeps new tokens increasing anyway.
		s.log.Warn("filestore: lock file unreadable, rewriting it", "lock", p, "err", err)
		prev = lockRecord{Token: uint64(time.Now().UnixNano())}
	}
	if prev.Holder != nil && !prev.Released {
		s.log.Warn("filestore: taking over a lock whose holder is gone", "lock", p, "previous_holder", prev.Holder.String())
	}
	if owner.Since.IsZero() {
		owner.Since = time.Now().UTC()
	}
	rec := lockRecord{Token: prev.Token + 1, Holder: &owner}
	if err := writeRecord(f, rec); err != nil {
		vfs.Unlock(f)
		f.Close()
		return nil, fmt.Errorf("filestore: lock %s: write lock record: %w", name, err)
	}
	id, err := f.Stat()
	if err != nil {
		vfs.Unlock(f)
		f.Close()
		return nil, fmt.Errorf("filestore: lock %s: %w", name, err)
	}
	s.removeTemps(filepath.Dir(p))
	l := &lease{s: s, f: f, id: id, rec: rec, name: name, path: p, dir: filepath.Dir(p)}
	s.mu.Lock()
	s.held[l] = struct{}{}
	s.mu.Unlock()
	return l, nil
}

// lease is a held flock. The kernel keeps the lock on the open file, not
// on its name: a holder whose lock file was deleted (its job's directory
// removed under it) still holds a lock, on a file nobody else can open,
// while a second process creates a new file of that name and locks it.
// So a lease is held only while its name still leads to its file, which
// Check verifies (device and inode), and writes below the lock file's
// directory never recreate that directory.
type lease struct {
	s    *Store
	name string
	path string      // the lock file
	dir  string      // the lock file's directory: the job's
	id   fs.FileInfo // of the open lock file, for its identity

	mu   sync.Mutex
	f    vfs.File // nil once released
	rec  lockRecord
	lost error // why the lease ended while held
}

func (l *lease) Token() uint64 { return l.rec.Token }

// Check reports store.ErrLeaseLost once the lease is released, or once
// its lock file's name no longer leads to the file it locked: the file,
// or its directory, was deleted or replaced. One stat.
func (l *lease) Check(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.f == nil:
		return fmt.Errorf("filestore: lock %s: %w: released", l.name, store.ErrLeaseLost)
	case l.lost != nil:
		return l.lost
	}
	fi, err := l.s.fs.Stat(l.path)
	switch {
	case err != nil && !notExist(err):
		return fmt.Errorf("filestore: lock %s: check the lock file: %w", l.name, err)
	case err != nil || !vfs.SameFile(fi, l.id):
		what := "was deleted"
		if err == nil {
			what = "was replaced by another file"
		}
		l.lost = fmt.Errorf("filestore: lock %s: %w: the lock file %s %s (was the job's directory removed?); another run may hold the job now, so this one stops", l.name, store.ErrLeaseLost, l.path, what)
		l.s.log.Warn("filestore: lease lost: the lock file "+what, "lock", l.path)
		return l.lost
	}
	return nil
}

// Release marks the record released (keeping the token) and unlocks. A
// lease whose lock file was deleted writes the record into the unlinked
// file, which is harmless.
func (l *lease) Release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	l.s.mu.Lock()
	delete(l.s.held, l)
	l.s.mu.Unlock()
	rec := l.rec
	rec.Released = true
	werr := writeRecord(l.f, rec)
	uerr := vfs.Unlock(l.f)
	cerr := l.f.Close()
	l.f = nil
	if err := errors.Join(werr, uerr, cerr); err != nil {
		return fmt.Errorf("filestore: release %s: %w", l.name, err)
	}
	return nil
}

// leaseOver returns the lease held by this store whose directory holds
// dir, or nil. Of a lost lease and a live one of the same directory (the
// job was taken anew after its directory was deleted), the live one.
func (s *Store) leaseOver(dir string) *lease {
	var over []*lease
	s.mu.Lock()
	for l := range s.held {
		if dir == l.dir || strings.HasPrefix(dir, l.dir+string(filepath.Separator)) {
			over = append(over, l)
		}
	}
	s.mu.Unlock()
	for _, l := range over {
		l.mu.Lock()
		lost := l.lost != nil
		l.mu.Unlock()
		if !lost {
			return l
		}
	}
	if len(over) > 0 {
		return over[0]
	}
	return nil
}

// mkdirBelow creates dir and its missing parents up to base, which must
// exist: the directory of a held lock is never recreated, since a new one
// would have no lock in it. Each new directory is fsynced into its parent.
func mkdirBelow(fsys vfs.FS, base, dir string) error {
	if dir == base {
		if _, err := fsys.Stat(base); err != nil {
			return err
		}
		return nil
	}
	if fi, err := fsys.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if err := mkdirBelow(fsys, base, parent); err != nil {
		return err
	}
	if err := fsys.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return durable.SyncDir(fsys, parent)
}

func readRecord(f vfs.File) (lockRecord, error) {
	var rec lockRecord
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<20))
	if err != nil || len(b) == 0 {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return lockRecord{}, err
	}
	return rec, nil
}

func writeRecord(f vfs.File, rec lockRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	// Write, then cut: a crash between the two leaves the new record
	// followed by the old one's tail, which does not parse and so takes the
	// time-based token path in Lock. Cutting first would leave an empty
	// file, which reads as a fresh lock and restarts tokens at 1.
	if _, err := f.WriteAt(b, 0); err != nil {
		return err
	}
	if err := f.Truncate(int64(len(b))); err != nil {
		return err
	}
	return f.Sync()
}
