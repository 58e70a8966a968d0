// Package crashtest proves a program resumable: it runs the program once
// uninterrupted (twice, to catch a nondeterministic program), then again and
// again killing it at random moments and at the boundaries of ckpt's commit
// protocol, reruns it until it finishes, and checks that every result is
// byte-identical to the uninterrupted one.
//
// It is the harness behind `ckpt crashtest`, usable from `go test`:
//
//	func TestResumable(t *testing.T) {
//		rep, err := crashtest.Run(t.Context(), crashtest.Config{
//			Command: []string{bin, "in.csv", "{dir}/out.txt"},
//			Workdir: "testdata/job",
//			Compare: []string{"out.txt"},
//			Kills:   10,
//		})
//		if err != nil {
//			t.Fatal(err)
//		}
//		if rep.Failed() {
//			t.Fatal(rep)
//		}
//	}
//
// Each run is a real process in its own process group; a kill signals the
// whole group, so children die with it. Kills that leave the operating
// system running (every signal) keep the page cache: a missing fsync is not
// caught this way, unless Config.PowerLoss turns every kill into a power
// cut for the files ckpt writes. See docs/CRASHTEST.md.
package crashtest

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// SignalMode is how a run is stopped.
type SignalMode string

// The signal modes.
const (
	// SignalKill sends SIGKILL: the process dies at once, as in a crash.
	SignalKill SignalMode = "KILL"
	// SignalTerm sends SIGTERM, then SIGKILL if the program is still
	// running after Config.Grace.
	SignalTerm SignalMode = "TERM"
	// SignalInt sends SIGINT, then SIGKILL after Config.Grace.
	SignalInt SignalMode = "INT"
	// SignalMixed picks one of the above for every kill: KILL half of the
	// time, TERM and INT a quarter each.
	SignalMixed SignalMode = "mixed"
)

// ParseSignalMode reads KILL, TERM, INT or mixed (any case, with or
// without a SIG prefix).
func ParseSignalMode(s string) (SignalMode, error) {
	u := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s)), "SIG")
	switch u {
	case "", "KILL", "9":
		return SignalKill, nil
	case "TERM", "15":
		return SignalTerm, nil
	case "INT", "2":
		return SignalInt, nil
	case "MIXED":
		return SignalMixed, nil
	}
	return "", fmt.Errorf("crashtest: signal %q: use KILL, TERM, INT or mixed", s)
}

// Config says what to run and how to judge it. The zero value of every
// field but Command and Compare/Check means the documented default.
type Config struct {
	// Command is the program and its arguments. Every "{dir}" in them is
	// replaced with the absolute path of the run's scratch directory,
	// which is also its working directory.
	Command []string
	// Env is added to the harness's own environment for every run.
	Env []string
	// Workdir, if set, is copied into a fresh scratch directory for each
	// reference run and each trial, so that runs never see each other's
	// files and the original is never changed. Empty: each run starts in
	// an empty scratch directory.
	Workdir string
	// Compare names the files or directories whose bytes must equal the
	// reference run's, relative to the scratch directory (or absolute,
	// with "{dir}"). A directory is compared file by file.
	Compare []string
	// Normalize, if set, is a shell command (sh -c) that every compared
	// file is piped through before comparing, for outputs whose order or
	// some fields are free: "sort", "jq -S .".
	Normalize string
	// Check, if set, is a shell command run in the scratch directory after
	// the program finished; its standard output and exit status must
	// equal the reference's. "{dir}" is replaced as in Command.
	Check string
	// Kills is the number of trials (default 25).
	Kills int
	// Signal is how runs are stopped (default SignalKill).
	Signal SignalMode
	// Seed makes the kill times, signals and phases reproducible. Zero
	// picks one from the clock; Report.Seed says which.
	Seed uint64
	// KillAt, if set, replaces the random trials: one trial per entry,
	// whose first run is killed that long after it started, and whose
	// reruns are not killed. It replays a failure.
	KillAt []time.Duration
	// NoPhases turns off the kills at the commit protocol's phase
	// boundaries that programs built with ckpt announce.
	NoPhases bool
	// PowerLoss makes every kill a power cut for the files ckpt writes:
	// each run logs ckpt's file changes with what they replaced (through
	// the CKPT_POWERLOSS_LOG environment variable), and after a run is
	// killed everything no fsync had made durable is undone before the
	// next run. Only Go programs built with ckpt log their changes; the
	// program's other files keep what it wrote, as after any kill.
	PowerLoss bool
	// RecoveryKills is how many reruns of a trial may be killed in turn,
	// during their recovery (default 2; negative: none).
	RecoveryKills int
	// Timeout bounds each run (default: ten times the reference run's
	// duration, at least one minute; the reference runs get ten minutes).
	Timeout time.Duration
	// Grace is how long a program may take to stop after SIGTERM or SIGINT
	// before it is killed (default 10 s).
	Grace time.Duration
	// Shrink is how many extra runs may be spent bisecting the kill time
	// of the first failure down to the smallest one that still fails
	// (default 8; negative: none).
	Shrink int
	// ScratchDir is where scratch directories are made (default: the
	// system's temporary directory).
	ScratchDir string
	// Keep keeps the scratch directories; Report.Scratch names them.
	Keep bool
	// Progress, if set, is called as the run goes on.
	Progress func(Progress)
}

