// Package storetest is the conformance suite of the store.Store contract.
// Every backend's tests call Run, and a backend is correct only when it
// passes: the commit protocol in package ckpt relies on nothing else.
//
// The suite uses the store only through its interface, with real
// concurrency (it is meant to be run under -race) and real failures that
// a caller can produce: readers that fail or cancel their context midway,
// writes that race, names that would escape the store. Failures only a
// backend can produce (a full disk, a killed process, a lost connection)
// belong to that backend's own tests.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ckptdev/ckpt/store"
)

// Run checks the store.Store contract against the stores that open returns.
//
// Every subtest calls open once and must get a fresh, empty store of its
// own; subtests run in parallel. open registers with t.Cleanup whatever
// the backend needs torn down (directories, servers, schemas) but does not
// close the store: the suite closes it, and checks that Close succeeds.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, open func(t *testing.T) store.Store)
	}{
		{"PutGet", testPutGet},
		{"PutReplaces", testPutReplaces},
		{"Create", testCreate},
		{"CreateRace", testCreateRace},
		{"Missing", testMissing},
		{"List", testList},
		{"WriteInProgressIsInvisible", testWriteInProgressIsInvisible},
		{"InvalidNames", testInvalidNames},
		{"FailedWriteKeepsPreviousState", testFailedWriteKeepsPreviousState},
		{"Lock", testLock},
		{"LockRace", testLockRace},
		{"LockNamesAreIndependent", testLockNamesAreIndependent},
		{"Closed", testClosed},
		{"ConcurrentDifferentNames", testConcurrentDifferentNames},
		{"ConcurrentReplaceAndGet", testConcurrentReplaceAndGet},
		{"DeferredPutGet", testDeferredPutGet},
		{"DeferredDelete", testDeferredDelete},
		{"DeferredFailedWrite", testDeferredFailedWrite},
		{"DeferredInvalidAndClosed", testDeferredInvalidAndClosed},
		{"DeferredConcurrent", testDeferredConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open)
		})
	}
}

// fresh opens a store for one subtest and closes it when the subtest ends.
func fresh(t *testing.T, open func(t *testing.T) store.Store) store.Store {
	t.Helper()
	st := open(t)
	if st == nil {
		t.Fatal("open returned a nil store")
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if names, err := st.List(t.Context(), ""); err != nil || len(names) != 0 {
		t.Fatalf("a fresh store lists %q, %v; want an empty store", names, err)
	}
	return st
}

// content returns n bytes derived from seed: different seeds give
// different bytes, so a mixed-up or torn object cannot pass for another.
func content(seed string, n int) []byte {
	b := make([]byte, n)
	newStream(seed).Read(b)
	return b
}

func newStream(seed string) *rand.ChaCha8 {
	return rand.NewChaCha8(sha256.Sum256([]byte(seed)))
}

// streamReader yields size bytes of the stream of seed in reads of at most
// chunk bytes. It is deliberately not a bytes.Reader, strings.Reader or
// io.WriterTo, so a backend cannot learn the size in advance or take a
// shortcut around its own copy loop.
type streamReader struct {
	src   *rand.ChaCha8
	left  int64
	chunk int
}

func newStreamReader(seed string, size int64, chunk int) *streamReader {
	return &streamReader{src: newStream(seed), left: size, chunk: chunk}
}

func (r *streamReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), r.left, int64(r.chunk)))
	r.src.Read(p[:n])
	r.left -= int64(n)
	return n, nil
}

// errInjected is the failure of a reader that breaks midway.
var errInjected = errors.New("storetest: injected read failure")

// failingReader yields the first n bytes of r, then fails with errInjected.
type failingReader struct {
	r io.Reader
	n int64
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errInjected
	}
	if int64(len(p)) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= int64(n)
	return n, err
}

// cancellingReader cancels its context once n bytes have been read and
// keeps yielding data: a backend that ignores the context completes the
// write, and the suite sees it succeed when it must fail.
type cancellingReader struct {
	r      io.Reader
	n      int64
	cancel context.CancelFunc
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.n -= int64(n); c.n <= 0 {
		c.cancel()
	}
	return n, err
}

// reader wraps a byte slice in a reader that is not a *bytes.Reader.
func reader(b []byte) io.Reader { return struct{ io.Reader }{bytes.NewReader(b)} }

func put(t *testing.T, st store.Store, name string, data []byte) {
	t.Helper()
	if err := st.Put(t.Context(), name, reader(data)); err != nil {
		t.Fatalf("Put %s: %v", name, err)
	}
}

// get reads name completely; it fails the test unless the object exists.
func get(t *testing.T, st store.Store, name string) []byte {
	t.Helper()
	b, err := read(t.Context(), st, name)
	if err != nil {
		t.Fatalf("Get %s: %v", name, err)
	}
	return b
}

func read(ctx context.Context, st store.Store, name string) ([]byte, error) {
	rc, err := st.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(rc)
	if cerr := rc.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close: %w", cerr)
	}
	return b, err
}

// wantObject fails the test unless name holds exactly want.
func wantObject(t *testing.T, st store.Store, name string, want []byte) {
	t.Helper()
	got := get(t, st, name)
	if !bytes.Equal(got, want) {
		t.Fatalf("Get %s: %s, want %s", name, describe(got), describe(want))
	}
}

func wantMissing(t *testing.T, st store.Store, name string) {
	t.Helper()
	b, err := read(t.Context(), st, name)
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get %s: %s, %v; want an error matching store.ErrNotFound", name, describe(b), err)
	}
}

func list(t *testing.T, st store.Store, prefix string) []string {
	t.Helper()
	names, err := st.List(t.Context(), prefix)
	if err != nil {
		t.Fatalf("List %q: %v", prefix, err)
	}
	return names
}

func wantList(t *testing.T, st store.Store, prefix string, want ...string) {
	t.Helper()
	if got := list(t, st, prefix); !slices.Equal(got, want) {
		t.Fatalf("List %q = %q, want %q", prefix, got, want)
	}
}

// describe summarises object bytes for a failure message: large objects
// would drown it.
func describe(b []byte) string {
	if len(b) <= 32 {
		return fmt.Sprintf("%q", b)
	}
	sum := sha256.Sum256(b)
	return fmt.Sprintf("%d bytes (sha256 %x…)", len(b), sum[:6])
}
