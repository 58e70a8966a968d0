package ckpt

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/ckptdev/ckpt/codec"
	"github.com/ckptdev/ckpt/internal/crashpoint"
	"github.com/ckptdev/ckpt/store"
)

// The commit protocol: how a checkpoint is taken, and what a crash at any
// instant leaves. It lives here, in the writer, and nowhere else; the job
// decides only when to take a checkpoint and whether its second half runs
// in the background.
//
// capture, in the job's goroutine, at one instant:
//
//  1. Flush the sink: buffered output goes to the operating system, and
//     the sink's position covers everything written so far.
//  2. Record the source position.
//  3. Serialize the state into blobs (Put, durable when it returns).
//
// commit, in the background for automatic checkpoints, else before the
// call returns:
//
//  4. Sync the sink: the output up to the recorded position is durable.
//  5. Write the manifest: the commit point. It goes into the sink's own
//     transaction (ManifestCommitter), else through the lease when it
//     fences writes (store.FencedLease), else with Store.Create.
//  6. Apply retention.
//
// Invariants:
//   - A manifest is written only after every blob it names and the output
//     it covers are durable (steps 3 and 4 before 5).
//   - Manifests are created, never overwritten: a sequence number is
//     committed at most once, and a second writer that slipped past the
//     lock fails at step 5 with ErrLeaseLost rather than overwrite.
//   - A writer whose lease is lost commits nothing and deletes nothing.
//   - The sink position, the source position and the state are captured
//     together, with no record processed between them.
//   - A manifest is deleted before the blobs only it references, and that
//     deletion is durable (store.Sync of the manifests) before the first
//     of those blobs is deleted.
//   - The blobs of a state are durable (written with store.PutDeferred,
//     then one store.Sync in writeState) before capture returns, so
//     before the manifest that names them is written.
//   - Deleting a blob need not be durable (store.DeleteDeferred): a
//     deletion undone by a crash leaves a blob no manifest names, which
//     collect removes. Deleting a manifest whose blobs all stay need not
//     be either: undone, it brings back an older checkpoint that is still
//     whole (its blobs are referenced by kept ones, and are deleted only
//     after a Sync of the manifests, which makes this deletion durable
//     too), and retention removes it again.
//   - refs counts, for every blob id, the kept manifests that name it; a
//     commit reuses a blob without writing it only if it is in w.size (see
//     trustOnly).
//
// Crash cases:
//   - Before step 5: blobs that no manifest names, removed when the job is
//     next opened (collect), and output past the last checkpoint's sink
//     position, which the sink truncates on resume. The previous
//     checkpoint is the newest.
//   - During step 5: the manifest exists whole or not at all (the store's
//     Create, or the sink's transaction, is atomic).
//   - During step 6: an old checkpoint left in place or back (the next
//     retention removes it) or blobs no manifest names (collect removes
//     them).
//
// Resume reads the other way: the newest checkpoint whose manifest and
// blobs verify (newestValid, in catalog.go), older ones tried while newer
// ones are corrupt, never none silently.

// writer holds a job's lock and is the only code that commits, prunes or
// deletes its checkpoints.
type writer struct {
	st        store.Store
	job       string
	lease     store.Lease
	owner     store.Owner
	log       *slog.Logger
	retain    int
	chunkSize int

	seq  uint64  // highest sequence number seen, committed or corrupt
	kept []Entry // checkpoints in the store, oldest first
	refs map[string]int
	size blobSet // stored size of referenced blobs that commits may reuse unwritten; see trustOnly
}

// processOwner describes this process to other writers.
func processOwner() store.Owner {
	host, _ := os.Hostname()
	var id [8]byte
	rand.Read(id[:])
	return store.Owner{ID: hex.EncodeToString(id[:]), PID: os.Getpid(), Host: host, Since: time.Now().UTC()}
}

// openWriter takes the job's lock, reads every manifest and removes blobs
// that no manifest references (left by a crash before a commit point, or
// during retention).
func openWriter(ctx context.Context, st store.Store, job string, owner store.Owner, retain int, log *slog.Logger) (*writer, error) {
	if err := ValidJobName(job); err != nil {
		return nil, err
	}
	lease, err := st.Lock(ctx, lockName(job), owner)
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			return nil, fmt.Errorf("ckpt: job %q is already running (only one writer at a time): %w", job, err)
		}
		return nil, fmt.Errorf("ckpt: lock job %q: %w", job, err)
	}
	w := &writer{st: st, job: job, lease: lease, owner: owner, log: log, retain: retain, chunkSize: defaultChunkSize}
	if err := w.scan(ctx); err != nil {
		lease.Release(context.WithoutCancel(ctx))
		return nil, err
	}
	// A manifest that does not decode (damaged, or written by a newer ckpt)
	// may name any blob: collecting now would destroy what a repair or an
	// upgrade needs. Its blobs wait until retention has removed it.
	if !slices.ContainsFunc(w.kept, func(e Entry) bool { return e.Checkpoint == nil }) {
		if err := w.collect(ctx); err != nil {
			w.log.Warn("ckpt: could not remove unreferenced blobs", "job", job, "err", err)
		}
	}
	return w, nil
}

