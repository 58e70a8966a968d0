package s3store_test

import (
	"errors"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/codec"
	"github.com/ckptdev/ckpt/internal/testenv"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/s3store"
)

// These tests run the checkpoint engine (ckpt.Job) on the S3 store with
// the store's faults in between: the engine's promise is that a failed
// checkpoint leaves the previous one valid and the job can go on, and
// that a writer that lost its lock cannot commit.

// tally is a job's state: what an uninterrupted run over 0..n-1 ends with
// is known, so a resumed run can be checked against it.
type tally struct {
	N    int64
	Sum  int64
	Blob []byte `json:",omitempty"`
}

func (s *tally) add(from, to int64) {
	for i := from; i < to; i++ {
		s.N++
		s.Sum += i
	}
}

func want(to int64) tally { var s tally; s.add(0, to); return s }

func openJob(t *testing.T, st store.Store, name string, o store.Owner) (*ckpt.Job[tally], error) {
	t.Helper()
	return ckpt.Open[tally](t.Context(), name, ckpt.Config{
		Backend: st, NoSignals: true, Owner: o, Logger: slog.New(slog.DiscardHandler),
	})
}

func wantState(t *testing.T, got tally, want tally) {
	t.Helper()
	if got.N != want.N || got.Sum != want.Sum {
		t.Fatalf("state {N:%d Sum:%d}, want {N:%d Sum:%d}", got.N, got.Sum, want.N, want.Sum)
	}
}

// latest returns the newest valid checkpoint of job, its blobs verified.
func latest(t *testing.T, st store.Store, job string) *ckpt.Checkpoint {
	t.Helper()
	cp, err := ckpt.Latest(t.Context(), st, job, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("latest checkpoint of %s: %v", job, err)
	}
	if err := ckpt.Verify(t.Context(), st, cp); err != nil {
		t.Fatalf("checkpoint %d of %s: %v", cp.Seq, job, err)
	}
	return cp
}

func TestJobSurvivesUnreachableStore(t *testing.T) {
	t.Parallel()
	b := testenv.S3(t)
	o, proxy, _ := viaProxy(t, b, "jobs")
	o.RequestTimeout, o.MaxAttempts, o.MaxRetryTime = time.Second, 3, 2*time.Second
	o.LeaseTTL, o.LeaseRenew = 15*time.Second, time.Second
	st := open(t, o)
	direct := open(t, options(b, "jobs"))
	ctx := t.Context()

	j, err := openJob(t, st, "count", owner(1))
	if err != nil {
		t.Fatal(err)
	}
	j.State.add(0, 1000)
	cp1, err := j.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	j.State.add(1000, 2000)
	proxy.Down()
	if _, err := j.Checkpoint(ctx); err == nil {
		t.Fatal("a checkpoint while the store is unreachable succeeded")
	}
	cp := latest(t, direct, "count")
	if cp.Seq != cp1.Seq {
		t.Fatalf("newest valid checkpoint is %d, want %d", cp.Seq, cp1.Seq)
	}
	var s tally
	if err := ckpt.Load(ctx, direct, cp, &s); err != nil {
		t.Fatal(err)
	}
	wantState(t, s, want(1000))

	// Back again: the same job goes on.
	proxy.Up(t)
	cp2, err := j.Checkpoint(ctx)
	if err != nil {
		t.Fatalf("checkpoint once the store is back: %v", err)
	}
	j.State.add(2000, 2500) // lost with the job: redone after the resume
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j, err = openJob(t, direct, "count", owner(2))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if r := j.Resumed(); r == nil || r.Seq != cp2.Seq {
		t.Fatalf("resumed from %v, want checkpoint %d", r, cp2.Seq)
	}
	wantState(t, j.State, want(2000))
	j.State.add(2000, 3000)
	if _, err := j.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	wantState(t, j.State, want(3000))
}

