package ckpt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/ckptdev/ckpt/codec"
	"github.com/ckptdev/ckpt/store"
)

const (
	// defaultChunkSize is the raw size at which serialized state is cut into
	// blobs. It bounds memory (a few chunks in flight, whatever the state's
	// size), makes every blob a single small write on every backend, and
	// lets unchanged chunks of large state be shared between checkpoints.
	defaultChunkSize = 8 << 20
	// inlineLimit: a state whose whole blob is at most this size is kept in
	// the manifest, so a small checkpoint is one atomic write.
	inlineLimit = 4 << 10
)

// blobSet is what the writer knows to be in the store: blob id to stored
// size, for every blob a kept checkpoint references.
type blobSet map[string]int64

// chunkWriter is the io.Writer a codec encodes state into. It cuts the
// stream into chunks, and compresses, hashes and stores full chunks on
// worker goroutines while the codec goes on encoding. Memory is bounded by
// (workers+1) chunks.
type chunkWriter struct {
	ctx    context.Context
	st     store.Store
	prefix string // blob names are prefix + id
	comp   codec.Compression
	size   int
	known  blobSet

	buf  []byte
	free chan []byte
	work chan chunkTask
	wg   sync.WaitGroup

	mu     sync.Mutex
	chunks []ChunkRef
	err    error
}

type chunkTask struct {
	idx int
	raw []byte
}

func newChunkWriter(ctx context.Context, st store.Store, prefix string, comp codec.Compression, size int, known blobSet) *chunkWriter {
	workers := min(runtime.GOMAXPROCS(0), 4)
	w := &chunkWriter{
		ctx: ctx, st: st, prefix: prefix, comp: comp, size: size, known: known,
		free: make(chan []byte, workers+1),
		work: make(chan chunkTask, workers),
	}
	for range workers {
		w.wg.Add(1)
		go w.worker()
	}
	return w
}

func (w *chunkWriter) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}

func (w *chunkWriter) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Write buffers p, handing every full chunk to the workers.
func (w *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if err := w.failed(); err != nil {
			return 0, err
		}
		if w.buf == nil {
			w.buf = w.getBuf()
		}
		k := min(w.size-len(w.buf), len(p))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) == w.size {
			w.dispatch()
		}
	}
	return n, nil
}

func (w *chunkWriter) getBuf() []byte {
	select {
	case b := <-w.free:
		return b[:0]
	default:
	}
	if len(w.chunks) < cap(w.free) {
		// Few chunks so far: allocate, growing with append so a small
		// state never costs a whole chunk of memory.
		return nil
	}
	select {
	case b := <-w.free:
		return b[:0]
	case <-w.ctx.Done():
		return nil
	}
}

func (w *chunkWriter) dispatch() {
	w.mu.Lock()
	idx := len(w.chunks)
	w.chunks = append(w.chunks, ChunkRef{})
	w.mu.Unlock()
	select {
	case w.work <- chunkTask{idx: idx, raw: w.buf}:
	case <-w.ctx.Done():
		w.fail(w.ctx.Err())
	}
	w.buf = nil
}

func (w *chunkWriter) worker() {
	defer w.wg.Done()
	var blob []byte
	for t := range w.work {
		if w.failed() == nil {
			ref, err := w.store(t.raw, &blob)
			if err != nil {
				w.fail(err)
			} else {
				w.mu.Lock()
				w.chunks[t.idx] = ref
				w.mu.Unlock()
			}
		}
		select {
		case w.free <- t.raw:
		default:
		}
	}
}

// store writes one chunk's blob unless a kept checkpoint already has it.
func (w *chunkWriter) store(raw []byte, blob *[]byte) (ChunkRef, error) {
	id := chunkID(raw)
	ref := ChunkRef{ID: id, Raw: int64(len(raw))}
	if size, ok := w.known[id]; ok {
		ref.Stored = size
		return ref, nil
	}
	b, err := encodeBlob(*blob, raw, w.comp)
	if err != nil {
		return ref, err
	}
	*blob = b
	ref.Stored = int64(len(b))
	if err := w.st.Put(w.ctx, w.prefix+id, bytes.NewReader(b)); err != nil {
		return ref, fmt.Errorf("write state blob: %w", err)
	}
	return ref, nil
}

// finish stores the last partial chunk (inline when small enough), waits
// for the workers and returns the chunk list.
func (w *chunkWriter) finish() ([]ChunkRef, error) {
	if len(w.buf) > 0 && w.failed() == nil {
		w.mu.Lock()
		first := len(w.chunks) == 0
		w.mu.Unlock()
		if first && len(w.buf) <= 2*inlineLimit {
			if blob, err := encodeBlob(nil, w.buf, w.comp); err == nil && len(blob) <= inlineLimit {
				w.chunks = append(w.chunks, ChunkRef{ID: chunkID(w.buf), Raw: int64(len(w.buf)), Stored: int64(len(blob)), Data: blob})
				w.buf = nil
			}
		}
		if w.buf != nil {
			w.dispatch()
		}
	}
	close(w.work)
	w.wg.Wait()
	if err := w.failed(); err != nil {
		return nil, err
	}
	return w.chunks, nil
}

