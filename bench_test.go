//go:build linux

package ckpt_test

// The benchmarks of the checkpoint engine behind docs/BENCHMARKS.md. Each
// measures ckpt next to a raw baseline on the same disk in the same run
// (sub-benchmark codec=raw), so that scripts/bench.sh can print the ratio.
// They write under b.TempDir(), that is below $TMPDIR or /tmp.
//
// Run them with scripts/bench.sh engine (or make bench); go test without
// -bench never runs them.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/codec"
	"github.com/ckptdev/ckpt/internal/durable"
	"github.com/ckptdev/ckpt/internal/vfs"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/filestore"
)

const mib = 1 << 20

var benchSizes = []struct {
	name string
	n    int
}{
	{"1MiB", 1 * mib},
	{"64MiB", 64 * mib},
	{"512MiB", 512 * mib},
}

// jsonSize is the size at which the codec.JSON reference line is measured.
const jsonSize = 64 * mib

// BenchmarkEngineSave measures a checkpoint of large state: encode, cut
// into chunks, hash, compress, write every blob durably, commit the
// manifest, and remove the previous checkpoint (Retain 1, the steady state
// of a running job). codec=raw is one plain file of the same size written
// in the same directory, fsynced, and its directory fsynced.
func BenchmarkEngineSave(b *testing.B) {
	for _, size := range benchSizes {
		b.Run("size="+size.name, func(b *testing.B) {
			b.Run("codec=raw", func(b *testing.B) { benchRawWrite(b, benchCSV(size.n)) })
			b.Run("codec=binary", func(b *testing.B) { benchSaveBinary(b, benchCSV(size.n), codec.None) })
			b.Run("codec=binary+s2", func(b *testing.B) { benchSaveBinary(b, benchCSV(size.n), codec.S2) })
			b.Run("codec=binary+zstd", func(b *testing.B) { benchSaveBinary(b, benchCSV(size.n), codec.Zstd) })
			if size.n == jsonSize {
				b.Run("codec=json+zstd", benchSaveJSON)
			}
		})
	}
}

// BenchmarkEngineLoad measures ckpt.Load of large state from a cold page
// cache: read every blob, check its CRCs, decompress, check its SHA-256,
// decode. codec=raw is os.ReadFile of one file of the same size, equally
// evicted from the page cache first.
func BenchmarkEngineLoad(b *testing.B) {
	for _, size := range benchSizes {
		b.Run("size="+size.name, func(b *testing.B) {
			b.Run("codec=raw", func(b *testing.B) { benchRawRead(b, benchCSV(size.n)) })
			b.Run("codec=binary", func(b *testing.B) { benchLoadBinary(b, benchCSV(size.n), codec.None, false) })
			b.Run("codec=binary-kept", func(b *testing.B) { benchLoadBinary(b, benchCSV(size.n), codec.None, true) })
			b.Run("codec=binary+s2", func(b *testing.B) { benchLoadBinary(b, benchCSV(size.n), codec.S2, false) })
			b.Run("codec=binary+zstd", func(b *testing.B) { benchLoadBinary(b, benchCSV(size.n), codec.Zstd, false) })
			if size.n == jsonSize {
				b.Run("codec=json+zstd", benchLoadJSON)
			}
		})
	}
}

// BenchmarkEngineSmallCheckpoint measures the checkpoint of a record
// pipeline with little state: a source position and a few counters, with
// the default codec (JSON) and compression, three checkpoints retained.
// codec=raw is one atomic small-file write of the manifest's size: temp
// file, write, fsync, rename, fsync the directory.
func BenchmarkEngineSmallCheckpoint(b *testing.B) {
	b.Run("codec=raw", benchRawSmallWrite)
	b.Run("codec=json+"+ckpt.DefaultCompression.String(), benchSmallCheckpoint)
}

// benchBlob is state that is one byte slice, saved with codec.Binary, so
// that the engine rather than a reflective encoder is measured.
type benchBlob struct {
	data []byte
	keep bool
}

func (s *benchBlob) MarshalBinary() ([]byte, error) { return s.data, nil }

// UnmarshalBinary copies, as the encoding.BinaryUnmarshaler contract asks
// in general; with keep set, it keeps the buffer, as codec.Binary allows:
// no copy of the state on load.
func (s *benchBlob) UnmarshalBinary(b []byte) error {
	if s.keep {
		s.data = b
		return nil
	}
	s.data = append(s.data[:0], b...)
	return nil
}

