package ckpt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

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
	puts   atomic.Int64 // blobs written, which a Sync must make durable
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
	var body *blobReader
	if w.comp == codec.None {
		// The chunk's bytes are the payload: written behind a header of
		// their own, not copied into a blob buffer.
		head := make([]byte, blobHeaderSize)
		putBlobHeader(head, codec.None, len(raw), raw)
		body = &blobReader{head: head, body: raw}
	} else {
		b, err := encodeBlob(*blob, raw, w.comp)
		if err != nil {
			return ref, err
		}
		*blob = b
		body = &blobReader{body: b}
	}
	ref.Stored = body.size()
	// Durable only with the Sync that writeState makes once every blob
	// is written, before any manifest can name them.
	if err := store.PutDeferred(w.ctx, w.st, w.prefix+id, body); err != nil {
		return ref, fmt.Errorf("write state blob: %w", err)
	}
	w.puts.Add(1)
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
// and returns its reference. The blobs are durable when it returns: they
// are written with store.PutDeferred and made durable together by one
// store.Sync of prefix (on the local store, one fsync of the blob
// directory instead of one per blob).
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
	if w.puts.Load() > 0 {
		if err := store.Sync(ctx, st, prefix); err != nil {
			return StateRef{}, fmt.Errorf("save state %q: make its blobs durable: %w", name, err)
		}
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
// A first Read into a buffer that holds the whole state (codec.Binary's,
// sized with Size) is served without streaming: every chunk is read and
// verified in place, in its part of that buffer. Any verification
// failure is returned as a *CorruptError.
type chunkReader struct {
	ctx     context.Context
	cancel  context.CancelFunc
	st      store.Store
	loc     chunkLoc
	ref     *StateRef
	readers int // chunks fetched and verified at once, besides the codec
	started bool
	ch      chan chunkResult // nil until streaming starts
	wg      sync.WaitGroup   // every goroutine of the reader; Close waits for them
	cur     []byte
	curBuf  []byte // the buffer holding cur, reused once cur is consumed
	err     error
	size    int64
	left    int // chunks not yet handed to Read

	// free holds buffers whose chunk the codec has consumed, for the
	// next reads: a load allocates a few chunk buffers, not one per chunk.
	free chan []byte
}

type chunkResult struct {
	raw []byte
	buf []byte // the reader's buffer that raw lies in, nil if none
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
	readers := min(runtime.GOMAXPROCS(0), 4)
	r := &chunkReader{ctx: ctx, cancel: cancel, st: st, loc: loc, ref: ref, readers: readers, left: len(ref.Chunks), free: make(chan []byte, readers+4)}
	for _, c := range ref.Chunks {
		r.size += c.Raw
	}
	return r
}

// stream starts the goroutines that fetch and verify the chunks in turn.
func (r *chunkReader) stream() {
	r.started = true
	ctx, cancel, st, loc, ref, readers := r.ctx, r.cancel, r.st, r.loc, r.ref, r.readers
	r.ch = make(chan chunkResult, 1)
	// Chunks are fetched and verified (CRC, decompression, SHA-256) on up
	// to readers+1 goroutines at once, which is where loading spends its
	// time, and handed to the codec in order. Besides the chunk the codec
	// reads, at most readers+2 are held: readers queued in futures, one
	// the collector waits on or hands over, one buffered in r.ch.
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
				raw, buf, err := r.readChunk(ctx, st, loc, c)
				f <- chunkResult{raw, buf, err}
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
}

// readAll fills p, which holds the whole state, with the chunks read and
// verified in place on r.readers+1 goroutines: an uncompressed chunk is
// read from the store straight into its part of p, a compressed one
// decompressed into it. Nothing is copied after the read.
func (r *chunkReader) readAll(p []byte) error {
	r.started = true
	ctx := r.ctx
	chunks := r.ref.Chunks
	errs := make([]error, len(chunks))
	sem := make(chan struct{}, r.readers+1)
	var off int64
	for i, c := range chunks {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			errs[i] = context.Cause(ctx)
		}
		if errs[i] != nil {
			break
		}
		dst := p[off : off+c.Raw : off+c.Raw]
		off += c.Raw
		r.wg.Go(func() {
			defer func() { <-sem }()
			if errs[i] = r.readChunkInto(ctx, c, dst); errs[i] != nil {
				r.cancel()
			}
		})
	}
	r.wg.Wait()
	// The first failure that is not the cancellation it caused.
	var first error
	for _, err := range errs {
		if err != nil && first == nil {
			first = err
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	return first
}

// readChunkInto reads and verifies chunk c into dst, which is c.Raw bytes
// long (and no longer: a blob that decodes to more cannot overwrite the
// next chunk's part).
func (r *chunkReader) readChunkInto(ctx context.Context, c ChunkRef, dst []byte) (err error) {
	if c.Data != nil {
		raw, buf, err := r.readChunk(ctx, r.st, r.loc, c)
		if err != nil {
			return err
		}
		if int64(len(raw)) != c.Raw {
			return &CorruptError{Job: r.loc.job, Seq: r.loc.seq, Object: r.loc.manifest + " (inline chunk)", Err: fmt.Errorf("chunk holds %d raw bytes, manifest says %d", len(raw), c.Raw)}
		}
		copy(dst, raw)
		r.putBuf(buf)
		return nil
	}
	object := r.loc.prefix + c.ID
	corrupt := func(err error) error { return &CorruptError{Job: r.loc.job, Seq: r.loc.seq, Object: object, Err: err} }
	rc, err := r.st.Get(ctx, object)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return corrupt(errors.New("blob is missing"))
		}
		return fmt.Errorf("read %s: %w", object, err)
	}
	defer rc.Close()
	// read fills b from the blob; a backend's own failed checksum is
	// corruption, a short blob is reported by the caller.
	read := func(b []byte) (int, error) {
		n, err := io.ReadFull(rc, b)
		if errors.Is(err, store.ErrCorrupt) {
			return n, corrupt(err)
		}
		if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
			return n, fmt.Errorf("read %s: %w", object, err)
		}
		return n, nil
	}
	short := func(n int64) error {
		return corrupt(fmt.Errorf("blob is %d bytes, manifest says %d (truncated?)", n, c.Stored))
	}
	var head [blobHeaderSize]byte
	n, err := read(head[:])
	if err != nil {
		return err
	}
	if n < blobHeaderSize {
		return short(int64(n))
	}
	h, err := parseBlobHeader(head[:])
	if err != nil {
		if errors.Is(err, ErrFormat) {
			return fmt.Errorf("%s: %w", object, err)
		}
		return corrupt(err)
	}
	if h.rawLen != c.Raw {
		return corrupt(fmt.Errorf("blob holds %d raw bytes, manifest says %d", h.rawLen, c.Raw))
	}
	payloadLen := c.Stored - blobHeaderSize
	var payload, buf []byte
	if h.comp == codec.None && payloadLen == c.Raw {
		payload = dst // read in place
	} else {
		if payloadLen > codec.MaxBlock+(1<<20) {
			return corrupt(fmt.Errorf("blob of %d bytes is over the limit", c.Stored))
		}
		buf = r.getBuf(payloadLen)
		defer func() { r.putBuf(buf) }()
		payload = buf
	}
	if n, err := read(payload); err != nil {
		return err
	} else if int64(n) < payloadLen {
		return short(blobHeaderSize + int64(n))
	}
	var one [1]byte
	if n, err := read(one[:]); err != nil {
		return err
	} else if n > 0 {
		return corrupt(fmt.Errorf("blob is longer than the %d bytes the manifest says", c.Stored))
	}
	raw, err := decodePayload(h, payload, dst, c.ID)
	if err != nil {
		return corrupt(err)
	}
	if len(raw) > 0 && &raw[0] != &dst[0] {
		copy(dst, raw) // decoded elsewhere: not expected, but harmless
	}
	return nil
}

