package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ckptdev/ckpt/store"
)

func owner(n int) store.Owner {
	return store.Owner{
		ID:    fmt.Sprintf("storetest-owner-%d", n),
		PID:   40000 + n,
		Host:  fmt.Sprintf("host-%d", n),
		Since: time.Date(2026, 1, 2, 15, 4, n, 0, time.UTC),
	}
}

func lock(t *testing.T, st store.Store, name string, o store.Owner) store.Lease {
	t.Helper()
	l, err := st.Lock(t.Context(), name, o)
	if err != nil {
		t.Fatalf("Lock %s for %s: %v", name, o, err)
	}
	// t.Context is cancelled by the time cleanups run.
	t.Cleanup(func() { l.Release(context.Background()) })
	return l
}

// wantLocked fails the test unless err says that holder has lock name.
func wantLocked(t *testing.T, err error, name string, holder store.Owner) {
	t.Helper()
	if !errors.Is(err, store.ErrLocked) {
		t.Fatalf("Lock of the held %s: %v, want an error matching store.ErrLocked", name, err)
	}
	var le *store.LockedError
	if !errors.As(err, &le) {
		t.Fatalf("Lock of the held %s: %v (%T) is not a *store.LockedError", name, err, err)
	}
	if le.Name != name {
		t.Errorf("LockedError.Name = %q, want %q", le.Name, name)
	}
	h := le.Holder
	if h.ID != holder.ID || h.PID != holder.PID || h.Host != holder.Host || !h.Since.Equal(holder.Since) {
		t.Errorf("LockedError.Holder = %+v, want the holder %+v", h, holder)
	}
	for _, part := range []string{name, fmt.Sprintf("pid %d", holder.PID), holder.Host} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not mention %q", err, part)
		}
	}
}

func wantHeld(t *testing.T, l store.Lease, what string) {
	t.Helper()
	if err := l.Check(t.Context()); err != nil {
		t.Fatalf("Check of %s: %v, want nil", what, err)
	}
}

func wantLost(t *testing.T, l store.Lease, what string) {
	t.Helper()
	if err := l.Check(t.Context()); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("Check of %s: %v, want an error matching store.ErrLeaseLost", what, err)
	}
}

func testLock(t *testing.T, open func(t *testing.T) store.Store) {
	st := fresh(t, open)
	ctx := t.Context()
	const name = "locks/job"

	first := lock(t, st, name, owner(1))
	wantHeld(t, first, "the first lease")
	for i := range 2 {
		_, err := st.Lock(ctx, name, owner(2))
		wantLocked(t, err, name, owner(1))
		// A refused attempt must not disturb the holder (as closing any
		// descriptor of a file releases its POSIX record locks).
		wantHeld(t, first, fmt.Sprintf("the first lease after refused attempt %d", i+1))
	}

	if err := first.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if err := first.Release(ctx); err != nil {
		t.Fatalf("second Release: %v, want nil", err)
	}
	wantLost(t, first, "a released lease")

	prev := first
	for n := 2; n <= 4; n++ {
		l := lock(t, st, name, owner(n))
		if l.Token() <= prev.Token() {
			t.Fatalf("holder %d has token %d, not greater than the previous holder's %d", n, l.Token(), prev.Token())
		}
		wantHeld(t, l, fmt.Sprintf("holder %d's lease", n))
		// The released lease stays released, and releasing it again must
		// not free the lock of its successor.
		wantLost(t, first, "a released lease")
		if err := first.Release(ctx); err != nil {
			t.Fatalf("Release of a lease released long ago: %v", err)
		}
		wantHeld(t, l, fmt.Sprintf("holder %d's lease after its predecessor released again", n))
		_, err := st.Lock(ctx, name, owner(9))
		wantLocked(t, err, name, owner(n))
		if err := l.Release(ctx); err != nil {
			t.Fatalf("Release: %v", err)
		}
		prev = l
	}
}

// testLockRace starts many Locks of one name at once: exactly one wins.
func testLockRace(t *testing.T, open func(t *testing.T) store.Store) {
	st := fresh(t, open)
	const name, lockers = "locks/race", 8
	var prev uint64
	for round := range 4 {
		leases := make([]store.Lease, lockers)
		errs := make([]error, lockers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range lockers {
			wg.Go(func() {
				<-start
				leases[i], errs[i] = st.Lock(t.Context(), name, owner(i))
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("round %d: lockers %d and %d both hold %s", round, winner, i, name)
			case err == nil:
				winner = i
			case !errors.Is(err, store.ErrLocked):
				t.Fatalf("round %d: locker %d: %v, want success or an error matching store.ErrLocked", round, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: nobody got %s: %v", round, name, errors.Join(errs...))
		}
		l := leases[winner]
		if l.Token() <= prev {
			t.Fatalf("round %d: token %d, not greater than the previous holder's %d", round, l.Token(), prev)
		}
		prev = l.Token()
		wantHeld(t, l, "the winner's lease")
		if err := l.Release(t.Context()); err != nil {
			t.Fatalf("Release: %v", err)
		}
	}
}

func testLockNamesAreIndependent(t *testing.T, open func(t *testing.T) store.Store) {
	st := fresh(t, open)
	names := []string{"locks/a", "locks/b", "other/a", "a-lock"}
	leases := make([]store.Lease, len(names))
	for i, name := range names {
		leases[i] = lock(t, st, name, owner(i))
	}
	for i, name := range names {
		wantHeld(t, leases[i], name)
		_, err := st.Lock(t.Context(), name, owner(9))
		wantLocked(t, err, name, owner(i))
	}
	// Releasing one leaves the others held.
	if err := leases[0].Release(t.Context()); err != nil {
		t.Fatalf("Release %s: %v", names[0], err)
	}
	wantLost(t, leases[0], names[0])
	for i, name := range names[1:] {
		wantHeld(t, leases[i+1], name)
		_, err := st.Lock(t.Context(), name, owner(9))
		wantLocked(t, err, name, owner(i+1))
	}
	lock(t, st, names[0], owner(9))
}
