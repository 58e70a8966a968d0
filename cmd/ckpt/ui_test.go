package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/internal/testenv"
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

	addr, stop := startUI(t, "--store", dir)
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
	if c := stop(); c != exitOK {
		t.Errorf("ckpt ui stopped with exit code %d, want 0", c)
	}
}

// startUI runs `ckpt ui ARGS --listen 127.0.0.1:0` until the returned
// function stops it (and returns its exit code); it returns the URL it
// serves.
func startUI(t *testing.T, args ...string) (string, func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	var stderr syncBuffer
	pr, pw := io.Pipe()
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, append([]string{"ui", "--listen", "127.0.0.1:0"}, args...), strings.NewReader(""), pw, &stderr)
		pw.Close()
	}()
	stop := func() int {
		cancel()
		return <-code
	}
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		c := stop()
		t.Fatalf("ckpt ui printed no address: %v (exit code %d)\n%s", err, c, stderr.String())
	}
	go io.Copy(io.Discard, pr)
	addr := regexp.MustCompile(`http://127\.0\.0\.1:\d+/`).FindString(line)
	if addr == "" {
		stop()
		t.Fatalf("ckpt ui does not serve on loopback: %q", line)
	}
	return addr, stop
}

// The event log's password never reaches a page.
func TestUIShowsNoCredential(t *testing.T) {
	const secret = "hunter2pw"
	pg := testenv.NewPostgres(t)
	// The event log takes its schema as search_path.
	u, err := url.Parse(pg.Base)
	if err != nil {
		t.Fatal(err)
	}
	user := "postgres"
	if u.User != nil && u.User.Username() != "" {
		user = u.User.Username()
	}
	u.User = url.UserPassword(user, secret) // the test server trusts loopback: any password does
	q := u.Query()
	q.Set("search_path", pg.Schema)
	u.RawQuery = q.Encode()
	addr, stop := startUI(t, "--store", t.TempDir(), "--events", u.String())
	defer stop()
	for _, path := range []string{"runs", "assets", "jobs"} {
		resp, err := http.Get(addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET /%s: %d\n%s", path, resp.StatusCode, body)
		}
		if strings.Contains(string(body), secret) {
			t.Errorf("GET /%s shows the event log's password", path)
		}
		if !strings.Contains(string(body), "xxxxx") {
			t.Errorf("GET /%s does not show the event log's (redacted) address", path)
		}
	}
}

// syncBuffer is a bytes.Buffer safe to write from the command's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
