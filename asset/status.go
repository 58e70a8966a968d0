package asset

import (
	"context"
	"fmt"
	"time"

	"github.com/ckptdev/ckpt/asset/eventlog"
)

// State is how an asset partition stands against its definition and its
// upstream.
type State string

// The states, from best to worst.
const (
	// Fresh: materialized, and neither its code version nor any upstream
	// data version changed since.
	StateFresh State = "fresh"
	// Stale: materialized, but its code version changed, an upstream has
	// a newer data version than the one it was computed from, or an
	// upstream is itself not fresh.
	StateStale State = "stale"
	// Missing: never materialized.
	StateMissing State = "missing"
	// Failed: its last computation failed (or a blocking check did).
	StateFailed State = "failed"
)

func (s State) rank() int {
	switch s {
	case StateStale:
		return 1
	case StateMissing:
		return 2
	case StateFailed:
		return 3
	}
	return 0
}

// PartitionStatus is the status of one partition ("" for an
// unpartitioned asset).
type PartitionStatus struct {
	Partition string `json:"partition,omitempty"`
	State     State  `json:"state"`
	// Reason says why it is not fresh.
	Reason string `json:"reason,omitempty"`
	// Of the newest materialization, if any:
	DataVersion    string    `json:"data_version,omitempty"`
	CodeVersion    string    `json:"code_version,omitempty"`
	RunID          string    `json:"run_id,omitempty"`
	MaterializedAt time.Time `json:"materialized_at,omitzero"`
	// Error is the newest failure's, when it is failed.
	Error string `json:"error,omitempty"`
}

// AssetStatus is the status of an asset and of each of its partitions.
type AssetStatus struct {
	Key         string `json:"key"`
	Partitioned bool   `json:"partitioned,omitempty"`
	// State is the worst state of its partitions; Reason that partition's.
	State  State  `json:"state"`
	Reason string `json:"reason,omitempty"`
	// Counts counts partitions by state.
	Counts map[State]int `json:"counts"`
	// Partitions lists every partition (one, "", for an unpartitioned
	// asset), in order.
	Partitions []PartitionStatus `json:"partitions"`
}

// StatusOptions select what Status reports.
type StatusOptions struct {
	// Selection is a selection as Graph.Select takes it; empty means all.
	Selection string
}

// Status reports fresh, stale, missing or failed for every partition of
// the selected assets, from the event log's latest materializations and
// failures. An event log that looks like the wrong one (see
// CheckEventLog) is an error, not "everything missing".
func (in *Instance) Status(ctx context.Context, o StatusOptions) ([]AssetStatus, error) {
	nodes, err := in.g.selectNodes(o.Selection)
	if err != nil {
		return nil, err
	}
	if err := in.CheckEventLog(ctx); err != nil {
		return nil, err
	}
	ev, err := in.evaluate(ctx, nodes, in.cfg.Now())
	if err != nil {
		return nil, err
	}
	out := make([]AssetStatus, 0, len(nodes))
	for _, n := range nodes {
		parts := ev.parts[n]
		as := AssetStatus{Key: n.key, Partitioned: n.spec.Partitions != nil, State: StateFresh, Counts: map[State]int{}, Partitions: make([]PartitionStatus, len(parts))}
		for i, p := range parts {
			ps := ev.status[n][p]
			as.Partitions[i] = *ps
			as.Counts[ps.State]++
			if ps.State.rank() > as.State.rank() {
				as.State, as.Reason = ps.State, ps.Reason
				if as.Partitioned {
					as.Reason = fmt.Sprintf("partition %s: %s", p, ps.Reason)
				}
			}
		}
		if len(parts) == 0 {
			as.State = StateMissing
			as.Reason = "no partitions yet"
		}
		out = append(out, as)
	}
	return out, nil
}

// evaluation holds the status of every partition of a set of nodes and of
// everything upstream of them.
type evaluation struct {
	now    time.Time
	parts  map[*node][]string
	states map[*node]map[string]*eventlog.State
	status map[*node]map[string]*PartitionStatus
}

// evaluate computes the status of nodes and their upstream closure.
func (in *Instance) evaluate(ctx context.Context, nodes []*node, now time.Time) (*evaluation, error) {
	closure := upstreamClosure(in.g, nodes)
	var keys []string // nil: every asset, in one query
	if len(closure) < len(in.g.order) {
		keys = make([]string, len(closure))
		for i, n := range closure {
			keys[i] = n.key
		}
	}
	states, err := in.log.States(ctx, keys)
	if err != nil {
		return nil, fmt.Errorf("asset: %w", err)
	}
	ev := &evaluation{
		now:    now,
		parts:  make(map[*node][]string, len(closure)),
		states: make(map[*node]map[string]*eventlog.State, len(closure)),
		status: make(map[*node]map[string]*PartitionStatus, len(closure)),
	}
	for i := range states {
		s := &states[i]
		n, ok := in.g.byKey[s.Key]
		if !ok {
			continue // an asset no longer defined
		}
		if ev.states[n] == nil {
			ev.states[n] = map[string]*eventlog.State{}
		}
		ev.states[n][s.Partition] = s
	}
	for _, n := range closure { // upstream first
		parts := partsOf(n, now)
		ev.parts[n] = parts
		m := make(map[string]*PartitionStatus, len(parts))
		ev.status[n] = m
		for _, p := range parts {
			m[p] = ev.judge(n, p)
		}
	}
	return ev, nil
}

