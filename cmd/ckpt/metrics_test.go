package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt"
)

// scrapeOnSummary is the stdout of a run with --json: when the summary
// arrives (the run is over, but ckpt has not exited and still serves its
// metrics), it scrapes the metrics URL that the run logged on stderr.
type scrapeOnSummary struct {
	t       *testing.T
	stderr  *syncBuffer
	out     bytes.Buffer
	scraped string
}

func (s *scrapeOnSummary) Write(p []byte) (int, error) {
	s.out.Write(p)
	url := regexp.MustCompile(`http://127\.0\.0\.1:\d+/metrics`).FindString(s.stderr.String())
	if url == "" || s.scraped != "" {
		return len(p), nil
	}
	resp, err := http.Get(url)
	if err != nil {
		s.t.Errorf("scrape %s: %v", url, err)
		return len(p), nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	s.scraped = string(b)
	return len(p), nil
}

// `--metrics-listen` serves the run's checkpoints and progress while ckpt
// runs, with the values its checkpoints record.
func TestMetricsListen(t *testing.T) {
	dir := t.TempDir()
	var csv strings.Builder
	csv.WriteString("id,name\n")
	for i := range 5000 {
		fmt.Fprintf(&csv, "%d,n%d\n", i, i)
	}
	in := filepath.Join(dir, "in.csv")
	if err := os.WriteFile(in, []byte(csv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	var stderr syncBuffer
	stdout := &scrapeOnSummary{t: t, stderr: &stderr}
	code := run(context.Background(), []string{"convert", in, filepath.Join(dir, "out.jsonl"), "--store", store, "--job", "m",
		"--every", "1000", "--interval", "0", "--json", "--metrics-listen", "127.0.0.1:0"}, strings.NewReader(""), stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit code %d\n%s", code, stderr.String())
	}
	var sum runJSON
	if err := json.Unmarshal(stdout.out.Bytes(), &sum); err != nil {
		t.Fatalf("summary: %v\n%s", err, stdout.out.String())
	}
	st, err := ckpt.OpenStore(context.Background(), store, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	entries, err := ckpt.List(context.Background(), st, "m")
	if err != nil || len(entries) == 0 {
		t.Fatalf("list: %v, %d entries", err, len(entries))
	}
	last := entries[len(entries)-1].Checkpoint
	for _, want := range []string{
		fmt.Sprintf(`ckpt_checkpoints_completed_total{job="m"} %d`, sum.Checkpoints),
		fmt.Sprintf(`ckpt_records_processed_total{job="m"} %d`, last.Records),
		fmt.Sprintf(`ckpt_last_checkpoint_records{job="m"} %d`, last.Records),
		`ckpt_checkpoints_failed_total{job="m"} 0`,
		`ckpt_checkpoint_duration_seconds_count{job="m"} ` + fmt.Sprint(sum.Checkpoints),
	} {
		if !strings.Contains(stdout.scraped, want+"\n") {
			t.Errorf("/metrics lacks %q:\n%s", want, stdout.scraped)
		}
	}
	if sum.Checkpoints < 5 {
		t.Errorf("%d checkpoints, want at least 5 (one per 1,000 records and the final one)", sum.Checkpoints)
	}
}
