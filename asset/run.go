package asset

import (
	"container/heap"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/ckptdev/ckpt/asset/eventlog"
)

// Outcome is how a step of a run ended. It is the event log's
// vocabulary, so that a Run and what the log recorded of it agree.
type Outcome = eventlog.Outcome

// The outcomes (see eventlog.Outcome).
const (
	OutcomeMaterialized = eventlog.OutcomeMaterialized
	OutcomeReused       = eventlog.OutcomeReused
	OutcomeFresh        = eventlog.OutcomeFresh
	OutcomeFailed       = eventlog.OutcomeFailed
	OutcomeSkipped      = eventlog.OutcomeSkipped
	OutcomeCanceled     = eventlog.OutcomeCanceled
	OutcomeInterrupted  = eventlog.OutcomeInterrupted
)

// Step is the result of one asset partition of a run.
type Step struct {
	Key         string                 `json:"key"`
	Partition   string                 `json:"partition,omitempty"`
	Outcome     Outcome                `json:"outcome"`
	Attempts    int                    `json:"attempts,omitempty"`
	Duration    time.Duration          `json:"duration_ns,omitempty"`
	DataVersion string                 `json:"data_version,omitempty"`
	Error       string                 `json:"error,omitempty"`
	Checks      []eventlog.CheckResult `json:"checks,omitempty"`
	// Worker names the worker process that computed it, for a run
	// executed by workers.
	Worker string `json:"worker,omitempty"`
}

// Run is the result of a run: its record and the outcome of every step.
type Run struct {
	ID      string             `json:"id"`
	Parent  string             `json:"parent,omitempty"`
	Root    string             `json:"root"`
	Status  eventlog.RunStatus `json:"status"`
	Started time.Time          `json:"started"`
	Ended   time.Time          `json:"ended"`
	Steps   Steps              `json:"steps"`
}

// Steps are the results of a run's steps.
type Steps []Step

// Count returns how many steps ended with outcome o.
func (ss Steps) Count(o Outcome) int {
	n := 0
	for _, s := range ss {
		if s.Outcome == o {
			n++
		}
	}
	return n
}

// MaterializeOptions say what to materialize. The zero value materializes
// every partition of every asset.
type MaterializeOptions struct {
	// Selection is a selection as Graph.Select takes it; empty means all.
	Selection string
	// Partitions are partition keys and ranges ("first...last"), each
	// possibly a comma-separated list; they apply to every selected asset
	// that has them. Empty means every partition.
	Partitions []string
	// Stale computes only what is not fresh; an asset whose upstream was
	// recomputed to the same data versions is then not computed.
	Stale bool
	// Parallelism bounds the assets computed at once; 0 means the
	// instance's.
	Parallelism int
	// Progress, if set, is called after each step, from one goroutine.
	Progress func(Step)
	// Detach (with an Executor) returns as soon as the run is submitted,
	// with the run's id and status RunStarted; the workers go on.
	Detach bool
}

// ResumeOptions configure Resume.
type ResumeOptions struct {
	Parallelism int
	Progress    func(Step)
	// Detach: see MaterializeOptions.
	Detach bool
}

// Materialize computes the selected assets, upstream before downstream,
// up to Parallelism at a time; an asset whose upstream failed is skipped,
// and independent branches go on. Each success is durable in the event
// log before anything downstream starts. The returned Run says what
// happened to each asset partition; the error wraps ErrRunFailed or
// ErrRunCanceled when not all succeeded (resume the run to go on).
func (in *Instance) Materialize(ctx context.Context, o MaterializeOptions) (*Run, error) {
	spec, err := in.newSpec(o)
	if err != nil {
		return nil, err
	}
	p, err := in.makePlan(ctx, spec)
	if err != nil {
		return nil, err
	}
	r := eventlog.Run{ID: newRunID()}
	if in.cfg.Executor != nil {
		return in.submit(ctx, r, spec, p, nil, o.Detach, o.Progress)
	}
	return in.start(ctx, r, spec, p, nil, o.Parallelism, o.Progress)
}