func (w *writer) scan(ctx context.Context) error {
	entries, err := listManifests(ctx, w.st, w.job)
	if err != nil {
		return err
	}
	w.kept = entries
	w.refs = make(map[string]int)
	w.size = make(blobSet)
	for _, e := range entries {
		w.seq = max(w.seq, e.Seq)
		if e.Checkpoint != nil {
			w.addRefs(e.Checkpoint)
		}
	}
	return nil
}

func (w *writer) addRefs(cp *Checkpoint) {
	cp.blobs(func(c ChunkRef) {
		w.refs[c.ID]++
		w.size[c.ID] = c.Stored
	})
}

// trustOnly narrows the blobs that later commits reuse without writing
// them to those of cp, which a restore has just read and verified. Any
// other blob may be the damaged copy that made a newer checkpoint fail
// (or an older one nobody has read): a checkpoint reusing it would be
// committed corrupt. Such a chunk is written again instead, which also
// repairs the blob in place.
func (w *writer) trustOnly(cp *Checkpoint) {
	w.size = make(blobSet)
	cp.blobs(func(c ChunkRef) { w.size[c.ID] = c.Stored })
}

// dropRefs forgets cp's references and returns the blobs nothing else names.
func (w *writer) dropRefs(cp *Checkpoint) []string {
	var orphans []string
	for _, id := range cp.blobIDs() {
		if w.refs[id]--; w.refs[id] <= 0 {
			delete(w.refs, id)
			delete(w.size, id)
			orphans = append(orphans, id)
		}
	}
	return orphans
}

// collect deletes every blob of the job that no kept manifest references.
func (w *writer) collect(ctx context.Context) error {
	names, err := w.st.List(ctx, blobsPrefix(w.job))
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		id := n[len(blobsPrefix(w.job)):]
		if _, ok := w.refs[id]; ok {
			continue
		}
		// Not durable: a removal undone by a crash is done again at the
		// next open.
		if err := store.DeleteDeferred(ctx, w.st, n); err != nil {
			errs = append(errs, err)
		} else {
			w.log.Debug("ckpt: removed unreferenced blob", "job", w.job, "blob", id)
		}
	}
	return errors.Join(errs...)
}

// stateInput is one state value to save with a checkpoint.
type stateInput struct {
	name  string
	codec codec.Codec
	value any
}

// capture runs steps 1 to 3 of the protocol into cp: flush the sink,
// record the source position, serialize states. Either of sink and src
// may be nil. It returns how long serializing the states took: the
// capture's own cost, which the job's spacing of automatic checkpoints
// counts (the sink's flush is not counted: a database round trip must not
// thin out a small state's checkpoints). Nothing references the blobs
// until commit, so a failure here (or a crash) leaves garbage that collect
// removes, never a visible change.
func (w *writer) capture(ctx context.Context, cp *Checkpoint, src PositionSource, sink Sink, states []stateInput, comp codec.Compression) (time.Duration, error) {
	if w.lease == nil {
		return 0, fmt.Errorf("ckpt: job %q: %w", w.job, store.ErrClosed)
	}
	cp.began = time.Now()
	if sink != nil {
		pos, err := sink.Flush()
		if err != nil {
			return 0, fmt.Errorf("ckpt: job %q: flush output: %w", w.job, err)
		}
		cp.Sink = pos
	}
	if src != nil {
		pos, err := src.Position()
		if err != nil {
			return 0, fmt.Errorf("ckpt: job %q: source position: %w", w.job, err)
		}
		cp.Source = pos
	}
	crashpoint.Hit(crashpoint.PhaseStateCaptured)
	start := time.Now()
	cp.State = cp.State[:0]
	for _, s := range states {
		ref, err := writeState(ctx, w.st, blobsPrefix(w.job), s.name, s.codec, s.value, comp, w.chunkSize, w.size)
		if err != nil {
			return 0, fmt.Errorf("ckpt: checkpoint %d of job %q: %w", w.seq+1, w.job, err)
		}
		cp.State = append(cp.State, ref)
	}
	took := time.Since(start)
	crashpoint.Hit(crashpoint.PhaseBlobsWritten)
	return took, nil
}

