package pgstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/url"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ckptdev/ckpt/internal/testenv"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/pgstore"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		url        string
		schema     string
		table      string
		app        string
		wantErr    string
		notInError string
	}{
		{url: "postgres://u:pw@db.example:6543/prod?sslmode=disable", schema: "ckpt", app: "ckpt"},
		{url: "postgresql://u@h/d?schema=etl&table=orders&application_name=loader", schema: "etl", table: "orders", app: "loader"},
		{url: "postgres://u@h/d?table=public.orders&sslmode=disable&pool_max_conns=2", schema: "ckpt", table: "public.orders", app: "ckpt"},
		{url: "postgres://u:hunter2hunter2@h/d?schema=bad-name", wantErr: "schema", notInError: "hunter2hunter2"},
		{url: "postgres://u:hunter2hunter2@h/d?schema=1abc", wantErr: "digit", notInError: "hunter2hunter2"},
		{url: "postgres://u:hunter2hunter2@h/d?sslmode=sometimes", wantErr: "sslmode", notInError: "hunter2hunter2"},
		{url: "file:///tmp/x", wantErr: "not a postgres"},
	}
	for _, tc := range tests {
		cfg, err := pgstore.ParseURL(tc.url)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, store.ErrBadURL) {
				t.Errorf("ParseURL(%q): %v, want an ErrBadURL error mentioning %q", tc.url, err, tc.wantErr)
			}
			if err != nil && tc.notInError != "" && strings.Contains(err.Error(), tc.notInError) {
				t.Errorf("ParseURL(%q): the error shows the password: %v", tc.url, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tc.url, err)
			continue
		}
		if cfg.Params.Schema != tc.schema || cfg.Params.Table != tc.table {
			t.Errorf("ParseURL(%q): params %+v, want schema %q table %q", tc.url, cfg.Params, tc.schema, tc.table)
		}
		rp := cfg.Pool.ConnConfig.RuntimeParams
		// ckpt's parameters must not reach the server as settings.
		for _, k := range []string{"schema", "table"} {
			if _, ok := rp[k]; ok {
				t.Errorf("ParseURL(%q): %q is passed to the server", tc.url, k)
			}
		}
		if rp["application_name"] != tc.app {
			t.Errorf("ParseURL(%q): application_name %q, want %q", tc.url, rp["application_name"], tc.app)
		}
		if strings.Contains(cfg.Redacted, "pw@") || strings.Contains(cfg.Where(), "pw") {
			t.Errorf("ParseURL(%q): the password shows in %q or %q", tc.url, cfg.Redacted, cfg.Where())
		}
	}
}

// ckpt's own parameters work against the real server, which refuses
// settings it does not know: a stripped URL is the only way this opens.
func TestOpenWithCkptParams(t *testing.T) {
	t.Parallel()
	pg := testenv.NewPostgres(t)
	st := openStore(t, pg.WithParam("table", "some_output"), pgstore.Options{})
	defer st.Close()
	if st.Schema() != pg.Schema {
		t.Fatalf("schema %q, want %q", st.Schema(), pg.Schema)
	}
	if err := st.Put(t.Context(), "a/b", bytes.NewReader([]byte("x"))); err != nil {
		t.Fatal(err)
	}
}

