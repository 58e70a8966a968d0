package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/pipeline"
	"github.com/ckptdev/ckpt/sink"
	"github.com/ckptdev/ckpt/source"
	"github.com/ckptdev/ckpt/store"
)

type sums struct {
	Rows  int64
	Total int64
}

func config(t *testing.T, dir string) pipeline.Config {
	t.Helper()
	return pipeline.Config{Job: "job", Config: ckpt.Config{
		Store:     filepath.Join(dir, "store"),
		NoSignals: true,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// numbers writes a CSV of n rows "i,i*10".
func numbers(t *testing.T, path string, n int) {
	t.Helper()
	var b strings.Builder
	b.WriteString("i,v\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "%d,%d\n", i, i*10)
	}
	writeFile(t, path, b.String())
}

// sumRows adds the second column and writes one output line per row;
// stopAt > 0 cancels the context after that many calls in this run.
func sumRows(cancel context.CancelFunc, stopAt int) pipeline.Func[sums, *source.Row, *sink.File] {
	calls := 0
	return func(ctx context.Context, row *source.Row, st *sums, out *sink.File) error {
		var v int64
		if _, err := fmt.Sscan(string(row.Fields[1]), &v); err != nil {
			return &source.RecordError{File: row.File, Line: row.Line, Err: fmt.Errorf("not a number: %q", row.Fields[1])}
		}
		st.Rows++
		st.Total += v
		if _, err := fmt.Fprintf(out, "%s=%d\n", row.Fields[0], st.Total); err != nil {
			return err
		}
		if calls++; calls == stopAt {
			cancel()
		}
		return nil
	}
}

func TestRunResumesAfterCancelExactlyOnce(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.csv"), filepath.Join(dir, "out.txt")
	const n = 5000
	numbers(t, in, n)
	cfg := config(t, dir)
	cfg.Every = ckpt.Every{Records: 97}

	// Reference: one uninterrupted run of another job.
	ref := cfg
	ref.Job = "ref"
	refOut := filepath.Join(dir, "ref.txt")
	if _, err := pipeline.Run(context.Background(), ref, pipeline.CSV(in), pipeline.File(refOut), sumRows(nil, 0)); err != nil {
		t.Fatal(err)
	}

	// Stop it three times: the runner notices a cancelled context within
	// a batch of records, takes a checkpoint and returns; each resume goes
	// on from it.
	for _, stop := range []int{123, 1, 400} {
		ctx, cancel := context.WithCancel(context.Background())
		_, err := pipeline.Run(ctx, cfg, pipeline.CSV(in), pipeline.File(out), sumRows(cancel, stop))
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("stopped run: %v, want context.Canceled", err)
		}
	}
	res, err := pipeline.Run(context.Background(), cfg, pipeline.CSV(in), pipeline.File(out), sumRows(nil, 0))
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed == nil || res.Records != n || !res.Final.Final {
		t.Fatalf("result %+v: want a resumed run ending at %d records", res, n)
	}
	if got, want := readFile(t, out), readFile(t, refOut); got != want {
		t.Fatalf("output differs from the uninterrupted run's (%d vs %d bytes)", len(got), len(want))
	}
	// The state came through every resume exactly once.
	cp, err := ckpt.Latest(context.Background(), openStore(t, cfg), "job", nil)
	if err != nil {
		t.Fatal(err)
	}
	var st struct{ User sums }
	if err := ckpt.Load(context.Background(), openStore(t, cfg), cp, &st); err != nil {
		t.Fatal(err)
	}
	if st.User.Rows != n || st.User.Total != 10*n*(n+1)/2 {
		t.Fatalf("final state %+v", st.User)
	}

	_, err = pipeline.Run(context.Background(), cfg, pipeline.CSV(in), pipeline.File(out), sumRows(nil, 0))
	if !errors.Is(err, pipeline.ErrAlreadyDone) {
		t.Fatalf("rerun of a finished job: %v, want ErrAlreadyDone", err)
	}
}

func openStore(t *testing.T, cfg pipeline.Config) store.Store {
	t.Helper()
	st, err := ckpt.OpenStore(context.Background(), cfg.Store, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestBadRecordPolicies(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.csv")
	writeFile(t, in, "i,v\n1,10\n2,x\n3,30\n4,\"unterminated\n")

	t.Run("fail names file and line", func(t *testing.T) {
		cfg := config(t, dir)
		cfg.Job = "fail"
		_, err := pipeline.Run(context.Background(), cfg, pipeline.CSV(in), pipeline.File(filepath.Join(dir, "fail.txt")), sumRows(nil, 0))
		var re *source.RecordError
		if !errors.As(err, &re) || re.Line != 3 || !strings.Contains(err.Error(), "in.csv:3") {
			t.Fatalf("err = %v, want a RecordError at in.csv:3", err)
		}
	})
	t.Run("skip counts", func(t *testing.T) {
		cfg := config(t, dir)
		cfg.Job, cfg.OnBadRecord = "skip", pipeline.Skip
		res, err := pipeline.Run(context.Background(), cfg, pipeline.CSV(in), pipeline.File(filepath.Join(dir, "skip.txt")), sumRows(nil, 0))
		if err != nil {
			t.Fatal(err)
		}
		if res.Skipped != 2 || res.Records != 4 {
			t.Fatalf("skipped %d of %d records, want 2 of 4", res.Skipped, res.Records)
		}
		if got := readFile(t, filepath.Join(dir, "skip.txt")); got != "1=10\n3=40\n" {
			t.Fatalf("output %q", got)
		}
	})
	t.Run("dead-letter keeps the raw record and the reason", func(t *testing.T) {
		cfg := config(t, dir)
		dl := filepath.Join(dir, "rejects.jsonl")
		cfg.Job, cfg.OnBadRecord, cfg.DeadLetterPath = "dl", pipeline.DeadLetter, dl
		res, err := pipeline.Run(context.Background(), cfg, pipeline.CSV(in), pipeline.File(filepath.Join(dir, "dl.txt")), sumRows(nil, 0))
		if err != nil {
			t.Fatal(err)
		}
		got := readFile(t, dl)
		lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
		if res.DeadLettered != 2 || len(lines) != 2 {
			t.Fatalf("%d dead letters, file:\n%s", res.DeadLettered, got)
		}
		if !strings.Contains(lines[0], `"line":3`) || !strings.Contains(lines[0], `not a number: \"x\"`) {
			t.Errorf("first dead letter: %s", lines[0])
		}
		if !strings.Contains(lines[1], `"line":5`) || !strings.Contains(lines[1], `"record":"4,\"unterminated"`) || !strings.Contains(lines[1], "not closed") {
			t.Errorf("second dead letter: %s", lines[1])
		}
	})
	t.Run("dead-letter needs a file", func(t *testing.T) {
		cfg := config(t, dir)
		cfg.Job, cfg.OnBadRecord = "dl2", pipeline.DeadLetter
		if _, err := pipeline.Run(context.Background(), cfg, pipeline.CSV(in), pipeline.File(filepath.Join(dir, "x.txt")), sumRows(nil, 0)); err == nil {
			t.Fatal("no error without a dead-letter file")
		}
	})
}

func TestOtherErrorsStopWithoutLosingTheCheckpoint(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.csv"), filepath.Join(dir, "out.txt")
	numbers(t, in, 100)
	cfg := config(t, dir)
	cfg.Every = ckpt.Every{Records: 10}
	boom := errors.New("boom")
	calls := 0
	_, err := pipeline.Run(context.Background(), cfg, pipeline.CSV(in), pipeline.File(out),
		func(ctx context.Context, row *source.Row, st *sums, w *sink.File) error {
			if calls++; calls == 55 {
				return boom
			}
			st.Rows++
			_, err := fmt.Fprintf(w, "%s\n", row.Fields[0])
			return err
		})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the function's error", err)
	}
	res, err := pipeline.Run(context.Background(), cfg, pipeline.CSV(in), pipeline.File(out),
		func(ctx context.Context, row *source.Row, st *sums, w *sink.File) error {
			st.Rows++
			_, err := fmt.Fprintf(w, "%s\n", row.Fields[0])
			return err
		})
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed == nil || res.Resumed.Records != 50 {
		t.Fatalf("resumed from %+v, want the checkpoint at record 50", res.Resumed)
	}
	var want strings.Builder
	for i := 1; i <= 100; i++ {
		fmt.Fprintf(&want, "%d\n", i)
	}
	if got := readFile(t, out); got != want.String() {
		t.Fatalf("output after resume:\n%s", got)
	}
}

func TestAtEndAndProgress(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	writeFile(t, in, "a\nbb\n\nccc\n")
	cfg := config(t, dir)
	var mu sync.Mutex
	var last pipeline.Progress
	cfg.Progress = func(p pipeline.Progress) {
		mu.Lock()
		last = p
		mu.Unlock()
	}
	res, err := pipeline.Run(context.Background(), cfg, pipeline.Lines(in), pipeline.File(filepath.Join(dir, "out.txt")),
		func(ctx context.Context, l *source.Line, n *int, w *sink.File) error {
			*n += len(l.Text)
			return nil
		},
		pipeline.AtEnd(func(ctx context.Context, n *int, w *sink.File) error {
			_, err := fmt.Fprintf(w, "total %d\n", *n)
			return err
		}))
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "out.txt")); got != "total 6\n" || res.Records != 4 {
		t.Fatalf("output %q, %d records", got, res.Records)
	}
	mu.Lock()
	defer mu.Unlock()
	if !last.Done || last.Records != 4 || last.Consumed != 10 || last.Size != 10 {
		t.Fatalf("last progress %+v, want done, 4 records, 10 of 10 bytes", last)
	}
}

// Progress is reported from its own goroutine while records are
// processed, from the first one on (under -race, a field of the run set
// after that goroutine started shows as a race).
func TestProgressWhileRecordsAreProcessed(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	writeFile(t, in, "a\nbb\n")
	cfg := config(t, dir)
	cfg.ProgressEvery = time.Nanosecond
	reported := make(chan struct{})
	var once sync.Once
	cfg.Progress = func(p pipeline.Progress) {
		if !p.Done {
			once.Do(func() { close(reported) })
		}
	}
	res, err := pipeline.Run(context.Background(), cfg, pipeline.Lines(in), pipeline.File(filepath.Join(dir, "out.txt")),
		func(ctx context.Context, l *source.Line, n *int, w *sink.File) error {
			<-reported // a report made while the run goes on
			*n += len(l.Text)
			return nil
		})
	if err != nil || res.Records != 2 {
		t.Fatalf("run: %v, %d records; want 2", err, res.Records)
	}
}

func TestChangedInputAndOutputAreRefused(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.csv"), filepath.Join(dir, "out.txt")
	numbers(t, in, 3000)
	cfg := config(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := pipeline.Run(ctx, cfg, pipeline.CSV(in), pipeline.File(out), sumRows(cancel, 30)); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	// The output loses its tail: refused.
	if err := os.Truncate(out, 10); err != nil {
		t.Fatal(err)
	}
	_, err := pipeline.Run(context.Background(), cfg, pipeline.CSV(in), pipeline.File(out), sumRows(nil, 0))
	if !errors.Is(err, sink.ErrOutputChanged) || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("resume into a truncated output: %v", err)
	}
	// Start over, stop again, then change the input: refused.
	cfg.Restart = true
	ctx, cancel = context.WithCancel(context.Background())
	if _, err := pipeline.Run(ctx, cfg, pipeline.CSV(in), pipeline.File(out), sumRows(cancel, 30)); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	cfg.Restart = false
	numbers(t, in, 3001)
	_, err = pipeline.Run(context.Background(), cfg, pipeline.CSV(in), pipeline.File(out), sumRows(nil, 0))
	if !errors.Is(err, source.ErrInputChanged) {
		t.Fatalf("resume on changed input: %v", err)
	}
}

// A finished job run again on the same input only says so; on input that
// changed since (a file rewritten with new data), it must not claim to be
// done and leave the new data unprocessed.
func TestFinishedJobOnChangedInput(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.csv"), filepath.Join(dir, "out.txt")
	numbers(t, in, 20)
	cfg := config(t, dir)
	if _, err := pipeline.Run(context.Background(), cfg, pipeline.CSV(in), pipeline.File(out), sumRows(nil, 0)); err != nil {
		t.Fatal(err)
	}
	res, err := pipeline.Run(context.Background(), cfg, pipeline.CSV(in), pipeline.File(out), sumRows(nil, 0))
	if !errors.Is(err, pipeline.ErrAlreadyDone) || res.Final == nil || res.Records != 20 {
		t.Fatalf("rerun on the same input: %v, %+v; want ErrAlreadyDone at 20 records", err, res)
	}
	numbers(t, in, 30)
	_, err = pipeline.Run(context.Background(), cfg, pipeline.CSV(in), pipeline.File(out), sumRows(nil, 0))
	if !errors.Is(err, source.ErrInputChanged) || errors.Is(err, pipeline.ErrAlreadyDone) || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("rerun on changed input: %v, want ErrInputChanged with a hint to restart", err)
	}
	cfg.Restart = true
	if res, err := pipeline.Run(context.Background(), cfg, pipeline.CSV(in), pipeline.File(out), sumRows(nil, 0)); err != nil || res.Records != 30 {
		t.Fatalf("restart: %v, %d records", err, res.Records)
	}
}

