package eventlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// OpenPostgres opens the PostgreSQL event log at url (a libpq URL such as
// postgres://user@host:5432/db?sslmode=disable), creating its tables (in
// o.Schema, if given) when missing. Concurrent openers migrate one at a
// time, under an advisory lock.
func OpenPostgres(ctx context.Context, url string, o Options) (*Log, error) {
	if err := o.fill(); err != nil {
		return nil, err
	}
	if o.SyncFull {
		return nil, errors.New("eventlog: SyncFull applies to SQLite only (PostgreSQL commits are durable)")
	}
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, fmt.Errorf("eventlog: open %s: %w", redact(url), err)
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(4)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("eventlog: connect to %s: %w", redact(url), err)
	}
	d := &dialect{
		name:     "postgres",
		dollar:   true,
		idColumn: "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
		// The key is arbitrary but fixed: it names "ckpt asset event log
		// migrations" among the database's advisory locks.
		lockMigrations: "SELECT pg_advisory_xact_lock(7235046829771401001)",
		maxParams:      60000,
	}
	if o.Schema != "" {
		d.prefix = `"` + o.Schema + `".`
	}
	return open(ctx, db, d, url, o)
}

// isRetryable reports whether a transaction failed only because of other
// transactions (a deadlock, a serialization failure): running it again
// may succeed.
func isRetryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

func isPgUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}
