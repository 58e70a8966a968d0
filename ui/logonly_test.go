package ui_test

import (
	"context"

	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/asset"
	"github.com/ckptdev/ckpt/asset/eventlog"
	"github.com/ckptdev/ckpt/ui"
)

// logOnly serves an event log without the assets' code, as `ckpt ui
// --events` does, after recording runs into it with fill.
func logOnly(t testing.TB, fill func(ctx context.Context, l *eventlog.Log)) *fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := ckpt.OpenStore(ctx, dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l, err := eventlog.Open(ctx, filepath.Join(dir, "events.db"), eventlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	fill(ctx, l)
	in, err := asset.Open(ctx, asset.New(), asset.Config{Backend: st, Log: l, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	srv, err := ui.New(ui.Options{Assets: in, Logger: quiet, EventsName: l.String()})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{dir: dir, st: st, in: in, srv: srv}
	f.http = newServer(t, srv)
	return f
}

func record(ctx context.Context, t testing.TB, l *eventlog.Log, evs ...eventlog.Event) {
	t.Helper()
	for _, e := range evs {
		l.Append(e)
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// An event log written by another program may hold any key: markup in
// asset keys, partitions, metadata and errors is shown as text.
func TestEscapesMarkupOfTheEventLog(t *testing.T) {
	evil := "sales/" + xss
	f := logOnly(t, func(ctx context.Context, l *eventlog.Log) {
		now := time.Now()
		if err := l.CreateRun(ctx, eventlog.Run{ID: "r1", Created: now, Host: "h", PID: 1}); err != nil {
			t.Fatal(err)
		}
		record(ctx, t, l,
			eventlog.Event{RunID: "r1", Time: now, Kind: eventlog.KindStepStart, Key: "raw"},
			eventlog.Event{RunID: "r1", Time: now, Kind: eventlog.KindMaterialization, Key: "raw", Materialization: &eventlog.Materialization{DataVersion: "v1", Rows: 1, Metadata: map[string]string{"note": xss}}},
			eventlog.Event{RunID: "r1", Time: now, Kind: eventlog.KindStepStart, Key: evil, Partition: xss},
			eventlog.Event{RunID: "r1", Time: now, Kind: eventlog.KindStepFailure, Key: evil, Partition: xss, Error: xss},
		)
		if err := l.EndRun(ctx, "r1", eventlog.RunFailure, xss); err != nil {
			t.Fatal(err)
		}
	})
	for _, path := range []string{"/assets", "/asset?key=" + url.QueryEscape(evil), "/asset?key=raw", "/runs", "/runs/r1"} {
		body := f.get(t, path, http.StatusOK)
		if strings.Contains(body, "<script>window") || strings.Contains(body, "<img src=x") {
			t.Errorf("GET %s: markup from the event log went through unescaped", path)
		}
		if !strings.Contains(body, "&lt;script&gt;") {
			t.Errorf("GET %s: the markup is not shown as text", path)
		}
	}
	body := f.get(t, "/assets", http.StatusOK)
	if !strings.Contains(body, `data-state="failed"`) || !strings.Contains(body, "staleness is known only where") {
		t.Error("the assets page of an event log alone does not show the failure, or does not say that staleness is unknown")
	}
}

func newServer(t testing.TB, h http.Handler) *httptestServer {
	t.Helper()
	s := newHTTPTest(h)
	t.Cleanup(s.Close)
	return s
}