var csvCache struct {
	sync.Mutex
	m map[int][]byte
}

// benchCSV returns n bytes of CSV order records, the same for every call:
// realistic text that zstd compresses nearly fourfold (neither zeros nor
// noise). Benchmarks of one size share the slice; benchMutate changes a few
// digits of it in place.
func benchCSV(n int) []byte {
	csvCache.Lock()
	defer csvCache.Unlock()
	if b, ok := csvCache.m[n]; ok {
		return b
	}
	if csvCache.m == nil {
		csvCache.m = make(map[int][]byte)
	}
	b := genCSV(n)
	csvCache.m[n] = b
	return b
}

func genCSV(n int) []byte {
	countries := []string{"DE", "FR", "US", "GB", "NL", "ES", "IT", "PL", "SE", "JP", "BR", "CA"}
	statuses := []string{"shipped", "shipped", "shipped", "delivered", "delivered", "pending", "cancelled", "returned"}
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 0, n+256)
	b = append(b, "order_id,time,customer,country,sku,qty,unit_price,status\n"...)
	t := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for id := int64(10_000_000); len(b) < n; id++ {
		t = t.Add(time.Duration(r.IntN(3000)) * time.Millisecond)
		b = strconv.AppendInt(b, id, 10)
		b = append(b, ',')
		b = t.AppendFormat(b, time.RFC3339)
		b = append(b, ",cust-"...)
		b = strconv.AppendInt(b, int64(r.IntN(250_000)), 10)
		b = append(b, ',')
		b = append(b, countries[r.IntN(len(countries))]...)
		b = fmt.Appendf(b, ",SKU-%05d,%d,", r.IntN(40_000), 1+r.IntN(9))
		cents := 99 + r.IntN(30_000)
		b = strconv.AppendInt(b, int64(cents/100), 10)
		b = fmt.Appendf(b, ".%02d,", cents%100)
		b = append(b, statuses[r.IntN(len(statuses))]...)
		b = append(b, '\n')
	}
	return b[:n]
}

// benchMarks returns the offset of one digit in every MiB of data, so
// that benchMutate changes every chunk of the state, whatever the chunk
// size (8 MiB today). Unchanged chunks would be deduplicated against the
// previous checkpoint and not written at all.
func benchMarks(data []byte) []int {
	var marks []int
	for off := 0; off < len(data); off += mib {
		if i := bytes.IndexAny(data[off:min(off+mib, len(data))], "0123456789"); i >= 0 {
			marks = append(marks, off+i)
		}
	}
	return marks
}

// benchMutate makes the state of iteration i differ from that of i-1.
func benchMutate(data []byte, marks []int, i int) {
	for _, m := range marks {
		data[m] = '0' + byte(i%10)
	}
}

func benchLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func benchStore(b *testing.B) (*filestore.Store, string) {
	st, dir, _ := benchCountingStore(b)
	return st, dir
}

// benchCountingStore is benchStore on the operating system's file
// system, counting the fsyncs of files and directories made through it.
func benchCountingStore(b *testing.B) (*filestore.Store, string, *syncCounter) {
	b.Helper()
	dir := b.TempDir()
	fsys := &syncCounter{}
	st, err := filestore.Open(dir, filestore.Options{Logger: benchLogger(), FS: fsys})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st, dir, fsys
}

// syncCounter is the operating system's file system, counting fsyncs:
// of directories (SyncDir) and of the files CreateTemp opens, which are
// all the files a store writes objects through. Files opened otherwise
// (lock files) are the operating system's own, so that flock works.
type syncCounter struct {
	vfs.OS
	n atomic.Int64
}

func (c *syncCounter) CreateTemp(dir, pattern string) (vfs.File, error) {
	f, err := c.OS.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return countedFile{f, &c.n}, nil
}

func (c *syncCounter) SyncDir(dir string) error {
	c.n.Add(1)
	return c.OS.SyncDir(dir)
}

type countedFile struct {
	vfs.File
	n *atomic.Int64
}

func (f countedFile) Sync() error {
	f.n.Add(1)
	return f.File.Sync()
}

func benchOpen[S any](b *testing.B, st store.Store, cfg ckpt.Config) *ckpt.Job[S] {
	b.Helper()
	cfg.Backend = st
	cfg.NoSignals = true
	cfg.Logger = benchLogger()
	j, err := ckpt.Open[S](context.Background(), "bench", cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { j.Close() })
	return j
}

