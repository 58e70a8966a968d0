package pgstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/internal/testenv"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/pgstore"
)

// These tests break the store's connections for real, with
// pg_terminate_backend, as a server restart, a failover or a network cut
// would, at chosen moments.

// appStore opens a store whose connections carry an application_name of
// their own, so that the test can find and end them.
func appStore(t *testing.T, pg *testenv.Postgres, opts pgstore.Options) (*pgstore.Store, string) {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	app := "ckpt-fault-" + hex.EncodeToString(b[:])
	return openStore(t, pg.WithParam("application_name", app), opts), app
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// pausingReader passes r through; the first time n bytes have gone by it
// calls fault, then goes on. It hides any Seek of r unless seekable.
type pausingReader struct {
	r     io.Reader
	n     int64
	fault func()
	once  sync.Once
}

func (p *pausingReader) Read(b []byte) (int, error) {
	if p.n > 0 && int64(len(b)) > p.n {
		b = b[:p.n]
	}
	k, err := p.r.Read(b)
	if p.n > 0 {
		if p.n -= int64(k); p.n == 0 {
			p.once.Do(p.fault)
		}
	}
	return k, err
}

// seekablePausing is a pausingReader over a bytes.Reader that can be
// read again: a write may start over after the fault.
type seekablePausing struct {
	*pausingReader
	br *bytes.Reader
}

func (s *seekablePausing) Seek(off int64, whence int) (int64, error) { return s.br.Seek(off, whence) }

// A write whose connection dies midway leaves the previous state whole;
// one whose input can be read again is started over and completes.
func TestWriteWithTerminatedConnection(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: fault test that terminates server connections")
	}
	t.Parallel()
	pg := testenv.NewPostgres(t)
	st, app := appStore(t, pg, pgstore.Options{})
	defer st.Close()
	tests := []struct {
		op       string
		existing bool
		seekable bool
	}{
		{"Put", true, false},
		{"Put", false, false},
		{"Create", false, false},
		{"Put", true, true},
		{"Create", false, true},
	}
	for _, tc := range tests {
		name := fmt.Sprintf("fault/%s-%t-%t", tc.op, tc.existing, tc.seekable)
		old := randomBytes(3000)
		if tc.existing {
			if err := st.Put(t.Context(), name, bytes.NewReader(old)); err != nil {
				t.Fatal(err)
			}
		}
		data := randomBytes(6<<20 + 123)
		var terminated int
		br := bytes.NewReader(data)
		pr := &pausingReader{r: br, n: 3<<20 + 7, fault: func() { terminated = pg.Terminate(t, app) }}
		var r io.Reader = pr
		if tc.seekable {
			r = &seekablePausing{pausingReader: pr, br: br}
		}
		var err error
		if tc.op == "Put" {
			err = st.Put(t.Context(), name, r)
		} else {
			err = st.Create(t.Context(), name, r)
		}
		if terminated == 0 {
			t.Fatalf("%s: no connection was terminated midway", name)
		}
		got, gerr := readAll(st, name)
		switch {
		case tc.seekable:
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%s: %v, and the object is %d bytes (%v); want it written whole after the retry", name, err, len(got), gerr)
			}
		case err == nil:
			t.Fatalf("%s succeeded though its connection was terminated midway", name)
		case tc.existing:
			if !bytes.Equal(got, old) {
				t.Fatalf("%s failed (%v) and left %d bytes (%v); want the previous %d bytes", name, err, len(got), gerr, len(old))
			}
		default:
			if !errors.Is(gerr, store.ErrNotFound) {
				t.Fatalf("%s failed (%v) and left %d bytes (%v); want no object", name, err, len(got), gerr)
			}
		}
		// The store goes on working: new connections replace the dead ones.
		if err := st.Put(t.Context(), name, bytes.NewReader(data)); err != nil {
			t.Fatalf("Put after the fault: %v", err)
		}
	}
}

