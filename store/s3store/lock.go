package s3store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"path"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/internal/holder"
)

// A lock is one object, prefix/.ckpt-locks/NAME, holding a lockRecord.
// It is never deleted: the record carries the fencing token from each
// holder to the next. Every change is a conditional write, so of two
// processes that read the same version and both try to change it, one
// wins and the other is refused (412):
//
//   - take a free lock: If-None-Match: * if the object does not exist,
//     else If-Match on the ETag of a released or expired record;
//   - renew (every LeaseRenew) and release: If-Match on the holder's ETag.
//
// Expiry is judged by the service's clock alone: a record is expired when
// the Date of the answer that read it is more than its TTL plus one
// second (both times have one-second resolution) after its Last-Modified.
// The holder, on its own monotonic clock, counts its lease as held until
// TTL after it sent its last successful renewal, which is never later
// than the earliest moment the service lets another process take over.
type lockRecord struct {
	Token    uint64       `json:"token"`
	Holder   *store.Owner `json:"holder,omitempty"`
	Lease    string       `json:"lease,omitempty"`   // random id of one holding
	TTLms    int64        `json:"ttl_ms,omitempty"`  // the holder's lease TTL
	Renewal  uint64       `json:"renewal,omitempty"` // changes the ETag at every renewal
	Released bool         `json:"released,omitempty"`
}

// lockState is a lock object as read.
type lockState struct {
	rec      lockRecord
	bad      error // the record did not decode
	etag     string
	modified time.Time // Last-Modified
	now      time.Time // the service's Date when it answered
}

func (st *lockState) ttl(def time.Duration) time.Duration {
	if st.rec.TTLms > 0 {
		return time.Duration(st.rec.TTLms) * time.Millisecond
	}
	return def
}

// live reports whether a holder may still hold the lock.
func (st *lockState) live(def time.Duration) bool {
	return st.bad == nil && !st.rec.Released && st.now.Sub(st.modified) <= st.ttl(def)+time.Second
}

func (s *Store) lockKey(name string) (string, error) {
	if err := store.ValidName(name); err != nil {
		return "", fmt.Errorf("s3store: %w", err)
	}
	return s.root + locksDir + name, nil
}

