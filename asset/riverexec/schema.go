package riverexec

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// The tables of this package, beside River's in the same schema.
//
// ckpt_runs has a row per submitted run: how many of its steps have not
// ended (the transaction that takes it to zero records the run's end),
// and whether it was canceled. ckpt_steps has a row per step: its
// downstream steps, how many of its upstream have not succeeded, its
// state (waiting: upstream pending; queued: its job is in River; done),
// its current River job, and the fencing token of its newest execution
// (incremented by each lease, checked by the commit). ckpt_workers has a
// row per worker process and its heartbeat. ckpt_fenced records the
// commits refused because their lease was lost.
var ddl = []string{
	`CREATE TABLE IF NOT EXISTS {s}.ckpt_runs (
		run_id TEXT PRIMARY KEY,
		steps INTEGER NOT NULL,
		remaining INTEGER NOT NULL,
		failed INTEGER NOT NULL DEFAULT 0,
		skipped INTEGER NOT NULL DEFAULT 0,
		succeeded INTEGER NOT NULL DEFAULT 0,
		canceled BOOLEAN NOT NULL DEFAULT false,
		first_error TEXT NOT NULL DEFAULT '',
		created_us BIGINT NOT NULL
	)`,
	`CREATE TABLE IF NOT EXISTS {s}.ckpt_steps (
		run_id TEXT NOT NULL,
		idx INTEGER NOT NULL,
		asset_key TEXT NOT NULL,
		partition_key TEXT NOT NULL,
		down INTEGER[] NOT NULL,
		pending INTEGER NOT NULL,
		state TEXT NOT NULL,
		outcome TEXT NOT NULL DEFAULT '',
		job_id BIGINT NOT NULL DEFAULT 0,
		token BIGINT NOT NULL DEFAULT 0,
		attempt INTEGER NOT NULL DEFAULT 1,
		worker TEXT NOT NULL DEFAULT '',
		executions INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (run_id, idx)
	)`,
	`CREATE INDEX IF NOT EXISTS ckpt_steps_job ON {s}.ckpt_steps (job_id)`,
	`CREATE INDEX IF NOT EXISTS ckpt_steps_queued ON {s}.ckpt_steps (job_id) WHERE state = 'queued'`,
	`CREATE TABLE IF NOT EXISTS {s}.ckpt_workers (
		id TEXT PRIMARY KEY,
		host TEXT NOT NULL,
		pid INTEGER NOT NULL,
		parallel INTEGER NOT NULL,
		started_us BIGINT NOT NULL,
		heartbeat_us BIGINT NOT NULL,
		stopped_us BIGINT NOT NULL DEFAULT 0
	)`,
	`CREATE TABLE IF NOT EXISTS {s}.ckpt_fenced (
		run_id TEXT NOT NULL,
		idx INTEGER NOT NULL,
		token BIGINT NOT NULL,
		worker TEXT NOT NULL,
		at_us BIGINT NOT NULL
	)`,
}

// migrationLock names "ckpt River executor migrations" among the
// database's advisory locks.
const migrationLock = 7235046829771401002

// migrate creates the schema, River's tables (with River's own
// migrations, each in a transaction of its own: some cannot share one)
// and this package's, one process at a time under a session advisory
// lock.
func migrate(ctx context.Context, pool *pgxpool.Pool, schema string) (err error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("riverexec: migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(migrationLock)); err != nil {
		return fmt.Errorf("riverexec: migrate: lock: %w", err)
	}
	defer func() {
		if _, uerr := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(migrationLock)); uerr != nil && err == nil {
			err = fmt.Errorf("riverexec: migrate: unlock: %w", uerr)
		}
	}()
	if _, err := conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{schema}.Sanitize()); err != nil {
		return fmt.Errorf("riverexec: create schema %s: %w", schema, err)
	}
	m, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: schema})
	if err != nil {
		return fmt.Errorf("riverexec: migrate River: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("riverexec: migrate River's tables in schema %s: %w", schema, err)
	}
	for _, q := range ddl {
		if _, err := conn.Exec(ctx, strings.ReplaceAll(q, "{s}", pgx.Identifier{schema}.Sanitize())); err != nil {
			return fmt.Errorf("riverexec: migrate: %w", err)
		}
	}
	return nil
}
