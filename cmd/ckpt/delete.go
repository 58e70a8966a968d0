package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ckptdev/ckpt"
)

func newDeleteCmd(a *app, sf *storeFlags) *cobra.Command {
	var all, yes bool
	cmd := &cobra.Command{
		Use:   "delete SEQ | --all",
		Short: "Delete one checkpoint, or a whole job",
		Long: `Delete checkpoint SEQ of a job (a savepoint too) and the state blobs only
it uses, or with --all every checkpoint of the job: the next run of the job
starts from the beginning.

On a terminal, delete asks for confirmation; --yes skips the question.
When stdin is not a terminal and --yes is absent, delete refuses (exit
code 2) rather than guess. delete takes the job's lock: while the job runs
it is refused with exit code 4. --job is required. Deleting a whole job that
writes an S3 object aborts the job's incomplete upload of it.`,
		Example: `  ckpt checkpoints delete --job orders 7
  ckpt checkpoints delete --job orders --all --yes`,
		Args: maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var seq uint64
			switch {
			case len(args) == 1 && all:
				return usageErrorf("give a checkpoint's SEQ or --all, not both")
			case len(args) == 0 && !all:
				return usageErrorf("name what to delete: a checkpoint's SEQ, or --all for the whole job")
			case len(args) == 1:
				var err error
				if seq, err = parseSeq(args[0]); err != nil {
					return err
				}
			}
			if !yes && !a.stdinTTY {
				return &codedError{code: exitUsage, err: errors.New("refusing to delete without confirmation: stdin is not a terminal"),
					hint: "pass --yes to delete without asking"}
			}
			ctx := cmd.Context()
			st, loc, err := a.openStore(ctx, sf.url)
			if err != nil {
				return err
			}
			defer st.Close()
			job, entries, err := a.resolveJob(ctx, st, loc, sf.job, false)
			if err != nil {
				return err
			}

			var what string
			if all {
				savepoints := 0
				for _, e := range entries {
					if e.Checkpoint != nil && e.Checkpoint.Savepoint {
						savepoints++
					}
				}
				what = fmt.Sprintf("job %q and all %d of its checkpoints", job, len(entries))
				if len(entries) == 1 {
					what = fmt.Sprintf("job %q and its only checkpoint", job)
				}
				switch {
				case savepoints == 1:
					what += " (1 savepoint)"
				case savepoints > 1:
					what += fmt.Sprintf(" (%d savepoints)", savepoints)
				}
			} else {
				e, err := findEntry(job, entries, seq)
				if err != nil {
					return err
				}
				what = fmt.Sprintf("checkpoint %d of job %q", seq, job)
				if cp := e.Checkpoint; cp != nil && cp.Savepoint {
					what = fmt.Sprintf("savepoint %d of job %q", seq, job)
					if cp.Label != "" {
						what += " (" + quoteIfNeeded(cp.Label) + ")"
					}
				}
			}
			if !yes && !a.confirm(fmt.Sprintf("Delete %s from store %s?", what, loc)) {
				return errors.New("not confirmed; nothing deleted")
			}

			opts := ckpt.AdminOptions{Logger: a.log}
			if all {
				err = ckpt.DeleteJob(ctx, st, job, opts)
			} else {
				err = ckpt.Delete(ctx, st, job, seq, opts)
			}
			if err != nil {
				if errors.Is(err, ckpt.ErrLocked) {
					return fmt.Errorf("delete refused: %w", err)
				}
				return err
			}
			if all {
				a.abandonS3Outputs(ctx, entries)
				a.infof("deleted job %q: %s\n", job, plural(int64(len(entries)), "checkpoint"))
			} else {
				a.infof("deleted checkpoint %d of job %q\n", seq, job)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "delete every checkpoint of the job")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}
