package asset

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/ckptdev/ckpt/asset/eventlog"
)

// Executor executes the steps of runs outside the process that starts
// them: on a pool of worker processes, on this machine or many. A run is
// planned and recorded by the instance as always; the executor takes its
// steps from there. The default (no Executor) computes every step in the
// calling process.
//
// An executor commits each step's outcome to the event log itself (with
// its own bookkeeping, atomically) and records the run's end when its
// last step ends; the instance only submits, follows and cancels.
type Executor interface {
	// Name names the executor in the records of the runs it executes
	// ("river").
	Name() string
	// Submit hands the steps of run s.RunID, already recorded, to the
	// executor. When it returns nil the run is durable there and goes on
	// without the calling process; when it fails, nothing was submitted.
	Submit(ctx context.Context, in *Instance, s *Submission) error
	// Submitted reports whether run id was submitted.
	Submitted(ctx context.Context, in *Instance, id string) (bool, error)
	// Follow returns when run id has ended (its record says how), or with
	// ctx's error. It calls progress, if set, for each step as it ends.
	Follow(ctx context.Context, in *Instance, id string, progress func(Step)) error
	// Cancel cancels run id: no step of it starts any more, those
	// computing are interrupted, and the run ends canceled once they
	// have. It returns before the run has ended.
	Cancel(ctx context.Context, in *Instance, id string) error
}

// Submission is a run handed to an Executor: its steps in topological
// order.
type Submission struct {
	RunID string
	Steps []SubmittedStep
}

// SubmittedStep is one asset partition of a submitted run.
type SubmittedStep struct {
	Key       string
	Partition string
	// Up are the indices of the steps of the run it reads.
	Up []int
	// Reused: an earlier run of the chain materialized it; it is done.
	Reused bool
}

// Executor returns the instance's executor, nil when steps are computed
// in process.
func (in *Instance) Executor() Executor { return in.cfg.Executor }

// submit records run r and hands its plan to the executor; then, unless
// detach, follows it to its end.
func (in *Instance) submit(ctx context.Context, r eventlog.Run, spec *runSpec, p *plan, reuse map[stepKey]*eventlog.Event, detach bool, progress func(Step)) (*Run, error) {
	ex := in.cfg.Executor
	spec.Executor = ex.Name()
	host, _ := os.Hostname()
	// No pid: the run lives on in the workers whatever happens to this
	// process; the workers computing its steps and whoever follows it
	// record its heartbeats.
	r.Host, r.PID = host, 0
	r.Status = eventlog.RunStarted
	r.Created = time.Now()
	r.HeartbeatInterval, r.DeadAfter = in.cfg.HeartbeatInterval, in.cfg.DeadAfter
	if err := in.createRun(ctx, &r, spec); err != nil {
		return nil, err
	}
	stopBeat := in.heartbeat(r.ID)
	defer stopBeat()
	sub := &Submission{RunID: r.ID, Steps: make([]SubmittedStep, len(p.steps))}
	for i, s := range p.steps {
		ss := SubmittedStep{Key: s.n.key, Partition: s.part, Up: s.up}
		if m := reuse[stepKey{s.n.idx, s.part}]; m != nil {
			ss.Reused = true
			in.log.Append(eventlog.Event{RunID: r.ID, Kind: eventlog.KindStepReused, Key: s.n.key, Partition: s.part,
				Message: "materialized by run " + m.RunID})
		}
		sub.Steps[i] = ss
	}
	if err := in.log.Flush(ctx); err != nil {
		return nil, in.abandon(r.ID, fmt.Errorf("asset: run %s: record the reused steps: %w", r.ID, err))
	}
	if err := ex.Submit(ctx, in, sub); err != nil {
		return nil, in.abandon(r.ID, fmt.Errorf("asset: run %s: submit to %s: %w", r.ID, ex.Name(), err))
	}
	in.logger.Info("run submitted", "run", r.ID, "executor", ex.Name(), "steps", len(p.steps), "parent", r.Parent)
	if detach {
		return &Run{ID: r.ID, Parent: r.Parent, Root: rootOf(r), Status: eventlog.RunStarted, Started: r.Created.UTC()}, nil
	}
	return in.follow(ctx, r.ID, progress)
}

func rootOf(r eventlog.Run) string {
	if r.Root == "" {
		return r.ID
	}
	return r.Root
}

// abandon records that run id was never submitted, and returns err.
func (in *Instance) abandon(id string, err error) error {
	if eerr := in.log.EndRun(context.Background(), id, eventlog.RunFailure, "not submitted: "+err.Error()); eerr != nil {
		return errors.Join(err, eerr)
	}
	return err
}

