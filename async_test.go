//go:build linux

package ckpt_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/store"
)

// This file drives the automatic checkpoints that Advance takes and
// commits in the background: what each trigger does, how a failed
// background commit reaches the caller, what a checkpoint captures while
// the job goes on, and the shutdown signal.

// gatedSink is an output whose Sync waits until gate is closed: a slow
// fsync, during which the job goes on. A Sync that the test cannot
// release (it runs in the caller's goroutine) fails after a minute
// instead of hanging the test: a guard against a hang, long enough that
// a loaded machine never reaches it while the test goes on.
type gatedSink struct{ gate chan struct{} }

func (s *gatedSink) Flush() (json.RawMessage, error) { return json.RawMessage(`{}`), nil }

func (s *gatedSink) Sync(ctx context.Context) error {
	select {
	case <-s.gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Minute):
		return errors.New("gatedSink: Sync was never released: it ran before the caller got control back")
	}
}

func TestTriggers(t *testing.T) {
	type want struct {
		trigger ckpt.Trigger
		records int64
	}
	cases := []struct {
		name        string
		every       ckpt.Every
		records     int
		perAdvance  int64 // bytes per record
		checkpoints []want
	}{
		{"off", ckpt.Every{}, 100, 10, nil},
		{"every 10 records", ckpt.Every{Records: 10}, 25, 1, []want{{ckpt.TriggerRecords, 10}, {ckpt.TriggerRecords, 20}}},
		{"every 100 bytes", ckpt.Every{Bytes: 100}, 10, 30, []want{{ckpt.TriggerBytes, 4}, {ckpt.TriggerBytes, 8}}},
		{"bytes before records", ckpt.Every{Records: 5, Bytes: 100}, 9, 30, []want{{ckpt.TriggerBytes, 4}, {ckpt.TriggerBytes, 8}}},
		{"records before bytes", ckpt.Every{Records: 3, Bytes: 100}, 7, 20, []want{{ckpt.TriggerRecords, 3}, {ckpt.TriggerRecords, 6}}},
		{"an interval not yet due", ckpt.Every{Interval: time.Hour}, 100, 1, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			j := openJob(t, dir, ckpt.Config{Every: tc.every})
			for i := range tc.records {
				j.State.Next = i + 1
				if err := j.Advance(context.Background(), 1, tc.perAdvance); err != nil {
					t.Fatal(err)
				}
			}
			if err := j.Wait(); err != nil {
				t.Fatal(err)
			}
			entries := listSeqs(t, j.Store(), "count")
			if len(entries) != len(tc.checkpoints) {
				t.Fatalf("%d checkpoints, want %d", len(entries), len(tc.checkpoints))
			}
			for i, e := range entries {
				cp, w := e.Checkpoint, tc.checkpoints[i]
				if cp.Trigger != w.trigger || cp.Records != w.records {
					t.Errorf("checkpoint %d: trigger %v after %d records, want %v after %d", cp.Seq, cp.Trigger, cp.Records, w.trigger, w.records)
				}
				var s counterState
				if err := ckpt.Load(context.Background(), j.Store(), cp, &s); err != nil || int64(s.Next) != cp.Records {
					t.Errorf("checkpoint %d holds state %+v (%v), want the state after %d records", cp.Seq, s, err, cp.Records)
				}
			}
		})
	}
}

