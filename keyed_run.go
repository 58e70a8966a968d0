package ckpt

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/maphash"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/ckptdev/ckpt/codec"
	"github.com/ckptdev/ckpt/store"
)

// A run is an immutable sorted file of keyed-state entries: the unit that
// incremental checkpoints write, share and merge. Its bytes (docs/FORMAT.md):
//
//	entry: uvarint key length, key, uvarint (value length << 2 | kind), value
//
// where kind is entryPut (the value), entryDelete (no value: the key is
// absent) or entryMerge (an operand that Keyed's merge function folds
// onto the key's older value),
// with entries in strictly increasing byte order of their keys. A run is
// named by the SHA-256 of its bytes, kept whole on local disk (a cache of
// the store, never synced: what is durable is in the store), and saved in
// the store cut into chunks of defaultChunkSize raw bytes, each an ordinary
// content-addressed blob. A run is never changed; merging runs writes a new
// one.
type run struct {
	id      string // hex SHA-256 of the raw bytes
	path    string
	f       *os.File
	size    int64 // raw bytes
	entries int64
	// chunks are the run's blobs in the store once uploaded (or as a
	// restored checkpoint names them); nil for a run only on local disk.
	chunks []ChunkRef

	idxOnce sync.Once
	idxErr  error
	index   []runBlock // first key and offset of every block
	bloom   bloom
}

// The kinds of run entries.
const (
	entryPut    byte = 0
	entryDelete byte = 1
	entryMerge  byte = 2
)

// runBlock is one entry of a run's sparse index.
type runBlock struct {
	key []byte
	off int64
}

// runBlockSize is the raw size after which a run's index starts a new
// block: a lookup reads at most about this much.
const runBlockSize = 4 << 10

func (r *run) close() {
	if r.f != nil {
		r.f.Close()
	}
}

// runRef describes r for a manifest.
func (r *run) ref() RunRef {
	ref := RunRef{ID: r.id, Entries: r.entries, Raw: r.size, Chunks: r.chunks}
	for _, c := range r.chunks {
		ref.Stored += c.Stored
	}
	return ref
}

// runWriter writes a run's entries, in increasing key order, to a
// temporary file in dir, building its index and filter on the way unless
// lazy: then the first lookup builds them (buildIndex), which a state
// read only by a merge of all its runs never does.
type runWriter struct {
	dir     string
	tmp     *os.File
	w       *bufio.Writer
	h       hash.Hash
	lazy    bool
	size    int64
	entries int64
	index   []runBlock
	keys    []uint64 // key hashes, for the filter
	last    []byte
	blockAt int64
	scratch []byte
}

// newRunWriter starts a run in dir of about entries entries (0: not
// known), for which it sizes the filter's list of key hashes; lazy
// leaves the index and filter to the first lookup.
func newRunWriter(dir string, entries int64, lazy bool) (*runWriter, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("keyed state directory: %w", err)
	}
	f, err := os.CreateTemp(dir, "run-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("keyed state run: %w", err)
	}
	w := &runWriter{dir: dir, tmp: f, h: sha256.New(), blockAt: -1, lazy: lazy}
	// The run's name hashes what the buffer writes, in large pieces.
	w.w = bufio.NewWriterSize(io.MultiWriter(f, w.h), 256<<10)
	if !lazy {
		w.keys = make([]uint64, 0, entries)
	}
	return w, nil
}

// add appends one entry; keys must come in strictly increasing order.
func (w *runWriter) add(key, val []byte, kind byte) error {
	if w.entries > 0 && bytes.Compare(key, w.last) <= 0 {
		return fmt.Errorf("keyed state run: keys out of order")
	}
	if !w.lazy && (w.blockAt < 0 || w.size-w.blockAt >= runBlockSize) {
		w.index = append(w.index, runBlock{key: bytes.Clone(key), off: w.size})
		w.blockAt = w.size
	}
	b := w.scratch[:0]
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	if kind == entryDelete {
		val = nil
	}
	b = binary.AppendUvarint(b, uint64(len(val))<<2|uint64(kind))
	b = append(b, val...)
	w.scratch = b
	if _, err := w.w.Write(b); err != nil {
		return fmt.Errorf("keyed state run: %w", err)
	}
	w.size += int64(len(b))
	w.entries++
	w.last = append(w.last[:0], key...)
	if !w.lazy {
		w.keys = append(w.keys, maphash.Bytes(bloomSeed, key))
	}
	return nil
}

