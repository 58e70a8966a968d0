package assetcli

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ckptdev/ckpt/asset"
	"github.com/ckptdev/ckpt/asset/eventlog"
)

// runState is a run's status for people: "dead" for a run whose process
// died before it ended.
func runState(r eventlog.Run, alive bool) string {
	if r.Status == eventlog.RunStarted && !alive && r.PID == 0 {
		// Executed by workers: its steps wait in the queue for one.
		return "stalled"
	}
	if r.Status == eventlog.RunStarted && !alive {
		return "dead"
	}
	if r.Status == eventlog.RunStarted {
		return "running"
	}
	return string(r.Status)
}

func (c *cli) runsListCmd() *cobra.Command {
	var limit int
	var status []string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List runs, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in, err := c.open(cmd)
			if err != nil {
				return err
			}
			defer in.Close()
			f := eventlog.RunFilter{Limit: limit}
			for _, s := range status {
				switch s {
				case "running", "dead":
					f.Status = append(f.Status, eventlog.RunStarted)
				case string(eventlog.RunSuccess), string(eventlog.RunFailure), string(eventlog.RunCanceled):
					f.Status = append(f.Status, eventlog.RunStatus(s))
				default:
					return usage(fmt.Errorf("--status %q: use running, dead, success, failure or canceled", s))
				}
			}
			// The log knows only "started": running or dead is judged here,
			// so the limit applies after that filter.
			judged := contains(status, "running") != contains(status, "dead")
			if judged {
				f.Limit = 0
			}
			runs, err := in.EventLog().Runs(cmd.Context(), f)
			if err != nil {
				return err
			}
			if len(runs) == 0 {
				if err := checkEventLog(cmd, in); err != nil {
					return err
				}
			}
			type row struct {
				eventlog.Run
				State string `json:"state"`
			}
			var rows []row
			for _, r := range runs {
				st := runState(r, r.Alive(in.Liveness()))
				if len(status) > 0 && !contains(status, st) && !contains(status, string(r.Status)) {
					continue
				}
				if judged && limit > 0 && len(rows) == limit {
					break
				}
				rows = append(rows, row{r, st})
			}
			if c.json {
				return c.printJSON(cmd, rows)
			}
			w := table(c.out(cmd))
			fmt.Fprintln(w, "RUN\tSTATE\tSTARTED\tDURATION\tPARENT\tDETAIL")
			for _, r := range rows {
				end := r.Ended
				if end.IsZero() {
					end = r.Heartbeat
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.State, r.Created.Local().Format("2006-01-02 15:04:05"),
					end.Sub(r.Created).Round(time.Millisecond), dash(r.Parent), firstLine(r.Error))
			}
			return w.Flush()
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 20, "show at most this many runs (0: all)")
	cmd.Flags().StringSliceVar(&status, "status", nil, "only runs in these states: running, dead, success, failure, canceled")
	cmd.Flags().BoolVar(&c.json, "json", false, "print JSON")
	return cmd
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (c *cli) runsShowCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "show RUN",
		Short: "Show a run and what happened to each of its steps",
		Long:  "Show a run (by id, a unique prefix of it, or \"last\"): what it was asked, its chain of resumed runs, and its steps.",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := c.open(cmd)
			if err != nil {
				return err
			}
			defer in.Close()
			id, err := resolveRun(cmd, in, args[0])
			if err != nil {
				return err
			}
			d, err := in.RunDetails(cmd.Context(), id)
			if err != nil {
				return runNotFound(cmd, in, err)
			}
			if c.json {
				return c.printJSON(cmd, d)
			}
			w := c.out(cmd)
			fmt.Fprintf(w, "run        %s\n", d.ID)
			fmt.Fprintf(w, "state      %s\n", runState(d.Run, d.Alive))
			if d.Error != "" {
				fmt.Fprintf(w, "error      %s\n", d.Error)
			}
			sel := d.Selection
			if sel == "" {
				sel = "all"
			}
			fmt.Fprintf(w, "selection  %s", sel)
			if len(d.Partitions) > 0 {
				fmt.Fprintf(w, " --partition %s", strings.Join(d.Partitions, ","))
			}
			if d.Stale {
				fmt.Fprint(w, " --stale")
			}
			fmt.Fprintln(w)
			if d.PID == 0 {
				fmt.Fprintf(w, "started    %s from %s, computed by workers\n", d.Created.Local().Format(time.RFC3339), dash(d.Host))
			} else {
				fmt.Fprintf(w, "started    %s on %s (pid %d)\n", d.Created.Local().Format(time.RFC3339), dash(d.Host), d.PID)
			}
			if !d.Ended.IsZero() {
				fmt.Fprintf(w, "ended      %s (%s)\n", d.Ended.Local().Format(time.RFC3339), d.Ended.Sub(d.Created).Round(time.Millisecond))
			} else {
				fmt.Fprintf(w, "heartbeat  %s", d.Heartbeat.Local().Format(time.RFC3339))
				if d.HeartbeatInterval > 0 {
					fmt.Fprintf(w, " (every %s)", d.HeartbeatInterval)
				}
				fmt.Fprintln(w)
			}
			if len(d.Chain) > 0 {
				fmt.Fprintf(w, "resumes    %s\n", strings.Join(d.Chain, " <- "))
			}
			if len(d.Children) > 0 {
				fmt.Fprintf(w, "resumed by %s\n", strings.Join(d.Children, ", "))
			}
			var counts []string
			for _, o := range []asset.Outcome{asset.OutcomeMaterialized, asset.OutcomeReused, asset.OutcomeFresh, asset.OutcomeFailed, asset.OutcomeSkipped, asset.OutcomeCanceled, asset.OutcomeInterrupted} {
				if n := d.Steps.Count(o); n > 0 {
					counts = append(counts, fmt.Sprintf("%d %s", n, o))
				}
			}
			fmt.Fprintf(w, "steps      %s planned: %s\n", count(d.Planned, "step", "steps"), dash(strings.Join(counts, ", ")))
			t := table(w)
			shown := 0
			workers := false
			for _, s := range d.Steps {
				workers = workers || s.Worker != ""
			}
			for _, s := range d.Steps {
				if !all && (s.Outcome == asset.OutcomeMaterialized || s.Outcome == asset.OutcomeReused || s.Outcome == asset.OutcomeFresh) {
					continue
				}
				if shown == 0 {
					if workers {
						fmt.Fprintln(t, "\nASSET\tPARTITION\tOUTCOME\tATTEMPTS\tDURATION\tWORKER\tDETAIL")
					} else {
						fmt.Fprintln(t, "\nASSET\tPARTITION\tOUTCOME\tATTEMPTS\tDURATION\tDETAIL")
					}
				}
				shown++
				if workers {
					fmt.Fprintf(t, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", s.Key, dash(s.Partition), s.Outcome, s.Attempts,
						s.Duration.Round(time.Millisecond), dash(s.Worker), firstLine(s.Error))
					continue
				}
				fmt.Fprintf(t, "%s\t%s\t%s\t%d\t%s\t%s\n", s.Key, dash(s.Partition), s.Outcome, s.Attempts,
					s.Duration.Round(time.Millisecond), firstLine(s.Error))
			}
			if err := t.Flush(); err != nil {
				return err
			}
			if !all && shown < len(d.Steps) {
				c.infof(cmd, "(--steps lists every step)\n")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "steps", false, "list every step, not only those that did not succeed")
	cmd.Flags().BoolVar(&c.json, "json", false, "print JSON")
	return cmd
}

