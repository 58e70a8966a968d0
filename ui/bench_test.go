package ui_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/asset"
	"github.com/ckptdev/ckpt/asset/eventlog"
	"github.com/ckptdev/ckpt/ui"
)

// serveBench measures the server's answer to GET path (rendering
// included, the network not), and reports its p99 too.
func serveBench(b *testing.B, h http.Handler, path, want string) {
	b.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), want) {
		b.Fatalf("GET %s: %d, no %q", path, rec.Code, want)
	}
	size := rec.Body.Len()
	var took []time.Duration
	b.ResetTimer()
	for b.Loop() {
		rec := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(rec, req)
		took = append(took, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(size), "page-bytes")
}

// A graph of 10,000 assets in 100 layers, each depending on two of the
// layer before.
func BenchmarkAssetsPage10000(b *testing.B) {
	serveBench(b, bigGraph(b), "/assets", `data-key="l099/a099"`)
}

// The same page loaded in Chromium: from navigation to the load event,
// with the graph drawn (every node in the DOM).
func BenchmarkAssetsPage10000Chromium(b *testing.B) {
	srv := httptest.NewServer(bigGraph(b))
	defer srv.Close()
	br := newBrowser(b)
	var took []time.Duration
	for b.Loop() {
		start := time.Now()
		if err := chromedp.Do(br.ctx, chromedp.Navigate(srv.URL+"/assets")); err != nil {
			b.Fatal(err)
		}
		n, err := chromedp.Run(br.ctx, chromedp.Evaluate[int](`document.querySelectorAll("#lineage a.node").length`))
		if err != nil || n != 10000 {
			b.Fatalf("%d nodes drawn, %v", n, err)
		}
		// The nodes in view have their labels.
		n, err = chromedp.Run(br.ctx, chromedp.Evaluate[int](`document.querySelectorAll("#lineage text").length`))
		if err != nil || n == 0 || n > 1000 {
			b.Fatalf("%d labels drawn, %v; want those of the nodes in view", n, err)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)*99/100].Milliseconds()), "p99-ms")
	br.checkErrors(b, "the 10,000-asset page")
}

func bigGraph(b *testing.B) http.Handler {
	ctx := context.Background()
	g := asset.New()
	const layers, width = 100, 100
	var prev []asset.Asset[int]
	for l := range layers {
		var cur []asset.Asset[int]
		for i := range width {
			spec := asset.Spec{Key: fmt.Sprintf("l%03d/a%03d", l, i)}
			fn := func(c *asset.Context) (int, error) { return 1, nil }
			if prev == nil {
				cur = append(cur, asset.Define(g, spec, fn))
				continue
			}
			ins := []asset.Input{prev[i], prev[(i+1)%width]}
			cur = append(cur, asset.DefineN(g, spec, ins, fn))
		}
		prev = cur
	}
	dir := b.TempDir()
	st, err := ckpt.OpenStore(ctx, dir, quiet)
	if err != nil {
		b.Fatal(err)
	}
	in, err := asset.Open(ctx, g, asset.Config{Backend: st, EventLog: dir + "/assets.db", Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { in.Close(); st.Close() })
	srv, err := ui.New(ui.Options{Assets: in, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	return srv
}

// An asset with 100,000 partitions, one of which failed, read from an
// event log alone.
func BenchmarkHealthBar100000(b *testing.B) {
	f := logOnly(b, func(ctx context.Context, l *eventlog.Log) {
		now := time.Now()
		if err := l.CreateRun(ctx, eventlog.Run{ID: "r", Created: now}); err != nil {
			b.Fatal(err)
		}
		for i := range 100000 {
			p := fmt.Sprintf("p%06d", i)
			e := eventlog.Event{RunID: "r", Time: now, Kind: eventlog.KindMaterialization, Key: "big", Partition: p, Materialization: &eventlog.Materialization{DataVersion: "v"}}
			if i == 4242 {
				e = eventlog.Event{RunID: "r", Time: now, Kind: eventlog.KindStepFailure, Key: "big", Partition: p, Error: "boom"}
			}
			l.Append(e)
		}
		if err := l.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	})
	serveBench(b, f.srv, "/asset?key=big", `data-state="failed"`)
}

// The runs page over an event log of a million events: 1,000 runs of
// 1,000 events each.
func BenchmarkRunsPage1M(b *testing.B) {
	f := logOnly(b, func(ctx context.Context, l *eventlog.Log) {
		t0 := time.Now().Add(-time.Hour)
		for r := range 1000 {
			id := fmt.Sprintf("run-%04d", r)
			at := t0.Add(time.Duration(r) * time.Second)
			if err := l.CreateRun(ctx, eventlog.Run{ID: id, Created: at, Host: "h", PID: 1}); err != nil {
				b.Fatal(err)
			}
			for i := range 500 {
				key := fmt.Sprintf("a%03d", i)
				l.Append(eventlog.Event{RunID: id, Time: at, Kind: eventlog.KindStepStart, Key: key})
				l.Append(eventlog.Event{RunID: id, Time: at, Kind: eventlog.KindMaterialization, Key: key, Materialization: &eventlog.Materialization{DataVersion: "v"}})
			}
			if err := l.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			if err := l.EndRun(ctx, id, eventlog.RunSuccess, ""); err != nil {
				b.Fatal(err)
			}
		}
	})
	serveBench(b, f.srv, "/runs", "run-0999")
}
