package sink_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/ckptdev/ckpt/sink"
)

// smallDisk mounts a tmpfs of size bytes on a new temporary directory and
// returns it; the test skips if mounting is not permitted.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a tmpfs to fill (needs root or CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fill writes a file of zeros into dir until the disk is full.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return path
		}
	}
}

// TestDiskFull writes output to a disk that fills up, in each of the ways
// the output reaches the disk, and checks that the failure is reported
// with ENOSPC by the call that hit it and by every later Write, Flush and
// Close, even after space is freed: a position returned after a lost write
// would make a checkpoint that silently misses output.
func TestDiskFull(t *testing.T) {
	ways := []struct {
		name  string
		write func(w *sink.File, p []byte) error
	}{
		{"Write then Flush", func(w *sink.File, p []byte) error {
			if _, err := w.Write(p); err != nil {
				return err
			}
			_, err := w.Flush()
			return err
		}},
		{"large Write", func(w *sink.File, p []byte) error {
			_, err := w.Write(bytes.Repeat(p, 2<<20/len(p)+1))
			return err
		}},
		{"Commit past the threshold", func(w *sink.File, p []byte) error {
			b := w.Buffered()
			for len(b) < 1<<20 {
				b = append(b, p...)
			}
			return w.Commit(b)
		}},
		{"WriteString past the threshold", func(w *sink.File, p []byte) error {
			for range 2<<20/len(p) + 1 {
				if _, err := w.WriteString(string(p)); err != nil {
					return err
				}
			}
			return nil
		}},
	}
	for _, way := range ways {
		t.Run(way.name, func(t *testing.T) {
			dir := smallDisk(t, "1m")
			path := filepath.Join(dir, "out")
			w, err := sink.OpenFile(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			good := bytes.Repeat([]byte("checkpointed\n"), 100)
			w.Write(good)
			pos, err := w.Flush()
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Sync(context.Background()); err != nil {
				t.Fatal(err)
			}
			filler := fill(t, dir)

			p := bytes.Repeat([]byte("lost? "), 700)
			var firstErr error
			for i := 0; i < 200 && firstErr == nil; i++ {
				firstErr = way.write(w, p)
			}
			if firstErr == nil {
				if _, firstErr = w.Flush(); firstErr == nil {
					firstErr = w.Sync(context.Background())
				}
			}
			if !errors.Is(firstErr, syscall.ENOSPC) {
				t.Fatalf("writing to a full disk: %v, want ENOSPC", firstErr)
			}

			// Space comes back; the output must not pretend nothing was
			// lost.
			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write([]byte("more\n")); !errors.Is(err, syscall.ENOSPC) {
				t.Errorf("Write after the failure: %v, want the ENOSPC again", err)
			}
			if pos2, err := w.Flush(); !errors.Is(err, syscall.ENOSPC) {
				t.Errorf("Flush after the failure: %s, %v; want the ENOSPC again", pos2, err)
			}
			// Sync may succeed: what was flushed before the failure is
			// whole, and a checkpoint in flight may make it durable.
			if err := w.Close(); !errors.Is(err, syscall.ENOSPC) {
				t.Errorf("Close after the failure: %v, want the ENOSPC again", err)
			}

			// The last checkpoint's position still reopens the output.
			w2, err := sink.OpenFile(path, pos)
			if err != nil {
				t.Fatalf("reopen at the last good position: %v", err)
			}
			w2.Close()
			checkFile(t, path, good)
		})
	}
}
