package eventlog

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// EventFilter selects events. The zero value selects all, oldest first.
type EventFilter struct {
	Runs      []string // events of these runs; empty means any
	Key       string   // of this asset; empty means any
	Partition *string  // of this partition ("" for none); nil means any
	Kinds     []Kind   // of these kinds; empty means any
	AfterID   int64    // with a higher id than this
	Limit     int      // at most this many; 0 means no limit
	Newest    bool     // newest first (with Limit: the newest ones)
}

// Events returns the committed events the filter selects. Queued events
// are not seen before a Flush.
func (l *Log) Events(ctx context.Context, f EventFilter) ([]Event, error) {
	var where []string
	var args []any
	in := func(col string, vals []string) {
		ph := make([]string, len(vals))
		for i, v := range vals {
			ph[i] = "?"
			args = append(args, v)
		}
		where = append(where, col+" IN ("+strings.Join(ph, ",")+")")
	}
	if len(f.Runs) > 0 {
		in("run_id", f.Runs)
	}
	if f.Key != "" {
		where = append(where, "asset_key = ?")
		args = append(args, f.Key)
	}
	if f.Partition != nil {
		where = append(where, "partition_key = ?")
		args = append(args, *f.Partition)
	}
	if len(f.Kinds) > 0 {
		ks := make([]string, len(f.Kinds))
		for i, k := range f.Kinds {
			ks[i] = string(k)
		}
		in("kind", ks)
	}
	if f.AfterID > 0 {
		where = append(where, "id > ?")
		args = append(args, f.AfterID)
	}
	q := `SELECT id, body FROM {p}asset_events`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	if f.Newest {
		q += " ORDER BY id DESC"
	} else {
		q += " ORDER BY id"
	}
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := l.db.QueryContext(ctx, l.d.q(q), args...)
	if err != nil {
		return nil, fmt.Errorf("eventlog: read events: %w", l.classify(err))
	}
	defer rows.Close()
	var evs []Event
	for rows.Next() {
		var id int64
		var body string
		if err := rows.Scan(&id, &body); err != nil {
			return nil, fmt.Errorf("eventlog: read events: %w", l.classify(err))
		}
		e, err := decodeEvent(id, body)
		if err != nil {
			return nil, err
		}
		evs = append(evs, *e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("eventlog: read events: %w", l.classify(err))
	}
	return evs, nil
}

func decodeEvent(id int64, body string) (*Event, error) {
	var e Event
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		return nil, fmt.Errorf("eventlog: event %d: undecodable body: %w", id, err)
	}
	e.ID = id
	return &e, nil
}

// States returns the state of every partition of the given assets (of
// every asset when keys is empty), ordered by key and partition (in byte
// order). Assets never materialized nor failed have no state.
func (l *Log) States(ctx context.Context, keys []string) ([]State, error) {
	const q = `SELECT asset_key, partition_key, mat_id, mat_body, fail_id, fail_body FROM {p}asset_state`
	var raws []rawState
	read := func(query string, args ...any) error {
		rows, err := l.db.QueryContext(ctx, l.d.q(query), args...)
		if err != nil {
			return fmt.Errorf("eventlog: read asset state: %w", l.classify(err))
		}
		defer rows.Close()
		for rows.Next() {
			var r rawState
			if err := rows.Scan(&r.key, &r.part, &r.matID, &r.matBody, &r.failID, &r.failBody); err != nil {
				return fmt.Errorf("eventlog: read asset state: %w", l.classify(err))
			}
			raws = append(raws, r)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("eventlog: read asset state: %w", l.classify(err))
		}
		return nil
	}
	if len(keys) == 0 {
		if err := read(q + " ORDER BY asset_key, partition_key"); err != nil {
			return nil, err
		}
	}
	for start := 0; start < len(keys); start += 500 {
		chunk := keys[start:min(start+500, len(keys))]
		args := make([]any, len(chunk))
		for i, k := range chunk {
			args[i] = k
		}
		ph := strings.Repeat("?,", len(chunk))
		if err := read(q+" WHERE asset_key IN ("+ph[:len(ph)-1]+") ORDER BY asset_key, partition_key", args...); err != nil {
			return nil, err
		}
	}
	// Several queries come back in the order of the keys asked for, and a
	// database may collate text otherwise than bytes: the order promised
	// is made here.
	slices.SortFunc(raws, func(a, b rawState) int {
		return cmp.Or(strings.Compare(a.key, b.key), strings.Compare(a.part, b.part))
	})
	return decodeStates(raws)
}

// rawState is a state row before its bodies are decoded.
type rawState struct {
	key, part         string
	matID, failID     int64
	matBody, failBody string
}

func (r *rawState) decode() (State, error) {
	s := State{Key: r.key, Partition: r.part}
	var err error
	if r.matID > 0 {
		if s.Materialization, err = decodeEvent(r.matID, r.matBody); err != nil {
			return s, err
		}
	}
	if r.failID > 0 {
		if s.Failure, err = decodeEvent(r.failID, r.failBody); err != nil {
			return s, err
		}
	}
	return s, nil
}

