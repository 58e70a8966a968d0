package asset_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/ckptdev/ckpt/asset"
)

func wantStates(t *testing.T, in *asset.Instance, want map[string]asset.State) {
	t.Helper()
	got := states(t, in, "")
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s is %s, want %s", k, got[k], w)
		}
	}
}

func allState(s asset.State) map[string]asset.State {
	m := map[string]asset.State{}
	for _, k := range allKeys {
		m[k] = s
	}
	return m
}

func reason(t *testing.T, in *asset.Instance, key string) string {
	t.Helper()
	st, err := in.Status(tctx, asset.StatusOptions{Selection: key})
	if err != nil {
		t.Fatal(err)
	}
	return st[0].Reason
}

func TestStaleCodeVersion(t *testing.T) {
	e := newEnv(t)
	p := newPipeline(versioned)
	in := e.open(t, p.g)
	wantStates(t, in, allState(asset.StateMissing))
	if _, err := in.Materialize(tctx, asset.MaterializeOptions{}); err != nil {
		t.Fatal(err)
	}
	wantStates(t, in, allState(asset.StateFresh))
	in.Close()

	// The same code, redeployed: still fresh, nothing to do.
	p = newPipeline(versioned)
	in = e.open(t, p.g)
	wantStates(t, in, allState(asset.StateFresh))

	// clean's code changes: it is stale, and so is everything downstream.
	p = newPipeline(map[string]string{"raw": "1", "customers": "1", "clean": "2", "joined": "1", "report": "1", "other": "1", "other2": "1"})
	in = e.open(t, p.g)
	want := allState(asset.StateFresh)
	want["clean"], want["joined"], want["report"] = asset.StateStale, asset.StateStale, asset.StateStale
	wantStates(t, in, want)
	if r := reason(t, in, "clean"); !strings.Contains(r, `code version changed from "1" to "2"`) {
		t.Errorf("reason for clean: %q", r)
	}
	if r := reason(t, in, "joined"); !strings.Contains(r, "upstream clean is stale") {
		t.Errorf("reason for joined: %q", r)
	}
	plan, err := in.Plan(tctx, asset.MaterializeOptions{Stale: true})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(plan, " ") != "clean joined report" {
		t.Errorf("stale plan = %v", plan)
	}
	if _, err := in.Materialize(tctx, asset.MaterializeOptions{Stale: true}); err != nil {
		t.Fatal(err)
	}
	// clean's data version hashes its code version: it changed, so its
	// downstream had to be computed again.
	sameCounts(t, "--stale run", p.calls.take(), counts("clean", "joined", "report"))
	wantStates(t, in, allState(asset.StateFresh))
	if _, err := in.Materialize(tctx, asset.MaterializeOptions{Stale: true}); err != nil {
		t.Fatal(err)
	}
	sameCounts(t, "--stale run with everything fresh", p.calls.take(), nil)
}

