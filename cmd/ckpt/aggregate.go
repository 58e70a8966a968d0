package main

import (
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ckptdev/ckpt/aggregate"
	"github.com/ckptdev/ckpt/convert"
	"github.com/ckptdev/ckpt/pipeline"
	"github.com/ckptdev/ckpt/store"
)

func newAggregateCmd(a *app) *cobra.Command {
	var (
		pf       pipelineFlags
		from, to string
		groupBy  []string
		aggs     []string
		memory   string
		csvf     csvFlags
	)
	cmd := &cobra.Command{
		Use:   "aggregate INPUT OUTPUT --group-by COL[,COL] --agg SPEC[,SPEC]",
		Short: "Group-by aggregation over CSV or JSON Lines of any size, resumably",
		Long: `Group the records of INPUT by one or more columns and compute, per group:
count, sum:COL, min:COL, max:COL, mean:COL. The groups are written to OUTPUT
(CSV or JSON Lines, by extension or --to), sorted by group key, once the
whole input is read; the output columns are the group-by columns, then
"count" and COL_sum, COL_min, COL_max, COL_mean.

The groups live in the job's keyed state, so the job resumes after a kill
or crash with exactly the totals of one uninterrupted run. A checkpoint
writes only the groups that changed since the previous one, and past
--memory the groups spill to sorted files on local disk (beside a local
store: .ckpt-keyed beside .ckpt; else under the system's temporary
directory), merged in the background and read back in order at
the end: an aggregation over more groups than fit in memory runs in
bounded memory, and checkpoints stay frequent however many groups there
are. --memory also sets the Go runtime's soft memory limit to 1.75 times
itself (unless GOMEMLIMIT is set), so the process's memory stays near
the budget: with the default, under 1 GiB. Empty values
are left out of sum, min, max and mean; a value that is not a number (NaN
and Inf included) is a bad record (see --on-error). The arithmetic is exact
decimal arithmetic: sums are exact at any size (0.1+0.2 is 0.3), min and
max compare exact values and are printed as written in the input (as JSON
numbers in JSON Lines output), and a mean is the exact sum divided by the
count, rounded once to the nearest float64.

INPUT, the store, the triggers and the exit codes work as for ckpt convert,
compressed inputs and outputs (.gz, .zst), S3 objects ('s3://BUCKET/drops/*.csv'),
TSV, --delimiter, --out-delimiter and --columns included; OUTPUT is a file
(written compressed when named .gz or .zst). --from, --group-by, --agg and
the separators and columns are the job's: a resume with others is refused
(pass --restart to start over). INPUT may be a NATS JetStream stream of JSON
objects, 'nats://HOST:PORT/STREAM?subject=FILTER', with --until (now, a
sequence or a time): the groups are written when the bound is reached.`,
		Example: `  ckpt aggregate sales.csv by_region.csv --group-by region --agg count,sum:amount,mean:amount
  ckpt aggregate events.jsonl per_day.jsonl --group-by day,kind --agg count,max:latency_ms
  ckpt aggregate --until now 'nats://127.0.0.1:4222/ORDERS' by_region.csv --group-by region --agg count,sum:amount`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o := aggregate.Options{Input: args[0], Output: args[1]}
			var err error
			if o.Until, err = pf.parseUntil(); err != nil {
				return err
			}
			isStream := convert.IsStream(o.Input)
			if isStream && o.Until.IsZero() {
				return usageErrorf("a stream input needs --until (now, a sequence or a time): the groups are written when the input ends")
			}
			if !isStream && !o.Until.IsZero() {
				return usageErrorf("--until applies to a stream input only")
			}
			if o.From, err = convert.ParseFormat(from); err != nil {
				return usageErrorf("--from: %v", err)
			}
			if o.To, err = convert.ParseFormat(to); err != nil {
				return usageErrorf("--to: %v", err)
			}
			for _, g := range groupBy {
				if g = strings.TrimSpace(g); g != "" {
					o.GroupBy = append(o.GroupBy, g)
				}
			}
			switch {
			case len(o.GroupBy) == 0 && len(aggs) == 0:
				return usageErrorf("--group-by and --agg are required: name the columns to group by and what to compute, as --group-by region --agg count,sum:amount")
			case len(o.GroupBy) == 0:
				return usageErrorf("--group-by is required: name at least one column to group by, as --group-by region")
			case len(aggs) == 0:
				return usageErrorf("--agg is required: name what to compute per group, as --agg count,sum:amount")
			}
			if o.Aggs, err = aggregate.ParseSpecs(strings.Join(aggs, ",")); err != nil {
				return usageErrorf("--agg: %v", err)
			}
			if isStream {
				if o.From != convert.Auto && o.From != convert.JSONL {
					return usageErrorf("the input is a stream of JSON messages: --from does not apply")
				}
				o.From = convert.JSONL
			}
			if o.From == convert.Auto {
				if o.From, err = convert.InputFormatOf(o.Input); err != nil {
					return usageErrorf("%v", err)
				}
			}
			if o.To == convert.Auto {
				if o.To, err = convert.FormatOf(o.Output); err != nil {
					return usageErrorf("%v", err)
				}
			}
			if o.Delimiter, o.OutDelimiter, o.Columns, err = csvf.parse(cmd); err != nil {
				return err
			}
			if !o.From.IsCSV() && (o.Delimiter != 0 || len(o.Columns) > 0) {
				return usageErrorf("the input is %s: --delimiter and --columns apply to CSV and TSV input only", o.From)
			}
			if !o.To.IsCSV() && o.OutDelimiter != 0 {
				return usageErrorf("the output is %s: --out-delimiter applies to CSV and TSV output only", o.To)
			}
			if err := checkOutput(o.Output); err != nil {
				return err
			}
			t := target{verb: "aggregate", output: o.Output, display: o.Output, isFile: true}
			if t.id, err = fileIdentity(o.Output); err != nil {
				return err
			}
			if o.Pipeline, err = pf.config(a, cmd, t); err != nil {
				return err
			}
			if isStream {
				streamDefaults(cmd, &o.Pipeline)
			}
			if o.Pipeline.Memory, err = parseSize(memory); err != nil {
				return usageErrorf("--memory: %v", err)
			}
			setMemoryLimit(o.Pipeline.Memory)
			// The groups' local runs go beside a local store (so .ckpt
			// gets .ckpt-keyed), or under the system's temporary
			// directory for a remote one.
			if loc, err := store.ParseURL(o.Pipeline.Store); err == nil && loc.Scheme == "file" && loc.Path != "" {
				o.Pipeline.LocalDir = loc.Path + "-keyed"
			}
			return a.runJob(cmd, &pf, t, &o.Pipeline, func() (pipeline.Result, error) {
				return aggregate.Run(cmd.Context(), o)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&groupBy, "group-by", nil, "columns to group by, comma-separated (required)")
	fl.StringSliceVar(&aggs, "agg", nil, "aggregations, comma-separated: count, sum:COL, min:COL, max:COL, mean:COL (required)")
	fl.StringVar(&from, "from", "", "input format: csv, tsv or jsonl (default: from INPUT's extension)")
	fl.StringVar(&to, "to", "", "output format: csv, tsv or jsonl (default: from OUTPUT's extension)")
	csvf.add(cmd, true)
	fl.StringVar(&memory, "memory", "512MiB", "memory for the groups, past which they spill to local disk: bytes, or KiB, MiB, GiB, KB, MB, GB (0: no limit)")
	pf.add(cmd)
	return cmd
}

// setMemoryLimit sets the Go runtime's soft memory limit to 1.75 times
// the groups' budget, unless GOMEMLIMIT sets one or there is no budget.
// The groups' tables are large allocations without pointers, cheap for
// the collector to mark; without a limit it lets the heap grow to twice
// what is live before collecting, and the process's memory to about
// three times the budget.
func setMemoryLimit(budget int64) {
	if budget <= 0 || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(budget / 4 * 7)
}
