package crashtest

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Outcome is how a trial ended.
type Outcome string

// The outcomes of a trial.
const (
	// OutcomeMatch: the final result equals the reference.
	OutcomeMatch Outcome = "match"
	// OutcomeMismatch: the program finished, and its result differs.
	OutcomeMismatch Outcome = "mismatch"
	// OutcomeRunFailed: a run that was not killed exited with a status
	// other than 0: the program could not recover.
	OutcomeRunFailed Outcome = "run-failed"
	// OutcomeTimeout: a run exceeded the per-run timeout.
	OutcomeTimeout Outcome = "timeout"
)

// Trial is one kill-and-resume sequence.
type Trial struct {
	// Index is the trial's number, from 1.
	Index int `json:"index"`
	// Runs are the program's runs, the last one finished (or failed).
	Runs []Execution `json:"runs"`
	// Outcome is how the trial ended; Difference the first difference
	// when it is OutcomeMismatch.
	Outcome    Outcome     `json:"outcome"`
	Difference *Difference `json:"difference,omitempty"`
	// Scratch is the trial's directory, when kept.
	Scratch string `json:"scratch,omitempty"`
}

// Failed reports whether the trial found a fault.
func (t *Trial) Failed() bool { return t.Outcome != OutcomeMatch }

// Interrupted reports whether a signal reached the program at least once.
func (t *Trial) Interrupted() bool {
	for _, r := range t.Runs {
		if r.Interrupted {
			return true
		}
	}
	return false
}

// Report is what a crash test found.
type Report struct {
	// Command is the program run, before "{dir}" is replaced.
	Command []string `json:"command"`
	// Seed reproduces the run (Config.Seed).
	Seed uint64 `json:"seed"`
	// Signal is the signal mode.
	Signal SignalMode `json:"signal"`
	// Reference are the two uninterrupted runs.
	Reference []Execution `json:"reference"`
	// Nondeterministic is set when the two reference runs' results
	// differ: the program is not a function of its input, and no trial
	// was run.
	Nondeterministic *Difference `json:"nondeterministic,omitempty"`
	// Trials are the kill-and-resume sequences.
	Trials []Trial `json:"trials"`
	// Phases counts, for each commit-protocol phase the program announced
	// in its reference run, the trials killed exactly there.
	Phases map[string]int `json:"phases,omitempty"`
	// PowerLoss: every kill was also a power cut (Config.PowerLoss).
	PowerLoss bool `json:"power_loss,omitempty"`
	// MinFailingKill is the smallest kill time, from the start of a
	// trial's first run, found to still fail (by bisecting the first
	// failing timed kill); zero if none was searched.
	MinFailingKill time.Duration `json:"min_failing_kill_ns,omitempty"`
	// Scratch is the directory of the scratch copies, when kept.
	Scratch string `json:"scratch,omitempty"`
}

// Failed reports whether the test found a fault: a nondeterministic
// program or a failed trial.
func (r *Report) Failed() bool {
	return r.Nondeterministic != nil || r.FirstFailure() != nil
}

// FirstFailure returns the first failed trial, or nil.
func (r *Report) FirstFailure() *Trial {
	for i := range r.Trials {
		if r.Trials[i].Failed() {
			return &r.Trials[i]
		}
	}
	return nil
}

// harness is one crash test in progress.
type harness struct {
	cfg     Config
	scratch string
	refDur  time.Duration
	ref     result
	phases  map[string]int // announcements in the reference run
	order   []string       // phases in order of first announcement
	rep     *Report
	runs    int // runs started, to name their power-loss logs
}

// Run runs the crash test cfg describes. The error is for a test that could
// not be carried out (bad configuration, a reference run that fails, no
// scratch space); what the test found, faults included, is in the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.Workdir != "" {
		if fi, err := os.Stat(cfg.Workdir); err != nil {
			return nil, fmt.Errorf("%w: workdir: %w", ErrConfig, err)
		} else if !fi.IsDir() {
			return nil, fmt.Errorf("%w: workdir %s is not a directory", ErrConfig, cfg.Workdir)
		}
	}
	scratch, err := os.MkdirTemp(cfg.ScratchDir, "ckpt-crashtest-")
	if err != nil {
		return nil, fmt.Errorf("crashtest: scratch directory: %w", err)
	}
	if scratch, err = filepath.Abs(scratch); err != nil {
		return nil, fmt.Errorf("crashtest: scratch directory: %w", err)
	}
	h := &harness{cfg: cfg, scratch: scratch, rep: &Report{Command: cfg.Command, Seed: cfg.Seed, Signal: cfg.Signal, PowerLoss: cfg.PowerLoss}}
	if cfg.Keep {
		h.rep.Scratch = scratch
	} else {
		defer os.RemoveAll(scratch)
	}
	if err := h.reference(ctx); err != nil {
		return h.rep, err
	}
	if h.rep.Nondeterministic != nil {
		return h.rep, nil
	}
	if err := h.trials(ctx); err != nil {
		return h.rep, err
	}
	if err := h.shrink(ctx); err != nil {
		return h.rep, err
	}
	h.progress("done", h.cfg.Kills)
	return h.rep, nil
}

