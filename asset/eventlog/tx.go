package eventlog

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Tx is a transaction of the caller's own on the log's PostgreSQL
// database, through which the log writes events and run records, so that
// they commit (or roll back) together with the caller's other writes: a
// distributed executor commits a step's materialization and the
// completion of its job in one transaction. Statements use $1, $2, ...
// placeholders.
type Tx interface {
	Exec(ctx context.Context, query string, args ...any) error
	QueryRow(ctx context.Context, query string, args ...any) interface{ Scan(dest ...any) error }
}

// ErrNotPostgres: a feature that needs the PostgreSQL event log was used
// with another.
var ErrNotPostgres = errors.New("needs a PostgreSQL event log")

func (l *Log) needPostgres() error {
	if l.d.name != "postgres" {
		return fmt.Errorf("eventlog: %s: %w", l, ErrNotPostgres)
	}
	return nil
}

// Qualify returns table qualified with the log's schema, as the log's own
// statements name it (for a caller's query joining the log's tables).
func (l *Log) Qualify(table string) string { return l.d.prefix + table }

// WriteTx writes evs in tx, in order, and moves the asset state of
// materializations and failures forward, as a batch of the log's own
// writer does, one statement per event. Nothing is visible before tx
// commits. The events' ids are not returned. PostgreSQL only.
func (l *Log) WriteTx(ctx context.Context, tx Tx, evs []*Event) error {
	if err := l.needPostgres(); err != nil {
		return err
	}
	for _, e := range evs {
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		body, err := eventBody(e)
		if err != nil {
			return err
		}
		q, args := insertPlainSQL, []any{e.RunID, micros(e.Time), string(e.Kind), e.Key, e.Partition, body}
		switch e.Kind {
		case KindMaterialization:
			q, args = insertMatTx, append(args, e.Key, e.Partition, body)
		case KindStepFailure:
			q, args = insertFailTx, append(args, e.Key, e.Partition, body)
		}
		// The state keeps the event's body without its id: readers take
		// the id from its column.
		if err := tx.Exec(ctx, l.d.q(q), args...); err != nil {
			return fmt.Errorf("eventlog: write %s event of %s: %w", e.Kind, e.Key, err)
		}
	}
	return nil
}

const (
	insertPlainSQL = `INSERT INTO {p}asset_events (run_id, ts_us, kind, asset_key, partition_key, body) VALUES (?,?,?,?,?,?)`
	insertMatTx    = `WITH e AS (` + insertPlainSQL + ` RETURNING id)
		INSERT INTO {p}asset_state (asset_key, partition_key, mat_id, mat_body) SELECT ?, ?, id, ? FROM e
		ON CONFLICT (asset_key, partition_key) DO UPDATE SET mat_id = excluded.mat_id, mat_body = excluded.mat_body
		WHERE {p}asset_state.mat_id < excluded.mat_id`
	insertFailTx = `WITH e AS (` + insertPlainSQL + ` RETURNING id)
		INSERT INTO {p}asset_state (asset_key, partition_key, fail_id, fail_body) SELECT ?, ?, id, ? FROM e
		ON CONFLICT (asset_key, partition_key) DO UPDATE SET fail_id = excluded.fail_id, fail_body = excluded.fail_body
		WHERE {p}asset_state.fail_id < excluded.fail_id`
)

// EventRow returns the columns of e's row in the events table, in the
// order run_id, ts_us, kind, asset_key, partition_key, body, and the
// table's qualified name: for a caller's own statement that inserts an
// untracked event (one that is neither a materialization nor a failure)
// together with other writes.
func (l *Log) EventRow(e *Event) (table string, values []any, err error) {
	if tracked(e.Kind) {
		return "", nil, fmt.Errorf("eventlog: a %s event moves the asset state: write it with WriteTx", e.Kind)
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	body, err := eventBody(e)
	if err != nil {
		return "", nil, err
	}
	return l.d.prefix + "asset_events", []any{e.RunID, micros(e.Time), string(e.Kind), e.Key, e.Partition, body}, nil
}

// EndRunTx records the run's outcome in tx. PostgreSQL only.
func (l *Log) EndRunTx(ctx context.Context, tx Tx, id string, status RunStatus, msg string) error {
	if err := l.needPostgres(); err != nil {
		return err
	}
	if err := tx.Exec(ctx, l.d.q(`UPDATE {p}asset_runs SET status = ?, ended_us = ?, error = ? WHERE run_id = ?`),
		string(status), micros(time.Now()), msg, id); err != nil {
		return fmt.Errorf("eventlog: end run %s: %w", id, err)
	}
	return nil
}

// HeartbeatRuns records that the runs are alive at t, those still
// started: in a pool of workers, each worker beats for the runs it
// computes steps of.
func (l *Log) HeartbeatRuns(ctx context.Context, ids []string, t time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	ph := make([]byte, 0, 2*len(ids))
	args := []any{micros(t)}
	for i, id := range ids {
		if i > 0 {
			ph = append(ph, ',')
		}
		ph = append(ph, '?')
		args = append(args, id)
	}
	_, err := l.db.ExecContext(ctx, l.d.q(`UPDATE {p}asset_runs SET heartbeat_us = ? WHERE status = 'started' AND run_id IN (`+string(ph)+`)`), args...)
	if err != nil {
		return fmt.Errorf("eventlog: heartbeat of %d runs: %w", len(ids), err)
	}
	return nil
}