// Lock takes the lock called name for owner, or fails with a
// *store.LockedError naming the live holder. A lock whose holder stopped
// renewing it (it died) is taken over once its TTL has passed. The lease
// renews itself in the background until Release; it implements
// store.FencedLease.
func (s *Store) Lock(ctx context.Context, name string, owner store.Owner) (_ store.Lease, err error) {
	key, err := s.lockKey(name)
	if err != nil {
		return nil, err
	}
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("s3store: lock %s: %w", name, err)
	}
	if owner.Since.IsZero() {
		owner.Since = time.Now().UTC()
	}
	owner = holder.Stamp(owner)
	if s.opts.ExternalLocking {
		return s.localLock(name, owner)
	}
	if err := s.conditional(ctx); err != nil {
		return nil, fmt.Errorf("s3store: lock %s: %w", name, err)
	}
	id := newID()
	// The lease counts as this process's from before its record is
	// written: another Lock of this process that reads the record before
	// the lease starts then fails at once, instead of waiting for a
	// renewal as it does for a holder it cannot check.
	heldHere.Store(id, struct{}{})
	defer func() {
		if err != nil {
			heldHere.Delete(id)
		}
	}()
	var putStart time.Time
	w := lockWait{s: s, name: name}
	for round := 0; round < 16; round++ {
		st, err := s.readLock(ctx, key)
		next := lockRecord{Holder: &owner, Lease: id, TTLms: s.opts.LeaseTTL.Milliseconds()}
		var ifNoneMatch, ifMatch *string
		takeover := false
		switch {
		case errors.Is(err, store.ErrNotFound):
			next.Token = 1
			ifNoneMatch = aws.String("*")
		case err != nil:
			return nil, s.fail("lock", name, err)
		case st.bad == nil && st.rec.Lease == id:
			// An earlier round's write landed though its answer was lost.
			return s.startLease(name, key, id, st.rec, st.etag, putStart), nil
		case st.live(s.opts.LeaseTTL) && st.rec.Holder != nil && !heldInProcess(st.rec.Lease) && holder.Gone(*st.rec.Holder):
			// Its holder was a process of this host that has exited: no
			// one renews the lease, and waiting for it to expire would
			// only hold up the run that resumes the job.
			takeover = true
			s.log.Warn("s3store: taking over a lock whose holder, a process of this host, has exited", "lock", name,
				"previous_holder", st.rec.Holder.String(), "token", st.rec.Token)
			next.Token = st.rec.Token + 1
			ifMatch = aws.String(st.etag)
		case st.live(s.opts.LeaseTTL):
			le := &store.LockedError{Name: name}
			if st.rec.Holder != nil {
				le.Holder = *st.rec.Holder
			}
			// A process of this host that lives holds it; one of another
			// host may have died: its lease shows it by expiring.
			if heldInProcess(st.rec.Lease) || s.opts.NoLockWait || holder.Local(le.Holder) {
				return nil, fmt.Errorf("s3store: %w", le)
			}
			wait, alive := w.wait(&st, le.Holder)
			if alive {
				return nil, fmt.Errorf("s3store: %w", le)
			}
			if err := s.sleep(ctx, wait); err != nil {
				return nil, fmt.Errorf("s3store: lock %s: waiting for the lease of %s to expire: %w", name, le.Holder, err)
			}
			round--
			continue
		case st.bad != nil:
			// Only a foreign write can leave an undecodable record; the
			// time keeps new tokens increasing anyway.
			s.log.Warn("s3store: lock object unreadable, rewriting it", "lock", name, "err", st.bad)
			next.Token = uint64(time.Now().UnixNano())
			ifMatch = aws.String(st.etag)
		default:
			if !st.rec.Released {
				takeover = true
				prev := "unknown holder"
				if st.rec.Holder != nil {
					prev = st.rec.Holder.String()
				}
				s.log.Warn("s3store: taking over a lock whose holder stopped renewing it", "lock", name,
					"previous_holder", prev, "last_renewed", st.modified, "ttl", st.ttl(s.opts.LeaseTTL))
			}
			next.Token = st.rec.Token + 1
			ifMatch = aws.String(st.etag)
		}
		putStart = time.Now()
		etag, err := s.putLock(ctx, key, next, ifNoneMatch, ifMatch)
		if err == nil {
			l := s.startLease(name, key, id, next, etag, putStart)
			if takeover {
				s.abortUploads(ctx, name)
			}
			return l, nil
		}
		if !lostRace(err) {
			// The write may have landed with its answer lost: then the lock
			// is ours, and left alone it would block the job for a TTL.
			if st, rerr := s.readLock(ctx, key); rerr == nil && st.bad == nil && st.rec.Lease == id {
				return s.startLease(name, key, id, st.rec, st.etag, putStart), nil
			}
			return nil, s.fail("lock", name, err)
		}
		// Another process changed the lock between our read and write:
		// read again and decide anew.
	}
	return nil, s.fail("lock", name, errors.New("the lock object kept changing under contention; try again"))
}

// heldHere has the lease ids of the leases this process holds, in any
// store: a lock that one of them holds is live, whatever host its record
// names.
var heldHere sync.Map

func heldInProcess(lease string) bool {
	_, ok := heldHere.Load(lease)
	return ok
}

// lockWait follows a live lock whose holder may have died elsewhere (on
// another host, or where its process cannot be looked up): a holder that
// lives renews its lease within a renewal period, one that died does not,
// and its lease expires after its TTL.
type lockWait struct {
	s      *Store
	name   string
	etag   string // of the record waited on; "" before the first wait
	logged bool
}

// wait returns how long to wait before reading the lock st again, or
// alive if the record changed since the last wait: its holder renewed it,
// so it lives.
func (w *lockWait) wait(st *lockState, h store.Owner) (time.Duration, bool) {
	if w.etag != "" && st.etag != w.etag {
		return 0, true
	}
	w.etag = st.etag
	ttl := st.ttl(w.s.opts.LeaseTTL)
	// Expired by the service's clock at Last-Modified + TTL + 1 s (see
	// lockState.live); a little more for the one-second resolutions.
	left := st.modified.Add(ttl + time.Second).Sub(st.now)
	left = max(left, 0) + 250*time.Millisecond
	if !w.logged {
		w.logged = true
		w.s.log.Warn(fmt.Sprintf("s3store: lock %s is held by %s, which cannot be checked from this host; waiting up to %s for its lease to expire, as it does if its holder died (a holder that lives renews it, and this run then stops)",
			w.name, h, left.Round(100*time.Millisecond)), "lock", w.name, "holder", h.String(), "wait", left.Round(time.Millisecond))
	}
	// Read again before then, to tell a live holder by its renewal.
	return min(left, max(ttl/4, time.Second)), false
}

