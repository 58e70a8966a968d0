package crashtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/ckptdev/ckpt/internal/crashpoint"
	"github.com/ckptdev/ckpt/internal/vfs"
)

// Execution is one run of the program within a trial.
type Execution struct {
	// KillAfter is when the run was to be stopped, from its start; zero:
	// never (it ran to its end).
	KillAfter time.Duration `json:"kill_after_ns,omitempty"`
	// Phase and PhaseHit: the run was to be stopped on the PhaseHit-th
	// announcement of Phase instead.
	Phase    string `json:"phase,omitempty"`
	PhaseHit int    `json:"phase_hit,omitempty"`
	// Signal is the signal sent, if one was.
	Signal string `json:"signal,omitempty"`
	// Interrupted: the signal reached the program before it finished.
	Interrupted bool `json:"interrupted"`
	// Escalated: the program did not stop within the grace period after
	// SIGTERM or SIGINT and was killed.
	Escalated bool `json:"escalated,omitempty"`
	// TimedOut: the run exceeded the per-run timeout and was killed.
	TimedOut bool `json:"timed_out,omitempty"`
	// ExitCode is the exit status, or -1 when a signal ended the process.
	ExitCode int `json:"exit_code"`
	// Duration is how long the run took.
	Duration time.Duration `json:"duration_ns"`
	// Phases are the commit-protocol phases the program announced.
	Phases []string `json:"phases,omitempty"`
	// Output is the end of the program's standard output and error.
	Output string `json:"output,omitempty"`
	// Logged is the number of file changes the run made through ckpt,
	// and Undone how many of them the power cut after its kill undid,
	// with Config.PowerLoss.
	Logged int `json:"power_loss_logged,omitempty"`
	Undone int `json:"power_loss_undone,omitempty"`
}