// Progress is where a crash test is.
type Progress struct {
	// Stage is "reference", "trial" or "shrink".
	Stage string
	// Trial is the trial running (1-based) of Trials.
	Trial, Trials int
	// Failures is how many trials failed so far.
	Failures int
}

// The defaults of Config.
const (
	DefaultKills         = 25
	DefaultRecoveryKills = 2
	DefaultGrace         = 10 * time.Second
	DefaultShrink        = 8
	referenceTimeout     = 10 * time.Minute
	minTimeout           = time.Minute
)

// ErrConfig is wrapped by every error about a Config that cannot run.
var ErrConfig = errors.New("crashtest: invalid configuration")

// withDefaults returns c with its zero values replaced, or an error
// wrapping ErrConfig.
func (c Config) withDefaults() (Config, error) {
	if len(c.Command) == 0 || c.Command[0] == "" {
		return c, fmt.Errorf("%w: no command to run", ErrConfig)
	}
	if len(c.Compare) == 0 && c.Check == "" {
		return c, fmt.Errorf("%w: nothing to compare: name the program's outputs (Compare) or a check command (Check)", ErrConfig)
	}
	for _, p := range c.Compare {
		if p == "" {
			return c, fmt.Errorf("%w: empty compare path", ErrConfig)
		}
	}
	if c.Kills < 0 {
		return c, fmt.Errorf("%w: kills %d is negative", ErrConfig, c.Kills)
	}
	if c.Kills == 0 {
		c.Kills = DefaultKills
	}
	if len(c.KillAt) > 0 {
		c.Kills = len(c.KillAt)
		c.RecoveryKills = -1
	}
	for _, d := range c.KillAt {
		if d < 0 {
			return c, fmt.Errorf("%w: kill time %s is negative", ErrConfig, d)
		}
	}
	sm, err := ParseSignalMode(string(c.Signal))
	if err != nil {
		return c, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	c.Signal = sm
	if c.RecoveryKills == 0 {
		c.RecoveryKills = DefaultRecoveryKills
	}
	if c.RecoveryKills < 0 {
		c.RecoveryKills = 0
	}
	if c.Grace <= 0 {
		c.Grace = DefaultGrace
	}
	if c.Shrink == 0 {
		c.Shrink = DefaultShrink
	}
	if c.Shrink < 0 {
		c.Shrink = 0
	}
	if c.Seed == 0 {
		c.Seed = uint64(time.Now().UnixNano())
	}
	return c, nil
}

// substitute replaces "{dir}" with dir in every argument.
func substitute(args []string, dir string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = strings.ReplaceAll(a, "{dir}", dir)
	}
	return out
}