// sleep waits for d or until ctx ends.
func (s *Store) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// lostRace reports whether a conditional write was refused because the
// object changed (or vanished) since it was read.
func lostRace(err error) bool {
	code, status := apiCode(err)
	return status == http.StatusPreconditionFailed || status == http.StatusNotFound ||
		code == "ConditionalRequestConflict" || code == "NoSuchKey"
}

// readLock reads a lock object, or fails with store.ErrNotFound.
func (s *Store) readLock(ctx context.Context, key string) (lockState, error) {
	var st lockState
	_, err := s.do(ctx, "GetObject", func(ctx context.Context) error {
		out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.opts.Bucket), Key: aws.String(key)})
		if err != nil {
			return err
		}
		defer out.Body.Close()
		body, err := io.ReadAll(io.LimitReader(out.Body, 1<<16))
		if err != nil {
			return err
		}
		st = lockState{etag: aws.ToString(out.ETag), modified: aws.ToTime(out.LastModified), now: time.Now()}
		if raw, ok := awsmiddleware.GetRawResponse(out.ResultMetadata).(*smithyhttp.Response); ok {
			if t, err := http.ParseTime(raw.Header.Get("Date")); err == nil {
				st.now = t
			}
		}
		if want := out.Metadata[metaCRC]; want != "" && crcString(crc32.Checksum(body, castagnoli)) != want {
			st.bad = fmt.Errorf("%w in the lock record", ErrChecksum)
		} else if err := json.Unmarshal(body, &st.rec); err != nil {
			st.bad = err
		}
		return nil
	})
	if _, status := apiCode(err); status == http.StatusNotFound {
		return st, fmt.Errorf("%s: %w", key, store.ErrNotFound)
	}
	return st, err
}

// putLock writes a lock record under the given condition and returns the
// new ETag.
func (s *Store) putLock(ctx context.Context, key string, rec lockRecord, ifNoneMatch, ifMatch *string) (string, error) {
	body, err := json.Marshal(rec)
	if err != nil {
		return "", err
	}
	sum := crcString(crc32.Checksum(body, castagnoli))
	var etag string
	_, err = s.do(ctx, "PutObject", func(ctx context.Context) error {
		out, err := s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket:         aws.String(s.opts.Bucket),
			Key:            aws.String(key),
			Body:           bytes.NewReader(body),
			ContentLength:  aws.Int64(int64(len(body))),
			ContentType:    aws.String("application/json"),
			ChecksumCRC32C: aws.String(sum),
			Metadata:       map[string]string{metaCRC: sum},
			IfNoneMatch:    ifNoneMatch,
			IfMatch:        ifMatch,
		})
		if err != nil {
			return err
		}
		etag = aws.ToString(out.ETag)
		return nil
	})
	return etag, err
}

// abortUploads aborts the multipart uploads left under the directory of
// the lock name by a holder that died: the lock's holder is the only
// writer there, so no upload of a live writer can be among them.
func (s *Store) abortUploads(ctx context.Context, name string) {
	dir := path.Dir(name)
	if dir == "." {
		return
	}
	var out *s3.ListMultipartUploadsOutput
	_, err := s.doN(ctx, "ListMultipartUploads", 2, func(ctx context.Context) error {
		var err error
		out, err = s.client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{
			Bucket: aws.String(s.opts.Bucket), Prefix: aws.String(s.root + dir + "/"),
		})
		return err
	})
	if err != nil {
		s.log.Debug("s3store: could not list incomplete uploads", "prefix", s.root+dir+"/", "err", describe(err))
		return
	}
	for _, u := range out.Uploads {
		s.abort(ctx, aws.ToString(u.Key), aws.ToString(u.UploadId))
		s.log.Debug("s3store: aborted an upload left by a previous holder", "key", aws.ToString(u.Key))
	}
}

// lease is a held lock, renewed in the background.
type lease struct {
	s    *Store
	name string
	key  string
	id   string
	ttl  time.Duration

	token uint64

	mu       sync.Mutex
	rec      lockRecord
	etag     string
	deadline time.Time // held for sure until then, by this process's clock
	lost     error     // why the lease ended; nil while held
	released bool

	stopOnce sync.Once
	stop     chan struct{}
	ctx      context.Context // of the renewals; cancelled with stop
	cancel   context.CancelFunc
	done     chan struct{} // closed when renewLoop has returned
}

