package riverexec

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/ckptdev/ckpt/asset"
	"github.com/ckptdev/ckpt/asset/eventlog"
)

// Executor is the asset.Executor that hands steps to River workers. Set it
// as asset.Config.Executor; it connects to the instance's event log's
// database on first use. Close it after the instance's runs returned.
type Executor struct {
	cfg Config

	mu     sync.Mutex
	d      *db
	client *river.Client[pgx.Tx] // inserts only
}

var _ asset.Executor = (*Executor)(nil)

// New returns an executor configured by cfg.
func New(cfg Config) (*Executor, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	return &Executor{cfg: cfg}, nil
}

// Name returns "river".
func (e *Executor) Name() string { return "river" }

// Close closes the executor's connections.
func (e *Executor) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.d != nil {
		e.d.pool.Close()
		e.d = nil
	}
	return nil
}

func (e *Executor) init(ctx context.Context, in *asset.Instance) (*db, *river.Client[pgx.Tx], error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.d != nil {
		if e.d.log != in.EventLog() {
			return nil, nil, errors.New("riverexec: an Executor serves the instances of one event log")
		}
		return e.d, e.client, nil
	}
	d, err := connect(ctx, in.EventLog(), e.cfg, 4, false)
	if err != nil {
		return nil, nil, err
	}
	c, err := river.NewClient(riverpgxv5.New(d.pool), &river.Config{Schema: e.cfg.Schema, Logger: e.cfg.Logger})
	if err != nil {
		d.pool.Close()
		return nil, nil, fmt.Errorf("riverexec: %w", err)
	}
	e.d, e.client = d, c
	return d, c, nil
}

// Submit records the steps of s and enqueues those whose upstream is done,
// in one transaction.
func (e *Executor) Submit(ctx context.Context, in *asset.Instance, s *asset.Submission) error {
	d, client, err := e.init(ctx, in)
	if err != nil {
		return err
	}
	n := len(s.Steps)
	down := make([][]int32, n)
	pending := make([]int32, n)
	remaining, succeeded := 0, 0
	for i, st := range s.Steps {
		if st.Reused {
			succeeded++
			continue
		}
		remaining++
		for _, u := range st.Up {
			down[u] = append(down[u], int32(i))
			if !s.Steps[u].Reused {
				pending[i]++
			}
		}
	}
	var ready []int
	for i, st := range s.Steps {
		if !st.Reused && pending[i] == 0 {
			ready = append(ready, i)
		}
	}
	return d.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, d.q(`INSERT INTO {s}.ckpt_runs (run_id, steps, remaining, succeeded, created_us) VALUES ($1, $2, $3, $4, `+nowUS+`)`),
			s.RunID, n, remaining, succeeded); err != nil {
			return fmt.Errorf("record run %s: %w", s.RunID, err)
		}
		jobs := make([]int64, n)
		const chunk = 2000
		for lo := 0; lo < len(ready); lo += chunk {
			part := ready[lo:min(lo+chunk, len(ready))]
			params := make([]river.InsertManyParams, len(part))
			for j, i := range part {
				st := s.Steps[i]
				params[j] = river.InsertManyParams{Args: stepArgs{Run: s.RunID, Idx: i, Key: st.Key, Partition: st.Partition, Attempt: 1}, InsertOpts: d.insertOpts(time.Time{})}
			}
			res, err := client.InsertManyTx(ctx, tx, params)
			if err != nil {
				return fmt.Errorf("enqueue the steps of run %s: %w", s.RunID, err)
			}
			for j, r := range res {
				jobs[part[j]] = r.Job.ID
			}
		}
		rows := make([][]any, n)
		for i, st := range s.Steps {
			state, outcome := "waiting", ""
			switch {
			case st.Reused:
				state, outcome = "done", string(asset.OutcomeReused)
			case pending[i] == 0:
				state = "queued"
			}
			dn := down[i]
			if dn == nil {
				dn = []int32{}
			}
			rows[i] = []any{s.RunID, int32(i), st.Key, st.Partition, dn, pending[i], state, outcome, jobs[i]}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{e.cfg.Schema, "ckpt_steps"},
			[]string{"run_id", "idx", "asset_key", "partition_key", "down", "pending", "state", "outcome", "job_id"}, pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("record the steps of run %s: %w", s.RunID, err)
		}
		if remaining == 0 {
			return d.endIfDone(ctx, tx, s.RunID, runEnd{steps: n, succeeded: succeeded})
		}
		return nil
	})
}

// Submitted reports whether run id's steps were submitted.
func (e *Executor) Submitted(ctx context.Context, in *asset.Instance, id string) (bool, error) {
	d, _, err := e.init(ctx, in)
	if err != nil {
		return false, err
	}
	var one int
	err = d.pool.QueryRow(ctx, d.q(`SELECT 1 FROM {s}.ckpt_runs WHERE run_id = $1`), id).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("riverexec: run %s: %w", id, err)
	}
	return true, nil
}

