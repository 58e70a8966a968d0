package eventlog

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// batcher is the log's writer goroutine and its queue.
//
// Invariants:
//   - Events are committed in the order they were appended, so event ids
//     increase in append order within one Log.
//   - A flush waiter is answered only after every event appended before it
//     registered was committed (or failed); its answer is that outcome.
//   - A batch that fails and had no waiter leaves its error for the next
//     Flush, so a lost event is never silent.
//   - The queue holds at most maxPending events; Append blocks beyond that,
//     so a slow database bounds memory instead of growing it.
type batcher struct {
	l *Log

	mu       sync.Mutex
	drained  *sync.Cond // signalled when the writer takes the queue
	pending  []*Event
	waiters  []chan error
	asyncErr error // the first error of a batch nobody waited for
	closed   bool

	kick chan struct{} // capacity 1: wakes the writer
	done chan struct{} // closed by close
	exit chan struct{} // closed when the writer returns
}

func newBatcher(l *Log) *batcher {
	b := &batcher{
		l:    l,
		kick: make(chan struct{}, 1),
		done: make(chan struct{}),
		exit: make(chan struct{}),
	}
	b.drained = sync.NewCond(&b.mu)
	go b.loop()
	return b
}

func (b *batcher) maxPending() int { return 16 * b.l.opts.BatchSize }

func (b *batcher) wake() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// Append queues e for the next batch. It returns at once unless the queue
// is full. An event appended after Close is reported by no one: callers
// close the log last.
func (l *Log) Append(e Event) {
	b := l.b
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	b.mu.Lock()
	for len(b.pending) >= b.maxPending() && !b.closed {
		b.drained.Wait()
	}
	if b.closed {
		if b.asyncErr == nil {
			b.asyncErr = ErrClosed
		}
		b.mu.Unlock()
		return
	}
	b.pending = append(b.pending, &e)
	n := len(b.pending)
	b.mu.Unlock()
	if n == 1 || n >= l.opts.BatchSize {
		b.wake()
	}
}

// Flush returns when every event appended before it is committed, with the
// error of any batch that failed since the last Flush.
func (l *Log) Flush(ctx context.Context) error {
	b := l.b
	ch := make(chan error, 1)
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	b.waiters = append(b.waiters, ch)
	b.mu.Unlock()
	b.wake()
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Record appends e and flushes: when it returns nil, e is durable.
func (l *Log) Record(ctx context.Context, e Event) error {
	l.Append(e)
	return l.Flush(ctx)
}

func (b *batcher) loop() {
	defer close(b.exit)
	interval := b.l.opts.FlushInterval
	timer := time.NewTimer(interval)
	timer.Stop()
	for {
		select {
		case <-b.kick:
		case <-b.done:
			b.writeQueued()
			return
		}
		b.mu.Lock()
		urgent := len(b.waiters) > 0 || len(b.pending) >= b.l.opts.BatchSize
		b.mu.Unlock()
		if !urgent {
			// A first event: give others FlushInterval to join it, unless a
			// flush or a full batch asks for it sooner.
			timer.Reset(interval)
			select {
			case <-timer.C:
			case <-b.kick:
				timer.Stop()
			case <-b.done:
				timer.Stop()
				b.writeQueued()
				return
			}
		}
		b.writeQueued()
	}
}

// writeQueued commits whatever is queued and answers the waiters.
func (b *batcher) writeQueued() {
	b.mu.Lock()
	evs, ws := b.pending, b.waiters
	b.pending, b.waiters = nil, nil
	var earlier error
	if len(ws) > 0 {
		earlier, b.asyncErr = b.asyncErr, nil
	}
	b.drained.Broadcast()
	b.mu.Unlock()
	var err error
	if len(evs) > 0 {
		err = b.l.writeBatch(context.Background(), evs)
		if err != nil {
			err = fmt.Errorf("eventlog: write %d events to %s: %w", len(evs), b.l, err)
		}
	}
	if err != nil && len(ws) == 0 {
		b.mu.Lock()
		if b.asyncErr == nil {
			b.asyncErr = err
		}
		b.mu.Unlock()
	}
	werr := errors.Join(earlier, err)
	for _, w := range ws {
		w <- werr
	}
}

func (b *batcher) close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.drained.Broadcast()
	b.mu.Unlock()
	close(b.done)
	<-b.exit
	b.mu.Lock()
	defer b.mu.Unlock()
	err := b.asyncErr
	if errors.Is(err, ErrClosed) {
		err = nil
	}
	return err
}