// Params that differ from the checkpoint's are refused, whether the job is
// unfinished or finished; the same ones resume.
func TestChangedParamsAreRefused(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.csv"), filepath.Join(dir, "out.txt")
	numbers(t, in, 3000)
	cfg := config(t, dir)
	cfg.Params = map[string]string{"mode": "a", "cols": "x"}
	cfg.Metadata = map[string]string{"owner": "etl"}
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := pipeline.Run(ctx, cfg, pipeline.CSV(in), pipeline.File(out), sumRows(cancel, 30)); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if len(cfg.Metadata) != 1 {
		t.Fatalf("Run changed the caller's metadata: %v", cfg.Metadata)
	}
	for _, params := range []map[string]string{
		{"mode": "b", "cols": "x"},
		{"mode": "a"},
		{"mode": "a", "cols": "x", "more": "1"},
		nil,
	} {
		c := cfg
		c.Params = params
		_, err := pipeline.Run(context.Background(), c, pipeline.CSV(in), pipeline.File(out), sumRows(nil, 0))
		if !errors.Is(err, pipeline.ErrParamsChanged) || !strings.Contains(err.Error(), "restart") {
			t.Errorf("resume with params %v: %v, want ErrParamsChanged", params, err)
		}
	}
	res, err := pipeline.Run(context.Background(), cfg, pipeline.CSV(in), pipeline.File(out), sumRows(nil, 0))
	if err != nil || res.Resumed == nil || res.Final.Metadata["param.mode"] != "a" || res.Final.Metadata["owner"] != "etl" {
		t.Fatalf("resume with the same params: %v, %+v", err, res)
	}
	c := cfg
	c.Params = map[string]string{"mode": "b", "cols": "x"}
	if _, err := pipeline.Run(context.Background(), c, pipeline.CSV(in), pipeline.File(out), sumRows(nil, 0)); !errors.Is(err, pipeline.ErrParamsChanged) {
		t.Fatalf("finished job run with other params: %v, want ErrParamsChanged", err)
	}
}