// finish names the run by its content and opens it for reading.
func (w *runWriter) finish() (*run, error) {
	if err := w.w.Flush(); err != nil {
		w.abort()
		return nil, fmt.Errorf("keyed state run: %w", err)
	}
	id := hex.EncodeToString(w.h.Sum(nil))
	path := filepath.Join(w.dir, id+".run")
	if err := w.tmp.Close(); err != nil {
		os.Remove(w.tmp.Name())
		return nil, fmt.Errorf("keyed state run: %w", err)
	}
	// An existing file of that name has the same bytes, or is a damaged
	// copy: replacing it is right either way.
	if err := os.Rename(w.tmp.Name(), path); err != nil {
		os.Remove(w.tmp.Name())
		return nil, fmt.Errorf("keyed state run: %w", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keyed state run: %w", err)
	}
	r := &run{id: id, path: path, f: f, size: w.size, entries: w.entries}
	if !w.lazy {
		r.index, r.bloom = w.index, newBloom(w.keys)
		r.idxOnce.Do(func() {})
	}
	return r, nil
}

func (w *runWriter) abort() {
	w.tmp.Close()
	os.Remove(w.tmp.Name())
}

// runIter reads a run's entries in order.
type runIter struct {
	r    *bufio.Reader
	name string
	key  []byte
	val  []byte
	kind byte
	err  error
}

func (r *run) iter() *runIter {
	return &runIter{r: bufio.NewReaderSize(io.NewSectionReader(r.f, 0, r.size), 256<<10), name: r.path}
}

// next reads the next entry; false at the end or on error (see err).
func (it *runIter) next() bool {
	if it.err != nil {
		return false
	}
	kl, err := binary.ReadUvarint(it.r)
	if err == io.EOF {
		return false
	}
	if err == nil && kl > codec.MaxBlock {
		err = errors.New("impossible key length")
	}
	if err == nil {
		it.key = grow(it.key, int(kl))
		_, err = io.ReadFull(it.r, it.key)
	}
	var flag uint64
	if err == nil {
		flag, err = binary.ReadUvarint(it.r)
	}
	if err == nil && (flag>>2 > codec.MaxBlock || flag&3 > uint64(entryMerge)) {
		err = errors.New("impossible value length or kind")
	}
	if err == nil {
		it.kind = byte(flag & 3)
		it.val = grow(it.val, int(flag>>2))
		_, err = io.ReadFull(it.r, it.val)
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		it.err = fmt.Errorf("keyed state run %s: %w", it.name, err)
		return false
	}
	return true
}

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// buildIndex builds the sparse index and filter of a run read from disk.
func (r *run) buildIndex() error {
	r.idxOnce.Do(func() {
		it := r.iter()
		var off, blockAt int64 = 0, -1
		keys := make([]uint64, 0, r.entries)
		for it.next() {
			if blockAt < 0 || off-blockAt >= runBlockSize {
				r.index = append(r.index, runBlock{key: bytes.Clone(it.key), off: off})
				blockAt = off
			}
			keys = append(keys, maphash.Bytes(bloomSeed, it.key))
			off += int64(uvarintLen(uint64(len(it.key))) + len(it.key) + len(it.val))
			off += int64(uvarintLen(uint64(len(it.val))<<2 | uint64(it.kind)))
		}
		if it.err != nil {
			r.idxErr = it.err
			return
		}
		r.bloom = newBloom(keys)
	})
	return r.idxErr
}

func uvarintLen(v uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], v)
}

// get looks key up in the run: its value (appended to dst) and its kind,
// and whether the run has the key at all.
func (r *run) get(key, dst []byte) (val []byte, kind byte, found bool, err error) {
	if err := r.buildIndex(); err != nil {
		return nil, 0, false, err
	}
	if len(r.index) == 0 || !r.bloom.has(maphash.Bytes(bloomSeed, key)) {
		return nil, 0, false, nil
	}
	// The last block whose first key is at most key.
	lo, hi := 0, len(r.index)
	for lo < hi {
		m := (lo + hi) / 2
		if bytes.Compare(r.index[m].key, key) <= 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return nil, 0, false, nil
	}
	start := r.index[lo-1].off
	end := r.size
	if lo < len(r.index) {
		end = r.index[lo].off
	}
	buf := make([]byte, end-start)
	if _, err := r.f.ReadAt(buf, start); err != nil {
		return nil, 0, false, fmt.Errorf("keyed state run %s: %w", r.path, err)
	}
	for len(buf) > 0 {
		kl, n := binary.Uvarint(buf)
		if n <= 0 || uint64(len(buf)-n) < kl {
			return nil, 0, false, fmt.Errorf("keyed state run %s: damaged block at %d", r.path, start)
		}
		k := buf[n : n+int(kl)]
		buf = buf[n+int(kl):]
		flag, n := binary.Uvarint(buf)
		if n <= 0 || uint64(len(buf)-n) < flag>>2 {
			return nil, 0, false, fmt.Errorf("keyed state run %s: damaged block at %d", r.path, start)
		}
		v := buf[n : n+int(flag>>2)]
		buf = buf[n+int(flag>>2):]
		switch bytes.Compare(k, key) {
		case 0:
			return append(dst, v...), byte(flag & 3), true, nil
		case 1:
			return nil, 0, false, nil
		}
	}
	return nil, 0, false, nil
}

