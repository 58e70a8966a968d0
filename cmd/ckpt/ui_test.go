package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt"
)

// `ckpt ui` serves the store's jobs on a loopback address until it is
// stopped, and is read-only.
func TestUIServesTheStore(t *testing.T) {
	dir := t.TempDir()
	j, err := ckpt.Open[int](t.Context(), "served", ckpt.Config{Store: dir, NoSignals: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Finish(t.Context()); err != nil {
		t.Fatal(err)
	}
	j.Close()

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"ui", "--store", dir, "--listen", "127.0.0.1:0"}, strings.NewReader(""), pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("ckpt ui printed no address: %v", err)
	}
	go io.Copy(io.Discard, pr)
	addr := regexp.MustCompile(`http://127\.0\.0\.1:\d+/`).FindString(line)
	if addr == "" {
		t.Fatalf("ckpt ui does not serve on loopback: %q", line)
	}
	resp, err := http.Get(addr + "jobs")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "served") || !strings.Contains(string(body), "read-only") {
		t.Errorf("GET /jobs: %d, want the job and read-only:\n%s", resp.StatusCode, body)
	}
	resp, err = http.Get(addr + "metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `ckpt_last_checkpoint_records{job="served"}`) {
		t.Errorf("/metrics has no series of the job:\n%s", body)
	}
	cancel()
	if c := <-code; c != exitOK {
		t.Errorf("ckpt ui stopped with exit code %d, want 0", c)
	}
}
