package ckpt

import (
	"errors"
	"fmt"

	"github.com/ckptdev/ckpt/store"
)

// Errors to check with errors.Is.
var (
	// ErrCorrupt: a checkpoint or one of its blobs failed verification
	// (torn, truncated, a flipped byte, a missing blob). The error is also a
	// *CorruptError naming what.
	ErrCorrupt = errors.New("corrupt checkpoint")
	// ErrNoValidCheckpoint: a job has checkpoints and none verifies. ckpt
	// never starts such a job from scratch on its own; the user decides
	// (restore a backup, or restart the job).
	ErrNoValidCheckpoint = errors.New("no valid checkpoint")
	// ErrFormat: a checkpoint was written in a format this version of ckpt
	// does not read (usually by a newer ckpt).
	ErrFormat = errors.New("unsupported checkpoint format")
	// ErrInterrupted: a shutdown signal arrived; the shutdown checkpoint was
	// saved and the job should stop. The next run resumes from it.
	ErrInterrupted = errors.New("interrupted by signal; checkpoint saved")
	// ErrInvalidJobName: a job name that could escape the store or is empty.
	ErrInvalidJobName = errors.New("invalid job name")
	// ErrNotFound: no such checkpoint or job.
	ErrNotFound = store.ErrNotFound
	// ErrLocked: another process holds the job. The error is also a
	// *store.LockedError naming the holder.
	ErrLocked = store.ErrLocked
)

// CorruptError names the checkpoint and the object that failed to verify.
type CorruptError struct {
	Job    string // empty for a value saved outside a job
	Seq    uint64 // 0 when the sequence number itself is unknown
	Object string // the store object at fault
	Err    error  // what is wrong with it
}

func (e *CorruptError) Error() string {
	if e.Job == "" {
		return fmt.Sprintf("corrupt object %s: %v", e.Object, e.Err)
	}
	return fmt.Sprintf("checkpoint %d of job %q is corrupt: %s: %v", e.Seq, e.Job, e.Object, e.Err)
}

// Is reports whether target is ErrCorrupt.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Unwrap returns the underlying cause.
func (e *CorruptError) Unwrap() error { return e.Err }
