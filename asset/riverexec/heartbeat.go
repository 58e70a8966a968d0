package riverexec

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/rivertype"

	"github.com/ckptdev/ckpt/asset/eventlog"
)

// beat records that the worker is alive, by the database's clock.
func (w *worker) beat(ctx context.Context) error {
	host, _ := os.Hostname()
	_, err := w.d.pool.Exec(ctx, w.d.q(`INSERT INTO {s}.ckpt_workers (id, host, pid, parallel, started_us, heartbeat_us)
		VALUES ($1, $2, $3, $4, `+nowUS+`, `+nowUS+`)
		ON CONFLICT (id) DO UPDATE SET heartbeat_us = excluded.heartbeat_us`), w.id, host, os.Getpid(), w.parallel)
	if err != nil {
		return fmt.Errorf("riverexec: heartbeat of worker %s: %w", w.id, err)
	}
	return nil
}

// heartbeats runs until ctx ends: every interval it records the worker's
// heartbeat, interrupts the steps whose lease it lost or whose run was
// canceled, beats for the runs it computes, and takes over the steps of
// dead workers.
func (w *worker) heartbeats(ctx context.Context) {
	t := time.NewTicker(w.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		bctx, cancel := context.WithTimeout(ctx, w.cfg.DeadAfter)
		if err := w.beat(bctx); err != nil {
			w.log.Warn("heartbeat not recorded", "err", err)
		}
		if err := w.checkLeases(bctx); err != nil {
			w.log.Warn("leases not checked", "err", err)
		}
		if err := w.takeOver(bctx); err != nil {
			w.log.Warn("steps of dead workers not taken over", "err", err)
		}
		cancel()
	}
}