// TestStaleUpstreamDataVersion: an upstream materialized again with a new
// data version makes its downstream stale; with the same data version
// (same code, same inputs) it does not.
func TestStaleUpstreamDataVersion(t *testing.T) {
	e := newEnv(t)
	// raw and customers have no code version: every materialization is
	// new data.
	p := newPipeline(map[string]string{"clean": "1", "joined": "1", "report": "1", "other": "1", "other2": "1"})
	in := e.open(t, p.g)
	if _, err := in.Materialize(tctx, asset.MaterializeOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Materialize(tctx, asset.MaterializeOptions{Selection: "other"}); err != nil {
		t.Fatal(err)
	}
	// other has a code version and no inputs: same data version again.
	wantStates(t, in, allState(asset.StateFresh))

	if _, err := in.Materialize(tctx, asset.MaterializeOptions{Selection: "raw"}); err != nil {
		t.Fatal(err)
	}
	want := allState(asset.StateFresh)
	want["clean"], want["joined"], want["report"] = asset.StateStale, asset.StateStale, asset.StateStale
	wantStates(t, in, want)
	if r := reason(t, in, "clean"); !strings.Contains(r, "upstream raw has a newer data version") {
		t.Errorf("reason for clean: %q", r)
	}
	p.calls.take()
	if _, err := in.Materialize(tctx, asset.MaterializeOptions{Stale: true}); err != nil {
		t.Fatal(err)
	}
	// raw's new data version made clean stale; clean, recomputed with the
	// same code from the same data... but a new raw data version, has a
	// new provenance, so joined and report follow.
	sameCounts(t, "--stale run", p.calls.take(), counts("clean", "joined", "report"))
	wantStates(t, in, allState(asset.StateFresh))
}

// sourceGraph is a source asset that reports its own data version (the
// data it read), with two downstream assets.
type sourceGraph struct {
	g     *asset.Graph
	calls *counter
	mu    sync.Mutex
	data  string
}

func newSourceGraph(codeVersion, data string) *sourceGraph {
	s := &sourceGraph{g: asset.New(), calls: newCounter(), data: data}
	src := asset.Define(s.g, asset.Spec{Key: "src", CodeVersion: codeVersion}, func(c *asset.Context) (string, error) {
		s.calls.add(c)
		s.mu.Lock()
		defer s.mu.Unlock()
		c.SetDataVersion("data:" + s.data)
		return s.data, nil
	})
	mid := asset.Define1(s.g, asset.Spec{Key: "mid", CodeVersion: "1"}, src, func(c *asset.Context, v string) (string, error) {
		s.calls.add(c)
		return strings.ToUpper(v), nil
	})
	asset.Define1(s.g, asset.Spec{Key: "leaf", CodeVersion: "1"}, mid, func(c *asset.Context, v string) (int, error) {
		s.calls.add(c)
		return len(v), nil
	})
	return s
}

func (s *sourceGraph) set(data string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data = data
}

func TestStaleUserDataVersion(t *testing.T) {
	e := newEnv(t)
	s := newSourceGraph("1", "abc")
	in := e.open(t, s.g)
	if _, err := in.Materialize(tctx, asset.MaterializeOptions{}); err != nil {
		t.Fatal(err)
	}
	s.calls.take()
	// Read again, the same data: the same data version, nothing stale.
	if _, err := in.Materialize(tctx, asset.MaterializeOptions{Selection: "src"}); err != nil {
		t.Fatal(err)
	}
	wantStates(t, in, map[string]asset.State{"src": asset.StateFresh, "mid": asset.StateFresh, "leaf": asset.StateFresh})
	// New data: mid and leaf are stale.
	s.set("abcd")
	if _, err := in.Materialize(tctx, asset.MaterializeOptions{Selection: "src"}); err != nil {
		t.Fatal(err)
	}
	wantStates(t, in, map[string]asset.State{"src": asset.StateFresh, "mid": asset.StateStale, "leaf": asset.StateStale})
	s.calls.take()
	if _, err := in.Materialize(tctx, asset.MaterializeOptions{Stale: true}); err != nil {
		t.Fatal(err)
	}
	sameCounts(t, "--stale after new data", s.calls.take(), counts("mid", "leaf"))
	if got := value[int](t, in, "leaf", ""); got != 4 {
		t.Errorf("leaf = %d, want 4", got)
	}
}

// TestStaleRecomputedToSameVersion: src's code changes, so it is stale and
// its downstream too; recomputed, it reports the same data version, so a
// --stale run finds mid and leaf fresh when their turn comes and does not
// compute them.
func TestStaleRecomputedToSameVersion(t *testing.T) {
	e := newEnv(t)
	s := newSourceGraph("1", "abc")
	in := e.open(t, s.g)
	if _, err := in.Materialize(tctx, asset.MaterializeOptions{}); err != nil {
		t.Fatal(err)
	}
	in.Close()
	s = newSourceGraph("2", "abc")
	in = e.open(t, s.g)
	wantStates(t, in, map[string]asset.State{"src": asset.StateStale, "mid": asset.StateStale, "leaf": asset.StateStale})
	run, err := in.Materialize(tctx, asset.MaterializeOptions{Stale: true})
	if err != nil {
		t.Fatal(err)
	}
	sameCounts(t, "--stale run", s.calls.take(), counts("src"))
	if o := outcomes(run); o["mid"] != asset.OutcomeFresh || o["leaf"] != asset.OutcomeFresh || o["src"] != asset.OutcomeMaterialized {
		t.Errorf("outcomes %v", o)
	}
	logAgrees(t, in, run, "src", "mid", "leaf")
	wantStates(t, in, map[string]asset.State{"src": asset.StateFresh, "mid": asset.StateFresh, "leaf": asset.StateFresh})
}

func TestStaleFailed(t *testing.T) {
	e := newEnv(t)
	p := newPipeline(map[string]string{"clean": "1"})
	in := e.open(t, p.g)
	if _, err := in.Materialize(tctx, asset.MaterializeOptions{}); err != nil {
		t.Fatal(err)
	}
	p.faults.set("clean", -1)
	if _, err := in.Materialize(tctx, asset.MaterializeOptions{Selection: "clean"}); !isFailed(err) {
		t.Fatalf("materialize clean: %v, want failure", err)
	}
	want := allState(asset.StateFresh)
	want["clean"], want["joined"], want["report"] = asset.StateFailed, asset.StateStale, asset.StateStale
	wantStates(t, in, want)
	if r := reason(t, in, "clean"); !strings.Contains(r, "injected failure") {
		t.Errorf("reason for clean: %q", r)
	}
	if r := reason(t, in, "joined"); !strings.Contains(r, "upstream clean is failed") {
		t.Errorf("reason for joined: %q", r)
	}
	p.faults.set("clean", 0)
	p.calls.take()
	if _, err := in.Materialize(tctx, asset.MaterializeOptions{Stale: true}); err != nil {
		t.Fatal(err)
	}
	// clean is computed again, to the same data version (its code version
	// and raw's data are unchanged): joined and report stay as they are.
	sameCounts(t, "--stale after the failure", p.calls.take(), counts("clean"))
	wantStates(t, in, allState(asset.StateFresh))
}
