package pgsink_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/internal/testenv"
	"github.com/ckptdev/ckpt/sink"
	"github.com/ckptdev/ckpt/sink/pgsink"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/pgstore"
)

var quiet = slog.New(slog.DiscardHandler)

// fixture is a store and a table in a fresh schema, and a connection to
// look at them.
type fixture struct {
	pg    *testenv.Postgres
	st    *pgstore.Store
	table string
	conn  *pgx.Conn
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	// Each fixture has its own schema: the tests that use one run side
	// by side, their waits on the server overlapping.
	t.Parallel()
	pg := testenv.NewPostgres(t)
	st, err := pgstore.Open(t.Context(), pg.URL, pgstore.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &fixture{pg: pg, st: st, table: pg.Schema + ".out", conn: pg.Conn(t)}
}

func (f *fixture) sinkConfig() pgsink.Config {
	return pgsink.Config{URL: f.pg.URL, Table: f.table, Columns: []string{"a", "b"}, RowColumn: "n", Store: f.st, Logger: quiet}
}

// open opens job and its sink at the job's checkpoint, bound together.
func (f *fixture) open(t *testing.T, job string, cfg ckpt.Config) (*ckpt.Job[int], *pgsink.Sink) {
	t.Helper()
	cfg.Backend, cfg.NoSignals, cfg.Logger = f.st, true, quiet
	j, err := ckpt.Open[int](t.Context(), job, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var pos json.RawMessage
	if cp := j.Resumed(); cp != nil {
		pos = cp.Sink
	}
	s, err := pgsink.Open(t.Context(), f.sinkConfig(), pos)
	if err != nil {
		j.Close()
		t.Fatal(err)
	}
	j.Bind(nil, s)
	t.Cleanup(func() { j.Close(); s.Close() })
	return j, s
}

func write(t *testing.T, s *pgsink.Sink, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := s.WriteRow([][]byte{[]byte("a" + strconv.Itoa(i)), []byte(strings.Repeat("b", i%50))}, nil); err != nil {
			t.Fatalf("WriteRow %d: %v", i, err)
		}
	}
}

// rows returns the committed rows, in load order, as "n a len(b)"
// (-1 for NULL).
func (f *fixture) rows(t *testing.T) []string {
	t.Helper()
	rows, err := f.conn.Query(t.Context(), "SELECT n, a, coalesce(length(b), -1) FROM "+f.table+" ORDER BY n")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for rows.Next() {
		var n, l int64
		var a string
		if err := rows.Scan(&n, &a, &l); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d %s %d", n, a, l))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func want(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%d a%d %d", i+1, i, i%50))
	}
	return out
}

func wantRows(t *testing.T, f *fixture, from, to int) {
	t.Helper()
	if got, w := f.rows(t), want(from, to); !slices.Equal(got, w) {
		t.Fatalf("the table has %d rows (%.3q...), want rows %d..%d", len(got), got, from+1, to)
	}
}

func TestRowsCommitWithTheirCheckpoint(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	j, s := f.open(t, "job", ckpt.Config{})
	write(t, s, 0, 3)
	wantRows(t, f, 0, 0)
	cp, err := j.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantRows(t, f, 0, 3)
	var p pgsink.Position
	if err := json.Unmarshal(cp.Sink, &p); err != nil || p.Rows != 3 || !strings.HasSuffix(p.Table, `."out"`) {
		t.Fatalf("position %s, want 3 rows of the schema-qualified table", cp.Sink)
	}
	// Rows after the checkpoint die with the process (here: closed
	// without a checkpoint): the server rolls them back.
	write(t, s, 3, 700)
	j.Close()
	s.Close()
	wantRows(t, f, 0, 3)

	j, s = f.open(t, "job", ckpt.Config{})
	if j.Resumed() == nil || j.Resumed().Seq != cp.Seq {
		t.Fatalf("resumed from %v, want checkpoint %d", j.Resumed(), cp.Seq)
	}
	write(t, s, 3, 5)
	if _, err := j.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	wantRows(t, f, 0, 5)
}

// Automatic checkpoints commit in the background while rows go on into
// the next transaction: every row lands once, in order.
func TestBackgroundCommitsWhileWriting(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	j, s := f.open(t, "job", ckpt.Config{Every: ckpt.Every{Records: 3000}})
	const n = 60_000
	for i := range n {
		write(t, s, i, i+1)
		if err := j.Advance(ctx, 1, 0); err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
	}
	cp, err := j.Finish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Seq < n/3000 {
		t.Fatalf("final checkpoint is %d: the triggers did not fire", cp.Seq)
	}
	wantRows(t, f, 0, n)
	// The manifests are in the store, retention applied.
	entries, err := ckpt.List(ctx, f.st, "job")
	if err != nil || len(entries) != 3 || entries[2].Seq != cp.Seq {
		t.Fatalf("store holds %d checkpoints (%v), want the 3 newest", len(entries), err)
	}
}