// abort stops the workers after a failed encode.
func (w *chunkWriter) abort(err error) {
	w.fail(err)
	close(w.work)
	w.wg.Wait()
}

// writeState encodes v with c into chunks stored as blobs named prefix+id,
// and returns its reference.
func writeState(ctx context.Context, st store.Store, prefix, name string, c codec.Codec, v any, comp codec.Compression, chunkSize int, known blobSet) (StateRef, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := newChunkWriter(ctx, st, prefix, comp, chunkSize, known)
	if err := c.Encode(w, v); err != nil {
		cancel()
		w.abort(err)
		if ferr := w.failed(); ferr != nil && !errors.Is(err, ferr) {
			err = ferr // the store failed first; that is what the user must fix
		}
		return StateRef{}, fmt.Errorf("encode state %q with codec %s: %w", name, c.Name(), err)
	}
	chunks, err := w.finish()
	if err != nil {
		return StateRef{}, fmt.Errorf("save state %q: %w", name, err)
	}
	ref := StateRef{Name: name, Codec: c.Name(), Compression: comp.String(), Chunks: chunks}
	for _, ch := range chunks {
		ref.RawSize += ch.Raw
		ref.StoredSize += ch.Stored
	}
	if ref.Chunks == nil {
		ref.Chunks = []ChunkRef{}
	}
	return ref, nil
}

// chunkReader streams the verified raw bytes of a state. Goroutines read
// and verify the next chunks while the codec decodes the current one.
// Any verification failure is returned as a *CorruptError.
type chunkReader struct {
	ctx    context.Context
	cancel context.CancelFunc
	ch     chan chunkResult
	wg     sync.WaitGroup // every goroutine of the reader; Close waits for them
	cur    []byte
	err    error
	size   int64
	left   int // chunks not yet handed to Read
}

type chunkResult struct {
	raw []byte
	err error
}

// chunkLoc says where the chunks of a state live and whose they are, for
// the errors that name a corrupt one.
type chunkLoc struct {
	prefix   string // blob names are prefix + id
	job      string // the job and checkpoint, if a checkpoint's state
	seq      uint64
	manifest string // the object holding inline chunks
}

func checkpointLoc(cp *Checkpoint) chunkLoc {
	return chunkLoc{prefix: blobsPrefix(cp.Job), job: cp.Job, seq: cp.Seq, manifest: manifestName(cp.Job, cp.Seq)}
}

func newChunkReader(ctx context.Context, st store.Store, loc chunkLoc, ref *StateRef) *chunkReader {
	ctx, cancel := context.WithCancel(ctx)
	r := &chunkReader{ctx: ctx, cancel: cancel, ch: make(chan chunkResult, 1), left: len(ref.Chunks)}
	for _, c := range ref.Chunks {
		r.size += c.Raw
	}
	// Chunks are fetched and verified (CRC, decompression, SHA-256) on up
	// to readers+1 goroutines at once, which is where loading spends its
	// time, and handed to the codec in order. Besides the chunk the codec
	// reads, at most readers+2 are held: readers queued in futures, one
	// the collector waits on or hands over, one buffered in r.ch.
	readers := min(runtime.GOMAXPROCS(0), 4)
	futures := make(chan chan chunkResult, readers)
	r.wg.Go(func() {
		defer close(futures)
		for _, c := range ref.Chunks {
			f := make(chan chunkResult, 1)
			select {
			case futures <- f:
			case <-ctx.Done():
				return
			}
			r.wg.Go(func() {
				raw, err := readChunk(ctx, st, loc, c)
				f <- chunkResult{raw, err}
			})
		}
	})
	r.wg.Go(func() {
		defer close(r.ch)
		for f := range futures {
			var res chunkResult
			select {
			case res = <-f:
			case <-ctx.Done():
				return
			}
			select {
			case r.ch <- res:
			case <-ctx.Done():
				return
			}
			if res.err != nil {
				cancel()
				return
			}
		}
	})
	return r
}

