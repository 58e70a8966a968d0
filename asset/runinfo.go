package asset

import (
	"context"
	"fmt"

	"github.com/ckptdev/ckpt/asset/eventlog"
)

// RunDetails is what the event log knows of a run.
type RunDetails struct {
	eventlog.Run
	// Alive: the run is in progress in a live process. A run that is
	// neither alive nor ended died, and can be resumed.
	Alive bool `json:"alive"`
	// What it was asked to do.
	Selection  string   `json:"selection"`
	Partitions []string `json:"partitions,omitempty"`
	Stale      bool     `json:"stale,omitempty"`
	Planned    int      `json:"planned"`
	// Chain lists the runs it resumes, its parent first.
	Chain []string `json:"chain,omitempty"`
	// Children are the runs resuming it.
	Children []string `json:"children,omitempty"`
	// Steps are the steps that have events, in the order they started.
	Steps Steps `json:"steps"`
}

// RunDetails returns the run whose id is id (or starts with it) and the
// outcome of each of its steps, read from its events.
func (in *Instance) RunDetails(ctx context.Context, id string) (*RunDetails, error) {
	r, err := in.log.Run(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("asset: %w", err)
	}
	d := &RunDetails{Run: r, Alive: r.Alive(in.Liveness())}
	if spec, err := decodeSpec(r); err == nil {
		d.Selection, d.Partitions, d.Stale, d.Planned = spec.Selection, spec.Partitions, spec.Stale, spec.Steps
	}
	chain, err := in.log.Chain(ctx, r.ID)
	if err != nil {
		return nil, fmt.Errorf("asset: %w", err)
	}
	for _, c := range chain[1:] {
		d.Chain = append(d.Chain, c.ID)
	}
	kids, err := in.log.Runs(ctx, eventlog.RunFilter{Parent: r.ID})
	if err != nil {
		return nil, fmt.Errorf("asset: %w", err)
	}
	for _, k := range kids {
		d.Children = append(d.Children, k.ID)
	}
	evs, err := in.log.Events(ctx, eventlog.EventFilter{Runs: []string{r.ID}})
	if err != nil {
		return nil, fmt.Errorf("asset: %w", err)
	}
	idx := map[string]int{}
	for _, e := range evs {
		if e.Key == "" {
			continue
		}
		k := inputName(e.Key, e.Partition)
		i, ok := idx[k]
		if !ok {
			i = len(d.Steps)
			idx[k] = i
			d.Steps = append(d.Steps, Step{Key: e.Key, Partition: e.Partition})
		}
		s := &d.Steps[i]
		if o := e.Kind.Outcome(); o != "" {
			s.Outcome = o
		}
		if e.Worker != "" {
			s.Worker = e.Worker
		}
		switch e.Kind {
		case eventlog.KindStepRetry:
			s.Attempts = e.Attempt + 1
		case eventlog.KindMaterialization:
			if m := e.Materialization; m != nil {
				s.DataVersion, s.Duration, s.Attempts, s.Checks = m.DataVersion, m.Duration, m.Attempt, m.Checks
			}
		case eventlog.KindStepFailure, eventlog.KindStepCanceled:
			s.Error = e.Error
			if e.Attempt > 0 {
				s.Attempts = e.Attempt
			}
		case eventlog.KindStepSkipped:
			s.Error = e.Message
		}
	}
	return d, nil
}
