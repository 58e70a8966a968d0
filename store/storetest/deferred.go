package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/ckptdev/ckpt/store"
)

// The deferred operations (store.Deferred) are tested through the
// package functions store.PutDeferred, store.DeleteDeferred and
// store.Sync, as the engine calls them: on a backend that implements
// Deferred they are its methods, on one that does not they fall back to
// Put and Delete. Either way, what a reader sees must be what Put and
// Delete give: only durability may wait for Sync. Durability itself can
// be checked only by cutting the power, which the local store's
// power-loss test does.

func testDeferredPutGet(t *testing.T, open func(t *testing.T) store.Store) {
	st := fresh(t, open)
	ctx := t.Context()
	put(t, st, "deferred/old", content("deferred/old v1", 70_000))
	large := int64(20 << 20)
	if testing.Short() {
		large = 3 << 20
	}
	tests := []struct {
		name string
		size int64
	}{
		{"deferred/empty", 0},
		{"deferred/small", 13},
		{"deferred/large", large},
		{"deferred/old", 5}, // replaces a shorter object written durably
		{"deferred/sub/x", 300_001},
		{"elsewhere/y", 1000},
	}
	for _, tc := range tests {
		if err := store.PutDeferred(ctx, st, tc.name, newStreamReader(tc.name, tc.size, 61_001)); err != nil {
			t.Fatalf("PutDeferred %s (%d bytes): %v", tc.name, tc.size, err)
		}
		// Visible, whole, as soon as the call returns: before any Sync.
		wantObject(t, st, tc.name, content(tc.name, int(tc.size)))
	}
	// An in-memory reader, the engine's case, which a backend may write
	// without a copy.
	blob := content("deferred/bytes", 1<<20+7)
	if err := store.PutDeferred(ctx, st, "deferred/bytes", bytes.NewReader(blob)); err != nil {
		t.Fatalf("PutDeferred deferred/bytes: %v", err)
	}
	wantObject(t, st, "deferred/bytes", blob)
	wantList(t, st, "deferred/", "deferred/bytes", "deferred/empty", "deferred/large", "deferred/old", "deferred/small", "deferred/sub/x")
	for _, prefix := range []string{"deferred/", "deferred/sub/", "elsewhere/y", ""} {
		if err := store.Sync(ctx, st, prefix); err != nil {
			t.Fatalf("Sync %q: %v", prefix, err)
		}
	}
	// A Sync with nothing pending, and of a prefix that names nothing.
	for _, prefix := range []string{"deferred/", "nothing/here/", "deferred/s"} {
		if err := store.Sync(ctx, st, prefix); err != nil {
			t.Fatalf("Sync %q with nothing pending: %v", prefix, err)
		}
	}
	for _, tc := range tests {
		wantObject(t, st, tc.name, content(tc.name, int(tc.size)))
	}

	// Mixed with the durable operations on the same names.
	put(t, st, "deferred/small", []byte("durable"))
	if err := store.PutDeferred(ctx, st, "deferred/small", reader([]byte("deferred again"))); err != nil {
		t.Fatal(err)
	}
	wantObject(t, st, "deferred/small", []byte("deferred again"))
	if err := st.Create(ctx, "deferred/small", reader([]byte("x"))); !errors.Is(err, store.ErrExist) {
		t.Fatalf("Create over an object PutDeferred wrote: %v, want an error matching store.ErrExist", err)
	}
	if err := store.Sync(ctx, st, "deferred/"); err != nil {
		t.Fatal(err)
	}
}

func testDeferredDelete(t *testing.T, open func(t *testing.T) store.Store) {
	st := fresh(t, open)
	ctx := t.Context()
	for i := range 4 {
		put(t, st, fmt.Sprintf("del/%d", i), []byte{byte(i)})
	}
	if err := store.PutDeferred(ctx, st, "del/deferred", reader([]byte("d"))); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"del/1", "del/3", "del/deferred", "del/missing", "never/was"} {
		if err := store.DeleteDeferred(ctx, st, name); err != nil {
			t.Fatalf("DeleteDeferred %s: %v", name, err)
		}
		wantMissing(t, st, name)
	}
	wantList(t, st, "", "del/0", "del/2")
	if err := store.Sync(ctx, st, "del/"); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	wantList(t, st, "", "del/0", "del/2")
	// A name deleted this way can be written again, either way.
	if err := store.PutDeferred(ctx, st, "del/1", reader([]byte("again"))); err != nil {
		t.Fatal(err)
	}
	if err := st.Create(ctx, "del/3", reader([]byte("again"))); err != nil {
		t.Fatalf("Create of a name DeleteDeferred removed: %v", err)
	}
	wantObject(t, st, "del/1", []byte("again"))
	wantObject(t, st, "del/3", []byte("again"))
}

