package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/internal/holder"
)

// leaseTimeout bounds a lease's own queries (Check, Release). They run on
// the lease's connection, which pgx closes when a query's context ends
// midway, so the caller's context is not passed on: a caller's deadline
// must not end the lease it only wanted to check.
const leaseTimeout = 30 * time.Second

// Lock takes the lock called name for owner. The lock is a row of the
// locks table and a session-level advisory lock held by a connection
// opened for the lease alone: the lock lasts until Release, or until the
// holder's process dies or its connection drops, when the server frees it
// at once. Each new holder increments the row's fencing token.
func (s *Store) Lock(ctx context.Context, name string, owner store.Owner) (store.Lease, error) {
	if err := s.check(ctx, name); err != nil {
		return nil, err
	}
	rec, err := json.Marshal(holder.Stamp(owner))
	if err != nil {
		return nil, fmt.Errorf("pgstore: lock %s: %w", name, err)
	}
	var id int32
	err = s.retry(ctx, "lock "+name, func(ctx context.Context) error {
		err := s.pool.QueryRow(ctx, s.q.lockID, name).Scan(&id)
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		// The first Lock of this name creates its row.
		err = s.pool.QueryRow(ctx, s.q.lockRow, name).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			// A concurrent first Lock inserted the row after this
			// statement's snapshot: it is there for the next try.
			return errRetryRow
		}
		return err
	})
	if err != nil {
		return nil, s.opError(ctx, "lock "+name, err)
	}
	l := &lease{s: s, name: name, key: lockKey(s.nsOID, id)}
	var conn *pgx.Conn
	err = s.retry(ctx, "lock "+name, func(ctx context.Context) error {
		c, err := pgx.ConnectConfig(ctx, s.cfg.Pool.ConnConfig)
		if err != nil {
			return err
		}
		conn = c
		return nil
	})
	if err != nil {
		return nil, s.opError(ctx, "lock "+name, err)
	}
	if err := s.tryLock(ctx, conn, l.key, name); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	// Holding the advisory lock, this session alone changes the token.
	if err := conn.QueryRow(ctx, s.q.lockTake, name, rec).Scan(&l.token); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, s.opError(ctx, "lock "+name, err)
	}
	l.conn = conn
	return l, nil
}

// deadHolderWait bounds the wait for the lock of a holder that died on
// this host: the server frees it when it notices the closed connection,
// a moment after the process's death.
const deadHolderWait = 5 * time.Second

// tryLock takes the advisory lock key on conn, or returns a
// *store.LockedError naming the holder. A holder that was a process of
// this host that no longer exists is waited for (up to deadHolderWait):
// its server process is about to exit and free the lock, and a job
// restarted right after a crash must not be refused for it.
func (s *Store) tryLock(ctx context.Context, conn *pgx.Conn, key int64, name string) error {
	deadline := time.Now().Add(deadHolderWait)
	for {
		var got bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&got); err != nil {
			return s.opError(ctx, "lock "+name, err)
		}
		if got {
			return nil
		}
		h := s.holder(ctx, name)
		if !holder.Gone(h) || time.Now().After(deadline) {
			return fmt.Errorf("pgstore: %w", &store.LockedError{Name: name, Holder: h})
		}
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("pgstore: lock %s: %w", name, ctx.Err())
		case <-t.C:
		}
	}
}

var errRetryRow = &transientError{"lock row not visible yet"}

// transientError is an error of ours that retry treats as transient.
type transientError struct{ msg string }

func (e *transientError) Error() string     { return e.msg }
func (e *transientError) SafeToRetry() bool { return true }

// holder returns the lock's holder as its row records it. The holder
// writes the row just after taking the advisory lock, so for a moment
// after a takeover the row may still name the previous holder.
func (s *Store) holder(ctx context.Context, name string) store.Owner {
	var raw []byte
	var h store.Owner
	err := s.pool.QueryRow(ctx, s.q.lockHolder, name).Scan(&raw)
	if err == nil && raw != nil {
		err = json.Unmarshal(raw, &h)
	}
	if err != nil {
		s.log.Debug("pgstore: cannot read a lock's holder", "lock", name, "err", err)
	}
	return h
}

// lease is a held lock: the connection that holds its advisory lock.
type lease struct {
	s     *Store
	name  string
	key   int64
	token int64

	mu   sync.Mutex
	conn *pgx.Conn // nil once released or lost
}

var _ store.FencedLease = (*lease)(nil)

