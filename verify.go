package ckpt

import (
	"context"
	"errors"
	"fmt"

	"github.com/ckptdev/ckpt/store"
)

// VerifyStatus is the verdict on one checkpoint.
type VerifyStatus uint8

// The verdicts.
const (
	// VerifyOK: the manifest and every blob verify.
	VerifyOK VerifyStatus = iota + 1
	// VerifyCorrupt: the manifest or a blob failed verification (torn,
	// truncated, a flipped byte, a missing blob).
	VerifyCorrupt
	// VerifyUnreadable: the checkpoint is in a format this ckpt does not
	// read (usually written by a newer ckpt); nothing is known of its
	// soundness.
	VerifyUnreadable
)

var verifyNames = [...]string{VerifyOK: "ok", VerifyCorrupt: "corrupt", VerifyUnreadable: "unreadable"}

// String returns "ok", "corrupt" or "unreadable".
func (s VerifyStatus) String() string {
	if s > 0 && int(s) < len(verifyNames) {
		return verifyNames[s]
	}
	return fmt.Sprintf("verifystatus(%d)", uint8(s))
}

// VerifyResult is the verdict on one checkpoint of a job.
type VerifyResult struct {
	Seq    uint64
	Status VerifyStatus
	// Object is the store object at fault, when Status is VerifyCorrupt.
	Object string
	// Err says what is wrong, nil when Status is VerifyOK: for
	// VerifyCorrupt the *CorruptError (its Err is what is wrong with
	// Object), for VerifyUnreadable an error wrapping ErrFormat.
	Err error
}

// VerifyEntries verifies each checkpoint of entries (as List returns
// them), in order, reading every blob, and returns one verdict for each.
// A failure that says nothing about a checkpoint (the store failed, ctx
// ended) is not a verdict: VerifyEntries stops there and returns the
// verdicts so far with that error.
func VerifyEntries(ctx context.Context, st store.Store, entries []Entry) ([]VerifyResult, error) {
	results := make([]VerifyResult, 0, len(entries))
	for _, e := range entries {
		err := e.Err
		if err == nil {
			err = verifyState(ctx, st, e.Checkpoint)
		}
		r := VerifyResult{Seq: e.Seq, Status: VerifyOK, Err: err}
		var ce *CorruptError
		switch {
		case err == nil:
		case errors.As(err, &ce):
			r.Status, r.Object, r.Err = VerifyCorrupt, ce.Object, ce
		case errors.Is(err, ErrFormat):
			r.Status = VerifyUnreadable
		default:
			// Entries that did not decode carry a verdict: only
			// verifyState gets here, with a decoded checkpoint.
			return results, fmt.Errorf("ckpt: verify checkpoint %d of job %q: %w", e.Seq, e.Checkpoint.Job, err)
		}
		results = append(results, r)
	}
	return results, nil
}