// writeDurable is the raw baseline of a large write: create, write,
// fsync, close, fsync the directory. It returns the file's path, a new
// name starting with prefix.
func writeDurable(fsys vfs.FS, dir, prefix string, data []byte) (string, error) {
	f, err := fsys.CreateTemp(dir, prefix+"*")
	if err != nil {
		return "", err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return f.Name(), durable.SyncDir(fsys, dir)
}

// evict drops every file below dir from the page cache, so that the next
// read comes from the disk. The files are fsynced, so their pages are clean
// and the kernel can drop them all.
func evict(b *testing.B, dir string) {
	b.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	})
	if err != nil {
		b.Fatal(err)
	}
}

// heapPeak samples the bytes of heap objects while a benchmark runs and
// keeps the largest excess over a base taken after a full GC. Garbage not
// yet collected counts too, so the peak is an upper bound of what is live.
type heapPeak struct {
	base, peak atomic.Uint64
	stop, done chan struct{}
}

func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func startHeapPeak() *heapPeak {
	h := &heapPeak{stop: make(chan struct{}), done: make(chan struct{})}
	h.rebase()
	go func() {
		defer close(h.done)
		t := time.NewTicker(500 * time.Microsecond)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-t.C:
				h.sample()
			}
		}
	}()
	return h
}

// rebase collects garbage and takes the live heap as the new base. Call
// it with the benchmark timer stopped.
func (h *heapPeak) rebase() {
	runtime.GC()
	h.base.Store(heapObjects())
}

func (h *heapPeak) sample() {
	v, base := heapObjects(), h.base.Load()
	if v > base && v-base > h.peak.Load() {
		h.peak.Store(v - base)
	}
}

// end stops sampling and returns the peak excess in MiB.
func (h *heapPeak) end() float64 {
	close(h.stop)
	<-h.done
	h.sample()
	return float64(h.peak.Load()) / mib
}

// benchClock stops and starts the benchmark timer and keeps, beside it,
// the CPU time (user and system, all threads) of the timed parts, so that
// a table can tell work done from waiting for the disk.
type benchClock struct {
	b         *testing.B
	cpu, mark time.Duration
}

// startClock is called just before the b.Loop loop.
func startClock(b *testing.B) *benchClock {
	b.ReportAllocs()
	return &benchClock{b: b, mark: cpuTime()}
}

func (c *benchClock) stop() {
	c.b.StopTimer()
	c.cpu += cpuTime() - c.mark
}

func (c *benchClock) start() {
	c.mark = cpuTime()
	c.b.StartTimer()
}

// end is called after the loop, which has stopped the timer.
func (c *benchClock) end() {
	c.stop()
	c.b.ReportMetric(float64(c.cpu)/float64(time.Millisecond)/float64(c.b.N), "cpu-ms/op")
}

func cpuTime() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchRawWrite(b *testing.B, data []byte) {
	dir := b.TempDir()
	fsys := &syncCounter{}
	b.SetBytes(int64(len(data)))
	prev := ""
	var syncs int64
	clk := startClock(b)
	for b.Loop() {
		before := fsys.n.Load()
		name, err := writeDurable(fsys, dir, "raw-", data)
		if err != nil {
			b.Fatal(err)
		}
		syncs = fsys.n.Load() - before
		// Like a checkpoint's retention, the previous copy goes, but
		// untimed: the baseline is the write alone.
		clk.stop()
		if prev != "" {
			if err := os.Remove(prev); err != nil {
				b.Fatal(err)
			}
		}
		prev = name
		clk.start()
	}
	clk.end()
	b.ReportMetric(float64(syncs), "fsyncs/ckpt")
	if fi, err := os.Stat(prev); err != nil || fi.Size() != int64(len(data)) {
		b.Fatalf("raw file: %v, %v; want %d bytes", fi, err, len(data))
	}
}

// benchConfig is the configuration of a job saving state with comp.
func benchConfig(comp codec.Compression) ckpt.Config {
	return ckpt.Config{Codec: codec.Binary{}, Compression: comp, Uncompressed: comp == codec.None}
}