func readAll(st store.Store, name string) ([]byte, error) {
	rc, err := st.Get(context.Background(), name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// A read whose connection dies midway resumes on another connection at
// the part it had reached.
func TestGetResumesAfterTerminatedConnection(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: fault test that terminates server connections")
	}
	t.Parallel()
	pg := testenv.NewPostgres(t)
	var logs bytes.Buffer
	var logMu sync.Mutex
	st, app := appStore(t, pg, pgstore.Options{PartSize: 64 << 10, Logger: slog.New(slog.NewTextHandler(lockedWriter{&logs, &logMu}, nil))})
	defer st.Close()
	data := randomBytes(32 << 20)
	if err := st.Put(t.Context(), "big", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	rc, err := st.Get(t.Context(), "big")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	head := make([]byte, 1<<20)
	if _, err := io.ReadFull(rc, head); err != nil {
		t.Fatal(err)
	}
	if n := pg.Terminate(t, app); n == 0 {
		t.Fatal("no connection to terminate")
	}
	rest, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read after the connection was terminated: %v", err)
	}
	if got := append(head, rest...); !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, not the %d written", len(got), len(data))
	}
	logMu.Lock()
	defer logMu.Unlock()
	if !strings.Contains(logs.String(), "read interrupted; resuming") {
		t.Fatalf("the read did not resume (the whole object had arrived before the fault?); log:\n%s", logs.String())
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// leasePID returns the server process that holds lock's advisory lock.
func leasePID(t *testing.T, pg *testenv.Postgres, lock string) uint32 {
	t.Helper()
	var pid uint32
	err := pg.Conn(t).QueryRow(t.Context(), fmt.Sprintf(`SELECT l.pid FROM pg_locks l
		WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
		AND l.classid::bigint = (SELECT oid FROM pg_namespace WHERE nspname = $1)::bigint
		AND l.objid::bigint = (SELECT id FROM %s.locks WHERE name = $2)`, pg.Schema), pg.Schema, lock).Scan(&pid)
	if err != nil {
		t.Fatalf("find the holder of %s: %v", lock, err)
	}
	return pid
}

func TestLeaseLostWithItsConnection(t *testing.T) {
	t.Parallel()
	pg := testenv.NewPostgres(t)
	st := openStore(t, pg.URL, pgstore.Options{})
	defer st.Close()
	ctx := t.Context()
	const lock = "jobs/x/LOCK"
	first, err := st.Lock(ctx, lock, store.Owner{ID: "first", PID: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Release(context.Background())
	if _, err := st.Lock(ctx, lock, store.Owner{ID: "second", PID: 2}); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("Lock of a held lock: %v, want ErrLocked", err)
	}

	pg.TerminatePID(t, leasePID(t, pg, lock))

	// The server freed the lock with the connection: another writer takes
	// it, with a larger token.
	second, err := st.Lock(ctx, lock, store.Owner{ID: "second", PID: 2})
	if err != nil {
		t.Fatalf("Lock after the holder's connection died: %v", err)
	}
	defer second.Release(context.Background())
	if second.Token() <= first.Token() {
		t.Fatalf("new token %d is not greater than the lost lease's %d", second.Token(), first.Token())
	}
	// The old holder, not having noticed yet, tries to commit: refused by
	// the token, nothing written.
	err = first.(store.FencedLease).CreateFenced(ctx, "jobs/x/checkpoints/1", bytes.NewReader([]byte("stale")))
	if !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("CreateFenced of the lost lease: %v, want ErrLeaseLost", err)
	}
	big := randomBytes(3 << 20) // the streaming path checks the token too
	err = first.(store.FencedLease).CreateFenced(ctx, "jobs/x/checkpoints/2", bytes.NewReader(big))
	if !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("CreateFenced of 3 MiB by the lost lease: %v, want ErrLeaseLost", err)
	}
	if names, err := st.List(ctx, ""); err != nil || len(names) != 0 {
		t.Fatalf("the refused writes left %q (%v)", names, err)
	}
	if err := first.Check(ctx); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("Check of the lease whose connection died: %v, want ErrLeaseLost", err)
	}
	if err := second.Check(ctx); err != nil {
		t.Fatalf("Check of the new lease: %v", err)
	}
	if err := second.(store.FencedLease).CreateFenced(ctx, "jobs/x/checkpoints/1", bytes.NewReader([]byte("fresh"))); err != nil {
		t.Fatalf("CreateFenced of the new holder: %v", err)
	}
	if got, err := readAll(st, "jobs/x/checkpoints/1"); err != nil || string(got) != "fresh" {
		t.Fatalf("checkpoint 1 holds %q, %v", got, err)
	}
	// Releasing the lost lease does not free the new holder's lock.
	if err := first.Release(ctx); err != nil {
		t.Fatalf("Release of the lost lease: %v", err)
	}
	if _, err := st.Lock(ctx, lock, store.Owner{ID: "third"}); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("Lock while the second holds it: %v, want ErrLocked", err)
	}
}

type jobState struct {
	Gen  int    `json:"gen"`
	Data []byte `json:"data"`
}

// faultyStore is a real store whose next blob write gets its connections
// terminated midway (armed by arm).
type faultyStore struct {
	*pgstore.Store
	mu    sync.Mutex
	fault func()
}

func (f *faultyStore) arm(fault func()) {
	f.mu.Lock()
	f.fault = fault
	f.mu.Unlock()
}

func (f *faultyStore) Put(ctx context.Context, name string, r io.Reader) error {
	f.mu.Lock()
	fault := f.fault
	f.fault = nil
	f.mu.Unlock()
	if fault != nil && strings.Contains(name, "/blobs/") {
		r = &pausingReader{r: r, n: 2 << 20, fault: fault}
	}
	return f.Store.Put(ctx, name, r)
}