// bloom is a Bloom filter over key hashes, about 1 % false positives.
type bloom struct{ bits []uint64 }

var bloomSeed = maphash.MakeSeed()

func newBloom(hashes []uint64) bloom {
	n := max(len(hashes)*10, 64)
	b := bloom{bits: make([]uint64, (n+63)/64)}
	m := uint64(len(b.bits) * 64)
	for _, h := range hashes {
		h1, h2 := h, h>>32|h<<32
		for i := range uint64(7) {
			p := (h1 + i*h2) % m
			b.bits[p/64] |= 1 << (p % 64)
		}
	}
	return b
}

func (b bloom) has(h uint64) bool {
	m := uint64(len(b.bits) * 64)
	h1, h2 := h, h>>32|h<<32
	for i := range uint64(7) {
		p := (h1 + i*h2) % m
		if b.bits[p/64]&(1<<(p%64)) == 0 {
			return false
		}
	}
	return true
}

// combineFn folds a merge operand onto an older value (or operand), both
// encoded, returning the encoded result.
type combineFn func(older, newer []byte) ([]byte, error)

// mergeIter reads the merge of runs (oldest first) in key order: for a key
// in several, the newest put or deletion wins, with the merge operands
// newer than it folded on. With bottom set the runs are the whole state,
// so deletions are dropped and operands with nothing under them become
// puts.
type mergeIter struct {
	its     []*runIter
	live    []bool
	bottom  bool
	combine combineFn

	key, val []byte
	kind     byte
	err      error
	ops      [][]byte // merge operands of the current key, newest first
	bufs     [][]byte // reused for ops and the base value
	ties     []int    // the runs whose next key is the current one
}

func newMergeIter(runs []*run, bottom bool, combine combineFn) *mergeIter {
	m := &mergeIter{its: make([]*runIter, len(runs)), live: make([]bool, len(runs)), bottom: bottom, combine: combine}
	for i, r := range runs {
		m.its[i] = r.iter()
		m.live[i] = m.its[i].next()
	}
	return m
}

func (m *mergeIter) next() bool {
	for m.err == nil {
		// The smallest key, and every run that has it (ascending).
		best := -1
		ties := m.ties[:0]
		for i, it := range m.its {
			if !m.live[i] {
				continue
			}
			c := -1
			if best >= 0 {
				c = bytes.Compare(it.key, m.its[best].key)
			}
			switch {
			case c < 0:
				best, ties = i, append(ties[:0], i)
			case c == 0:
				ties = append(ties, i)
			}
		}
		m.ties = ties
		if best < 0 {
			for _, it := range m.its {
				if it.err != nil {
					m.err = it.err
				}
			}
			return false
		}
		m.key = append(m.key[:0], m.its[best].key...)
		m.ops = m.ops[:0]
		base, baseKind, haveBase := []byte(nil), entryPut, false
		used := 0
		// The values are copied into buffers reused from key to key:
		// next() overwrites the iterators' own.
		keep := func(v []byte) []byte {
			if used == len(m.bufs) {
				m.bufs = append(m.bufs, nil)
			}
			m.bufs[used] = append(m.bufs[used][:0], v...)
			used++
			return m.bufs[used-1]
		}
		for t := len(ties) - 1; t >= 0; t-- {
			i := ties[t]
			it := m.its[i]
			if !haveBase {
				switch it.kind {
				case entryMerge:
					m.ops = append(m.ops, keep(it.val))
				default:
					base, baseKind, haveBase = keep(it.val), it.kind, true
				}
			}
			m.live[i] = it.next()
		}
		if len(m.ops) == 0 {
			if baseKind == entryDelete && m.bottom {
				continue
			}
			m.val, m.kind = base, baseKind
			return true
		}
		// Fold the operands, oldest first, onto the base.
		var acc []byte
		n := len(m.ops)
		if haveBase && baseKind == entryPut {
			acc = base
		} else {
			acc, n = m.ops[n-1], n-1
		}
		for j := n - 1; j >= 0; j-- {
			var err error
			if acc, err = m.combine(acc, m.ops[j]); err != nil {
				m.err = err
				return false
			}
		}
		m.val, m.kind = acc, entryMerge
		if haveBase || m.bottom {
			m.kind = entryPut
		}
		return true
	}
	return false
}