func testDeferredFailedWrite(t *testing.T, open func(t *testing.T) store.Store) {
	st := fresh(t, open)
	const size, failAt = 2 << 20, 1<<20 + 3
	for _, fail := range []string{"reader", "cancel", "cancelled"} {
		for _, existing := range []bool{true, false} {
			what := fmt.Sprintf("PutDeferred failing by %s", fail)
			name := fmt.Sprintf("dfail/%s-%t", fail, existing)
			old := content(name+" old", 1000)
			if existing {
				put(t, st, name, old)
			}
			before := list(t, st, "")
			ctx, cancel := context.WithCancel(t.Context())
			src := reader(content(name, size))
			var wantErr error
			switch fail {
			case "reader":
				src, wantErr = &failingReader{r: src, n: failAt}, errInjected
			case "cancel":
				src, wantErr = &cancellingReader{r: src, n: failAt, cancel: cancel}, context.Canceled
			case "cancelled":
				cancel()
				wantErr = context.Canceled
			}
			err := store.PutDeferred(ctx, st, name, src)
			cancel()
			if !errors.Is(err, wantErr) {
				t.Fatalf("%s: %v, want an error matching %v", what, err, wantErr)
			}
			if existing {
				wantObject(t, st, name, old)
			} else {
				wantMissing(t, st, name)
			}
			if after := list(t, st, ""); !slices.Equal(after, before) {
				t.Fatalf("%s: List shows %q, want %q as before", what, after, before)
			}
			if err := store.Sync(t.Context(), st, "dfail/"); err != nil {
				t.Fatalf("Sync after a %s: %v", what, err)
			}
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := store.Sync(ctx, st, ""); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Sync with a cancelled context: %v, want nil or an error matching context.Canceled", err)
	}
}

func testDeferredInvalidAndClosed(t *testing.T, open func(t *testing.T) store.Store) {
	st := open(t)
	closed := false
	t.Cleanup(func() {
		if !closed {
			st.Close()
		}
	})
	ctx := t.Context()
	for _, name := range []string{"", "a//b", "../x", ".hidden", "a/.tmp-1", "a/", "caf\u00e9"} {
		if err := store.PutDeferred(ctx, st, name, reader([]byte("x"))); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("PutDeferred %q: %v, want an error matching store.ErrInvalidName", name, err)
		}
		if err := store.DeleteDeferred(ctx, st, name); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("DeleteDeferred %q: %v, want an error matching store.ErrInvalidName", name, err)
		}
	}
	for _, prefix := range []string{"a//", "../", ".tmp-", "a/.b"} {
		if err := store.Sync(ctx, st, prefix); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("Sync %q: %v, want an error matching store.ErrInvalidName", prefix, err)
		}
	}
	wantList(t, st, "")

	if err := store.PutDeferred(ctx, st, "closed/pending", reader([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	closed = true
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := store.PutDeferred(ctx, st, "closed/new", reader([]byte("y"))); !errors.Is(err, store.ErrClosed) {
		t.Errorf("PutDeferred after Close: %v, want an error matching store.ErrClosed", err)
	}
	if err := store.DeleteDeferred(ctx, st, "closed/pending"); !errors.Is(err, store.ErrClosed) {
		t.Errorf("DeleteDeferred after Close: %v, want an error matching store.ErrClosed", err)
	}
	// A store durable per write has nothing left to sync: nil is right
	// for it, and ErrClosed for one that would have to sync.
	if err := store.Sync(ctx, st, ""); err != nil && !errors.Is(err, store.ErrClosed) {
		t.Errorf("Sync after Close: %v, want nil or an error matching store.ErrClosed", err)
	}
}

// testDeferredConcurrent runs deferred writes and deletes of many names
// while other goroutines call Sync, as a job's chunk writers and a
// concurrent commit could.
func testDeferredConcurrent(t *testing.T, open func(t *testing.T) store.Store) {
	st := fresh(t, open)
	ctx := t.Context()
	const writers, each = 4, 12
	var wg sync.WaitGroup
	errs := make(chan error, writers*each+writers)
	done := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				name := fmt.Sprintf("conc/%d/%02d", w, i)
				if err := store.PutDeferred(ctx, st, name, reader(content(name, 10_000+i))); err != nil {
					errs <- fmt.Errorf("PutDeferred %s: %w", name, err)
					return
				}
				if i%3 == 2 {
					prev := fmt.Sprintf("conc/%d/%02d", w, i-1)
					if err := store.DeleteDeferred(ctx, st, prev); err != nil {
						errs <- fmt.Errorf("DeleteDeferred %s: %w", prev, err)
						return
					}
				}
			}
		})
	}
	var syncs sync.WaitGroup
	for s := range 2 {
		syncs.Go(func() {
			prefix := []string{"conc/", ""}[s]
			for {
				if err := store.Sync(ctx, st, prefix); err != nil {
					errs <- fmt.Errorf("store.Sync %q: %w", prefix, err)
					return
				}
				select {
				case <-done:
					return
				default:
				}
			}
		})
	}
	wg.Wait()
	close(done)
	syncs.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := store.Sync(ctx, st, "conc/"); err != nil {
		t.Fatal(err)
	}
	var want []string
	for w := range writers {
		for i := range each {
			name := fmt.Sprintf("conc/%d/%02d", w, i)
			if i%3 == 1 {
				wantMissing(t, st, name)
				continue
			}
			want = append(want, name)
			wantObject(t, st, name, content(name, 10_000+i))
		}
	}
	wantList(t, st, "conc/", want...)
}