func benchSaveBinary(b *testing.B, data []byte, comp codec.Compression) {
	st, dir, fsys := benchCountingStore(b)
	cfg := benchConfig(comp)
	cfg.Retain = 1
	j := benchOpen[benchBlob](b, st, cfg)
	j.State.data = data
	marks := benchMarks(data)
	ctx := context.Background()
	b.SetBytes(int64(len(data)))
	heap := startHeapPeak()
	var prev, cp *ckpt.Checkpoint
	var syncs int64
	clk := startClock(b)
	for i := 0; b.Loop(); i++ {
		clk.stop()
		benchMutate(data, marks, i)
		heap.rebase()
		clk.start()
		var err error
		before := fsys.n.Load()
		if cp, err = j.Checkpoint(ctx); err != nil {
			b.Fatal(err)
		}
		syncs = fsys.n.Load() - before
		clk.stop()
		if prev != nil {
			checkRewritten(b, prev, cp)
		}
		prev = cp
		clk.start()
	}
	clk.end()
	b.ReportMetric(heap.end(), "extra-heap-MiB")
	// Those of the last checkpoint, which removed the one before it: the
	// steady state (the first has no retention to apply).
	b.ReportMetric(float64(syncs), "fsyncs/ckpt")
	checkSaved(b, cp, len(data), dir)
}

// checkRewritten fails the benchmark if cp shares a chunk with prev: such
// a chunk is not written again, and the benchmark would time less work
// than a checkpoint of changed state does.
func checkRewritten(b *testing.B, prev, cp *ckpt.Checkpoint) {
	b.Helper()
	old := map[string]bool{}
	for _, c := range prev.State[0].Chunks {
		old[c.ID] = true
	}
	for _, c := range cp.State[0].Chunks {
		if old[c.ID] {
			b.Fatalf("checkpoint %d reuses chunk %s of checkpoint %d: the state did not change", cp.Seq, c.ID, prev.Seq)
		}
	}
}

// checkSaved checks that cp holds n raw bytes, that exactly its blobs are
// on disk (retention removed the previous ones), and reports its sizes.
func checkSaved(b *testing.B, cp *ckpt.Checkpoint, n int, dir string) {
	b.Helper()
	if cp.RawSize() != int64(n) {
		b.Fatalf("checkpoint %d holds %d raw bytes, want %d", cp.Seq, cp.RawSize(), n)
	}
	var onDisk int64
	err := filepath.WalkDir(filepath.Join(dir, "jobs", "bench", "blobs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		onDisk += fi.Size()
		return err
	})
	if err != nil && !os.IsNotExist(err) {
		b.Fatal(err)
	}
	var inline int64
	for _, c := range cp.State[0].Chunks {
		if c.Data != nil {
			inline += c.Stored
		}
	}
	if onDisk+inline != cp.StoredSize() {
		b.Fatalf("%d bytes of blobs on disk and %d inline, checkpoint %d says %d stored", onDisk, inline, cp.Seq, cp.StoredSize())
	}
	b.ReportMetric(float64(cp.StoredSize())/mib, "stored-MiB")
	b.ReportMetric(float64(cp.RawSize())/float64(cp.StoredSize()), "raw/stored")
}

func benchRawRead(b *testing.B, data []byte) {
	dir := b.TempDir()
	path, err := writeDurable(vfs.OS{}, dir, "raw-", data)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	var got []byte
	clk := startClock(b)
	for b.Loop() {
		clk.stop()
		evict(b, dir)
		clk.start()
		var err error
		if got, err = os.ReadFile(path); err != nil {
			b.Fatal(err)
		}
	}
	clk.end()
	if !bytes.Equal(got, data) {
		b.Fatal("read back different bytes")
	}
}

// benchLoadBinary measures ckpt.Load of data saved with comp; keep makes
// the state keep the buffer codec.Binary gives it instead of copying it.
func benchLoadBinary(b *testing.B, data []byte, comp codec.Compression, keep bool) {
	st, dir := benchStore(b)
	j := benchOpen[benchBlob](b, st, benchConfig(comp))
	j.State.data = data
	ctx := context.Background()
	cp, err := j.Checkpoint(ctx)
	if err != nil {
		b.Fatal(err)
	}
	j.Close()
	b.SetBytes(int64(len(data)))
	got := benchBlob{keep: keep}
	clk := startClock(b)
	for b.Loop() {
		clk.stop()
		evict(b, dir)
		got.data = nil // a resumed job starts with empty state
		clk.start()
		if err := ckpt.Load(ctx, st, cp, &got); err != nil {
			b.Fatal(err)
		}
	}
	clk.end()
	if !bytes.Equal(got.data, data) {
		b.Fatal("loaded state differs from the saved state")
	}
	checkSaved(b, cp, len(data), dir)
}

