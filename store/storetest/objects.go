package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ckptdev/ckpt/store"
)

func testPutGet(t *testing.T, open func(t *testing.T) store.Store) {
	st := fresh(t, open)
	large := int64(20 << 20)
	if testing.Short() {
		large = 3 << 20 // still several reads, parts and rows
	}
	tests := []struct {
		name  string
		size  int64
		chunk int // largest read the source returns
	}{
		{"empty", 0, 1},
		{"small", 13, 5},
		{"odd-size", 300_001, 4093},
		{"large", large, 61_001},
	}
	var names []string
	for _, tc := range tests {
		name := "putget/" + tc.name
		names = append(names, name)
		if err := st.Put(t.Context(), name, newStreamReader(name, tc.size, tc.chunk)); err != nil {
			t.Fatalf("Put %s (%d bytes): %v", name, tc.size, err)
		}
	}
	for _, tc := range tests {
		name := "putget/" + tc.name
		// Compare by digest so that the large object is streamed, as a
		// caller restoring a large state would.
		want := sha256.New()
		io.Copy(want, newStreamReader(name, tc.size, 1<<20))
		rc, err := st.Get(t.Context(), name)
		if err != nil {
			t.Fatalf("Get %s: %v", name, err)
		}
		got := sha256.New()
		n, err := io.Copy(got, rc)
		if cerr := rc.Close(); cerr != nil {
			t.Errorf("Get %s: Close: %v", name, cerr)
		}
		if err != nil {
			t.Fatalf("Get %s: read after %d bytes: %v", name, n, err)
		}
		if n != tc.size || !slices.Equal(got.Sum(nil), want.Sum(nil)) {
			t.Errorf("Get %s: %d bytes (sha256 %x), want the %d bytes written (sha256 %x)",
				name, n, got.Sum(nil)[:6], tc.size, want.Sum(nil)[:6])
		}
	}
	slices.Sort(names)
	wantList(t, st, "putget/", names...)
}

func testPutReplaces(t *testing.T, open func(t *testing.T) store.Store) {
	st := fresh(t, open)
	const name = "replace/obj"
	// Longer, then shorter, then empty: a backend that overwrites in place
	// without truncating would leave the old tail.
	for i, size := range []int{100_000, 3, 70_000, 0, 5} {
		data := content(fmt.Sprintf("%s version %d", name, i), size)
		put(t, st, name, data)
		wantObject(t, st, name, data)
		wantList(t, st, "", name)
	}
}

func testCreate(t *testing.T, open func(t *testing.T) store.Store) {
	st := fresh(t, open)
	ctx := t.Context()
	const name = "create/obj"
	first, second := []byte("first"), []byte("second")

	if err := st.Create(ctx, name, reader(first)); err != nil {
		t.Fatalf("Create %s: %v", name, err)
	}
	wantObject(t, st, name, first)
	if err := st.Create(ctx, name, reader(second)); !errors.Is(err, store.ErrExist) {
		t.Fatalf("Create of an existing %s: %v, want an error matching store.ErrExist", name, err)
	}
	wantObject(t, st, name, first)

	put(t, st, name, second)
	wantObject(t, st, name, second)
	if err := st.Delete(ctx, name); err != nil {
		t.Fatalf("Delete %s: %v", name, err)
	}
	if err := st.Create(ctx, name, reader(first)); err != nil {
		t.Fatalf("Create %s after Delete: %v", name, err)
	}
	wantObject(t, st, name, first)

	// A Create that failed must not reserve its name.
	const failed = "create/failed"
	err := st.Create(ctx, failed, &failingReader{r: reader(content(failed, 1<<20)), n: 1000})
	if !errors.Is(err, errInjected) {
		t.Fatalf("Create %s from a failing reader: %v, want the reader's error", failed, err)
	}
	wantMissing(t, st, failed)
	if err := st.Create(ctx, failed, reader(second)); err != nil {
		t.Fatalf("Create %s after a failed Create: %v", failed, err)
	}
	wantObject(t, st, failed, second)
	wantList(t, st, "create/", failed, name)
}

