package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/store"
)

// app is what every command shares: the standard streams and whether they
// are terminals, the logger, and the global flags. Each command is built
// with it (newXCmd(a)) and reads it when it runs, after the global flags
// are parsed; a command added later is wired the same way:
//
//	root.AddCommand(newConvertCmd(a))
//
// Commands must not set PersistentPreRunE: the root's one sets up the
// logger, and cobra runs only the nearest.
//
// ckpt installs no signal handler of its own. The inspection and
// maintenance commands may be killed at any instant (every change they
// make to a store is crash-safe); commands that run jobs get the library's
// shutdown checkpoint on SIGINT/SIGTERM.
type app struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// Whether each stream is a terminal: prompts need stdin to be one,
	// and colour is used only on a terminal stdout.
	stdinTTY, stdoutTTY, stderrTTY bool

	// log writes to stderr in the format and at the level the global flags
	// ask for. It is usable before they are parsed (text, info).
	log *slog.Logger

	logFormat string
	logLevel  string
	logOpts   *slog.HandlerOptions
	quiet     bool

	// started is set once the command's own code runs. An error before
	// that came from parsing flags or arguments: a usage error.
	started bool
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *app {
	return &app{
		stdin: stdin, stdout: stdout, stderr: stderr,
		stdinTTY:  isTerminal(stdin),
		stdoutTTY: isTerminal(stdout),
		stderrTTY: isTerminal(stderr),
		log:       slog.New(slog.NewTextHandler(stderr, nil)),
		logFormat: "text",
		logLevel:  "info",
	}
}

// isTerminal reports whether v is an open file on a terminal.
func isTerminal(v any) bool {
	f, ok := v.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

// run runs ckpt with args (without the program name) and returns the exit
// code. Everything it prints goes to the given streams, so tests run it
// in-process.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := newApp(stdin, stdout, stderr)
	root := newRootCmd(a)
	if args == nil {
		args = []string{} // nil would make cobra read os.Args
	}
	root.SetArgs(args)
	var cmd *cobra.Command
	var err error
	if uerr := unknownCommandHelp(newRootCmd(newApp(stdin, stdout, stderr)), args); uerr != nil {
		// cobra prints the group's help for "ckpt unknown --help", as if
		// the word were not there; say it is not a command instead.
		cmd, err = uerr.cmd, uerr.err
	} else {
		cmd, err = root.ExecuteContextC(ctx)
	}
	if err == nil {
		return exitOK
	}
	if !a.started {
		err = asUsage(err)
	}
	fmt.Fprintln(a.stderr, errorLine(err))
	if wantsUsage(err) && cmd != nil {
		use := cmd.UseLine()
		if cmd.HasAvailableSubCommands() {
			use = cmd.CommandPath() + " [command]"
		}
		fmt.Fprintf(a.stderr, "Usage: %s\nRun '%s --help' for details.\n", use, cmd.CommandPath())
	}
	return exitCode(err)
}

// unknownHelp is an unknown command given with --help.
type unknownHelp struct {
	cmd *cobra.Command
	err error
}

// unknownCommandHelp reports an unknown command in args when they ask for
// help: cobra would print the help of the command group instead.
func unknownCommandHelp(root *cobra.Command, args []string) *unknownHelp {
	help := false
	for _, a := range args {
		if a == "--" {
			break
		}
		help = help || a == "--help" || a == "-h"
	}
	if !help {
		return nil
	}
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	cmd, rest, err := root.Find(args)
	if err != nil || !cmd.HasAvailableSubCommands() {
		return nil
	}
	cmd.InitDefaultHelpFlag()
	if err := cmd.ParseFlags(rest); err != nil {
		return nil
	}
	if pos := cmd.Flags().Args(); len(pos) > 0 {
		return &unknownHelp{cmd: cmd, err: groupRunE(cmd, pos)}
	}
	return nil
}

// setup applies the global flags. The root command runs it before every
// command.
func (a *app) setup(cmd *cobra.Command) error {
	var level slog.Level
	switch strings.ToLower(a.logLevel) {
	case "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	case "warn", "warning":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		return usageErrorf("--log-level %q: use debug, info, warn or error", a.logLevel)
	}
	if a.quiet && !cmd.Flags().Changed("log-level") {
		level = slog.LevelError
	}
	a.logOpts = &slog.HandlerOptions{Level: level, ReplaceAttr: plainLogAttr}
	switch strings.ToLower(a.logFormat) {
	case "text", "json":
	default:
		return usageErrorf("--log-format %q: use text or json", a.logFormat)
	}
	a.logTo(a.stderr)
	a.started = true
	return nil
}

// plainLogAttr takes the package prefixes out of a log line's message and
// errors, as errorLine does for errors.
func plainLogAttr(_ []string, attr slog.Attr) slog.Attr {
	switch v := attr.Value.Any().(type) {
	case string:
		if attr.Key == slog.MessageKey {
			attr.Value = slog.StringValue(errorText(errors.New(v)))
		}
	case error:
		attr.Value = slog.StringValue(errorText(v))
	}
	return attr
}

