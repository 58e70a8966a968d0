package riverexec

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/ckptdev/ckpt/asset/eventlog"
)

// db is the connection to the event log's database that River and the
// steps' tables use.
type db struct {
	pool   *pgxpool.Pool
	log    *eventlog.Log
	schema string // sanitized, for statements
	cfg    Config
}

// connect opens a pool on the event log's database and migrates it. With
// lazy, the pool's transactions do not wait for the disk unless they say
// so (durable): a worker's fetches and leases, lost in a crash of the
// database, are only redone, while each step's commit is durable.
func connect(ctx context.Context, log *eventlog.Log, cfg Config, maxConns int, lazy bool) (*db, error) {
	if log.Backend() != "postgres" {
		return nil, fmt.Errorf("riverexec: the event log %s is %s: workers share a PostgreSQL event log (give a postgres:// URL)", log, log.Backend())
	}
	pc, err := pgxpool.ParseConfig(log.DSN())
	if err != nil {
		return nil, fmt.Errorf("riverexec: %s: %w", log, err)
	}
	if maxConns > 0 {
		pc.MaxConns = int32(maxConns)
	}
	if lazy {
		pc.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("riverexec: connect to %s: %w", log, err)
	}
	if err := migrate(ctx, pool, cfg.Schema); err != nil {
		pool.Close()
		return nil, err
	}
	return &db{pool: pool, log: log, schema: pgx.Identifier{cfg.Schema}.Sanitize(), cfg: cfg}, nil
}

// q qualifies the tables of a statement ({s}.name) with the schema.
func (d *db) q(s string) string { return strings.ReplaceAll(s, "{s}", d.schema) }

// nowUS is the database's clock in microseconds: every process judges
// heartbeats by the same clock.
const nowUS = `(extract(epoch from clock_timestamp()) * 1000000)::bigint`

// inTx runs f in a durable transaction (its commit waits for the disk),
// again when it failed only because of a concurrent one (a deadlock, a
// serialization failure).
func (d *db) inTx(ctx context.Context, f func(pgx.Tx) error) error {
	var err error
	for try := 0; try < 8; try++ {
		err = pgx.BeginTxFunc(ctx, d.pool, pgx.TxOptions{BeginQuery: `BEGIN; SET LOCAL synchronous_commit = on`}, f)
		if !retryable(err) {
			return err
		}
		time.Sleep(time.Duration(try+1) * 5 * time.Millisecond)
	}
	return err
}

func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// evTx lets the event log write in a pgx transaction.
type evTx struct{ tx pgx.Tx }

func (t evTx) Exec(ctx context.Context, q string, args ...any) error {
	_, err := t.tx.Exec(ctx, q, args...)
	return err
}

func (t evTx) QueryRow(ctx context.Context, q string, args ...any) interface{ Scan(...any) error } {
	return t.tx.QueryRow(ctx, q, args...)
}

// maxJobAttempts is River's bound on the attempts of one job, which it
// retries only when the worker failed to commit (the database was
// unreachable): the asset's retry policy is applied with new jobs.
const maxJobAttempts = 100

// insertOpts are the options of a step's job.
func (d *db) insertOpts(at time.Time) *river.InsertOpts {
	return &river.InsertOpts{Queue: d.cfg.Queue, MaxAttempts: maxJobAttempts, ScheduledAt: at}
}

// runEnd is what ckpt_runs says when a run's last step ends.
type runEnd struct {
	remaining, steps, failed, skipped, succeeded int
	canceled                                     bool
	firstError                                   string
}

const runEndColumns = `remaining, steps, failed, skipped, succeeded, canceled, first_error`

func scanRunEnd(row pgx.Row) (runEnd, error) {
	var e runEnd
	err := row.Scan(&e.remaining, &e.steps, &e.failed, &e.skipped, &e.succeeded, &e.canceled, &e.firstError)
	return e, err
}

// endIfDone records the end of run id in tx when no step remains, with
// the status and message an in-process run would have.
func (d *db) endIfDone(ctx context.Context, tx pgx.Tx, id string, e runEnd) error {
	if e.remaining > 0 {
		return nil
	}
	status, msg := eventlog.RunSuccess, ""
	steps := plural(e.steps, "step", "steps")
	switch {
	case e.canceled:
		status, msg = eventlog.RunCanceled, fmt.Sprintf("canceled: %d of %d %s not done", e.steps-e.succeeded, e.steps, steps)
	case e.failed > 0:
		status, msg = eventlog.RunFailure, fmt.Sprintf("%d of %d %s failed, %d skipped; first: %s", e.failed, e.steps, steps, e.skipped, e.firstError)
	}
	return d.log.EndRunTx(ctx, evTx{tx}, id, status, msg)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