func (h *harness) progress(stage string, trial int) {
	if h.cfg.Progress == nil {
		return
	}
	failures := 0
	for i := range h.rep.Trials {
		if h.rep.Trials[i].Failed() {
			failures++
		}
	}
	h.cfg.Progress(Progress{Stage: stage, Trial: trial, Trials: h.cfg.Kills, Failures: failures})
}

// reference runs the program twice uninterrupted and compares the results.
func (h *harness) reference(ctx context.Context) error {
	var results []result
	for i := range 2 {
		h.progress("reference", i+1)
		dir, err := h.prepare(fmt.Sprintf("reference-%d", i+1))
		if err != nil {
			return err
		}
		timeout := h.cfg.Timeout
		if timeout == 0 {
			timeout = referenceTimeout
		}
		r, err := h.execute(ctx, dir, runSpec{timeout: timeout})
		h.rep.Reference = append(h.rep.Reference, r)
		if err != nil {
			return err
		}
		if r.TimedOut {
			return fmt.Errorf("crashtest: the uninterrupted run did not finish within %s; pass a longer timeout", timeout)
		}
		if r.ExitCode != 0 {
			return fmt.Errorf("crashtest: the uninterrupted run failed with exit status %d; fix the command first. Its output ends with:\n%s", r.ExitCode, r.Output)
		}
		if h.cfg.PowerLoss && r.Logged == 0 {
			return fmt.Errorf("%w: power loss: the program changed no file through ckpt; power loss is simulated for the files of Go programs built with ckpt (file stores, file outputs), so this test would prove nothing more than plain kills", ErrConfig)
		}
		res, err := h.collect(ctx, dir)
		if err != nil {
			return err
		}
		for name, e := range res {
			if e.missing {
				return fmt.Errorf("crashtest: the uninterrupted run did not write %s; check the compare paths (relative to the scratch copy of the working directory)", name)
			}
		}
		results = append(results, res)
		h.removeUnlessKept(dir)
	}
	h.ref = results[0]
	h.refDur = (h.rep.Reference[0].Duration + h.rep.Reference[1].Duration) / 2
	h.phases = map[string]int{}
	for _, p := range h.rep.Reference[0].Phases {
		if h.phases[p] == 0 {
			h.order = append(h.order, p)
		}
		h.phases[p]++
	}
	if len(h.order) > 0 && !h.cfg.NoPhases {
		h.rep.Phases = map[string]int{}
		for _, p := range h.order {
			h.rep.Phases[p] = 0
		}
	}
	h.rep.Nondeterministic = diff(results[0], results[1])
	return nil
}

// plan draws the first run of trial i (0-based). Timed kills are spread
// over the reference duration: trial i's falls in the i-th of Kills equal
// slices of it, so that few trials cover the whole run. When the program
// announces phases, every second trial is stopped at a phase boundary
// instead, cycling through the phases.
func (h *harness) plan(i int, rng *rand.Rand) runSpec {
	spec := runSpec{signal: h.signal(rng), timeout: h.timeout()}
	if len(h.cfg.KillAt) > 0 {
		spec.killAfter = max(h.cfg.KillAt[i], time.Nanosecond)
		return spec
	}
	if h.rep.Phases != nil && i%2 == 1 {
		p := h.order[(i/2)%len(h.order)]
		spec.phase = p
		spec.phaseHit = 1 + rng.IntN(h.phases[p])
		spec.signal = syscall.SIGKILL
		return spec
	}
	n := h.cfg.Kills
	if h.rep.Phases != nil {
		n = (n + 1) / 2
		i /= 2
	}
	slice := float64(h.refDur) / float64(n)
	spec.killAfter = max(time.Duration(slice*float64(i)+rng.Float64()*slice), time.Millisecond)
	return spec
}

// signal draws the signal of one kill.
func (h *harness) signal(rng *rand.Rand) syscall.Signal {
	switch h.cfg.Signal {
	case SignalTerm:
		return syscall.SIGTERM
	case SignalInt:
		return syscall.SIGINT
	case SignalMixed:
		switch rng.IntN(4) {
		case 0:
			return syscall.SIGTERM
		case 1:
			return syscall.SIGINT
		}
	}
	return syscall.SIGKILL
}

func (h *harness) timeout() time.Duration {
	if h.cfg.Timeout > 0 {
		return h.cfg.Timeout
	}
	return max(10*h.refDur, minTimeout)
}

