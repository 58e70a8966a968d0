package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrSchemaTooNew: the schema was migrated by a newer ckpt, whose tables
// this one must not write.
var ErrSchemaTooNew = errors.New("store schema is newer than this ckpt")

// migrations are the versions of ckpt's tables; migrations[v-1] takes the
// schema from version v-1 to v. A released migration is never edited: a
// change is a new one appended. "{s}" stands for the quoted schema.
var migrations = []string{
	// 1: objects in parts, locks with fencing tokens.
	`CREATE TABLE {s}.meta (
		instance text NOT NULL,
		created timestamptz NOT NULL DEFAULT now()
	);
	INSERT INTO {s}.meta (instance) VALUES (md5(random()::text || clock_timestamp()::text || pg_backend_pid()::text));
	CREATE SEQUENCE {s}.object_ids;
	CREATE TABLE {s}.objects (
		name text COLLATE "C" PRIMARY KEY,
		id bigint NOT NULL UNIQUE,
		size bigint NOT NULL,
		written timestamptz NOT NULL DEFAULT now()
	);
	CREATE TABLE {s}.parts (
		object_id bigint NOT NULL REFERENCES {s}.objects (id) ON DELETE CASCADE,
		n integer NOT NULL,
		data bytea NOT NULL,
		PRIMARY KEY (object_id, n)
	);
	-- State is compressed by ckpt already: spare the server trying again.
	ALTER TABLE {s}.parts ALTER COLUMN data SET STORAGE EXTERNAL;
	CREATE TABLE {s}.locks (
		name text COLLATE "C" PRIMARY KEY,
		id serial NOT NULL UNIQUE,
		token bigint NOT NULL DEFAULT 0,
		holder jsonb,
		acquired timestamptz
	);`,
}

// SchemaVersion returns the version of ckpt's tables that this code
// writes: the number of migrations it knows.
func SchemaVersion() int { return len(migrations) }

// migrationLockClass is the first key of the transaction-level advisory
// lock that serializes migrations of a schema ("ckpt" in ASCII); the
// second is a hash of the schema's name, which need not exist yet.
const migrationLockClass = 0x636b7074

// migrate brings the schema to SchemaVersion. Concurrent openers are safe: the
// work happens in one transaction under an advisory lock, so one of them
// migrates and the others find it done; a crash midway rolls it all back.
func (s *Store) migrate(ctx context.Context) error {
	// The common case, the schema up to date, costs one query and needs
	// no privilege to create anything.
	var v int
	err := s.retry(ctx, "read the schema version", func(ctx context.Context) (err error) {
		v, err = s.schemaVersion(ctx, s.pool)
		return err
	})
	if err == nil && v == SchemaVersion() {
		return nil
	}
	if err == nil && v > SchemaVersion() {
		return s.tooNew(v)
	}
	if err != nil && !missingSchema(err) {
		return s.openError(err)
	}
	err = s.retry(ctx, "migrate", func(ctx context.Context) error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return s.migrateTx(ctx, tx) })
	})
	if err != nil {
		return s.openError(fmt.Errorf("create or migrate ckpt's tables: %w", err))
	}
	return nil
}

func (s *Store) migrateTx(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, int32(migrationLockClass), s.schema); err != nil {
		return err
	}
	sch := ident(s.schema)
	// CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege on the
	// database even when the schema exists: a user given a schema of its
	// own must not need it.
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, s.schema).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		if _, err := tx.Exec(ctx, `CREATE SCHEMA `+sch); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+ident(s.schema, "schema_migrations")+` (
		version integer PRIMARY KEY,
		applied timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return err
	}
	v, err := s.schemaVersion(ctx, tx)
	if err != nil {
		return err
	}
	if v > SchemaVersion() {
		return s.tooNew(v)
	}
	for ; v < SchemaVersion(); v++ {
		if _, err := tx.Exec(ctx, strings.ReplaceAll(migrations[v], "{s}", sch)); err != nil {
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+ident(s.schema, "schema_migrations")+` (version) VALUES ($1)`, v+1); err != nil {
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
		s.log.Debug("pgstore: migrated ckpt's tables", "schema", s.schema, "version", v+1)
	}
	return nil
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (s *Store) schemaVersion(ctx context.Context, q querier) (int, error) {
	var v int
	err := q.QueryRow(ctx, s.q.migrationsVer).Scan(&v)
	return v, err
}

func (s *Store) tooNew(v int) error {
	return fmt.Errorf("pgstore: %w: schema %q is at version %d and this ckpt knows versions up to %d: upgrade ckpt, or use another schema (?schema=NAME)",
		ErrSchemaTooNew, s.schema, v, SchemaVersion())
}

// missingSchema reports whether err says the schema or its migrations
// table does not exist yet.
func missingSchema(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "3F000" || pe.Code == "42P01")
}
