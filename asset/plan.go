package asset

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ckptdev/ckpt/asset/eventlog"
)

// runSpec is what a run was asked to do, recorded with the run so that
// resuming it redoes the same plan.
type runSpec struct {
	Selection string `json:"selection"`
	// Keys are the selected assets, resolved when the run started.
	Keys []string `json:"keys"`
	// Partitions are the partition keys and ranges ("a...b") asked for;
	// empty means every partition.
	Partitions []string `json:"partitions,omitempty"`
	// Now is the clock when the run started: time partitions are those
	// complete at that instant, also when it is resumed later.
	Now   time.Time `json:"now"`
	Stale bool      `json:"stale,omitempty"`
	Steps int       `json:"steps"`
	// Executor names the executor whose workers compute the steps (see
	// Executor.Name); empty: the process that started the run.
	Executor string `json:"executor,omitempty"`
}

// stepKey names an asset partition: a node's position and a partition.
type stepKey struct {
	n    int
	part string
}

// step is one asset partition to compute in a run.
type step struct {
	n    *node
	part string
	idx  int
	up   []int // steps of the run it reads
	down []int // steps of the run that read it

	pending int // steps of up not yet done

	// Set when it ends: how, and the materialization downstream reads
	// (its own, a reused one, or the one found fresh).
	outcome  Outcome
	mat      *eventlog.Event
	attempts int
	dur      time.Duration
	err      error
	checks   []eventlog.CheckResult
}

// plan is the steps of a run in topological order, and what the event log
// said of their partitions and upstream when it was made.
type plan struct {
	steps []*step
	index map[stepKey]int
	ev    *evaluation
}

// parsePartitions splits partition arguments into items: keys and ranges
// ("first...last"); commas separate items.
func parsePartitions(args []string) []string {
	var items []string
	for _, a := range args {
		for it := range strings.SplitSeq(a, ",") {
			if it = strings.TrimSpace(it); it != "" {
				items = append(items, it)
			}
		}
	}
	return items
}

// targetParts returns the partitions of n a run covers: all, or those of
// the items that are n's partitions. used marks the items that matched.
func targetParts(n *node, items []string, now time.Time, used []bool) ([]string, error) {
	p := n.spec.Partitions
	if p == nil {
		return []string{""}, nil
	}
	if len(items) == 0 {
		return p.Keys(now), nil
	}
	want := map[string]bool{}
	for i, it := range items {
		if first, last, ok := strings.Cut(it, "..."); ok {
			if !p.Has(first, now) || !p.Has(last, now) {
				continue
			}
			keys, err := p.Range(first, last, now)
			if err != nil {
				return nil, err
			}
			for _, k := range keys {
				want[k] = true
			}
			used[i] = true
		} else if p.Has(it, now) {
			want[it] = true
			used[i] = true
		}
	}
	var out []string
	for _, k := range p.Keys(now) {
		if want[k] {
			out = append(out, k)
		}
	}
	return out, nil
}

// makePlan builds the steps of spec: every partition asked for of every
// selected asset or, for a --stale run, those not fresh.
func (in *Instance) makePlan(ctx context.Context, spec *runSpec) (*plan, error) {
	nodes := make([]*node, 0, len(spec.Keys))
	for _, k := range spec.Keys {
		n, ok := in.g.byKey[k]
		if !ok {
			return nil, fmt.Errorf("asset: %w: %q is no longer defined", ErrUnknownAsset, k)
		}
		nodes = append(nodes, n)
	}
	slices.SortFunc(nodes, func(a, b *node) int { return a.idx - b.idx })
	ev, err := in.evaluate(ctx, nodes, spec.Now)
	if err != nil {
		return nil, err
	}
	items := parsePartitions(spec.Partitions)
	used := make([]bool, len(items))
	p := &plan{index: map[stepKey]int{}, ev: ev}
	for _, n := range nodes {
		parts, err := targetParts(n, items, spec.Now, used)
		if err != nil {
			return nil, err
		}
		for _, part := range parts {
			if spec.Stale && ev.status[n][part].State == StateFresh {
				continue
			}
			s := &step{n: n, part: part, idx: len(p.steps)}
			p.index[stepKey{n.idx, part}] = s.idx
			p.steps = append(p.steps, s)
		}
	}
	for i, it := range items {
		if !used[i] {
			return nil, fmt.Errorf("asset: %w: partition %q is not a partition of any selected asset", ErrSelection, it)
		}
	}
	all := func(u *node) []string { return ev.parts[u] }
	for _, s := range p.steps {
		seen := map[int]bool{}
		for _, d := range s.n.deps {
			u := ev.nodeOf(s.n, d)
			for _, up := range upstreamParts(u, d, s.part, spec.Now, all) {
				if j, ok := p.index[stepKey{u.idx, up}]; ok && !seen[j] {
					seen[j] = true
					s.up = append(s.up, j)
					p.steps[j].down = append(p.steps[j].down, s.idx)
				}
			}
		}
		s.pending = len(s.up)
	}
	spec.Steps = len(p.steps)
	return p, nil
}

// Plan returns the asset partitions a materialization with these options
// would compute now, in the order a single worker would compute them, as
// "key" or "key[partition]".
func (in *Instance) Plan(ctx context.Context, o MaterializeOptions) ([]string, error) {
	spec, err := in.newSpec(o)
	if err != nil {
		return nil, err
	}
	p, err := in.makePlan(ctx, spec)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(p.steps))
	for i, s := range p.steps {
		out[i] = inputName(s.n.key, s.part)
	}
	return out, nil
}

func (in *Instance) newSpec(o MaterializeOptions) (*runSpec, error) {
	nodes, err := in.g.selectNodes(o.Selection)
	if err != nil {
		return nil, err
	}
	spec := &runSpec{Selection: o.Selection, Partitions: o.Partitions, Now: in.cfg.Now().UTC(), Stale: o.Stale}
	for _, n := range nodes {
		spec.Keys = append(spec.Keys, n.key)
	}
	return spec, nil
}

func decodeSpec(r eventlog.Run) (*runSpec, error) {
	var spec runSpec
	if err := json.Unmarshal(r.Spec, &spec); err != nil {
		return nil, fmt.Errorf("asset: run %s: unreadable spec: %w", r.ID, err)
	}
	return &spec, nil
}
