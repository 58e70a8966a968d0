package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ckptdev/ckpt/asset"
	"github.com/ckptdev/ckpt/asset/assetcli"
	"github.com/ckptdev/ckpt/asset/eventlog"
)

func run(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errs bytes.Buffer
	code := assetcli.Run(context.Background(), graph(), assetcli.Options{Name: "assets-example", Config: asset.Config{Store: "demo/assets/store"}}, args, &out, &errs)
	return code, out.String() + errs.String()
}

// TestExample runs the example as its doc comment does: everything, then
// a failing partition, then a resume; the summary adds up.
func TestExample(t *testing.T) {
	t.Chdir(t.TempDir())
	if code, out := run(t, "assets", "materialize"); code != 0 || !strings.Contains(out, "19 materialized") {
		t.Fatalf("materialize: exit %d\n%s", code, out)
	}
	t.Setenv("EXAMPLE_FAIL", "daily_revenue[2026-01-05]")
	code, out := run(t, "assets", "materialize")
	if code != assetcli.ExitError || !strings.Contains(out, "17 materialized, 1 failed, 1 skipped") {
		t.Fatalf("failing run: exit %d\n%s", code, out)
	}
	t.Setenv("EXAMPLE_FAIL", "")
	code, out = run(t, "runs", "resume", "last")
	if code != 0 || !strings.Contains(out, "2 materialized, 17 reused") {
		t.Fatalf("resume: exit %d\n%s", code, out)
	}
	code, out = run(t, "assets", "status", "--json")
	if code != 0 {
		t.Fatal(out)
	}
	var st []asset.AssetStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	for _, a := range st {
		if a.State != asset.StateFresh {
			t.Errorf("%s is %s", a.Key, a.State)
		}
	}

	in, err := asset.Open(context.Background(), graph(), asset.Config{Store: "demo/assets/store"})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var sales []Sale
	if err := in.Load(context.Background(), "joined_orders", "", &sales); err != nil {
		t.Fatal(err)
	}
	want := Revenue{}
	for _, s := range sales {
		want[*s.Region] += s.Amount
	}
	var got Revenue
	if err := in.Load(context.Background(), "revenue_summary", "", &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("summary has %d regions, want 4: %v", len(got), got)
	}
	for r, v := range want {
		if d := got[r] - v; d > 0.01 || d < -0.01 {
			t.Errorf("revenue of %s = %.2f, want %.2f", r, got[r], v)
		}
	}
	if len(sales) < 1900 || len(sales) >= 2000 {
		t.Errorf("%d clean orders: the bad rows should be dropped, and only them", len(sales))
	}
}

// TestConcurrentRuns: runs in several processes' worth of instances at
// once each write the raw file; none reads another's half-written file or
// loses its own temporary file to another.
func TestConcurrentRuns(t *testing.T) {
	t.Chdir(t.TempDir())
	const runs, rounds = 4, 5
	ins := make([]*asset.Instance, runs)
	for i := range ins {
		in, err := asset.Open(context.Background(), graph(), asset.Config{Store: "demo/assets/store", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		ins[i] = in
	}
	errs := make(chan error, runs*rounds)
	var wg sync.WaitGroup
	for _, in := range ins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				run, err := in.Materialize(context.Background(), asset.MaterializeOptions{Selection: "raw_orders cleaned_orders"})
				if err != nil {
					errs <- err
					continue
				}
				d, err := in.RunDetails(context.Background(), run.ID)
				if err != nil {
					errs <- err
					continue
				}
				if len(d.Steps) != 2 {
					errs <- fmt.Errorf("run %s: %d steps", run.ID, len(d.Steps))
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	evs, err := ins[0].EventLog().Events(context.Background(), eventlog.EventFilter{Key: "cleaned_orders", Kinds: []eventlog.Kind{eventlog.KindMaterialization}})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Materialization.Rows != evs[0].Materialization.Rows {
			t.Errorf("cleaned_orders has %d rows in run %s, %d in run %s: a run read a half-written file", e.Materialization.Rows, e.RunID, evs[0].Materialization.Rows, evs[0].RunID)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dataDir, "*.tmp*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}
