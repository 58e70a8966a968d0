package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/pipeline"
	"github.com/ckptdev/ckpt/sink"
	"github.com/ckptdev/ckpt/store/filestore"
	"github.com/ckptdev/ckpt/stream"
)

// growing is an unbounded source over a slice that the test extends: its
// Next returns stream.ErrIdle past the end, after telling idle.
type growing struct {
	recs []int
	next int
	idle chan struct{}
}

func (g *growing) Next() (int, error) {
	if g.next >= len(g.recs) {
		select {
		case g.idle <- struct{}{}:
		default:
		}
		return 0, stream.ErrIdle
	}
	g.next++
	return g.recs[g.next-1], nil
}

func (g *growing) Position() (json.RawMessage, error) { return json.Marshal(g.next) }
func (g *growing) Close() error                       { return nil }
func (g *growing) Lag() int64                         { return int64(len(g.recs) - g.next) }

// An unbounded source stops, when its run is cancelled while it is idle,
// with a checkpoint of what it read; the next run goes on from there.
func TestIdleSourceStops(t *testing.T) {
	dir := t.TempDir()
	cfg := config(t, dir)
	out := filepath.Join(dir, "out.txt")
	g := &growing{recs: []int{1, 2, 3, 4, 5}, idle: make(chan struct{}, 1)}
	open := func(_ context.Context, pos json.RawMessage) (pipeline.Source[int], error) {
		if pos != nil {
			if err := json.Unmarshal(pos, &g.next); err != nil {
				return nil, err
			}
		}
		return g, nil
	}
	write := func(ctx context.Context, n int, st *int, w *sink.File) error {
		*st += n
		_, err := fmt.Fprintf(w, "%d\n", n)
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	var lags []int64
	cfg.Progress = func(p pipeline.Progress) {
		if !p.Stream {
			t.Error("progress of a Lagging source is not a stream's")
		}
		lags = append(lags, p.Lag)
	}
	go func() { <-g.idle; cancel() }()
	_, err := pipeline.Run(ctx, cfg, open, pipeline.File(out), write)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("run: %v, want context.Canceled", err)
	}
	if len(lags) == 0 || lags[len(lags)-1] != 0 {
		t.Errorf("lags reported %v, want a last one of 0", lags)
	}
	st, err := filestore.Open(filepath.Join(dir, "store"), filestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cp, err := ckpt.Latest(context.Background(), st, "job", nil)
	if err != nil || cp.Records != 5 || string(cp.Source) != "5" {
		t.Fatalf("checkpoint after the stop: %+v, %v; want 5 records at position 5", cp, err)
	}
	// More records, and a run that ends at the next idle.
	g.recs = append(g.recs, 6, 7)
	g.next = 0
	g.idle = make(chan struct{}, 1) // not the first run's idle
	ctx, cancel = context.WithCancel(context.Background())
	go func() { <-g.idle; cancel() }()
	cfg.Progress = nil
	if _, err := pipeline.Run(ctx, cfg, open, pipeline.File(out), write); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if got := readFile(t, out); got != "1\n2\n3\n4\n5\n6\n7\n" {
		t.Errorf("output %q", got)
	}
}

// firstOut is a file output that asks for a checkpoint before the first
// record.
type firstOut struct{ path string }

func (f firstOut) Open(ctx context.Context, pos json.RawMessage, in []string) (*checkFirst, error) {
	w, err := pipeline.File(f.path).Open(ctx, pos, in)
	return &checkFirst{w}, err
}
func (f firstOut) Verify(ctx context.Context, pos json.RawMessage) error {
	return pipeline.File(f.path).Verify(ctx, pos)
}

type checkFirst struct{ *sink.File }

func (*checkFirst) CheckpointFirst() bool { return true }

// An output that is a CheckpointFirst gets a checkpoint before the first
// record of a job that starts from the beginning.
func TestCheckpointFirst(t *testing.T) {
	dir := t.TempDir()
	cfg := config(t, dir)
	seen := 0
	open := func(_ context.Context, pos json.RawMessage) (pipeline.Source[int], error) {
		return &slice{n: 3}, nil
	}
	_, err := pipeline.Run(context.Background(), cfg, open, firstOut{filepath.Join(dir, "out.txt")},
		func(ctx context.Context, n int, _ *int, w *checkFirst) error {
			seen++
			_, err := fmt.Fprintf(w, "%d\n", n)
			return err
		})
	if err != nil || seen != 3 {
		t.Fatalf("run: %v, %d records", err, seen)
	}
	st, err := filestore.Open(filepath.Join(dir, "store"), filestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	entries, err := ckpt.List(context.Background(), st, "job")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[0].Checkpoint.Records != 0 || entries[0].Checkpoint.Trigger != ckpt.TriggerManual || !entries[1].Checkpoint.Final {
		for _, e := range entries {
			t.Logf("checkpoint %d: %+v", e.Seq, e.Checkpoint)
		}
		t.Fatal("want a checkpoint of 0 records before the final one")
	}
}

// slice is a bounded source of 1..n.
type slice struct{ i, n int }

func (s *slice) Next() (int, error) {
	if s.i >= s.n {
		return 0, io.EOF
	}
	s.i++
	return s.i, nil
}
func (s *slice) Position() (json.RawMessage, error) { return []byte(strconv.Itoa(s.i)), nil }
func (s *slice) Close() error                       { return nil }
