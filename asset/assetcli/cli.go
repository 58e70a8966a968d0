// Package assetcli gives a program that defines assets the commands to
// run them, built with cobra: assets are Go code, so the commands live in
// the user's own binary.
//
//	func main() {
//		g := asset.New()
//		// ... define assets on g ...
//		assetcli.Main(g, assetcli.Options{})
//	}
//
// gives
//
//	prog assets list
//	prog assets status [SELECTION] [--partition P]... [--partitions]
//	prog assets materialize [SELECTION] [--partition P]... [--stale] [--dry-run]
//	prog assets history KEY [--partition P]
//	prog assets lineage [SELECTION] [--dot]
//	prog runs list | show RUN | resume RUN | cancel RUN | prune --older-than D
//	prog workers [--parallel N]
//
// A program with its own cobra root adds Commands(g, o) to it instead.
// Every command takes --store (the values' store, default .ckpt) and
// --events (the event log: a SQLite file or a postgres:// URL; default
// assets.db in a local store), and --json where it prints data.
package assetcli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/ckptdev/ckpt/asset"
	"github.com/ckptdev/ckpt/asset/eventlog"
	"github.com/ckptdev/ckpt/asset/riverexec"
	"github.com/ckptdev/ckpt/internal/errtext"
	"github.com/ckptdev/ckpt/internal/shutdown"
)

// The exit codes, as the ckpt command uses them.
const (
	ExitOK    = 0
	ExitError = 1 // an error, or a run that failed (resume it)
	ExitUsage = 2 // bad flags or arguments
	// ExitActive: the run to resume is still running.
	ExitActive = 4
	// ExitInterrupted: a signal canceled the run; resume it to go on.
	ExitInterrupted = 75
)

// Options configure the commands.
type Options struct {
	// Config is the base configuration of the instance the commands open;
	// the --store and --events flags override its Store and EventLog, and
	// the environment variables CKPT_STORE and CKPT_EVENTS give their
	// defaults.
	Config asset.Config
	// Name is the program's name in help and hints; empty means the base
	// name of os.Args[0].
	Name string
	// River configures the River executor (--executor river) and the
	// workers command; its zero value means the defaults of package
	// riverexec.
	River riverexec.Config
}

// Main runs the program's command line (os.Args) and exits with its code.
func Main(g *asset.Graph, o Options) {
	os.Exit(Run(context.Background(), g, o, os.Args[1:], os.Stdout, os.Stderr))
}

// Run runs the commands with args (without the program name), printing to
// stdout and stderr, and returns the exit code.
func Run(ctx context.Context, g *asset.Graph, o Options, args []string, stdout, stderr io.Writer) int {
	name := o.Name
	if name == "" {
		name = filepath.Base(os.Args[0])
	}
	o.Name = name
	root := &cobra.Command{
		Use:           name,
		Short:         "Materialize and inspect the assets of " + name,
		SilenceErrors: true,
		SilenceUsage:  true,
		// With Args set, an unknown command is an argument error, which
		// usageArgs classifies, instead of an error of cobra's own.
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetOut(stdout)
	root.SetErr(stderr)
	if args == nil {
		args = []string{}
	}
	root.SetArgs(args)
	c := newCLI(g, o, stdout, stderr)
	usageArgs(root) // before its subcommands, which commands() has done
	root.AddCommand(c.commands()...)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usage(err) })
	if err := unknownCommand(root, args); err != nil {
		fmt.Fprintf(stderr, "%s: %s\n", name, message(err))
		return ExitUsage
	}
	_, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(stderr, "%s: %s\n", name, message(err))
	return exitCode(err)
}

// Commands returns the "assets" and "runs" commands, to add to a
// program's own root command. They print to the root's output streams.
func Commands(g *asset.Graph, o Options) []*cobra.Command {
	if o.Name == "" {
		o.Name = filepath.Base(os.Args[0])
	}
	return newCLI(g, o, nil, nil).commands()
}

// cli holds what the commands share.
type cli struct {
	g      *asset.Graph
	o      Options
	stdout io.Writer
	stderr io.Writer

	store    string
	events   string
	logLevel string
	quiet    bool
	json     bool
	executor string
	exec     asset.Executor
	logger   *slog.Logger
}

func newCLI(g *asset.Graph, o Options, stdout, stderr io.Writer) *cli {
	return &cli{g: g, o: o, stdout: stdout, stderr: stderr}
}