// follow waits for submitted run id to end and returns how it did. A
// canceled ctx cancels the run, and follow waits for it to end canceled.
func (in *Instance) follow(ctx context.Context, id string, progress func(Step)) (*Run, error) {
	ex := in.cfg.Executor
	stopBeat := in.heartbeat(id)
	defer stopBeat()
	err := ex.Follow(ctx, in, id, progress)
	if err != nil && ctx.Err() != nil {
		bg := context.WithoutCancel(ctx)
		if cerr := ex.Cancel(bg, in, id); cerr != nil {
			return nil, errors.Join(err, cerr)
		}
		in.logger.Info("run canceled; waiting for its steps to stop", "run", id)
		err = ex.Follow(bg, in, id, progress)
	}
	if err != nil {
		return nil, fmt.Errorf("asset: follow run %s: %w", id, err)
	}
	return in.finished(context.WithoutCancel(ctx), id)
}

// finished returns the result of run id, which has ended, and the error
// Materialize returns for it.
func (in *Instance) finished(ctx context.Context, id string) (*Run, error) {
	d, err := in.RunDetails(ctx, id)
	if err != nil {
		return nil, err
	}
	res := &Run{ID: d.ID, Parent: d.Parent, Root: d.Root, Status: d.Status, Started: d.Created, Ended: d.Ended, Steps: d.Steps}
	switch d.Status {
	case eventlog.RunFailure:
		return res, fmt.Errorf("asset: run %s: %w: %s", id, ErrRunFailed, d.Error)
	case eventlog.RunCanceled:
		return res, fmt.Errorf("asset: run %s %s: %w; resume it to go on", id, d.Error, ErrRunCanceled)
	case eventlog.RunStarted:
		return res, fmt.Errorf("asset: run %s has not ended", id)
	}
	return res, nil
}

// Cancel cancels run id (or a unique prefix of it), executed by the
// instance's executor: no step of it starts any more and those computing
// are interrupted. It returns before the run has ended. A run computed in
// process is canceled by a signal to its process instead.
func (in *Instance) Cancel(ctx context.Context, id string) error {
	r, err := in.log.Run(ctx, id)
	if err != nil {
		return fmt.Errorf("asset: %w", err)
	}
	spec, err := decodeSpec(r)
	if err != nil {
		return err
	}
	if r.Status != eventlog.RunStarted {
		return fmt.Errorf("asset: run %s already ended (%s)", r.ID, r.Status)
	}
	if spec.Executor == "" {
		return fmt.Errorf("asset: run %s is computed in process %d on %s: interrupt that process (SIGINT) to cancel it", r.ID, r.PID, r.Host)
	}
	if in.cfg.Executor == nil || in.cfg.Executor.Name() != spec.Executor {
		return fmt.Errorf("asset: run %s is executed by %s workers: cancel it with that executor", r.ID, spec.Executor)
	}
	return in.cfg.Executor.Cancel(ctx, in, r.ID)
}

// resumeSubmitted resumes parent, a run executed by an executor: one
// still going on is followed (the process that submitted it may have been
// killed; its workers go on), one that ended is resumed by a new run.
// ok is false when the caller is to start a new run.
func (in *Instance) resumeSubmitted(ctx context.Context, parent eventlog.Run, spec *runSpec, o ResumeOptions) (res *Run, ok bool, err error) {
	ex := in.cfg.Executor
	if ex == nil || ex.Name() != spec.Executor {
		if parent.Status == eventlog.RunStarted {
			return nil, true, fmt.Errorf("asset: run %s is executed by %s workers: resume it with that executor (--executor %s)", parent.ID, spec.Executor, spec.Executor)
		}
		return nil, false, nil // ended: a new run may go anywhere
	}
	if parent.Status != eventlog.RunStarted {
		return nil, false, nil
	}
	sub, err := ex.Submitted(ctx, in, parent.ID)
	if err != nil {
		return nil, true, err
	}
	if !sub {
		return nil, false, nil // its submitter died before submitting it
	}
	in.logger.Info("run goes on in the workers; following it", "run", parent.ID)
	if o.Detach {
		return &Run{ID: parent.ID, Parent: parent.Parent, Root: rootOf(parent), Status: parent.Status, Started: parent.Created}, true, nil
	}
	res, err = in.follow(ctx, parent.ID, o.Progress)
	return res, true, err
}