// Resume starts a new run that finishes what run id (or the newest run
// resuming it) left undone: every asset partition its chain of runs
// materialized is reused, the failed and never-run ones are computed. A
// run whose process died (killed, machine lost) is detected as dead and
// resumed; a live one is refused with ErrRunActive, a successful one with
// ErrNothingToResume.
func (in *Instance) Resume(ctx context.Context, id string, o ResumeOptions) (*Run, error) {
	parent, err := in.log.Run(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("asset: %w", err)
	}
	for {
		kids, err := in.log.Runs(ctx, eventlog.RunFilter{Parent: parent.ID, Limit: 1})
		if err != nil {
			return nil, fmt.Errorf("asset: %w", err)
		}
		if len(kids) == 0 {
			break
		}
		parent = kids[0]
	}
	spec, err := decodeSpec(parent)
	if err != nil {
		return nil, err
	}
	if parent.Status == eventlog.RunSuccess {
		return nil, fmt.Errorf("asset: run %s: %w: it succeeded", parent.ID, ErrNothingToResume)
	}
	if spec.Executor != "" {
		if res, done, err := in.resumeSubmitted(ctx, parent, spec, o); done {
			return res, err
		}
	}
	switch {
	case parent.Alive(in.Liveness()):
		return nil, fmt.Errorf("asset: run %s (pid %d on %s): %w", parent.ID, parent.PID, parent.Host, ErrRunActive)
	case parent.Status == eventlog.RunStarted:
		msg := fmt.Sprintf("its process (pid %d on %s) died; last heartbeat %s", parent.PID, parent.Host, parent.Heartbeat.Format(time.RFC3339))
		if err := in.log.EndRun(ctx, parent.ID, eventlog.RunFailure, msg); err != nil {
			return nil, fmt.Errorf("asset: %w", err)
		}
		// A run removes the files it restored when it ends; a killed one
		// could not. Nothing else uses them.
		os.RemoveAll(in.runDir(parent.ID))
	}
	spec.Executor = ""
	p, err := in.makePlan(ctx, spec)
	if err != nil {
		return nil, err
	}
	reuse, err := in.chainMaterializations(ctx, parent.ID)
	if err != nil {
		return nil, err
	}
	r := eventlog.Run{ID: newRunID(), Parent: parent.ID, Root: parent.Root}
	if in.cfg.Executor != nil {
		return in.submit(ctx, r, spec, p, reuse, o.Detach, o.Progress)
	}
	return in.start(ctx, r, spec, p, reuse, o.Parallelism, o.Progress)
}

// chainMaterializations returns, for every asset partition, the newest
// materialization by run id or its ancestors whose blocking checks passed.
func (in *Instance) chainMaterializations(ctx context.Context, id string) (map[stepKey]*eventlog.Event, error) {
	chain, err := in.log.Chain(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("asset: %w", err)
	}
	ids := make([]string, len(chain))
	for i, r := range chain {
		ids[i] = r.ID
	}
	evs, err := in.log.Events(ctx, eventlog.EventFilter{Runs: ids, Kinds: []eventlog.Kind{eventlog.KindMaterialization}})
	if err != nil {
		return nil, fmt.Errorf("asset: %w", err)
	}
	out := map[stepKey]*eventlog.Event{}
	for i := range evs { // oldest first: newer ones win
		e := &evs[i]
		n, ok := in.g.byKey[e.Key]
		if !ok || e.Materialization == nil || !e.Materialization.ChecksPassed() {
			continue
		}
		out[stepKey{n.idx, e.Partition}] = e
	}
	return out, nil
}

// newRunID returns a run id that sorts by start time and is unique:
// "20260102T150405-1a2b3c4d".
func newRunID() string {
	var b [4]byte
	rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
}

