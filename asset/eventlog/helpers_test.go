package eventlog

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ckptdev/ckpt/internal/testenv"
)

// postgresURL is the server the PostgreSQL tests use.
func postgresURL() string {
	if u := os.Getenv("CKPT_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// backend opens logs of one kind, each test in its own database: a SQLite
// file in a temporary directory, or a PostgreSQL schema of its own.
type backend struct {
	name string
	// open returns an opener: every call opens another handle on the same
	// log (as another process would).
	open func(t testing.TB) func(o Options) *Log
}

var backends = []backend{
	{"sqlite", func(t testing.TB) func(Options) *Log {
		path := filepath.Join(t.TempDir(), "events.db")
		return func(o Options) *Log {
			t.Helper()
			l, err := OpenSQLite(context.Background(), path, o)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			return l
		}
	}},
	{"postgres", func(t testing.TB) func(Options) *Log {
		schema := testSchema(t)
		return func(o Options) *Log {
			t.Helper()
			o.Schema = schema
			l, err := OpenPostgres(context.Background(), postgresURL(), o)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			return l
		}
	}},
}

// testSchema returns a fresh schema name for t, dropped when t ends, or
// stops t when no PostgreSQL answers.
func testSchema(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", postgresURL())
	if err == nil {
		err = db.PingContext(ctx)
	}
	if err != nil {
		if db != nil {
			db.Close()
		}
		testenv.Unavailable(t, "PostgreSQL at %s (set CKPT_POSTGRES_URL): %v", redact(postgresURL()), err)
	}
	var b [4]byte
	rand.Read(b[:])
	name := strings.ToLower(strings.NewReplacer("/", "_", "-", "_", "#", "_").Replace(t.Name()))
	if len(name) > 40 {
		name = name[:40]
	}
	schema := "t_" + name + "_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		db.Exec(`DROP SCHEMA IF EXISTS "` + schema + `" CASCADE`)
		db.Close()
	})
	return schema
}

// forEachBackend runs f as a subtest per backend.
func forEachBackend(t *testing.T, f func(t *testing.T, open func(Options) *Log)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			f(t, b.open(t))
		})
	}
}