// benchAgg is one entry of the map-shaped state of the JSON reference
// line: aggregates per customer and product, as a group-by keeps them.
type benchAgg struct {
	Orders   int64  `json:"orders"`
	Units    int64  `json:"units"`
	Cents    int64  `json:"revenue_cents"`
	LastSeen string `json:"last_seen"`
}

var jsonCache struct {
	sync.Once
	m    map[string]benchAgg
	keys []string // sorted
}

// benchMap returns map-shaped state whose JSON encoding is about jsonSize
// bytes, and its keys in order.
func benchMap() (map[string]benchAgg, []string) {
	c := &jsonCache
	c.Do(func() {
		r := rand.New(rand.NewPCG(3, 4))
		c.m = make(map[string]benchAgg)
		t := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		// An entry encodes to about 100 bytes.
		for approx := 0; approx < jsonSize; approx += 100 {
			k := fmt.Sprintf("cust-%06d|SKU-%05d", r.IntN(1_000_000), r.IntN(40_000))
			u := int64(1 + r.IntN(9))
			c.m[k] = benchAgg{Orders: 1 + r.Int64N(50), Units: u, Cents: u * int64(99+r.IntN(30_000)), LastSeen: t.Add(time.Duration(r.Int64N(int64(300 * 24 * time.Hour)))).Format(time.RFC3339)}
		}
		c.keys = slices.Sorted(maps.Keys(c.m))
	})
	return c.m, c.keys
}

func benchSaveJSON(b *testing.B) {
	m, keys := benchMap()
	st, dir := benchStore(b)
	j := benchOpen[map[string]benchAgg](b, st, ckpt.Config{Retain: 1, Compression: codec.Zstd})
	j.State = m
	ctx := context.Background()
	heap := startHeapPeak()
	var prev, cp *ckpt.Checkpoint
	clk := startClock(b)
	for i := 0; b.Loop(); i++ {
		clk.stop()
		// One entry in every ~10,000 (one per MiB of JSON) changes, so
		// every chunk does.
		for k := 0; k < len(keys); k += 10_000 {
			e := m[keys[k]]
			e.Orders = int64(i)
			m[keys[k]] = e
		}
		heap.rebase()
		clk.start()
		var err error
		if cp, err = j.Checkpoint(ctx); err != nil {
			b.Fatal(err)
		}
		clk.stop()
		if prev != nil {
			checkRewritten(b, prev, cp)
		}
		prev = cp
		clk.start()
	}
	clk.end()
	b.ReportMetric(heap.end(), "extra-heap-MiB")
	// The encoding's size varies by a few bytes with the changed counts.
	b.SetBytes(cp.RawSize())
	checkSaved(b, cp, int(cp.RawSize()), dir)
}

func benchLoadJSON(b *testing.B) {
	m, _ := benchMap()
	st, dir := benchStore(b)
	j := benchOpen[map[string]benchAgg](b, st, ckpt.Config{Compression: codec.Zstd})
	j.State = m
	ctx := context.Background()
	cp, err := j.Checkpoint(ctx)
	if err != nil {
		b.Fatal(err)
	}
	j.Close()
	b.SetBytes(cp.RawSize())
	var got map[string]benchAgg
	clk := startClock(b)
	for b.Loop() {
		clk.stop()
		evict(b, dir)
		got = nil
		clk.start()
		if err := ckpt.Load(ctx, st, cp, &got); err != nil {
			b.Fatal(err)
		}
	}
	clk.end()
	if !maps.Equal(got, m) {
		b.Fatal("loaded state differs from the saved state")
	}
	checkSaved(b, cp, int(cp.RawSize()), dir)
}

// benchCounters is the state of a record pipeline that keeps little: a
// few counters beside its source position.
type benchCounters struct {
	Records   int64 `json:"records"`
	Malformed int64 `json:"malformed"`
	Sum       int64 `json:"sum"`
	MaxValue  int64 `json:"max_value"`
}

// benchOffset is a source position: a byte offset into an input file.
type benchOffset struct{ off int64 }

