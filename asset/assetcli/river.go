package assetcli

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/ckptdev/ckpt/asset"
	"github.com/ckptdev/ckpt/asset/riverexec"
)

// The executors --executor names.
const (
	executorProcess = "process"
	executorRiver   = "river"
)

// executorFlag adds --executor to cmd.
func (c *cli) executorFlag(cmd *cobra.Command) {
	def := envOr("CKPT_EXECUTOR", executorProcess)
	cmd.Flags().StringVar(&c.executor, "executor", def, "where steps are computed: process (this one) or river (worker processes started with the workers command, through River on the PostgreSQL event log; env CKPT_EXECUTOR)")
}

// openExec opens the instance the flags name with the executor --executor
// names; done closes both.
func (c *cli) openExec(cmd *cobra.Command) (in *asset.Instance, done func(), err error) {
	var ex *riverexec.Executor
	switch c.executor {
	case "", executorProcess:
	case executorRiver:
		if ex, err = riverexec.New(c.o.River); err != nil {
			return nil, nil, err
		}
	default:
		return nil, nil, usage(fmt.Errorf("--executor %q: use process or river", c.executor))
	}
	c.exec = nil
	if ex != nil {
		c.exec = ex
	}
	in, err = c.open(cmd)
	if err != nil {
		if ex != nil {
			ex.Close()
		}
		return nil, nil, err
	}
	return in, func() {
		in.Close()
		if ex != nil {
			ex.Close()
		}
	}, nil
}

func (c *cli) workersCmd() *cobra.Command {
	var o riverexec.WorkOptions
	cmd := &cobra.Command{
		Use:   "workers",
		Short: "Compute the steps of runs submitted with --executor river",
		Long: `Run a pool of workers that compute the steps of runs submitted with
'assets materialize --executor river' (or 'runs resume --executor river'),
up to --parallel at once, until SIGINT or SIGTERM. Start workers on any
number of machines that reach the same event log (a postgres:// URL) and
the same store (s3:// or postgres://, or a directory they share).

Every worker records a heartbeat every --heartbeat; a worker whose last
heartbeat is older than --dead-after is presumed dead and the others take
its steps over (a step that checkpoints resumes from its last checkpoint).
A presumed-dead worker that comes back cannot commit: its lease was fenced.

On SIGINT or SIGTERM the worker stops taking steps, waits up to
--dead-after for those it computes, and puts the rest back in the queue.`,
		Example: `  workers --store s3://bucket/assets --events postgres://host/db --parallel 4`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in, err := c.open(cmd)
			if err != nil {
				return err
			}
			defer in.Close()
			ctx, stop := signalContext(cmd)
			defer stop()
			cfg := c.o.River
			if cmd.Flags().Changed("heartbeat") {
				cfg.HeartbeatInterval = o.HeartbeatInterval
			}
			if cmd.Flags().Changed("dead-after") {
				cfg.DeadAfter = o.DeadAfter
			}
			o.Config = cfg
			if o.Logger == nil {
				o.Logger = c.logger
			}
			o.Started = func(id string) { c.infof(cmd, "worker %s started (pid %d, %d at once)\n", id, os.Getpid(), o.Parallel) }
			err = riverexec.Work(ctx, in, o)
			if err == nil || errors.Is(err, context.Canceled) {
				c.infof(cmd, "worker stopped\n")
				return nil
			}
			return err
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Parallel, "parallel", 0, "steps computed at once by this worker (default: the number of CPUs)")
	f.DurationVar(&o.HeartbeatInterval, "heartbeat", 0, "how often the worker records that it is alive (default 5s)")
	f.DurationVar(&o.DeadAfter, "dead-after", 0, "how old a worker's heartbeat must be for others to take its steps over (default 3 heartbeats)")
	return cmd
}

func (c *cli) cancelCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "cancel RUN",
		Short: "Cancel a run executed by workers",
		Long: `Cancel RUN (by id, a unique prefix of it, or "last"), a run submitted with
--executor river: no step of it starts any more, the workers interrupt the
steps they compute (within a heartbeat), and the run ends canceled. Resume
it later to go on. A run computed in process is canceled with SIGINT to its
process.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c.executor = executorRiver
			in, done, err := c.openExec(cmd)
			if err != nil {
				return err
			}
			defer done()
			id, err := resolveRun(cmd, in, args[0])
			if err != nil {
				return err
			}
			if err := in.Cancel(cmd.Context(), id); err != nil {
				return runNotFound(cmd, in, err)
			}
			c.infof(cmd, "run %s canceled; its workers stop its steps within a heartbeat\n", id)
			return nil
		},
	}
}
