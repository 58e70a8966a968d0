package ckpt_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/codec"
	"github.com/ckptdev/ckpt/store"
)

type counterState struct {
	Next  int            `json:"next"`
	Sum   int64          `json:"sum"`
	Words map[string]int `json:"words,omitempty"`
}

func randomText(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n/2)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openJob(t *testing.T, dir string, cfg ckpt.Config) *ckpt.Job[counterState] {
	t.Helper()
	cfg.Store = dir
	cfg.NoSignals = true
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	j, err := ckpt.Open[counterState](context.Background(), "count", cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func listSeqs(t *testing.T, st store.Store, job string) []ckpt.Entry {
	t.Helper()
	entries, err := ckpt.List(context.Background(), st, job)
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

// run processes records [State.Next, stop) and checkpoints every 10.
func run(t *testing.T, j *ckpt.Job[counterState], stop int) {
	t.Helper()
	ctx := context.Background()
	for i := j.State.Next; i < stop; i++ {
		j.State.Sum += int64(i)
		j.State.Next = i + 1
		if err := j.Advance(ctx, 1, 8); err != nil {
			t.Fatalf("advance: %v", err)
		}
	}
}

func TestResumeRestoresStateAndCounters(t *testing.T) {
	dir := t.TempDir()
	j := openJob(t, dir, ckpt.Config{Every: ckpt.Every{Records: 10}})
	if j.Resumed() != nil {
		t.Fatal("fresh job claims to have resumed")
	}
	run(t, j, 95) // checkpoints at 10, 20, ..., 90
	j.Close()

	j = openJob(t, dir, ckpt.Config{Every: ckpt.Every{Records: 10}})
	cp := j.Resumed()
	if cp == nil || cp.Seq != 9 || cp.Trigger != ckpt.TriggerRecords {
		t.Fatalf("resumed from %+v, want seq 9 by records", cp)
	}
	if j.State.Next != 90 || j.Records() != 90 || j.Bytes() != 720 {
		t.Fatalf("state %+v records %d bytes %d, want next 90, 90 records, 720 bytes", j.State, j.Records(), j.Bytes())
	}
	run(t, j, 200)
	if _, err := j.Finish(context.Background()); err != nil {
		t.Fatal(err)
	}
	j.Close()

	var want int64
	for i := range 200 {
		want += int64(i)
	}
	j = openJob(t, dir, ckpt.Config{})
	if !j.Done() || j.State.Sum != want {
		t.Fatalf("after finish: done=%v sum=%d, want done and %d", j.Done(), j.State.Sum, want)
	}
}

func TestRetentionKeepsNewestAndSavepoints(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	j := openJob(t, dir, ckpt.Config{Retain: 2})
	for i := range 6 {
		j.State.Next = i
		j.State.Words = map[string]int{randomText(t, 10000): i} // incompressible: needs a blob
		var err error
		if i == 1 {
			_, err = j.Savepoint(ctx, "before-upgrade")
		} else {
			_, err = j.Checkpoint(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	st := j.Store()
	entries, err := ckpt.List(ctx, st, "count")
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, e := range entries {
		seqs = append(seqs, e.Seq)
	}
	if len(seqs) != 3 || seqs[0] != 2 || seqs[1] != 5 || seqs[2] != 6 {
		t.Fatalf("kept %v, want [2 5 6] (savepoint 2 and the newest two)", seqs)
	}
	if !entries[0].Checkpoint.Savepoint || entries[0].Checkpoint.Label != "before-upgrade" {
		t.Fatalf("checkpoint 2 = %+v, want the labelled savepoint", entries[0].Checkpoint)
	}
	// Exactly the blobs of the kept checkpoints remain.
	want := map[string]bool{}
	for _, e := range entries {
		for _, s := range e.Checkpoint.State {
			for _, c := range s.Chunks {
				if c.Data == nil {
					want[c.ID] = true
				}
			}
		}
	}
	blobs, err := os.ReadDir(filepath.Join(dir, "jobs", "count", "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	if len(blobs) != len(want) || len(want) == 0 {
		t.Fatalf("%d blobs in the store, want %d", len(blobs), len(want))
	}
	for _, b := range blobs {
		if !want[b.Name()] {
			t.Errorf("blob %s is referenced by no kept checkpoint", b.Name())
		}
	}
}

func TestSecondWriterIsRefused(t *testing.T) {
	dir := t.TempDir()
	openJob(t, dir, ckpt.Config{})
	_, err := ckpt.Open[counterState](context.Background(), "count", ckpt.Config{Store: dir, NoSignals: true, Logger: quietLogger()})
	var le *store.LockedError
	if !errors.Is(err, ckpt.ErrLocked) || !errors.As(err, &le) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	if le.Holder.PID != os.Getpid() || !strings.Contains(err.Error(), "pid ") {
		t.Fatalf("error %q does not name the holder", err)
	}
}

func TestCodecs(t *testing.T) {
	for _, c := range []codec.Codec{codec.JSON{}, codec.Gob{}} {
		for _, uncompressed := range []bool{false, true} {
			t.Run(c.Name(), func(t *testing.T) {
				dir := t.TempDir()
				cfg := ckpt.Config{Codec: c, Uncompressed: uncompressed}
				j := openJob(t, dir, cfg)
				j.State = counterState{Next: 7, Sum: -3, Words: map[string]int{"a": 1, "b": 2}}
				cp, err := j.Checkpoint(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if cp.State[0].Codec != c.Name() {
					t.Fatalf("codec recorded %q", cp.State[0].Codec)
				}
				j.Close()
				j = openJob(t, dir, cfg)
				if j.State.Next != 7 || j.State.Sum != -3 || j.State.Words["b"] != 2 {
					t.Fatalf("restored %+v", j.State)
				}
			})
		}
	}
}

// A checkpoint records how long taking it took, from the flush of the
// output to its manifest's write, so that its history can be read as
// Flink's checkpoint tab shows it.
func TestCheckpointRecordsItsDuration(t *testing.T) {
	dir := t.TempDir()
	j, err := ckpt.Open[counterState](context.Background(), "timed", ckpt.Config{Store: dir, NoSignals: true})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	j.State.Sum = 42
	cp, err := j.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	st, err := ckpt.OpenStore(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	entries, err := ckpt.List(context.Background(), st, "timed")
	if err != nil || len(entries) != 1 || entries[0].Checkpoint == nil {
		t.Fatalf("list: %v, %+v", err, entries)
	}
	got := entries[0].Checkpoint.Duration
	if got <= 0 || got != cp.Duration {
		t.Errorf("recorded duration %v, returned %v: want the same, above zero", got, cp.Duration)
	}
}