func (s *benchOffset) Position() (json.RawMessage, error) {
	return json.RawMessage(`{"file":"orders.csv","offset":` + strconv.FormatInt(s.off, 10) + `}`), nil
}

// smallPipeline takes the checkpoints of a record pipeline that keeps
// little state, in its own store.
type smallPipeline struct {
	j     *ckpt.Job[benchCounters]
	src   benchOffset
	dir   string
	n     int
	fsys  *syncCounter
	syncs int64 // fsyncs of the last checkpoint
}

func newSmallPipeline(b *testing.B) *smallPipeline {
	b.Helper()
	st, dir, fsys := benchCountingStore(b)
	p := &smallPipeline{j: benchOpen[benchCounters](b, st, ckpt.Config{}), dir: dir, fsys: fsys}
	p.j.Bind(&p.src, nil)
	return p
}

// checkpoint advances the pipeline by a batch of records and checkpoints.
func (p *smallPipeline) checkpoint(b *testing.B) *ckpt.Checkpoint {
	p.n++
	p.src.off += 65_536
	s := &p.j.State
	s.Records += 800
	s.Malformed += int64(p.n % 2)
	s.Sum += 123_456
	s.MaxValue = max(s.MaxValue, int64(p.n*7%1000))
	before := p.fsys.n.Load()
	cp, err := p.j.Checkpoint(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	p.syncs = p.fsys.n.Load() - before
	return cp
}

// manifest returns the bytes of checkpoint seq's manifest.
func (p *smallPipeline) manifest(b *testing.B, seq uint64) []byte {
	b.Helper()
	body, err := os.ReadFile(filepath.Join(p.dir, "jobs", "bench", "checkpoints", fmt.Sprintf("%020d", seq)))
	if err != nil {
		b.Fatal(err)
	}
	return body
}

func benchSmallCheckpoint(b *testing.B) {
	p := newSmallPipeline(b)
	var cp *ckpt.Checkpoint
	clk := startClock(b)
	for b.Loop() {
		cp = p.checkpoint(b)
	}
	clk.end()
	if cp.Seq != uint64(p.n) || len(cp.State) != 1 || len(cp.State[0].Chunks) != 1 || cp.State[0].Chunks[0].Data == nil {
		b.Fatalf("checkpoint %d after %d, state %+v: want the state inline in the manifest", cp.Seq, p.n, cp.State)
	}
	manifests, err := os.ReadDir(filepath.Join(p.dir, "jobs", "bench", "checkpoints"))
	if err != nil {
		b.Fatal(err)
	}
	if want := min(p.n, 3); len(manifests) != want {
		b.Fatalf("%d manifests on disk after %d checkpoints, want %d (Retain 3)", len(manifests), p.n, want)
	}
	if blobs, err := os.ReadDir(filepath.Join(p.dir, "jobs", "bench", "blobs")); len(blobs) != 0 {
		b.Fatalf("%d blobs on disk (%v): want none", len(blobs), err)
	}
	b.ReportMetric(float64(len(p.manifest(b, cp.Seq))), "manifest-B")
	b.ReportMetric(float64(p.syncs), "fsyncs/ckpt")
}

func benchRawSmallWrite(b *testing.B) {
	// The bytes of a manifest of benchSmallCheckpoint.
	p := newSmallPipeline(b)
	body := p.manifest(b, p.checkpoint(b).Seq)
	dir := b.TempDir()
	fsys := &syncCounter{}
	var syncs int64
	clk := startClock(b)
	for b.Loop() {
		before := fsys.n.Load()
		if err := writeAtomic(fsys, dir, "manifest", body); err != nil {
			b.Fatal(err)
		}
		syncs = fsys.n.Load() - before
	}
	clk.end()
	b.ReportMetric(float64(syncs), "fsyncs/ckpt")
	if got, err := os.ReadFile(filepath.Join(dir, "manifest")); err != nil || !bytes.Equal(got, body) {
		b.Fatalf("read back %d bytes, %v; want %d bytes", len(got), err, len(body))
	}
	b.ReportMetric(float64(len(body)), "manifest-B")
}

// writeAtomic is the raw baseline of a small durable write: temp file,
// write, fsync, close, rename, fsync the directory.
func writeAtomic(fsys vfs.FS, dir, name string, body []byte) error {
	f, err := fsys.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	if _, err := f.Write(body); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fsys.Rename(f.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	return durable.SyncDir(fsys, dir)
}
