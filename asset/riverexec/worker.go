package riverexec

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/ckptdev/ckpt/asset"
	"github.com/ckptdev/ckpt/asset/eventlog"
)

// WorkOptions configure Work.
type WorkOptions struct {
	Config
	// Parallel bounds the steps the worker computes at once; 0 means
	// GOMAXPROCS.
	Parallel int
	// Started, if set, is called with the worker's id once it takes jobs.
	Started func(id string)
}

// errRunCanceled interrupts the steps of a canceled run.
var errRunCanceled = errors.New("the run was canceled")

// Work runs a worker: it computes the steps of submitted runs of in's
// graph, up to o.Parallel at once, until ctx ends; then it stops taking
// steps, waits up to DeadAfter for those it computes, interrupts the rest
// (their jobs go back to the queue) and returns. Any number of workers,
// on any machines reaching the event log's database and the store, may
// run at once.
func Work(ctx context.Context, in *asset.Instance, o WorkOptions) error {
	if err := o.fill(); err != nil {
		return err
	}
	if o.Parallel < 0 {
		return errors.New("riverexec: WorkOptions.Parallel must not be negative")
	}
	if o.Parallel == 0 {
		o.Parallel = runtime.GOMAXPROCS(0)
	}
	d, err := connect(ctx, in.EventLog(), o.Config, o.Parallel+4, true)
	if err != nil {
		return err
	}
	defer d.pool.Close()
	var b [4]byte
	rand.Read(b[:])
	w := &worker{id: workerID(hex.EncodeToString(b[:])), d: d, in: in, cfg: o.Config, parallel: o.Parallel, leases: map[leaseKey]*lease{}}
	w.log = o.Logger.With("worker", w.id)
	if err := w.beat(ctx); err != nil {
		return err
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &stepWorker{w: w})
	w.client, err = river.NewClient(riverpgxv5.New(d.pool), &river.Config{
		ID:                w.id,
		Schema:            o.Schema,
		Queues:            map[string]river.QueueConfig{o.Queue: {MaxWorkers: o.Parallel}},
		Workers:           workers,
		Logger:            o.Logger,
		FetchCooldown:     time.Millisecond,
		FetchPollInterval: 250 * time.Millisecond,
		// A step runs as long as it takes: a dead worker is found by
		// its heartbeat (DeadAfter), not by a step's duration.
		JobTimeout: -1,
		// River's own rescue of jobs running longer than this would
		// start a second execution of a live step; ckpt's heartbeats
		// rescue the steps of dead workers long before.
		RescueStuckJobsAfter: 7 * 24 * time.Hour,
	})
	if err != nil {
		return fmt.Errorf("riverexec: %w", err)
	}
	if err := w.client.Start(ctx); err != nil {
		return fmt.Errorf("riverexec: start the worker: %w", err)
	}
	w.log.Info("worker started", "parallel", o.Parallel, "queue", o.Queue, "heartbeat", o.HeartbeatInterval)
	if o.Started != nil {
		o.Started(w.id)
	}
	beatDone := make(chan struct{})
	beatCtx, stopBeat := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		defer close(beatDone)
		w.heartbeats(beatCtx)
	}()
	<-ctx.Done()
	w.log.Info("worker stopping", "cause", context.Cause(ctx))
	bg := context.WithoutCancel(ctx)
	soft, cancel := context.WithTimeout(bg, o.DeadAfter)
	err = w.client.Stop(soft)
	cancel()
	if err != nil {
		hard, cancel := context.WithTimeout(bg, o.DeadAfter)
		err = w.client.StopAndCancel(hard)
		cancel()
	}
	stopBeat()
	<-beatDone
	if _, uerr := d.pool.Exec(bg, d.q(`UPDATE {s}.ckpt_workers SET stopped_us = `+nowUS+` WHERE id = $1`), w.id); uerr != nil {
		err = errors.Join(err, uerr)
	}
	if err != nil {
		return fmt.Errorf("riverexec: stop worker %s: %w", w.id, err)
	}
	return nil
}

