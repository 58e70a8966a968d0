package metrics_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/convert"
	"github.com/ckptdev/ckpt/metrics"
	"github.com/ckptdev/ckpt/pipeline"
)

// setObserver sets cfg.Observer to o, and reports false when ckpt.Config
// has no such field yet.
func setObserver(cfg *ckpt.Config, o ckpt.Observer) bool {
	f := reflect.ValueOf(cfg).Elem().FieldByName("Observer")
	if !f.IsValid() || !f.CanSet() {
		return false
	}
	f.Set(reflect.ValueOf(o))
	return true
}

// A real conversion with the collector as its observer: /metrics,
// scraped while it runs and after, agrees with the checkpoints it left.
func TestMetricsOfAConversion(t *testing.T) {
	if testing.Short() {
		t.Skip("converts a file; without -short only")
	}
	m := metrics.NewJobs()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	srv := httptest.NewServer(metrics.Handler(reg))
	defer srv.Close()

	dir := t.TempDir()
	in := filepath.Join(dir, "in.csv")
	var b strings.Builder
	b.WriteString("id,name,amount\n")
	for i := range 20000 {
		fmt.Fprintf(&b, "%d,name-%d,%d.%02d\n", i, i, i, i%100)
	}
	if err := os.WriteFile(in, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, ".ckpt")
	o := convert.Options{Input: in, Output: filepath.Join(dir, "out.jsonl"), Pipeline: pipeline.Config{
		Job:    "conv",
		Config: ckpt.Config{Store: store, Every: ckpt.Every{Records: 1000}, NoSignals: true, Logger: quiet},
	}}
	if !setObserver(&o.Pipeline.Config, m) {
		t.Skip("ckpt.Config has no Observer field yet: the engine must call the observer (observe.go) after each commit, failure and restore")
	}
	scrapes := 0
	o.Pipeline.Progress = func(p pipeline.Progress) {
		if p.Done {
			return
		}
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Error(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), "ckpt_checkpoints_completed_total") {
			t.Errorf("a scrape during the conversion has no ckpt_checkpoints_completed_total:\n%s", body)
		}
		scrapes++
	}
	o.Pipeline.ProgressEvery = 1
	if err := o.Resolve(); err != nil {
		t.Fatal(err)
	}
	if _, err := convert.Run(t.Context(), o); err != nil {
		t.Fatal(err)
	}
	if scrapes == 0 {
		t.Log("the conversion ended before a scrape; only the final values are checked")
	}
	st, err := ckpt.OpenStore(t.Context(), store, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cp, err := ckpt.Latest(t.Context(), st, "conv", quiet)
	if err != nil {
		t.Fatal(err)
	}
	if !cp.Final {
		t.Fatalf("newest checkpoint %d is not final", cp.Seq)
	}
	want(t, reg, "ckpt_checkpoints_completed_total", "conv", float64(cp.Seq)) // a fresh job commits 1, 2, ... seq
	want(t, reg, "ckpt_checkpoints_failed_total", "conv", 0)
	want(t, reg, "ckpt_last_checkpoint_timestamp_seconds", "conv", float64(cp.Time.UnixNano())/1e9)
	want(t, reg, "ckpt_last_checkpoint_records", "conv", float64(cp.Records))
	want(t, reg, "ckpt_last_checkpoint_full_size_bytes", "conv", float64(cp.StoredSize()))
	want(t, reg, "ckpt_records_processed_total", "conv", float64(cp.Records))
	want(t, reg, "ckpt_bytes_processed_total", "conv", float64(cp.Bytes))
	want(t, reg, "ckpt_restore_duration_seconds", "conv", 1)
}
