package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// version is ckpt's version, set at build time:
//
//	go build -ldflags "-X main.version=v1.2.3" ./cmd/ckpt
//
// Left at "dev", the module version is used when the binary was built by
// `go install module@version`.
var version = "dev"

// versionString returns the version, with the Go toolchain and platform.
func versionString() string {
	v := version
	if v == "dev" {
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
	}
	return fmt.Sprintf("%s (%s, %s/%s)", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// newRootCmd builds the command tree, writing to a's streams.
func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "ckpt",
		Short: "Resumable conversions and aggregations, and the checkpoints they keep",
		Long: `ckpt makes data pipelines resumable: a job that is killed, crashes or is
stopped restarts from its last checkpoint, and its result is exactly what an
uninterrupted run would have produced.

convert and aggregate are such jobs, over CSV, JSON Lines and Parquet files of any
size: interrupt them however you like and run the same command again to
resume. jobs and checkpoints inspect and maintain the checkpoints that jobs
keep in a store (a local directory by default; S3 or PostgreSQL with
--store): list them, show one, verify every checksum, apply retention,
delete them.

Output for people goes to stdout, errors and logs to stderr; on a terminal,
a running job draws a progress bar on stderr. Commands that print data take
--json for scripts.

` + exitCodeHelp(),
		Example: `  ckpt convert orders.csv orders.jsonl
  ckpt aggregate sales.csv by_region.csv --group-by region --agg count,sum:amount
  ckpt jobs
  ckpt convert orders.csv orders.jsonl --job orders
  ckpt checkpoints list --job orders
  ckpt checkpoints verify --store /data/ckpt --job orders`,
		Version:       versionString(),
		SilenceErrors: true, // run prints errors, as one line
		SilenceUsage:  true,
		Args:          cobra.ArbitraryArgs,
		RunE:          groupRunE,
		// SuggestionsFor uses it as is; cobra defaults it only for its own
		// messages.
		SuggestionsMinimumDistance: 2,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.setup(cmd)
		},
	}
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetVersionTemplate("ckpt {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return asUsage(err) })
	// Groups run only to report an unknown subcommand (groupRunE), so their
	// usage shows "[command]" alone, not also "[flags]" as for a runnable
	// command. Children inherit the template.
	root.SetUsageTemplate(strings.Replace(root.UsageTemplate(),
		"Usage:{{if .Runnable}}", "Usage:{{if and .Runnable (not .HasAvailableSubCommands)}}", 1))

	pf := root.PersistentFlags()
	pf.StringVar(&a.logFormat, "log-format", "text", "format of the logs on stderr: text or json")
	pf.StringVar(&a.logLevel, "log-level", "info", "least severe log level shown: debug, info, warn or error")
	pf.BoolVarP(&a.quiet, "quiet", "q", false, "print only errors and the data asked for (implies --log-level error unless given)")

	root.AddCommand(
		newConvertCmd(a),
		newAggregateCmd(a),
		newJobsCmd(a),
		newCheckpointsCmd(a),
		newCrashtestCmd(a),
		newUICmd(a),
	)
	return root
}

// groupRunE runs a command that only groups others: alone it prints its
// help; followed by anything else it is a usage error.
func groupRunE(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return usageErrorf("%s", msg)
}

// maxArgs accepts at most n positional arguments.
func maxArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > n {
			return usageErrorf("%s takes at most %s, got %d: %s", cmd.CommandPath(), plural(int64(n), "argument"), len(args), strings.Join(args, " "))
		}
		return nil
	}
}

// noArgs refuses positional arguments.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("%s takes no arguments, got %q", cmd.CommandPath(), strings.Join(args, " "))
	}
	return nil
}
