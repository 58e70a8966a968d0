// Package sink holds outputs whose position is part of every checkpoint, so
// that output written after the last checkpoint is never visible twice: on
// resume, a sink is rolled back to the position the checkpoint recorded.
package sink

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/ckptdev/ckpt/internal/durable"
	"github.com/ckptdev/ckpt/internal/vfs"
)

var (
	// ErrOutputChanged: the output is not what the checkpoint left
	// (removed, shorter or longer, or other bytes), so resuming into it
	// would not give the result of one uninterrupted run.
	ErrOutputChanged = errors.New("output changed since the checkpoint")
	// ErrOutputBusy: another writer holds the output file: another job
	// (or the same job in another store) is writing it.
	ErrOutputBusy = errors.New("output is being written by another job")
	// ErrNotResumable: the output is not a regular file (a terminal,
	// /dev/null, a named pipe, a device), so it cannot be truncated back
	// to a checkpoint: a resumed job would write its output twice.
	ErrNotResumable = errors.New("output cannot be resumed")
)

// FilePosition is a file sink's position in a checkpoint: the durable
// length of the output, a hash of the bytes just before it, and a CRC of
// all of it, to detect an output that was replaced or edited since.
type FilePosition struct {
	Length int64  `json:"length"`
	Tail   string `json:"tail"` // SHA-256 (first 16 bytes, hex) of the last ≤ 4 KiB before Length
	// CRC is the CRC-32C (hex) of the Length bytes; empty in positions
	// written before it was recorded.
	CRC string `json:"crc32c,omitempty"`
	// Compression is the output's compression ("gzip", "zstd"), empty
	// for a plain file: Length counts compressed bytes, and ends a gzip
	// member or zstd frame.
	Compression Compression `json:"compression,omitempty"`
}

