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

// WriteTx writes evs in tx, in order, assigning their ids, and moves the
// asset state of materializations and failures forward, as a batch of
// the log's own writer does. Nothing is visible before tx commits.
// PostgreSQL only.
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
		if err := tx.QueryRow(ctx, l.d.q(insertTrackedSQL), e.RunID, micros(e.Time), string(e.Kind), e.Key, e.Partition, body).Scan(&e.ID); err != nil {
			return fmt.Errorf("eventlog: write %s event of %s: %w", e.Kind, e.Key, err)
		}
		if !tracked(e.Kind) {
			continue
		}
		up := upsertMaterialization
		if e.Kind == KindStepFailure {
			up = upsertFailure
		}
		// The id is in the body the state keeps: encode it again.
		if body, err = eventBody(e); err != nil {
			return err
		}
		if err := tx.Exec(ctx, l.d.q(up), e.Key, e.Partition, e.ID, body); err != nil {
			return fmt.Errorf("eventlog: update the state of %s: %w", e.Key, err)
		}
	}
	return nil
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
