package asset

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/ckptdev/ckpt/asset/eventlog"
)

// StepTask is one step of a submitted run, as an Executor's worker
// computes it.
type StepTask struct {
	RunID     string
	Key       string
	Partition string
	// Attempt counts from 1; the asset's retry policy decides whether a
	// failed attempt is followed by another.
	Attempt int
	// Worker names the worker, recorded with the step's events.
	Worker string
}

// StepResult is what computing a StepTask produced, for the executor to
// commit: nothing of it is in the event log yet (but the value, if any,
// is in the store).
type StepResult struct {
	// Outcome is OutcomeMaterialized, OutcomeFresh, OutcomeFailed (also
	// when a failed blocking check failed it) or OutcomeCanceled.
	Outcome Outcome
	// Event is the event that records the outcome: a materialization, a
	// step found fresh, a failure, or a retry when Retry is set.
	Event eventlog.Event
	// Failure, when a blocking check failed the materialization Event
	// records, is the failure event that follows it.
	Failure *eventlog.Event
	// Retry: the attempt failed and the policy asks for another, after
	// RetryAfter.
	Retry      bool
	RetryAfter time.Duration
	// Step is the step's result, for progress reports.
	Step Step
}

// remoteRun is what a worker keeps of a run whose steps it computes.
type remoteRun struct {
	spec  *runSpec
	chain []string // the run and its ancestors
}

// maxRemoteRuns bounds the runs a worker remembers.
const maxRemoteRuns = 64

func (in *Instance) remoteRun(ctx context.Context, id string) (*remoteRun, error) {
	in.mu.Lock()
	rr := in.remote[id]
	in.mu.Unlock()
	if rr != nil {
		return rr, nil
	}
	r, err := in.log.Run(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("asset: %w", err)
	}
	spec, err := decodeSpec(r)
	if err != nil {
		return nil, err
	}
	chain, err := in.log.Chain(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("asset: %w", err)
	}
	rr = &remoteRun{spec: spec}
	for _, c := range chain {
		rr.chain = append(rr.chain, c.ID)
	}
	in.mu.Lock()
	if len(in.remote) >= maxRemoteRuns {
		clear(in.remote)
	}
	in.remote[id] = rr
	in.mu.Unlock()
	return rr, nil
}

