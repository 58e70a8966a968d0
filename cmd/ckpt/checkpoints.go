package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/internal/progress"
	"github.com/ckptdev/ckpt/store"
)

// newCheckpointsCmd builds `ckpt checkpoints` and its subcommands, which
// share --store and --job.
func newCheckpointsCmd(a *app) *cobra.Command {
	sf := &storeFlags{}
	cmd := &cobra.Command{
		Use:     "checkpoints",
		Aliases: []string{"checkpoint"},
		Short:   "List, show, verify, prune and delete a job's checkpoints",
		Long: `Work with the checkpoints of one job in a store.

Every subcommand takes --store (default .ckpt) and --job. list, show and
verify may leave --job out when the store holds a single job; prune and
delete, which change the store, always need it.

prune and delete take the job's lock, so they are refused (exit code 4)
while the job is running.`,
		Example: `  ckpt checkpoints list --job orders
  ckpt checkpoints show --job orders 12
  ckpt checkpoints verify --store s3://bucket/ckpt?region=eu-west-1 --job orders
  ckpt checkpoints prune --job orders --retain 2
  ckpt checkpoints delete --job orders 7`,
		Args:                       cobra.ArbitraryArgs,
		RunE:                       groupRunE,
		SuggestionsMinimumDistance: 2,
	}
	sf.addStore(cmd)
	sf.addJob(cmd)
	cmd.AddCommand(
		newListCmd(a, sf),
		newShowCmd(a, sf),
		newVerifyCmd(a, sf),
		newPruneCmd(a, sf),
		newDeleteCmd(a, sf),
	)
	return cmd
}

// optionalSeq reads the optional SEQ argument; 0 when it is absent.
func optionalSeq(args []string) (uint64, error) {
	if len(args) == 0 {
		return 0, nil
	}
	return parseSeq(args[0])
}

// readJob opens the store of sf for reading and finds the job (inferred
// when the store holds one) and its checkpoints. The caller closes the
// store.
func (a *app) readJob(ctx context.Context, sf *storeFlags) (store.Store, string, []ckpt.Entry, error) {
	st, loc, err := a.openStore(ctx, sf.url)
	if err != nil {
		return nil, "", nil, err
	}
	job, entries, err := a.resolveJob(ctx, st, loc, sf.job, true)
	if err != nil {
		st.Close()
		return nil, "", nil, err
	}
	return st, job, entries, nil
}

// parseSeq reads a checkpoint sequence number argument.
func parseSeq(arg string) (uint64, error) {
	seq, err := strconv.ParseUint(arg, 10, 64)
	if err != nil || seq == 0 {
		return 0, usageErrorf("%q is not a checkpoint sequence number (1, 2, 3, ...; `ckpt checkpoints list` shows them)", arg)
	}
	return seq, nil
}

// findEntry returns the entry of checkpoint seq, or an ErrNotFound error
// that says which checkpoints the job has.
func findEntry(job string, entries []ckpt.Entry, seq uint64) (ckpt.Entry, error) {
	i := slices.IndexFunc(entries, func(e ckpt.Entry) bool { return e.Seq == seq })
	if i < 0 {
		return ckpt.Entry{}, withHint(fmt.Errorf("job %q has no checkpoint %d: %w", job, seq, ckpt.ErrNotFound),
			"its checkpoints are "+seqList(entries))
	}
	return entries[i], nil
}

// seqList renders the sequence numbers of entries, shortened when long.
func seqList(entries []ckpt.Entry) string {
	s := make([]string, len(entries))
	for i, e := range entries {
		s[i] = strconv.FormatUint(e.Seq, 10)
	}
	if len(s) > 12 {
		s = append(append(s[:5:5], "..."), s[len(s)-5:]...)
	}
	return strings.Join(s, ", ")
}

// sourceWidth bounds the SOURCE POSITION column of list.
const sourceWidth = 48

