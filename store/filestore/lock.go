//go:build unix

package filestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ckptdev/ckpt/internal/durable"
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
	if err := durable.MkdirAll(filepath.Dir(p)); err != nil {
		return nil, fmt.Errorf("filestore: lock %s: %w", name, err)
	}
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("filestore: lock %s: %w", name, err)
	}
	// The lock file carries the fencing token from holder to holder: its
	// directory entry must be durable before a token is handed out, or a
	// machine crash could bring the token back to 1.
	if err := durable.SyncDir(filepath.Dir(p)); err != nil {
		f.Close()
		return nil, fmt.Errorf("filestore: lock %s: fsync directory: %w", name, err)
	}
	if err := flock(f, unix.LOCK_EX|unix.LOCK_NB); err != nil {
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
		flock(f, unix.LOCK_UN)
		f.Close()
		return nil, fmt.Errorf("filestore: lock %s: write lock record: %w", name, err)
	}
	s.removeTemps(filepath.Dir(p))
	return &lease{f: f, rec: rec, name: name}, nil
}

type lease struct {
	mu   sync.Mutex
	f    *os.File
	rec  lockRecord
	name string
}

func (l *lease) Token() uint64 { return l.rec.Token }

// Check reports whether the lease is still held. A flock cannot be taken
// from a live holder, so only Release ends it.
func (l *lease) Check(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return fmt.Errorf("filestore: lock %s: %w", l.name, store.ErrLeaseLost)
	}
	return nil
}

// Release marks the record released (keeping the token) and unlocks.
func (l *lease) Release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	rec := l.rec
	rec.Released = true
	werr := writeRecord(l.f, rec)
	uerr := flock(l.f, unix.LOCK_UN)
	cerr := l.f.Close()
	l.f = nil
	if err := errors.Join(werr, uerr, cerr); err != nil {
		return fmt.Errorf("filestore: release %s: %w", l.name, err)
	}
	return nil
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}

func readRecord(f *os.File) (lockRecord, error) {
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

func writeRecord(f *os.File, rec lockRecord) error {
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
