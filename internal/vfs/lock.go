//go:build unix

package vfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// locker is a file that locks itself within the process: a MemFS file, or
// a wrapper of one.
type locker interface {
	tryLock() error
	unlock() error
}

// TryLock takes an exclusive advisory lock on the open file f without
// waiting, as flock(2) with LOCK_EX|LOCK_NB does: for a file of the
// operating system it is flock(2) on its descriptor, seen by every
// process; for a MemFS file an equivalent lock within the process. It
// fails with an error matching unix.EWOULDBLOCK when another open file
// holds the lock. The lock ends with Unlock, or when f is closed, or
// when its holder dies.
func TryLock(f File) error {
	switch f := f.(type) {
	case *os.File:
		return flock(f, unix.LOCK_EX|unix.LOCK_NB)
	case locker:
		return f.tryLock()
	}
	return &fs.PathError{Op: "lock", Path: f.Name(), Err: fmt.Errorf("%T cannot be locked: %w", f, errors.ErrUnsupported)}
}

// Unlock releases the lock TryLock took on f.
func Unlock(f File) error {
	switch f := f.(type) {
	case *os.File:
		return flock(f, unix.LOCK_UN)
	case locker:
		return f.unlock()
	}
	return &fs.PathError{Op: "unlock", Path: f.Name(), Err: fmt.Errorf("%T cannot be locked: %w", f, errors.ErrUnsupported)}
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			if err != nil {
				return &fs.PathError{Op: "flock", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}
