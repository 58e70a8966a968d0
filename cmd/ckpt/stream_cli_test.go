package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ckptdev/ckpt/internal/testenv"
)

// These tests run the real ckpt binary on JetStream streams while a
// producer publishes, kill it with SIGKILL at random moments, restart it,
// and check that each output holds every message exactly once, in stream
// order.

// produce publishes n messages {"n":1} ... {"n":n} to stream's subject
// x, each followed by one to subject noise (which the jobs filter out),
// in batches, so that message i is at stream sequence 2i-1 and the jobs
// read while it publishes. It returns when all are stored.
func produce(t *testing.T, nc *testenv.NATS, s *testenv.Stream, n int) error {
	for i := 1; i <= n; i++ {
		if _, err := nc.JS.PublishAsync(s.Subject+".x", fmt.Appendf(nil, `{"n":%d}`, i)); err != nil {
			return err
		}
		if _, err := nc.JS.PublishAsync(s.Subject+".noise", []byte(`{"noise":true}`)); err != nil {
			return err
		}
		if i%500 == 0 {
			select {
			case <-nc.JS.PublishAsyncComplete():
			case <-time.After(time.Minute):
				return fmt.Errorf("publish: no acknowledgement in a minute")
			}
			time.Sleep(5 * time.Millisecond) // a producer's pace, not synchronisation
		}
	}
	select {
	case <-nc.JS.PublishAsyncComplete():
	case <-time.After(time.Minute):
		return fmt.Errorf("publish: no acknowledgement in a minute")
	}
	return nil
}

// wantLines is the JSON Lines output of messages 1..n.
func wantLines(n int) []byte {
	var b bytes.Buffer
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "{\"n\":%d}\n", i)
	}
	return b.Bytes()
}

func streamMessages() int {
	if longTests() {
		return 200_000
	}
	return 20_000
}

