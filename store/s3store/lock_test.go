package s3store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ckptdev/ckpt/internal/testenv"
	"github.com/ckptdev/ckpt/store"
)

func owner(n int) store.Owner {
	return store.Owner{ID: "s3store-test", PID: 50000 + n, Host: "host-" + string(rune('a'+n)), Since: time.Date(2026, 3, 4, 5, 6, n, 0, time.UTC)}
}

func wantLockedBy(t *testing.T, err error, holder store.Owner) {
	t.Helper()
	var le *store.LockedError
	if !errors.As(err, &le) || !errors.Is(err, store.ErrLocked) {
		t.Fatalf("Lock: %v, want a *store.LockedError", err)
	}
	if le.Holder.PID != holder.PID || le.Holder.Host != holder.Host {
		t.Fatalf("Lock: held by %s, want %s", le.Holder, holder)
	}
}

// A holder cut off from the service stops renewing; once its lease has
// expired by the service's clock another process takes the lock over. By
// then the first holder must already know it lost the lease, and a write
// fenced by it must be refused.
func TestLeaseExpiresAndIsTakenOver(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: waits for a lease to expire")
	}
	t.Parallel()
	b := testenv.S3(t)
	proxy := testenv.NewProxy(t, strings.TrimPrefix(b.Endpoint, "http://"))
	const name = "jobs/x/LOCK"
	const ttl, renew = time.Second, 200 * time.Millisecond

	oa := options(b, "lease")
	oa.Endpoint = proxy.Endpoint()
	oa.LeaseTTL, oa.LeaseRenew = ttl, renew
	oa.RequestTimeout, oa.MaxRetryTime = 300*time.Millisecond, time.Second
	a := open(t, oa)
	ob := options(b, "lease")
	ob.LeaseTTL, ob.LeaseRenew = ttl, renew
	rec := newLogRecorder()
	ob.Logger = rec.logger()
	other := open(t, ob)
	ctx := t.Context()

	la, err := a.Lock(ctx, name, owner(1))
	if err != nil {
		t.Fatal(err)
	}
	fenced, ok := la.(store.FencedLease)
	if !ok {
		t.Fatalf("the lease %T is not a store.FencedLease", la)
	}

	// Renewed, the lease outlives its TTL several times over.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for until := time.Now().Add(2 * ttl); time.Now().Before(until); <-tick.C {
		_, err := other.Lock(ctx, name, owner(2))
		wantLockedBy(t, err, owner(1))
		if err := la.Check(ctx); err != nil {
			t.Fatalf("Check of a renewed lease: %v", err)
		}
	}

	proxy.Stall()
	stalled := time.Now()
	var lb store.Lease
	for lb == nil {
		<-tick.C
		l, err := other.Lock(ctx, name, owner(2))
		switch {
		case err == nil:
			lb = l
		case !errors.Is(err, store.ErrLocked):
			t.Fatalf("Lock while the holder is cut off: %v", err)
		case time.Since(stalled) > 10*ttl:
			t.Fatalf("the lock of a holder cut off for %s was not taken over", time.Since(stalled))
		}
	}
	// The moment the other process holds the lock, the old holder must
	// already count its lease as lost, from its own clock alone.
	if err := la.Check(ctx); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("Check of the cut-off lease after the takeover: %v, want store.ErrLeaseLost", err)
	}
	if took := time.Since(stalled); took < ttl-renew {
		t.Errorf("lock taken over %s after the holder was cut off, before its TTL of %s could run out", took, ttl)
	}
	if lb.Token() <= la.Token() {
		t.Errorf("new holder's token %d is not greater than the old one's %d", lb.Token(), la.Token())
	}
	if rec.count("taking over a lock", owner(1).Host) == 0 {
		t.Errorf("the takeover was not logged with the previous holder; the log:\n%s", rec)
	}

	proxy.Resume()
	err = fenced.CreateFenced(ctx, "jobs/x/checkpoints/1", bytes.NewReader([]byte("stale")))
	if !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("CreateFenced by the old holder: %v, want store.ErrLeaseLost", err)
	}
	wantMissing(t, other, "jobs/x/checkpoints/1")
	if err := la.Release(ctx); err != nil {
		t.Fatalf("Release of the lost lease: %v", err)
	}
	// Releasing the lost lease leaves the new holder's lock alone.
	if err := lb.Check(ctx); err != nil {
		t.Fatalf("Check of the new holder's lease: %v", err)
	}
	_, err = a.Lock(ctx, name, owner(3))
	wantLockedBy(t, err, owner(2))
	if err := lb.(store.FencedLease).CreateFenced(ctx, "jobs/x/checkpoints/1", bytes.NewReader([]byte("new"))); err != nil {
		t.Fatalf("CreateFenced by the new holder: %v", err)
	}
	wantObject(t, other, "jobs/x/checkpoints/1", []byte("new"))
	if err := lb.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// CreateFenced reads the lock object before it writes: a lease whose lock
