package eventlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

const runColumns = `run_id, parent_id, root_id, status, created_us, ended_us, heartbeat_us, host, pid, spec, error, heartbeat_interval_us, dead_after_us`

func scanRun(sc interface{ Scan(...any) error }) (Run, error) {
	var r Run
	var created, ended, hb, every, deadAfter int64
	var spec, status string
	if err := sc.Scan(&r.ID, &r.Parent, &r.Root, &status, &created, &ended, &hb, &r.Host, &r.PID, &spec, &r.Error, &every, &deadAfter); err != nil {
		return r, err
	}
	r.HeartbeatInterval, r.DeadAfter = time.Duration(every)*time.Microsecond, time.Duration(deadAfter)*time.Microsecond
	r.Status = RunStatus(status)
	r.Created, r.Ended, r.Heartbeat = fromMicros(created), fromMicros(ended), fromMicros(hb)
	if spec != "" {
		r.Spec = []byte(spec)
	}
	return r, nil
}

// CreateRun records a new run. If r.Parent already has a child run, it
// fails with ErrAlreadyResumed and records nothing.
func (l *Log) CreateRun(ctx context.Context, r Run) error {
	if r.ID == "" {
		return errors.New("eventlog: run without an id")
	}
	if r.Root == "" {
		r.Root = r.ID
	}
	if r.Status == "" {
		r.Status = RunStarted
	}
	if r.Created.IsZero() {
		r.Created = time.Now()
	}
	if r.Heartbeat.IsZero() {
		r.Heartbeat = r.Created
	}
	_, err := l.db.ExecContext(ctx, l.d.q(`INSERT INTO {p}asset_runs (`+runColumns+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`),
		r.ID, r.Parent, r.Root, string(r.Status), micros(r.Created), micros(r.Ended), micros(r.Heartbeat), r.Host, r.PID, string(r.Spec), r.Error,
		r.HeartbeatInterval.Microseconds(), r.DeadAfter.Microseconds())
	if err != nil && isUniqueViolation(err) && r.Parent != "" {
		if kids, kerr := l.Runs(ctx, RunFilter{Parent: r.Parent, Limit: 1}); kerr == nil && len(kids) > 0 {
			return fmt.Errorf("eventlog: run %s: %w by run %s", r.Parent, ErrAlreadyResumed, kids[0].ID)
		}
	}
	if err != nil {
		return fmt.Errorf("eventlog: create run %s: %w", r.ID, err)
	}
	return nil
}

// EndRun flushes the queued events, then records the run's outcome.
func (l *Log) EndRun(ctx context.Context, id string, status RunStatus, msg string) error {
	ferr := l.Flush(ctx)
	if ferr != nil && msg == "" {
		msg = ferr.Error()
	}
	_, err := l.db.ExecContext(ctx, l.d.q(`UPDATE {p}asset_runs SET status = ?, ended_us = ?, error = ? WHERE run_id = ?`),
		string(status), micros(time.Now()), msg, id)
	if err != nil {
		return fmt.Errorf("eventlog: end run %s: %w", id, err)
	}
	return ferr
}

// Heartbeat records that the run's process is alive at t.
func (l *Log) Heartbeat(ctx context.Context, id string, t time.Time) error {
	_, err := l.db.ExecContext(ctx, l.d.q(`UPDATE {p}asset_runs SET heartbeat_us = ? WHERE run_id = ?`), micros(t), id)
	if err != nil {
		return fmt.Errorf("eventlog: heartbeat of run %s: %w", id, err)
	}
	return nil
}

// Run returns the run whose id is id or, failing that, the only run whose
// id starts with it.
func (l *Log) Run(ctx context.Context, id string) (Run, error) {
	r, err := l.runExact(ctx, id)
	if err == nil || !errors.Is(err, ErrNotFound) || id == "" {
		return r, err
	}
	rows, err := l.db.QueryContext(ctx, l.d.q(`SELECT `+runColumns+` FROM {p}asset_runs WHERE run_id LIKE ? ESCAPE '\' ORDER BY run_id LIMIT 2`), likePrefix(id))
	if err != nil {
		return Run{}, fmt.Errorf("eventlog: run %s: %w", id, l.classify(err))
	}
	runs, err := collectRuns(rows)
	if err != nil {
		return Run{}, fmt.Errorf("eventlog: run %s: %w", id, l.classify(err))
	}
	switch len(runs) {
	case 0:
		return Run{}, fmt.Errorf("eventlog: run %s: %w", id, ErrNotFound)
	case 1:
		return runs[0], nil
	}
	return Run{}, fmt.Errorf("eventlog: run %s: %w (%s, %s, ...): give more of it", id, ErrAmbiguous, runs[0].ID, runs[1].ID)
}

func (l *Log) runExact(ctx context.Context, id string) (Run, error) {
	r, err := scanRun(l.db.QueryRowContext(ctx, l.d.q(`SELECT `+runColumns+` FROM {p}asset_runs WHERE run_id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return Run{}, fmt.Errorf("eventlog: run %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Run{}, fmt.Errorf("eventlog: run %s: %w", id, l.classify(err))
	}
	return r, nil
}

func likePrefix(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s) + "%"
}

func collectRuns(rows *sql.Rows) ([]Run, error) {
	defer rows.Close()
	var runs []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, err
		}
		runs = append(runs, r)
	}
	return runs, rows.Err()
}

// RunFilter selects runs. The zero value selects all.
type RunFilter struct {
	Status []RunStatus // any of these; empty means any
	Parent string      // runs resuming this one
	Root   string      // runs of this chain
	Limit  int         // at most this many, newest first; 0 means no limit
}

// Runs returns the runs the filter selects, newest first.
func (l *Log) Runs(ctx context.Context, f RunFilter) ([]Run, error) {
	var where []string
	var args []any
	if len(f.Status) > 0 {
		ph := make([]string, len(f.Status))
		for i, s := range f.Status {
			ph[i] = "?"
			args = append(args, string(s))
		}
		where = append(where, "status IN ("+strings.Join(ph, ",")+")")
	}
	if f.Parent != "" {
		where = append(where, "parent_id = ?")
		args = append(args, f.Parent)
	}
	if f.Root != "" {
		where = append(where, "root_id = ?")
		args = append(args, f.Root)
	}
	q := `SELECT ` + runColumns + ` FROM {p}asset_runs`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY created_us DESC, run_id DESC"
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := l.db.QueryContext(ctx, l.d.q(q), args...)
	if err != nil {
		return nil, fmt.Errorf("eventlog: list runs: %w", l.classify(err))
	}
	runs, err := collectRuns(rows)
	if err != nil {
		return nil, fmt.Errorf("eventlog: list runs: %w", l.classify(err))
	}
	return runs, nil
}

// Chain returns the run and its ancestors, the run first. An ancestor
// removed by Prune ends the chain.
func (l *Log) Chain(ctx context.Context, id string) ([]Run, error) {
	var chain []Run
	seen := map[string]bool{}
	for id != "" {
		if seen[id] {
			return nil, fmt.Errorf("eventlog: run %s: its parents form a loop", id)
		}
		seen[id] = true
		r, err := l.runExact(ctx, id)
		if err != nil {
			if len(chain) > 0 && errors.Is(err, ErrNotFound) {
				break // an ancestor was pruned: the chain ends here
			}
			return nil, err
		}
		chain = append(chain, r)
		id = r.Parent
	}
	return chain, nil
}

// Liveness decides whether a run marked RunStarted still has a live
// process.
type Liveness struct {
	// DeadAfter: a run that recorded no deadline of its own (Run.DeadAfter
	// and Run.HeartbeatInterval zero) is dead when its last heartbeat is
	// older than this. Zero means never, for such a run.
	DeadAfter time.Duration
	// Now is the time to judge at; zero means time.Now().
	Now time.Time
}

// deadHeartbeats is how many heartbeats a run that recorded its interval
// but no deadline may miss before it counts as dead.
const deadHeartbeats = 6

// Alive reports whether r is running: its status is RunStarted, its
// heartbeat is recent, and, when it runs on this host, its process exists.
// A run is judged by its own settings (DeadAfter, or else six of its
// HeartbeatInterval), so that a run with a long interval does not look
// dead to a process that beats more often; lv.DeadAfter judges only the
// runs that recorded neither. A run that is not alive and not finished
// died (killed, or its machine stopped) and may be resumed.
func (r *Run) Alive(lv Liveness) bool {
	if r.Status != RunStarted {
		return false
	}
	now := lv.Now
	if now.IsZero() {
		now = time.Now()
	}
	deadAfter := r.DeadAfter
	if deadAfter <= 0 {
		deadAfter = deadHeartbeats * r.HeartbeatInterval
	}
	if deadAfter <= 0 {
		deadAfter = lv.DeadAfter
	}
	if deadAfter > 0 && now.Sub(r.Heartbeat) > deadAfter {
		return false
	}
	if host, _ := os.Hostname(); host != "" && host == r.Host && r.PID > 0 {
		return processExists(r.PID)
	}
	return true
}

// processExists reports whether a process with this pid exists here. A
// pid reused by another process looks alive; the heartbeat deadline
// catches that case.
func processExists(pid int) bool {
	if pid == os.Getpid() {
		return true
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