// ComputeStep computes one step of a submitted run, for an Executor's
// worker: it reads the step's inputs (the materializations of its
// upstream in the run's chain, or else the newest ones), computes one
// attempt, saves the value and runs the checks, and returns the event
// that records the outcome without recording it: the executor commits it
// with its own bookkeeping. The error is for a step that cannot be
// computed here at all (its run is unknown); a failure of the asset is a
// result. The executor records the step's start (KindStepStart), in order
// with its outcome.
func (in *Instance) ComputeStep(ctx context.Context, t StepTask) (*StepResult, error) {
	rr, err := in.remoteRun(ctx, t.RunID)
	if err != nil {
		return nil, err
	}
	attempt := max(t.Attempt, 1)
	base := eventlog.Event{RunID: t.RunID, Key: t.Key, Partition: t.Partition, Attempt: attempt, Worker: t.Worker}
	fail := func(o Outcome, err error, dur time.Duration) *StepResult {
		e := base
		e.Kind, e.Error = o.Kind(), err.Error()
		return &StepResult{Outcome: o, Event: e, Step: Step{Key: t.Key, Partition: t.Partition, Outcome: o, Attempts: attempt, Error: err.Error(), Duration: dur}}
	}
	n, ok := in.g.byKey[t.Key]
	if !ok {
		return fail(OutcomeFailed, fmt.Errorf("%w: %q is not defined in this worker's graph", ErrUnknownAsset, t.Key), 0), nil
	}
	dir, err := os.MkdirTemp(in.workDir, "ckpt-step-")
	if err != nil {
		return nil, fmt.Errorf("asset: step %s: %w", inputName(t.Key, t.Partition), err)
	}
	defer os.RemoveAll(dir)
	x := &execution{in: in, run: eventlog.Run{ID: t.RunID}, spec: rr.spec, dir: dir, log: in.logger.With("run", t.RunID, "worker", t.Worker)}
	s := &step{n: n, part: t.Partition, attempts: attempt}
	ins, versions, err := x.resolveRemote(ctx, rr, s)
	if err != nil {
		return fail(OutcomeFailed, err, 0), nil
	}
	if rr.spec.Stale {
		st, ok, err := in.log.State(ctx, n.key, s.part)
		if err != nil {
			return nil, fmt.Errorf("asset: %w", err)
		}
		if ok {
			if state, _ := ownState(n, &st, versions); state == StateFresh {
				e := base
				e.Kind, e.Message = eventlog.KindStepFresh, "its upstream kept the data versions it was computed from"
				return &StepResult{Outcome: OutcomeFresh, Event: e, Step: Step{Key: t.Key, Partition: t.Partition, Outcome: OutcomeFresh}}, nil
			}
		}
	}
	t0 := time.Now()
	v, m, c, err := x.attempt(ctx, s, ins, versions, attempt)
	dur := time.Since(t0)
	if err != nil {
		if ctx.Err() != nil {
			return fail(OutcomeCanceled, fmt.Errorf("canceled: %w", err), dur), nil
		}
		if policy := n.spec.Retry; !isPermanent(err) && attempt < policy.attempts() {
			res := fail(OutcomeFailed, err, dur)
			res.Event.Kind = eventlog.KindStepRetry
			res.Retry, res.RetryAfter = true, policy.wait(attempt)
			return res, nil
		}
		return fail(OutcomeFailed, err, dur), nil
	}
	res := &computed{v: v, m: m, c: c, dur: dur}
	if err := x.check(ctx, s, res); err != nil {
		return fail(OutcomeCanceled, err, dur), nil
	}
	m.Duration = dur
	_, _, _, dv, _ := c.report()
	if dv == "" {
		dv = provenance(n.spec.CodeVersion, t.RunID, s.part, versions)
	}
	m.DataVersion = dv
	e := base
	e.Kind, e.Materialization, e.Time = eventlog.KindMaterialization, m, time.Now()
	st := Step{Key: t.Key, Partition: t.Partition, Outcome: OutcomeMaterialized, Attempts: attempt, Duration: dur, DataVersion: dv, Checks: m.Checks, Worker: t.Worker}
	out := &StepResult{Outcome: OutcomeMaterialized, Event: e, Step: st}
	for _, cr := range m.Checks {
		if cr.Blocking && !cr.Passed {
			// Recorded as a materialization whose check failed (as in
			// process); the step failed.
			out.Outcome = OutcomeFailed
			out.Step.Outcome = OutcomeFailed
			out.Step.Error = fmt.Sprintf("blocking check %q failed: %s", cr.Name, cr.Message)
			f := base
			f.Kind, f.Error = eventlog.KindStepFailure, out.Step.Error
			out.Failure = &f
			break
		}
	}
	return out, nil
}

// resolveRemote finds the materializations s reads: the newest of the
// run's chain, else the newest recorded.
func (x *execution) resolveRemote(ctx context.Context, rr *remoteRun, s *step) ([]resolved, map[string]string, error) {
	now := x.spec.Now
	all := func(u *node) []string { return partsOf(u, now) }
	ins := make([]resolved, len(s.n.deps))
	versions := make(map[string]string, len(s.n.deps))
	for i, d := range s.n.deps {
		u := (*evaluation)(nil).nodeOf(s.n, d)
		parts := upstreamParts(u, d, s.part, now, all)
		r := resolved{d: d, u: u, parts: parts, mats: make([]*eventlog.Event, len(parts))}
		f := eventlog.EventFilter{Runs: rr.chain, Key: u.key, Kinds: []eventlog.Kind{eventlog.KindMaterialization}}
		if len(parts) == 1 {
			f.Partition = &parts[0]
		}
		evs, err := x.in.log.Events(ctx, f)
		if err != nil {
			return nil, nil, fmt.Errorf("read the materializations of %s: %w", u.key, err)
		}
		byPart := map[string]*eventlog.Event{}
		for j := range evs { // oldest first: newer ones win
			if m := evs[j].Materialization; m != nil && m.ChecksPassed() {
				byPart[evs[j].Partition] = &evs[j]
			}
		}
		vs := make([]string, len(parts))
		for j, up := range parts {
			m := byPart[up]
			if m == nil {
				st, ok, err := x.in.log.State(ctx, u.key, up)
				if err != nil {
					return nil, nil, fmt.Errorf("read the state of %s: %w", inputName(u.key, up), err)
				}
				if ok {
					m = st.Materialization
				}
			}
			if m == nil || m.Materialization == nil {
				return nil, nil, fmt.Errorf("upstream %s has never been materialized: select it too (+%s) or materialize it first", inputName(u.key, up), s.n.key)
			}
			r.mats[j] = m
			vs[j] = m.Materialization.DataVersion
		}
		if d.all {
			versions[inputName(u.key, "*")] = combined(parts, vs)
		} else {
			versions[inputName(u.key, parts[0])] = vs[0]
		}
		ins[i] = r
	}
	return ins, versions, nil
}