func TestOpenErrorsSayWhatToCheck(t *testing.T) {
	t.Parallel()
	pg := testenv.NewPostgres(t)
	base, err := url.Parse(pg.Base)
	if err != nil {
		t.Fatal(err)
	}
	const secret = "s3cret-Passw0rd"
	with := func(edit func(u *url.URL)) string {
		u := *base
		edit(&u)
		return u.String()
	}
	tests := []struct {
		name string
		url  string
		want []string
	}{
		{"nothing listens", with(func(u *url.URL) {
			u.User = url.UserPassword("ckptuser", secret)
			u.Host = "127.0.0.1:1"
		}), []string{"cannot connect", "host 127.0.0.1 port 1", "user ckptuser", "check that the server runs"}},
		{"no such database", with(func(u *url.URL) {
			u.User = url.UserPassword(base.User.Username(), secret)
			u.Path = "/ckpt_no_such_database"
		}), []string{`database "ckpt_no_such_database" does not exist`, "create it"}},
		{"no such user", with(func(u *url.URL) {
			u.User = url.UserPassword("ckpt_no_such_role", secret)
		}), []string{"refused the login", "user ckpt_no_such_role", "pg_hba.conf"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := pgstore.Open(t.Context(), tc.url, pgstore.Options{Logger: slog.New(slog.DiscardHandler)})
			if err == nil {
				st.Close()
				t.Fatal("Open succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error shows the password: %q", err)
			}
		})
	}
}