// Token returns the fencing token: greater than every earlier holder's.
func (l *lease) Token() uint64 { return uint64(l.token) }

// Check reports store.ErrLeaseLost unless the lease's connection is alive,
// still holds the advisory lock, and the lock row still has its token.
func (l *lease) Check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pgstore: check lock %s: %w", l.name, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return fmt.Errorf("pgstore: lock %s: released or lost: %w", l.name, store.ErrLeaseLost)
	}
	qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leaseTimeout)
	defer cancel()
	var held bool
	var token int64
	err := l.conn.QueryRow(qctx, l.s.q.lockCheck, l.name, int64(uint64(l.key)>>32), l.key&0xffffffff).Scan(&held, &token)
	switch {
	case err != nil:
		// Whatever broke, the lock cannot be shown to be held; a
		// connection that failed is closed, and its lock with it.
		l.lose(qctx)
		return fmt.Errorf("pgstore: lock %s: its connection failed (%v): %w", l.name, err, store.ErrLeaseLost)
	case !held:
		l.lose(qctx)
		return fmt.Errorf("pgstore: lock %s: the session no longer holds it: %w", l.name, store.ErrLeaseLost)
	case token != l.token:
		l.lose(qctx)
		return fmt.Errorf("pgstore: lock %s: taken over (token %d, this lease's %d): %w", l.name, token, l.token, store.ErrLeaseLost)
	}
	return nil
}

func (l *lease) lose(ctx context.Context) {
	l.conn.Close(ctx)
	l.conn = nil
}

// Release unlocks and closes the lease's connection. The unlock is
// explicit so that the lock is free when Release returns, not when the
// server gets round to the closed connection.
func (l *lease) Release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return nil
	}
	qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leaseTimeout)
	defer cancel()
	if _, err := l.conn.Exec(qctx, `SELECT pg_advisory_unlock($1)`, l.key); err != nil {
		// Closing the connection frees the lock all the same.
		l.s.log.Debug("pgstore: unlock failed; closing the connection", "lock", l.name, "err", err)
	}
	l.lose(qctx)
	return nil
}

// CreateFenced is Store.Create that fails with store.ErrLeaseLost, writing
// nothing, unless the lock row still has this lease's token when the
// write commits.
func (l *lease) CreateFenced(ctx context.Context, name string, r io.Reader) error {
	l.mu.Lock()
	released := l.conn == nil
	l.mu.Unlock()
	if released {
		return fmt.Errorf("pgstore: create %s: lock %s released or lost: %w", name, l.name, store.ErrLeaseLost)
	}
	return l.s.write(ctx, "create", name, r, true, &fence{lock: l.name, token: l.token})
}

var (
	queryCacheMu sync.Mutex
	queryCache   = map[string]*queries{}
)

func queriesFor(schema string) *queries {
	queryCacheMu.Lock()
	defer queryCacheMu.Unlock()
	q, ok := queryCache[schema]
	if !ok {
		qq := newQueries(schema)
		q = &qq
		queryCache[schema] = q
	}
	return q
}

// CreateFencedTx writes the object name with body inside tx, as
// CreateFenced does: it fails with store.ErrLeaseLost, writing nothing,
// unless the lock lockName of the store in schema has the fencing token
// token, and with store.ErrExist if name exists. The lock row stays
// locked FOR SHARE until tx ends, so a new holder's token increment waits
// for tx: tx commits before the takeover or not at all. A sink calls it to
// commit a checkpoint's manifest in the transaction of its output.
func CreateFencedTx(ctx context.Context, tx pgx.Tx, schema, lockName string, token uint64, name string, body []byte) error {
	if err := ValidIdent(schema); err != nil {
		return fmt.Errorf("pgstore: schema %q: %w", schema, err)
	}
	if err := store.ValidName(name); err != nil {
		return fmt.Errorf("pgstore: %w", err)
	}
	if body == nil {
		body = []byte{} // nil would be NULL
	}
	var fenced, created bool
	err := tx.QueryRow(ctx, queriesFor(schema).createFenced, name, len(body), body, lockName, int64(token)).Scan(&fenced, &created)
	switch {
	case err != nil:
		return fmt.Errorf("pgstore: create %s: %w", name, err)
	case !fenced:
		return fmt.Errorf("pgstore: create %s: lock %s has a newer holder than token %d: %w", name, lockName, token, store.ErrLeaseLost)
	case !created:
		return fmt.Errorf("pgstore: create %s: %w", name, store.ErrExist)
	}
	return nil
}