// Follow polls the run's events and record until it ends.
func (e *Executor) Follow(ctx context.Context, in *asset.Instance, id string, progress func(asset.Step)) error {
	l := in.EventLog()
	// Event ids are assigned when inserted, not when committed: one may
	// become visible after a higher one was read. The follower reads back
	// a window below the highest id seen, and everything once the run
	// has ended, and reports each event once.
	const lookback = 256
	var high int64
	seen := map[int64]bool{}
	kinds := []eventlog.Kind{eventlog.KindMaterialization, eventlog.KindStepFailure, eventlog.KindStepSkipped, eventlog.KindStepFresh, eventlog.KindStepCanceled}
	report := func(after int64) error {
		evs, err := l.Events(ctx, eventlog.EventFilter{Runs: []string{id}, AfterID: after, Kinds: kinds})
		if err != nil {
			return err
		}
		for _, ev := range evs {
			high = max(high, ev.ID)
			if seen[ev.ID] {
				continue
			}
			seen[ev.ID] = true
			if progress != nil {
				progress(stepOf(ev))
			}
		}
		return nil
	}
	t := time.NewTicker(e.cfg.PollInterval)
	defer t.Stop()
	for {
		r, err := l.Run(ctx, id)
		if err != nil {
			return err
		}
		if r.Status != eventlog.RunStarted {
			// Everything committed before the end is visible now.
			return report(0)
		}
		if err := report(max(high-lookback, 0)); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-t.C:
		}
	}
}

// stepOf is the progress report of a step's terminal event.
func stepOf(ev eventlog.Event) asset.Step {
	s := asset.Step{Key: ev.Key, Partition: ev.Partition, Outcome: ev.Kind.Outcome(), Attempts: ev.Attempt, Error: ev.Error, Worker: ev.Worker}
	if m := ev.Materialization; m != nil {
		s.Duration, s.DataVersion, s.Checks = m.Duration, m.DataVersion, m.Checks
	}
	if ev.Kind == eventlog.KindStepSkipped {
		s.Error = ev.Message
	}
	return s
}

// Cancel marks run id canceled: its waiting steps and the queued ones no
// worker took are canceled now; the workers computing its other steps
// see it at their next heartbeat, interrupt them and commit them
// canceled; the last one records the run's end.
func (e *Executor) Cancel(ctx context.Context, in *asset.Instance, id string) error {
	d, client, err := e.init(ctx, in)
	if err != nil {
		return err
	}
	return d.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, d.q(`UPDATE {s}.ckpt_runs SET canceled = true WHERE run_id = $1`), id)
		if err != nil {
			return fmt.Errorf("riverexec: cancel run %s: %w", id, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("riverexec: cancel run %s: it was not submitted", id)
		}
		tag, err = tx.Exec(ctx, d.q(`UPDATE {s}.ckpt_steps SET state = 'done', outcome = 'canceled' WHERE run_id = $1 AND state = 'waiting'`), id)
		if err != nil {
			return fmt.Errorf("riverexec: cancel run %s: %w", id, err)
		}
		n := int(tag.RowsAffected())
		rows, err := tx.Query(ctx, d.q(`SELECT idx, job_id FROM {s}.ckpt_steps WHERE run_id = $1 AND state = 'queued' FOR UPDATE`), id)
		if err != nil {
			return fmt.Errorf("riverexec: cancel run %s: %w", id, err)
		}
		type q struct {
			idx int32
			job int64
		}
		var queued []q
		for rows.Next() {
			var x q
			if err := rows.Scan(&x.idx, &x.job); err != nil {
				rows.Close()
				return err
			}
			queued = append(queued, x)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		// Jobs no worker took are deleted, in batches; the running ones are
		// canceled one by one (River tells their worker at once), and
		// their workers commit them canceled.
		var gone []int32
		byJob := make(map[int64]int32, len(queued))
		for _, x := range queued {
			byJob[x.job] = x.idx
		}
		const batch = 5000
		for lo := 0; lo < len(queued); lo += batch {
			part := queued[lo:min(lo+batch, len(queued))]
			ids := make([]int64, len(part))
			for i, x := range part {
				ids[i] = x.job
			}
			res, err := client.JobDeleteManyTx(ctx, tx, river.NewJobDeleteManyParams().IDs(ids...).First(len(ids)).
				States(rivertype.JobStateAvailable, rivertype.JobStateScheduled, rivertype.JobStateRetryable, rivertype.JobStatePending))
			if err != nil {
				return fmt.Errorf("riverexec: cancel the jobs of run %s: %w", id, err)
			}
			for _, j := range res.Jobs {
				gone = append(gone, byJob[j.ID])
				delete(byJob, j.ID)
			}
		}
		for job, idx := range byJob {
			row, err := client.JobCancelTx(ctx, tx, job)
			if err != nil && !errors.Is(err, rivertype.ErrNotFound) {
				return fmt.Errorf("riverexec: cancel the job of step %d of run %s: %w", idx, id, err)
			}
			if err == nil && row.State == rivertype.JobStateCancelled {
				gone = append(gone, idx)
			}
		}
		if len(gone) > 0 {
			if _, err := tx.Exec(ctx, d.q(`UPDATE {s}.ckpt_steps SET state = 'done', outcome = 'canceled' WHERE run_id = $1 AND idx = ANY($2)`), id, gone); err != nil {
				return err
			}
			n += len(gone)
		}
		end, err := scanRunEnd(tx.QueryRow(ctx, d.q(`UPDATE {s}.ckpt_runs SET remaining = remaining - $2 WHERE run_id = $1 RETURNING `+runEndColumns), id, n))
		if err != nil {
			return fmt.Errorf("riverexec: cancel run %s: %w", id, err)
		}
		return d.endIfDone(ctx, tx, id, end)
	})
}
