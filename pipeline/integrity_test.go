package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt/pipeline"
	"github.com/ckptdev/ckpt/sink"
	"github.com/ckptdev/ckpt/source"
)

// TestFinishedJobChecksItsOutput: a finished job whose output was
// deleted, emptied, cut, appended to or replaced since is not reported
// complete: the rerun says what it found, and leaves the file alone.
func TestFinishedJobChecksItsOutput(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, out string)
		says   string
	}{
		{"deleted", func(t *testing.T, out string) { os.Remove(out) }, "no longer exists"},
		{"emptied", func(t *testing.T, out string) { writeFile(t, out, "") }, "is 0 bytes"},
		{"cut", func(t *testing.T, out string) { os.Truncate(out, 10) }, "is 10 bytes"},
		{"appended to", func(t *testing.T, out string) { writeFile(t, out, readFile(t, out)+"x\n") }, "bytes; the job wrote"},
		{"replaced", func(t *testing.T, out string) {
			writeFile(t, out, strings.Replace(readFile(t, out), "1=10", "1=11", 1))
		}, "differs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			in, out := filepath.Join(dir, "in.csv"), filepath.Join(dir, "out.txt")
			numbers(t, in, 20)
			cfg := config(t, dir)
			if _, err := pipeline.Run(context.Background(), cfg, pipeline.CSV(in), pipeline.File(out), sumRows(nil, 0)); err != nil {
				t.Fatal(err)
			}
			tc.change(t, out)
			before, _ := os.ReadFile(out)
			_, err := pipeline.Run(context.Background(), cfg, pipeline.CSV(in), pipeline.File(out), sumRows(nil, 0))
			if errors.Is(err, pipeline.ErrAlreadyDone) || !errors.Is(err, sink.ErrOutputChanged) || !strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), "restart") {
				t.Fatalf("rerun: %v, want ErrOutputChanged saying %q and to restart", err, tc.says)
			}
			if after, _ := os.ReadFile(out); string(after) != string(before) {
				t.Errorf("the rerun changed the output")
			}
		})
	}
}

// TestFinishedJobChecksItsInput: a finished job rerun on input that is
// not there (a misspelled name, a pattern that matches nothing) says so
// instead of reporting the job complete.
func TestFinishedJobChecksItsInput(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.csv"), filepath.Join(dir, "out.txt")
	numbers(t, in, 20)
	cfg := config(t, dir)
	if _, err := pipeline.Run(context.Background(), cfg, pipeline.CSV(in), pipeline.File(out), sumRows(nil, 0)); err != nil {
		t.Fatal(err)
	}
	for _, input := range []string{filepath.Join(dir, "ni.csv"), filepath.Join(dir, "*.tsv")} {
		_, err := pipeline.Run(context.Background(), cfg, pipeline.CSV(input), pipeline.File(out), sumRows(nil, 0))
		if errors.Is(err, pipeline.ErrAlreadyDone) || !errors.Is(err, source.ErrNoInput) {
			t.Errorf("rerun on %s: %v, want ErrNoInput", input, err)
		}
	}
	if _, err := pipeline.Run(context.Background(), cfg, pipeline.CSV(in), pipeline.File(out), sumRows(nil, 0)); !errors.Is(err, pipeline.ErrAlreadyDone) {
		t.Errorf("rerun on the right input: %v, want ErrAlreadyDone", err)
	}
}