// start records the run, executes its plan and records how it ended.
func (in *Instance) start(ctx context.Context, r eventlog.Run, spec *runSpec, p *plan, reuse map[stepKey]*eventlog.Event, parallel int, progress func(Step)) (*Run, error) {
	host, _ := os.Hostname()
	r.Host, r.PID = host, os.Getpid()
	r.Status = eventlog.RunStarted
	r.Created = time.Now()
	r.HeartbeatInterval, r.DeadAfter = in.cfg.HeartbeatInterval, in.cfg.DeadAfter
	if err := in.createRun(ctx, &r, spec); err != nil {
		return nil, err
	}
	if parallel <= 0 {
		parallel = in.cfg.Parallelism
	}
	x := &execution{in: in, run: r, spec: spec, plan: p, reuse: reuse, parallel: parallel, progress: progress,
		log: in.logger.With("run", r.ID)}
	x.log.Info("run started", "steps", len(p.steps), "parent", r.Parent)

	stopBeat := in.heartbeat(r.ID)
	x.execute(ctx)
	stopBeat()
	os.RemoveAll(in.runDir(r.ID))

	res := x.result()
	status, msg, runErr := x.verdict(ctx, res)
	res.Status = status
	// The run's end is recorded even when ctx was canceled: a canceled run
	// must not look dead.
	endCtx := context.WithoutCancel(ctx)
	if err := in.log.EndRun(endCtx, r.ID, status, msg); err != nil {
		return res, errors.Join(runErr, fmt.Errorf("asset: record the end of run %s: %w", r.ID, err))
	}
	res.Ended = time.Now().UTC()
	x.log.Info("run ended", "status", status, "materialized", res.Steps.Count(OutcomeMaterialized), "reused", res.Steps.Count(OutcomeReused),
		"failed", res.Steps.Count(OutcomeFailed), "skipped", res.Steps.Count(OutcomeSkipped), "canceled", res.Steps.Count(OutcomeCanceled))
	return res, runErr
}

// createRun records run r, doing spec.
func (in *Instance) createRun(ctx context.Context, r *eventlog.Run, spec *runSpec) error {
	var err error
	if r.Spec, err = json.Marshal(spec); err != nil {
		return fmt.Errorf("asset: encode run spec: %w", err)
	}
	if err := in.log.CreateRun(ctx, *r); err != nil {
		return fmt.Errorf("asset: %w", err)
	}
	if r.Root == "" {
		r.Root = r.ID
	}
	return nil
}

// heartbeat records, until stopped, that run id's process is alive.
func (in *Instance) heartbeat(id string) (stop func()) {
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(in.cfg.HeartbeatInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), in.cfg.HeartbeatInterval)
				if err := in.log.Heartbeat(ctx, id, now); err != nil {
					in.logger.Warn("heartbeat not recorded", "run", id, "err", err)
				}
				cancel()
			}
		}
	}()
	return func() {
		close(done)
		<-exited
	}
}

// execution is one run in progress.
type execution struct {
	in       *Instance
	run      eventlog.Run
	spec     *runSpec
	plan     *plan
	reuse    map[stepKey]*eventlog.Event
	parallel int
	progress func(Step)
	// dir is where input files are restored; empty means the run's
	// directory.
	dir string
	log interface {
		Info(string, ...any)
		Debug(string, ...any)
		Warn(string, ...any)
	}
}

// readyQueue hands out ready steps lowest index first, so that one worker
// computes in topological order, the same in every run.
type readyQueue []int

