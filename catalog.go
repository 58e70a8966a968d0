package ckpt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/ckptdev/ckpt/codec"
	"github.com/ckptdev/ckpt/store"
)

// The functions in this file operate on a store from outside a running
// job: the `ckpt checkpoints` commands call them. Reading takes no lock;
// changing (Prune, Delete, DeleteJob) takes the job's lock, so a running
// job is never pruned under its feet.

// Jobs returns the names of the jobs that have checkpoints in st, sorted.
func Jobs(ctx context.Context, st store.Store) ([]string, error) {
	names, err := st.List(ctx, "jobs/")
	if err != nil {
		return nil, fmt.Errorf("ckpt: list jobs: %w", err)
	}
	var jobs []string
	for _, n := range names {
		job, rest, ok := strings.Cut(strings.TrimPrefix(n, "jobs/"), "/")
		if ok && strings.HasPrefix(rest, "checkpoints/") && (len(jobs) == 0 || jobs[len(jobs)-1] != job) {
			jobs = append(jobs, job)
		}
	}
	slices.Sort(jobs)
	return slices.Compact(jobs), nil
}

// List returns every checkpoint of job, oldest first. A manifest that does
// not decode is listed with its error. A job without checkpoints gives an
// empty list, not an error.
func List(ctx context.Context, st store.Store, job string) ([]Entry, error) {
	if err := ValidJobName(job); err != nil {
		return nil, fmt.Errorf("ckpt: %w", err)
	}
	return listManifests(ctx, st, job)
}

// Get reads checkpoint seq of job and verifies its manifest (not its
// blobs; see Verify).
func Get(ctx context.Context, st store.Store, job string, seq uint64) (*Checkpoint, error) {
	if err := ValidJobName(job); err != nil {
		return nil, fmt.Errorf("ckpt: %w", err)
	}
	return readManifest(ctx, st, job, seq)
}

// Verify reads cp's blobs and checks every checksum. It returns nil, an
// error wrapping ErrCorrupt (a *CorruptError) that names the bad object,
// or the error that kept it from reading them all (a store failure, a
// cancelled context).
func Verify(ctx context.Context, st store.Store, cp *Checkpoint) error {
	return verifyState(ctx, st, cp)
}

// Latest returns the newest checkpoint of job whose manifest and blobs
// verify, logging each newer corrupt one it skips. It returns ErrNotFound
// when the job has no checkpoints and ErrNoValidCheckpoint when none
// verifies.
func Latest(ctx context.Context, st store.Store, job string, log *slog.Logger) (*Checkpoint, error) {
	if log == nil {
		log = slog.Default()
	}
	entries, err := List(ctx, st, job)
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("ckpt: job %q has no checkpoints: %w", job, ErrNotFound)
	}
	var first error
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		err := e.Err
		if err == nil {
			err = verifyState(ctx, st, e.Checkpoint)
		}
		if err == nil {
			return e.Checkpoint, nil
		}
		if !errors.Is(err, ErrCorrupt) {
			return nil, err
		}
		log.Warn("ckpt: skipping corrupt checkpoint", "job", job, "seq", e.Seq, "err", err)
		if first == nil {
			first = err
		}
	}
	return nil, fmt.Errorf("ckpt: job %q: %w (newest: %w)", job, ErrNoValidCheckpoint, first)
}

// Load reads the state called "state" of cp (the one Job[S] saves) into
// v, verifying every chunk, using the codec recorded in the checkpoint.
func Load(ctx context.Context, st store.Store, cp *Checkpoint, v any) error {
	for _, s := range cp.State {
		if s.Name == "state" {
			c, err := codec.ByName(s.Codec)
			if err != nil {
				return fmt.Errorf("ckpt: %w", err)
			}
			return readState(ctx, st, cp, "state", c, v)
		}
	}
	return fmt.Errorf("ckpt: checkpoint %d of job %q has no state", cp.Seq, cp.Job)
}

// AdminOptions configure Prune, Delete and DeleteJob. The zero value is
// ready to use.
type AdminOptions struct {
	Owner  store.Owner  // who takes the job's lock; zero means this process
	Logger *slog.Logger // nil means slog.Default()
}

func (o AdminOptions) open(ctx context.Context, st store.Store, job string, retain int) (*writer, error) {
	if o.Owner.ID == "" {
		o.Owner = processOwner()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return openWriter(ctx, st, job, o.Owner, retain, o.Logger)
}

// Prune applies retention to job: it keeps the newest retain checkpoints
// and every savepoint, and removes the rest and the blobs only they used.
// It returns the sequence numbers removed.
func Prune(ctx context.Context, st store.Store, job string, retain int, opts AdminOptions) ([]uint64, error) {
	if retain < 1 {
		return nil, fmt.Errorf("ckpt: prune: retain must be at least 1, not %d", retain)
	}
	w, err := opts.open(ctx, st, job, retain)
	if err != nil {
		return nil, err
	}
	defer w.close(context.WithoutCancel(ctx))
	before := make(map[uint64]bool, len(w.kept))
	for _, k := range w.kept {
		before[k.seq] = true
	}
	err = w.prune(ctx)
	for _, k := range w.kept {
		delete(before, k.seq)
	}
	removed := make([]uint64, 0, len(before))
	for seq := range before {
		removed = append(removed, seq)
	}
	slices.Sort(removed)
	if err != nil {
		return removed, fmt.Errorf("ckpt: prune job %q: %w", job, err)
	}
	return removed, nil
}

// Delete removes checkpoint seq of job (a savepoint too) and the blobs
// only it used.
func Delete(ctx context.Context, st store.Store, job string, seq uint64, opts AdminOptions) error {
	w, err := opts.open(ctx, st, job, 0)
	if err != nil {
		return err
	}
	defer w.close(context.WithoutCancel(ctx))
	return w.remove(ctx, seq)
}

// DeleteJob removes every checkpoint and blob of job.
func DeleteJob(ctx context.Context, st store.Store, job string, opts AdminOptions) error {
	w, err := opts.open(ctx, st, job, 0)
	if err != nil {
		return err
	}
	defer w.close(context.WithoutCancel(ctx))
	if err := w.removeAll(ctx); err != nil {
		return fmt.Errorf("ckpt: delete job %q: %w", job, err)
	}
	return nil
}