// A job that starts from the beginning owns the table: its first
// checkpoint empties it, and not before.
func TestFreshStartEmptiesTheTableWithTheFirstCheckpoint(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	j, s := f.open(t, "job", ckpt.Config{})
	write(t, s, 0, 10)
	if _, err := j.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	j.Close()
	s.Close()

	j, s = f.open(t, "job", ckpt.Config{Restart: true})
	write(t, s, 0, 2)
	wantRows(t, f, 0, 10) // a crash now would leave the old table as it was
	if _, err := j.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	wantRows(t, f, 0, 2)
}

func TestInvalidValuesAreRefusedByRow(t *testing.T) {
	f := newFixture(t)
	j, s := f.open(t, "job", ckpt.Config{})
	for _, v := range []string{"nul\x00byte", "bad \xff utf8"} {
		err := s.WriteRow([][]byte{[]byte("x"), []byte(v)}, nil)
		var ie *pgsink.InvalidValueError
		if !errors.As(err, &ie) || ie.Column != "b" {
			t.Fatalf("WriteRow of %q: %v, want an InvalidValueError for column b", v, err)
		}
	}
	if err := s.WriteRow([][]byte{[]byte("x")}, nil); err == nil {
		t.Fatal("WriteRow of one value for two columns succeeded")
	}
	// NULL is a value of its own.
	if err := s.WriteRow([][]byte{[]byte("a0"), nil}, []bool{false, true}); err != nil {
		t.Fatal(err)
	}
	write(t, s, 1, 2)
	if _, err := j.Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	var nulls int
	if err := f.conn.QueryRow(t.Context(), "SELECT count(*) FROM "+f.table+" WHERE b IS NULL AND n = 1").Scan(&nulls); err != nil || nulls != 1 {
		t.Fatalf("row 1's b is not NULL (%d, %v)", nulls, err)
	}
	if got := f.rows(t); !slices.Equal(got, []string{"1 a0 -1", "2 a1 1"}) {
		t.Fatalf("rows %q: want the two good rows numbered 1 and 2", got)
	}
}

