package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ckptdev/ckpt/crashtest"
)

func newCrashtestCmd(a *app) *cobra.Command {
	var (
		cfg     crashtest.Config
		sigMode string
		seed    uint64
		killAt  []time.Duration
		asJSON  bool
		junit   string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "crashtest [flags] -- COMMAND [ARGS...]",
		Short: "Kill a program at random and dangerous moments, and check that it resumes exactly",
		Long: `Prove that a program is resumable: that after being killed at any moment,
and run again until it finishes, its result is byte-identical to an
uninterrupted run's. COMMAND is any program, in any language.

1. The program runs twice uninterrupted: the reference. If the two results
   differ, the program is nondeterministic: crashtest says so and what
   differed, and runs no trials (exit code 1).
2. --kills trials: each kills the program at a random moment (trial i in the
   i-th of --kills equal slices of the reference duration) with --signal,
   reruns it until it exits 0, killing some reruns again during their
   recovery, then compares the result with the reference.
3. Programs built with ckpt announce the phases of every checkpoint (state
   captured, blobs written, sink synced, manifest committed, retention);
   every second trial then kills the program exactly at one of those
   boundaries, cycling through them, and the report says which phases were
   covered.

Every run happens in its own scratch copy of --workdir (an empty directory
without it), which is also its working directory; "{dir}" in COMMAND is
replaced with that directory's absolute path. The user's files are never
touched.

What is compared: every --compare PATH (a file or a directory, relative to
the scratch directory), byte for byte, optionally after piping each file
through --normalize (a shell command such as 'sort', for outputs whose order
is free); and/or the standard output and exit status of --check (a shell
command run in the scratch directory when the program finished). A failure
shows the first difference: file, byte offset, line, and the lines around it
in both versions, then the command that replays the whole run (--seed) and
the smallest kill time found that still fails (--kill-at).

A run that exits non-zero without having been killed is a failure: the
program could not recover. A run longer than --timeout is killed and is a
failure too. A program still running --grace after TERM or INT is killed.
Signals go to the program's whole process group, so its children die with
it.

Every signal leaves the operating system running, so data written but never
fsynced survives a kill. --power-loss makes every kill a power cut for the
files ckpt writes in Go programs built with ckpt (file stores, file
outputs): each run logs those changes with what they replaced, and after a
kill everything no fsync had made durable is undone before the next run. A
missing fsync is then found. The program's other files, and programs not
built with ckpt, are not covered (see docs/CRASHTEST.md). Kill times are reproducible with --seed, the
program's own timing is not: a replay may need a few runs.

Exit codes: 0 every trial matched, 1 a trial failed or the program is
nondeterministic (or the test could not run), 2 usage error.`,
		Example: `  ckpt crashtest --workdir job --compare out.txt -- python3 job.py in.csv out.txt
  ckpt crashtest --workdir data --compare out.jsonl -- ckpt convert {dir}/in.csv {dir}/out.jsonl
  ckpt crashtest --kills 100 --signal mixed --compare results/ -- ./etl
  ckpt crashtest --compare out.csv --normalize 'sort' -- ./unordered-job
  ckpt crashtest --check 'sqlite3 db.sqlite "select count(*), sum(x) from t"' -- ./load
  ckpt crashtest --json --junit crashtest.xml --compare out.txt -- ./job
  ckpt crashtest --power-loss --workdir data --compare out.jsonl -- ckpt convert in.csv out.jsonl`,
		Args: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 0 || len(args) == 0 {
				return usageErrorf("give the command to test after --: ckpt crashtest [flags] -- COMMAND [ARGS...]")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Command = args
			var err error
			if cfg.Signal, err = crashtest.ParseSignalMode(sigMode); err != nil {
				return usageErrorf("--signal %q: use KILL, TERM, INT or mixed", sigMode)
			}
			if cfg.Kills <= 0 {
				return usageErrorf("--kills must be at least 1")
			}
			if len(cfg.Compare) == 0 && cfg.Check == "" {
				return usageErrorf("nothing to compare: name the program's outputs with --compare PATH, or give --check CMD")
			}
			for _, d := range killAt {
				if d <= 0 {
					return usageErrorf("--kill-at %s: kill times must be positive", d)
				}
			}
			if timeout < 0 || cfg.Grace <= 0 {
				return usageErrorf("--timeout must not be negative, --grace must be positive")
			}
			cfg.Seed, cfg.KillAt, cfg.Timeout = seed, killAt, timeout
			if a.stderrTTY && !a.quiet {
				cfg.Progress = func(p crashtest.Progress) { drawCrashProgress(a, p) }
			}
			// The runs are in process groups of their own, so a Ctrl-C on
			// the terminal reaches only ckpt: it stops the test, which
			// kills the run in progress, instead of leaving it behind.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			rep, runErr := crashtest.Run(ctx, cfg)
			if errors.Is(runErr, crashtest.ErrConfig) {
				return usageErrorf("%v", runErr)
			}
			if rep == nil {
				return withHint(runErr, "check the command, its --workdir and --compare paths")
			}
			if junit != "" {
				if err := writeJUnit(junit, rep); err != nil {
					return err
				}
			}
			if runErr != nil && ctx.Err() != nil {
				return fmt.Errorf("crashtest: stopped by a signal; the run in progress was killed and the scratch directories removed")
			}
			if runErr != nil {
				return withHint(fmt.Errorf("crashtest: %w", runErr), "run the command by hand in a copy of its working directory to see why")
			}
			if asJSON {
				if err := a.printJSON(rep); err != nil {
					return err
				}
			} else {
				fmt.Fprint(a.stdout, rep.String())
			}
			if !rep.Failed() {
				if !asJSON {
					a.infof("ok: every trial's result equals the uninterrupted run's\n")
				}
				return nil
			}
			if rep.Nondeterministic != nil {
				return &codedError{code: exitError, err: fmt.Errorf("crashtest: %s is nondeterministic: two uninterrupted runs differ in %s", args[0], rep.Nondeterministic.Path),
					hint: "make its output depend on its input only, or compare with --normalize or --check"}
			}
			t := rep.FirstFailure()
			replay := replayCommand(cmd, args, "--seed", strconv.FormatUint(rep.Seed, 10))
			if !asJSON {
				fmt.Fprintf(a.stdout, "replay: %s\n", replay)
				if rep.MinFailingKill > 0 {
					fmt.Fprintf(a.stdout, "replay the smallest failing kill: %s\n", replayCommand(cmd, args, "--kill-at", rep.MinFailingKill.Round(time.Microsecond).String()))
				}
			}
			return &codedError{code: exitError, err: fmt.Errorf("crashtest: trial %d of %d failed (%s)", t.Index, len(rep.Trials), t.Outcome),
				hint: "the report above says what went wrong; replay with: " + replay}
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&cfg.Kills, "kills", crashtest.DefaultKills, "run `N` trials, each killing the program at least once")
	fl.StringVar(&sigMode, "signal", "KILL", "stop the program with `SIGNAL`: KILL, TERM, INT, or mixed (KILL half of the time)")
	fl.StringArrayVar(&cfg.Compare, "compare", nil, "compare `PATH`, a file or directory the program writes, byte for byte with the reference (repeatable)")
	fl.StringVar(&cfg.Normalize, "normalize", "", "pipe every compared file through the shell command `CMD` first, e.g. 'sort'")
	fl.StringVar(&cfg.Check, "check", "", "run the shell command `CMD` in the scratch directory after the program; its output and exit status must equal the reference's")
	fl.StringVar(&cfg.Workdir, "workdir", "", "copy `DIR` afresh for every run, and run in the copy (default: an empty directory)")
	fl.Uint64Var(&seed, "seed", 0, "seed the kill times, signals and phases with `N`, to reproduce a run (default: from the clock; printed)")
	fl.DurationSliceVar(&killAt, "kill-at", nil, "replay: one trial per `DURATION` (comma-separated), killing its first run that long after its start, reruns not killed")
	fl.DurationVar(&timeout, "timeout", 0, "limit of each run (default: ten times the reference run, at least 1m)")
	fl.DurationVar(&cfg.Grace, "grace", crashtest.DefaultGrace, "how long a program may take to stop after TERM or INT before it is killed")
	fl.BoolVar(&cfg.NoPhases, "no-phases", false, "do not kill at the checkpoint phases that programs built with ckpt announce")
	fl.BoolVar(&cfg.PowerLoss, "power-loss", false, "make every kill a power cut for the files ckpt writes: undo all it had not fsynced (Go programs built with ckpt)")
	fl.BoolVar(&cfg.Keep, "keep", false, "keep the scratch directories (failing trials name theirs)")
	fl.BoolVar(&asJSON, "json", false, "print the report as JSON")
	fl.StringVar(&junit, "junit", "", "also write the report as JUnit XML to `FILE`, for CI")
	return cmd
}

// drawCrashProgress redraws one line on the terminal.
func drawCrashProgress(a *app, p crashtest.Progress) {
	switch p.Stage {
	case "reference":
		fmt.Fprintf(a.stderr, "\rcrashtest: reference run %d/2\x1b[K", p.Trial)
	case "trial":
		fmt.Fprintf(a.stderr, "\rcrashtest: trial %d/%d, %d failed\x1b[K", p.Trial, p.Trials, p.Failures)
	case "shrink":
		fmt.Fprintf(a.stderr, "\rcrashtest: looking for the smallest failing kill time (%d)\x1b[K", p.Trial)
	case "done":
		fmt.Fprint(a.stderr, "\r\x1b[K")
	}
}

func writeJUnit(path string, rep *crashtest.Report) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("crashtest: --junit: %w", err)
	}
	if err := rep.WriteJUnit(f); err != nil {
		f.Close()
		return fmt.Errorf("crashtest: --junit %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("crashtest: --junit %s: %w", path, err)
	}
	return nil
}

// replayCommand renders the command line that reruns this crash test with
// flag set to value, in place of --seed and --kill-at.
func replayCommand(cmd *cobra.Command, args []string, flag, value string) string {
	parts := []string{"ckpt", "crashtest"}
	cmd.Flags().Visit(func(f *pflag.Flag) {
		switch f.Name {
		case "seed", "kill-at", "json", "junit":
			return
		case "kills":
			if flag == "--kill-at" {
				return
			}
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			for _, v := range sv.GetSlice() {
				parts = append(parts, "--"+f.Name, shellQuote(v))
			}
			return
		}
		if f.Value.Type() == "bool" {
			parts = append(parts, "--"+f.Name)
			return
		}
		parts = append(parts, "--"+f.Name, shellQuote(f.Value.String()))
	})
	parts = append(parts, flag, value, "--")
	for _, a := range args {
		parts = append(parts, shellQuote(a))
	}
	return strings.Join(parts, " ")
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./{}-]+$`)

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
