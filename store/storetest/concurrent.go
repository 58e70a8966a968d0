package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ckptdev/ckpt/store"
)

func testClosed(t *testing.T, open func(t *testing.T) store.Store) {
	st := open(t)
	closed := false
	t.Cleanup(func() {
		if !closed {
			st.Close()
		}
	})
	ctx := t.Context()
	put(t, st, "closed/obj", []byte("x"))
	l := lock(t, st, "closed/lock", owner(1))
	if err := l.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	closed = true
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close: %v, want an error matching store.ErrClosed", op, err)
		}
	}
	check("Put", st.Put(ctx, "closed/new", reader([]byte("y"))))
	check("Put of an existing object", st.Put(ctx, "closed/obj", reader([]byte("y"))))
	check("Create", st.Create(ctx, "closed/new", reader([]byte("y"))))
	rc, err := st.Get(ctx, "closed/obj")
	if err == nil {
		rc.Close()
	}
	check("Get", err)
	names, err := st.List(ctx, "")
	check(fmt.Sprintf("List (returned %q)", names), err)
	check("Delete", st.Delete(ctx, "closed/obj"))
	l, err = st.Lock(ctx, "closed/lock", owner(2))
	if err == nil {
		l.Release(ctx)
	}
	check("Lock", err)
}

// testConcurrentDifferentNames has writers Put, Get, List and Delete each
// in its own part of the namespace while a reader lists and reads across
// all of them. Every writer sees exactly its own writes; the reader sees
// only whole objects and never a temporary one.
func testConcurrentDifferentNames(t *testing.T, open func(t *testing.T) store.Store) {
	st := fresh(t, open)
	ctx := t.Context()
	const writers, rounds = 6, 12
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			prefix := fmt.Sprintf("conc/w%d/", w)
			var live []string
			for i := range rounds {
				size := 1000 + 2003*i*(w+1)
				name := fmt.Sprintf("%sobj-%03d-%d", prefix, i, size)
				data := content(name, size)
				if err := st.Put(ctx, name, reader(data)); err != nil {
					t.Errorf("Put %s: %v", name, err)
					return
				}
				if got, err := read(ctx, st, name); err != nil || !bytes.Equal(got, data) {
					t.Errorf("Get %s: %s, %v; want the %d bytes just written", name, describe(got), err, size)
					return
				}
				live = append(live, name)
				if i%3 == 2 {
					gone := live[0]
					live = live[1:]
					if err := st.Delete(ctx, gone); err != nil {
						t.Errorf("Delete %s: %v", gone, err)
						return
					}
					if _, err := read(ctx, st, gone); !errors.Is(err, store.ErrNotFound) {
						t.Errorf("Get %s after Delete: %v, want store.ErrNotFound", gone, err)
						return
					}
				}
				if names, err := st.List(ctx, prefix); err != nil || !slices.Equal(names, live) {
					t.Errorf("List %q = %q, %v; want %q", prefix, names, err, live)
					return
				}
			}
		})
	}

	// The reader's last round starts after the writers are through, so it
	// sees the final state, objects in it.
	var done atomic.Bool
	reads := 0
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			last := done.Load()
			names, err := st.List(ctx, "conc/")
			if err != nil {
				t.Errorf("List conc/: %v", err)
				return
			}
			if !slices.IsSorted(names) {
				t.Errorf("List conc/ is not sorted: %q", names)
			}
			for _, name := range names {
				var w, i, size int
				if _, err := fmt.Sscanf(name, "conc/w%d/obj-%d-%d", &w, &i, &size); err != nil || store.ValidName(name) != nil {
					t.Errorf("List conc/ shows %q, which no writer wrote", name)
					return
				}
				got, err := read(ctx, st, name)
				if errors.Is(err, store.ErrNotFound) {
					continue // deleted since the List
				}
				if err != nil || !bytes.Equal(got, content(name, size)) {
					t.Errorf("Get %s: %s, %v; want its %d bytes", name, describe(got), err, size)
					return
				}
				reads++
			}
			if last {
				return
			}
		}
	}()
	wg.Wait()
	done.Store(true)
	<-readerDone
	if !t.Failed() && reads == 0 {
		t.Error("the concurrent reader read nothing")
	}
}

// testConcurrentReplaceAndGet replaces one object over and over while
// readers read it: every read must be one whole version, never a mix or a
// truncated one.
func testConcurrentReplaceAndGet(t *testing.T, open func(t *testing.T) store.Store) {
	st := fresh(t, open)
	ctx := t.Context()
	const name, puts, readers = "swap/obj", 24, 2
	versions := make(map[int][]byte) // by size, all sizes distinct
	var sizes []int
	for v := range 6 {
		size := 150_000 + 61_231*v
		if v%2 == 1 {
			size = 2000 + 31*v // short ones after long ones
		}
		sizes = append(sizes, size)
		versions[size] = content(fmt.Sprintf("%s version %d", name, v), size)
	}
	put(t, st, name, versions[sizes[0]])

	var done atomic.Bool
	var wg sync.WaitGroup
	var reads atomic.Int64
	for r := range readers {
		wg.Go(func() {
			for {
				last := done.Load()
				got, err := read(ctx, st, name)
				if err != nil {
					t.Errorf("reader %d: Get %s: %v", r, name, err)
					return
				}
				if want, ok := versions[len(got)]; !ok || !bytes.Equal(got, want) {
					t.Errorf("reader %d: Get %s: %s, which is no version that was written", r, name, describe(got))
					return
				}
				reads.Add(1)
				if last {
					return
				}
			}
		})
	}
	for i := range puts {
		if err := st.Put(ctx, name, reader(versions[sizes[i%len(sizes)]])); err != nil {
			t.Errorf("Put %d of %s: %v", i, name, err)
			break
		}
	}
	done.Store(true)
	wg.Wait()
	if !t.Failed() && reads.Load() < readers {
		t.Errorf("readers read %d times, want at least %d", reads.Load(), readers)
	}
	wantObject(t, st, name, versions[sizes[(puts-1)%len(sizes)]])
}