// TestTwoJobsOneOutput: a second job (another name, or another store)
// writing the output of a running one is refused; the first one's output
// is untouched.
func TestTwoJobsOneOutput(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.csv"), filepath.Join(dir, "out.txt")
	numbers(t, in, 20)
	first, second := config(t, dir), config(t, dir)
	second.Job, second.Store = "other", filepath.Join(dir, "store2")
	inside, release := make(chan struct{}), make(chan struct{})
	done := make(chan error)
	go func() {
		calls := 0
		fn := sumRows(nil, 0)
		_, err := pipeline.Run(context.Background(), first, pipeline.CSV(in), pipeline.File(out),
			func(ctx context.Context, row *source.Row, st *sums, w *sink.File) error {
				if calls++; calls == 10 {
					close(inside)
					<-release
				}
				return fn(ctx, row, st, w)
			})
		done <- err
	}()
	<-inside
	_, err := pipeline.Run(context.Background(), second, pipeline.CSV(in), pipeline.File(out), sumRows(nil, 0))
	close(release)
	if !errors.Is(err, sink.ErrOutputBusy) {
		t.Errorf("second writer: %v, want ErrOutputBusy", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("first job: %v", err)
	}
	ref := filepath.Join(dir, "ref.txt")
	refCfg := config(t, dir)
	refCfg.Job = "ref"
	if _, err := pipeline.Run(context.Background(), refCfg, pipeline.CSV(in), pipeline.File(ref), sumRows(nil, 0)); err != nil {
		t.Fatal(err)
	}
	if readFile(t, out) != readFile(t, ref) {
		t.Errorf("output %q, want %q", readFile(t, out), readFile(t, ref))
	}
}

// TestFilesToWriteThatAreRead: an output or a dead-letter file that is an
// input (by identity: a hard link, a symbolic link), or a dead-letter file
// that is the output, is refused with ErrOutputIsInput before anything is
// written.
func TestFilesToWriteThatAreRead(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.csv")
	numbers(t, in, 20)
	data := readFile(t, in)
	hard, soft := filepath.Join(dir, "hard.txt"), filepath.Join(dir, "soft.txt")
	if err := os.Link(in, hard); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(in, soft); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.txt")
	writeFile(t, out, "old output\n")
	outLink := filepath.Join(dir, "out-link.txt")
	if err := os.Symlink(out, outLink); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, out, deadLetter string }{
		{"output a hard link to the input", hard, ""},
		{"output a symbolic link to the input", soft, ""},
		{"dead letters into the input", filepath.Join(dir, "new.txt"), hard},
		{"dead letters into the output", out, outLink},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config(t, dir)
			cfg.Job, cfg.Restart = "j", true
			if tc.deadLetter != "" {
				cfg.OnBadRecord, cfg.DeadLetterPath = pipeline.DeadLetter, tc.deadLetter
			}
			_, err := pipeline.Run(context.Background(), cfg, pipeline.CSV(in), pipeline.File(tc.out), sumRows(nil, 0))
			if !errors.Is(err, pipeline.ErrOutputIsInput) {
				t.Fatalf("Run: %v, want ErrOutputIsInput", err)
			}
			if readFile(t, in) != data {
				t.Fatal("the input was changed")
			}
		})
	}
}

// TestStartAndResult: a run says where it starts (OnStart, with the
// checkpoint it resumes from) and ends with a summary of itself.
func TestStartAndResult(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.csv"), filepath.Join(dir, "out.txt")
	numbers(t, in, 50)
	cfg := config(t, dir)
	cfg.Every.Records = 10
	var starts []pipeline.Start
	cfg.OnStart = func(s pipeline.Start) { starts = append(starts, s) }
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := pipeline.Run(ctx, cfg, pipeline.CSV(in), pipeline.File(out), sumRows(cancel, 25)); !errors.Is(err, context.Canceled) {
		t.Fatalf("first run: %v", err)
	}
	res, err := pipeline.Run(context.Background(), cfg, pipeline.CSV(in), pipeline.File(out), sumRows(nil, 0))
	if err != nil {
		t.Fatal(err)
	}
	if len(starts) != 2 || starts[0].Resumed != nil || starts[1].Resumed == nil || starts[1].Records != starts[1].Resumed.Records || starts[1].Consumed <= 0 || starts[1].Size <= 0 {
		t.Fatalf("starts: %+v", starts)
	}
	from := starts[1].Resumed.Records
	if res.Resumed == nil || res.Resumed.Seq != starts[1].Resumed.Seq || res.Records != 50 || res.Read != 50-from ||
		res.Bytes != int64(len(readFile(t, in)))-starts[1].Consumed || res.Checkpoints < 1 || res.Duration <= 0 || res.Final == nil || res.Job != "job" {
		t.Fatalf("result %+v (resumed at record %d)", res, from)
	}
	if _, err := json.Marshal(res); err != nil {
		t.Fatalf("the result does not encode as JSON: %v", err)
	}
}

// lister is a source without byte counts, as a database cursor might be.
type lister struct {
	items []string
	i     int
}

func (l *lister) Next() (string, error) {
	if l.i == len(l.items) {
		return "", io.EOF
	}
	l.i++
	return l.items[l.i-1], nil
}

func (l *lister) Position() (json.RawMessage, error) { return json.Marshal(l.i) }
func (l *lister) Close() error                       { return nil }

// TestSourceWithoutSizes: a source need not count bytes.
func TestSourceWithoutSizes(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.txt")
	open := func(_ context.Context, pos json.RawMessage) (pipeline.Source[string], error) {
		l := &lister{items: []string{"a", "b", "c"}}
		if pos != nil {
			if err := json.Unmarshal(pos, &l.i); err != nil {
				return nil, err
			}
		}
		return l, nil
	}
	var last pipeline.Progress
	cfg := config(t, dir)
	cfg.Progress = func(p pipeline.Progress) { last = p }
	res, err := pipeline.Run(context.Background(), cfg, open, pipeline.File(out),
		func(ctx context.Context, s string, _ *struct{}, w *sink.File) error {
			_, err := w.WriteString(s + "\n")
			return err
		})
	if err != nil || res.Records != 3 || res.Bytes != -1 || readFile(t, out) != "a\nb\nc\n" {
		t.Fatalf("Run: %v, %+v, %q", err, res, readFile(t, out))
	}
	if !last.Done || last.Records != 3 || last.Size != -1 {
		t.Errorf("last progress %+v", last)
	}
}