// upstreamClosure returns nodes and everything upstream of them, in
// topological order.
func upstreamClosure(g *Graph, nodes []*node) []*node {
	in := make([]bool, len(g.order))
	stack := make([]*node, 0, len(nodes))
	for _, n := range nodes {
		if !in[n.idx] {
			in[n.idx] = true
			stack = append(stack, n)
		}
	}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, u := range n.up {
			if !in[u.idx] {
				in[u.idx] = true
				stack = append(stack, u)
			}
		}
	}
	var out []*node
	for i, n := range g.order {
		if in[i] {
			out = append(out, n)
		}
	}
	return out
}

// partsOf returns the partitions of n ("" alone when unpartitioned).
func partsOf(n *node, now time.Time) []string {
	if n.spec.Partitions == nil {
		return []string{""}
	}
	return n.spec.Partitions.Keys(now)
}

// upstreamParts returns the partitions of d's asset u that partition part
// of a node reads through d.
func upstreamParts(u *node, d input, part string, now time.Time, all func(*node) []string) []string {
	switch {
	case d.all:
		return all(u)
	case u.spec.Partitions == nil:
		return []string{""}
	}
	return []string{part}
}

// judge decides the status of n's partition p; its upstream are judged.
func (ev *evaluation) judge(n *node, p string) *PartitionStatus {
	st := ev.states[n][p]
	ps := &PartitionStatus{Partition: p}
	if st != nil && st.Materialization != nil && st.Materialization.Materialization != nil {
		m := st.Materialization.Materialization
		ps.DataVersion, ps.CodeVersion = m.DataVersion, m.CodeVersion
		ps.RunID, ps.MaterializedAt = st.Materialization.RunID, st.Materialization.Time
	}
	if st != nil && st.Failed() {
		ps.Error = st.Failure.Error
	}
	versions, upState, upReason := ev.inputs(n, p)
	ps.State, ps.Reason = ownState(n, st, versions)
	if ps.State == StateFresh && upState != StateFresh {
		ps.State, ps.Reason = StateStale, upReason
	}
	return ps
}

// inputs returns the current data versions of the inputs of n's
// partition p ("" for an input never materialized), and the worst state
// among them with its reason.
func (ev *evaluation) inputs(n *node, p string) (map[string]string, State, string) {
	versions := make(map[string]string, len(n.deps))
	worst, reason := StateFresh, ""
	all := func(u *node) []string { return ev.parts[u] }
	for _, d := range n.deps {
		u := ev.nodeOf(n, d)
		parts := upstreamParts(u, d, p, ev.now, all)
		vs := make([]string, len(parts))
		complete := true
		for i, up := range parts {
			us := ev.status[u][up]
			if us == nil { // not a partition (any more)
				us = &PartitionStatus{State: StateMissing}
			}
			vs[i] = us.DataVersion
			if us.DataVersion == "" {
				complete = false
			}
			if us.State.rank() > worst.rank() {
				worst = us.State
				reason = fmt.Sprintf("upstream %s is %s", inputName(u.key, up), us.State)
			}
		}
		switch {
		case d.all && complete:
			versions[inputName(u.key, "*")] = combined(parts, vs)
		case d.all:
			versions[inputName(u.key, "*")] = ""
		default:
			versions[inputName(u.key, parts[0])] = vs[0]
		}
	}
	return versions, worst, reason
}

func (ev *evaluation) nodeOf(n *node, d input) *node {
	for _, u := range n.up {
		if u.key == d.key {
			return u
		}
	}
	return nil
}

// ownState judges a partition by its own record alone, given the current
// data versions of its inputs: missing, failed, stale (code version
// changed, or an input's data version differs from the one it was
// computed from), or fresh. An upstream recomputed to the same data
// version leaves it fresh.
func ownState(n *node, st *eventlog.State, versions map[string]string) (State, string) {
	if st != nil && st.Failed() {
		return StateFailed, "the last computation failed: " + firstLine(st.Failure.Error)
	}
	if st == nil || st.Materialization == nil || st.Materialization.Materialization == nil {
		return StateMissing, "never materialized"
	}
	m := st.Materialization.Materialization
	if !m.ChecksPassed() {
		return StateFailed, "a blocking check failed"
	}
	if cv := n.spec.CodeVersion; cv != "" && m.CodeVersion != cv {
		return StateStale, fmt.Sprintf("code version changed from %q to %q", m.CodeVersion, cv)
	}
	for name, v := range versions {
		had, ok := m.Inputs[name]
		switch {
		case v == "":
			return StateStale, fmt.Sprintf("upstream %s is missing", name)
		case !ok:
			return StateStale, fmt.Sprintf("upstream %s is a new input", name)
		case had != v:
			return StateStale, fmt.Sprintf("upstream %s has a newer data version (%s, computed from %s)", name, shortVersion(v), shortVersion(had))
		}
	}
	return StateFresh, ""
}

func firstLine(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}