func (c *cli) resumeCmd() *cobra.Command {
	var o asset.ResumeOptions
	cmd := &cobra.Command{
		Use:   "resume RUN",
		Short: "Finish what a failed, canceled or dead run left undone",
		Long: `Start a new run that resumes RUN (by id, a unique prefix of it, or "last"), or
the newest run already resuming it: everything its chain of runs
materialized is reused, and only failed and never-run assets (and
partitions) are computed. A run whose process was killed is detected as
dead and can be resumed; a live one is refused (exit code 4). Resuming a
run whose chain already succeeded does nothing and exits 0.

With --executor river, a run whose steps are still with the workers (the
process that submitted it was killed, or it was submitted with --detach)
is followed to its end instead; one that ended is resumed by a new run
submitted to the workers.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, done, err := c.openExec(cmd)
			if err != nil {
				return err
			}
			defer done()
			if o.Detach && in.Executor() == nil {
				return usage(errors.New("--detach needs --executor river: a run computed in process ends with its process"))
			}
			id, err := resolveRun(cmd, in, args[0])
			if err != nil {
				return err
			}
			ctx, stop := signalContext(cmd)
			defer stop()
			o.Progress = c.progress(cmd)
			run, err := in.Resume(ctx, id, o)
			if err == nil && o.Detach {
				return c.detached(cmd, run)
			}
			if run == nil {
				err = runNotFound(cmd, in, err)
			}
			if errors.Is(err, asset.ErrNothingToResume) {
				// As a finished job is: done, nothing to do.
				if c.json {
					return c.printJSON(cmd, map[string]string{"message": message(err)})
				}
				c.infof(cmd, "%s\n", message(err))
				return nil
			}
			return c.finish(cmd, run, err)
		},
	}
	cmd.Flags().IntVar(&o.Parallelism, "parallel", 0, "assets computed at once (default: the number of CPUs)")
	cmd.Flags().BoolVar(&c.json, "json", false, "print the run as JSON at the end")
	c.executorFlag(cmd)
	cmd.Flags().BoolVar(&o.Detach, "detach", false, "with --executor river: submit the new run, print its id and return")
	return cmd
}

func (c *cli) pruneCmd() *cobra.Command {
	var older time.Duration
	var values bool
	cmd := &cobra.Command{
		Use:   "prune --older-than DURATION",
		Short: "Remove the events of old runs (retention)",
		Long: `Remove the events of runs that ended more than DURATION ago (720h: 30 days),
keeping every asset partition's newest materialization and failure, which
status and staleness need. With --values, also delete the stored values only
those removed materializations referenced (refused while a run is alive).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if older <= 0 {
				return usage(fmt.Errorf("--older-than is required and must be positive (e.g. 720h)"))
			}
			in, err := c.open(cmd)
			if err != nil {
				return err
			}
			defer in.Close()
			res, err := in.Prune(cmd.Context(), asset.PruneOptions{Before: time.Now().Add(-older), Values: values})
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(cmd, res)
			}
			c.infof(cmd, "removed %s and %s", count(res.Events, "event", "events"), count(res.Runs, "run", "runs"))
			if values {
				c.infof(cmd, ", %s", count(res.Blobs, "value blob", "value blobs"))
			}
			c.infof(cmd, "\n")
			return nil
		},
	}
	cmd.Flags().DurationVar(&older, "older-than", 0, "remove runs that ended longer ago than this (e.g. 720h)")
	cmd.Flags().BoolVar(&values, "values", false, "also delete stored values nothing else references")
	cmd.Flags().BoolVar(&c.json, "json", false, "print JSON")
	return cmd
}

// runNotFound explains a run that is not in the event log by the log
// being the wrong one, when it looks so.
func runNotFound(cmd *cobra.Command, in *asset.Instance, err error) error {
	if errors.Is(err, eventlog.ErrNotFound) {
		if cerr := checkEventLog(cmd, in); cerr != nil {
			return cerr
		}
	}
	return err
}
