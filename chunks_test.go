package ckpt_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/codec"
	"github.com/ckptdev/ckpt/internal/value"
	"github.com/ckptdev/ckpt/store"
)

// This file reads state back the ways that are not the happy path: a
// context cancelled while chunks are in flight, a reader stopped by a bad
// chunk while others are still being fetched, a state of no bytes, and a
// value reference that names impossible chunks.

// multiChunkCheckpoint commits one checkpoint of job in dir whose state
// is payloadFor(1, size) cut into 64 KiB chunks, and returns it.
func multiChunkCheckpoint(t *testing.T, dir, job string, size int) *ckpt.Checkpoint {
	t.Helper()
	j, err := ckpt.Open[payloadState](context.Background(), job, ckpt.Config{Store: dir, NoSignals: true, Logger: quietLogger(), Uncompressed: true})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	ckpt.SetChunkSize(j, 64<<10)
	j.State = payloadFor(1, size)
	cp, err := j.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := len(cp.State[0].Chunks); n < 4 {
		t.Fatalf("the checkpoint has %d chunks; the test needs several", n)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	return cp
}

// A read whose context is cancelled fails with the context's error. It
// must never pass for the end of the state: a Verify that stopped early
// would report a checkpoint sound, a Load could restore a truncated state.
func TestReadsWithCancelledContextFail(t *testing.T) {
	dir := t.TempDir()
	cp := multiChunkCheckpoint(t, dir, "cancelled", 600<<10)
	st := openFileStore(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	reads := []struct {
		name string
		read func() error
	}{
		{"Verify", func() error { return ckpt.Verify(ctx, st, cp) }},
		{"Load", func() error { var s payloadState; return ckpt.Load(ctx, st, cp, &s) }},
		{"Latest", func() error { _, err := ckpt.Latest(ctx, st, "cancelled", quietLogger()); return err }},
	}
	for _, r := range reads {
		t.Run(r.name, func(t *testing.T) {
			// Which goroutine of the reader sees the cancellation first
			// varies from run to run; every run must fail the same way.
			for range 30 {
				if err := r.read(); !errors.Is(err, context.Canceled) {
					t.Fatalf("%s with a cancelled context: %v, want context.Canceled", r.name, err)
				}
			}
		})
	}
	// The same calls succeed with a live context: the failure above is
	// the cancellation's.
	if err := ckpt.Verify(context.Background(), st, cp); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

// slowStore is a real store whose Gets of blobs other than fast block
// until their context is cancelled, as reads from a slow remote store
// do, and count themselves while they run.
type slowStore struct {
	store.Store
	fast     string
	inFlight atomic.Int32
	started  atomic.Int32
	once     sync.Once
	begun    chan struct{} // closed when the first slow read has started
}

func (s *slowStore) init() { s.once.Do(func() { s.begun = make(chan struct{}) }) }

func (s *slowStore) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	s.init()
	if !strings.Contains(name, "/blobs/") {
		return s.Store.Get(ctx, name)
	}
	if name == s.fast {
		// The fast read answers once a slow one is in flight, so that
		// its failure always has another read to stop.
		select {
		case <-s.begun:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return s.Store.Get(ctx, name)
	}
	s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	if s.started.Add(1) == 1 {
		close(s.begun)
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

// When a chunk fails, the read returns its error only once the reads of
// the other chunks have stopped: nothing uses the store after Verify or
// Load returns (the caller may close it).
func TestFailedReadLeavesNoReadsRunning(t *testing.T) {
	dir := t.TempDir()
	cp := multiChunkCheckpoint(t, dir, "stop", 600<<10)
	st := openFileStore(t, dir)
	first := blobObject("stop", cp.State[0].Chunks[0].ID)
	if err := st.Delete(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	slow := &slowStore{Store: st, fast: first}
	for range 30 {
		err := ckpt.Verify(context.Background(), slow, cp)
		if !errors.Is(err, ckpt.ErrCorrupt) || !strings.Contains(err.Error(), "blob is missing") {
			t.Fatalf("Verify with the first blob missing: %v, want ErrCorrupt naming it", err)
		}
		if n := slow.inFlight.Load(); n != 0 {
			t.Fatalf("Verify returned with %d reads of the store still running", n)
		}
	}
	if slow.started.Load() == 0 {
		t.Fatal("no read of a later chunk was in flight when the first failed: the test tested nothing")
	}
}

// emptyState encodes to no bytes at all, as a binary encoding of an empty
// collection may.
type emptyState struct{ loaded bool }

func (*emptyState) MarshalBinary() ([]byte, error) { return nil, nil }

func (e *emptyState) UnmarshalBinary(b []byte) error {
	if len(b) != 0 {
		return errors.New("emptyState: not empty")
	}
	e.loaded = true
	return nil
}

func TestEmptyBinaryStateResumes(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	cfg := ckpt.Config{Store: dir, Codec: codec.Binary{}, NoSignals: true, Logger: quietLogger()}
	j, err := ckpt.Open[emptyState](ctx, "empty", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	cp, err := j.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cp.State[0].RawSize != 0 {
		t.Fatalf("the state is %d bytes; the test needs an empty one", cp.State[0].RawSize)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j, err = ckpt.Open[emptyState](ctx, "empty", cfg)
	if err != nil {
		t.Fatalf("reopen after checkpointing an empty state: %v", err)
	}
	defer j.Close()
	if r := j.Resumed(); r == nil || r.Seq != 1 || !j.State.loaded {
		t.Fatalf("resumed from %+v, state %+v; want checkpoint 1, decoded", r, j.State)
	}
}

func TestValuesRoundTripAndDamagedReferencesFail(t *testing.T) {
	ctx := context.Background()
	st := openFileStore(t, t.TempDir())
	const prefix = "values/v/"
	want := payloadFor(7, 20<<10) // a stored blob, not inline
	ref, err := value.Save(ctx, st, prefix, "v", want, value.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(value.Blobs(prefix, ref)) != 1 {
		t.Fatalf("value stored in %d blobs, the test needs one", len(value.Blobs(prefix, ref)))
	}
	var got payloadState
	if err := value.Load(ctx, st, prefix, ref, nil, &got); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("LoadValue: %v (seq %d)", err, got.Seq)
	}

	damage := []struct {
		name string
		edit func(r *ckpt.StateRef)
	}{
		{"negative raw size", func(r *ckpt.StateRef) { r.Chunks[0].Raw, r.RawSize = -1, -1 }},
		{"raw size past the block limit", func(r *ckpt.StateRef) { r.Chunks[0].Raw, r.RawSize = 1<<40, 1<<40 }},
		{"stored size shorter than a header", func(r *ckpt.StateRef) { r.Chunks[0].Stored, r.StoredSize = 3, 3 }},
		{"id that is not a hash", func(r *ckpt.StateRef) { r.Chunks[0].ID = "../../../etc/passwd" }},
		{"sizes that do not add up", func(r *ckpt.StateRef) { r.RawSize++ }},
		{"unknown compression", func(r *ckpt.StateRef) { r.Compression = "lz4" }},
	}
	for _, d := range damage {
		t.Run(d.name, func(t *testing.T) {
			bad := ref
			bad.Chunks = append([]ckpt.ChunkRef(nil), ref.Chunks...)
			d.edit(&bad)
			var got payloadState
			err := value.Load(ctx, st, prefix, bad, nil, &got)
			if !errors.Is(err, ckpt.ErrCorrupt) || !strings.Contains(err.Error(), `value "v"`) {
				t.Fatalf("LoadValue of a damaged reference: %v, want ErrCorrupt naming the value", err)
			}
		})
	}
}

// binState is state that codec.Binary saves as its bytes, so that Load
// reads it into one buffer of the state's size: the path that reads every
// chunk in place, straight into its part of that buffer.
type binState struct{ b []byte }

func (s *binState) MarshalBinary() ([]byte, error) { return s.b, nil }
func (s *binState) UnmarshalBinary(b []byte) error {
	s.b = append(s.b[:0], b...)
	return nil
}

// binaryCheckpoint commits a checkpoint of job in dir whose state is n
// bytes of text in 64 KiB chunks, compressed with comp, and returns it
// with the state.
func binaryCheckpoint(t *testing.T, dir, job string, n int, comp codec.Compression) (*ckpt.Checkpoint, []byte) {
	t.Helper()
	j, err := ckpt.Open[binState](context.Background(), job, ckpt.Config{Store: dir, NoSignals: true, Logger: quietLogger(), Codec: codec.Binary{}, Compression: comp, Uncompressed: comp == codec.None})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	ckpt.SetChunkSize(j, 64<<10)
	var b []byte
	for i := 0; len(b) < n; i++ {
		b = fmt.Appendf(b, "%d,order-%d,%x\n", i, i*7, i*i)
	}
	j.State.b = b[:n]
	cp, err := j.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if k := len(cp.State[0].Chunks); k < 4 {
		t.Fatalf("the checkpoint has %d chunks; the test needs several", k)
	}
	return cp, j.State.b
}

// Load of a state read in place: whole and equal when the blobs are
// sound, whatever their compression; a damaged blob, whichever way it is
// damaged, fails as corruption naming it, never as a state restored
// wrong.
func TestLoadInPlace(t *testing.T) {
	ctx := context.Background()
	for _, comp := range []codec.Compression{codec.None, codec.Zstd, codec.S2} {
		t.Run(comp.String(), func(t *testing.T) {
			dir := t.TempDir()
			job := "inplace-" + comp.String()
			cp, want := binaryCheckpoint(t, dir, job, 300<<10+17, comp)
			st := openFileStore(t, dir)
			var got binState
			if err := ckpt.Load(ctx, st, cp, &got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.b, want) {
				t.Fatalf("loaded %d bytes, not the %d saved", len(got.b), len(want))
			}
			chunks := cp.State[0].Chunks
			third := blobObject(job, chunks[2].ID)
			path := objectPath(dir, third)
			sound, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			other, err := os.ReadFile(objectPath(dir, blobObject(job, chunks[1].ID)))
			if err != nil {
				t.Fatal(err)
			}
			damages := []struct {
				name string
				blob []byte // nil: missing
			}{
				{"payload byte flipped", func() []byte { b := bytes.Clone(sound); b[len(b)-3] ^= 1; return b }()},
				{"header byte flipped", func() []byte { b := bytes.Clone(sound); b[9] ^= 1; return b }()},
				{"truncated", sound[:len(sound)-5]},
				{"header only", sound[:24]},
				{"half a header", sound[:10]},
				{"empty", []byte{}},
				{"appended to", append(bytes.Clone(sound), 'x')},
				{"another chunk's blob", other},
				{"missing", nil},
			}
			for _, d := range damages {
				if d.blob == nil {
					err = os.Remove(path)
				} else {
					err = os.WriteFile(path, d.blob, 0o644)
				}
				if err != nil {
					t.Fatal(err)
				}
				for range 5 {
					got := binState{b: []byte("before")}
					err := ckpt.Load(ctx, st, cp, &got)
					if !errors.Is(err, ckpt.ErrCorrupt) || !strings.Contains(err.Error(), third) {
						t.Fatalf("%s: Load: %v, want ErrCorrupt naming %s", d.name, err, third)
					}
					if string(got.b) != "before" {
						t.Fatalf("%s: Load failed but changed the state", d.name)
					}
				}
			}
			if err := os.WriteFile(path, sound, 0o644); err != nil {
				t.Fatal(err)
			}
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			if err := ckpt.Load(cctx, st, cp, &got); !errors.Is(err, context.Canceled) {
				t.Fatalf("Load with a cancelled context: %v, want context.Canceled", err)
			}
			// A failed chunk stops the others before Load returns. The
			// first one fails, so that it is read whatever the number
			// of chunks read at once.
			first := blobObject(job, chunks[0].ID)
			slow := &slowStore{Store: st, fast: first}
			if err := os.Remove(objectPath(dir, first)); err != nil {
				t.Fatal(err)
			}
			if err := ckpt.Load(ctx, slow, cp, &got); !errors.Is(err, ckpt.ErrCorrupt) {
				t.Fatalf("Load with a blob missing and the others slow: %v, want ErrCorrupt", err)
			}
			if n := slow.inFlight.Load(); n != 0 {
				t.Fatalf("Load returned with %d reads of the store still running", n)
			}
			if slow.started.Load() == 0 {
				t.Fatal("no read of another chunk was in flight when the missing one failed: the test tested nothing")
			}
		})
	}
}
