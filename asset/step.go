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

// runStep takes one asset partition to its outcome: reused from an
// earlier run of the chain, found fresh, or computed (with retries),
// checked and recorded. Every success is durable in the event log when it
// returns.
func (x *execution) runStep(ctx context.Context, s *step) {
	if x.reuseEarlier(s) {
		return
	}
	ins, versions, err := x.resolve(s)
	if err != nil {
		x.end(s, OutcomeFailed, err)
		return
	}
	if x.stillFresh(s, versions) {
		return
	}
	x.in.log.Append(eventlog.Event{RunID: x.run.ID, Kind: eventlog.KindStepStart, Key: s.n.key, Partition: s.part})
	res, o, err := x.computeWithRetries(ctx, s, ins, versions)
	if err != nil {
		x.end(s, o, err)
		return
	}
	if err := x.check(ctx, s, res); err != nil {
		x.end(s, OutcomeCanceled, err)
		return
	}
	x.record(ctx, s, res, versions)
}

// reuseEarlier ends s as reused when an earlier run of the chain
// materialized it.
func (x *execution) reuseEarlier(s *step) bool {
	m := x.reuse[stepKey{s.n.idx, s.part}]
	if m == nil {
		return false
	}
	s.outcome, s.mat = OutcomeReused, m
	x.in.log.Append(eventlog.Event{RunID: x.run.ID, Kind: eventlog.KindStepReused, Key: s.n.key, Partition: s.part,
		Message: "materialized by run " + m.RunID})
	return true
}

// stillFresh ends s as fresh when the run computes only what is stale and
// its upstream was recomputed to the data versions it was computed from.
func (x *execution) stillFresh(s *step, versions map[string]string) bool {
	if !x.spec.Stale {
		return false
	}
	st := x.plan.ev.states[s.n][s.part]
	if state, _ := ownState(s.n, st, versions); state != StateFresh {
		return false
	}
	s.outcome, s.mat = OutcomeFresh, st.Materialization
	x.in.log.Append(eventlog.Event{RunID: x.run.ID, Kind: eventlog.KindStepFresh, Key: s.n.key, Partition: s.part,
		Message: "its upstream kept the data versions it was computed from"})
	return true
}

// computed is what a successful attempt produced.
type computed struct {
	v   any
	m   *eventlog.Materialization
	c   *Context
	dur time.Duration // of the successful attempt
}

// computeWithRetries makes attempts until one succeeds, the error is
// permanent, the retry policy gives up (OutcomeFailed) or ctx ends
// (OutcomeCanceled).
func (x *execution) computeWithRetries(ctx context.Context, s *step, ins []resolved, versions map[string]string) (*computed, Outcome, error) {
	policy := s.n.spec.Retry
	for attempt := 1; ; attempt++ {
		s.attempts = attempt
		start := time.Now()
		v, m, c, err := x.attempt(ctx, s, ins, versions, attempt)
		dur := time.Since(start)
		s.dur += dur
		if err == nil {
			return &computed{v: v, m: m, c: c, dur: dur}, "", nil
		}
		if ctx.Err() != nil {
			return nil, OutcomeCanceled, fmt.Errorf("canceled: %w", err)
		}
		if isPermanent(err) || attempt >= policy.attempts() {
			return nil, OutcomeFailed, err
		}
		wait := policy.wait(attempt)
		x.log.Warn("asset failed, retrying", "asset", s.n.key, "partition", s.part, "attempt", attempt, "wait", wait, "err", err)
		x.in.log.Append(eventlog.Event{RunID: x.run.ID, Kind: eventlog.KindStepRetry, Key: s.n.key, Partition: s.part,
			Attempt: attempt, Error: err.Error()})
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, OutcomeCanceled, fmt.Errorf("canceled while waiting to retry: %w", err)
		}
	}
}

// check runs the asset's checks on the new value. It fails only when ctx
// ended while a blocking check failed: that failure says nothing about
// the value, and recorded it would mark the asset failed.
func (x *execution) check(ctx context.Context, s *step, res *computed) error {
	res.m.Checks = runChecks(ctx, s.n, res.v, res.m.Rows)
	s.checks = res.m.Checks
	if !res.m.ChecksPassed() && ctx.Err() != nil {
		return fmt.Errorf("canceled while running its checks: %w", context.Cause(ctx))
	}
	return nil
}

// record makes the materialization durable in the event log, then ends s
// as materialized, or as failed when a blocking check failed.
func (x *execution) record(ctx context.Context, s *step, res *computed, versions map[string]string) {
	n, m := s.n, res.m
	m.Duration = res.dur
	_, _, _, dv, _ := res.c.report()
	if dv == "" {
		dv = provenance(n.spec.CodeVersion, x.run.ID, s.part, versions)
	}
	m.DataVersion = dv
	e := eventlog.Event{RunID: x.run.ID, Kind: eventlog.KindMaterialization, Key: n.key, Partition: s.part, Attempt: s.attempts, Materialization: m, Time: time.Now()}
	if err := x.in.log.Record(context.WithoutCancel(ctx), e); err != nil {
		x.end(s, OutcomeFailed, fmt.Errorf("record the materialization: %w", err))
		return
	}
	s.mat = &e
	for _, cr := range m.Checks {
		if cr.Blocking && !cr.Passed {
			x.end(s, OutcomeFailed, fmt.Errorf("blocking check %q failed: %s", cr.Name, cr.Message))
			return
		}
	}
	s.outcome = OutcomeMaterialized
	x.log.Debug("materialized", "asset", n.key, "partition", s.part, "duration", res.dur, "data_version", shortVersion(dv))
}

// end records that s ended without a value of its own: failed or
// canceled, for err.
func (x *execution) end(s *step, o Outcome, err error) {
	s.outcome, s.err = o, err
	if o == OutcomeFailed {
		x.log.Warn("asset failed", "asset", s.n.key, "partition", s.part, "attempts", s.attempts, "err", err)
	}
	x.in.log.Append(eventlog.Event{RunID: x.run.ID, Kind: o.Kind(), Key: s.n.key, Partition: s.part,
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
	vals, err := x.loadInputs(ctx, ins)
	if err != nil {
		return nil, nil, nil, err
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

// loadInputs reads the values of a step's inputs from the store: one
// value per input, or a map of partition to value for an input that reads
// every partition.
func (x *execution) loadInputs(ctx context.Context, ins []resolved) ([]any, error) {
	dir := x.dir
	if dir == "" {
		dir = x.in.runDir(x.run.ID)
	}
	vals := make([]any, len(ins))
	for i, r := range ins {
		if !r.d.all {
			v, err := x.in.loadValue(ctx, r.u, r.mats[0].Materialization, dir)
			if err != nil {
				return nil, err
			}
			vals[i] = v
			continue
		}
		m := reflect.MakeMapWithSize(reflect.MapOf(reflect.TypeFor[string](), r.u.out), len(r.parts))
		for j, up := range r.parts {
			v, err := x.in.loadValue(ctx, r.u, r.mats[j].Materialization, dir)
			if err != nil {
				return nil, fmt.Errorf("partition %s: %w", up, err)
			}
			rv := reflect.Zero(r.u.out)
			if v != nil {
				rv = reflect.ValueOf(v)
			}
			m.SetMapIndex(reflect.ValueOf(up), rv)
		}
		vals[i] = m.Interface()
	}
	return vals, nil
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
