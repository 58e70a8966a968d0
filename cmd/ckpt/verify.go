package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ckptdev/ckpt"
)

// verifyJSON is one checkpoint in the JSON output of verify.
type verifyJSON struct {
	Seq    uint64 `json:"seq"`
	Status string `json:"status"`           // "ok", "corrupt" or "unreadable" (a format this ckpt does not read)
	Object string `json:"object,omitempty"` // the store object at fault
	Error  string `json:"error,omitempty"`  // what is wrong with it
}

func newVerifyCmd(a *app, sf *storeFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify [SEQ]",
		Short: "Check every checksum of a job's checkpoints",
		Long: `Verify checkpoint SEQ of a job, or every checkpoint when SEQ is left out:
read each manifest and every blob of state it names, and check every
checksum and content hash. One line per checkpoint says ok, or CORRUPT with
the store object at fault and what is wrong with it.

Verifying every checkpoint also counts the job's blobs that no kept
checkpoint names (what a crash leaves before a commit or during a
cleanup), which the job's next run removes; they are reported, not an
error.

The exit code is 3 when any checkpoint is corrupt; the error line names
them and says which checkpoint the job would resume from. A checkpoint
written in a format this ckpt does not read is reported as unreadable
(exit code 1). --json prints one JSON array instead, with the same exit codes.`,
		Example: `  ckpt checkpoints verify --job orders
  ckpt checkpoints verify --job orders 12
  ckpt checkpoints verify --job orders --json`,
		Args: maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			seq, err := optionalSeq(args)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			st, job, entries, err := a.readJob(ctx, sf)
			if err != nil {
				return err
			}
			defer st.Close()
			if seq != 0 {
				e, err := findEntry(job, entries, seq)
				if err != nil {
					return err
				}
				entries = []ckpt.Entry{e}
			}

			verdicts, verr := ckpt.VerifyEntries(ctx, st, entries)
			results := make([]verifyJSON, 0, len(verdicts))
			var corrupt, unreadable []verifyJSON
			var newestOK uint64
			for _, v := range verdicts {
				r := verifyJSON{Seq: v.Seq, Status: v.Status.String()}
				switch v.Status {
				case ckpt.VerifyOK:
					newestOK = v.Seq
				case ckpt.VerifyCorrupt:
					r.Object, r.Error = v.Object, errorText(errors.Unwrap(v.Err))
					corrupt = append(corrupt, r)
				case ckpt.VerifyUnreadable:
					r.Error = errorText(v.Err)
					unreadable = append(unreadable, r)
				}
				results = append(results, r)
				if !asJSON {
					a.printVerifyLine(r)
				}
			}
			if verr != nil {
				// The store failed, not the checkpoint: nothing is
				// known about this one, so stop rather than guess.
				return verr
			}
			if asJSON {
				if err := a.printJSON(results); err != nil {
					return err
				}
			}

			switch {
			case len(corrupt) > 0:
				return corruptError(job, len(entries), corrupt, newestOK, seq != 0)
			case len(unreadable) > 0:
				return withHint(fmt.Errorf("%d of %d checkpoints of job %q are in a format this ckpt does not read (newest: checkpoint %d: %s)",
					len(unreadable), len(entries), job, unreadable[len(unreadable)-1].Seq, unreadable[len(unreadable)-1].Error),
					"use the ckpt version that wrote them")
			}
			if !asJSON {
				if len(entries) == 1 {
					a.infof("checkpoint %d of job %q verifies\n", entries[0].Seq, job)
				} else {
					a.infof("all %d checkpoints of job %q verify\n", len(entries), job)
				}
				if seq == 0 {
					// Blobs that no kept manifest names: harmless, but
					// space, and worth knowing of after a crash.
					bc, err := ckpt.CheckBlobs(ctx, st, job)
					if err != nil {
						return err
					}
					if n := len(bc.Unreferenced); n > 0 {
						a.infof("%d of the job's %d blobs are named by no kept checkpoint (left by a crash or an interrupted cleanup); the job's next run removes them\n", n, bc.Blobs)
					}
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array, one object per checkpoint")
	return cmd
}

// printVerifyLine prints one checkpoint's result; with --quiet only the
// ones that fail.
func (a *app) printVerifyLine(r verifyJSON) {
	switch r.Status {
	case "ok":
		if !a.quiet {
			fmt.Fprintf(a.stdout, "checkpoint %d: %s\n", r.Seq, a.color(colorGreen, "ok"))
		}
	case "corrupt":
		fmt.Fprintf(a.stdout, "checkpoint %d: %s: %s: %s\n", r.Seq, a.color(colorRed, "CORRUPT"), r.Object, r.Error)
	default:
		fmt.Fprintf(a.stdout, "checkpoint %d: %s: %s\n", r.Seq, a.color(colorRed, "UNREADABLE"), r.Error)
	}
}

// verifyError is the error verify ends with. It matches ckpt.ErrCorrupt,
// and ckpt.ErrNoValidCheckpoint when no checkpoint verifies, without
// repeating their text in a message that already says it.
type verifyError struct {
	msg     string
	noValid bool
}

func (e *verifyError) Error() string { return e.msg }

// Is reports whether target is the class of e.
func (e *verifyError) Is(target error) bool {
	return target == ckpt.ErrCorrupt || e.noValid && target == ckpt.ErrNoValidCheckpoint
}

// corruptError says which checkpoints are corrupt (and the object at
// fault), and what that means for the job.
func corruptError(job string, checked int, corrupt []verifyJSON, newestOK uint64, one bool) error {
	var b strings.Builder
	if len(corrupt) == 1 {
		c := corrupt[0]
		fmt.Fprintf(&b, "checkpoint %d of job %q is corrupt: %s: %s", c.Seq, job, c.Object, c.Error)
	} else {
		fmt.Fprintf(&b, "%d of %d checkpoints of job %q are corrupt:", len(corrupt), checked, job)
		for i, c := range corrupt {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, " %d (%s)", c.Seq, c.Object)
		}
	}
	err := &verifyError{msg: b.String()}
	switch {
	case one:
		return withHint(err, "`ckpt checkpoints verify` without SEQ checks the others; `ckpt checkpoints delete SEQ` removes a corrupt one")
	case newestOK == 0:
		err.noValid = true
		err.msg = "no checkpoint verifies: " + err.msg
		return withHint(err, "the job cannot resume: restore the store from a backup, or delete the job's checkpoints (ckpt checkpoints delete --all) to start over")
	case newestOK < corrupt[len(corrupt)-1].Seq:
		return withHint(err, fmt.Sprintf("the job resumes from checkpoint %d, the newest that verifies, and redoes the work after it", newestOK))
	}
	return withHint(err, fmt.Sprintf("the job resumes from checkpoint %d, the newest, which verifies; `ckpt checkpoints delete SEQ` removes a corrupt one", newestOK))
}
