package assetcli

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ckptdev/ckpt/asset"
	"github.com/ckptdev/ckpt/asset/eventlog"
)

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (c *cli) listCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the assets, upstream first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			infos, err := c.g.Assets()
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(cmd, infos)
			}
			w := table(c.out(cmd))
			fmt.Fprintln(w, "ASSET\tTYPE\tDEPS\tPARTITIONS\tCODE\tGROUP\tDESCRIPTION")
			for _, a := range infos {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Key, a.Type, dash(strings.Join(a.Deps, ",")), dash(a.Partitions),
					dash(a.CodeVersion), dash(a.Group), a.Description)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&c.json, "json", false, "print JSON")
	return cmd
}

func (c *cli) statusCmd() *cobra.Command {
	var parts []string
	var each bool
	cmd := &cobra.Command{
		Use:   "status [SELECTION]",
		Short: "Show whether each asset (and partition) is fresh, stale, missing or failed",
		Long: `Show the status of the selected assets (all by default): fresh, stale (its
code version changed, an upstream has a newer data version than the one it
was computed from, or an upstream is not fresh), missing (never
materialized) or failed (its last computation failed).

A partitioned asset shows how many partitions are in each state; --partitions
lists them, and --partition picks some (keys or ranges "first...last").`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := c.open(cmd)
			if err != nil {
				return err
			}
			defer in.Close()
			sel := ""
			if len(args) > 0 {
				sel = args[0]
			}
			st, err := in.Status(cmd.Context(), asset.StatusOptions{Selection: sel})
			if err != nil {
				return withEventsHint(err)
			}
			if items := partItems(parts); items != nil {
				for i := range st {
					st[i].Partitions = filterParts(st[i].Partitions, items)
				}
			}
			if c.json {
				return c.printJSON(cmd, st)
			}
			w := table(c.out(cmd))
			fmt.Fprintln(w, "ASSET\tSTATE\tPARTITIONS\tLAST RUN\tREASON")
			for _, a := range st {
				var partCol, last string
				if a.Partitioned {
					partCol = fmt.Sprintf("%d fresh, %d stale, %d missing, %d failed", a.Counts[asset.StateFresh], a.Counts[asset.StateStale], a.Counts[asset.StateMissing], a.Counts[asset.StateFailed])
				} else if len(a.Partitions) == 1 {
					last = a.Partitions[0].RunID
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", a.Key, a.State, dash(partCol), dash(last), a.Reason)
				if a.Partitioned && (each || parts != nil) {
					for _, p := range a.Partitions {
						fmt.Fprintf(w, "  %s\t%s\t\t%s\t%s\n", p.Partition, p.State, dash(p.RunID), p.Reason)
					}
				}
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringArrayVarP(&parts, "partition", "p", nil, "show these partitions (keys, \"first...last\" ranges, comma-separated)")
	cmd.Flags().BoolVar(&each, "partitions", false, "list every partition of partitioned assets")
	cmd.Flags().BoolVar(&c.json, "json", false, "print JSON")
	return cmd
}

// partItem is a --partition item: a key, or a range "first...last".
type partItem struct {
	first, last string
	isRange     bool
}

// partItems splits --partition arguments into items, nil for none.
func partItems(args []string) []partItem {
	var items []partItem
	for _, a := range args {
		for it := range strings.SplitSeq(a, ",") {
			if first, last, ok := strings.Cut(it, "..."); ok {
				items = append(items, partItem{first, last, true})
			} else if it != "" {
				items = append(items, partItem{first: it})
			}
		}
	}
	return items
}

// filterParts keeps the partitions the items name. A range runs in the
// asset's own partition order (static keys are not sorted), from first to
// last, both of which must be partitions of the asset, as materialize
// takes them.
func filterParts(ps []asset.PartitionStatus, items []partItem) []asset.PartitionStatus {
	pos := make(map[string]int, len(ps))
	for i, p := range ps {
		pos[p.Partition] = i
	}
	want := make([]bool, len(ps))
	for _, it := range items {
		i, ok := pos[it.first]
		j, ok2 := pos[it.last]
		switch {
		case !it.isRange && ok:
			want[i] = true
		case it.isRange && ok && ok2:
			for k := i; k <= j; k++ {
				want[k] = true
			}
		}
	}
	var out []asset.PartitionStatus
	for i, p := range ps {
		if p.Partition == "" || want[i] {
			out = append(out, p)
		}
	}
	return out
}

func (c *cli) materializeCmd() *cobra.Command {
	var o asset.MaterializeOptions
	var dry bool
	cmd := &cobra.Command{
		Use:   "materialize [SELECTION]",
		Short: "Compute the selected assets and record them",
		Long: `Compute the selected assets (all by default), upstream first, several at once
(--parallel), and record every materialization in the event log. An asset
whose upstream fails is skipped; independent ones go on. A failed or
interrupted run is resumed with 'runs resume RUN': only what it left undone
is computed.

SELECTION is a list of items separated by commas or spaces: KEY, +KEY (and
its direct upstream; ++KEY two levels), *KEY (and everything upstream),
KEY+ and KEY* (downstream), group:NAME, or all.

Partitioned assets materialize every partition unless --partition names
some: keys or ranges "first...last", repeated or comma-separated. --stale
computes only what is not fresh.

A first SIGINT or SIGTERM cancels the run (exit code 75; resume it to go on);
a second one ends the process at once, which is as safe.`,
		Example: `  assets materialize
  assets materialize 'daily_revenue+' --partition 2026-01-01...2026-01-31
  assets materialize --stale`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, done, err := c.openExec(cmd)
			if err != nil {
				return err
			}
			defer done()
			if len(args) > 0 {
				o.Selection = args[0]
			}
			if o.Detach && in.Executor() == nil {
				return usage(errors.New("--detach needs --executor river: a run computed in process ends with its process"))
			}
			if dry {
				plan, err := in.Plan(cmd.Context(), o)
				if err != nil {
					return err
				}
				if c.json {
					return c.printJSON(cmd, plan)
				}
				for _, s := range plan {
					fmt.Fprintln(c.out(cmd), s)
				}
				c.infof(cmd, "%s to compute\n", count(len(plan), "step", "steps"))
				return nil
			}
			if err := checkEventLog(cmd, in); err != nil && !c.quiet {
				// Not an error: computing again is correct, only slow.
				fmt.Fprintf(c.errw(cmd), "%s: warning: %s\n", c.o.Name, message(err))
			}
			ctx, stop := signalContext(cmd)
			defer stop()
			o.Progress = c.progress(cmd)
			run, err := in.Materialize(ctx, o)
			if err == nil && o.Detach {
				return c.detached(cmd, run)
			}
			return c.finish(cmd, run, err)
		},
	}
	c.executorFlag(cmd)
	f := cmd.Flags()
	f.BoolVar(&o.Detach, "detach", false, "with --executor river: submit the run, print its id and return; the workers go on")
	f.StringArrayVarP(&o.Partitions, "partition", "p", nil, "partitions to materialize: keys or \"first...last\" ranges, comma-separated")
	f.BoolVar(&o.Stale, "stale", false, "compute only what is stale, missing or failed")
	f.IntVar(&o.Parallelism, "parallel", 0, "assets computed at once (default: the number of CPUs)")
	f.BoolVar(&dry, "dry-run", false, "print what would be computed, and compute nothing")
	f.BoolVar(&c.json, "json", false, "print the run as JSON at the end")
	return cmd
}

// detached prints the id of a run submitted with --detach.
func (c *cli) detached(cmd *cobra.Command, run *asset.Run) error {
	if c.json {
		return c.printJSON(cmd, run)
	}
	if c.quiet {
		fmt.Fprintln(c.out(cmd), run.ID)
		return nil
	}
	fmt.Fprintf(c.out(cmd), "run %s submitted; follow it with: %s runs resume %s --executor river\n", run.ID, c.o.Name, run.ID)
	return nil
}

// progress prints a line per step, unless --quiet or --json.
func (c *cli) progress(cmd *cobra.Command) func(asset.Step) {
	if c.quiet || c.json {
		return nil
	}
	w := c.out(cmd)
	return func(s asset.Step) {
		name := s.Key
		if s.Partition != "" {
			name += "[" + s.Partition + "]"
		}
		switch s.Outcome {
		case asset.OutcomeMaterialized:
			extra := ""
			if s.Attempts > 1 {
				extra = fmt.Sprintf(", attempt %d", s.Attempts)
			}
			for _, ch := range s.Checks {
				if !ch.Passed {
					extra += fmt.Sprintf(", check %q failed: %s", ch.Name, ch.Message)
				}
			}
			fmt.Fprintf(w, "materialized  %s (%s%s)\n", name, s.Duration.Round(time.Millisecond), extra)
		case asset.OutcomeFailed:
			fmt.Fprintf(w, "FAILED        %s: %s\n", name, firstLine(s.Error))
		case asset.OutcomeSkipped:
			fmt.Fprintf(w, "skipped       %s: %s\n", name, s.Error)
		case asset.OutcomeFresh:
			fmt.Fprintf(w, "fresh         %s\n", name)
		case asset.OutcomeCanceled:
			fmt.Fprintf(w, "canceled      %s\n", name)
		}
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// finish prints a run's summary and turns its error into one with a hint.
func (c *cli) finish(cmd *cobra.Command, run *asset.Run, err error) error {
	if run == nil {
		return err
	}
	if c.json {
		if jerr := c.printJSON(cmd, run); jerr != nil {
			return jerr
		}
	} else {
		var parts []string
		for _, o := range []asset.Outcome{asset.OutcomeMaterialized, asset.OutcomeReused, asset.OutcomeFresh, asset.OutcomeFailed, asset.OutcomeSkipped, asset.OutcomeCanceled} {
			if n := run.Steps.Count(o); n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", n, o))
			}
		}
		if len(parts) == 0 {
			parts = append(parts, "nothing to do")
		}
		c.infof(cmd, "run %s %s: %s\n", run.ID, run.Status, strings.Join(parts, ", "))
	}
	if errors.Is(err, asset.ErrRunFailed) || errors.Is(err, asset.ErrRunCanceled) {
		return hinted{err, fmt.Sprintf("resume it with: %s runs resume %s", c.o.Name, run.ID)}
	}
	return err
}

func (c *cli) historyCmd() *cobra.Command {
	var part string
	var limit int
	cmd := &cobra.Command{
		Use:   "history KEY",
		Short: "Show an asset's materializations and failures, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key := args[0]
			keys, err := c.g.Select(key)
			if err != nil {
				return err
			}
			if len(keys) != 1 || keys[0] != key {
				return usage(fmt.Errorf("history takes one asset's key, not a selection: %q", key))
			}
			in, err := c.open(cmd)
			if err != nil {
				return err
			}
			defer in.Close()
			f := eventlog.EventFilter{Key: key, Kinds: []eventlog.Kind{eventlog.KindMaterialization, eventlog.KindStepFailure}, Newest: true, Limit: limit}
			if cmd.Flags().Changed("partition") {
				f.Partition = &part
			}
			evs, err := in.EventLog().Events(cmd.Context(), f)
			if err != nil {
				return err
			}
			if len(evs) == 0 {
				if err := checkEventLog(cmd, in); err != nil {
					return err
				}
			}
			if c.json {
				return c.printJSON(cmd, evs)
			}
			w := table(c.out(cmd))
			fmt.Fprintln(w, "TIME\tRUN\tPARTITION\tEVENT\tDATA VERSION\tCODE\tROWS\tBYTES\tDURATION\tDETAIL")
			for _, e := range evs {
				detail := e.Error
				dv, code, rows, bytes, dur := "-", "-", "-", "-", "-"
				if m := e.Materialization; m != nil {
					dv, code, bytes = short(m.DataVersion), dash(m.CodeVersion), fmt.Sprint(m.Bytes)
					if m.Rows >= 0 {
						rows = fmt.Sprint(m.Rows)
					}
					dur = m.Duration.Round(time.Millisecond).String()
					var notes []string
					for _, ch := range m.Checks {
						state := "passed"
						if !ch.Passed {
							state = "FAILED: " + ch.Message
						}
						notes = append(notes, fmt.Sprintf("check %q %s", ch.Name, state))
					}
					detail = strings.Join(notes, "; ")
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Local().Format("2006-01-02 15:04:05"), e.RunID,
					dash(e.Partition), e.Kind, dv, code, rows, bytes, dur, firstLine(detail))
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVarP(&part, "partition", "p", "", "only this partition")
	cmd.Flags().IntVar(&limit, "limit", 50, "show at most this many events (0: all)")
	cmd.Flags().BoolVar(&c.json, "json", false, "print JSON")
	return cmd
}

// dotString quotes s for Graphviz, whose labels read "\n" as a line
// break and "\\" as a backslash: a newline of s becomes a line break of
// the label. (Go's %q is not DOT quoting: it doubles the backslash of a
// "\n", which is then drawn as a backslash and an n.)
func dotString(s string) string {
	return `"` + dotEscaper.Replace(s) + `"`
}

var dotEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func short(v string) string {
	if len(v) > 12 {
		return v[:12]
	}
	return dash(v)
}

func (c *cli) lineageCmd() *cobra.Command {
	var dot bool
	cmd := &cobra.Command{
		Use:   "lineage [SELECTION]",
		Short: "Show how assets depend on each other (--dot for Graphviz)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sel := ""
			if len(args) > 0 {
				sel = args[0]
			}
			keys, err := c.g.Select(sel)
			if err != nil {
				return err
			}
			infos, err := c.g.Assets()
			if err != nil {
				return err
			}
			picked := map[string]bool{}
			for _, k := range keys {
				picked[k] = true
			}
			w := c.out(cmd)
			if dot {
				fmt.Fprintln(w, "digraph assets {\n  rankdir=LR;\n  node [shape=box];")
				for _, a := range infos {
					if !picked[a.Key] {
						continue
					}
					label := a.Key
					if a.Partitions != "" {
						label += "\n" + a.Partitions
					}
					fmt.Fprintf(w, "  %q [label=%s];\n", a.Key, dotString(label))
					for _, d := range a.Deps {
						if picked[d] {
							fmt.Fprintf(w, "  %q -> %q;\n", d, a.Key)
						}
					}
				}
				fmt.Fprintln(w, "}")
				return nil
			}
			down := map[string][]string{}
			for _, a := range infos {
				for _, d := range a.Deps {
					down[d] = append(down[d], a.Key)
				}
			}
			for _, a := range infos {
				if !picked[a.Key] {
					continue
				}
				line := a.Key
				if a.Partitions != "" {
					line += "  [" + a.Partitions + "]"
				}
				fmt.Fprintln(w, line)
				if len(a.Deps) > 0 {
					fmt.Fprintf(w, "  <- %s\n", strings.Join(a.Deps, ", "))
				}
				if ds := down[a.Key]; len(ds) > 0 {
					fmt.Fprintf(w, "  -> %s\n", strings.Join(ds, ", "))
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&dot, "dot", false, "print a Graphviz digraph")
	return cmd
}