// Size returns the number of raw bytes the reader yields in all, so that
// a codec can size its buffer once.
func (r *chunkReader) Size() int64 { return r.size }

func (r *chunkReader) Read(p []byte) (int, error) {
	if !r.started {
		if int64(len(p)) >= r.size && r.size > 0 {
			if err := r.readAll(p[:r.size]); err != nil {
				r.err = err
				return 0, err
			}
			r.left, r.err = 0, io.EOF
			return int(r.size), nil
		}
		r.stream()
	}
	if err := r.next(); err != nil {
		return 0, err
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// WriteTo hands each chunk to w in one Write, without copying it through
// a buffer first: io.Copy from the reader (a verification) uses it.
func (r *chunkReader) WriteTo(w io.Writer) (int64, error) {
	if !r.started {
		r.stream()
	}
	var total int64
	for {
		if err := r.next(); err != nil {
			if err == io.EOF {
				return total, nil
			}
			return total, err
		}
		n, err := w.Write(r.cur)
		total += int64(n)
		r.cur = r.cur[n:]
		if err != nil {
			return total, err
		}
	}
}

// next makes r.cur the unread bytes of the next chunk once the current
// one is consumed, or returns why there are none (io.EOF at the end).
func (r *chunkReader) next() error {
	for len(r.cur) == 0 {
		r.putBuf(r.curBuf)
		r.curBuf = nil
		if r.err != nil {
			return r.err
		}
		if r.ch == nil {
			r.stream()
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
			return r.err
		}
		r.left--
		if res.err != nil {
			r.err = res.err
			return res.err
		}
		r.cur, r.curBuf = res.raw, res.buf
	}
	return nil
}

// getBuf returns a buffer of n bytes, a consumed chunk's if one is free
// and large enough. Its content is not cleared.
func (r *chunkReader) getBuf(n int64) []byte {
	select {
	case b := <-r.free:
		if int64(cap(b)) >= n {
			return b[:n]
		}
	default:
	}
	return make([]byte, n)
}

// putBuf offers b, whose bytes nobody reads any more, for reuse.
func (r *chunkReader) putBuf(b []byte) {
	if b == nil {
		return
	}
	select {
	case r.free <- b:
	default:
	}
}

// Close stops the reader's goroutines and waits for them, so that none
// uses the store after the read that created the reader returns.
func (r *chunkReader) Close() error {
	r.cancel()
	if r.ch != nil {
		for range r.ch {
		}
	}
	r.wg.Wait()
	return nil
}

// readChunk fetches and verifies one chunk. It returns its raw bytes and
// the buffer of r's that holds them (nil when they lie in the manifest's
// inline data), to be given back with putBuf once they are consumed.
func (r *chunkReader) readChunk(ctx context.Context, st store.Store, loc chunkLoc, c ChunkRef) (raw, buf []byte, err error) {
	object := loc.prefix + c.ID
	corrupt := func(err error) error { return &CorruptError{Job: loc.job, Seq: loc.seq, Object: object, Err: err} }
	var blobBuf []byte // r's buffer holding the blob as stored
	defer func() {
		if err != nil {
			r.putBuf(blobBuf)
			r.putBuf(buf)
			raw, buf = nil, nil
		}
	}()
	data := c.Data
	if data == nil {
		rc, err := st.Get(ctx, object)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil, nil, corrupt(errors.New("blob is missing"))
			}
			return nil, nil, fmt.Errorf("read %s: %w", object, err)
		}
		// Read into a buffer of the size the manifest gives, plus one byte
		// to notice a longer blob: io.ReadAll would grow its buffer from
		// 512 bytes, copying an 8 MiB chunk about twenty times.
		const limit = codec.MaxBlock + blobHeaderSize + (1 << 20)
		blobBuf = r.getBuf(min(c.Stored, limit) + 1)
		n, err := io.ReadFull(io.LimitReader(rc, limit), blobBuf)
		rc.Close()
		if errors.Is(err, store.ErrCorrupt) {
			return nil, nil, corrupt(err) // the backend's own checksum failed
		}
		if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
			return nil, nil, fmt.Errorf("read %s: %w", object, err)
		}
		data = blobBuf[:n]
		if int64(n) > c.Stored {
			return nil, nil, corrupt(fmt.Errorf("blob is longer than the %d bytes the manifest says", c.Stored))
		}
	} else {
		object = loc.manifest + " (inline chunk)"
	}
	if int64(len(data)) != c.Stored {
		return nil, nil, corrupt(fmt.Errorf("blob is %d bytes, manifest says %d (truncated?)", len(data), c.Stored))
	}
	// A compressed chunk is decompressed into a buffer of its own; an
	// uncompressed one is returned where it was read.
	var out []byte
	if len(data) > blobHeaderSize && codec.Compression(data[4]) != codec.None {
		out = r.getBuf(c.Raw)
	}
	raw, comp, err := decodeBlob(out, data, c.ID)
	if err != nil {
		r.putBuf(out)
		if errors.Is(err, ErrFormat) {
			return nil, nil, fmt.Errorf("%s: %w", object, err)
		}
		return nil, nil, corrupt(err)
	}
	if comp == codec.None {
		return raw, blobBuf, nil
	}
	r.putBuf(blobBuf)
	blobBuf = nil
	return raw, out, nil
}

// readChunk fetches and verifies one chunk outside a state's reader (the
// runs of keyed state): its raw bytes, in a buffer of their own.
func readChunk(ctx context.Context, st store.Store, loc chunkLoc, c ChunkRef) ([]byte, error) {
	var r chunkReader // no buffers to reuse: getBuf allocates
	raw, _, err := r.readChunk(ctx, st, loc, c)
	return raw, err
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