// was taken behind its back (here an operator rewrote the lock object)
// writes nothing, though its own clock says it is still held.
func TestCreateFencedChecksTheLockObject(t *testing.T) {
	t.Parallel()
	b := testenv.S3(t)
	st := open(t, options(b, "fence"))
	ctx := t.Context()
	const name = "jobs/y/LOCK"
	l, err := st.Lock(ctx, name, owner(1))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(ctx)
	fl := l.(store.FencedLease)

	if err := fl.CreateFenced(ctx, "jobs/y/checkpoints/1", bytes.NewReader([]byte("one"))); err != nil {
		t.Fatalf("CreateFenced of the holder: %v", err)
	}
	wantObject(t, st, "jobs/y/checkpoints/1", []byte("one"))
	if err := fl.CreateFenced(ctx, "jobs/y/checkpoints/1", bytes.NewReader([]byte("two"))); !errors.Is(err, store.ErrExist) {
		t.Fatalf("CreateFenced of an existing object: %v, want store.ErrExist", err)
	}

	intruder := owner(7)
	rec, _ := json.Marshal(map[string]any{"token": l.Token() + 1, "holder": intruder, "lease": "someone-else", "ttl_ms": 60_000})
	if _, err := b.Client().PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(b.Bucket), Key: aws.String("fence/.ckpt-locks/" + name), Body: bytes.NewReader(rec),
	}); err != nil {
		t.Fatal(err)
	}
	if err := l.Check(ctx); err != nil {
		t.Fatalf("Check before anything found out: %v (it needs no request)", err)
	}
	err = fl.CreateFenced(ctx, "jobs/y/checkpoints/2", bytes.NewReader([]byte("two")))
	if !errors.Is(err, store.ErrLeaseLost) || !strings.Contains(err.Error(), intruder.Host) {
		t.Fatalf("CreateFenced after the lock was taken: %v, want store.ErrLeaseLost naming %s", err, intruder)
	}
	wantMissing(t, st, "jobs/y/checkpoints/2")
	if err := l.Check(ctx); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("Check after CreateFenced found the lock taken: %v", err)
	}
	// The intruder is of another host and its lease live: without
	// waiting for it to expire, the lock is refused.
	o := options(b, "fence")
	o.NoLockWait = true
	_, err = open(t, o).Lock(ctx, name, owner(2))
	wantLockedBy(t, err, intruder)
}

// Lock objects are the store's own: they never show as objects, even in a
// store at the bucket's root, and an object of the same name is another
// thing.
func TestLockObjectsAreNotObjects(t *testing.T) {
	t.Parallel()
	st := open(t, options(testenv.S3(t), ""))
	ctx := t.Context()
	l, err := st.Lock(ctx, "jobs/z/LOCK", owner(1))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(ctx)
	if names, err := st.List(ctx, ""); err != nil || len(names) != 0 {
		t.Fatalf("List with a lock held: %q, %v; want nothing", names, err)
	}
	wantMissing(t, st, "jobs/z/LOCK")
	put(t, st, "jobs/z/LOCK", []byte("an object"))
	if err := l.Check(ctx); err != nil {
		t.Fatalf("Check after an object of the lock's name was written: %v", err)
	}
	_, err = st.Lock(ctx, "jobs/z/LOCK", owner(2))
	wantLockedBy(t, err, owner(1))
	wantObject(t, st, "jobs/z/LOCK", []byte("an object"))
}