// logTo sends the logs to w, in the format and at the level the global
// flags ask for: a progress bar routes them through itself, so that they
// are printed above it rather than over it.
func (a *app) logTo(w io.Writer) {
	if strings.ToLower(a.logFormat) == "json" {
		a.log = slog.New(slog.NewJSONHandler(w, a.logOpts))
	} else {
		a.log = slog.New(slog.NewTextHandler(w, a.logOpts))
	}
}

// infof prints a message for people on stdout, unless --quiet.
func (a *app) infof(format string, args ...any) {
	if !a.quiet {
		fmt.Fprintf(a.stdout, format, args...)
	}
}

// printJSON writes v to stdout as indented JSON.
func (a *app) printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode JSON output: %w", err)
	}
	b = append(b, '\n')
	_, err = a.stdout.Write(b)
	return err
}

// color wraps s in the ANSI colour code when stdout is a terminal that
// takes colour (https://no-color.org: NO_COLOR turns it off).
func (a *app) color(code, s string) string {
	if !a.stdoutTTY || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

const (
	colorRed   = "31"
	colorGreen = "32"
)

// openStore opens the store at url. A local store that does not exist is
// an error, not created: reading commands must not leave directories behind.
func (a *app) openStore(ctx context.Context, url string) (store.Store, store.Location, error) {
	loc, err := store.ParseURL(url)
	if err != nil {
		return nil, loc, usageErrorf("--store: %w", err)
	}
	if loc.Scheme == "file" {
		fi, err := os.Stat(loc.Path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, loc, withHint(fmt.Errorf("no store at %s: the directory does not exist", loc),
				"pass --store with the store's location (the default is .ckpt in the working directory; convert and aggregate keep theirs in .ckpt beside OUTPUT)")
		case err != nil:
			return nil, loc, fmt.Errorf("open store %s: %w", loc, err)
		case !fi.IsDir():
			return nil, loc, withHint(fmt.Errorf("no store at %s: it is not a directory", loc),
				"pass --store with the store's location")
		}
	}
	st, err := ckpt.OpenStore(ctx, url, a.log)
	if err != nil {
		return nil, loc, err
	}
	a.log.Debug("opened store", "store", loc.String())
	return st, loc, nil
}

// storeFlags are the flags of every command that reads a store.
type storeFlags struct {
	url string
	job string
}

func (f *storeFlags) addStore(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.url, "store", ckpt.DefaultStore,
		"the store's location: a directory, file:///abs/dir, s3://bucket/prefix?..., postgres://...")
}

func (f *storeFlags) addJob(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVarP(&f.job, "job", "j", "",
		"the job's name (may be left out when the store holds a single job, except for prune and delete)")
}

// resolveJob returns the job the flags name and its checkpoints, oldest
// first. Without --job, infer picks the store's only job; commands that
// change the store never infer, so a mistyped store cannot cost a job.
func (a *app) resolveJob(ctx context.Context, st store.Store, loc store.Location, job string, infer bool) (string, []ckpt.Entry, error) {
	if job == "" {
		if !infer {
			return "", nil, usageErrorf("--job is required: name the job to change (`ckpt jobs --store %s` lists the store's jobs)", loc)
		}
		jobs, err := ckpt.Jobs(ctx, st)
		if err != nil {
			return "", nil, err
		}
		switch len(jobs) {
		case 0:
			return "", nil, withHint(fmt.Errorf("store %s holds no jobs", loc), "check --store")
		case 1:
			job = jobs[0]
			a.log.Debug("job inferred: the store holds one", "job", job)
		default:
			return "", nil, usageErrorf("store %s holds %d jobs (%s): pass --job NAME", loc, len(jobs), listNames(jobs, 5))
		}
	} else if err := ckpt.ValidJobName(job); err != nil {
		return "", nil, usageErrorf("--job: %w", err)
	}
	entries, err := ckpt.List(ctx, st, job)
	if err != nil {
		return "", nil, err
	}
	if len(entries) == 0 {
		err := fmt.Errorf("job %q has no checkpoints in store %s: %w", job, loc, ckpt.ErrNotFound)
		if jobs, jerr := ckpt.Jobs(ctx, st); jerr == nil && len(jobs) > 0 {
			return "", nil, withHint(err, "the store's jobs are "+listNames(jobs, 10))
		}
		return "", nil, withHint(err, "check --job and --store (`ckpt jobs` lists a store's jobs)")
	}
	return job, entries, nil
}

// listNames joins up to n names for a message.
func listNames(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:n], ", "), len(names)-n)
}

// confirm asks a yes/no question on the terminal; only "y" or "yes" is yes.
// Callers check that stdin is a terminal first.
func (a *app) confirm(question string) bool {
	fmt.Fprintf(a.stderr, "%s [y/N] ", question)
	line, err := bufio.NewReader(a.stdin).ReadString('\n')
	if err != nil {
		fmt.Fprintln(a.stderr) // end of input: the prompt's line is still open
	}
	ans := strings.ToLower(strings.TrimSpace(line))
	return ans == "y" || ans == "yes"
}