func newListCmd(a *app, sf *storeFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List a job's checkpoints, oldest first",
		Long: `List every checkpoint of a job, oldest first, one line each:

  SEQ              the sequence number
  TIME             when it was committed (UTC)
  TRIGGER          why: records, bytes, interval, manual, shutdown or final
  RECORDS, BYTES   input read since the job began
  SOURCE POSITION  where the source resumes (compact JSON, shortened)
  STATE            the size of the saved state, raw→stored
  FLAGS            savepoint, label=..., final; corrupt when the manifest
                   does not decode

Only manifests are read; ` + "`ckpt checkpoints verify`" + ` checks the state blobs too.
--json prints one JSON array with every field in full.`,
		Example: `  ckpt checkpoints list --job orders
  ckpt checkpoints list --store /data/ckpt --job orders --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			st, _, entries, err := a.readJob(ctx, sf)
			if err != nil {
				return err
			}
			defer st.Close()
			if asJSON {
				out := make([]checkpointJSON, len(entries))
				for i, e := range entries {
					out[i] = entryJSON(e)
				}
				return a.printJSON(out)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tTIME\tTRIGGER\tRECORDS\tBYTES\tSOURCE POSITION\tWRITTEN\tSTATE\tFLAGS")
			for _, e := range entries {
				cp := e.Checkpoint
				if cp == nil {
					fmt.Fprintf(tw, "%d\t-\t-\t-\t-\t-\t-\t-\t%s\n", e.Seq, a.color(colorRed, entryProblem(e)))
					continue
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", cp.Seq, formatTime(cp.Time), cp.Trigger,
					cp.Records, progress.Bytes(cp.Bytes), compactJSON(cp.Source, sourceWidth), writtenSize(cp), stateSizes(cp), checkpointFlags(cp))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array, one object per checkpoint")
	return cmd
}

func newShowCmd(a *app, sf *storeFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show [SEQ]",
		Short: "Show one checkpoint's manifest in full",
		Long: `Show the manifest of checkpoint SEQ of a job, or of its newest checkpoint
when SEQ is left out: trigger, counters, source and sink positions, the
process that wrote it, its state values and their chunks, and the user's
metadata. --json prints the manifest as JSON.

A manifest that fails its checksum is reported as corrupt (exit code 3).`,
		Example: `  ckpt checkpoints show --job orders
  ckpt checkpoints show --job orders 12 --json`,
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
			e := entries[len(entries)-1]
			if seq != 0 {
				if e, err = findEntry(job, entries, seq); err != nil {
					return err
				}
			}
			if e.Err != nil {
				return withHint(e.Err, "`ckpt checkpoints list` shows the job's other checkpoints; `ckpt checkpoints show SEQ` shows one")
			}
			if asJSON {
				return a.printJSON(e.Checkpoint)
			}
			return writeManifest(a.stdout, e.Checkpoint)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the manifest as JSON")
	return cmd
}

// writeManifest prints a checkpoint for people.
func writeManifest(w io.Writer, cp *ckpt.Checkpoint) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	yesNo := map[bool]string{true: "yes", false: "no"}
	fmt.Fprintf(tw, "Job:\t%s\n", cp.Job)
	fmt.Fprintf(tw, "Checkpoint:\t%d\n", cp.Seq)
	fmt.Fprintf(tw, "Time:\t%s\n", formatTime(cp.Time))
	fmt.Fprintf(tw, "Trigger:\t%s\n", cp.Trigger)
	fmt.Fprintf(tw, "Savepoint:\t%s\n", yesNo[cp.Savepoint])
	if cp.Label != "" {
		fmt.Fprintf(tw, "Label:\t%s\n", cp.Label)
	}
	fmt.Fprintf(tw, "Final:\t%s\n", yesNo[cp.Final])
	fmt.Fprintf(tw, "Records:\t%d\n", cp.Records)
	fmt.Fprintf(tw, "Bytes:\t%d (%s)\n", cp.Bytes, progress.Bytes(cp.Bytes))
	fmt.Fprintf(tw, "Source position:\t%s\n", compactJSON(cp.Source, 0))
	fmt.Fprintf(tw, "Sink position:\t%s\n", compactJSON(cp.Sink, 0))
	fmt.Fprintf(tw, "State:\t%s raw, %s stored\n", progress.Bytes(cp.RawSize()), progress.Bytes(cp.StoredSize()))
	fmt.Fprintf(tw, "Size:\t%s written by this checkpoint, %s in full\n", writtenSize(cp), progress.Bytes(fullSize(cp)))
	fmt.Fprintf(tw, "Writer:\t%s (id %s)\n", cp.Writer, cp.Writer.ID)
	fmt.Fprintf(tw, "Fencing token:\t%d\n", cp.Token)
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(cp.Metadata) > 0 {
		fmt.Fprintln(w, "Metadata:")
		keys := make([]string, 0, len(cp.Metadata))
		for k := range cp.Metadata {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, k := range keys {
			fmt.Fprintf(tw, "  %s\t%s\n", k, cp.Metadata[k])
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(cp.Keyed) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "KEYED STATE\tKEYS\tCODEC\tCOMPRESSION\tRUNS\tRAW\tSTORED")
		for _, k := range cp.Keyed {
			var raw, stored int64
			for _, r := range k.Runs {
				raw += r.Raw
				stored += r.Stored
			}
			keys := "-"
			if k.Len >= 0 {
				keys = fmt.Sprint(k.Len)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", k.Name, keys, k.Codec, k.Compression, len(k.Runs), progress.Bytes(raw), progress.Bytes(stored))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(cp.State) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STATE\tCODEC\tCOMPRESSION\tRAW\tSTORED\tCHUNKS")
	for _, s := range cp.State {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", s.Name, s.Codec, s.Compression, progress.Bytes(s.RawSize), progress.Bytes(s.StoredSize), len(s.Chunks))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range cp.State {
		fmt.Fprintf(w, "\nChunks of state %q (id: SHA-256 of the raw bytes):\n", s.Name)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for i, c := range s.Chunks {
			where := "blob"
			if c.Data != nil {
				where = "inline in the manifest"
			}
			fmt.Fprintf(tw, "  %d\t%s\t%s→%s\t%s\n", i+1, c.ID, progress.Bytes(c.Raw), progress.Bytes(c.Stored), where)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}