// FileOptions are the optional parts of opening a file sink.
type FileOptions struct {
	// Refuse, if set, is called with the opened file's identity before
	// anything in it is changed; an error from it is returned, and the
	// file is left as it was. Pipelines refuse an output that is one of
	// their input files with it.
	Refuse func(fs.FileInfo) error
	// FS is the file system the output is in. Nil means the operating
	// system's; tests give a vfs.MemFS (through crashtest.FS) to find
	// what a power loss would undo. The writer's lock is flock(2) on the
	// operating system's file system, and held within the process on a
	// MemFS.
	FS vfs.FS
	// Compression compresses the output (see Compression): every
	// checkpoint ends a gzip member or zstd frame, so that the file cut
	// at any checkpoint's length is whole. Empty: a plain file.
	Compression Compression
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

const (
	tailSpan    = 4 << 10
	flushAt     = 1 << 20 // buffered bytes that make Write hand data to the OS
	maxBuffered = flushAt + 64<<10
)

// File is an append-only output file. Writes are buffered; Flush hands
// them to the OS and Sync makes them durable. It is used from one
// goroutine, except that Sync may run concurrently with Write.
//
// A failed write or fsync is final: part of the output may be lost, so
// every later Write, Flush and Close (and, after a failed fsync, Sync)
// returns the same error, and no position is ever returned that claims
// output which is not in the file. The job resumes from its last
// checkpoint instead.
type File struct {
	path string
	fs   vfs.FS
	// f is an *os.File for the operating system's file system (vfs.OS
	// returns one unwrapped), so that a flush is one write(2) and no more.
	f    vfs.File
	buf  []byte
	n    int64       // bytes handed to the OS
	crc  uint32      // CRC-32C of the n bytes
	tail []byte      // the last ≤ tailSpan bytes handed to the OS
	err  error       // the failed write, if any
	z    *compressor // nil for a plain file

	syncMu    sync.Mutex
	syncErr   error // the failed fsync, if any
	dirSynced bool  // the file's directory entry is durable
}

// OpenFile opens the output file path for a job: created (or truncated)
// when pos is nil, the job starting from the beginning; otherwise checked
// against pos and truncated back to its length.
//
// The file must be a regular file (ErrNotResumable otherwise, before
// anything is opened or written). The File holds an exclusive flock(2)
// on it until Close, so that a second writer (another job, or a job of
// the same name in another store) fails with ErrOutputBusy instead of
// interleaving its output with this one's.
func OpenFile(path string, pos json.RawMessage) (*File, error) {
	return OpenFileWith(path, pos, FileOptions{})
}

// OpenFileWith is OpenFile with options.
func OpenFileWith(path string, pos json.RawMessage, opts FileOptions) (*File, error) {
	fresh := len(pos) == 0 || string(pos) == "null"
	var p FilePosition
	if !fresh {
		if err := json.Unmarshal(pos, &p); err != nil || p.Length < 0 {
			return nil, fmt.Errorf("bad output position in checkpoint: %s", pos)
		}
	}
	fsys := vfs.Or(opts.FS)
	if err := checkPath(fsys, path); err != nil {
		return nil, err
	}
	flags := os.O_RDWR
	if fresh {
		flags |= os.O_CREATE
	}
	f, err := fsys.OpenFile(path, flags, 0o644)
	if err != nil {
		if !fresh && errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s no longer exists (the checkpoint has %d bytes of it)", ErrOutputChanged, path, p.Length)
		}
		return nil, err
	}
	fail := func(err error) (*File, error) { f.Close(); return nil, err }
	fi, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	if err := regular(path, fi); err != nil {
		return fail(err)
	}
	if opts.Refuse != nil {
		if err := opts.Refuse(fi); err != nil {
			return fail(err)
		}
	}
	if err := vfs.TryLock(f); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fail(fmt.Errorf("%w: %s is locked by another writer; one output has one writer: wait for the other job, or write to another file", ErrOutputBusy, path))
		}
		return fail(fmt.Errorf("lock the output: %w", err))
	}
	if !fresh && p.Compression != opts.Compression {
		return fail(fmt.Errorf("%w: the checkpoint wrote %s as %s, this run would write it as %s", ErrOutputChanged, path, p.Compression.name(), opts.Compression.name()))
	}
	w := &File{path: path, fs: fsys, f: f, buf: make([]byte, 0, maxBuffered)}
	if opts.Compression != "" {
		if w.z, err = newCompressor(opts.Compression); err != nil {
			return fail(err)
		}
	}
	if fresh {
		if err := f.Truncate(0); err != nil {
			return fail(fmt.Errorf("truncate %s: %w", path, err))
		}
		return w, nil
	}
	if fi.Size() < p.Length {
		return fail(fmt.Errorf("%w: %s is %d bytes, shorter than the %d bytes the checkpoint made durable", ErrOutputChanged, path, fi.Size(), p.Length))
	}
	tail, crc, err := check(f, path, p, p.Length <= wholeCheckMax)
	if err != nil {
		return fail(err)
	}
	// Roll back what was written after the checkpoint. The truncation need
	// not be durable now: if it is lost in a crash, the next resume does it
	// again from the same checkpoint.
	if err := f.Truncate(p.Length); err != nil {
		return fail(fmt.Errorf("truncate %s to %d: %w", path, p.Length, err))
	}
	if _, err := f.Seek(p.Length, io.SeekStart); err != nil {
		return fail(err)
	}
	w.n, w.crc, w.tail, w.dirSynced = p.Length, crc, tail, true
	return w, nil
}

// CheckPath refuses, with ErrNotResumable, an output path that cannot be
// resumed: one under /dev or /proc (/dev/stdout names whatever the
// process was given, which a rerun may not be given again), or an
// existing file that is not a regular file. It opens nothing: a named
// pipe is refused without blocking. OpenFile checks it first; a caller
// may check it before any other work.
func CheckPath(path string) error { return checkPath(vfs.Default(), path) }

func checkPath(fsys vfs.FS, path string) error {
	if abs, err := filepath.Abs(path); err == nil && (strings.HasPrefix(abs, "/dev/") || strings.HasPrefix(abs, "/proc/")) {
		return fmt.Errorf("%w: %s names a stream or device of the process, not a file that a resumed job would find again (a resumed job truncates its output back to the last checkpoint): write to a file", ErrNotResumable, path)
	}
	if fi, err := fsys.Stat(path); err == nil {
		return regular(path, fi)
	}
	return nil
}

