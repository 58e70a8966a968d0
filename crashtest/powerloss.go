package crashtest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/ckptdev/ckpt/internal/vfs"
)

// FS is the file system a job run by PowerLoss does its file I/O through:
// os-like operations whose durability rules are those of a real disk (see
// PowerLoss).
type FS = vfs.FS

// ErrCrashed is what every file operation returns in a PowerLoss run once
// the power is cut.
var ErrCrashed = vfs.ErrCrashed

// PowerLossConfig describes an in-process power-loss test of a Go job.
type PowerLossConfig struct {
	// Setup writes the job's inputs into fsys; all of it is durable before
	// the job starts.
	Setup func(fsys FS) error
	// Job runs the job to its end with every file operation on fsys, and
	// must return only once everything it started has stopped. It is run
	// again, on the file system a crash left, as a restart would.
	Job func(ctx context.Context, fsys FS) error
	// Compare names the files or directories compared with the
	// uninterrupted run's (paths in fsys).
	Compare []string
	// MaxPoints bounds the crash points tried (default 500); a job with
	// more operations is crashed before evenly spaced ones.
	MaxPoints int
}

// PowerLossReport is what a power-loss test found.
type PowerLossReport struct {
	// Operations are the uninterrupted run's file-system operations that
	// change something, in order.
	Operations []string `json:"operations"`
	// Tried is the number of crash points tried.
	Tried int `json:"tried"`
	// Failures are the crash points after which the job did not end with
	// the uninterrupted result.
	Failures []PowerLossFailure `json:"failures,omitempty"`
}

// PowerLossFailure is one crash point that broke the job.
type PowerLossFailure struct {
	// At is the operation (1-based) before which the machine crashed, and
	// Operation what it was.
	At        int    `json:"at"`
	Operation string `json:"operation"`
	// Err is the restarted job's error, when it failed.
	Err string `json:"error,omitempty"`
	// Difference is the first difference from the uninterrupted result,
	// when the restarted job finished.
	Difference *Difference `json:"difference,omitempty"`
}

// Failed reports whether a crash point broke the job.
func (r *PowerLossReport) Failed() bool { return len(r.Failures) > 0 }

func (r *PowerLossReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d operations, %d crash points tried, %d failed\n", len(r.Operations), r.Tried, len(r.Failures))
	if len(r.Failures) > 0 {
		f := r.Failures[0]
		fmt.Fprintf(&b, "FAILED: power lost before operation %d (%s)", f.At, f.Operation)
		if f.At > 1 {
			fmt.Fprintf(&b, ", after %s", r.Operations[f.At-2])
		}
		if f.Err != "" {
			fmt.Fprintf(&b, "; the restarted job failed: %s\n", f.Err)
		} else {
			fmt.Fprintf(&b, "; the result differs from the uninterrupted run's:\n%s\n", f.Difference)
		}
	}
	return b.String()
}

// PowerLoss checks a Go job against machine crashes, in process: it runs
// the job once uninterrupted on an in-memory file system and records its
// operations; then, for each operation (or MaxPoints of them), it runs the
// job from the start on a fresh copy and cuts the power just before that
// operation: the file system keeps only what was durable (a file's data as
// of its last Sync, a directory's names as of its last sync). It restarts
// the job on what is left and compares the result with the uninterrupted
// one.
//
// This finds what kill tests cannot: a missing fsync, of a file or of the
// directory holding a new name. The job must do all its file I/O through
// the FS it is given; I/O elsewhere is not crashed.
func PowerLoss(ctx context.Context, cfg PowerLossConfig) (*PowerLossReport, error) {
	if cfg.Job == nil || len(cfg.Compare) == 0 {
		return nil, fmt.Errorf("%w: a power-loss test needs a Job and Compare paths", ErrConfig)
	}
	if cfg.MaxPoints <= 0 {
		cfg.MaxPoints = 500
	}
	base := vfs.NewMemFS()
	if cfg.Setup != nil {
		if err := cfg.Setup(base); err != nil {
			return nil, fmt.Errorf("crashtest: setup: %w", err)
		}
	}
	base.SyncAll()

	ref := base.CrashClone()
	counter := vfs.NewCrashing(ref, 0)
	if err := cfg.Job(ctx, counter); err != nil {
		return nil, fmt.Errorf("crashtest: the uninterrupted run failed: %w", err)
	}
	want, err := memResult(ref, cfg.Compare)
	if err != nil {
		return nil, err
	}
	rep := &PowerLossReport{Operations: counter.Ops()}
	n := len(rep.Operations)
	step := max(1, (n+cfg.MaxPoints-1)/cfg.MaxPoints)
	for at := 1; at <= n; at += step {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		rep.Tried++
		live := base.CrashClone()
		crashing := vfs.NewCrashing(live, at)
		err := cfg.Job(ctx, crashing)
		if !crashing.Crashed() {
			// Fewer operations than the reference: the job is not
			// deterministic in its I/O; the result is still judged.
			if err != nil {
				rep.Failures = append(rep.Failures, PowerLossFailure{At: at, Operation: rep.Operations[at-1], Err: "the run failed without a crash: " + err.Error()})
				continue
			}
		}
		after := live.CrashClone()
		f := PowerLossFailure{At: at, Operation: rep.Operations[at-1]}
		if err := cfg.Job(ctx, after); err != nil {
			f.Err = err.Error()
			rep.Failures = append(rep.Failures, f)
			continue
		}
		got, err := memResult(after, cfg.Compare)
		if err != nil {
			return rep, err
		}
		if f.Difference = diff(want, got); f.Difference != nil {
			rep.Failures = append(rep.Failures, f)
		}
	}
	return rep, nil
}

// memResult reads the compared files of m.
func memResult(m *vfs.MemFS, paths []string) (result, error) {
	res := result{}
	for _, p := range paths {
		fi, err := m.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			res[p] = entry{missing: true}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("crashtest: %w", err)
		}
		if !fi.IsDir() {
			b, err := m.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("crashtest: %w", err)
			}
			res[p] = entry{data: b}
			continue
		}
		err = vfs.WalkDir(m, p, func(q string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := m.ReadFile(q)
			if err != nil {
				return err
			}
			res[path.Clean(q)] = entry{data: b}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("crashtest: %w", err)
		}
	}
	return res, nil
}