func (c *cli) commands() []*cobra.Command {
	assets := &cobra.Command{
		Use:   "assets",
		Short: "List, materialize and inspect assets",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	assets.AddCommand(c.listCmd(), c.statusCmd(), c.materializeCmd(), c.historyCmd(), c.lineageCmd())
	runs := &cobra.Command{
		Use:   "runs",
		Short: "List, inspect, resume and prune runs",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	runs.AddCommand(c.runsListCmd(), c.runsShowCmd(), c.resumeCmd(), c.cancelCmd(), c.pruneCmd())
	workers := c.workersCmd()
	for _, cmd := range []*cobra.Command{assets, runs, workers} {
		pf := cmd.PersistentFlags()
		storeHelp, eventsHelp := "the store of asset values: a directory, file:///abs/dir, s3://..., postgres://...", "the event log: a SQLite file or a postgres:// URL"
		if envOr("CKPT_STORE", c.o.Config.Store) == "" {
			storeHelp += " (default .ckpt)"
		}
		if envOr("CKPT_EVENTS", c.o.Config.EventLog) == "" {
			eventsHelp += " (default assets.db in a local store)"
		}
		pf.StringVar(&c.store, "store", envOr("CKPT_STORE", c.o.Config.Store), storeHelp)
		pf.StringVar(&c.events, "events", envOr("CKPT_EVENTS", c.o.Config.EventLog), eventsHelp)
		pf.StringVar(&c.logLevel, "log-level", "error", "least severe log level shown on stderr: debug, info, warn or error")
		pf.BoolVarP(&c.quiet, "quiet", "q", false, "print only errors and the data asked for")
		usageArgs(cmd)
	}
	return []*cobra.Command{assets, runs, workers, c.uiCmd()}
}

// unknownCommand reports a word that names no subcommand of the command
// it follows, also with --help or after "help" (where cobra would print
// the parent's help as if nothing were wrong).
func unknownCommand(root *cobra.Command, args []string) error {
	if len(args) > 0 && args[0] == "help" {
		args = args[1:]
	}
	cmd, rest, err := root.Find(args)
	if err != nil || !cmd.HasSubCommands() {
		return nil
	}
	cmd.InitDefaultHelpFlag()
	if err := cmd.ParseFlags(rest); err != nil {
		return nil // cobra reports it
	}
	if pos := cmd.Flags().Args(); len(pos) > 0 {
		return usage(fmt.Errorf("unknown command %q for %q (%s --help lists them)", pos[0], cmd.CommandPath(), cmd.CommandPath()))
	}
	return nil
}

// usageArgs makes the argument errors of cmd and its subcommands (a wrong
// number of arguments, an unknown command) usage errors, exit code 2, as
// flag errors are.
func usageArgs(cmd *cobra.Command) {
	if check := cmd.Args; check != nil {
		cmd.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				return usage(err)
			}
			return nil
		}
	}
	for _, sub := range cmd.Commands() {
		usageArgs(sub)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func (c *cli) out(cmd *cobra.Command) io.Writer {
	if c.stdout != nil {
		return c.stdout
	}
	return cmd.OutOrStdout()
}

func (c *cli) errw(cmd *cobra.Command) io.Writer {
	if c.stderr != nil {
		return c.stderr
	}
	return cmd.ErrOrStderr()
}

// open opens the instance the flags name.
func (c *cli) open(cmd *cobra.Command) (*asset.Instance, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, usage(fmt.Errorf("--log-level %q: use debug, info, warn or error", c.logLevel))
	}
	cfg := c.o.Config
	cfg.Store, cfg.EventLog = c.store, c.events
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(c.errw(cmd), &slog.HandlerOptions{Level: level}))
	}
	c.logger = cfg.Logger
	if c.exec != nil {
		cfg.Executor = c.exec
	}
	return asset.Open(cmd.Context(), c.g, cfg)
}

func (c *cli) infof(cmd *cobra.Command, format string, args ...any) {
	if !c.quiet {
		fmt.Fprintf(c.out(cmd), format, args...)
	}
}

func (c *cli) printJSON(cmd *cobra.Command, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = c.out(cmd).Write(append(b, '\n'))
	return err
}

// signalContext is cmd's context, canceled by the first SIGINT or
// SIGTERM; a second one ends the process at once (the run is resumable
// either way), as in every ckpt program (internal/shutdown).
func signalContext(cmd *cobra.Command) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(cmd.Context())
	stop := shutdown.Watch(func(sig os.Signal) {
		cancel(fmt.Errorf("%w by %v", context.Canceled, sig))
	})
	return ctx, func() {
		stop()
		cancel(nil)
	}
}

// usageError is a bad flag or argument.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usage(err error) error { return usageError{err} }

// hinted is an error with what to do about it.
type hinted struct {
	err  error
	hint string
}

func (e hinted) Error() string { return e.err.Error() }
func (e hinted) Unwrap() error { return e.err }

func exitCode(err error) int {
	var ue usageError
	switch {
	case errors.As(err, &ue), errors.Is(err, asset.ErrSelection), errors.Is(err, asset.ErrUnknownAsset) && !errors.Is(err, asset.ErrInvalidGraph):
		return ExitUsage
	case errors.Is(err, asset.ErrRunActive):
		return ExitActive
	case errors.Is(err, asset.ErrRunCanceled):
		return ExitInterrupted
	}
	return ExitError
}

// message renders err on one line, with its hint, without the package
// prefixes of library errors: the program's name in front is enough.
func message(err error) string {
	msg := errtext.Plain(err.Error())
	var h hinted
	if errors.As(err, &h) && h.hint != "" {
		msg += "; " + h.hint
	}
	return msg
}

// plural returns one or many, as n asks.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// count renders "1 run", "2 runs".
func count(n int, one, many string) string {
	return fmt.Sprintf("%d %s", n, plural(n, one, many))
}

// checkEventLog fails when the event log looks like the wrong one: empty
// beside stored values.
func checkEventLog(cmd *cobra.Command, in *asset.Instance) error {
	if err := in.CheckEventLog(cmd.Context()); err != nil {
		return withEventsHint(err)
	}
	return nil
}

// withEventsHint adds what to do to an error that says the event log
// looks like the wrong one.
func withEventsHint(err error) error {
	if errors.Is(err, asset.ErrEventLogEmpty) {
		return hinted{err, "give the event log they were recorded in with --events (or CKPT_EVENTS)"}
	}
	return err
}

// resolveRun finds a run by id or unique prefix, or the newest one for
// "last".
func resolveRun(cmd *cobra.Command, in *asset.Instance, id string) (string, error) {
	if id != "last" {
		return id, nil
	}
	if err := checkEventLog(cmd, in); err != nil {
		return "", err
	}
	runs, err := in.EventLog().Runs(cmd.Context(), eventlog.RunFilter{Limit: 1})
	if err != nil {
		return "", err
	}
	if len(runs) == 0 {
		return "", hinted{fmt.Errorf("no runs yet"), "materialize something first"}
	}
	return runs[0].ID, nil
}
