package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ckptdev/ckpt/store"
)

// DefaultPostgresURL is the server the tests use when CKPT_POSTGRES_URL is
// not set: the local one, as CI starts it.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// PostgresURL returns CKPT_POSTGRES_URL, or DefaultPostgresURL.
func PostgresURL() string {
	if u := os.Getenv("CKPT_POSTGRES_URL"); u != "" {
		return u
	}
	return DefaultPostgresURL
}

// Postgres is a schema of its own for one test, in the database of
// PostgresURL, dropped with everything in it when the test ends.
type Postgres struct {
	// Schema is the schema's name, unique to the test.
	Schema string
	// URL is PostgresURL with schema=Schema set: a store opened on it
	// keeps its tables in Schema.
	URL string
	// Base is PostgresURL, without the schema parameter.
	Base string
}

// WithParam returns the test's URL with one more query parameter.
func (p *Postgres) WithParam(key, value string) string {
	u, err := url.Parse(p.URL)
	if err != nil {
		panic(err) // parsed once already in NewPostgres
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

// Conn opens a plain connection to the test's database, closed when the
// test ends, for checking what the code under test wrote.
func (p *Postgres) Conn(t testing.TB) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, p.Base)
	if err != nil {
		t.Fatalf("connect to PostgreSQL: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// Terminate ends, with pg_terminate_backend, the server processes whose
// application_name is app, as a dropped connection or a restarted server
// would, and returns how many there were. It returns once they have
// exited.
func (p *Postgres) Terminate(t testing.TB, app string) int {
	t.Helper()
	var n int
	err := p.Conn(t).QueryRow(context.Background(),
		`SELECT count(*) FROM (SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()) t`, app).Scan(&n)
	if err != nil {
		t.Fatalf("terminate backends of %s: %v", app, err)
	}
	return n
}

// TerminatePID ends the server process pid and returns once it has
// exited.
func (p *Postgres) TerminatePID(t testing.TB, pid uint32) {
	t.Helper()
	var ok bool
	if err := p.Conn(t).QueryRow(context.Background(), `SELECT pg_terminate_backend($1, 10000)`, int32(pid)).Scan(&ok); err != nil || !ok {
		t.Fatalf("terminate backend %d: %v, %v", pid, ok, err)
	}
}

var sweepOnce sync.Once

// NewPostgres creates a fresh schema for the test and drops it (CASCADE)
// when the test ends, after the test's own cleanups. A server that does
// not answer makes the test Unavailable.
func NewPostgres(t testing.TB) *Postgres {
	t.Helper()
	base := PostgresURL()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("CKPT_POSTGRES_URL: cannot parse it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		Unavailable(t, "PostgreSQL at %s does not answer (%v): start it, or point CKPT_POSTGRES_URL at one", store.Redact(u), err)
	}
	defer conn.Close(context.Background())
	sweepOnce.Do(func() { sweep(ctx, conn) })

	var r [6]byte
	rand.Read(r[:])
	schema := fmt.Sprintf("ckpt_t%d_%s", time.Now().Unix(), hex.EncodeToString(r[:]))
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	q := u.Query()
	q.Set("schema", schema)
	u.RawQuery = q.Encode()
	return &Postgres{Schema: schema, URL: u.String(), Base: base}
}

// sweep drops the schemas and databases of test runs that were killed
// before their cleanups ran, once they are a day old.
func sweep(ctx context.Context, conn *pgx.Conn) {
	for _, kind := range []struct{ list, drop string }{
		{`SELECT nspname FROM pg_namespace WHERE nspname LIKE 'ckpt\_t%'`, "DROP SCHEMA IF EXISTS %s CASCADE"},
		{`SELECT datname FROM pg_database WHERE datname LIKE 'ckpt\_t%'`, "DROP DATABASE IF EXISTS %s WITH (FORCE)"},
	} {
		rows, err := conn.Query(ctx, kind.list)
		if err != nil {
			return
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return
		}
		for _, n := range names {
			stamp, _, ok := strings.Cut(strings.TrimPrefix(n, "ckpt_t"), "_")
			sec, err := strconv.ParseInt(stamp, 10, 64)
			if !ok || err != nil || time.Since(time.Unix(sec, 0)) < 24*time.Hour {
				continue
			}
			conn.Exec(ctx, fmt.Sprintf(kind.drop, pgx.Identifier{n}.Sanitize()))
		}
	}
}

// NewPostgresDatabase creates a fresh database on the server of
// PostgresURL, dropped when the test ends, and returns its URL, for tests
// that need two databases.
func NewPostgresDatabase(t testing.TB) string {
	t.Helper()
	base := PostgresURL()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("CKPT_POSTGRES_URL: cannot parse it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		Unavailable(t, "PostgreSQL at %s does not answer (%v): start it, or point CKPT_POSTGRES_URL at one", store.Redact(u), err)
	}
	defer conn.Close(context.Background())
	var r [6]byte
	rand.Read(r[:])
	name := fmt.Sprintf("ckpt_t%d_%s", time.Now().Unix(), hex.EncodeToString(r[:]))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}
