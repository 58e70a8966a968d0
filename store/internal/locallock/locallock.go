// Package locallock is a table of named locks held within one process:
// the locks of the in-memory store, and of an S3 store whose caller
// guarantees a single writer by other means.
package locallock

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ckptdev/ckpt/store"
)

// Table holds named locks. The zero value is an empty table whose tokens
// count from 1 per name.
type Table struct {
	// ClockTokens makes tokens at least the current time in nanoseconds,
	// so that they also exceed those of earlier processes that did the
	// same, which a count starting at 1 in each process would not.
	ClockTokens bool

	mu     sync.Mutex
	held   map[string]*Lease
	tokens map[string]uint64
	last   uint64
}

// Lock takes the lock called name for owner, or fails with a
// *store.LockedError naming the holder, for the caller to wrap.
func (t *Table) Lock(name string, owner store.Owner) (*Lease, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if l, ok := t.held[name]; ok {
		return nil, &store.LockedError{Name: name, Holder: l.owner}
	}
	if t.held == nil {
		t.held = make(map[string]*Lease)
		t.tokens = make(map[string]uint64)
	}
	tok := t.tokens[name] + 1
	if t.ClockTokens {
		tok = max(tok, uint64(time.Now().UnixNano()), t.last+1)
	}
	t.tokens[name], t.last = tok, max(t.last, tok)
	l := &Lease{t: t, name: name, owner: owner, token: tok}
	t.held[name] = l
	return l, nil
}

// Lease is a lock of a Table; it implements store.Lease.
type Lease struct {
	t     *Table
	name  string
	owner store.Owner
	token uint64
}

var _ store.Lease = (*Lease)(nil)

// Token returns the fencing token: greater than every earlier holder's.
func (l *Lease) Token() uint64 { return l.token }

// Check reports store.ErrLeaseLost once the lease is released.
func (l *Lease) Check(ctx context.Context) error {
	l.t.mu.Lock()
	defer l.t.mu.Unlock()
	if l.t.held[l.name] != l {
		return fmt.Errorf("lock %s: %w: released", l.name, store.ErrLeaseLost)
	}
	return nil
}

// Release gives the lock up; calling it again does nothing.
func (l *Lease) Release(ctx context.Context) error {
	l.t.mu.Lock()
	defer l.t.mu.Unlock()
	if l.t.held[l.name] == l {
		delete(l.t.held, l.name)
	}
	return nil
}