// testCreateRace starts many Creates of one name at once: exactly one may
// win, and the object must be exactly the winner's bytes, not a mix.
func testCreateRace(t *testing.T, open func(t *testing.T) store.Store) {
	st := fresh(t, open)
	const writers = 8
	for round := range 4 {
		name := fmt.Sprintf("race/obj-%d", round)
		datas := make([][]byte, writers)
		errs := make([]error, writers)
		for i := range datas {
			datas[i] = content(fmt.Sprintf("%s by writer %d", name, i), 64<<10+1000*i)
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range writers {
			wg.Go(func() {
				<-start
				errs[i] = st.Create(t.Context(), name, &yieldingReader{r: reader(datas[i]), chunk: 2048})
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("%s: writers %d and %d both created it", name, winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, store.ErrExist):
				t.Fatalf("%s: writer %d: %v, want success or an error matching store.ErrExist", name, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("%s: no writer succeeded: %v", name, errors.Join(errs...))
		}
		wantObject(t, st, name, datas[winner])
	}
}

// yieldingReader reads in small chunks and lets other goroutines run after
// each, so that racing writers interleave inside their copy loops, where a
// Create that checks for the name and writes in two steps would let two win.
type yieldingReader struct {
	r     io.Reader
	chunk int
}

func (y *yieldingReader) Read(p []byte) (int, error) {
	runtime.Gosched()
	return y.r.Read(p[:min(len(p), y.chunk)])
}

func testMissing(t *testing.T, open func(t *testing.T) store.Store) {
	st := fresh(t, open)
	ctx := t.Context()
	wantMissing(t, st, "missing/none")

	// A name that is only the prefix of other names is not an object.
	put(t, st, "missing/dir/obj", []byte("x"))
	wantMissing(t, st, "missing/dir")
	wantMissing(t, st, "missing")

	// Nor is a name below an object: no object has children.
	put(t, st, "missing/file", []byte("z"))
	wantMissing(t, st, "missing/file/below")
	wantMissing(t, st, "missing/file/below/deeper")

	for _, name := range []string{"missing/none", "missing/dir", "never/seen/before", "missing/file/below", "missing/file/below/deeper"} {
		if err := st.Delete(ctx, name); err != nil {
			t.Errorf("Delete of the missing %s: %v, want nil", name, err)
		}
	}
	wantObject(t, st, "missing/dir/obj", []byte("x"))
	wantObject(t, st, "missing/file", []byte("z"))

	put(t, st, "missing/obj", []byte("y"))
	for i := range 2 {
		if err := st.Delete(ctx, "missing/obj"); err != nil {
			t.Fatalf("Delete missing/obj (%d): %v", i+1, err)
		}
		wantMissing(t, st, "missing/obj")
	}
	wantList(t, st, "", "missing/dir/obj", "missing/file")
}

func testList(t *testing.T, open func(t *testing.T) store.Store) {
	st := fresh(t, open)
	names := []string{
		"jobs/x/checkpoints/001", "jobs/x/checkpoints/002", "jobs/x/checkpoints/010",
		"jobs/x/blobs/ab12", "jobs/x/blobs/ff00",
		"jobs/x-y/checkpoints/001", "jobs/x.y", "jobs/xy/checkpoints/001",
		"top", "topic/1", "topic/2", "t-o-p", "z.last", "A/upper", "_under", "0digit",
	}
	// Write in an order unrelated to the sorted one.
	for i := len(names) - 1; i >= 0; i-- {
		put(t, st, names[i], []byte(names[i]))
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{"", []string{
			"0digit", "A/upper", "_under",
			"jobs/x-y/checkpoints/001", "jobs/x.y",
			"jobs/x/blobs/ab12", "jobs/x/blobs/ff00",
			"jobs/x/checkpoints/001", "jobs/x/checkpoints/002", "jobs/x/checkpoints/010",
			"jobs/xy/checkpoints/001",
			"t-o-p", "top", "topic/1", "topic/2", "z.last",
		}},
		{"jobs/x/", []string{
			"jobs/x/blobs/ab12", "jobs/x/blobs/ff00",
			"jobs/x/checkpoints/001", "jobs/x/checkpoints/002", "jobs/x/checkpoints/010",
		}},
		{"jobs/x/checkpoints/", []string{"jobs/x/checkpoints/001", "jobs/x/checkpoints/002", "jobs/x/checkpoints/010"}},
		{"jobs/x/checkpoints/00", []string{"jobs/x/checkpoints/001", "jobs/x/checkpoints/002"}},
		{"jobs/x/checkpoints/01", []string{"jobs/x/checkpoints/010"}},
		{"jobs/x/checkpoints/001", []string{"jobs/x/checkpoints/001"}},
		{"jobs/x.", []string{"jobs/x.y"}},
		{"jobs/xy", []string{"jobs/xy/checkpoints/001"}},
		{"top", []string{"top", "topic/1", "topic/2"}},
		{"topic/", []string{"topic/1", "topic/2"}},
		{"z", []string{"z.last"}},
		{"top/", nil},   // top is an object, not a directory
		{"top/x/", nil}, // nor is it a directory's parent
		{"top/x", nil},
		{"nothing/", nil},
		{"nothing/at/all/", nil},
		{"jobs/q", nil},
		{"jobs/x/checkpoints/0010", nil},
	}
	for _, tc := range tests {
		if got := list(t, st, tc.prefix); !slices.Equal(got, tc.want) {
			t.Errorf("List %q = %q, want %q", tc.prefix, got, tc.want)
		}
	}

	// Every prefix of every name, each segment boundary and mid-segment
	// cut included, against the definition: the names that start with it.
	slices.Sort(names)
	for _, name := range names {
		for i := 1; i <= len(name); i++ {
			prefix := name[:i]
			var want []string
			for _, n := range names {
				if strings.HasPrefix(n, prefix) {
					want = append(want, n)
				}
			}
			if got := list(t, st, prefix); !slices.Equal(got, want) {
				t.Errorf("List %q = %q, want %q", prefix, got, want)
			}
		}
	}

	for _, prefix := range []string{"/", "/a", "../", "..", "a//", "a//b", ".x", "a/.b", "a/../", "a b", `a\`} {
		if names, err := st.List(t.Context(), prefix); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("List %q = %q, %v; want an error matching store.ErrInvalidName", prefix, names, err)
		}
	}
}

// pausingReader yields n bytes of r, then blocks until resume delivers nil
// (go on to the end of r) or an error (fail with it).
type pausingReader struct {
	r      io.Reader
	n      int64
	paused chan struct{}
	resume chan error
	after  bool
	err    error
}

func newPausingReader(r io.Reader, n int64) *pausingReader {
	return &pausingReader{r: r, n: n, paused: make(chan struct{}), resume: make(chan error, 1)}
}

func (p *pausingReader) Read(b []byte) (int, error) {
	if p.n == 0 && !p.after {
		p.after = true
		close(p.paused)
		p.err = <-p.resume
	}
	if p.err != nil {
		return 0, p.err
	}
	if !p.after && int64(len(b)) > p.n {
		b = b[:p.n]
	}
	n, err := p.r.Read(b)
	if !p.after {
		p.n -= int64(n)
	}
	return n, err
}

// testWriteInProgressIsInvisible holds a Put and a Create in the middle of
// their input and looks at the store meanwhile: neither a partial object
// nor a backend's temporary object may show.
func testWriteInProgressIsInvisible(t *testing.T, open func(t *testing.T) store.Store) {
	st := fresh(t, open)
	const replaced, created = "wip/obj", "wip/new"
	old := []byte("old")
	put(t, st, replaced, old)

	newData := content(replaced, 2<<20)
	pPut := newPausingReader(reader(newData), 1<<20)
	pCreate := newPausingReader(reader(content(created, 2<<20)), 1<<20)
	putDone, createDone := make(chan error, 1), make(chan error, 1)
	go func() { putDone <- st.Put(context.WithoutCancel(t.Context()), replaced, pPut) }()
	go func() { createDone <- st.Create(context.WithoutCancel(t.Context()), created, pCreate) }()
	t.Cleanup(func() {
		// On an early failure, end both writes before the store closes.
		for _, p := range []*pausingReader{pPut, pCreate} {
			select {
			case p.resume <- errInjected:
			default:
			}
		}
		<-putDone
		<-createDone
	})
	for _, w := range []struct {
		p    *pausingReader
		done chan error
		op   string
	}{{pPut, putDone, "Put"}, {pCreate, createDone, "Create"}} {
		select {
		case <-w.p.paused:
		case err := <-w.done:
			w.done <- err // for the cleanup
			t.Fatalf("%s returned %v before reading all its input", w.op, err)
		}
	}

	wantObject(t, st, replaced, old)
	wantMissing(t, st, created)
	wantList(t, st, "", replaced)
	wantList(t, st, "wip/", replaced)

	pPut.resume <- nil
	pCreate.resume <- errInjected
	errPut, errCreate := <-putDone, <-createDone
	putDone <- errPut
	createDone <- errCreate
	if errPut != nil {
		t.Fatalf("Put %s: %v", replaced, errPut)
	}
	if !errors.Is(errCreate, errInjected) {
		t.Fatalf("Create %s from a failing reader: %v, want the reader's error", created, errCreate)
	}
	wantObject(t, st, replaced, newData)
	wantMissing(t, st, created)
	wantList(t, st, "", replaced)
}

func testInvalidNames(t *testing.T, open func(t *testing.T) store.Store) {
	st := fresh(t, open)
	ctx := t.Context()
	invalid := []string{
		"", ".", "..", "a//b", "../x", "a/../b", "a/..", ".hidden", "a/.b", "a/.tmp-123",
		"/abs", "a/", "a\\b", "a b", "a\x00b", "tab\t", "caf\u00e9",
		strings.Repeat("x", 201), "a/" + strings.Repeat("y", 201),
	}
	for _, name := range invalid {
		check := func(op string, err error) {
			t.Helper()
			if !errors.Is(err, store.ErrInvalidName) {
				t.Errorf("%s %q: %v, want an error matching store.ErrInvalidName", op, name, err)
			}
		}
		check("Put", st.Put(ctx, name, reader([]byte("x"))))
		check("Create", st.Create(ctx, name, reader([]byte("x"))))
		rc, err := st.Get(ctx, name)
		if err == nil {
			rc.Close()
		}
		check("Get", err)
		check("Delete", st.Delete(ctx, name))
		l, err := st.Lock(ctx, name, store.Owner{ID: "storetest"})
		if err == nil {
			l.Release(ctx)
		}
		check("Lock", err)
	}
	wantList(t, st, "")

	// The edges of the rules are allowed.
	valid := []string{
		strings.Repeat("x", 200), "a/" + strings.Repeat("y", 200),
		"a..b", "x.", "A-Z_0.9/y", "-", "_",
	}
	for _, name := range valid {
		put(t, st, name, []byte(name))
	}
	for _, name := range valid {
		wantObject(t, st, name, []byte(name))
	}
	slices.Sort(valid)
	wantList(t, st, "", valid...)
}

// testFailedWriteKeepsPreviousState makes writes fail midway, by the
// reader's error or by cancelling the context, and checks that the store
// looks exactly as before: the old object whole, or still no object.
func testFailedWriteKeepsPreviousState(t *testing.T, open func(t *testing.T) store.Store) {
	st := fresh(t, open)
	const size, failAt = 2 << 20, 1<<20 + 3
	tests := []struct {
		op       string // "Put" or "Create"
		fail     string // "reader", "cancel" (midway) or "cancelled" (before the call)
		existing bool
	}{
		{"Put", "reader", true},
		{"Put", "reader", false},
		{"Put", "cancel", true},
		{"Put", "cancel", false},
		{"Put", "cancelled", true},
		{"Create", "reader", false},
		{"Create", "cancel", false},
		{"Create", "cancelled", false},
	}
	for _, tc := range tests {
		what := fmt.Sprintf("%s failing by %s", tc.op, tc.fail)
		name := fmt.Sprintf("fail/%s-%s-%t", tc.op, tc.fail, tc.existing)
		old := content(name+" old", 1000)
		if tc.existing {
			put(t, st, name, old)
		}
		before := list(t, st, "")

		ctx, cancel := context.WithCancel(t.Context())
		src := reader(content(name, size))
		var wantErr error
		switch tc.fail {
		case "reader":
			src, wantErr = &failingReader{r: src, n: failAt}, errInjected
		case "cancel":
			src, wantErr = &cancellingReader{r: src, n: failAt, cancel: cancel}, context.Canceled
		case "cancelled":
			cancel()
			wantErr = context.Canceled
		}
		var err error
		if tc.op == "Put" {
			err = st.Put(ctx, name, src)
		} else {
			err = st.Create(ctx, name, src)
		}
		cancel()
		if !errors.Is(err, wantErr) {
			t.Fatalf("%s: %v, want an error matching %v", what, err, wantErr)
		}
		if tc.existing {
			wantObject(t, st, name, old)
		} else {
			wantMissing(t, st, name)
		}
		if after := list(t, st, ""); !slices.Equal(after, before) {
			t.Fatalf("%s: List shows %q, want %q as before", what, after, before)
		}

		// Nothing left behind gets in the way of the next write.
		next := content(name+" next", 5000)
		if tc.op == "Put" {
			err = st.Put(t.Context(), name, reader(next))
		} else {
			err = st.Create(t.Context(), name, reader(next))
		}
		if err != nil {
			t.Fatalf("%s after a %s: %v", tc.op, what, err)
		}
		wantObject(t, st, name, next)
	}
}