// runSpec says when to stop a run.
type runSpec struct {
	killAfter time.Duration // 0: no timed kill
	phase     string        // stop on the phaseHit-th announcement of phase
	phaseHit  int
	signal    syscall.Signal
	timeout   time.Duration
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// execute runs the command once in dir, stopping it as spec says. The
// process runs in a process group of its own, and every signal goes to the
// group, so that children die with it; once the program ends, whatever is
// left of its group is killed before the next run starts.
func (h *harness) execute(ctx context.Context, dir string, spec runSpec) (Execution, error) {
	args := substitute(h.cfg.Command, dir)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = dir
	out := &tailBuffer{max: 4 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 2 * time.Second

	annR, annW, err := os.Pipe()
	if err != nil {
		return Execution{}, fmt.Errorf("crashtest: pipe: %w", err)
	}
	ackR, ackW, err := os.Pipe()
	if err != nil {
		annR.Close()
		annW.Close()
		return Execution{}, fmt.Errorf("crashtest: pipe: %w", err)
	}
	defer annR.Close()
	defer ackW.Close()
	cmd.ExtraFiles = []*os.File{annW, ackR} // descriptors 3 and 4
	cmd.Env = append(append(os.Environ(), h.cfg.Env...), crashpoint.Env+"="+crashpoint.Value(3, 4))
	var plLog string
	if h.cfg.PowerLoss {
		h.runs++
		plDir := filepath.Join(h.scratch, "power-loss")
		if err := os.MkdirAll(plDir, 0o755); err != nil {
			return Execution{}, fmt.Errorf("crashtest: %w", err)
		}
		plLog = filepath.Join(plDir, fmt.Sprintf("run-%d.log", h.runs))
		cmd.Env = append(cmd.Env, vfs.PowerLossEnv+"="+plLog)
		defer os.RemoveAll(plLog + ".keep")
		defer os.Remove(plLog)
	}

	r := Execution{KillAfter: spec.killAfter, Phase: spec.phase, PhaseHit: spec.phaseHit}
	start := time.Now()
	err = cmd.Start()
	annW.Close()
	ackR.Close()
	if err != nil {
		return r, fmt.Errorf("crashtest: start %s: %w", args[0], err)
	}
	pgid := cmd.Process.Pid

	var (
		mu        sync.Mutex
		exited    bool
		signalled bool
		timedOut  bool
		escalated bool
		timers    []*time.Timer
	)
	// stop sends spec.signal to the group, once, unless the program ended.
	stop := func() {
		mu.Lock()
		defer mu.Unlock()
		if exited || signalled {
			return
		}
		if err := syscall.Kill(-pgid, spec.signal); err != nil {
			return
		}
		signalled = true
		r.Signal = signalName(spec.signal)
		if spec.signal != syscall.SIGKILL {
			timers = append(timers, time.AfterFunc(h.cfg.Grace, func() {
				mu.Lock()
				defer mu.Unlock()
				if !exited {
					escalated = true
					_ = syscall.Kill(-pgid, syscall.SIGKILL)
				}
			}))
		}
	}
	if spec.killAfter > 0 {
		mu.Lock()
		timers = append(timers, time.AfterFunc(spec.killAfter, stop))
		mu.Unlock()
	}
	if spec.timeout > 0 {
		mu.Lock()
		timers = append(timers, time.AfterFunc(spec.timeout, func() {
			mu.Lock()
			defer mu.Unlock()
			if !exited {
				timedOut = true
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
			}
		}))
		mu.Unlock()
	}
	// The context's cancellation kills the run too.
	ctxDone := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if !exited {
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		}
	})
	defer ctxDone()

	// Phase announcements: every one is acknowledged, except the one the
	// run is to be stopped at, when SIGKILL is sent while the program
	// waits for the acknowledgement: a crash exactly at that boundary.
	var phases []string
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		sc := bufio.NewScanner(annR)
		seen := map[string]int{}
		for sc.Scan() {
			p := sc.Text()
			phases = append(phases, p)
			seen[p]++
			if spec.phase != "" && p == spec.phase && seen[p] == spec.phaseHit {
				stop()
				if spec.signal == syscall.SIGKILL {
					continue
				}
			}
			if _, err := ackW.Write([]byte{1}); err != nil {
				return
			}
		}
	}()

	werr := cmd.Wait()
	mu.Lock()
	exited = true
	for _, t := range timers {
		t.Stop()
	}
	r.Interrupted = signalled
	r.TimedOut = timedOut
	r.Escalated = escalated
	mu.Unlock()
	// Whatever the program left running in its group goes too: a
	// straggler must not write into the next run's files.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	ackW.Close()
	select {
	case <-readerDone:
	case <-time.After(2 * time.Second):
		annR.Close() // a descendant outside the group holds the pipe
		<-readerDone
	}
	r.Duration = time.Since(start)
	r.Phases = phases
	r.Output = out.String()
	r.ExitCode = cmd.ProcessState.ExitCode()
	var ee *exec.ExitError
	if werr != nil && !errors.As(werr, &ee) && !errors.Is(werr, exec.ErrWaitDelay) {
		return r, fmt.Errorf("crashtest: wait for %s: %w", args[0], werr)
	}
	if err := ctx.Err(); err != nil {
		return r, err
	}
	if plLog != "" {
		// The whole group is dead: cut the power on what it left.
		var st vfs.PowerLossStats
		if r.Interrupted && r.ExitCode != 0 {
			st, err = vfs.ApplyPowerLoss(plLog)
		} else {
			st.Changes, err = vfs.PowerLossChanges(plLog)
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return r, fmt.Errorf("crashtest: %w", err)
		}
		r.Logged, r.Undone = st.Changes, st.Undone
	}
	return r, nil
}

func signalName(s syscall.Signal) string {
	switch s {
	case syscall.SIGKILL:
		return "KILL"
	case syscall.SIGTERM:
		return "TERM"
	case syscall.SIGINT:
		return "INT"
	}
	return s.String()
}