// Close ends the renewal of a lease still held, a renewal in flight
// included: no goroutine of the store outlives it, and nothing is written
// after it. (Not parallel: it looks at every goroutine of the process.)
func TestCloseEndsRenewals(t *testing.T) {
	b := testenv.S3(t)
	o, proxy, _ := viaProxy(t, b, "close")
	o.LeaseTTL, o.LeaseRenew = 20*time.Second, 50*time.Millisecond
	st := open(t, o)
	if _, err := st.Lock(t.Context(), "jobs/c/LOCK", owner(1)); err != nil {
		t.Fatal(err)
	}
	// A renewal that gets no answer stays in flight until the lease's
	// deadline, 20s away.
	proxy.Stall()
	if !waitStacks(10*time.Second, func(s string) bool { return strings.Contains(s, "s3store.(*lease).renew(") }) {
		t.Fatal("no renewal in flight after 10s")
	}
	start := time.Now()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// Close returns once the renewal goroutine has signalled that it is
	// done; it may still be running its last deferred calls for a moment.
	if !waitStacks(2*time.Second, func(s string) bool { return !strings.Contains(s, "s3store.(*lease).renewLoop") }) {
		t.Fatalf("a renewal goroutine outlived Close:\n%s", allStacks())
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Close took %s", took)
	}
}

func allStacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// waitStacks polls the goroutines' stacks until ok accepts them, for at
// most d.
func waitStacks(d time.Duration, ok func(string) bool) bool {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); <-tick.C {
		if ok(allStacks()) {
			return true
		}
	}
	return false
}

// A Lock that finds the record of another Lock of this process, written
// but not yet answered, fails at once with store.ErrLocked: it does not
// wait for a renewal as it does for a holder it cannot check.
func TestLockInFlightInThisProcessIsLocked(t *testing.T) {
	t.Parallel()
	b := testenv.S3(t)
	const name = "jobs/f/LOCK"
	oa, proxy, _ := viaProxy(t, b, "inflight")
	oa.RequestTimeout = time.Minute // a late answer is no timeout here
	a := open(t, oa)
	// The probe of conditional writes runs first, at full speed.
	if err := a.Create(t.Context(), "warm", opaque([]byte("w"))); err != nil {
		t.Fatal(err)
	}
	ob := options(b, "inflight")
	rec := newLogRecorder()
	ob.Logger = rec.logger()
	other := open(t, ob)
	if err := other.Create(t.Context(), "warm2", opaque([]byte("w"))); err != nil {
		t.Fatal(err)
	}

	// a's answers come late: its lock record is on the server while a
	// still waits for the answer to its write.
	proxy.SetDelay(0, 500*time.Millisecond)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	locked := make(chan error, 1)
	go func() {
		l, err := a.Lock(t.Context(), name, owner(1))
		cancel() // a waiting Lock of other would wait on: stop it
		if err == nil {
			defer l.Release(context.Background())
		}
		locked <- err
	}()
	key := aws.String("inflight/.ckpt-locks/" + name)
	for {
		_, err := b.Client().HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(b.Bucket), Key: key})
		if err == nil {
			break
		}
		if t.Context().Err() != nil {
			t.Fatalf("the lock record never appeared: %v", err)
		}
	}
	_, err := other.Lock(ctx, name, owner(2))
	wantLockedBy(t, err, owner(1))
	if n := rec.count("waiting"); n != 0 {
		t.Errorf("Lock waited for a lease of this process:\n%s", rec)
	}
	if err := <-locked; err != nil {
		t.Fatalf("Lock through the slow proxy: %v", err)
	}
}