var _ store.FencedLease = (*lease)(nil)

func (s *Store) startLease(name, key, id string, rec lockRecord, etag string, sent time.Time) *lease {
	l := &lease{
		s: s, name: name, key: key, id: id, ttl: s.opts.LeaseTTL, token: rec.Token,
		rec: rec, etag: etag, deadline: sent.Add(s.opts.LeaseTTL),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	s.mu.Lock()
	closed := s.closed
	if !closed {
		s.leases[l] = struct{}{}
	}
	s.mu.Unlock()
	if closed {
		l.lost = fmt.Errorf("s3store: lock %s: %w: the store was closed", name, store.ErrLeaseLost)
		l.end()
		close(l.done)
		return l
	}
	heldHere.Store(id, struct{}{})
	go l.renewLoop()
	return l
}

// Token returns the lease's fencing token: one more than the previous
// holder's.
func (l *lease) Token() uint64 { return l.token }

// Check reports store.ErrLeaseLost once the lease is gone: released,
// taken over (a renewal found another holder), or expired because no
// renewal succeeded for LeaseTTL.
func (l *lease) Check(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.checkLocked()
}

func (l *lease) checkLocked() error {
	switch {
	case l.released:
		return fmt.Errorf("s3store: lock %s: %w: released", l.name, store.ErrLeaseLost)
	case l.lost != nil:
		return l.lost
	case time.Now().After(l.deadline):
		l.loseLocked(fmt.Sprintf("not renewed for %s (the service was unreachable or failing)", l.ttl))
		return l.lost
	}
	return nil
}

// loseLocked ends the lease for reason; l.mu is held.
func (l *lease) loseLocked(reason string) {
	if l.lost == nil {
		l.lost = fmt.Errorf("s3store: lock %s: %w: %s", l.name, store.ErrLeaseLost, reason)
		l.s.log.Warn("s3store: lease lost", "lock", l.name, "reason", reason)
	}
	l.end()
}

// end stops the renewals, cutting off one in flight: its answer no longer
// matters.
func (l *lease) end() {
	l.stopOnce.Do(func() {
		heldHere.Delete(l.id)
		close(l.stop)
		l.cancel()
	})
}

// abandon ends the lease without writing (the store is closing): the lock
// expires after its TTL.
func (l *lease) abandon() {
	l.mu.Lock()
	l.loseLocked("the store was closed")
	l.mu.Unlock()
}

func (l *lease) renewLoop() {
	defer close(l.done)
	every := l.s.opts.LeaseRenew
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		next := every
		if err := l.renew(); err != nil {
			// Try again sooner, while the lease lasts.
			l.mu.Lock()
			left := time.Until(l.deadline)
			l.mu.Unlock()
			next = min(every, max(left/4, 50*time.Millisecond))
			l.s.log.Warn("s3store: lease renewal failed; retrying", "lock", l.name, "left", left.Round(time.Millisecond), "err", describe(err))
		}
		t.Reset(next)
	}
}

// renew rewrites the record under If-Match, which fails if anyone else
// wrote it since.
func (l *lease) renew() error {
	l.mu.Lock()
	if l.checkLocked() != nil {
		l.mu.Unlock()
		return nil
	}
	rec, etag, deadline := l.rec, l.etag, l.deadline
	l.mu.Unlock()
	rec.Renewal++
	// A renewal that lands after the deadline is no use: Check has
	// reported the lease lost by then.
	ctx, cancel := context.WithDeadline(l.ctx, deadline)
	defer cancel()
	sent := time.Now()
	newTag, err := l.s.putLock(ctx, l.key, rec, nil, aws.String(etag))
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost != nil || l.released {
		return nil
	}
	if err == nil {
		l.rec, l.etag, l.deadline = rec, newTag, sent.Add(l.ttl)
		return nil
	}
	if !lostRace(err) {
		return err
	}
	// Refused: either another holder wrote the record, or an earlier
	// renewal of ours landed with its answer lost. The record tells.
	l.mu.Unlock()
	st, rerr := l.s.readLock(ctx, l.key)
	l.mu.Lock()
	if l.lost != nil || l.released {
		return nil
	}
	switch {
	case errors.Is(rerr, store.ErrNotFound):
		l.loseLocked("the lock object was deleted")
	case rerr != nil:
		return rerr
	case st.bad == nil && st.rec.Lease == l.id && !st.rec.Released:
		l.rec, l.etag = st.rec, st.etag // ours: go on from it
		return errors.New("renewal answer lost; renewing again")
	default:
		holder := "another process"
		if st.rec.Holder != nil {
			holder = st.rec.Holder.String()
		}
		l.loseLocked(fmt.Sprintf("taken over by %s with token %d", holder, st.rec.Token))
	}
	return nil
}

