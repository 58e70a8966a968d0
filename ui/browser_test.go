package ui_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/ui"
)

// browser is a headless Chromium driving one tab, with every console
// error and uncaught exception of its pages recorded.
type browser struct {
	ctx context.Context
	dir string // screenshots

	mu   sync.Mutex
	errs []string
}

// newBrowser starts Debian's chromium, or skips the test when it is
// missing (fails under CKPT_REQUIRE_SERVICES=1, as in CI).
func newBrowser(t testing.TB) *browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		msg := "chromium is not installed: the browser tests of the web UI need it (scripts/tools.sh installs it with apt-get)"
		if os.Getenv("CKPT_REQUIRE_SERVICES") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 860),
	)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelA() })
	b := &browser{ctx: ctx, dir: artifacts(t)}
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError {
				b.mu.Lock()
				b.errs = append(b.errs, fmt.Sprintf("%s:%d: %s", m.URL, m.Line+1, m.Text))
				b.mu.Unlock()
			}
		}
	}()
	return b
}

// open loads url, fails on a JavaScript error so far, and writes a
// screenshot called name.png.
func (b *browser) open(t *testing.T, url, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("load %s: %v", url, err)
	}
	// A round trip through the page's own world: the scripts it deferred
	// have run, and their errors have been sent before this answer.
	ready, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.readyState`))
	if err != nil || ready != "complete" {
		t.Fatalf("%s: readyState %q, %v", url, ready, err)
	}
	pwned, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.pwned === 1`))
	if err != nil {
		t.Fatal(err)
	}
	if pwned {
		t.Errorf("%s: markup of the user's ran as a script", url)
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot of %s: %v", url, err)
	}
	if err := os.WriteFile(filepath.Join(b.dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
	b.checkErrors(t, url)
}

func (b *browser) checkErrors(t testing.TB, where string) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.errs {
		t.Errorf("%s: JavaScript error: %s", where, e)
	}
	b.errs = nil
}

func eval[T any](t *testing.T, b *browser, expr string) T {
	t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// The pages in a real browser: each renders with no JavaScript error, the
// lineage graph shows every asset, the failed partition shows on the
// health bar, and a job's page follows the job live while it runs.
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser; runs without -short")
	}
	f := newFixture(t, ui.Options{Prefix: "/ckpt", Refresh: 500 * time.Millisecond, AllowActions: true})
	b := newBrowser(t)
	t.Logf("screenshots in %s", b.dir)
	base := f.http.URL + "/ckpt"

	b.open(t, base+"/assets", "assets")
	keys, err := f.in.Graph().Keys()
	if err != nil {
		t.Fatal(err)
	}
	shown := eval[[]string](t, b, `Array.from(document.querySelectorAll("#lineage a.node")).map(n => n.getAttribute("data-key"))`)
	if strings.Join(shown, ",") != strings.Join(keys, ",") {
		t.Errorf("the lineage graph shows %q, want every asset %q", shown, keys)
	}
	if n := eval[int](t, b, `(document.querySelector("#lineage path.edges").getAttribute("d").match(/M/g) || []).length`); n != 2 {
		t.Errorf("the lineage graph has %d edges, want 2 (orders→clean→report)", n)
	}

	b.open(t, base+"/asset?key=events", "asset-partitions")
	w := eval[float64](t, b, `(() => { const r = document.querySelector('#health rect[data-state="failed"]'); return r ? r.getBoundingClientRect().width : -1 })()`)
	if w <= 0 {
		t.Errorf("the failed partition is not on the health bar (width %v)", w)
	}

	b.open(t, base+"/runs", "runs")
	b.open(t, base+"/runs/"+f.runID, "run")
	if n := eval[int](t, b, `document.querySelectorAll('#gantt g.bar[data-outcome="failed"]').length`); n != 1 {
		t.Errorf("the run's timeline has %d failed steps, want 1", n)
	}

	// A job that runs while the page is open: the page shows it held by
	// this process, and its records move on without a reload.
	ctx := t.Context()
	j, err := ckpt.Open[int](ctx, "live-job", ckpt.Config{Backend: f.st, NoSignals: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if err := j.Advance(ctx, 100, 1000); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	b.open(t, base+"/jobs/live-job", "job")
	if st := eval[string](t, b, `document.getElementById("job-state").textContent`); st != "running" {
		t.Errorf("a job whose lock is held shows %q, want running", st)
	}
	if err := j.Advance(ctx, 150, 1500); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if _, err := chromedp.Run(pctx, chromedp.Poll[bool](`document.getElementById("job-records").textContent.trim() === "250"`)); err != nil {
		t.Errorf("the job page did not show the new checkpoint's records: %v", err)
	}
	// Verification on demand: its result stays shown across refreshes.
	if err := chromedp.Do(pctx, chromedp.Click(`button[data-verify="2"]`)); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(pctx, chromedp.Poll[bool](`(document.querySelector('[data-result="2"]') || {}).textContent.startsWith("✓")`)); err != nil {
		t.Errorf("verifying checkpoint 2 from its page showed no success: %v", err)
	}
	if png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot()); err == nil {
		os.WriteFile(filepath.Join(b.dir, "job-updated.png"), png, 0o644)
	}
	b.open(t, base+"/jobs", "jobs")
	b.checkErrors(t, "after the live updates")
}