// TestFinishedJobChecksItsDeadLetters: the dead-letter file of a finished
// job is checked like its output; one that held no letters may go.
func TestFinishedJobChecksItsDeadLetters(t *testing.T) {
	for _, bad := range []bool{true, false} {
		dir := t.TempDir()
		in, out, dl := filepath.Join(dir, "in.csv"), filepath.Join(dir, "out.txt"), filepath.Join(dir, "dl.jsonl")
		content := "i,v\n1,10\n2,20\n"
		if bad {
			content += "3,x\n"
		}
		writeFile(t, in, content)
		cfg := config(t, dir)
		cfg.OnBadRecord, cfg.DeadLetterPath = pipeline.DeadLetter, dl
		if _, err := pipeline.Run(context.Background(), cfg, pipeline.CSV(in), pipeline.File(out), sumRows(nil, 0)); err != nil {
			t.Fatal(err)
		}
		os.Remove(dl)
		_, err := pipeline.Run(context.Background(), cfg, pipeline.CSV(in), pipeline.File(out), sumRows(nil, 0))
		if bad && !errors.Is(err, sink.ErrOutputChanged) {
			t.Errorf("rerun without the dead letters: %v, want ErrOutputChanged", err)
		}
		if !bad && !errors.Is(err, pipeline.ErrAlreadyDone) {
			t.Errorf("rerun without the empty dead-letter file: %v, want ErrAlreadyDone", err)
		}
	}
}

// TestUnresumableOutputRefusedFirst: an output that cannot be truncated
// back to a checkpoint is refused before anything is created: no store,
// no job.
func TestUnresumableOutputRefusedFirst(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.csv")
	numbers(t, in, 5)
	for _, tc := range []struct{ out, deadLetter string }{{"/dev/null", ""}, {filepath.Join(dir, "out.txt"), "/dev/stderr"}} {
		cfg := config(t, dir)
		if tc.deadLetter != "" {
			cfg.OnBadRecord, cfg.DeadLetterPath = pipeline.DeadLetter, tc.deadLetter
		}
		_, err := pipeline.Run(context.Background(), cfg, pipeline.CSV(in), pipeline.File(tc.out), sumRows(nil, 0))
		if !errors.Is(err, sink.ErrNotResumable) {
			t.Errorf("Run into %s (dead letters %q): %v, want ErrNotResumable", tc.out, tc.deadLetter, err)
		}
		if _, err := os.Stat(cfg.Store); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the store was created: %v", err)
		}
	}
}

// TestDeadLettersNameTheInputAsTheFirstRunDid: a resume that names the
// input another way (from another directory, through a link) writes the
// dead letters an uninterrupted run writes, byte for byte.
func TestDeadLettersNameTheInputAsTheFirstRunDid(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.csv")
	var b strings.Builder
	b.WriteString("i,v\n")
	for i := 1; i <= 3000; i++ {
		if i%100 == 0 {
			b.WriteString("x,bad\n")
		} else {
			b.WriteString("1,1\n")
		}
	}
	writeFile(t, in, b.String())
	link := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	run := func(job, input, dl string, ctx context.Context, fn pipeline.Func[sums, *source.Row, *sink.File]) error {
		cfg := config(t, dir)
		cfg.Job, cfg.OnBadRecord, cfg.DeadLetterPath = job, pipeline.DeadLetter, dl
		cfg.Every.Records = 100
		_, err := pipeline.Run(ctx, cfg, pipeline.CSV(input), pipeline.File(filepath.Join(dir, job+".out")), fn)
		return err
	}
	refDL, dl := filepath.Join(dir, "ref.dl"), filepath.Join(dir, "job.dl")
	if err := run("ref", in, refDL, context.Background(), sumRows(nil, 0)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := run("job", in, dl, ctx, sumRows(cancel, 1500)); !errors.Is(err, context.Canceled) {
		t.Fatalf("first run: %v", err)
	}
	if err := run("job", filepath.Join(link, "in.csv"), dl, context.Background(), sumRows(nil, 0)); err != nil {
		t.Fatal(err)
	}
	if got, want := readFile(t, dl), readFile(t, refDL); got != want {
		t.Errorf("dead letters after a resume from elsewhere differ from an uninterrupted run's:\n%s\nwant\n%s", got, want)
	}
}