// The bad-record policy may change between runs (a run stopped by a bad
// record is resumed with skip or dead-letter, as the error suggests). A
// run without the dead-letter file keeps its position, so that a later
// dead-letter run appends to the letters written before instead of
// starting the file over.
func TestDeadLettersSurviveARunWithAnotherPolicy(t *testing.T) {
	dir := t.TempDir()
	in, out, dl := filepath.Join(dir, "in.csv"), filepath.Join(dir, "out.txt"), filepath.Join(dir, "rejects.jsonl")
	writeFile(t, in, "i,v\n1,10\n2,x\n3,30\n4,40\n5,y\n6,60\n")
	cfg := config(t, dir)
	cfg.Every = ckpt.Every{Records: 1}
	cfg.DeadLetterPath = dl
	stop := errors.New("stop")
	sum := sumRows(nil, 0)
	stopAt4 := func(ctx context.Context, row *source.Row, st *sums, w *sink.File) error {
		if string(row.Fields[0]) == "4" {
			return stop
		}
		return sum(ctx, row, st, w)
	}
	// Run 1 dead-letters row 2 and stops at row 4.
	cfg.OnBadRecord = pipeline.DeadLetter
	if _, err := pipeline.Run(context.Background(), cfg, pipeline.CSV(in), pipeline.File(out), stopAt4); !errors.Is(err, stop) {
		t.Fatalf("run 1: %v", err)
	}
	// Run 2, failing on bad records, stops at row 5.
	cfg.OnBadRecord = pipeline.Fail
	var re *source.RecordError
	if _, err := pipeline.Run(context.Background(), cfg, pipeline.CSV(in), pipeline.File(out), sum); !errors.As(err, &re) || re.Line != 6 {
		t.Fatalf("run 2: %v, want the bad record on line 6", err)
	}
	// Run 3 dead-letters row 5 and ends.
	cfg.OnBadRecord = pipeline.DeadLetter
	res, err := pipeline.Run(context.Background(), cfg, pipeline.CSV(in), pipeline.File(out), sum)
	if err != nil || res.DeadLettered != 2 {
		t.Fatalf("run 3: %v, %d dead letters", err, res.DeadLettered)
	}
	letters := strings.Split(strings.TrimSuffix(readFile(t, dl), "\n"), "\n")
	if len(letters) != 2 || !strings.Contains(letters[0], `"line":3`) || !strings.Contains(letters[1], `"line":6`) {
		t.Fatalf("dead letters:\n%s", strings.Join(letters, "\n"))
	}
	if got := readFile(t, out); got != "1=10\n3=40\n4=80\n6=140\n" {
		t.Fatalf("output %q", got)
	}
}