// A commit with a stale fencing token writes neither the manifest nor
// the rows, and the sink stops.
func TestStaleTokenRollsBackTheRows(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	const lock = "jobs/x/LOCK"
	l, err := f.st.Lock(ctx, lock, store.Owner{ID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(context.Background())
	s, err := pgsink.Open(ctx, f.sinkConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	write(t, s, 0, 5000)
	if _, err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	m := ckpt.ManifestCommit{Name: "jobs/x/checkpoints/00000000000000000001", Body: []byte("manifest"), Lock: lock, Token: l.Token() - 1}
	if _, err := s.CommitManifest(ctx, m); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("CommitManifest with a stale token: %v, want ErrLeaseLost", err)
	}
	wantRows(t, f, 0, 0)
	if names, _ := f.st.List(ctx, "jobs/"); len(names) != 0 {
		t.Fatalf("the refused commit left %q", names)
	}
	if _, err := s.Flush(); err == nil {
		t.Fatal("the sink goes on after a failed commit")
	}

	// The lease's own token commits.
	s2, err := pgsink.Open(ctx, f.sinkConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	write(t, s2, 0, 5000)
	if _, err := s2.Flush(); err != nil {
		t.Fatal(err)
	}
	m.Token = l.Token()
	if ok, err := s2.CommitManifest(ctx, m); !ok || err != nil {
		t.Fatalf("CommitManifest: %v, %v", ok, err)
	}
	wantRows(t, f, 0, 5000)
}

// A job fenced out by a takeover cannot commit its rows over the new
// writer's.
func TestFencedOutWriterCommitsNoRows(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	a, sa := f.open(t, "job", ckpt.Config{})
	write(t, sa, 0, 100)
	if _, err := a.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	var pid uint32
	// The key's high half is the schema's oid: other tests' locks have
	// the same row ids in schemas of their own.
	err := f.conn.QueryRow(ctx, fmt.Sprintf(`SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
		AND l.classid::bigint = (SELECT oid FROM pg_namespace WHERE nspname = $1)::bigint
		AND l.objid::bigint = (SELECT id FROM %s.locks WHERE name = 'jobs/job/LOCK')`, f.pg.Schema), f.pg.Schema).Scan(&pid)
	if err != nil {
		t.Fatal(err)
	}
	f.pg.TerminatePID(t, pid)

	b, sb := f.open(t, "job", ckpt.Config{})
	if b.Resumed() == nil {
		t.Fatal("the new writer did not resume")
	}
	write(t, sb, 100, 150)
	write(t, sa, 100, 400) // the old writer goes on meanwhile
	if _, err := b.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Checkpoint(ctx); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("the fenced-out writer's checkpoint: %v, want ErrLeaseLost", err)
	}
	a.Close()
	sa.Close()
	wantRows(t, f, 0, 150)
}

func TestResumeRefusesAChangedTable(t *testing.T) {
	f := newFixture(t)
	j, s := f.open(t, "job", ckpt.Config{})
	write(t, s, 0, 10)
	cp, err := j.Checkpoint(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	j.Close()
	s.Close()
	if _, err := f.conn.Exec(t.Context(), "DELETE FROM "+f.table+" WHERE n = 4"); err != nil {
		t.Fatal(err)
	}
	_, err = pgsink.Open(t.Context(), f.sinkConfig(), cp.Sink)
	if !errors.Is(err, sink.ErrOutputChanged) || !strings.Contains(err.Error(), "9 rows") {
		t.Fatalf("Open on a table that lost a row: %v, want ErrOutputChanged saying 9 rows", err)
	}
}

func TestOpenRefuses(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	other, err := pgstore.Open(ctx, testenv.NewPostgresDatabase(t), pgstore.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := f.conn.Exec(ctx, "CREATE TABLE "+f.pg.Schema+".typed (n bigint, a integer, b text)"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func(c *pgsink.Config)
		want string
	}{
		{"store elsewhere", func(c *pgsink.Config) { c.Store = other }, "not in the same database"},
		{"no store", func(c *pgsink.Config) { c.Store = nil }, "must be PostgreSQL"},
		{"no table", func(c *pgsink.Config) { c.Table = "" }, "no table"},
		{"bad table", func(c *pgsink.Config) { c.Table = "a.b.c" }, "SCHEMA.NAME"},
		{"wrong types", func(c *pgsink.Config) { c.Table = f.pg.Schema + ".typed" }, "a text"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := f.sinkConfig()
			tc.edit(&c)
			s, err := pgsink.Open(ctx, c, nil)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open: %v; want it to say %q", err, tc.want)
			}
		})
	}
}

// A COPY that the server refuses (here: a column of the table that the
// rows do not fill is NOT NULL) fails the rows that follow at once, not
// only at the next checkpoint after every row until then was encoded and
// thrown away.
func TestRefusedRowsFailWriteRow(t *testing.T) {
	f := newFixture(t)
	if _, err := f.conn.Exec(t.Context(), "CREATE TABLE "+f.table+" (n bigint, a text, b text, c text NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	s, err := pgsink.Open(t.Context(), f.sinkConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// 64 MiB of rows, a hundred times the buffers that may be queued when
	// the server's refusal arrives.
	const rows = 1 << 20
	val := []byte(strings.Repeat("x", 60))
	var werr error
	n := 0
	for ; n < rows && werr == nil; n++ {
		werr = s.WriteRow([][]byte{val, val}, nil)
	}
	if werr == nil || !strings.Contains(werr.Error(), `"c"`) {
		t.Fatalf("%d rows written into a table that refuses them: %v; want WriteRow to fail naming column c", n, werr)
	}
	if _, err := s.Flush(); err == nil {
		t.Fatal("Flush after a refused COPY succeeded")
	}
	wantRows(t, f, 0, 0)
}

// The sink's connections end (a server restart, a network cut) while
// rows stream or between the flush and the commit: nothing after the
// last checkpoint is committed, and the job run again resumes from it
// and loads every row once.
func TestConnectionLostBeforeTheCommit(t *testing.T) {
	for _, when := range []string{"streaming", "flushed"} {
		t.Run(when, func(t *testing.T) {
			f := newFixture(t)
			ctx := t.Context()
			app := "ckpt-sink-" + f.pg.Schema // the sink's connections alone
			cfg := f.sinkConfig()
			cfg.URL = f.pg.WithParam("application_name", app)
			open := func() (*ckpt.Job[int], *pgsink.Sink) {
				j, err := ckpt.Open[int](ctx, "job", ckpt.Config{Backend: f.st, NoSignals: true, Logger: quiet})
				if err != nil {
					t.Fatal(err)
				}
				var pos json.RawMessage
				if cp := j.Resumed(); cp != nil {
					pos = cp.Sink
				}
				s, err := pgsink.Open(ctx, cfg, pos)
				if err != nil {
					j.Close()
					t.Fatal(err)
				}
				j.Bind(nil, s)
				return j, s
			}
			j, s := open()
			write(t, s, 0, 100)
			cp1, err := j.Checkpoint(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// Enough rows that a COPY is under way (rows are handed to it
			// 512 KiB at a time).
			const more = 40_000
			write(t, s, 100, more)
			switch when {
			case "streaming":
				if n := f.pg.Terminate(t, app); n != 2 {
					t.Fatalf("terminated %d connections, want the sink's 2", n)
				}
				if _, err := j.Checkpoint(ctx); err == nil {
					t.Fatal("a checkpoint whose rows lost their connection succeeded")
				}
			case "flushed":
				if _, err := s.Flush(); err != nil {
					t.Fatal(err)
				}
				if err := s.Sync(ctx); err != nil {
					t.Fatal(err)
				}
				if n := f.pg.Terminate(t, app); n != 2 {
					t.Fatalf("terminated %d connections, want the sink's 2", n)
				}
				m := ckpt.ManifestCommit{Name: "jobs/job/checkpoints/00000000000000000002", Body: []byte("never committed"), Lock: "jobs/job/LOCK", Token: cp1.Token}
				if ok, err := s.CommitManifest(ctx, m); err == nil || ok {
					t.Fatalf("CommitManifest on a lost connection: %v, %v; want an error", ok, err)
				}
			}
			j.Close()
			s.Close()
			wantRows(t, f, 0, 100)
			if latest, err := ckpt.Latest(ctx, f.st, "job", quiet); err != nil || latest.Seq != cp1.Seq {
				t.Fatalf("newest checkpoint %v, %v; want checkpoint %d", latest, err, cp1.Seq)
			}

			j, s = open()
			defer s.Close()
			defer j.Close()
			if j.Resumed() == nil || j.Resumed().Seq != cp1.Seq {
				t.Fatalf("resumed from %v, want checkpoint %d", j.Resumed(), cp1.Seq)
			}
			write(t, s, 100, more)
			if _, err := j.Finish(ctx); err != nil {
				t.Fatal(err)
			}
			wantRows(t, f, 0, more)
		})
	}
}

// A fresh start whose first checkpoint has no rows: that checkpoint's
// transaction empties the table, and the rows that follow stream into
// the next transaction meanwhile. The TRUNCATE must hold the table before
// their COPY does, else it waits for a transaction that ends only with
// the next checkpoint, which waits for this one: the job would hang.
func TestEmptyFirstCheckpointWhileRowsStream(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	const lock = "jobs/x/LOCK"
	l, err := f.st.Lock(ctx, lock, store.Owner{ID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(context.Background())
	s, err := pgsink.Open(ctx, f.sinkConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := f.conn.Exec(ctx, "INSERT INTO "+f.table+" (n, a) SELECT g, 'old' FROM generate_series(1, 5) g"); err != nil {
		t.Fatal(err)
	}
	commit := func(seq int) error {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		m := ckpt.ManifestCommit{Name: fmt.Sprintf("jobs/x/checkpoints/%020d", seq), Body: []byte("manifest"), Lock: lock, Token: l.Token()}
		_, err := s.CommitManifest(ctx, m)
		return err
	}
	if _, err := s.Flush(); err != nil { // no row yet
		t.Fatal(err)
	}
	// Rows after it: more than a buffer, so that their COPY starts.
	write(t, s, 0, 12_000)
	var table uint32
	if err := f.conn.QueryRow(ctx, "SELECT $1::regclass::oid", f.table).Scan(&table); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		var copying bool
		err := f.conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE relation = $1 AND mode = 'RowExclusiveLock')", table).Scan(&copying)
		if err != nil {
			t.Fatal(err)
		}
		if copying {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the rows' COPY never asked for the table")
		}
		runtime.Gosched()
	}
	if err := commit(1); err != nil {
		t.Fatalf("commit of the first, empty checkpoint: %v", err)
	}
	if _, err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := commit(2); err != nil {
		t.Fatalf("commit of the second checkpoint: %v", err)
	}
	wantRows(t, f, 0, 12_000)
}
