package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ckptdev/ckpt"
)

// jobJSON is one job in the JSON output of `ckpt jobs`.
type jobJSON struct {
	Job         string         `json:"job"`
	Checkpoints int            `json:"checkpoints"`
	Savepoints  int            `json:"savepoints"`
	Newest      checkpointJSON `json:"newest"`
	// Lag is, for a job reading a stream, how many messages of the
	// stream it had not read when its newest checkpoint was taken.
	Lag *int64 `json:"lag,omitempty"`
}

// sourceLag reads the lag a stream source records in its position
// (stream.Position), or nil for a source that records none.
func sourceLag(pos json.RawMessage) *int64 {
	var p struct {
		Offsets []json.RawMessage `json:"offsets"`
		Lag     *int64            `json:"lag"`
	}
	if json.Unmarshal(pos, &p) != nil || p.Offsets == nil || p.Lag == nil || *p.Lag < 0 {
		return nil
	}
	return p.Lag
}

func newJobsCmd(a *app) *cobra.Command {
	var (
		sf     storeFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "jobs",
		Short: "List the jobs in a store with their newest checkpoint",
		Long: `List the jobs that have checkpoints in a store, one line each: how many
checkpoints it keeps and what its newest one is (sequence number, time,
trigger, records read, for a job reading a stream its lag (the messages
of the stream it had not read when the checkpoint was taken), and flags:
savepoint, final, or corrupt when the newest manifest does not decode).

Only manifests are read; ` + "`ckpt checkpoints verify`" + ` checks the state blobs too.`,
		Example: `  ckpt jobs
  ckpt jobs --store /data/ckpt
  ckpt jobs --json | jq -r '.[].job'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			st, loc, err := a.openStore(ctx, sf.url)
			if err != nil {
				return err
			}
			defer st.Close()
			jobs, err := ckpt.Jobs(ctx, st)
			if err != nil {
				return err
			}
			out := make([]jobJSON, 0, len(jobs))
			for _, job := range jobs {
				entries, err := ckpt.List(ctx, st, job)
				if err != nil {
					return err
				}
				if len(entries) == 0 {
					continue // deleted since Jobs listed it
				}
				j := jobJSON{Job: job, Checkpoints: len(entries), Newest: entryJSON(entries[len(entries)-1])}
				j.Lag = sourceLag(j.Newest.Source)
				for _, e := range entries {
					if e.Checkpoint != nil && e.Checkpoint.Savepoint {
						j.Savepoints++
					}
				}
				out = append(out, j)
			}
			if asJSON {
				return a.printJSON(out)
			}
			if len(out) == 0 {
				a.infof("store %s holds no jobs\n", loc)
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "JOB\tCHECKPOINTS\tNEWEST\tTIME\tTRIGGER\tRECORDS\tLAG\tFLAGS")
			for _, j := range out {
				n := j.Newest
				count := strconv.Itoa(j.Checkpoints)
				switch {
				case j.Savepoints == 1:
					count += " (1 savepoint)"
				case j.Savepoints > 1:
					count += fmt.Sprintf(" (%d savepoints)", j.Savepoints)
				}
				if n.Error != "" {
					fmt.Fprintf(tw, "%s\t%s\t%d\t-\t-\t-\t-\t%s\n", j.Job, count, n.Seq, a.color(colorRed, "corrupt"))
					continue
				}
				flags := "-"
				switch {
				case n.Final:
					flags = "final"
				case n.Savepoint:
					flags = "savepoint"
				}
				lag := "-"
				if j.Lag != nil {
					lag = strconv.FormatInt(*j.Lag, 10)
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%d\t%s\t%s\n", j.Job, count, n.Seq, formatTime(n.Time), n.Trigger, n.Records, lag, flags)
			}
			return tw.Flush()
		},
	}
	sf.addStore(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array, one object per job")
	return cmd
}
