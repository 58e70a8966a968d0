package ckpt

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ckptdev/ckpt/store"
)

// The keyed states' part of the commit protocol (writer.go): capture
// freezes each state's changes at the checkpoint's instant (in the job's
// goroutine); commit, before anything else, writes them as a run, merges
// runs if due and uploads every run's chunks that no kept checkpoint has
// (finishKeyed). Only then is the manifest written. So a manifest names
// only runs whose blobs are durable, a crash before it leaves blobs that
// the next open collects, and retention (mark and sweep over the kept
// manifests, writer.go) deletes a run's blobs only when no kept manifest
// names them.

// finishKeyed finishes the keyed states captured with cp, adding their
// references to it. Every one is finished even after one fails, so that
// none is left frozen.
func (w *writer) finishKeyed(ctx context.Context, cp *Checkpoint) error {
	fins := cp.keyed
	cp.keyed = nil
	var errs []error
	for _, f := range fins {
		st := w.st
		if len(errs) > 0 || w.lease == nil {
			st = nil // settle only; the next checkpoint uploads
		}
		ref, _, err := f(ctx, st, blobsPrefix(w.job), w.size)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if st != nil {
			cp.Keyed = append(cp.Keyed, ref)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ckpt: checkpoint %d of job %q: %w", w.seq+1, w.job, err)
	}
	return nil
}

// sized fills cp's sizes and encodes its manifest. What the checkpoint
// wrote is every blob it names that no kept checkpoint had (the writers
// skip exactly those), plus its manifest.
func (w *writer) sized(cp *Checkpoint) ([]byte, error) {
	var written int64
	seen := make(map[string]bool)
	cp.blobs(func(c ChunkRef) {
		if _, ok := w.size[c.ID]; !ok && !seen[c.ID] {
			seen[c.ID] = true
			written += c.Stored
		}
	})
	cp.FullSizeBytes = cp.StoredSize()
	cp.SizeBytes = written
	body, err := encodeManifest(cp)
	if err != nil {
		return nil, err
	}
	// The manifest's own size, which it records: the second encoding is
	// longer by the digits added, at most a few bytes off.
	cp.SizeBytes = written + int64(len(body))
	return encodeManifest(cp)
}

// keyedDir is where a job's keyed states keep their runs on local disk.
func keyedDir(dir, job string) string {
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "ckpt-keyed")
	}
	return filepath.Join(dir, job)
}

func (j *Job[S]) keyedHost() *keyedHost { return &j.kh }

// OnCapture registers fn to run at every checkpoint, in the job's
// goroutine, just before the state is captured: the place to move
// changes buffered elsewhere into keyed state. An error fails the
// checkpoint.
func (j *Job[S]) OnCapture(fn func() error) { j.kh.capture = append(j.kh.capture, fn) }

func (h *keyedHost) beforeCapture() error {
	for _, fn := range h.capture {
		if err := fn(); err != nil {
			return fmt.Errorf("ckpt: job %q: %w", h.job, err)
		}
	}
	return nil
}

// fetch fetches the runs of cp's keyed states to local disk, verifying
// them, for NewKeyed to claim. A corrupt chunk fails with a
// *CorruptError, and the job resumes from an older checkpoint.
func (h *keyedHost) fetch(ctx context.Context, st store.Store, cp *Checkpoint) error {
	h.dropRestored()
	got := make(map[string]*restoredKeyed, len(cp.Keyed))
	for _, ref := range cp.Keyed {
		r := &restoredKeyed{ref: ref}
		got[ref.Name] = r
		dir := filepath.Join(h.dir, ref.Name)
		for _, rr := range ref.Runs {
			run, err := fetchRun(ctx, st, checkpointLoc(cp), dir, rr)
			if err != nil {
				for _, r := range got {
					closeRuns(r.runs)
				}
				return fmt.Errorf("keyed state %q: %w", ref.Name, err)
			}
			r.runs = append(r.runs, run)
		}
	}
	h.restored = got
	return nil
}

func (h *keyedHost) dropRestored() {
	for _, r := range h.restored {
		closeRuns(r.runs)
	}
	h.restored = nil
}

// freeze captures the job's keyed states for cp: those it opened, and
// those of the resumed checkpoint that it did not open, which are carried
// over unchanged.
func (h *keyedHost) freeze(cp *Checkpoint) {
	for _, k := range h.parts {
		cp.keyed = append(cp.keyed, k.freeze())
	}
	for _, r := range h.restored {
		ref := r.ref
		cp.keyed = append(cp.keyed, func(context.Context, store.Store, string, blobSet) (KeyedRef, int64, error) {
			return ref, 0, nil
		})
	}
}

func (h *keyedHost) close() {
	for _, k := range h.parts {
		k.closeKeyed(h.finished)
	}
	h.dropRestored()
	if h.finished {
		// The job's directory and the one of all jobs, if nothing else
		// is in them.
		os.Remove(h.dir)
		os.Remove(filepath.Dir(h.dir))
	}
}

// settleKeyed finishes keyed states captured for a checkpoint that failed
// before its commit, keeping their changes for the next one.
func settleKeyed(cp *Checkpoint) {
	for _, f := range cp.keyed {
		f(context.Background(), nil, "", nil)
	}
	cp.keyed = nil
}

// verifyKeyed reads and verifies every chunk of cp's keyed states, and
// that each run's chunks make up the run.
func verifyKeyed(ctx context.Context, st store.Store, cp *Checkpoint) error {
	loc := checkpointLoc(cp)
	for _, k := range cp.Keyed {
		for _, r := range k.Runs {
			h := sha256.New()
			for _, c := range r.Chunks {
				raw, err := readChunk(ctx, st, loc, c)
				if err != nil {
					return err
				}
				h.Write(raw)
			}
			if hex.EncodeToString(h.Sum(nil)) != r.ID {
				return &CorruptError{Job: cp.Job, Seq: cp.Seq, Object: loc.manifest, Err: fmt.Errorf("keyed state %q: run %s: its chunks do not make up the run", k.Name, r.ID)}
			}
		}
	}
	return nil
}