// Many processes opening a new store at once create its tables once.
func TestConcurrentOpensMigrateOnce(t *testing.T) {
	t.Parallel()
	pg := testenv.NewPostgres(t)
	schema := pg.Schema + "_new" // not there yet: the openers create it
	conn := pg.Conn(t)
	t.Cleanup(func() { conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE") })
	const openers = 8
	stores := make([]*pgstore.Store, openers)
	errs := make([]error, openers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range openers {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = pgstore.Open(t.Context(), pg.WithParam("schema", schema), pgstore.Options{})
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("opener %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	rows, err := conn.Query(t.Context(), fmt.Sprintf("SELECT version FROM %s.schema_migrations ORDER BY version", schema))
	if err != nil {
		t.Fatal(err)
	}
	var versions []int
	for rows.Next() {
		var v int
		rows.Scan(&v)
		versions = append(versions, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var want []int
	for v := 1; v <= pgstore.SchemaVersion(); v++ {
		want = append(want, v)
	}
	if !slices.Equal(versions, want) {
		t.Fatalf("schema_migrations holds %v, want each of %v once", versions, want)
	}
	var metas int
	if err := conn.QueryRow(t.Context(), fmt.Sprintf("SELECT count(*) FROM %s.meta", schema)).Scan(&metas); err != nil || metas != 1 {
		t.Fatalf("meta has %d rows (%v), want 1", metas, err)
	}
	for i, st := range stores {
		if st.Instance() != stores[0].Instance() || st.Instance() == "" {
			t.Fatalf("store %d has instance %q, store 0 %q", i, st.Instance(), stores[0].Instance())
		}
	}
	// Each sees the others' objects: one set of tables.
	if err := stores[3].Put(t.Context(), "shared", bytes.NewReader([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	if names, err := stores[5].List(t.Context(), ""); err != nil || !slices.Equal(names, []string{"shared"}) {
		t.Fatalf("List: %q, %v", names, err)
	}
}

func TestSchemaFromNewerVersionIsRefused(t *testing.T) {
	t.Parallel()
	pg := testenv.NewPostgres(t)
	st := openStore(t, pg.URL, pgstore.Options{})
	st.Close()
	future := pgstore.SchemaVersion() + 7
	if _, err := pg.Conn(t).Exec(t.Context(), fmt.Sprintf("INSERT INTO %s.schema_migrations (version) VALUES (%d)", pg.Schema, future)); err != nil {
		t.Fatal(err)
	}
	st, err := pgstore.Open(t.Context(), pg.URL, pgstore.Options{})
	if err == nil {
		st.Close()
		t.Fatal("Open of a schema from a newer ckpt succeeded")
	}
	if !errors.Is(err, pgstore.ErrSchemaTooNew) || !strings.Contains(err.Error(), fmt.Sprint(future)) || !strings.Contains(err.Error(), "upgrade ckpt") {
		t.Fatalf("Open: %v; want ErrSchemaTooNew naming version %d and saying to upgrade", err, future)
	}
}

// List matches prefixes literally ('_' and '%' are LIKE's wildcards, not
// ckpt's), and uses the primary key's index.
func TestListPrefixIsLiteralAndIndexed(t *testing.T) {
	t.Parallel()
	pg := testenv.NewPostgres(t)
	st := openStore(t, pg.URL, pgstore.Options{})
	defer st.Close()
	names := []string{"a_b/1", "aXb/2", "a_c", "ab", "a", "b"}
	for _, n := range names {
		if err := st.Put(t.Context(), n, bytes.NewReader([]byte(n))); err != nil {
			t.Fatal(err)
		}
	}
	for prefix, want := range map[string][]string{
		"a_":  {"a_b/1", "a_c"},
		"a_b": {"a_b/1"},
		"aX":  {"aXb/2"},
		"a":   {"a", "aXb/2", "a_b/1", "a_c", "ab"},
	} {
		got, err := st.List(t.Context(), prefix)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("List %q = %q, %v; want %q", prefix, got, err, want)
		}
	}
	conn := pg.Conn(t)
	if _, err := conn.Exec(t.Context(), "SET enable_seqscan = off"); err != nil {
		t.Fatal(err)
	}
	var plan strings.Builder
	rows, err := conn.Query(t.Context(), fmt.Sprintf("EXPLAIN SELECT name FROM %s.objects WHERE name >= 'a_' AND name < 'a`' ORDER BY name", pg.Schema))
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var line string
		rows.Scan(&line)
		plan.WriteString(line + "\n")
	}
	if !strings.Contains(plan.String(), "Index Cond: ((name >= 'a_'::text) AND (name < 'a`'::text))") {
		t.Fatalf("the List query's range is not an index condition:\n%s", plan.String())
	}
}

// streamReader yields n pseudo-random bytes without holding them.
type streamReader struct {
	n   int64
	rnd *mrand.ChaCha8
}

func (s *streamReader) Read(p []byte) (int, error) {
	if s.n <= 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), s.n)]
	s.rnd.Read(p)
	s.n -= int64(len(p))
	return len(p), nil
}

// heapPeak samples the live heap until stop is called and returns the
// largest growth over the heap at the start.
func heapPeak() (stop func() uint64) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	runtime.GC()
	base := read()
	var peak uint64
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if v := read(); v > base && v-base > peak {
					peak = v - base
				}
			}
		}
	}()
	return func() uint64 { close(done); <-finished; return peak }
}

// Objects stream through in parts: a write or read of 96 MiB holds a few
// parts in memory, not the object.
func TestMemoryIsBoundedByThePartSize(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: streams a large object")
	}
	// Not parallel: the heap it measures is the whole test binary's.
	pg := testenv.NewPostgres(t)
	st := openStore(t, pg.URL, pgstore.Options{})
	defer st.Close()
	const size, limit = 96 << 20, 24 << 20
	seed := [32]byte{1}
	stop := heapPeak()
	err := st.Put(t.Context(), "big", &streamReader{n: size, rnd: mrand.NewChaCha8(seed)})
	if peak := stop(); err != nil || peak > limit {
		t.Fatalf("Put of %d MiB: %v; the heap grew by %d MiB (limit %d MiB)", size>>20, err, peak>>20, limit>>20)
	}
	stop = heapPeak()
	rc, err := st.Get(t.Context(), "big")
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	n, err := io.Copy(got, rc)
	rc.Close()
	peak := stop()
	want := sha256.New()
	io.Copy(want, &streamReader{n: size, rnd: mrand.NewChaCha8(seed)})
	if err != nil || n != size || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatalf("Get: %d bytes, %v; or not the bytes written", n, err)
	}
	if peak > limit {
		t.Fatalf("Get of %d MiB: the heap grew by %d MiB (limit %d MiB)", size>>20, peak>>20, limit>>20)
	}
}