// Release gives the lock up, keeping its token in the record for the next
// holder. Calling it again does nothing.
func (l *lease) Release(ctx context.Context) error {
	l.mu.Lock()
	if l.released {
		l.mu.Unlock()
		return nil
	}
	l.released = true
	lost := l.lost
	l.end()
	l.mu.Unlock()
	// Prompt: a renewal in flight was cut off, and if it landed all the
	// same, the If-Match below fails and the record is read again.
	<-l.done
	l.s.mu.Lock()
	delete(l.s.leases, l)
	l.s.mu.Unlock()
	if lost != nil {
		return nil // someone else's lock by now, or the store is closed
	}
	// Trying longer than the TTL is no use: by then the lock has expired
	// by itself. And a caller that is cancelling still wants the lock
	// released.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.ttl)
	defer cancel()
	for range 3 {
		l.mu.Lock()
		rec, etag := l.rec, l.etag
		l.mu.Unlock()
		rec.Released = true
		rec.Renewal++
		_, err := l.s.putLock(ctx, l.key, rec, nil, aws.String(etag))
		if err == nil {
			return nil
		}
		if !lostRace(err) {
			return l.s.fail("release", l.name, err)
		}
		st, rerr := l.s.readLock(ctx, l.key)
		if rerr != nil || st.bad != nil || st.rec.Lease != l.id || st.rec.Released {
			return nil // no longer ours (taken over after expiry) or already released
		}
		l.mu.Lock()
		l.rec, l.etag = st.rec, st.etag
		l.mu.Unlock()
	}
	return l.s.fail("release", l.name, errors.New("the lock object kept changing"))
}

// CreateFenced is Store.Create that writes nothing and fails with
// store.ErrLeaseLost unless this lease still holds the lock: it reads the
// lock object and checks that it carries this lease, then creates name
// under a deadline at which the lease could expire.
//
// S3 has no transaction over two objects, so a window remains between the
// check and the moment the service applies the Create. Another process
// can take the lock inside it only once the lease has expired, which the
// deadline rules out for the Create as this process sends it; a request
// delayed in the network or the service past the lease's expiry could
// still land after a takeover. The new holder then finds that checkpoint
// number taken (its own Create fails with store.ErrExist) and stops
// rather than overwrite it.
func (l *lease) CreateFenced(ctx context.Context, name string, r io.Reader) error {
	if err := l.Check(ctx); err != nil {
		return err
	}
	st, err := l.s.readLock(ctx, l.key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		l.mu.Lock()
		l.loseLocked("the lock object was deleted")
		l.mu.Unlock()
		return l.Check(ctx)
	case err != nil:
		return l.s.fail("create", name, fmt.Errorf("check the lock %s: %w", l.name, err))
	case st.bad != nil || st.rec.Lease != l.id || st.rec.Released:
		holder := "another process"
		if st.rec.Holder != nil {
			holder = st.rec.Holder.String()
		}
		l.mu.Lock()
		l.loseLocked(fmt.Sprintf("taken over by %s with token %d", holder, st.rec.Token))
		l.mu.Unlock()
		return l.Check(ctx)
	}
	l.mu.Lock()
	deadline := l.deadline
	l.mu.Unlock()
	cctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	err = l.s.Create(cctx, name, r)
	if err != nil && ctx.Err() == nil && cctx.Err() != nil {
		return fmt.Errorf("s3store: create %s: the lease of %s expired before the write completed (it may have landed): %w", name, l.name, store.ErrLeaseLost)
	}
	return err
}

// localLock is Lock under ExternalLocking: a lease within this process
// only, since the caller guarantees that no other process writes. Its
// tokens come from the clock, so that they grow across processes too.
func (s *Store) localLock(name string, owner store.Owner) (store.Lease, error) {
	l, err := s.local.Lock(name, owner)
	if err != nil {
		return nil, fmt.Errorf("s3store: %w", err)
	}
	return l, nil
}