// regular refuses an output that is not a regular file.
func regular(path string, fi fs.FileInfo) error {
	if fi.Mode().IsRegular() {
		return nil
	}
	what := "not a regular file"
	switch m := fi.Mode(); {
	case m.IsDir():
		what = "a directory"
	case m&fs.ModeNamedPipe != 0:
		what = "a named pipe"
	case m&fs.ModeCharDevice != 0:
		what = "a character device (a terminal, /dev/null, /dev/stdout)"
	case m&fs.ModeDevice != 0:
		what = "a device"
	case m&fs.ModeSocket != 0:
		what = "a socket"
	}
	return fmt.Errorf("%w: %s is %s; a resumed job truncates its output back to the last checkpoint, which needs a regular file: write to a file", ErrNotResumable, path, what)
}

// wholeCheckMax is the largest output that a resume reads whole to check
// its CRC: past it, resuming would cost time in proportion to the output
// (seconds for gigabytes), and the resume checks the length and the last
// 4 KiB only, going on from the CRC the checkpoint recorded. A finished
// job's output is always checked whole (VerifyFile).
const wholeCheckMax = 64 << 20

// check checks the first p.Length bytes of f against p: the hash of the
// last 4 KiB and, where p has it and whole is set, the CRC of all of
// them, which it reads. It returns the last 4 KiB and the CRC, to go on
// from: the one read, or without whole the one p recorded.
func check(f vfs.File, path string, p FilePosition, whole bool) ([]byte, uint32, error) {
	if !whole {
		// A position written before the CRC was recorded has none to go
		// on from: then the output is read whole after all.
		if c, err := strconv.ParseUint(p.CRC, 16, 32); err == nil {
			tail, err := checkTail(f, path, p)
			return tail, uint32(c), err
		}
	}
	var crc uint32
	buf := make([]byte, 1<<20)
	for off := int64(0); off < p.Length; {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), p.Length-off)], off)
		crc = crc32.Update(crc, crcTable, buf[:n])
		off += int64(n)
		if err != nil && off < p.Length {
			return nil, 0, fmt.Errorf("read %s: %w", path, err)
		}
	}
	tail, err := checkTail(f, path, p)
	if err != nil {
		return nil, 0, err
	}
	if p.CRC != "" && crcHex(crc) != p.CRC {
		return nil, 0, fmt.Errorf("%w: %s differs from what the checkpoint wrote (its first %d bytes have another CRC-32C)", ErrOutputChanged, path, p.Length)
	}
	return tail, crc, nil
}

// checkTail checks the last 4 KiB before p.Length against p's hash, and
// returns them.
func checkTail(f vfs.File, path string, p FilePosition) ([]byte, error) {
	tail := make([]byte, min(p.Length, tailSpan))
	if _, err := f.ReadAt(tail, p.Length-int64(len(tail))); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if tailHash(tail) != p.Tail {
		return nil, fmt.Errorf("%w: %s differs from what the checkpoint wrote, in its last %d bytes", ErrOutputChanged, path, len(tail))
	}
	return tail, nil
}

// VerifyFile checks, changing nothing, that the file at path is exactly
// what a job's final checkpoint at pos left: a regular file of that
// length with those bytes (by the hash of its end and, where pos records
// it, the CRC of all of it). A job that finished checks its output with
// it before saying it is complete.
func VerifyFile(path string, pos json.RawMessage) error {
	return VerifyFileWith(path, pos, FileOptions{})
}

// VerifyFileWith is VerifyFile with options; only FS is used.
func VerifyFileWith(path string, pos json.RawMessage, opts FileOptions) error {
	var p FilePosition
	if err := json.Unmarshal(pos, &p); err != nil || p.Length < 0 {
		return fmt.Errorf("bad output position in checkpoint: %s", pos)
	}
	f, err := vfs.Or(opts.FS).Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: %s no longer exists (the job wrote %d bytes to it)", ErrOutputChanged, path, p.Length)
		}
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if err := regular(path, fi); err != nil {
		return err
	}
	if fi.Size() != p.Length {
		return fmt.Errorf("%w: %s is %d bytes; the job wrote %d", ErrOutputChanged, path, fi.Size(), p.Length)
	}
	_, _, err = check(f, path, p, true)
	return err
}

func crcHex(c uint32) string { return strconv.FormatUint(uint64(c), 16) }

// Stat returns the output file's identity, to compare with os.SameFile.
func (w *File) Stat() (fs.FileInfo, error) {
	if w.f == nil {
		return nil, os.ErrClosed
	}
	return w.f.Stat()
}

