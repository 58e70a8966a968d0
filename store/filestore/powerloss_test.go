//go:build unix

package filestore_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt/internal/vfs"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/filestore"
	"github.com/ckptdev/ckpt/store/storetest"
)

// The store behaves the same on the in-memory file system that the
// power-loss tests use, locks included.
func TestConformanceOnMemFS(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		st, err := filestore.Open("/data/store", filestore.Options{FS: vfs.NewMemFS(), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		return st
	})
}

// promises is what the store said is durable: the content of every
// object whose write returned (absent: deleted), and the highest fencing
// token it handed out. pending holds what deferred writes and deletes
// (PutDeferred, DeleteDeferred) did that no Sync has covered yet: after a
// crash such an object may hold its promised content or the pending one
// ("" for deleted), but nothing else.
type promises struct {
	objects map[string]string
	pending map[string]string
	token   uint64
}

func newPromises() *promises {
	return &promises{objects: map[string]string{}, pending: map[string]string{}}
}

// storeScript uses the store as a job does, recording what each call
// that returned promised. The job's directory and its sub directory exist
// (durably) before it starts, so that no directory creation syncs the
// directory of the lock file for it.
func storeScript(ctx context.Context, fsys vfs.FS, p *promises) error {
	st, err := filestore.Open("/s", filestore.Options{FS: fsys, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer st.Close()
	put := func(name, data string, create bool) error {
		write := st.Put
		if create {
			write = st.Create
		}
		if err := write(ctx, name, strings.NewReader(data)); err != nil {
			return err
		}
		p.objects[name] = data
		delete(p.pending, name)
		return nil
	}
	putDeferred := func(name, data string) error {
		if err := st.PutDeferred(ctx, name, strings.NewReader(data)); err != nil {
			return err
		}
		p.pending[name] = data
		return nil
	}
	deleteDeferred := func(name string) error {
		if err := st.DeleteDeferred(ctx, name); err != nil {
			return err
		}
		p.pending[name] = ""
		return nil
	}
	syncPrefix := func(prefix string) error {
		if err := st.Sync(ctx, prefix); err != nil {
			return err
		}
		for name, data := range p.pending {
			if strings.HasPrefix(name, prefix) {
				p.objects[name] = data
				delete(p.pending, name)
			}
		}
		return nil
	}
	for round := range 2 {
		l, err := st.Lock(ctx, "jobs/x/LOCK", store.Owner{ID: "script"})
		if err != nil {
			return err
		}
		if l.Token() <= p.token {
			return fmt.Errorf("lock: token %d, not above %d handed out before", l.Token(), p.token)
		}
		p.token = l.Token()
		r := fmt.Sprint(round)
		steps := []func() error{
			func() error { return put("jobs/x/sub/b", "b1-"+r, false) },
			func() error { return put("jobs/x/sub/c"+r, "c-"+r, true) },
			func() error { return put("jobs/x/sub/b", "b2-"+r, false) },
			func() error { return put("jobs/x/new"+r+"/d", "d-"+r, false) },
			func() error {
				if err := st.Delete(ctx, "jobs/x/sub/c"+r); err != nil {
					return err
				}
				p.objects["jobs/x/sub/c"+r] = ""
				return nil
			},
			func() error { return put("other"+r+"/e", "e-"+r, false) },
			// A checkpoint's blobs: written deferred, one Sync, then
			// the previous round's removed deferred and never synced
			// (the next Sync of the directory covers the removal, or
			// the next open collects the blob).
			func() error { return putDeferred("jobs/x/blobs/p"+r, "p-"+r) },
			func() error { return putDeferred("jobs/x/blobs/q", "q-"+r) },
			func() error { return putDeferred("jobs/x/sub/b", "b3-"+r) },
			func() error { return deleteDeferred("jobs/x/sub/c" + r) },
			func() error { return syncPrefix("jobs/x/blobs/") },
			func() error { return put("jobs/x/manifest"+r, "m-"+r, true) },
			func() error { return deleteDeferred("jobs/x/blobs/p0") },
			func() error { return syncPrefix("jobs/x/sub/") },
			func() error { return putDeferred("jobs/x/blobs/never-synced"+r, "n-"+r) },
		}
		for _, step := range steps {
			if err := step(); err != nil {
				l.Release(ctx)
				return err
			}
		}
		if err := l.Release(ctx); err != nil {
			return err
		}
	}
	return nil
}

// check verifies, on the file system a crash left, every promise.
func (p *promises) check(ctx context.Context, fsys vfs.FS) error {
	st, err := filestore.Open("/s", filestore.Options{FS: fsys, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer st.Close()
	for name, want := range p.objects {
		if _, ok := p.pending[name]; ok {
			continue
		}
		r, err := st.Get(ctx, name)
		if want == "" {
			if !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("%s was deleted, but is back (Get: %v)", name, err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("%s was written, but: %w", name, err)
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			return err
		}
		if string(b) != want {
			return fmt.Errorf("%s holds %q, want %q", name, b, want)
		}
	}
	for name, next := range p.pending {
		got := ""
		r, err := st.Get(ctx, name)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return fmt.Errorf("%s: %w", name, err)
		default:
			b, err := io.ReadAll(r)
			r.Close()
			if err != nil {
				return err
			}
			got = string(b)
		}
		if got != next && got != p.objects[name] {
			return fmt.Errorf("%s, changed by a deferred operation not yet synced, holds %q: want %q as promised before or %q as changed", name, got, p.objects[name], next)
		}
	}
	l, err := st.Lock(ctx, "jobs/x/LOCK", store.Owner{ID: "check"})
	if err != nil {
		return err
	}
	defer l.Release(ctx)
	if l.Token() <= p.token {
		return fmt.Errorf("token %d handed out before the crash, %d after", p.token, l.Token())
	}
	return nil
}

// TestPowerLoss cuts the power before every file-system operation of the
// script in turn and checks that what the store promised survives: the
// content of every write that returned, every delete, and fencing tokens
// that only go up.
func TestPowerLoss(t *testing.T) {
	ctx := t.Context()
	base := vfs.NewMemFS()
	if err := vfs.MkdirAll(base, "/s/jobs/x/sub", 0o755); err != nil {
		t.Fatal(err)
	}
	base.SyncAll()
	counter := vfs.NewCrashing(base.CrashClone(), 0)
	if err := storeScript(ctx, counter, newPromises()); err != nil {
		t.Fatal(err)
	}
	ops := counter.Ops()
	for at := 1; at <= len(ops); at++ {
		live := base.CrashClone()
		crashing := vfs.NewCrashing(live, at)
		p := newPromises()
		if err := storeScript(ctx, crashing, p); !crashing.Crashed() || !errors.Is(err, vfs.ErrCrashed) {
			t.Fatalf("before operation %d (%s): the script did not crash: %v", at, ops[at-1], err)
		}
		if err := p.check(ctx, live.CrashClone()); err != nil {
			t.Errorf("power lost before operation %d (%s): %v", at, ops[at-1], err)
		}
	}
	t.Logf("%d operations", len(ops))
}