// State large enough for multipart blob uploads, through connections
// that are cut mid-upload: the checkpoint commits after retries, and what
// it restores is what was saved.
func TestJobLargeStateThroughDroppedConnections(t *testing.T) {
	t.Parallel()
	b := testenv.S3(t)
	o, proxy, rec := viaProxy(t, b, "large")
	o.PartSize = s3store.MinPartSize
	st := open(t, o)
	ctx := t.Context()
	// Gob and uncompressed: random bytes do not compress, and JSON's
	// base64 or zstd trying would only slow the test.
	cfg := ckpt.Config{
		Backend: st, NoSignals: true, Owner: owner(1), Codec: codec.Gob{}, Uncompressed: true, Logger: slog.New(slog.DiscardHandler),
	}
	j, err := ckpt.Open[tally](ctx, "large", cfg)
	if err != nil {
		t.Fatal(err)
	}
	j.State.add(0, 100)
	j.State.Blob = content("large state", 9<<20)
	for _, cut := range []int64{3 << 20, 6 << 20} {
		proxy.CutAfter(cut)
		if _, err := j.Checkpoint(ctx); err != nil {
			t.Fatalf("checkpoint through a cut connection: %v", err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if rec.count("retrying") == 0 {
		t.Fatalf("no request was retried: the connections were not cut; log:\n%s", rec)
	}
	cfg.Backend, cfg.Owner = open(t, options(b, "large")), owner(2)
	j, err = ckpt.Open[tally](ctx, "large", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	wantState(t, j.State, want(100))
	if !slices.Equal(j.State.Blob, content("large state", 9<<20)) {
		t.Fatal("the restored state differs from the saved one")
	}
}

// A writer cut off from the store loses its lease; another process takes
// the job over. When the first one comes back it cannot commit, neither
// before the new holder's first checkpoint nor after it, and the new
// holder's checkpoints stay the newest.
func TestStaleWriterCannotCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: waits for a lease to expire")
	}
	t.Parallel()
	b := testenv.S3(t)
	o, proxy, _ := viaProxy(t, b, "stale")
	o.LeaseTTL, o.LeaseRenew = time.Second, 200*time.Millisecond
	o.RequestTimeout, o.MaxRetryTime = 300*time.Millisecond, time.Second
	stale := open(t, o)
	ob := options(b, "stale")
	ob.LeaseTTL, ob.LeaseRenew = time.Second, 200*time.Millisecond
	other := open(t, ob)
	ctx := t.Context()

	a, err := openJob(t, stale, "job", owner(1))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.State.add(0, 100)
	if _, err := a.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}

	proxy.Stall()
	var j *ckpt.Job[tally]
	deadline := time.Now().Add(15 * time.Second)
	for j == nil {
		j, err = openJob(t, other, "job", owner(2))
		switch {
		case err == nil:
		case !errors.Is(err, ckpt.ErrLocked):
			t.Fatalf("open while the first writer is cut off: %v", err)
		case time.Now().After(deadline):
			t.Fatal("the job of a writer cut off for 15s was not taken over")
		default:
			time.Sleep(100 * time.Millisecond) // poll: the lease runs out on the server's clock
		}
	}
	defer j.Close()
	wantState(t, j.State, want(100))
	proxy.Resume()

	// Before the new holder commits anything, and after.
	for round := range 2 {
		a.State.add(100, 200)
		if _, err := a.Checkpoint(ctx); !errors.Is(err, store.ErrLeaseLost) {
			t.Fatalf("round %d: checkpoint by the writer that lost its lease: %v, want store.ErrLeaseLost", round, err)
		}
		cp := latest(t, other, "job")
		if round == 0 && cp.Seq != 1 || round == 1 && (cp.Seq != 2 || cp.Writer.PID != owner(2).PID) {
			t.Fatalf("round %d: newest checkpoint %d by %s", round, cp.Seq, cp.Writer)
		}
		if round == 0 {
			j.State.add(100, 150)
			cp, err := j.Checkpoint(ctx)
			if err != nil {
				t.Fatalf("checkpoint by the new holder: %v", err)
			}
			if cp.Token <= 1 {
				t.Errorf("new holder's checkpoint has fencing token %d", cp.Token)
			}
		}
	}
	var s tally
	if err := ckpt.Load(ctx, other, latest(t, other, "job"), &s); err != nil {
		t.Fatal(err)
	}
	wantState(t, s, want(150))
}

// A state blob damaged at rest fails the store's own checksum on read; the
// engine takes that as a corrupt checkpoint and resumes from the previous
// one, as it does when its own checks fail.
func TestJobFallsBackOverDamagedBlob(t *testing.T) {
	t.Parallel()
	b := testenv.S3(t)
	st := open(t, options(b, "damaged"))
	ctx := t.Context()
	job, err := openJob(t, st, "dmg", store.Owner{ID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	job.State.add(0, 10)
	job.State.Blob = content("first", 64<<10) // too large to be inline
	if _, err := job.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	job.State.add(10, 20)
	job.State.Blob = content("second", 64<<10)
	cp, err := job.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := job.Close(); err != nil {
		t.Fatal(err)
	}
	var blob string
	for _, c := range cp.State[0].Chunks {
		if c.Data == nil {
			blob = c.ID
		}
	}
	if blob == "" {
		t.Fatal("the second checkpoint has no blob outside its manifest")
	}
	flipByte(t, b.ObjectPath("damaged/jobs/dmg/blobs/"+blob), 100)

	job, err = openJob(t, st, "dmg", store.Owner{ID: "b"})
	if err != nil {
		t.Fatalf("reopen over a damaged blob: %v", err)
	}
	defer job.Close()
	if job.Resumed() == nil || job.Resumed().Seq != cp.Seq-1 {
		t.Fatalf("resumed from %+v, want checkpoint %d", job.Resumed(), cp.Seq-1)
	}
	wantState(t, job.State, want(10))
	if err := ckpt.Verify(ctx, st, cp); !errors.Is(err, ckpt.ErrCorrupt) {
		t.Fatalf("Verify of the damaged checkpoint: %v, want ErrCorrupt", err)
	}
}