type leaseKey struct {
	run string
	idx int
}

type lease struct {
	token  int64
	cancel context.CancelCauseFunc
}

// worker is one process's pool.
type worker struct {
	id       string
	d        *db
	in       *asset.Instance
	cfg      Config
	client   *river.Client[pgx.Tx]
	parallel int
	log      interface {
		Info(string, ...any)
		Warn(string, ...any)
		Debug(string, ...any)
	}

	mu     sync.Mutex
	leases map[leaseKey]*lease
}

type stepWorker struct {
	river.WorkerDefaults[stepArgs]
	w *worker
}

func (sw *stepWorker) Work(ctx context.Context, job *river.Job[stepArgs]) error {
	return sw.w.work(ctx, job)
}

// work executes one job: lease the step, compute it, commit.
func (w *worker) work(ctx context.Context, job *river.Job[stepArgs]) error {
	a := job.Args
	k := leaseKey{a.Run, a.Idx}
	var token int64
	var attempt int
	var canceled bool
	// One statement leases the step and records its start. It does not
	// wait for the disk (the pool's default): lost in a crash of the
	// database, its token is not the step's, the commit is refused, and
	// the step is enqueued again (see takeOver).
	start := &eventlog.Event{RunID: a.Run, Kind: eventlog.KindStepStart, Key: a.Key, Partition: a.Partition, Attempt: a.Attempt, Worker: w.id}
	table, vals, err := w.d.log.EventRow(start)
	if err != nil {
		return err
	}
	err = w.d.pool.QueryRow(ctx, w.d.q(`WITH s AS (
			UPDATE {s}.ckpt_steps st SET token = token + 1, worker = $4, executions = executions + 1
			WHERE run_id = $1 AND idx = $2 AND job_id = $3 AND state = 'queued'
			RETURNING token, attempt, (SELECT canceled FROM {s}.ckpt_runs r WHERE r.run_id = st.run_id) AS canceled),
		e AS (INSERT INTO `+table+` (run_id, ts_us, kind, asset_key, partition_key, body)
			SELECT $5, $6, $7, $8, $9, $10 FROM s WHERE NOT s.canceled)
		SELECT token, attempt, canceled FROM s`),
		append([]any{a.Run, a.Idx, job.ID, w.id}, vals...)...).Scan(&token, &attempt, &canceled)
	if errors.Is(err, pgx.ErrNoRows) {
		// Another job took the step over, or it ended: nothing to do.
		w.log.Debug("stale job", "run", a.Run, "step", stepName(a.Key, a.Partition), "job", job.ID)
		return nil
	}
	if err != nil {
		return fmt.Errorf("riverexec: lease step %s of run %s: %w", stepName(a.Key, a.Partition), a.Run, err)
	}
	lctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	w.mu.Lock()
	w.leases[k] = &lease{token: token, cancel: cancel}
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.leases, k)
		w.mu.Unlock()
	}()

	var res *asset.StepResult
	if canceled {
		res = &asset.StepResult{Outcome: asset.OutcomeCanceled}
	} else {
		res, err = w.in.ComputeStep(lctx, asset.StepTask{RunID: a.Run, Key: a.Key, Partition: a.Partition, Attempt: attempt, Worker: w.id})
		if err != nil {
			return fmt.Errorf("riverexec: step %s of run %s: %w", stepName(a.Key, a.Partition), a.Run, err)
		}
		if res.Outcome == asset.OutcomeCanceled {
			cause := context.Cause(lctx)
			if errors.Is(cause, ErrFenced) {
				w.log.Warn("step taken over; its outcome is dropped", "run", a.Run, "step", stepName(a.Key, a.Partition))
				return river.JobCancel(ErrFenced)
			}
			// Canceled by this worker's heartbeat, or by River when the
			// run's cancellation canceled the job: commit it canceled.
			// Otherwise this worker stops, and River runs the job again
			// later.
			if !errors.Is(cause, errRunCanceled) {
				var runCanceled bool
				if err := w.d.pool.QueryRow(context.WithoutCancel(ctx), w.d.q(`SELECT canceled FROM {s}.ckpt_runs WHERE run_id = $1`), a.Run).Scan(&runCanceled); err != nil || !runCanceled {
					return fmt.Errorf("riverexec: step %s of run %s interrupted: %w", stepName(a.Key, a.Partition), a.Run, cause)
				}
			}
		}
	}
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 2*w.cfg.DeadAfter)
	defer ccancel()
	err = w.d.inTx(cctx, func(tx pgx.Tx) error { return w.commit(cctx, tx, job, token, res) })
	if errors.Is(err, ErrFenced) {
		w.recordFenced(cctx, a, token)
		w.log.Warn("step taken over before its commit; its outcome is dropped", "run", a.Run, "step", stepName(a.Key, a.Partition), "token", token)
		return river.JobCancel(err)
	}
	if err != nil {
		return fmt.Errorf("riverexec: commit step %s of run %s: %w", stepName(a.Key, a.Partition), a.Run, err)
	}
	return nil
}

