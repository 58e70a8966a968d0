package ui_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/asset"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/ui"
)

// xss is markup that must never reach a page unescaped: the tests put it
// in a metadata value, a description, a partition key, an error message,
// and (in an event log without code) an asset key.
const xss = `<script>window.pwned=1</script><img src=x onerror="window.pwned=1">`

// fixture is a store with jobs and an asset graph materialized once:
//
//	orders ──> clean ──> report
//	events[p00..p59]     (partition p13 always fails)
//	flaky                (fails its first attempt, then succeeds)
type fixture struct {
	dir   string
	st    store.Store
	in    *asset.Instance
	srv   *ui.Server
	http  *httptest.Server
	runID string // the run that materialized everything
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func partitionKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("p%02d", i)
	}
	return keys
}

// exampleGraph is the small example graph of the tests.
func exampleGraph() *asset.Graph {
	g := asset.New()
	orders := asset.Define(g, asset.Spec{Key: "orders", Group: "ingest", CodeVersion: "1", Description: "orders of the day " + xss},
		func(c *asset.Context) ([]int, error) { return []int{1, 2, 3}, nil })
	clean := asset.Define1(g, asset.Spec{Key: "clean", CodeVersion: "1", Metadata: map[string]string{"owner": xss}}, orders,
		func(c *asset.Context, v []int) ([]int, error) {
			c.AddMetadata("note", xss)
			return v, nil
		})
	asset.Define1(g, asset.Spec{Key: "report", Checks: []asset.Check{asset.RowsAtLeast(1)}}, clean,
		func(c *asset.Context, v []int) (int, error) { return len(v), nil })
	parts := append(partitionKeys(60), "<b>bold</b>")
	asset.Define(g, asset.Spec{Key: "events", Partitions: asset.StaticPartitions(parts...)},
		func(c *asset.Context) (string, error) {
			if c.Partition == "p13" {
				return "", errors.New("upstream file missing: " + xss)
			}
			return c.Partition, nil
		})
	asset.Define(g, asset.Spec{Key: "flaky", Retry: asset.RetryPolicy{MaxAttempts: 2}},
		func(c *asset.Context) (int, error) {
			if c.Attempt == 1 {
				return 0, errors.New("first attempt fails")
			}
			return 1, nil
		})
	return g
}

// writeJob runs job name to checkpoints checkpoints, the last one final
// when finish is set.
func writeJob(t *testing.T, st store.Store, name string, checkpoints int, finish bool) {
	t.Helper()
	ctx := t.Context()
	j, err := ckpt.Open[map[string]int](ctx, name, ckpt.Config{Backend: st, NoSignals: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if j.State == nil {
		j.State = map[string]int{}
	}
	for i := range checkpoints {
		for k := range 100 {
			j.State[fmt.Sprintf("k%d-%d", i, k)] = k
			if err := j.Advance(ctx, 1, 10); err != nil {
				t.Fatal(err)
			}
		}
		if finish && i == checkpoints-1 {
			_, err = j.Finish(ctx)
		} else {
			_, err = j.Checkpoint(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func newFixture(t *testing.T, o ui.Options) *fixture {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	st, err := ckpt.OpenStore(ctx, dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{dir: dir, st: st}
	writeJob(t, st, "orders-convert", 3, true)
	writeJob(t, st, "stopped-job", 2, false)
	in, err := asset.Open(ctx, exampleGraph(), asset.Config{Backend: st, EventLog: filepath.Join(dir, "assets.db"), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	run, err := in.Materialize(ctx, asset.MaterializeOptions{Parallelism: 2})
	if !errors.Is(err, asset.ErrRunFailed) {
		t.Fatalf("materialize: %v, want a failed run (partition p13 fails)", err)
	}
	f.in, f.runID = in, run.ID
	o.Store, o.Assets, o.Logger = st, in, quiet
	if o.StoreName == "" {
		o.StoreName = dir
	}
	f.srv, err = ui.New(o)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h := http.Handler(f.srv)
	if o.Prefix != "" {
		mux.Handle(o.Prefix+"/", f.srv)
		h = mux
	}
	f.http = newHTTPTest(h)
	t.Cleanup(f.http.Close)
	t.Cleanup(func() { f.srv.Close() })
	return f
}

// get fetches path and returns the body, failing unless the status is want.
func (f *fixture) get(t testing.TB, path string, want int) string {
	t.Helper()
	resp, err := http.Get(f.http.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %d, want %d: %s", path, resp.StatusCode, want, b)
	}
	return string(b)
}

// post sends a form to path with the given headers and returns the status
// and body (redirects are not followed).
func (f *fixture) post(t *testing.T, path string, form map[string]string, header map[string]string) (int, string) {
	t.Helper()
	vals := make([]string, 0, len(form))
	for k, v := range form {
		vals = append(vals, k+"="+v)
	}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, f.http.URL+path, strings.NewReader(strings.Join(vals, "&")))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// httptestServer is httptest.Server, named so that fixtures of tests and
// benchmarks share it.
type httptestServer = httptest.Server

func newHTTPTest(h http.Handler) *httptestServer { return httptest.NewServer(h) }

func artifacts(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("CKPT_ARTIFACTS"); d != "" {
		d = filepath.Join(d, t.Name())
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}
