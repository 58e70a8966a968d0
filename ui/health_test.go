package ui

import (
	"fmt"
	"testing"
	"time"

	"github.com/ckptdev/ckpt/asset"
	"github.com/ckptdev/ckpt/asset/eventlog"
)

func parts(n int, state func(i int) asset.State) []asset.PartitionStatus {
	ps := make([]asset.PartitionStatus, n)
	for i := range ps {
		ps[i] = asset.PartitionStatus{Partition: fmt.Sprintf("p%06d", i), State: state(i)}
	}
	return ps
}

// The bar is drawn as runs of equal state, proportional to their
// partitions, however many partitions there are.
func TestHealthBarSegments(t *testing.T) {
	hb := makeHealthBar(parts(100000, func(i int) asset.State {
		switch {
		case i == 4242:
			return asset.StateFailed
		case i >= 90000:
			return asset.StateMissing
		}
		return asset.StateFresh
	}))
	if len(hb.Segments) != 4 || hb.Columns != nil {
		t.Fatalf("%d segments and %d columns for 4 runs of states, want 4 segments", len(hb.Segments), len(hb.Columns))
	}
	// Fresh segments first, the others drawn over them.
	if hb.Segments[0].State != asset.StateFresh || hb.Segments[1].State != asset.StateFresh {
		t.Errorf("segments %+v: the fresh ones are not drawn first", hb.Segments)
	}
	f := hb.Segments[3]
	if f.State != asset.StateFailed || f.Count != 1 || f.First != "p004242" || f.X != 4.242 || f.W != minSegment {
		t.Errorf("failed segment %+v, want p004242 alone at 4.242%% of the bar, widened to %v%% to be seen", f, minSegment)
	}
	if m := hb.Segments[2]; m.State != asset.StateMissing || m.Count != 10000 || m.W != 10 {
		t.Errorf("missing segment %+v, want the last 10000 partitions, 10%% of the bar", m)
	}
	if hb.Counts[asset.StateFailed] != 1 || hb.Counts[asset.StateFresh] != 89999 {
		t.Errorf("counts %v", hb.Counts)
	}
}

// Too many runs to draw each: stacked columns, in which every bad state
// present keeps a visible height.
func TestHealthBarColumns(t *testing.T) {
	hb := makeHealthBar(parts(100000, func(i int) asset.State {
		switch {
		case i%7 == 0:
			return asset.StateStale
		case i == 77778:
			return asset.StateFailed
		}
		return asset.StateFresh
	}))
	if hb.Segments != nil || len(hb.Columns) != maxColumns {
		t.Fatalf("%d segments, %d columns; want %d columns", len(hb.Segments), len(hb.Columns), maxColumns)
	}
	found := false
	for _, c := range hb.Columns {
		total := 0.0
		for _, p := range c.Parts {
			total += p.H
			if p.State == asset.StateFailed {
				found = true
				if p.H < 1 {
					t.Errorf("the failed partition's share of its column is %v%% high: invisible", p.H)
				}
			}
		}
		if total > 100.0001 {
			t.Errorf("column at %v%% stacks to %v%%", c.X, total)
		}
	}
	if !found {
		t.Error("the failed partition is in no column")
	}
}

// The timeline places each step from its start to its end, marks its
// retries, and draws a step that never ended up to the run's end.
func TestGantt(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	run := eventlog.Run{ID: "r", Status: eventlog.RunFailure, Created: t0, Ended: at(100)}
	evs := []eventlog.Event{
		{Time: at(0), Kind: eventlog.KindStepStart, Key: "a"},
		{Time: at(10), Kind: eventlog.KindStepRetry, Key: "a", Attempt: 1, Error: "timeout"},
		{Time: at(50), Kind: eventlog.KindMaterialization, Key: "a", Materialization: &eventlog.Materialization{Attempt: 2}},
		{Time: at(50), Kind: eventlog.KindStepStart, Key: "b", Partition: "x"},
		{Time: at(75), Kind: eventlog.KindStepFailure, Key: "b", Partition: "x", Error: "boom", Attempt: 1},
		{Time: at(80), Kind: eventlog.KindStepStart, Key: "c"},
	}
	g := makeGantt(run, false, evs, at(1000))
	if len(g.Bars) != 3 {
		t.Fatalf("%d bars, want 3", len(g.Bars))
	}
	a, b, c := g.Bars[0], g.Bars[1], g.Bars[2]
	if a.X != 0 || a.W != 50 || a.Attempts != 2 || len(a.Retries) != 1 || a.Retries[0].X != 10 || a.Outcome != asset.OutcomeMaterialized {
		t.Errorf("bar a %+v", a)
	}
	if b.X != 50 || b.W != 25 || b.Error != "boom" || b.Outcome != asset.OutcomeFailed {
		t.Errorf("bar b %+v", b)
	}
	if !c.Open || c.X != 80 || c.W != 20 || c.Outcome != asset.OutcomeInterrupted {
		t.Errorf("bar c %+v: want an open bar from 80%% to the run's end", c)
	}
}
