package ckpt_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/internal/vfs"
	"github.com/ckptdev/ckpt/sink"
	"github.com/ckptdev/ckpt/store/filestore"
)

// This file cuts the power under a job, in process, in the manner of
// pebble's crash tests: the job runs with its file store and its output
// file on an in-memory file system that keeps only what was fsynced
// (vfs.MemFS), and is crashed before each file-system operation of an
// uninterrupted run in turn. A restart on what the crash left must find
// every checkpoint it was told was committed, no damaged checkpoint, and
// end with the uninterrupted run's output and state.

// plState is big enough (over 4 KiB, uncompressed) to be written as a
// blob rather than inline in the manifest, and changes with every record,
// so that each checkpoint writes a new blob and retention deletes old ones.
type plState struct {
	Next int
	Sum  int64
	Hist []byte
}

const (
	plRecords = 60
	plHist    = 6000
	plOut     = "/out/out.txt"
)

func plStep(s plState, i int) plState {
	s.Sum += int64(i * i)
	s.Hist[i*97%plHist] = byte(i)
	s.Next = i + 1
	return s
}

// plWant is the state after the whole input.
func plWant() plState {
	s := plState{Hist: make([]byte, plHist)}
	for i := range plRecords {
		s = plStep(s, i)
	}
	return s
}

func checkPLState(got, want plState) error {
	if got.Next != want.Next || got.Sum != want.Sum || string(got.Hist) != string(want.Hist) {
		return fmt.Errorf("final state: next %d sum %d, want next %d sum %d (or the history differs)", got.Next, got.Sum, want.Next, want.Sum)
	}
	return nil
}

// plJob runs a job with a file store in /store and a file sink at plOut.
// Each output line depends on the state before it, so a state restored
// wrongly shows in the output, as does output lost or written twice.
type plJob struct {
	// retain is the job's Retain. Retention's deletes sync directories
	// that the writes of a checkpoint also sync, which can hide a missing
	// fsync of a write: the test runs with and without.
	retain int
	// promised is the newest checkpoint that a run was told is committed
	// (Checkpoint or Finish returned it): a power loss must not take it
	// back.
	promised *ckpt.Checkpoint
}

func (p *plJob) run(ctx context.Context, fsys vfs.FS) (err error) {
	st, err := filestore.Open("/store", filestore.Options{FS: fsys, Logger: quietLogger()})
	if err != nil {
		return err
	}
	defer st.Close()
	// Every checkpoint the crash left must be whole: a manifest is
	// written atomically, after its blobs, and deleted before them.
	entries, err := ckpt.List(ctx, st, "sum")
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Err == nil {
			e.Err = ckpt.Verify(ctx, st, e.Checkpoint)
		}
		if e.Err != nil {
			return fmt.Errorf("checkpoint %d is damaged: %w", e.Seq, e.Err)
		}
	}
	j, err := ckpt.Open[plState](ctx, "sum", ckpt.Config{
		Backend:      st,
		Every:        ckpt.Every{Records: 7},
		Retain:       p.retain,
		Uncompressed: true,
		NoSignals:    true,
		Logger:       quietLogger(),
	})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, j.Close()) }()
	resumed := j.Resumed()
	if pr := p.promised; pr != nil {
		switch {
		case resumed == nil:
			return fmt.Errorf("checkpoint %d was reported committed, but the job starts from the beginning", pr.Seq)
		case resumed.Seq < pr.Seq:
			return fmt.Errorf("checkpoint %d was reported committed, but the job resumes from checkpoint %d", pr.Seq, resumed.Seq)
		case pr.Final && !j.Done():
			return fmt.Errorf("the job was reported finished, but resumes from checkpoint %d, not final", resumed.Seq)
		}
	}
	want := plWant()
	var pos json.RawMessage
	if resumed != nil {
		pos = resumed.Sink
	}
	if j.Done() {
		if err := sink.VerifyFileWith(plOut, pos, sink.FileOptions{FS: fsys}); err != nil {
			return fmt.Errorf("the job is done, but its output is not what it committed: %w", err)
		}
		return checkPLState(j.State, want)
	}
	if j.State.Hist == nil {
		j.State.Hist = make([]byte, plHist)
	}
	out, err := sink.OpenFileWith(plOut, pos, sink.FileOptions{FS: fsys})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, out.Close()) }()
	j.Bind(nil, out)
	for i := j.State.Next; i < plRecords; i++ {
		line := fmt.Sprintf("%d %d %x\n", i, j.State.Sum, j.State.Hist[(i*31)%plHist:][:8])
		if _, err := out.WriteString(line); err != nil {
			return err
		}
		j.State = plStep(j.State, i)
		if err := j.Advance(ctx, 1, int64(len(line))); err != nil {
			return err
		}
		// Besides the automatic checkpoints, which commit in the
		// background, one taken by hand says when it is committed.
		if i%20 == 10 {
			cp, err := j.Checkpoint(ctx)
			if err != nil {
				return err
			}
			p.promised = cp
		}
	}
	final, err := j.Finish(ctx)
	if err != nil {
		return err
	}
	p.promised = final
	// A fencing token that went back after a crash would let a stale
	// writer fence out a live one.
	if resumed != nil && final.Token <= resumed.Token {
		return fmt.Errorf("fencing token went back: the run that finished holds %d, the checkpoint it resumed from was written with %d", final.Token, resumed.Token)
	}
	return checkPLState(j.State, want)
}