func (q readyQueue) Len() int           { return len(q) }
func (q readyQueue) Less(i, j int) bool { return q[i] < q[j] }
func (q readyQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *readyQueue) Push(x any)        { *q = append(*q, x.(int)) }
func (q *readyQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// execute runs the plan's steps, at most parallel at once. Steps are only
// touched by the goroutine that runs them until they report, and by this
// one after.
func (x *execution) execute(ctx context.Context) {
	steps := x.plan.steps
	ready := &readyQueue{}
	for _, s := range steps {
		if s.pending == 0 {
			heap.Push(ready, s.idx)
		}
	}
	done := make(chan *step)
	inflight := 0
	for {
		for inflight < x.parallel && ready.Len() > 0 && ctx.Err() == nil {
			s := steps[heap.Pop(ready).(int)]
			inflight++
			go func() {
				x.runStep(ctx, s)
				done <- s
			}()
		}
		if inflight == 0 {
			break
		}
		s := <-done
		inflight--
		x.report(s)
		switch s.outcome {
		case OutcomeCanceled:
			// What depends on it stays undone and is marked canceled below.
		case OutcomeMaterialized, OutcomeReused, OutcomeFresh:
			for _, d := range s.down {
				ds := steps[d]
				ds.pending--
				if ds.pending == 0 && ds.outcome == "" {
					heap.Push(ready, d)
				}
			}
		default:
			x.skipDownstream(s)
		}
	}
	for _, s := range steps {
		if s.outcome == "" {
			s.outcome = OutcomeCanceled
			s.err = context.Cause(ctx)
		}
	}
}

// skipDownstream marks everything downstream of a failed step skipped.
func (x *execution) skipDownstream(failed *step) {
	steps := x.plan.steps
	stack := append([]int(nil), failed.down...)
	for len(stack) > 0 {
		s := steps[stack[len(stack)-1]]
		stack = stack[:len(stack)-1]
		if s.outcome != "" {
			continue
		}
		s.outcome = OutcomeSkipped
		s.err = fmt.Errorf("upstream %s %s", inputName(failed.n.key, failed.part), failed.outcome)
		x.in.log.Append(eventlog.Event{RunID: x.run.ID, Kind: eventlog.KindStepSkipped, Key: s.n.key, Partition: s.part, Message: s.err.Error()})
		x.report(s)
		stack = append(stack, s.down...)
	}
}

func (x *execution) report(s *step) {
	if x.progress != nil {
		x.progress(s.result())
	}
}

func (s *step) result() Step {
	st := Step{Key: s.n.key, Partition: s.part, Outcome: s.outcome, Attempts: s.attempts, Duration: s.dur, Checks: s.checks}
	if s.mat != nil && s.mat.Materialization != nil {
		st.DataVersion = s.mat.Materialization.DataVersion
	}
	if s.err != nil {
		st.Error = s.err.Error()
	}
	return st
}

func (x *execution) result() *Run {
	r := &Run{ID: x.run.ID, Parent: x.run.Parent, Root: x.run.Root, Started: x.run.Created.UTC(), Steps: make([]Step, len(x.plan.steps))}
	for i, s := range x.plan.steps {
		r.Steps[i] = s.result()
	}
	return r
}

// verdict decides how the run ended and the error Materialize returns.
func (x *execution) verdict(ctx context.Context, r *Run) (eventlog.RunStatus, string, error) {
	failed, skipped, canceled := r.Steps.Count(OutcomeFailed), r.Steps.Count(OutcomeSkipped), r.Steps.Count(OutcomeCanceled)
	var first string
	for _, s := range r.Steps {
		if s.Outcome == OutcomeFailed {
			first = inputName(s.Key, s.Partition) + ": " + s.Error
			break
		}
	}
	switch {
	case canceled > 0:
		msg := fmt.Sprintf("canceled: %d of %d %s not done", canceled+failed+skipped, len(r.Steps), plural(len(r.Steps), "step", "steps"))
		return eventlog.RunCanceled, msg, fmt.Errorf("asset: run %s %s: %w (%w); resume it to go on", r.ID, msg, ErrRunCanceled, context.Cause(ctx))
	case failed > 0:
		msg := fmt.Sprintf("%d of %d %s failed, %d skipped; first: %s", failed, len(r.Steps), plural(len(r.Steps), "step", "steps"), skipped, first)
		return eventlog.RunFailure, msg, fmt.Errorf("asset: run %s: %w: %s", r.ID, ErrRunFailed, msg)
	}
	return eventlog.RunSuccess, "", nil
}