// mergeRuns merges runs (oldest first) into one new run in dir (lazy: see
// newRunWriter); see mergeIter.
func mergeRuns(dir string, runs []*run, bottom, lazy bool, combine combineFn) (*run, error) {
	var entries int64
	for _, r := range runs {
		entries += r.entries
	}
	w, err := newRunWriter(dir, entries, lazy)
	if err != nil {
		return nil, err
	}
	m := newMergeIter(runs, bottom, combine)
	for m.next() {
		if err := w.add(m.key, m.val, m.kind); err != nil {
			w.abort()
			return nil, err
		}
	}
	if m.err != nil {
		w.abort()
		return nil, m.err
	}
	return w.finish()
}

// uploaded reports whether chunks, the chunks r was saved as, are all
// blobs that a kept checkpoint references (known), and so still in the
// store.
func uploaded(r *run, chunks []ChunkRef, known blobSet) bool {
	if len(chunks) == 0 {
		return false
	}
	var raw int64
	for _, c := range chunks {
		if _, ok := known[c.ID]; !ok {
			return false
		}
		raw += c.Raw
	}
	return raw == r.size
}

// uploadRun saves r's chunks as blobs under prefix, skipping those in
// known (referenced by a kept checkpoint), and returns the chunk list and
// the bytes written.
func uploadRun(ctx context.Context, st store.Store, prefix string, r *run, comp codec.Compression, known blobSet) ([]ChunkRef, int64, error) {
	var refs []ChunkRef
	var written int64
	buf := make([]byte, defaultChunkSize)
	var blob []byte
	for off := int64(0); off < r.size; off += defaultChunkSize {
		n := min(int64(defaultChunkSize), r.size-off)
		raw := buf[:n]
		if _, err := r.f.ReadAt(raw, off); err != nil {
			return nil, 0, fmt.Errorf("keyed state run %s: %w", r.path, err)
		}
		id := chunkID(raw)
		ref := ChunkRef{ID: id, Raw: n}
		if size, ok := known[id]; ok {
			ref.Stored = size
			refs = append(refs, ref)
			continue
		}
		b, err := encodeBlob(blob, raw, comp)
		if err != nil {
			return nil, 0, err
		}
		blob = b
		if err := st.Put(ctx, prefix+id, bytes.NewReader(b)); err != nil {
			return nil, 0, fmt.Errorf("write keyed state blob: %w", err)
		}
		ref.Stored = int64(len(b))
		written += ref.Stored
		refs = append(refs, ref)
	}
	return refs, written, nil
}

// fetchRun makes the run ref names present in dir: a local copy is used
// if its bytes hash to the run's id, else the chunks are read (and
// verified) from the store. A chunk that fails verification is a
// *CorruptError naming it.
func fetchRun(ctx context.Context, st store.Store, loc chunkLoc, dir string, ref RunRef) (*run, error) {
	path := filepath.Join(dir, ref.ID+".run")
	if f, err := os.Open(path); err == nil {
		h := sha256.New()
		n, err := io.Copy(h, f)
		if err == nil && n == ref.Raw && hex.EncodeToString(h.Sum(nil)) == ref.ID {
			return &run{id: ref.ID, path: path, f: f, size: n, entries: ref.Entries, chunks: ref.Chunks}, nil
		}
		f.Close()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("keyed state directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "fetch-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("keyed state directory: %w", err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	var n int64
	for _, c := range ref.Chunks {
		raw, err := readChunk(ctx, st, loc, c)
		if err != nil {
			tmp.Close()
			return nil, err
		}
		h.Write(raw)
		if _, err := tmp.Write(raw); err != nil {
			tmp.Close()
			return nil, fmt.Errorf("keyed state directory: %w", err)
		}
		n += int64(len(raw))
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("keyed state directory: %w", err)
	}
	if n != ref.Raw || hex.EncodeToString(h.Sum(nil)) != ref.ID {
		return nil, &CorruptError{Job: loc.job, Seq: loc.seq, Object: loc.manifest, Err: fmt.Errorf("keyed state run %s: its chunks do not make up the run", ref.ID)}
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return nil, fmt.Errorf("keyed state directory: %w", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keyed state directory: %w", err)
	}
	return &run{id: ref.ID, path: path, f: f, size: n, entries: ref.Entries, chunks: ref.Chunks}, nil
}
