package ckpt

import (
	"time"
)

// Observer is told what a job's checkpoints do, as they happen: the hook
// through which metrics (the metrics package exports them to Prometheus)
// or a user's own monitoring follow a running job without the engine
// depending on them. Set it in Config.Observer.
//
// Its methods are called from the job's goroutine or from the goroutine
// that commits a checkpoint in the background, never from two at once for
// one job; they must return quickly and must not call back into the job.
// Every Checkpoint passed is committed and must not be modified.
type Observer interface {
	// CheckpointCommitted is called after a checkpoint is committed (its
	// manifest written). took runs from the instant the checkpoint was
	// taken (the capture of state) to the commit.
	CheckpointCommitted(job string, cp *Checkpoint, took time.Duration)
	// CheckpointFailed is called when a checkpoint was not committed; the
	// previous one stays the newest. took is as for CheckpointCommitted.
	CheckpointFailed(job string, err error, took time.Duration)
	// Restored is called once the job is open: cp is the checkpoint it
	// resumed from (nil for a job that starts from the beginning) and took
	// how long reading and verifying it took.
	Restored(job string, cp *Checkpoint, took time.Duration)
}

// ObserverFuncs is an Observer made of functions; a nil function ignores
// its event.
type ObserverFuncs struct {
	Committed func(job string, cp *Checkpoint, took time.Duration)
	Failed    func(job string, err error, took time.Duration)
	Restore   func(job string, cp *Checkpoint, took time.Duration)
}

// CheckpointCommitted calls f.Committed, if set.
func (f ObserverFuncs) CheckpointCommitted(job string, cp *Checkpoint, took time.Duration) {
	if f.Committed != nil {
		f.Committed(job, cp, took)
	}
}

// CheckpointFailed calls f.Failed, if set.
func (f ObserverFuncs) CheckpointFailed(job string, err error, took time.Duration) {
	if f.Failed != nil {
		f.Failed(job, err, took)
	}
}

// Restored calls f.Restore, if set.
func (f ObserverFuncs) Restored(job string, cp *Checkpoint, took time.Duration) {
	if f.Restore != nil {
		f.Restore(job, cp, took)
	}
}

// observeCommit reports the end of a checkpoint taken at start to o (nil:
// nobody listens): committed when err is nil, failed otherwise. The
// engine calls it once per checkpoint, where the commit returns.
func observeCommit(o Observer, job string, cp *Checkpoint, start time.Time, err error) {
	if o == nil {
		return
	}
	took := time.Since(start)
	if err != nil {
		o.CheckpointFailed(job, err, took)
		return
	}
	o.CheckpointCommitted(job, cp, took)
}

// observeRestore reports to o (nil: nobody listens) that job opened from
// cp (nil: from the beginning) after a restore that began at start.
func observeRestore(o Observer, job string, cp *Checkpoint, start time.Time) {
	if o != nil {
		o.Restored(job, cp, time.Since(start))
	}
}
