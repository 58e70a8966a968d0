package ckpt

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
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

// BlobCheck is what CheckBlobs found in a job's blobs.
type BlobCheck struct {
	// Blobs is the number of blobs the store holds for the job.
	Blobs int
	// Unreferenced are blobs no kept manifest names: what a crash left
	// before a commit or during retention, which the job's next open
	// removes.
	Unreferenced []string
	// Missing are blobs a kept manifest names that the store lacks: those
	// checkpoints are damaged (Verify says which).
	Missing []string
}

// CheckBlobs compares the job's blobs with the ones its kept manifests
// name, the mark and sweep of retention without the sweep. A manifest that
// cannot be read is an error: without it, no blob can be called
// unreferenced.
func CheckBlobs(ctx context.Context, st store.Store, job string) (BlobCheck, error) {
	var bc BlobCheck
	entries, err := List(ctx, st, job)
	if err != nil {
		return bc, err
	}
	named := map[string]bool{}
	for _, e := range entries {
		if e.Err != nil {
			return bc, fmt.Errorf("ckpt: job %q: checkpoint %d: %w", job, e.Seq, e.Err)
		}
		for _, id := range e.Checkpoint.blobIDs() {
			named[id] = true
		}
	}
	names, err := st.List(ctx, blobsPrefix(job))
	if err != nil {
		return bc, fmt.Errorf("ckpt: job %q: list blobs: %w", job, err)
	}
	bc.Blobs = len(names)
	have := make(map[string]bool, len(names))
	for _, n := range names {
		id := n[len(blobsPrefix(job)):]
		have[id] = true
		if !named[id] {
			bc.Unreferenced = append(bc.Unreferenced, id)
		}
	}
	for id := range named {
		if !have[id] {
			bc.Missing = append(bc.Missing, id)
		}
	}
	slices.Sort(bc.Missing)
	return bc, nil
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
// verify, logging each newer corrupt one it skips: the checkpoint the job
// would resume from. It returns ErrNotFound when the job has no
// checkpoints, ErrNoValidCheckpoint when none verifies, and ErrFormat when
// the newest one that is not corrupt is of a newer format.
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
	cp, _, err := newestValid(job, entries, log, func(cp *Checkpoint) error { return verifyState(ctx, st, cp) })
	return cp, err
}

// newestValid is the one walk over a job's checkpoints that chooses where
// the job resumes; Open and Latest both use it. Newest first, it returns
// the first checkpoint of entries whose manifest decoded and that load
// accepts (load verifies or decodes its blobs), and how many newer ones it
// skipped. A corrupt checkpoint is logged and the previous one tried. It
// stops with an error at a checkpoint of a newer format (an older one
// would silently lose its work) and at any error of load that does not
// wrap ErrCorrupt (the store failed: nothing is known of that checkpoint,
// so none older may be chosen in its place). With no entries it returns
// nil and no error; when every checkpoint is corrupt, an error wrapping
// ErrNoValidCheckpoint and the newest one's error.
func newestValid(job string, entries []Entry, log *slog.Logger, load func(*Checkpoint) error) (*Checkpoint, int, error) {
	var skipped []error
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		err := e.Err
		if err == nil {
			err = load(e.Checkpoint)
		}
		switch {
		case err == nil:
			return e.Checkpoint, len(skipped), nil
		case errors.Is(err, ErrCorrupt):
			log.Warn("ckpt: skipping corrupt checkpoint; trying the previous one", "job", job, "seq", e.Seq, "err", err)
			skipped = append(skipped, err)
		case errors.Is(err, ErrFormat):
			return nil, len(skipped), fmt.Errorf("ckpt: job %q: cannot resume: %w", job, err)
		default:
			return nil, len(skipped), fmt.Errorf("ckpt: job %q: read checkpoint %d: %w", job, e.Seq, err)
		}
	}
	if len(skipped) > 0 {
		return nil, len(skipped), fmt.Errorf("ckpt: job %q: %w: all %d checkpoints fail verification (newest: %w); check the store, or restart the job to discard them", job, ErrNoValidCheckpoint, len(skipped), skipped[0])
	}
	return nil, 0, nil
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
		before[k.Seq] = true
	}
	err = w.prune(ctx)
	for _, k := range w.kept {
		delete(before, k.Seq)
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

// Entry is one manifest found in the store: a decoded checkpoint, or the
// error that kept it from decoding.
type Entry struct {
	Seq        uint64
	Checkpoint *Checkpoint // nil if Err is set
	Err        error       // a *CorruptError, or an ErrFormat error
}

// listManifests reads every manifest of job, oldest first.
func listManifests(ctx context.Context, st store.Store, job string) ([]Entry, error) {
	names, err := st.List(ctx, checkpointsPrefix(job))
	if err != nil {
		return nil, fmt.Errorf("ckpt: list checkpoints of job %q: %w", job, err)
	}
	var out []Entry
	for _, n := range names {
		seq, ok := parseManifestName(job, n)
		if !ok {
			continue
		}
		cp, err := readManifest(ctx, st, job, seq)
		if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrFormat) {
			if errors.Is(err, store.ErrNotFound) {
				continue // removed since the listing
			}
			return nil, err
		}
		out = append(out, Entry{Seq: seq, Checkpoint: cp, Err: err})
	}
	slices.SortFunc(out, func(a, b Entry) int { return cmp.Compare(a.Seq, b.Seq) })
	return out, nil
}

// readManifest reads and decodes one manifest. A manifest that fails to
// decode, or whose job or sequence number disagree with its name, is an
// error wrapping ErrCorrupt (or ErrFormat).
func readManifest(ctx context.Context, st store.Store, job string, seq uint64) (*Checkpoint, error) {
	name := manifestName(job, seq)
	rc, err := st.Get(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("ckpt: read checkpoint %d of job %q: %w", seq, job, err)
	}
	b, err := io.ReadAll(io.LimitReader(rc, maxManifest+256))
	rc.Close()
	if errors.Is(err, store.ErrCorrupt) {
		return nil, &CorruptError{Job: job, Seq: seq, Object: name, Err: err}
	}
	if err != nil {
		return nil, fmt.Errorf("ckpt: read checkpoint %d of job %q: %w", seq, job, err)
	}
	cp, err := decodeManifest(b)
	if err == nil && (cp.Job != job || cp.Seq != seq) {
		err = fmt.Errorf("manifest names job %q checkpoint %d", cp.Job, cp.Seq)
	}
	if err != nil {
		if errors.Is(err, ErrFormat) {
			return nil, fmt.Errorf("ckpt: %s: %w", name, err)
		}
		return nil, &CorruptError{Job: job, Seq: seq, Object: name, Err: err}
	}
	return cp, nil
}