// checkLeases interrupts the steps whose lease was taken over or whose
// run was canceled, and beats for the runs of the others.
func (w *worker) checkLeases(ctx context.Context) error {
	w.mu.Lock()
	held := make(map[leaseKey]*lease, len(w.leases))
	for k, l := range w.leases {
		held[k] = l
	}
	w.mu.Unlock()
	if len(held) == 0 {
		return nil
	}
	runs := make([]string, 0, len(held))
	idxs := make([]int32, 0, len(held))
	for k := range held {
		runs = append(runs, k.run)
		idxs = append(idxs, int32(k.idx))
	}
	rows, err := w.d.pool.Query(ctx, w.d.q(`SELECT s.run_id, s.idx, s.token, r.canceled
		FROM unnest($1::text[], $2::integer[]) AS v(run_id, idx)
		JOIN {s}.ckpt_steps s ON s.run_id = v.run_id AND s.idx = v.idx
		JOIN {s}.ckpt_runs r ON r.run_id = s.run_id`), runs, idxs)
	if err != nil {
		return err
	}
	live := map[string]bool{}
	for rows.Next() {
		var k leaseKey
		var idx int32
		var token int64
		var canceled bool
		if err := rows.Scan(&k.run, &idx, &token, &canceled); err != nil {
			rows.Close()
			return err
		}
		k.idx = int(idx)
		l := held[k]
		switch {
		case token != l.token:
			l.cancel(ErrFenced)
		case canceled:
			l.cancel(errRunCanceled)
		default:
			live[k.run] = true
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	ids := make([]string, 0, len(live))
	for id := range live {
		ids = append(ids, id)
	}
	return w.d.log.HeartbeatRuns(ctx, ids, time.Now())
}

// orphan is a step whose job a dead worker was running.
type orphan struct {
	run       string
	idx       int32
	job       int64
	attempt   int
	key, part string
	by        string
}

// takeOver gives the steps of dead workers to the others: for each, in
// one transaction, a new job, the step's token incremented (the dead
// worker, should it come back, cannot commit), and the old job canceled.
// A worker is dead when River says it runs a job and its heartbeat is
// older than DeadAfter, by the database's clock.
func (w *worker) takeOver(ctx context.Context) error {
	d := w.d
	// Steps whose job a dead worker runs; and steps whose job ended
	// without ending the step (a worker refused its commit after a lost
	// lease, River gave the job up) or is gone.
	rows, err := d.pool.Query(ctx, d.q(`SELECT s.run_id, s.idx, s.job_id, s.attempt, s.asset_key, s.partition_key, j.attempted_by[array_length(j.attempted_by, 1)]
		FROM {s}.river_job j JOIN {s}.ckpt_steps s ON s.job_id = j.id
		WHERE j.state = 'running' AND j.queue = $1 AND s.state = 'queued'
		AND NOT EXISTS (SELECT 1 FROM {s}.ckpt_workers wk WHERE wk.id = j.attempted_by[array_length(j.attempted_by, 1)]
			AND wk.heartbeat_us > `+nowUS+` - $2)
		UNION ALL
		SELECT s.run_id, s.idx, s.job_id, s.attempt, s.asset_key, s.partition_key, NULL
		FROM {s}.ckpt_steps s LEFT JOIN {s}.river_job j ON j.id = s.job_id
		WHERE s.state = 'queued' AND (j.id IS NULL OR j.state IN ('completed', 'cancelled', 'discarded'))
		LIMIT 1000`), d.cfg.Queue, d.cfg.DeadAfter.Microseconds())
	if err != nil {
		return err
	}
	var orphans []orphan
	for rows.Next() {
		var o orphan
		var by *string
		if err := rows.Scan(&o.run, &o.idx, &o.job, &o.attempt, &o.key, &o.part, &by); err != nil {
			rows.Close()
			return err
		}
		if by != nil {
			o.by = *by
		}
		orphans = append(orphans, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	var errs []error
	for _, o := range orphans {
		if err := d.inTx(ctx, func(tx pgx.Tx) error { return w.takeOverStep(ctx, tx, o) }); err != nil {
			errs = append(errs, fmt.Errorf("step %s of run %s: %w", stepName(o.key, o.part), o.run, err))
		}
	}
	return errors.Join(errs...)
}

func (w *worker) takeOverStep(ctx context.Context, tx pgx.Tx, o orphan) error {
	d := w.d
	var job int64
	var state string
	err := tx.QueryRow(ctx, d.q(`SELECT job_id, state FROM {s}.ckpt_steps WHERE run_id = $1 AND idx = $2 FOR UPDATE SKIP LOCKED`), o.run, o.idx).Scan(&job, &state)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // another worker is at it
	}
	if err != nil {
		return err
	}
	if job != o.job || state != "queued" {
		return nil // taken over or committed meanwhile
	}
	r, err := w.client.InsertTx(ctx, tx, stepArgs{Run: o.run, Idx: int(o.idx), Key: o.key, Partition: o.part, Attempt: o.attempt}, d.insertOpts(time.Time{}))
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, d.q(`UPDATE {s}.ckpt_steps SET job_id = $3, token = token + 1, worker = '' WHERE run_id = $1 AND idx = $2`), o.run, o.idx, r.Job.ID); err != nil {
		return err
	}
	msg := fmt.Sprintf("step %s enqueued again by %s: its job %d ended without it", stepName(o.key, o.part), w.id, o.job)
	if o.by != "" {
		if _, err := w.client.JobCancelTx(ctx, tx, o.job); err != nil && !errors.Is(err, rivertype.ErrNotFound) {
			return err
		}
		msg = fmt.Sprintf("step %s taken over from worker %s (no heartbeat for %s) by %s", stepName(o.key, o.part), o.by, d.cfg.DeadAfter, w.id)
	}
	w.log.Info("step taken over", "run", o.run, "step", stepName(o.key, o.part), "from", o.by)
	return d.log.WriteTx(ctx, evTx{tx}, []*eventlog.Event{{RunID: o.run, Kind: eventlog.KindMessage, Key: o.key, Partition: o.part, Message: msg, Worker: w.id}})
}
