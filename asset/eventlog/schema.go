package eventlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// schemaVersion is the version of the tables this package writes. A log
// whose recorded version is higher was written by a newer ckpt and is
// refused rather than misread; a lower one is migrated forward.
const schemaVersion = 2

// dialect holds what differs between the backends; the SQL is otherwise
// shared, written with ? placeholders.
type dialect struct {
	name string
	// dollar: placeholders are $1, $2, ... (PostgreSQL).
	dollar bool
	// idColumn declares the events table's increasing primary key.
	idColumn string
	// prefix qualifies table names (a PostgreSQL schema and a dot).
	prefix string
	// lockMigrations runs in the migration transaction before anything
	// else, so that concurrent openers migrate one at a time.
	lockMigrations string
	// maxParams bounds the placeholders of one statement.
	maxParams int
}

// q rewrites a statement for the dialect: table names qualified, and
// placeholders numbered for PostgreSQL. Statements contain no literal '?'.
func (d *dialect) q(s string) string {
	s = strings.ReplaceAll(s, "{p}", d.prefix)
	if !d.dollar {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// The tables. Times are microseconds since the Unix epoch (0: none), so
// that both backends store and compare them the same way. Bodies are JSON.
//
// asset_state has one row per asset partition ("" for an unpartitioned
// asset) holding copies of its newest materialization and failure events;
// the writer updates it in the transaction that inserts the event, and
// only forward (a higher event id wins), so concurrent runs cannot make it
// go back.
var ddl = []string{
	`CREATE TABLE IF NOT EXISTS {p}asset_meta (
		k TEXT PRIMARY KEY,
		v TEXT NOT NULL
	)`,
	`CREATE TABLE IF NOT EXISTS {p}asset_runs (
		run_id TEXT PRIMARY KEY,
		parent_id TEXT NOT NULL,
		root_id TEXT NOT NULL,
		status TEXT NOT NULL,
		created_us BIGINT NOT NULL,
		ended_us BIGINT NOT NULL DEFAULT 0,
		heartbeat_us BIGINT NOT NULL DEFAULT 0,
		host TEXT NOT NULL DEFAULT '',
		pid INTEGER NOT NULL DEFAULT 0,
		spec TEXT NOT NULL DEFAULT '',
		error TEXT NOT NULL DEFAULT '',
		heartbeat_interval_us BIGINT NOT NULL DEFAULT 0,
		dead_after_us BIGINT NOT NULL DEFAULT 0
	)`,
	// A run is resumed at most once: two processes resuming the same run
	// at the same instant cannot both start a child.
	`CREATE UNIQUE INDEX IF NOT EXISTS asset_runs_parent ON {p}asset_runs (parent_id) WHERE parent_id <> ''`,
	`CREATE INDEX IF NOT EXISTS asset_runs_created ON {p}asset_runs (created_us)`,
	`CREATE INDEX IF NOT EXISTS asset_runs_root ON {p}asset_runs (root_id)`,
	`CREATE TABLE IF NOT EXISTS {p}asset_events (
		id {id},
		run_id TEXT NOT NULL,
		ts_us BIGINT NOT NULL,
		kind TEXT NOT NULL,
		asset_key TEXT NOT NULL,
		partition_key TEXT NOT NULL,
		body TEXT NOT NULL
	)`,
	`CREATE INDEX IF NOT EXISTS asset_events_run ON {p}asset_events (run_id, id)`,
	`CREATE INDEX IF NOT EXISTS asset_events_asset ON {p}asset_events (asset_key, partition_key, id)`,
	`CREATE INDEX IF NOT EXISTS asset_events_ts ON {p}asset_events (ts_us)`,
	`CREATE TABLE IF NOT EXISTS {p}asset_state (
		asset_key TEXT NOT NULL,
		partition_key TEXT NOT NULL,
		mat_id BIGINT NOT NULL DEFAULT 0,
		mat_body TEXT NOT NULL DEFAULT '',
		fail_id BIGINT NOT NULL DEFAULT 0,
		fail_body TEXT NOT NULL DEFAULT '',
		PRIMARY KEY (asset_key, partition_key)
	)`,
}

// upgrades[v] takes tables of version v+1 to version v+2.
var upgrades = [][]string{
	// 1 -> 2: runs record their liveness settings; a step found fresh is
	// an event of its own kind (it was a skip whose message began with
	// "fresh").
	{
		`ALTER TABLE {p}asset_runs ADD COLUMN heartbeat_interval_us BIGINT NOT NULL DEFAULT 0`,
		`ALTER TABLE {p}asset_runs ADD COLUMN dead_after_us BIGINT NOT NULL DEFAULT 0`,
		`UPDATE {p}asset_events SET kind = 'step_fresh', body = replace(body, '"kind":"step_skipped"', '"kind":"step_fresh"')
			WHERE kind = 'step_skipped' AND body LIKE '%"message":"fresh%'`,
	},
}

// migrate creates the tables, or checks that their version is one this
// package reads.
func (l *Log) migrate(ctx context.Context) error {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("eventlog: migrate %s: %w", l, err)
	}
	defer tx.Rollback()
	if l.d.lockMigrations != "" {
		if _, err := tx.ExecContext(ctx, l.d.lockMigrations); err != nil {
			return fmt.Errorf("eventlog: migrate %s: lock: %w", l, err)
		}
	}
	if l.d.name == "postgres" {
		if err := l.createSchema(ctx, tx); err != nil {
			return err
		}
	}
	for _, s := range ddl {
		s = strings.ReplaceAll(s, "{id}", l.d.idColumn)
		if _, err := tx.ExecContext(ctx, l.d.q(s)); err != nil {
			return fmt.Errorf("eventlog: migrate %s: %w", l, err)
		}
	}
	var v string
	err = tx.QueryRowContext(ctx, l.d.q(`SELECT v FROM {p}asset_meta WHERE k = 'schema_version'`)).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, l.d.q(`INSERT INTO {p}asset_meta (k, v) VALUES ('schema_version', ?)`), strconv.Itoa(schemaVersion)); err != nil {
			return fmt.Errorf("eventlog: migrate %s: %w", l, err)
		}
	case err != nil:
		return fmt.Errorf("eventlog: migrate %s: %w", l, err)
	default:
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("eventlog: %s: bad schema version %q", l, v)
		}
		if n > schemaVersion {
			return fmt.Errorf("eventlog: %s was written by a newer ckpt (schema %d; this one reads %d): upgrade ckpt", l, n, schemaVersion)
		}
		if n < 1 {
			return fmt.Errorf("eventlog: %s: bad schema version %d", l, n)
		}
		if n < schemaVersion {
			for _, up := range upgrades[n-1:] {
				for _, q := range up {
					if _, err := tx.ExecContext(ctx, l.d.q(q)); err != nil {
						return fmt.Errorf("eventlog: upgrade %s from schema %d: %w", l, n, err)
					}
				}
			}
			if _, err := tx.ExecContext(ctx, l.d.q(`UPDATE {p}asset_meta SET v = ? WHERE k = 'schema_version'`), strconv.Itoa(schemaVersion)); err != nil {
				return fmt.Errorf("eventlog: upgrade %s: %w", l, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("eventlog: migrate %s: %w", l, err)
	}
	return nil
}

// createSchema creates the PostgreSQL schema the tables go in when it does
// not exist yet: Options.Schema, or else the first schema of the
// connection's search_path (a search_path=NAME parameter of the URL).
func (l *Log) createSchema(ctx context.Context, tx *sql.Tx) error {
	name := l.opts.Schema
	if name == "" {
		var cur sql.NullString
		if err := tx.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&cur); err != nil {
			return fmt.Errorf("eventlog: migrate %s: %w", l, err)
		}
		if cur.Valid {
			return nil // the tables go in an existing schema
		}
		var path string
		if err := tx.QueryRowContext(ctx, `SELECT current_setting('search_path')`).Scan(&path); err != nil {
			return fmt.Errorf("eventlog: migrate %s: %w", l, err)
		}
		if name = firstSchema(path); name == "" {
			return fmt.Errorf("eventlog: %s: the search_path %q names no schema to create the tables in: name one (search_path=NAME in the URL)", l, path)
		}
	}
	quoted := `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
	if _, err := tx.ExecContext(ctx, `CREATE SCHEMA IF NOT EXISTS `+quoted); err != nil {
		return fmt.Errorf("eventlog: %s: create schema %s: %w", l, quoted, err)
	}
	return nil
}

// firstSchema returns the first schema a PostgreSQL search_path names, as
// the server reads it: unquoted names in lower case, quoted ones as they
// are; "$user" (the role's own schema) and empty entries are passed over.
func firstSchema(path string) string {
	for len(path) > 0 {
		path = strings.TrimLeft(path, " \t")
		var item string
		if strings.HasPrefix(path, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(path); i++ {
				if path[i] == '"' {
					if i+1 < len(path) && path[i+1] == '"' {
						b.WriteByte('"')
						i++
						continue
					}
					break
				}
				b.WriteByte(path[i])
			}
			item, path = b.String(), path[min(i+1, len(path)):]
			if item == "$user" {
				item = ""
			}
		} else {
			item, path, _ = strings.Cut(path, ",")
			item = strings.ToLower(strings.TrimSpace(item))
			if item == "$user" {
				item = ""
			}
		}
		path = strings.TrimLeft(path, " \t")
		path = strings.TrimPrefix(path, ",")
		if item != "" {
			return item
		}
	}
	return ""
}