// Path returns the file's path.
func (w *File) Path() string { return w.path }

// Write buffers p.
func (w *File) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if len(w.buf)+len(p) > flushAt && len(w.buf) > 0 {
		if err := w.flush(); err != nil {
			return 0, err
		}
	}
	if len(p) > flushAt {
		if err := w.emit(p); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

// WriteString buffers s.
func (w *File) WriteString(s string) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if len(w.buf)+len(s) > flushAt && len(w.buf) > 0 {
		if err := w.flush(); err != nil {
			return 0, err
		}
	}
	w.buf = append(w.buf, s...)
	return len(s), nil
}

// Buffered returns the buffer to append to directly, the fastest way to
// write. Append, then call Commit with the extended slice:
//
//	b := out.Buffered()
//	b = append(b, line...)
//	out.Commit(b)
func (w *File) Buffered() []byte { return w.buf }

// Commit takes back the slice that Buffered returned, extended by appends.
func (w *File) Commit(b []byte) error {
	w.buf = b
	if w.err != nil {
		return w.err
	}
	if len(w.buf) >= flushAt {
		return w.flush()
	}
	return nil
}

func (w *File) flush() error {
	if w.err != nil {
		return w.err
	}
	if len(w.buf) == 0 {
		return nil
	}
	err := w.emit(w.buf)
	w.buf = w.buf[:0]
	return err
}

// emit hands p to the OS, compressed if the output is.
func (w *File) emit(p []byte) error {
	if w.z == nil {
		return w.writeOS(p)
	}
	return w.compress(p)
}

func (w *File) writeOS(p []byte) error {
	if _, err := w.f.Write(p); err != nil {
		// Some of p may be in the file and the rest is not: the output
		// after byte n is unknown, and stays so.
		w.err = fmt.Errorf("write %s: %w (output from byte %d on is lost; resume from the last checkpoint)", w.path, err, w.n)
		return w.err
	}
	w.n += int64(len(p))
	w.crc = crc32.Update(w.crc, crcTable, p)
	if len(p) >= tailSpan {
		w.tail = append(w.tail[:0], p[len(p)-tailSpan:]...)
	} else {
		w.tail = append(w.tail, p...)
		if len(w.tail) > tailSpan {
			w.tail = append(w.tail[:0], w.tail[len(w.tail)-tailSpan:]...)
		}
	}
	return nil
}

// Flush hands buffered output to the OS and returns the position covering
// all of it (a FilePosition).
//
// A compressed output ends its gzip member or zstd frame first, so that
// the file cut at the position's length is a whole compressed file.
func (w *File) Flush() (json.RawMessage, error) {
	if err := w.flush(); err != nil {
		return nil, err
	}
	if err := w.endMember(); err != nil {
		return nil, err
	}
	w.syncMu.Lock()
	err := w.syncErr
	w.syncMu.Unlock()
	if err != nil {
		return nil, err
	}
	p := FilePosition{Length: w.n, Tail: tailHash(w.tail), CRC: crcHex(w.crc)}
	if w.z != nil {
		p.Compression = w.z.kind
	}
	return json.Marshal(p)
}

// Sync makes everything flushed so far durable, the file's directory
// entry included the first time.
func (w *File) Sync(ctx context.Context) error {
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	if w.syncErr != nil {
		return w.syncErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := w.f.Sync(); err != nil {
		// After a failed fsync the kernel may have dropped the dirty pages
		// and cleared the error, so that the next fsync succeeds over lost
		// output: the failure must stay.
		w.syncErr = fmt.Errorf("fsync %s: %w", w.path, err)
		return w.syncErr
	}
	if !w.dirSynced {
		if err := durable.SyncDir(w.fs, filepath.Dir(w.path)); err != nil {
			return fmt.Errorf("fsync the directory of %s: %w", w.path, err)
		}
		w.dirSynced = true
	}
	return nil
}

// Close flushes buffered output and closes the file, which releases its
// lock. It does not make the output durable: a checkpoint (Flush, Sync)
// does.
func (w *File) Close() error {
	if w.f == nil {
		return nil
	}
	err := w.flush()
	if err == nil && w.z != nil && w.z.open {
		err = w.endMember()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	return err
}

func tailHash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}