// decodeStates decodes the bodies, on every CPU when there are many:
// decoding JSON is most of the time it takes to read thousands of states.
func decodeStates(raws []rawState) ([]State, error) {
	out := make([]State, len(raws))
	workers := min(runtime.GOMAXPROCS(0), (len(raws)+255)/256)
	if workers <= 1 {
		for i := range raws {
			var err error
			if out[i], err = raws[i].decode(); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	errs := make([]error, workers)
	var wg sync.WaitGroup
	per := (len(raws) + workers - 1) / workers
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w * per; i < min((w+1)*per, len(raws)); i++ {
				var err error
				if out[i], err = raws[i].decode(); err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// State returns the state of one asset partition; ok is false when it
// was never materialized nor failed.
func (l *Log) State(ctx context.Context, key, partition string) (s State, ok bool, err error) {
	rows, err := l.db.QueryContext(ctx, l.d.q(`SELECT asset_key, partition_key, mat_id, mat_body, fail_id, fail_body FROM {p}asset_state WHERE asset_key = ? AND partition_key = ?`), key, partition)
	if err != nil {
		return s, false, fmt.Errorf("eventlog: read asset state: %w", l.classify(err))
	}
	defer rows.Close()
	if !rows.Next() {
		return s, false, rows.Err()
	}
	s, err = scanState(rows)
	return s, err == nil, err
}

func scanState(rows *sql.Rows) (State, error) {
	var r rawState
	if err := rows.Scan(&r.key, &r.part, &r.matID, &r.matBody, &r.failID, &r.failBody); err != nil {
		return State{}, fmt.Errorf("eventlog: read asset state: %w", err)
	}
	return r.decode()
}

// Pruned is what Prune removed.
type Pruned struct {
	Runs   int
	Events int
	// Materializations are the removed KindMaterialization events, so that their
	// owner can delete the values no remaining event references.
	Materializations []Event
}

// Prune removes the events of runs that ended before t, and runs left with
// no event. It keeps every asset partition's newest materialization and
// failure (status and staleness need them) and runs that have not ended.
// A chain resumed later cannot reuse what its pruned runs materialized: it
// computes it again. It works in small transactions, so it can run beside
// live runs.
func (l *Log) Prune(ctx context.Context, t time.Time) (Pruned, error) {
	var p Pruned
	rows, err := l.db.QueryContext(ctx, l.d.q(`SELECT run_id FROM {p}asset_runs WHERE status <> ? AND ended_us > 0 AND ended_us < ? ORDER BY created_us`),
		string(RunStarted), micros(t))
	if err != nil {
		return p, fmt.Errorf("eventlog: prune: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return p, fmt.Errorf("eventlog: prune: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return p, fmt.Errorf("eventlog: prune: %w", err)
	}
	for _, id := range ids {
		if err := l.pruneRun(ctx, id, &p); err != nil {
			return p, err
		}
	}
	return p, nil
}

const keptEvents = `SELECT mat_id FROM {p}asset_state UNION SELECT fail_id FROM {p}asset_state`

func (l *Log) pruneRun(ctx context.Context, id string, p *Pruned) error {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("eventlog: prune run %s: %w", id, err)
	}
	defer tx.Rollback()
	mats, err := tx.QueryContext(ctx, l.d.q(`SELECT id, body FROM {p}asset_events WHERE run_id = ? AND kind = ? AND id NOT IN (`+keptEvents+`)`), id, string(KindMaterialization))
	if err != nil {
		return fmt.Errorf("eventlog: prune run %s: %w", id, err)
	}
	var removed []Event
	for mats.Next() {
		var eid int64
		var body string
		if err := mats.Scan(&eid, &body); err != nil {
			mats.Close()
			return fmt.Errorf("eventlog: prune run %s: %w", id, err)
		}
		e, err := decodeEvent(eid, body)
		if err != nil {
			mats.Close()
			return err
		}
		removed = append(removed, *e)
	}
	mats.Close()
	if err := mats.Err(); err != nil {
		return fmt.Errorf("eventlog: prune run %s: %w", id, err)
	}
	res, err := tx.ExecContext(ctx, l.d.q(`DELETE FROM {p}asset_events WHERE run_id = ? AND id NOT IN (`+keptEvents+`)`), id)
	if err != nil {
		return fmt.Errorf("eventlog: prune run %s: %w", id, err)
	}
	n, _ := res.RowsAffected()
	res, err = tx.ExecContext(ctx, l.d.q(`DELETE FROM {p}asset_runs WHERE run_id = ? AND NOT EXISTS (SELECT 1 FROM {p}asset_events WHERE run_id = ?)`), id, id)
	if err != nil {
		return fmt.Errorf("eventlog: prune run %s: %w", id, err)
	}
	r, _ := res.RowsAffected()
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("eventlog: prune run %s: %w", id, err)
	}
	p.Events += int(n)
	p.Runs += int(r)
	p.Materializations = append(p.Materializations, removed...)
	return nil
}

// Count returns the number of events in the log.
func (l *Log) Count(ctx context.Context) (int64, error) {
	var n int64
	if err := l.db.QueryRowContext(ctx, l.d.q(`SELECT COUNT(*) FROM {p}asset_events`)).Scan(&n); err != nil {
		return 0, fmt.Errorf("eventlog: count events: %w", l.classify(err))
	}
	return n, nil
}