// A checkpoint whose blob write loses its connection fails cleanly: the
// previous checkpoint stays the newest valid one, and the job reopened
// resumes from it and goes on.
func TestJobCheckpointWithTerminatedConnection(t *testing.T) {
	t.Parallel()
	pg := testenv.NewPostgres(t)
	st, app := appStore(t, pg, pgstore.Options{})
	defer st.Close()
	fs := &faultyStore{Store: st}
	ctx := t.Context()
	cfg := ckpt.Config{Backend: fs, NoSignals: true, Uncompressed: true, Logger: slog.New(slog.DiscardHandler)}

	j, err := ckpt.Open[jobState](ctx, "big", cfg)
	if err != nil {
		t.Fatal(err)
	}
	v1 := randomBytes(3 << 20)
	j.State = jobState{Gen: 1, Data: v1}
	cp1, err := j.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	terminated := 0
	fs.arm(func() { terminated = pg.Terminate(t, app) })
	j.State = jobState{Gen: 2, Data: randomBytes(3 << 20)}
	if _, err := j.Checkpoint(ctx); err == nil {
		t.Fatal("a checkpoint whose blob write lost its connection succeeded")
	}
	if terminated == 0 {
		t.Fatal("no connection was terminated")
	}
	j.Close()

	latest, err := ckpt.Latest(ctx, st, "big", cfg.Logger)
	if err != nil || latest.Seq != cp1.Seq {
		t.Fatalf("latest checkpoint %v, %v; want checkpoint %d", latest, err, cp1.Seq)
	}
	if err := ckpt.Verify(ctx, st, latest); err != nil {
		t.Fatalf("checkpoint %d no longer verifies: %v", cp1.Seq, err)
	}
	j, err = ckpt.Open[jobState](ctx, "big", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if j.Resumed() == nil || j.Resumed().Seq != cp1.Seq || j.State.Gen != 1 || !bytes.Equal(j.State.Data, v1) {
		t.Fatalf("reopened job resumed from %v with gen %d; want checkpoint %d and its state", j.Resumed(), j.State.Gen, cp1.Seq)
	}
	v3 := randomBytes(3 << 20)
	j.State = jobState{Gen: 3, Data: v3}
	cp, err := j.Checkpoint(ctx)
	if err != nil {
		t.Fatalf("checkpoint after resuming: %v", err)
	}
	j.Close()
	var got jobState
	if err := ckpt.Load(ctx, st, cp, &got); err != nil || got.Gen != 3 || !bytes.Equal(got.Data, v3) {
		t.Fatalf("load of checkpoint %d: gen %d, %v", cp.Seq, got.Gen, err)
	}
}

// A job whose lock connection dies is fenced out: a second writer takes
// the job over, and the first one's next commit is refused without
// touching the second one's checkpoints.
func TestJobFencedOutAfterLockConnectionDies(t *testing.T) {
	t.Parallel()
	pg := testenv.NewPostgres(t)
	ctx := t.Context()
	quiet := slog.New(slog.DiscardHandler)
	stA := openStore(t, pg.URL, pgstore.Options{})
	defer stA.Close()
	stB := openStore(t, pg.URL, pgstore.Options{}) // another process's
	defer stB.Close()

	a, err := ckpt.Open[jobState](ctx, "fenced", ckpt.Config{Backend: stA, NoSignals: true, Logger: quiet, Owner: store.Owner{ID: "a", PID: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.State.Gen = 1
	if _, err := a.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	pg.TerminatePID(t, leasePID(t, pg, "jobs/fenced/LOCK"))

	b, err := ckpt.Open[jobState](ctx, "fenced", ckpt.Config{Backend: stB, NoSignals: true, Logger: quiet, Owner: store.Owner{ID: "b", PID: 2}})
	if err != nil {
		t.Fatalf("second writer after the first one's lock connection died: %v", err)
	}
	defer b.Close()
	if b.Resumed() == nil || b.State.Gen != 1 {
		t.Fatalf("second writer resumed from %v with gen %d, want the first one's checkpoint", b.Resumed(), b.State.Gen)
	}
	b.State.Gen = 2
	cpB, err := b.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}

	a.State.Gen = 99
	if _, err := a.Checkpoint(ctx); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("checkpoint of the fenced-out writer: %v, want ErrLeaseLost", err)
	}
	latest, err := ckpt.Latest(ctx, stA, "fenced", quiet)
	if err != nil {
		t.Fatal(err)
	}
	var got jobState
	if err := ckpt.Load(ctx, stA, latest, &got); err != nil {
		t.Fatal(err)
	}
	if latest.Seq != cpB.Seq || latest.Token != cpB.Token || latest.Writer.ID != "b" || got.Gen != 2 {
		t.Fatalf("newest checkpoint is %d by %s (token %d, gen %d); want the second writer's %d (token %d, gen 2)",
			latest.Seq, latest.Writer.ID, latest.Token, got.Gen, cpB.Seq, cpB.Token)
	}
	// The second writer goes on.
	b.State.Gen = 3
	if _, err := b.Checkpoint(ctx); err != nil {
		t.Fatalf("second writer's next checkpoint: %v", err)
	}
}