// trials runs every trial.
func (h *harness) trials(ctx context.Context) error {
	for i := range h.cfg.Kills {
		h.progress("trial", i+1)
		rng := rand.New(rand.NewPCG(h.cfg.Seed, uint64(i)))
		t, err := h.trial(ctx, i+1, h.plan(i, rng), rng)
		if err != nil {
			return err
		}
		if p := t.Runs[0].Phase; p != "" && t.Runs[0].Interrupted {
			h.rep.Phases[p]++
		}
		h.rep.Trials = append(h.rep.Trials, t)
	}
	return nil
}

// trial runs the program in a fresh scratch copy, stopped as first says,
// then reruns it until it finishes, stopping some reruns during their
// recovery, and compares the result with the reference.
func (h *harness) trial(ctx context.Context, index int, first runSpec, rng *rand.Rand) (Trial, error) {
	t := Trial{Index: index}
	dir, err := h.prepare(fmt.Sprintf("trial-%03d", index))
	if err != nil {
		return t, err
	}
	spec := first
	recoveryKills := 0
	for {
		r, err := h.execute(ctx, dir, spec)
		t.Runs = append(t.Runs, r)
		if err != nil {
			return t, err
		}
		if r.TimedOut {
			t.Outcome = OutcomeTimeout
			break
		}
		if r.ExitCode == 0 {
			res, err := h.collect(ctx, dir)
			if err != nil {
				return t, err
			}
			if t.Difference = diff(h.ref, res); t.Difference != nil {
				t.Outcome = OutcomeMismatch
			} else {
				t.Outcome = OutcomeMatch
			}
			break
		}
		if !r.Interrupted {
			t.Outcome = OutcomeRunFailed
			break
		}
		// Rerun; kill it during its recovery now and then (a third of
		// the time, at most RecoveryKills times), early in the run.
		spec = runSpec{signal: h.signal(rng), timeout: h.timeout()}
		if recoveryKills < h.cfg.RecoveryKills && rng.IntN(3) == 0 {
			recoveryKills++
			spec.killAfter = max(time.Duration(rng.Float64()*float64(h.refDur)/2), time.Millisecond)
		}
	}
	if t.Failed() && h.cfg.Keep {
		t.Scratch = dir
	} else {
		h.removeUnlessKept(dir)
	}
	return t, nil
}

// shrink bisects the kill time of the first failing timed trial: the
// smallest kill time, within the number of runs Config.Shrink allows, after
// which a single kill and a plain rerun still fail. Timing makes this a
// search, not a proof: a time that failed once may pass another time.
func (h *harness) shrink(ctx context.Context) error {
	if h.cfg.Shrink == 0 {
		return nil
	}
	var hi time.Duration
	for _, t := range h.rep.Trials {
		if t.Failed() && t.Runs[0].KillAfter > 0 && t.Runs[0].Interrupted {
			hi = t.Runs[0].KillAfter
			break
		}
	}
	if hi == 0 {
		return nil
	}
	lo := time.Duration(0)
	for step := 0; step < h.cfg.Shrink && hi-lo > time.Millisecond; step++ {
		h.progress("shrink", step+1)
		mid := lo + (hi-lo)/2
		rng := rand.New(rand.NewPCG(h.cfg.Seed, uint64(1<<32+step)))
		first := runSpec{killAfter: mid, signal: h.signal(rng), timeout: h.timeout()}
		saved := h.cfg.RecoveryKills
		h.cfg.RecoveryKills = 0
		t, err := h.trial(ctx, 1000+step, first, rng)
		h.cfg.RecoveryKills = saved
		if err != nil {
			return err
		}
		if t.Failed() {
			hi = mid
		} else {
			lo = mid
		}
	}
	h.rep.MinFailingKill = hi
	return nil
}

// prepare makes a scratch directory, a copy of the working directory if
// there is one.
func (h *harness) prepare(name string) (string, error) {
	dir := filepath.Join(h.scratch, name)
	if err := os.RemoveAll(dir); err != nil {
		return "", fmt.Errorf("crashtest: %w", err)
	}
	if h.cfg.Workdir == "" {
		if err := os.Mkdir(dir, 0o755); err != nil {
			return "", fmt.Errorf("crashtest: %w", err)
		}
		return dir, nil
	}
	if err := copyTree(h.cfg.Workdir, dir); err != nil {
		return "", fmt.Errorf("crashtest: copy %s to %s: %w", h.cfg.Workdir, dir, err)
	}
	return dir, nil
}

func (h *harness) removeUnlessKept(dir string) {
	if !h.cfg.Keep {
		os.RemoveAll(dir)
	}
}

// copyTree copies the directory src to dst: files, directories and
// symbolic links, with their permission bits.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm()|0o700)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.Type().IsRegular():
			return copyFile(p, target, info.Mode().Perm())
		}
		return nil // sockets, devices: not copied
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