// commit runs steps 4 to 6 of the protocol: it makes the output sink
// covers durable, commits cp (which capture filled) as the next
// checkpoint, and applies retention. sink is the one given to capture, or
// nil. On error nothing is committed and the previous checkpoint stays the
// newest.
func (w *writer) commit(ctx context.Context, cp *Checkpoint, sink Sink) (*Checkpoint, error) {
	// Keyed states captured with cp are finished first, whatever happens
	// after: their runs are durable before the manifest names them.
	if err := w.finishKeyed(ctx, cp); err != nil {
		return nil, err
	}
	if w.lease == nil {
		return nil, fmt.Errorf("ckpt: job %q: %w", w.job, store.ErrClosed)
	}
	if sink != nil {
		if err := sink.Sync(ctx); err != nil {
			return nil, fmt.Errorf("ckpt: job %q: make output durable: %w", w.job, err)
		}
	}
	crashpoint.Hit(crashpoint.PhaseSinkSynced)
	cp.Job = w.job
	cp.Seq = w.seq + 1
	cp.Token = w.lease.Token()
	cp.Writer = w.owner
	cp.Time = time.Now().UTC()
	if !cp.began.IsZero() {
		cp.Duration = cp.Time.Sub(cp.began)
	}
	body, err := w.sized(cp)
	if err != nil {
		return nil, err
	}
	if err := w.lease.Check(ctx); err != nil {
		return nil, fmt.Errorf("ckpt: checkpoint %d of job %q not committed: %w", cp.Seq, w.job, err)
	}
	// The commit point.
	name := manifestName(w.job, cp.Seq)
	done := false
	if mc, ok := sink.(ManifestCommitter); ok {
		if done, err = mc.CommitManifest(ctx, ManifestCommit{Name: name, Body: body, Lock: lockName(w.job), Token: cp.Token}); err != nil {
			return nil, fmt.Errorf("ckpt: commit checkpoint %d of job %q with the output: %w", cp.Seq, w.job, err)
		}
	}
	if !done {
		if fl, ok := w.lease.(store.FencedLease); ok {
			err = fl.CreateFenced(ctx, name, bytes.NewReader(body))
		} else {
			err = w.st.Create(ctx, name, bytes.NewReader(body))
		}
	}
	if err != nil {
		if errors.Is(err, store.ErrExist) {
			return nil, fmt.Errorf("ckpt: checkpoint %d of job %q was committed by another writer; this one stops: %w", cp.Seq, w.job, store.ErrLeaseLost)
		}
		return nil, fmt.Errorf("ckpt: commit checkpoint %d of job %q: %w", cp.Seq, w.job, err)
	}
	crashpoint.Hit(crashpoint.PhaseManifestCommitted)
	w.seq = cp.Seq
	w.kept = append(w.kept, Entry{Seq: cp.Seq, Checkpoint: cp})
	w.addRefs(cp)
	// A lease lost while the manifest was being written (a store that
	// cannot fence the write) means another writer may be resuming from
	// an older checkpoint and rewriting the output this one describes: it
	// must not be reported as taken, least of all as the final one.
	if err := w.lease.Check(context.WithoutCancel(ctx)); err != nil {
		return nil, fmt.Errorf("ckpt: checkpoint %d of job %q was written as the job's lease was lost; another writer may be running, so this one stops (check the output before trusting it): %w", cp.Seq, w.job, err)
	}
	if err := w.retention(context.WithoutCancel(ctx), false); err != nil {
		// The checkpoint is committed; an old one left behind is harmless
		// (its blobs stay referenced) and the next open removes it.
		w.log.Warn("ckpt: retention failed; old checkpoints are left in place", "job", w.job, "err", err)
	}
	crashpoint.Hit(crashpoint.PhaseRetention)
	w.log.Debug("ckpt: checkpoint committed", "job", w.job, "seq", cp.Seq, "trigger", cp.Trigger.String(), "records", cp.Records, "state_bytes", cp.StoredSize())
	return cp, nil
}

// prune applies retention. Newest first, it keeps w.retain valid regular
// checkpoints and every savepoint; a corrupt manifest is kept while it is
// newer than the oldest checkpoint kept (as evidence) and removed after.
// A retain of zero or less keeps everything.
func (w *writer) prune(ctx context.Context) error {
	if w.retain <= 0 {
		return nil
	}
	// A writer that lost its lease must not delete what the new holder
	// may be building on.
	if err := w.lease.Check(ctx); err != nil {
		return fmt.Errorf("ckpt: job %q: retention skipped: %w", w.job, err)
	}
	// Asked for by hand (Prune): durable when it returns.
	return w.retention(ctx, true)
}