// Size returns the number of raw bytes the reader yields in all, so that
// a codec can size its buffer once.
func (r *chunkReader) Size() int64 { return r.size }

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		res, ok := <-r.ch
		if !ok {
			// The goroutines stop early only when the context is
			// cancelled: the stream is cut short, which must not read as
			// its end (a state that decodes from a prefix of its bytes
			// would be restored truncated, a Verify would pass).
			r.err = io.EOF
			if r.left > 0 {
				r.err = context.Cause(r.ctx)
				if r.err == nil {
					r.err = io.ErrUnexpectedEOF
				}
			}
			return 0, r.err
		}
		r.left--
		if res.err != nil {
			r.err = res.err
			return 0, res.err
		}
		r.cur = res.raw
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// Close stops the reader's goroutines and waits for them, so that none
// uses the store after the read that created the reader returns.
func (r *chunkReader) Close() error {
	r.cancel()
	for range r.ch {
	}
	r.wg.Wait()
	return nil
}

// readChunk fetches and verifies one chunk, returning its raw bytes.
func readChunk(ctx context.Context, st store.Store, loc chunkLoc, c ChunkRef) ([]byte, error) {
	object := loc.prefix + c.ID
	corrupt := func(err error) error { return &CorruptError{Job: loc.job, Seq: loc.seq, Object: object, Err: err} }
	data := c.Data
	if data == nil {
		rc, err := st.Get(ctx, object)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil, corrupt(errors.New("blob is missing"))
			}
			return nil, fmt.Errorf("read %s: %w", object, err)
		}
		// Read into a buffer of the size the manifest gives, plus one byte
		// to notice a longer blob: io.ReadAll would grow its buffer from
		// 512 bytes, copying an 8 MiB chunk about twenty times.
		const limit = codec.MaxBlock + blobHeaderSize + (1 << 20)
		buf := make([]byte, min(c.Stored, limit)+1)
		n, err := io.ReadFull(io.LimitReader(rc, limit), buf)
		rc.Close()
		if errors.Is(err, store.ErrCorrupt) {
			return nil, corrupt(err) // the backend's own checksum failed
		}
		if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
			return nil, fmt.Errorf("read %s: %w", object, err)
		}
		data = buf[:n]
		if int64(n) > c.Stored {
			return nil, corrupt(fmt.Errorf("blob is longer than the %d bytes the manifest says", c.Stored))
		}
	} else {
		object = loc.manifest + " (inline chunk)"
	}
	if int64(len(data)) != c.Stored {
		return nil, corrupt(fmt.Errorf("blob is %d bytes, manifest says %d (truncated?)", len(data), c.Stored))
	}
	raw, _, err := decodeBlob(make([]byte, 0, c.Raw), data, c.ID)
	if err != nil {
		if errors.Is(err, ErrFormat) {
			return nil, fmt.Errorf("%s: %w", object, err)
		}
		return nil, corrupt(err)
	}
	return raw, nil
}

// readState decodes the state called name from cp into v.
func readState(ctx context.Context, st store.Store, cp *Checkpoint, name string, c codec.Codec, v any) error {
	var ref *StateRef
	for i := range cp.State {
		if cp.State[i].Name == name {
			ref = &cp.State[i]
		}
	}
	if ref == nil {
		return fmt.Errorf("checkpoint %d of job %q has no state %q", cp.Seq, cp.Job, name)
	}
	if ref.Codec != c.Name() {
		return fmt.Errorf("state %q of checkpoint %d was written with codec %q; the job is configured with %q", name, cp.Seq, ref.Codec, c.Name())
	}
	err := decodeChunks(ctx, st, checkpointLoc(cp), ref, c, v)
	if err != nil && !errors.Is(err, ErrCorrupt) {
		return fmt.Errorf("decode state %q of checkpoint %d: %w", name, cp.Seq, err)
	}
	return err
}

// decodeChunks decodes the value whose chunks ref lists into v, verifying
// every chunk. A verification failure is returned as a *CorruptError.
func decodeChunks(ctx context.Context, st store.Store, loc chunkLoc, ref *StateRef, c codec.Codec, v any) error {
	r := newChunkReader(ctx, st, loc, ref)
	defer r.Close()
	if err := c.Decode(r, v); err != nil {
		var ce *CorruptError
		if errors.As(r.err, &ce) {
			return ce
		}
		if r.err != nil && r.err != io.EOF {
			return r.err
		}
		return fmt.Errorf("codec %s: %w", c.Name(), err)
	}
	// The codec may stop before the end; the rest must still verify and
	// must be empty, or the state was not what the codec read.
	if n, err := io.Copy(io.Discard, r); err != nil {
		return err
	} else if n > 0 {
		return fmt.Errorf("codec %s left %d bytes unread", c.Name(), n)
	}
	return nil
}

// verifyState reads and verifies every chunk of every state of cp.
func verifyState(ctx context.Context, st store.Store, cp *Checkpoint) error {
	for i := range cp.State {
		r := newChunkReader(ctx, st, checkpointLoc(cp), &cp.State[i])
		_, err := io.Copy(io.Discard, r)
		r.Close()
		if err != nil {
			return err
		}
	}
	return verifyKeyed(ctx, st, cp)
}