// recordFenced notes a commit refused for a lost lease.
func (w *worker) recordFenced(ctx context.Context, a stepArgs, token int64) {
	if _, err := w.d.pool.Exec(ctx, w.d.q(`INSERT INTO {s}.ckpt_fenced (run_id, idx, token, worker, at_us) VALUES ($1, $2, $3, $4, `+nowUS+`)`),
		a.Run, a.Idx, token, w.id); err != nil {
		w.log.Warn("fenced commit not recorded", "err", err)
	}
}

// commit records a step's outcome in tx, if this execution still holds
// the step's lease: its events, its state, the jobs of the steps it made
// ready (or the skips below a failure), the run's count and end, and the
// completion of its job.
func (w *worker) commit(ctx context.Context, tx pgx.Tx, job *river.Job[stepArgs], token int64, res *asset.StepResult) error {
	d, a := w.d, job.Args
	// The fencing check: the step ends only if this execution's lease is
	// still the step's.
	var down []int32
	err := tx.QueryRow(ctx, d.q(`UPDATE {s}.ckpt_steps SET state = CASE WHEN $4 THEN state ELSE 'done' END, outcome = $5
		WHERE run_id = $1 AND idx = $2 AND token = $3 AND state = 'queued' RETURNING down`),
		a.Run, a.Idx, token, res.Retry, string(res.Outcome)).Scan(&down)
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrFenced
	}
	if err != nil {
		return err
	}
	etx := evTx{tx}
	if res.Retry {
		e := res.Event
		if err := d.log.WriteTx(ctx, etx, []*eventlog.Event{&e}); err != nil {
			return err
		}
		r, err := w.client.InsertTx(ctx, tx, stepArgs{Run: a.Run, Idx: a.Idx, Key: a.Key, Partition: a.Partition, Attempt: res.Event.Attempt + 1}, d.insertOpts(time.Now().Add(res.RetryAfter)))
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, d.q(`UPDATE {s}.ckpt_steps SET job_id = $3, attempt = $4, worker = '', outcome = '' WHERE run_id = $1 AND idx = $2`),
			a.Run, a.Idx, r.Job.ID, res.Event.Attempt+1); err != nil {
			return err
		}
		_, err = river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
		return err
	}
	var evs []*eventlog.Event
	if res.Event.Kind != "" {
		e := res.Event
		if e.Kind == eventlog.KindMaterialization {
			e.Message = fmt.Sprintf("lease token %d", token)
		}
		evs = append(evs, &e)
	}
	if res.Failure != nil {
		f := *res.Failure
		evs = append(evs, &f)
	}
	if err := d.log.WriteTx(ctx, etx, evs); err != nil {
		return err
	}
	var failed, skipped, succeeded int
	firstErr := ""
	switch res.Outcome {
	case asset.OutcomeMaterialized, asset.OutcomeFresh:
		succeeded = 1
		if err := w.enqueueReady(ctx, tx, a.Run, down); err != nil {
			return err
		}
	case asset.OutcomeFailed:
		failed = 1
		firstErr = stepName(a.Key, a.Partition) + ": " + res.Step.Error
		n, err := w.skipBelow(ctx, tx, a, down, res.Outcome)
		if err != nil {
			return err
		}
		skipped = n
	}
	end, err := scanRunEnd(tx.QueryRow(ctx, d.q(`UPDATE {s}.ckpt_runs SET remaining = remaining - $2, failed = failed + $3, skipped = skipped + $4,
		succeeded = succeeded + $5, first_error = CASE WHEN first_error = '' THEN $6 ELSE first_error END
		WHERE run_id = $1 RETURNING `+runEndColumns), a.Run, 1+skipped, failed, skipped, succeeded, firstErr))
	if err != nil {
		return err
	}
	if err := d.endIfDone(ctx, tx, a.Run, end); err != nil {
		return err
	}
	_, err = river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
	return err
}