// A user without the right to create schemas can use a schema it owns,
// and is told what to grant when it owns none.
func TestUserWithoutCreatePrivilege(t *testing.T) {
	t.Parallel()
	pg := testenv.NewPostgres(t)
	conn := pg.Conn(t)
	role := pg.Schema + "_user"
	own := pg.Schema + "_own"
	for _, q := range []string{
		"CREATE ROLE " + role + " LOGIN",
		"CREATE SCHEMA " + own + " AUTHORIZATION " + role,
	} {
		if _, err := conn.Exec(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+own+" CASCADE")
		conn.Exec(context.Background(), "DROP ROLE IF EXISTS "+role)
	})
	var canCreate bool
	if err := conn.QueryRow(t.Context(), "SELECT has_database_privilege($1, current_database(), 'CREATE')", role).Scan(&canCreate); err != nil {
		t.Fatal(err)
	}
	if canCreate {
		t.Skip("every role may create schemas in this database")
	}
	u, err := url.Parse(pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	q := u.Query()

	q.Set("schema", own)
	u.RawQuery = q.Encode()
	st := openStore(t, u.String(), pgstore.Options{})
	if err := st.Put(t.Context(), "x", bytes.NewReader([]byte("y"))); err != nil {
		t.Fatalf("Put in the user's own schema: %v", err)
	}
	st.Close()

	q.Set("schema", pg.Schema+"_other")
	u.RawQuery = q.Encode()
	st, err = pgstore.Open(t.Context(), u.String(), pgstore.Options{Logger: slog.New(slog.DiscardHandler)})
	if err == nil {
		st.Close()
		t.Fatal("Open created a schema without the privilege")
	}
	if !strings.Contains(err.Error(), "may not create or use schema") || !strings.Contains(err.Error(), "grant it CREATE") {
		t.Fatalf("Open without the privilege: %v; want it to say what to grant", err)
	}
}

// ckpt's statements rely on read committed (each statement sees what
// committed before it started, after the locks it waited for): a role or
// database whose default is repeatable read must not break concurrent
// opens or writes of one name.
func TestReadCommittedWhateverTheRoleDefault(t *testing.T) {
	t.Parallel()
	pg := testenv.NewPostgres(t)
	conn := pg.Conn(t)
	role := pg.Schema + "_rr"
	schema := pg.Schema + "_rr"
	for _, q := range []string{
		"CREATE ROLE " + role + " LOGIN",
		"ALTER ROLE " + role + " SET default_transaction_isolation = 'repeatable read'",
		"GRANT CREATE ON DATABASE " + pgx.Identifier{pgDatabase(t, conn)}.Sanitize() + " TO " + role,
	} {
		if _, err := conn.Exec(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		conn.Exec(context.Background(), "DROP OWNED BY "+role+" CASCADE")
		conn.Exec(context.Background(), "DROP ROLE IF EXISTS "+role)
	})
	u, err := url.Parse(pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	q := u.Query()
	q.Set("schema", schema)
	u.RawQuery = q.Encode()

	const n = 8
	stores := make([]*pgstore.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			stores[i], errs[i] = pgstore.Open(t.Context(), u.String(), pgstore.Options{Logger: slog.New(slog.DiscardHandler)})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent open %d of a new schema: %v", i, err)
		}
		defer stores[i].Close()
	}
	var iso string
	if err := conn.QueryRow(t.Context(), "SELECT setting FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole, unnest(s.setconfig) setting WHERE r.rolname = $1", role).Scan(&iso); err != nil || !strings.Contains(iso, "repeatable read") {
		t.Fatalf("the role's default isolation is %q (%v): the test does not test", iso, err)
	}
	for round := range 20 {
		for i, st := range stores {
			wg.Go(func() {
				errs[i] = st.Put(t.Context(), "same", bytes.NewReader([]byte(fmt.Sprint(round, i))))
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: concurrent Put %d of one name: %v", round, i, err)
			}
		}
	}
}

func pgDatabase(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	var db string
	if err := conn.QueryRow(t.Context(), "SELECT current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	return db
}
