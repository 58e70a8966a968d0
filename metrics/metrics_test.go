package metrics_test

import (
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/metrics"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// value returns the value of metric name with label job=job (or the only
// series, when job is ""): a counter's or gauge's value, a histogram's
// sample count. ok is false when there is no such series.
func value(t *testing.T, g prometheus.Gatherer, name, job string) (float64, bool) {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if job != "" && !hasLabel(m, "job", job) {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount()), true
			}
		}
	}
	return 0, false
}

func hasLabel(m *dto.Metric, name, val string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == val {
			return true
		}
	}
	return false
}

func want(t *testing.T, g prometheus.Gatherer, name, job string, w float64) {
	t.Helper()
	v, ok := value(t, g, name, job)
	if !ok {
		t.Errorf("%s{job=%q}: no such series", name, job)
		return
	}
	if v != w {
		t.Errorf("%s{job=%q} = %v, want %v", name, job, v, w)
	}
}

// The collector reports what a real job's checkpoints were: counts,
// sizes, times and records of the newest, bytes written apart from
// those an unchanged state reuses, and the restore.
func TestJobsMatchCheckpoints(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	m := metrics.NewJobs()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)

	j, err := ckpt.Open[[]byte](ctx, "m", ckpt.Config{Store: dir, NoSignals: true, Logger: quiet, Uncompressed: true})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	m.Restored("m", j.Resumed(), time.Since(start))
	j.State = make([]byte, 64<<10) // random, so that it is stored as a blob of its own
	rand.Read(j.State)
	var cps []*ckpt.Checkpoint
	for i := range 3 {
		if err := j.Advance(ctx, 10, 100); err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			j.State[0] ^= 1 // a new chunk
		}
		cp, err := j.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m.CheckpointCommitted("m", cp, time.Millisecond)
		cps = append(cps, cp)
		if i == 1 {
			want(t, reg, "ckpt_last_checkpoint_size_bytes", "m", 0) // the same chunk as before
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	m.CheckpointFailed("m", errors.New("disk full"), time.Millisecond)

	last := cps[2]
	want(t, reg, "ckpt_checkpoints_completed_total", "m", 3)
	want(t, reg, "ckpt_checkpoints_failed_total", "m", 1)
	want(t, reg, "ckpt_checkpoint_duration_seconds", "m", 4)
	want(t, reg, "ckpt_last_checkpoint_full_size_bytes", "m", float64(last.StoredSize()))
	want(t, reg, "ckpt_last_checkpoint_size_bytes", "m", float64(last.StoredSize())) // one chunk, changed
	want(t, reg, "ckpt_last_checkpoint_timestamp_seconds", "m", float64(last.Time.UnixNano())/1e9)
	want(t, reg, "ckpt_last_checkpoint_records", "m", 30)
	want(t, reg, "ckpt_records_processed_total", "m", 30)
	want(t, reg, "ckpt_bytes_processed_total", "m", 300)
	want(t, reg, "ckpt_restore_duration_seconds", "m", 1)

	// Resumed: the counters go on from the checkpoint's, not from zero.
	j, err = ckpt.Open[[]byte](ctx, "m", ckpt.Config{Store: dir, NoSignals: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	m.Restored("m", j.Resumed(), time.Millisecond)
	m.Progress("m", j.Records()+5, j.Bytes()+50)
	want(t, reg, "ckpt_records_processed_total", "m", 35)
	want(t, reg, "ckpt_bytes_processed_total", "m", 350)
	want(t, reg, "ckpt_restore_duration_seconds", "m", 2)
}

func TestAssets(t *testing.T) {
	m := metrics.NewAssets()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	m.Step("orders", "materialized", time.Second)
	m.Step("orders", "failed", time.Second)
	m.Step("orders", "reused", 0)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			switch {
			case mt.Counter != nil:
				for _, l := range mt.GetLabel() {
					if l.GetName() == "outcome" {
						got[l.GetValue()] = mt.Counter.GetValue()
					}
				}
			case mt.Histogram != nil:
				got["durations"] = float64(mt.Histogram.GetSampleCount())
			}
		}
	}
	if got["materialized"] != 1 || got["failed"] != 1 || got["reused"] != 1 || got["durations"] != 2 {
		t.Errorf("asset metrics: %v, want one of each outcome and two durations", got)
	}
}

// StoreJobs reads the newest checkpoint of every job at each scrape.
func TestStoreJobs(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	st, err := ckpt.OpenStore(ctx, dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewStoreJobs(st, 0, quiet))
	want(t, reg, "ckpt_store_up", "", 1)
	j, err := ckpt.Open[int](ctx, "s", ckpt.Config{Backend: st, NoSignals: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if err := j.Advance(ctx, 7, 70); err != nil {
		t.Fatal(err)
	}
	cp, err := j.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want(t, reg, "ckpt_last_checkpoint_records", "s", 7)
	want(t, reg, "ckpt_last_checkpoint_timestamp_seconds", "s", float64(cp.Time.UnixNano())/1e9)
	want(t, reg, "ckpt_checkpoints_kept", "s", 1)
}

// Prometheus's client is linked by the programs that import metrics or
// ui, never by the engine.
func TestEngineDoesNotLinkPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list; without -short only")
	}
	for _, pkg := range []string{"github.com/ckptdev/ckpt", "github.com/ckptdev/ckpt/asset", "github.com/ckptdev/ckpt/pipeline"} {
		out, err := exec.CommandContext(t.Context(), "go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		if strings.Contains(string(out), "prometheus") {
			t.Errorf("%s links Prometheus's client", pkg)
		}
	}
}

// Listen serves /metrics on its own address until Close.
func TestListen(t *testing.T) {
	m := metrics.NewJobs()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	m.CheckpointFailed("served", errors.New("x"), time.Millisecond)
	s, err := metrics.Listen("127.0.0.1:0", reg)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + s.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `ckpt_checkpoints_failed_total{job="served"} 1`) {
		t.Errorf("/metrics:\n%s", body)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get("http://" + s.Addr() + "/metrics"); err == nil {
		t.Error("still serving after Close")
	}
}

// The lag of a job reading a stream is a gauge; a negative lag (unknown)
// leaves it as it was.
func TestJobsLag(t *testing.T) {
	m := metrics.NewJobs()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	if _, ok := value(t, reg, "ckpt_source_lag_records", "tail"); ok {
		t.Fatal("a lag before any was reported")
	}
	m.Lag("tail", 42)
	want(t, reg, "ckpt_source_lag_records", "tail", 42)
	m.Lag("tail", -1)
	want(t, reg, "ckpt_source_lag_records", "tail", 42)
	m.Lag("tail", 0)
	want(t, reg, "ckpt_source_lag_records", "tail", 0)
}
