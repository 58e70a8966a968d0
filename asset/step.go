package asset

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"runtime/debug"
	"time"

	"github.com/ckptdev/ckpt/asset/eventlog"
)

// resolved is one input of a step: the upstream partitions it reads and
// their materializations.
type resolved struct {
	d     input
	u     *node
	parts []string
	mats  []*eventlog.Event
}

// runStep computes one asset partition, or reuses or skips it, and sets
// its outcome. Every success is durable in the event log when it returns.
func (x *execution) runStep(ctx context.Context, s *step) {
	n := s.n
	if m := x.reuse[stepKey{n.idx, s.part}]; m != nil {
		s.outcome, s.mat = Reused, m
		x.in.log.Append(eventlog.Event{RunID: x.run.ID, Kind: eventlog.StepReused, Key: n.key, Partition: s.part,
			Message: "materialized by run " + m.RunID})
		return
	}
	ins, versions, err := x.resolve(s)
	if err != nil {
		x.fail(s, err)
		return
	}
	if x.spec.Stale {
		st := x.plan.ev.states[n][s.part]
		if state, _ := ownState(n, st, versions); state == Fresh {
			// Its upstream was recomputed to the data versions it was
			// computed from: nothing to do.
			s.outcome, s.mat = UpToDate, st.Materialization
			x.in.log.Append(eventlog.Event{RunID: x.run.ID, Kind: eventlog.StepSkipped, Key: n.key, Partition: s.part,
				Message: "fresh: its upstream kept the data versions it was computed from"})
			return
		}
	}
	x.in.log.Append(eventlog.Event{RunID: x.run.ID, Kind: eventlog.StepStart, Key: n.key, Partition: s.part})

	policy := n.spec.Retry
	var (
		v   any
		m   *eventlog.Materialization
		c   *Context
		dur time.Duration
	)
	for attempt := 1; ; attempt++ {
		s.attempts = attempt
		start := time.Now()
		v, m, c, err = x.attempt(ctx, s, ins, versions, attempt)
		dur = time.Since(start)
		s.dur += dur
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			s.outcome, s.err = Canceled, fmt.Errorf("canceled: %w", err)
			return
		}
		if isPermanent(err) || attempt >= policy.attempts() {
			x.fail(s, err)
			return
		}
		wait := policy.wait(attempt)
		x.log.Warn("asset failed, retrying", "asset", n.key, "partition", s.part, "attempt", attempt, "wait", wait, "err", err)
		x.in.log.Append(eventlog.Event{RunID: x.run.ID, Kind: eventlog.StepRetry, Key: n.key, Partition: s.part,
			Attempt: attempt, Error: err.Error()})
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			s.outcome, s.err = Canceled, fmt.Errorf("canceled while waiting to retry: %w", err)
			return
		}
	}

	m.Duration = dur
	m.Checks = runChecks(ctx, n, v, m.Rows)
	s.checks = m.Checks
	if !m.ChecksPassed() && ctx.Err() != nil {
		// A blocking check the cancellation interrupted says nothing
		// about the value; recorded, it would mark the asset failed.
		s.outcome, s.err = Canceled, fmt.Errorf("canceled while running its checks: %w", context.Cause(ctx))
		return
	}
	_, _, _, dv, _ := c.report()
	if dv == "" {
		dv = provenance(n.spec.CodeVersion, x.run.ID, s.part, versions)
	}
	m.DataVersion = dv
	e := eventlog.Event{RunID: x.run.ID, Kind: eventlog.Materialized, Key: n.key, Partition: s.part, Attempt: s.attempts, Materialization: m, Time: time.Now()}
	if err := x.in.log.Record(context.WithoutCancel(ctx), e); err != nil {
		x.fail(s, fmt.Errorf("record the materialization: %w", err))
		return
	}
	s.mat = &e
	if !m.ChecksPassed() {
		var msg string
		for _, cr := range m.Checks {
			if cr.Blocking && !cr.Passed {
				msg = fmt.Sprintf("blocking check %q failed: %s", cr.Name, cr.Message)
				break
			}
		}
		x.fail(s, fmt.Errorf("%s", msg))
		return
	}
	s.outcome = Materialized
	x.log.Debug("materialized", "asset", n.key, "partition", s.part, "duration", dur, "data_version", shortVersion(dv))
}

