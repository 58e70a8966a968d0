package asset_test

import (
	"context"
	"errors"
	"testing"

	"github.com/ckptdev/ckpt/asset"
	"github.com/ckptdev/ckpt/asset/eventlog"
)

var tctx = context.Background()

func TestMaterializeAll(t *testing.T) {
	p := newPipeline(nil)
	in := newEnv(t).open(t, p.g)
	run, err := in.Materialize(tctx, asset.MaterializeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != eventlog.RunSuccess || run.Steps.Count(asset.OutcomeMaterialized) != len(allKeys) {
		t.Fatalf("run %s: %+v", run.Status, outcomes(run))
	}
	sameCounts(t, "clean run", p.calls.take(), counts(allKeys...))
	checkValues(t, in)
}

// TestFailureThenResume: an asset mid-graph fails; its independent
// branches still complete; resuming computes only it and its downstream,
// and every value equals a clean run's.
func TestFailureThenResume(t *testing.T) {
	eventLogs(t, func(t *testing.T, e env) {
		p := newPipeline(nil)
		in := e.open(t, p.g, func(c *asset.Config) { c.Parallelism = 2 })
		p.faults.set("clean", -1)
		run, err := in.Materialize(tctx, asset.MaterializeOptions{})
		if !isFailed(err) {
			t.Fatalf("first run: %v, want ErrRunFailed", err)
		}
		want := map[string]asset.Outcome{
			"raw": asset.OutcomeMaterialized, "customers": asset.OutcomeMaterialized, "other": asset.OutcomeMaterialized, "other2": asset.OutcomeMaterialized,
			"clean": asset.OutcomeFailed, "joined": asset.OutcomeSkipped, "report": asset.OutcomeSkipped,
		}
		if got := outcomes(run); !equalOutcomes(got, want) {
			t.Errorf("first run outcomes %v, want %v", got, want)
		}
		sameCounts(t, "first run", p.calls.take(), counts("raw", "customers", "other", "other2", "clean"))
		if s := states(t, in, ""); s["clean"] != asset.StateFailed || s["joined"] != asset.StateMissing || s["raw"] != asset.StateFresh {
			t.Errorf("status after the failure: %v", s)
		}

		p.faults.set("clean", 0)
		res, err := in.Resume(tctx, run.ID, asset.ResumeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Parent != run.ID || res.Root != run.ID {
			t.Errorf("resumed run: parent %q root %q, want %q", res.Parent, res.Root, run.ID)
		}
		sameCounts(t, "resume", p.calls.take(), counts("clean", "joined", "report"))
		if n := res.Steps.Count(asset.OutcomeReused); n != 4 {
			t.Errorf("resume reused %d, want 4", n)
		}
		checkValues(t, in)
		if _, err := in.Resume(tctx, run.ID, asset.ResumeOptions{}); !errors.Is(err, asset.ErrNothingToResume) {
			t.Errorf("resuming a finished chain: %v, want ErrNothingToResume", err)
		}
	})
}

func equalOutcomes(a, b map[string]asset.Outcome) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