// rowsPerInsert bounds a multi-row INSERT of plain events (7 values each).
const rowsPerInsert = 200

// writeBatch commits evs in one transaction, in order. Runs of plain
// events go in multi-row INSERTs; materializations and failures one by one
// (their ids go into asset_state). The state rows are updated last, once
// per asset partition and in key order, so that concurrent writers lock
// them in the same order and cannot deadlock.
func (l *Log) writeBatch(ctx context.Context, evs []*Event) error {
	var err error
	for try := 0; try < 3; try++ {
		if err = l.tryBatch(ctx, evs); err == nil || !isRetryable(err) {
			return err
		}
	}
	return err
}

type stateKey struct {
	key, part string
	fail      bool
}

func (l *Log) tryBatch(ctx context.Context, evs []*Event) error {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	latest := map[stateKey]*Event{}
	for i := 0; i < len(evs); {
		if tracked(evs[i].Kind) {
			if err := l.insertTracked(ctx, tx, evs[i]); err != nil {
				return err
			}
			latest[stateKey{evs[i].Key, evs[i].Partition, evs[i].Kind == KindStepFailure}] = evs[i]
			i++
			continue
		}
		j := i
		for j < len(evs) && !tracked(evs[j].Kind) && j-i < rowsPerInsert {
			j++
		}
		if err := l.insertPlain(ctx, tx, evs[i:j]); err != nil {
			return err
		}
		i = j
	}
	keys := slices.SortedFunc(maps.Keys(latest), func(a, b stateKey) int {
		return cmp.Or(cmp.Compare(a.key, b.key), cmp.Compare(a.part, b.part), cmpBool(a.fail, b.fail))
	})
	for _, k := range keys {
		e := latest[k]
		up := l.upsertMat
		if k.fail {
			up = l.upsertFail
		}
		body, err := eventBody(e)
		if err != nil {
			return err
		}
		if _, err := tx.StmtContext(ctx, up).ExecContext(ctx, e.Key, e.Partition, e.ID, body); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

func tracked(k Kind) bool { return k == KindMaterialization || k == KindStepFailure }

func eventBody(e *Event) (string, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return "", fmt.Errorf("encode %s event: %w", e.Kind, err)
	}
	return string(b), nil
}

func (l *Log) insertPlain(ctx context.Context, tx *sql.Tx, evs []*Event) error {
	var sb strings.Builder
	sb.WriteString("INSERT INTO {p}asset_events (run_id, ts_us, kind, asset_key, partition_key, body) VALUES ")
	args := make([]any, 0, 6*len(evs))
	for i, e := range evs {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString("(?,?,?,?,?,?)")
		body, err := eventBody(e)
		if err != nil {
			return err
		}
		args = append(args, e.RunID, micros(e.Time), string(e.Kind), e.Key, e.Partition, body)
	}
	_, err := tx.ExecContext(ctx, l.d.q(sb.String()), args...)
	return err
}

const insertTrackedSQL = `INSERT INTO {p}asset_events (run_id, ts_us, kind, asset_key, partition_key, body)
	VALUES (?,?,?,?,?,?) RETURNING id`

// The upserts move a state row forward only: the row keeps whichever
// event has the higher id, whatever order concurrent writers commit in.
const (
	upsertMaterialization = `INSERT INTO {p}asset_state (asset_key, partition_key, mat_id, mat_body) VALUES (?,?,?,?)
		ON CONFLICT (asset_key, partition_key) DO UPDATE SET mat_id = excluded.mat_id, mat_body = excluded.mat_body
		WHERE {p}asset_state.mat_id < excluded.mat_id`
	upsertFailure = `INSERT INTO {p}asset_state (asset_key, partition_key, fail_id, fail_body) VALUES (?,?,?,?)
		ON CONFLICT (asset_key, partition_key) DO UPDATE SET fail_id = excluded.fail_id, fail_body = excluded.fail_body
		WHERE {p}asset_state.fail_id < excluded.fail_id`
)

func (l *Log) insertTracked(ctx context.Context, tx *sql.Tx, e *Event) error {
	body, err := eventBody(e)
	if err != nil {
		return err
	}
	return tx.StmtContext(ctx, l.insertOne).QueryRowContext(ctx, e.RunID, micros(e.Time), string(e.Kind), e.Key, e.Partition, body).Scan(&e.ID)
}