// A background commit that fails leaves the checkpoint before it the
// newest, and its error reaches the caller once, by whichever call comes
// next: Wait, the next checkpoint, or Close. The job then goes on and
// commits the same sequence number.
func TestBackgroundCommitFailure(t *testing.T) {
	cases := []struct {
		name   string
		report func(j *ckpt.Job[counterState]) error
	}{
		{"Wait", func(j *ckpt.Job[counterState]) error { return j.Wait() }},
		{"the next checkpoint", func(j *ckpt.Job[counterState]) error { return j.Advance(context.Background(), 1, 0) }},
		{"Close", func(j *ckpt.Job[counterState]) error { return j.Close() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dir := filepath.Join(t.TempDir(), "store")
			// The manifests live on a filesystem of their own, which goes
			// read-only: the state is inline, so the commit point is the
			// only write, and it happens in the background.
			manifests := filepath.Join(dir, "jobs", "count", "checkpoints")
			mountTmpfs(t, manifests, 1<<20)
			j := openJob(t, dir, ckpt.Config{Every: ckpt.Every{Records: 1}})
			j.State.Next = 1
			if err := j.Advance(ctx, 1, 0); err != nil {
				t.Fatal(err)
			}
			if err := j.Wait(); err != nil {
				t.Fatal(err)
			}
			remount(t, manifests, true)
			j.State.Next = 2
			if err := j.Advance(ctx, 1, 0); err != nil {
				t.Fatalf("Advance returned %v: the commit should run in the background", err)
			}
			err := tc.report(j)
			if !errors.Is(err, syscall.EROFS) {
				t.Fatalf("%s after a failed background commit: %v, want EROFS", tc.name, err)
			}
			if err := j.Wait(); err != nil {
				t.Fatalf("the error was reported a second time: %v", err)
			}
			st := openFileStore(t, dir)
			checkNewest := func(seq uint64, next int) {
				t.Helper()
				cp, err := ckpt.Latest(ctx, st, "count", quietLogger())
				if err != nil {
					t.Fatal(err)
				}
				var s counterState
				if err := ckpt.Load(ctx, st, cp, &s); err != nil {
					t.Fatal(err)
				}
				if cp.Seq != seq || s.Next != next {
					t.Fatalf("newest checkpoint %d holds next %d, want checkpoint %d with next %d", cp.Seq, s.Next, seq, next)
				}
			}
			checkNewest(1, 1)

			remount(t, manifests, false)
			if tc.name == "Close" {
				j = openJob(t, dir, ckpt.Config{Every: ckpt.Every{Records: 1}})
				if r := j.Resumed(); r == nil || r.Seq != 1 {
					t.Fatalf("reopened job resumed from %+v, want checkpoint 1", r)
				}
			}
			j.State.Next = 3
			if err := j.Advance(ctx, 1, 0); err != nil {
				t.Fatal(err)
			}
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			checkNewest(2, 3)
		})
	}
}

// A checkpoint holds what was true when Advance took it, although its
// manifest is written later, in the background, while the caller goes on
// changing things.
func TestBackgroundCheckpointIsOfItsInstant(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	meta := map[string]string{"phase": "one"}
	j := openJob(t, dir, ckpt.Config{Every: ckpt.Every{Records: 1}, Metadata: meta})
	sink := &gatedSink{gate: make(chan struct{})}
	j.Bind(nil, sink)
	j.State.Next = 1
	if err := j.Advance(ctx, 1, 0); err != nil {
		t.Fatal(err)
	}
	// The commit waits in Sync; the job goes on.
	j.State.Next = 2
	meta["phase"] = "two"
	close(sink.gate)
	if err := j.Wait(); err != nil {
		t.Fatal(err)
	}
	entries := listSeqs(t, j.Store(), "count")
	if len(entries) != 1 {
		t.Fatalf("%d checkpoints, want 1", len(entries))
	}
	cp := entries[0].Checkpoint
	var s counterState
	if err := ckpt.Load(ctx, j.Store(), cp, &s); err != nil {
		t.Fatal(err)
	}
	if s.Next != 1 || cp.Records != 1 || cp.Metadata["phase"] != "one" {
		t.Fatalf("checkpoint holds next %d, %d records, metadata %v; want what was true at the Advance: 1, 1, phase one", s.Next, cp.Records, cp.Metadata)
	}
}

// The first SIGTERM makes the next Advance take a shutdown checkpoint and
// return ErrInterrupted. Not parallel: the signal goes to the whole test
// process, and only this job may be listening.
func TestShutdownSignal(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	j, err := ckpt.Open[counterState](ctx, "count", ckpt.Config{Store: dir, Logger: quietLogger(), Every: ckpt.Every{Records: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	for i := range 5 {
		j.State.Next = i + 1
		if err := j.Advance(ctx, 1, 0); err != nil {
			t.Fatal(err)
		}
	}
	if j.Stopping() {
		t.Fatal("Stopping before any signal")
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !j.Stopping() {
		if time.Now().After(deadline) {
			t.Fatal("the signal did not reach the job in 30s")
		}
		time.Sleep(time.Millisecond) // signal delivery is asynchronous
	}
	j.State.Next = 6
	if err := j.Advance(ctx, 1, 0); !errors.Is(err, ckpt.ErrInterrupted) {
		t.Fatalf("Advance after SIGTERM: %v, want ErrInterrupted", err)
	}
	// The shutdown checkpoint was committed before Advance returned.
	entries := listSeqs(t, j.Store(), "count")
	if len(entries) != 1 {
		t.Fatalf("%d checkpoints after the signal, want 1", len(entries))
	}
	if cp := entries[0].Checkpoint; cp.Trigger != ckpt.TriggerShutdown || cp.Records != 6 {
		t.Fatalf("checkpoint %+v, want a shutdown checkpoint after 6 records", cp)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Checkpoint(ctx); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Checkpoint after Close: %v, want ErrClosed", err)
	}
	if err := j.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