func TestStreamCLICrash(t *testing.T) {
	if testing.Short() {
		t.Skip("a kill -9 loop: skipped with -short")
	}
	c := buildCLI(t)
	nc := testenv.NewNATS(t)
	n := streamMessages()
	flags := []string{"--until", strconv.Itoa(2*n - 1), "--every", "700", "--interval", "20ms", "--no-progress"}

	// Each output runs with a stream and a producer of its own.
	start := func(t *testing.T) (*testenv.Stream, chan error) {
		s := nc.NewStream(t, 0)
		done := make(chan error, 1)
		go func() { done <- produce(t, nc, s, n) }()
		return s, done
	}

	t.Run("file", func(t *testing.T) {
		t.Parallel()
		s, produced := start(t)
		dir := t.TempDir()
		args := append([]string{"convert", s.Address(s.Subject + ".x"), "out.jsonl"}, flags...)
		kills := c.in(t).crashUntilDone(dir, 1, 150*time.Millisecond, args...)
		if err := <-produced; err != nil {
			t.Fatal(err)
		}
		t.Logf("%d kills", kills)
		got, err := os.ReadFile(filepath.Join(dir, "out.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, wantLines(n)) {
			t.Fatalf("out.jsonl is not messages 1..%d once each in order (%d bytes, want %d)", n, len(got), len(wantLines(n)))
		}
		if kills == 0 {
			t.Error("no run was killed: the test proved nothing")
		}
		// The finished job read everything: its lag is 0.
		if code, out := c.in(t).run(dir, "jobs", "--json"); code != 0 || !strings.Contains(out, `"lag": 0`) {
			t.Errorf("ckpt jobs: exit %d, no lag 0:\n%s", code, out)
		}
	})

	t.Run("table", func(t *testing.T) {
		t.Parallel()
		pg := testenv.NewPostgres(t)
		s, produced := start(t)
		dir := t.TempDir()
		args := append([]string{"convert", s.Address(s.Subject + ".x"), pg.WithParam("table", pg.Schema+".orders")}, flags...)
		kills := c.in(t).crashUntilDone(dir, 2, 150*time.Millisecond, args...)
		if err := <-produced; err != nil {
			t.Fatal(err)
		}
		t.Logf("%d kills", kills)
		rows, err := pg.Conn(t).Query(context.Background(), fmt.Sprintf(`SELECT ckpt_row, n FROM %s.orders ORDER BY ckpt_row`, pg.Schema))
		if err != nil {
			t.Fatal(err)
		}
		i := 0
		for rows.Next() {
			var row int64
			var v string
			if err := rows.Scan(&row, &v); err != nil {
				t.Fatal(err)
			}
			i++
			if row != int64(i) || v != strconv.Itoa(i) {
				t.Fatalf("row %d: ckpt_row %d, n %s; want %d, %d", i, row, v, i, i)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if i != n {
			t.Fatalf("the table holds %d rows, want %d", i, n)
		}
		if kills == 0 {
			t.Error("no run was killed: the test proved nothing")
		}
	})

	t.Run("stream", func(t *testing.T) {
		t.Parallel()
		s, produced := start(t)
		out := nc.NewStream(t, 0)
		dir := t.TempDir()
		args := append([]string{"convert", s.Address(s.Subject + ".x"), out.Address(out.Subject + ".copy")}, flags...)
		kills := c.in(t).crashUntilDone(dir, 3, 150*time.Millisecond, args...)
		if err := <-produced; err != nil {
			t.Fatal(err)
		}
		t.Logf("%d kills", kills)
		checkStream(t, out, n)
		if kills == 0 {
			t.Error("no run was killed: the test proved nothing")
		}
	})
}

// checkStream checks that s holds {"n":1} ... {"n":n} once each, in order.
func checkStream(t *testing.T, s *testenv.Stream, n int) {
	t.Helper()
	msgs := s.Messages(t)
	for i, m := range msgs {
		if want := fmt.Sprintf(`{"n":%d}`, i+1); string(m.Data) != want {
			t.Fatalf("message %d of the output stream is %s, want %s", i+1, m.Data, want)
		}
	}
	if len(msgs) != n {
		t.Fatalf("the output stream holds %d messages, want %d", len(msgs), n)
	}
}

// waitLines waits until path holds at least n lines, or the process
// behind done ends.
func waitLines(t *testing.T, path string, n int, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		b, _ := os.ReadFile(path)
		if bytes.Count(b, []byte{'\n'}) >= n {
			return
		}
		select {
		case err := <-done:
			t.Fatalf("ckpt ended before writing %d lines: %v", n, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: fewer than %d lines after two minutes", path, n)
		}
		time.Sleep(10 * time.Millisecond) // polling the output, not synchronisation
	}
}

// The NATS server restarts twice during a run, each time while the jobs
// are reading a batch of messages and publishing their copies: they
// reconnect, read on from where they were, and end with every message
// once, in order, in a file and in another stream on that server. The
// server is a private one, started and restarted by the test.
func TestStreamCLIServerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a NATS server: skipped with -short")
	}
	c := buildCLI(t)
	srv := testenv.StartNATSServer(t)
	nc := srv.Connect(t)
	src, dst := nc.NewStream(t, 0), nc.NewStream(t, 0)
	dir := t.TempDir()
	const perRound, rounds = 10_000, 3
	total := perRound * rounds

	run := func(args ...string) (chan error, *bytes.Buffer) {
		cmd := exec.Command(c.bin, args...)
		cmd.Dir = dir
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		t.Cleanup(func() { cmd.Process.Kill() })
		return done, &out
	}
	until := strconv.Itoa(total)
	fileDone, fileOut := run("convert", src.Address(""), "out.jsonl", "--until", until, "--interval", "20ms", "--every", "100", "--store", "s1", "--no-progress")
	streamDone, streamOut := run("convert", src.Address(""), dst.Address(dst.Subject+".copy"), "--until", until, "--interval", "20ms", "--every", "100", "--store", "s2", "--no-progress")

	for r := 0; r < rounds; r++ {
		for i := r*perRound + 1; i <= (r+1)*perRound; i++ {
			// Ids make a publish retried across the restart harmless.
			if i%1000 == 0 {
				<-nc.JS.PublishAsyncComplete() // at most 1000 in flight
			}
			if _, err := nc.JS.PublishAsync(src.Subject+".x", fmt.Appendf(nil, `{"n":%d}`, i), jetstream.WithMsgID("m"+strconv.Itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case <-nc.JS.PublishAsyncComplete():
		case <-time.After(time.Minute):
			t.Fatal("publish: no acknowledgement in a minute")
		}
		if r == rounds-1 {
			break
		}
		// Restart once the file's job has started on this batch: both
		// jobs are then reading, writing and publishing.
		waitLines(t, filepath.Join(dir, "out.jsonl"), r*perRound+1, fileDone)
		srv.Restart(t)
	}
	if err := <-fileDone; err != nil {
		t.Fatalf("convert into a file: %v\n%s", err, fileOut)
	}
	if err := <-streamDone; err != nil {
		t.Fatalf("convert into a stream: %v\n%s", err, streamOut)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "out.jsonl"))
	if !bytes.Equal(got, wantLines(total)) {
		t.Fatalf("out.jsonl is not messages 1..%d once each in order:\n%s", total, firstLines(got, 5))
	}
	checkStream(t, dst, total)
}

func firstLines(b []byte, n int) string {
	lines := strings.SplitN(string(b), "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}

// An unbounded run stops on SIGINT with a checkpoint (exit 75), also while
// the stream is idle; run again with --until now it drains what came
// since and finishes.
func TestStreamCLISignal(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the built ckpt binary: skipped with -short")
	}
	c := buildCLI(t)
	nc := testenv.NewNATS(t)
	s := nc.NewStream(t, 0)
	for i := 1; i <= 100; i++ {
		s.Publish(t, s.Subject+".x", fmt.Appendf(nil, `{"n":%d}`, i))
	}
	dir := t.TempDir()
	cmd := exec.Command(c.bin, "convert", s.Address(""), "out.jsonl", "--no-progress")
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// The 100 messages are read and checkpointed (the interval trigger
	// fires on the idle stream), then the stream is idle.
	waitLines(t, filepath.Join(dir, "out.jsonl"), 100, done)
	cmd.Process.Signal(os.Interrupt)
	err := <-done
	if cmd.ProcessState.ExitCode() != exitInterrupted {
		t.Fatalf("SIGINT on an idle stream: %v, exit %d, want %d\n%s", err, cmd.ProcessState.ExitCode(), exitInterrupted, out.String())
	}
	for i := 101; i <= 150; i++ {
		s.Publish(t, s.Subject+".x", fmt.Appendf(nil, `{"n":%d}`, i))
	}
	if code, out := c.run(dir, "convert", s.Address(""), "out.jsonl", "--until", "now", "--no-progress"); code != 0 {
		t.Fatalf("drain: exit %d\n%s", code, out)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "out.jsonl"))
	if !bytes.Equal(got, wantLines(150)) {
		t.Fatalf("out.jsonl is not messages 1..150 once each:\n%s", got)
	}
}