// enqueueReady counts a success against the steps below it and enqueues
// those it made ready.
func (w *worker) enqueueReady(ctx context.Context, tx pgx.Tx, run string, down []int32) error {
	if len(down) == 0 {
		return nil
	}
	d := w.d
	rows, err := tx.Query(ctx, d.q(`UPDATE {s}.ckpt_steps SET pending = pending - 1 WHERE run_id = $1 AND idx = ANY($2)
		RETURNING idx, pending, state, asset_key, partition_key`), run, down)
	if err != nil {
		return err
	}
	var params []river.InsertManyParams
	var idxs []int32
	for rows.Next() {
		var idx, pending int32
		var state, key, part string
		if err := rows.Scan(&idx, &pending, &state, &key, &part); err != nil {
			rows.Close()
			return err
		}
		if pending == 0 && state == "waiting" {
			idxs = append(idxs, idx)
			params = append(params, river.InsertManyParams{Args: stepArgs{Run: run, Idx: int(idx), Key: key, Partition: part, Attempt: 1}, InsertOpts: d.insertOpts(time.Time{})})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(params) == 0 {
		return nil
	}
	res, err := w.client.InsertManyTx(ctx, tx, params)
	if err != nil {
		return err
	}
	jobs := make([]int64, len(res))
	for i, r := range res {
		jobs[i] = r.Job.ID
	}
	_, err = tx.Exec(ctx, d.q(`UPDATE {s}.ckpt_steps s SET state = 'queued', job_id = v.job
		FROM unnest($2::integer[], $3::bigint[]) AS v(idx, job) WHERE s.run_id = $1 AND s.idx = v.idx`), run, idxs, jobs)
	return err
}

// skipBelow marks everything waiting below a failed step skipped, with an
// event each, and returns how many.
func (w *worker) skipBelow(ctx context.Context, tx pgx.Tx, a stepArgs, down []int32, o asset.Outcome) (int, error) {
	d := w.d
	msg := fmt.Sprintf("upstream %s %s", stepName(a.Key, a.Partition), o)
	n := 0
	for len(down) > 0 {
		rows, err := tx.Query(ctx, d.q(`UPDATE {s}.ckpt_steps SET state = 'done', outcome = 'skipped'
			WHERE run_id = $1 AND idx = ANY($2) AND state = 'waiting' RETURNING asset_key, partition_key, down`), a.Run, down)
		if err != nil {
			return 0, err
		}
		var next []int32
		var evs []*eventlog.Event
		for rows.Next() {
			var key, part string
			var dn []int32
			if err := rows.Scan(&key, &part, &dn); err != nil {
				rows.Close()
				return 0, err
			}
			next = append(next, dn...)
			evs = append(evs, &eventlog.Event{RunID: a.Run, Kind: eventlog.KindStepSkipped, Key: key, Partition: part, Message: msg})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return 0, err
		}
		if err := d.log.WriteTx(ctx, evTx{tx}, evs); err != nil {
			return 0, err
		}
		n += len(evs)
		down = next
	}
	return n, nil
}