// fail records that s failed.
func (x *execution) fail(s *step, err error) {
	s.outcome, s.err = FailedStep, err
	x.log.Warn("asset failed", "asset", s.n.key, "partition", s.part, "attempts", s.attempts, "err", err)
	x.in.log.Append(eventlog.Event{RunID: x.run.ID, Kind: eventlog.StepFailure, Key: s.n.key, Partition: s.part,
		Attempt: s.attempts, Error: err.Error()})
}

// resolve finds the materializations s reads: those of this run's steps,
// else the newest recorded when the run was planned.
func (x *execution) resolve(s *step) ([]resolved, map[string]string, error) {
	ev, p := x.plan.ev, x.plan
	all := func(u *node) []string { return ev.parts[u] }
	ins := make([]resolved, len(s.n.deps))
	versions := make(map[string]string, len(s.n.deps))
	for i, d := range s.n.deps {
		u := ev.nodeOf(s.n, d)
		parts := upstreamParts(u, d, s.part, x.spec.Now, all)
		r := resolved{d: d, u: u, parts: parts, mats: make([]*eventlog.Event, len(parts))}
		vs := make([]string, len(parts))
		for j, up := range parts {
			var m *eventlog.Event
			if k, ok := p.index[stepKey{u.idx, up}]; ok {
				m = p.steps[k].mat
			} else if st := ev.states[u][up]; st != nil {
				m = st.Materialization
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

// attempt loads the inputs, computes and saves the value once.
func (x *execution) attempt(ctx context.Context, s *step, ins []resolved, versions map[string]string, attempt int) (any, *eventlog.Materialization, *Context, error) {
	n := s.n
	dir := x.in.runDir(x.run.ID)
	vals := make([]any, len(ins))
	for i, r := range ins {
		if !r.d.all {
			v, err := x.in.loadValue(ctx, r.u, r.mats[0].Materialization, dir)
			if err != nil {
				return nil, nil, nil, err
			}
			vals[i] = v
			continue
		}
		m := reflect.MakeMapWithSize(reflect.MapOf(reflect.TypeFor[string](), r.u.out), len(r.parts))
		for j, up := range r.parts {
			v, err := x.in.loadValue(ctx, r.u, r.mats[j].Materialization, dir)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("partition %s: %w", up, err)
			}
			rv := reflect.Zero(r.u.out)
			if v != nil {
				rv = reflect.ValueOf(v)
			}
			m.SetMapIndex(reflect.ValueOf(up), rv)
		}
		vals[i] = m.Interface()
	}
	c := &Context{Context: ctx, Key: n.key, Partition: s.part, RunID: x.run.ID, Attempt: attempt,
		Log: x.in.logger.With("run", x.run.ID, "asset", n.key, "partition", s.part), deps: n.deps, inputs: vals}
	if p := n.spec.Partitions; p != nil && p.unit != noTime {
		c.WindowStart, c.WindowEnd, _ = p.Window(s.part)
	}
	v, err := callSafely(func() (any, error) { return n.run(c, vals) })
	meta, rows, rowsSet, _, cerr := c.report()
	if err == nil {
		err = cerr
	}
	if err != nil {
		return nil, nil, c, err
	}
	if !rowsSet {
		rows = rowsOf(v)
	}
	m := &eventlog.Materialization{CodeVersion: n.spec.CodeVersion, Inputs: versions, Attempt: attempt, Rows: rows}
	if len(n.spec.Metadata)+len(meta) > 0 {
		m.Metadata = maps.Clone(n.spec.Metadata)
		if m.Metadata == nil {
			m.Metadata = map[string]string{}
		}
		maps.Copy(m.Metadata, meta)
	}
	if err := x.in.saveValue(ctx, n, s.part, v, m); err != nil {
		return nil, nil, c, err
	}
	return v, m, c, nil
}

// callSafely calls f, turning a panic into an error with its stack.
func callSafely(f func() (any, error)) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	return f()
}

// runChecks runs n's checks on v.
func runChecks(ctx context.Context, n *node, v any, rows int64) []eventlog.CheckResult {
	if len(n.spec.Checks) == 0 {
		return nil
	}
	out := make([]eventlog.CheckResult, len(n.spec.Checks))
	for i, c := range n.spec.Checks {
		_, err := callSafely(func() (any, error) { return nil, c.fn(ctx, checked{value: v, rows: rows}) })
		out[i] = eventlog.CheckResult{Name: c.Name, Blocking: c.Blocking, Passed: err == nil}
		if err != nil {
			out[i].Message = firstLine(err.Error())
		}
	}
	return out
}