func TestPowerLoss(t *testing.T) {
	for _, retain := range []int{2, -1} {
		t.Run(fmt.Sprintf("retain=%d", retain), func(t *testing.T) {
			ctx := t.Context()
			base := vfs.NewMemFS()
			if err := base.Mkdir("/out", 0o755); err != nil {
				t.Fatal(err)
			}
			base.SyncAll()

			ref := base.CrashClone()
			counter := vfs.NewCrashing(ref, 0)
			p := &plJob{retain: retain}
			if err := p.run(ctx, counter); err != nil {
				t.Fatalf("uninterrupted run: %v", err)
			}
			want, err := ref.ReadFile(plOut)
			if err != nil {
				t.Fatal(err)
			}
			ops := counter.Ops()
			step := 1
			if testing.Short() {
				step = 5
			}
			for at := 1; at <= len(ops); at += step {
				where := fmt.Sprintf("power lost before operation %d (%s)", at, ops[at-1])
				if at > 1 {
					where += ", after " + ops[at-2]
				}
				p := &plJob{retain: retain}
				live := base.CrashClone()
				crashing := vfs.NewCrashing(live, at)
				// A run whose background commits interleave differently
				// may end before the crash point; it must still succeed.
				if err := p.run(ctx, crashing); !crashing.Crashed() && err != nil {
					t.Fatalf("%s: the run failed without a crash: %v", where, err)
				}
				after := live.CrashClone()
				// Every fourth time, the power goes again during the
				// recovery, at one of its first operations.
				if at%4 == 0 {
					again := vfs.NewCrashing(after, 1+at/4%12)
					if err := p.run(ctx, again); !again.Crashed() && err != nil {
						t.Fatalf("%s: the restart failed: %v", where, err)
					}
					after = after.CrashClone()
					where += fmt.Sprintf(", and again before operation %d of the restart", 1+at/4%12)
				}
				if err := p.run(ctx, after); err != nil {
					t.Fatalf("%s: the restart failed: %v", where, err)
				}
				got, err := after.ReadFile(plOut)
				if err != nil {
					t.Fatalf("%s: %v", where, err)
				}
				if string(got) != string(want) {
					t.Fatalf("%s: the output differs from the uninterrupted run's at byte %d:\n%s\nwant\n%s", where, firstDifference(got, want), got, want)
				}
			}
			t.Logf("%d operations, crashed before every %d", len(ops), step)
		})
	}
}

func firstDifference(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// Deleting checkpoints by hand (Delete, Prune) is durable when it
// returns, blobs or not; retention after a commit need not be for a
// checkpoint whose blobs all stay, and a crash may bring such a one back,
// whole. Every checkpoint the crash leaves must verify.
func TestPowerLossAfterDeletes(t *testing.T) {
	ctx := t.Context()
	fsys := vfs.NewMemFS()
	st, err := filestore.Open("/store", filestore.Options{FS: fsys, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// Checkpoints 1 to 5 of inline state (small): no blobs of their own,
	// so that deleting them needs no Sync before blobs go; 6 to 8 of a
	// state in a blob.
	j, err := ckpt.Open[plState](ctx, "del", ckpt.Config{Backend: st, Retain: 7, NoSignals: true, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		j.State.Next = i
		if _, err := j.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
	}
	j.State.Hist = make([]byte, plHist) // over 4 KiB: a blob
	for i := range 3 {
		j.State.Hist[i] = byte(i + 1)
		if _, err := j.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	seqs := func(fsys *vfs.MemFS) []uint64 {
		st, err := filestore.Open("/store", filestore.Options{FS: fsys, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		entries, err := ckpt.List(ctx, st, "del")
		if err != nil {
			t.Fatal(err)
		}
		var out []uint64
		for _, e := range entries {
			if e.Err == nil {
				e.Err = ckpt.Verify(ctx, st, e.Checkpoint)
			}
			if e.Err != nil {
				t.Fatalf("after a crash, checkpoint %d is damaged: %v", e.Seq, e.Err)
			}
			out = append(out, e.Seq)
		}
		return out
	}
	// Retention's unsynced deletion of inline checkpoint 1: a crash may
	// bring it back; it verifies (checked in seqs).
	if got := seqs(fsys.CrashClone()); !slices.Equal(got, []uint64{1, 2, 3, 4, 5, 6, 7, 8}) && !slices.Equal(got, []uint64{2, 3, 4, 5, 6, 7, 8}) {
		t.Fatalf("after retention and a crash: checkpoints %v", got)
	}
	admin := ckpt.AdminOptions{Logger: quietLogger()}
	if err := ckpt.Delete(ctx, st, "del", 3, admin); err != nil {
		t.Fatal(err)
	}
	if got := seqs(fsys.CrashClone()); slices.Contains(got, 3) {
		t.Fatalf("checkpoint 3 was deleted, but a crash brings it back: %v", got)
	}
	// Only inline checkpoints go: durable all the same.
	if removed, err := ckpt.Prune(ctx, st, "del", 4, admin); err != nil || !slices.Equal(removed, []uint64{2, 4}) {
		t.Fatalf("Prune to 4: removed %v, %v; want 2 and 4", removed, err)
	}
	if got := seqs(fsys.CrashClone()); !slices.Equal(got, []uint64{5, 6, 7, 8}) {
		t.Fatalf("Prune kept checkpoints 5 to 8, but after a crash the job has %v", got)
	}
	if err := ckpt.Delete(ctx, st, "del", 8, admin); err != nil {
		t.Fatal(err)
	}
	if removed, err := ckpt.Prune(ctx, st, "del", 1, admin); err != nil || !slices.Equal(removed, []uint64{5, 6}) {
		t.Fatalf("Prune to 1: removed %v, %v; want 5 and 6", removed, err)
	}
	if got := seqs(fsys.CrashClone()); !slices.Equal(got, []uint64{7}) {
		t.Fatalf("Delete and Prune kept checkpoint 7 only, but after a crash the job has %v", got)
	}
}
