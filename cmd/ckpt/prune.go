package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ckptdev/ckpt"
)

func newPruneCmd(a *app, sf *storeFlags) *cobra.Command {
	var retain int
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Apply retention: keep the newest checkpoints and every savepoint",
		Long: `Remove old checkpoints of a job: keep the newest --retain checkpoints and
every savepoint, remove the rest and the state blobs only they use, and
print what was removed. Running jobs apply their own retention after every
checkpoint; prune is for a job that is not running, for example to keep
fewer checkpoints than it did.

prune takes the job's lock: while the job runs it is refused with exit
code 4. --job is required.`,
		Example: `  ckpt checkpoints prune --job orders
  ckpt checkpoints prune --store /data/ckpt --job orders --retain 1`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if retain < 1 {
				return usageErrorf("--retain %d: keep at least 1 checkpoint", retain)
			}
			ctx := cmd.Context()
			st, loc, err := a.openStore(ctx, sf.url)
			if err != nil {
				return err
			}
			defer st.Close()
			// Resolving first also keeps a mistyped job name from
			// leaving a lock object behind.
			job, _, err := a.resolveJob(ctx, st, loc, sf.job, false)
			if err != nil {
				return err
			}
			removed, err := ckpt.Prune(ctx, st, job, retain, ckpt.AdminOptions{Logger: a.log})
			for _, seq := range removed {
				a.infof("removed checkpoint %d of job %q\n", seq, job)
			}
			if err != nil {
				if errors.Is(err, ckpt.ErrLocked) {
					return fmt.Errorf("prune refused: %w", err)
				}
				return err
			}
			if len(removed) == 0 {
				a.infof("nothing to prune: job %q keeps at most %s besides savepoints\n", job, plural(int64(retain), "checkpoint"))
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&retain, "retain", 3, "how many of the newest checkpoints to keep, besides savepoints")
	return cmd
}
