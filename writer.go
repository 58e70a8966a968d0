package ckpt

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/ckptdev/ckpt/codec"
	"github.com/ckptdev/ckpt/store"
)

// writer holds a job's lock and is the only code that commits, prunes or
// deletes its checkpoints: the commit protocol lives here.
//
// Invariants:
//   - A manifest is written only after every blob it names is durable, and
//     with Create, so a sequence number is committed at most once.
//   - A manifest is deleted before the blobs only it references, so a crash
//     leaves an unreferenced blob at worst, never a manifest naming nothing.
//   - refs counts, for every blob id, the kept manifests that name it.
type writer struct {
	st        store.Store
	job       string
	lease     store.Lease
	owner     store.Owner
	log       *slog.Logger
	retain    int
	chunkSize int

	seq  uint64 // highest sequence number seen, committed or corrupt
	kept []kept // checkpoints in the store, oldest first
	refs map[string]int
	size blobSet // stored size of referenced blobs that commits may reuse unwritten; see trustOnly
}

// kept is one manifest in the store; cp is nil when it failed to decode.
type kept struct {
	seq uint64
	cp  *Checkpoint
	err error
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
	if !slices.ContainsFunc(w.kept, func(k kept) bool { return k.cp == nil }) {
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
	w.kept = w.kept[:0]
	w.refs = make(map[string]int)
	w.size = make(blobSet)
	for _, e := range entries {
		w.seq = max(w.seq, e.Seq)
		w.kept = append(w.kept, kept{seq: e.Seq, cp: e.Checkpoint, err: e.Err})
		if e.Checkpoint != nil {
			w.addRefs(e.Checkpoint)
		}
	}
	return nil
}

func (w *writer) addRefs(cp *Checkpoint) {
	for _, s := range cp.State {
		for _, c := range s.Chunks {
			if c.Data == nil {
				w.refs[c.ID]++
				w.size[c.ID] = c.Stored
			}
		}
	}
}

// trustOnly narrows the blobs that later commits reuse without writing
// them to those of cp, which a restore has just read and verified. Any
// other blob may be the damaged copy that made a newer checkpoint fail
// (or an older one nobody has read): a checkpoint reusing it would be
// committed corrupt. Such a chunk is written again instead, which also
// repairs the blob in place.
func (w *writer) trustOnly(cp *Checkpoint) {
	w.size = make(blobSet)
	for _, s := range cp.State {
		for _, c := range s.Chunks {
			if c.Data == nil {
				w.size[c.ID] = c.Stored
			}
		}
	}
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
		if err := w.st.Delete(ctx, n); err != nil {
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

// saveState serializes states into blobs and records them in cp. Nothing
// references the blobs until commitManifest, so a failure here (or a crash)
// leaves garbage that collect removes, never a visible change.
func (w *writer) saveState(ctx context.Context, cp *Checkpoint, states []stateInput, comp codec.Compression) error {
	if w.lease == nil {
		return fmt.Errorf("ckpt: job %q: %w", w.job, store.ErrClosed)
	}
	cp.State = cp.State[:0]
	for _, s := range states {
		ref, err := writeState(ctx, w.st, blobsPrefix(w.job), s.name, s.codec, s.value, comp, w.chunkSize, w.size)
		if err != nil {
			return fmt.Errorf("ckpt: checkpoint %d of job %q: %w", w.seq+1, w.job, err)
		}
		cp.State = append(cp.State, ref)
	}
	return nil
}

// commitManifest commits cp, whose blobs saveState wrote, as the next
// checkpoint, then applies retention. The sink and source positions in cp
// must already be durable. The manifest is written by via when it takes it
// (a transactional sink), else through the lease when it is fenced, else
// with Store.Create. On error nothing is committed and the previous
// checkpoint stays the newest.
func (w *writer) commitManifest(ctx context.Context, cp *Checkpoint, via func(context.Context, ManifestCommit) (bool, error)) (*Checkpoint, error) {
	if w.lease == nil {
		return nil, fmt.Errorf("ckpt: job %q: %w", w.job, store.ErrClosed)
	}
	cp.Job = w.job
	cp.Seq = w.seq + 1
	cp.Token = w.lease.Token()
	cp.Writer = w.owner
	cp.Time = time.Now().UTC()
	body, err := encodeManifest(cp)
	if err != nil {
		return nil, err
	}
	if err := w.lease.Check(ctx); err != nil {
		return nil, fmt.Errorf("ckpt: checkpoint %d of job %q not committed: %w", cp.Seq, w.job, err)
	}
	// The commit point.
	name := manifestName(w.job, cp.Seq)
	done := false
	if via != nil {
		if done, err = via(ctx, ManifestCommit{Name: name, Body: body, Lock: lockName(w.job), Token: cp.Token}); err != nil {
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
	w.seq = cp.Seq
	w.kept = append(w.kept, kept{seq: cp.Seq, cp: cp})
	w.addRefs(cp)
	if err := w.prune(context.WithoutCancel(ctx)); err != nil {
		// The checkpoint is committed; an old one left behind is harmless
		// (its blobs stay referenced) and the next open removes it.
		w.log.Warn("ckpt: retention failed; old checkpoints are left in place", "job", w.job, "err", err)
	}
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
	for _, k := range w.kept {
		if errors.Is(k.err, ErrFormat) {
			// A newer ckpt wrote it: the blobs it names are unknown here,
			// so deleting anything could break it for the ckpt that can
			// read it.
			return fmt.Errorf("ckpt: job %q: checkpoint %d is of a newer format; retention is left to a ckpt that reads it: %w", w.job, k.seq, k.err)
		}
	}
	// A writer that lost its lease must not delete what the new holder
	// may be building on.
	if err := w.lease.Check(ctx); err != nil {
		return fmt.Errorf("ckpt: job %q: retention skipped: %w", w.job, err)
	}
	var drop []kept
	keep := make([]kept, 0, len(w.kept))
	valid := 0
	for i := len(w.kept) - 1; i >= 0; i-- {
		k := w.kept[i]
		switch {
		case k.cp != nil && k.cp.Savepoint:
			keep = append(keep, k)
		case k.cp != nil && valid < w.retain:
			valid++
			keep = append(keep, k)
		case k.cp == nil && valid < w.retain:
			keep = append(keep, k)
		default:
			drop = append(drop, k)
		}
	}
	slices.Reverse(keep)
	w.kept = keep
	// Oldest first, so that a crash midway leaves the newest ones.
	slices.Reverse(drop)
	var errs []error
	for _, k := range drop {
		if err := w.deleteCheckpoint(ctx, k); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// deleteCheckpoint removes a manifest, then the blobs only it referenced.
func (w *writer) deleteCheckpoint(ctx context.Context, k kept) error {
	if err := w.st.Delete(ctx, manifestName(w.job, k.seq)); err != nil {
		return fmt.Errorf("delete checkpoint %d: %w", k.seq, err)
	}
	if k.cp == nil {
		return nil
	}
	var errs []error
	for _, id := range w.dropRefs(k.cp) {
		if err := w.st.Delete(ctx, blobName(w.job, id)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// remove deletes the checkpoint seq (a savepoint too).
func (w *writer) remove(ctx context.Context, seq uint64) error {
	i := slices.IndexFunc(w.kept, func(k kept) bool { return k.seq == seq })
	if i < 0 {
		return fmt.Errorf("ckpt: job %q has no checkpoint %d: %w", w.job, seq, ErrNotFound)
	}
	k := w.kept[i]
	w.kept = slices.Delete(w.kept, i, i+1)
	if err := w.deleteCheckpoint(ctx, k); err != nil {
		return fmt.Errorf("ckpt: job %q: %w", w.job, err)
	}
	return nil
}

// removeAll deletes every checkpoint and blob of the job, oldest first.
// The lock object stays: it carries the fencing token to the next holder.
func (w *writer) removeAll(ctx context.Context) error {
	for len(w.kept) > 0 {
		if err := w.remove(ctx, w.kept[0].seq); err != nil {
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
	slices.SortFunc(out, func(a, b Entry) int { return cmpUint(a.Seq, b.Seq) })
	return out, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
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
