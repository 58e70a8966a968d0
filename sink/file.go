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
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/ckptdev/ckpt/internal/durable"
)

// ErrOutputChanged: the output is not what the checkpoint left (removed,
// shorter, or different near the checkpoint's end), so resuming into it
// would not give the result of one uninterrupted run.
var ErrOutputChanged = errors.New("output changed since the checkpoint")

// FilePosition is a file sink's position in a checkpoint: the durable
// length of the output and a hash of the bytes just before it, to detect
// an output that was replaced or edited since.
type FilePosition struct {
	Length int64  `json:"length"`
	Tail   string `json:"tail"` // SHA-256 (first 16 bytes, hex) of the last ≤ 4 KiB before Length
}

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
	f    *os.File
	buf  []byte
	n    int64  // bytes handed to the OS
	tail []byte // the last ≤ tailSpan bytes handed to the OS
	err  error  // the failed write, if any

	syncMu    sync.Mutex
	syncErr   error // the failed fsync, if any
	dirSynced bool  // the file's directory entry is durable
}

// OpenFile opens the output file path for a job: created (or truncated)
// when pos is nil, the job starting from the beginning; otherwise checked
// against pos and truncated back to its length.
func OpenFile(path string, pos json.RawMessage) (*File, error) {
	if len(pos) == 0 || string(pos) == "null" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return nil, fmt.Errorf("sink: %w", err)
		}
		return &File{path: path, f: f, buf: make([]byte, 0, maxBuffered)}, nil
	}
	var p FilePosition
	if err := json.Unmarshal(pos, &p); err != nil || p.Length < 0 {
		return nil, fmt.Errorf("sink: bad output position in checkpoint: %s", pos)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("sink: %w: %s no longer exists (the checkpoint has %d bytes of it)", ErrOutputChanged, path, p.Length)
		}
		return nil, fmt.Errorf("sink: %w", err)
	}
	fail := func(err error) (*File, error) { f.Close(); return nil, err }
	fi, err := f.Stat()
	if err != nil {
		return fail(fmt.Errorf("sink: %w", err))
	}
	if fi.Size() < p.Length {
		return fail(fmt.Errorf("sink: %w: %s is %d bytes, shorter than the %d bytes the checkpoint made durable", ErrOutputChanged, path, fi.Size(), p.Length))
	}
	tail := make([]byte, min(p.Length, tailSpan))
	if _, err := f.ReadAt(tail, p.Length-int64(len(tail))); err != nil {
		return fail(fmt.Errorf("sink: read %s: %w", path, err))
	}
	if tailHash(tail) != p.Tail {
		return fail(fmt.Errorf("sink: %w: %s differs from what the checkpoint wrote", ErrOutputChanged, path))
	}
	// Roll back what was written after the checkpoint. The truncation need
	// not be durable now: if it is lost in a crash, the next resume does it
	// again from the same checkpoint.
	if err := f.Truncate(p.Length); err != nil {
		return fail(fmt.Errorf("sink: truncate %s to %d: %w", path, p.Length, err))
	}
	if _, err := f.Seek(p.Length, io.SeekStart); err != nil {
		return fail(fmt.Errorf("sink: %w", err))
	}
	return &File{path: path, f: f, buf: make([]byte, 0, maxBuffered), n: p.Length, tail: tail, dirSynced: true}, nil
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
		if err := w.writeOS(p); err != nil {
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
	err := w.writeOS(w.buf)
	w.buf = w.buf[:0]
	return err
}

func (w *File) writeOS(p []byte) error {
	if _, err := w.f.Write(p); err != nil {
		// Some of p may be in the file and the rest is not: the output
		// after byte n is unknown, and stays so.
		w.err = fmt.Errorf("sink: write %s: %w (output from byte %d on is lost; resume from the last checkpoint)", w.path, err, w.n)
		return w.err
	}
	w.n += int64(len(p))
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
func (w *File) Flush() (json.RawMessage, error) {
	if err := w.flush(); err != nil {
		return nil, err
	}
	w.syncMu.Lock()
	err := w.syncErr
	w.syncMu.Unlock()
	if err != nil {
		return nil, err
	}
	return json.Marshal(FilePosition{Length: w.n, Tail: tailHash(w.tail)})
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
		w.syncErr = fmt.Errorf("sink: fsync %s: %w", w.path, err)
		return w.syncErr
	}
	if !w.dirSynced {
		if err := durable.SyncDir(filepath.Dir(w.path)); err != nil {
			return fmt.Errorf("sink: fsync directory of %s: %w", w.path, err)
		}
		w.dirSynced = true
	}
	return nil
}

// Close flushes buffered output and closes the file. It does not make the
// output durable: a checkpoint (Flush, Sync) does.
func (w *File) Close() error {
	if w.f == nil {
		return nil
	}
	err := w.flush()
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