// retention is prune once the lease is known held. Unless durable is set,
// the deletion of checkpoints whose blobs all stay is left for a later
// Sync to make durable (see deleteCheckpoints).
func (w *writer) retention(ctx context.Context, durable bool) error {
	if w.retain <= 0 {
		return nil
	}
	for _, k := range w.kept {
		if errors.Is(k.Err, ErrFormat) {
			// A newer ckpt wrote it: the blobs it names are unknown here,
			// so deleting anything could break it for the ckpt that can
			// read it.
			return fmt.Errorf("ckpt: job %q: checkpoint %d is of a newer format; retention is left to a ckpt that reads it: %w", w.job, k.Seq, k.Err)
		}
	}
	var drop []Entry
	keep := make([]Entry, 0, len(w.kept))
	valid := 0
	for i := len(w.kept) - 1; i >= 0; i-- {
		k := w.kept[i]
		switch {
		case k.Checkpoint != nil && k.Checkpoint.Savepoint:
			keep = append(keep, k)
		case k.Checkpoint != nil && valid < w.retain:
			valid++
			keep = append(keep, k)
		case k.Checkpoint == nil && valid < w.retain:
			keep = append(keep, k)
		default:
			drop = append(drop, k)
		}
	}
	slices.Reverse(keep)
	w.kept = keep
	// Oldest first, so that a crash midway leaves the newest ones.
	slices.Reverse(drop)
	if len(drop) == 0 {
		return nil
	}
	return w.deleteCheckpoints(ctx, drop, durable)
}

// deleteCheckpoints removes the manifests of drop, then the blobs that
// only they referenced. The manifests' deletions are made durable (one
// store.Sync of the job's manifests) before any blob goes, and when
// durable is set; otherwise a crash may undo them, which only brings
// back whole checkpoints (see the invariants). The blobs' deletions are
// never synced: undone, they leave blobs for collect. A small
// checkpoint's retention so costs no fsync, a large one's one.
func (w *writer) deleteCheckpoints(ctx context.Context, drop []Entry, durable bool) error {
	var errs []error
	var orphans []string
	for _, k := range drop {
		if err := store.DeleteDeferred(ctx, w.st, manifestName(w.job, k.Seq)); err != nil {
			// Its blobs stay: the manifest may still name them.
			errs = append(errs, fmt.Errorf("delete checkpoint %d: %w", k.Seq, err))
			continue
		}
		if k.Checkpoint != nil {
			orphans = append(orphans, w.dropRefs(k.Checkpoint)...)
		}
	}
	if len(orphans) == 0 && !durable {
		return errors.Join(errs...)
	}
	if err := store.Sync(ctx, w.st, checkpointsPrefix(w.job)); err != nil {
		// The blobs stay until collect finds them unreferenced.
		errs = append(errs, fmt.Errorf("make the deletion of checkpoints durable: %w", err))
		return errors.Join(errs...)
	}
	for _, id := range orphans {
		if err := store.DeleteDeferred(ctx, w.st, blobName(w.job, id)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// remove deletes the checkpoint seq (a savepoint too).
func (w *writer) remove(ctx context.Context, seq uint64) error {
	i := slices.IndexFunc(w.kept, func(k Entry) bool { return k.Seq == seq })
	if i < 0 {
		return fmt.Errorf("ckpt: job %q has no checkpoint %d: %w", w.job, seq, ErrNotFound)
	}
	k := w.kept[i]
	w.kept = slices.Delete(w.kept, i, i+1)
	// Asked for by name: durable when it returns, blobs or not.
	if err := w.deleteCheckpoints(ctx, []Entry{k}, true); err != nil {
		return fmt.Errorf("ckpt: job %q: %w", w.job, err)
	}
	return nil
}

// removeAll deletes every checkpoint and blob of the job, oldest first.
// The lock object stays: it carries the fencing token to the next holder.
func (w *writer) removeAll(ctx context.Context) error {
	for len(w.kept) > 0 {
		if err := w.remove(ctx, w.kept[0].Seq); err != nil {
			return err
		}
	}
	return w.collect(ctx)
}

func (w *writer) close(ctx context.Context) error {
	if w.lease == nil {
		return nil
	}
	err := w.lease.Release(ctx)
	w.lease = nil
	return err
}
