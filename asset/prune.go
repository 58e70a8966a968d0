package asset

import (
	"context"
	"fmt"
	"time"

	"github.com/ckptdev/ckpt/asset/eventlog"
	"github.com/ckptdev/ckpt/internal/value"
)

// PruneOptions say what Prune removes.
type PruneOptions struct {
	// Before: runs that ended before it lose their events (each asset
	// partition's newest materialization and failure are kept).
	Before time.Time
	// Values also deletes the stored values of the removed
	// materializations that no remaining one shares. It is refused while
	// a run is alive: a run may be about to record a value with the same
	// content.
	Values bool
}

// Pruned says what Prune removed.
type Pruned struct {
	Runs   int `json:"runs"`
	Events int `json:"events"`
	Blobs  int `json:"blobs"`
}

// Prune applies retention to the event log and, if asked, to the stored
// values. A chain of runs resumed after some of its runs were pruned
// computes again what they had materialized.
func (in *Instance) Prune(ctx context.Context, o PruneOptions) (Pruned, error) {
	var res Pruned
	if o.Values {
		live, err := in.log.Runs(ctx, eventlog.RunFilter{Status: []eventlog.RunStatus{eventlog.RunStarted}})
		if err != nil {
			return res, fmt.Errorf("asset: %w", err)
		}
		for _, r := range live {
			if r.Alive(in.Liveness()) {
				return res, fmt.Errorf("asset: prune values: %w: run %s; prune again when it ends", ErrRunActive, r.ID)
			}
		}
	}
	p, err := in.log.Prune(ctx, o.Before)
	res.Runs, res.Events = p.Runs, p.Events
	if err != nil || !o.Values {
		return res, err
	}
	// Candidate blobs by asset (and store), then spare those a remaining
	// materialization of the same asset references, in any store: two
	// store URLs (or "" and a URL) may name one store, and sparing a blob
	// by mistake only keeps it.
	type where struct{ key, store string }
	cands := map[where]map[string]bool{}
	for _, e := range p.Materializations {
		m := e.Materialization
		if m == nil || m.Value == nil {
			continue
		}
		w := where{e.Key, m.Store}
		if cands[w] == nil {
			cands[w] = map[string]bool{}
		}
		for _, b := range value.Blobs(in.valuePrefix(e.Key), *m.Value) {
			cands[w][b] = true
		}
	}
	for w, blobs := range cands {
		kept, err := in.log.Events(ctx, eventlog.EventFilter{Key: w.key, Kinds: []eventlog.Kind{eventlog.KindMaterialization}})
		if err != nil {
			return res, fmt.Errorf("asset: %w", err)
		}
		for _, e := range kept {
			if m := e.Materialization; m != nil && m.Value != nil {
				for _, b := range value.Blobs(in.valuePrefix(e.Key), *m.Value) {
					delete(blobs, b)
				}
			}
		}
		st, err := in.storeFor(ctx, w.store)
		if err != nil {
			return res, err
		}
		for b := range blobs {
			if err := st.Delete(ctx, b); err != nil {
				return res, fmt.Errorf("asset: delete value blob %s: %w", b, err)
			}
			res.Blobs++
		}
	}
	return res, nil
}
