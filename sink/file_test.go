package sink_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ckptdev/ckpt/sink"
)

// tailOf is the hash a FilePosition holds for output b: of its last
// 4 KiB (fewer if shorter).
func tailOf(b []byte) string {
	sum := sha256.Sum256(b[max(0, len(b)-4096):])
	return hex.EncodeToString(sum[:16])
}

func parsePos(t *testing.T, raw json.RawMessage) sink.FilePosition {
	t.Helper()
	var p sink.FilePosition
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatalf("position %s: %v", raw, err)
	}
	return p
}

// checkPos checks that pos is the position of output written: its length
// and the hash of its tail.
func checkPos(t *testing.T, raw json.RawMessage, written []byte) {
	t.Helper()
	p := parsePos(t, raw)
	if p.Length != int64(len(written)) || p.Tail != tailOf(written) {
		t.Fatalf("position %s, want length %d and tail %s", raw, len(written), tailOf(written))
	}
}

// checkFile checks that path holds exactly want.
func checkFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s holds %d bytes, want %d (first difference at %d)", path, len(got), len(want), firstDiff(got, want))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// randPool is random bytes that randBytes cuts pieces from, cheaper than
// drawing every byte (the tests write tens of megabytes).
var randPool = func() []byte {
	b := make([]byte, 8<<20)
	rand.NewChaCha8([32]byte{1}).Read(b)
	return b
}()

// randBytes returns n random bytes (n ≤ 8 MiB).
func randBytes(rng *rand.Rand, n int) []byte {
	off := rng.IntN(len(randPool) - n + 1)
	return append([]byte(nil), randPool[off:off+n]...)
}

func TestOpenFreshTruncates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out")
	if err := os.WriteFile(path, []byte("old content that must go"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := sink.OpenFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, path, nil)
	if _, err := w.WriteString("new"); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	checkFile(t, path, []byte("new"))
	// "null" is the beginning too.
	w, err = sink.OpenFile(path, json.RawMessage("null"))
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	checkFile(t, path, nil)
}

// TestWriteKinds writes through Write, WriteString and Buffered/Commit in
// pieces of every size class (small, around the 1 MiB flush threshold,
// larger) and checks the file and every position against what was
// written.
func TestWriteKinds(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 3))
	path := filepath.Join(t.TempDir(), "out")
	w, err := sink.OpenFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.Path() != path {
		t.Errorf("Path() = %s", w.Path())
	}
	var written []byte
	sizes := []int{0, 1, 7, 4095, 4096, 4097, 100_000, 1<<20 - 1, 1 << 20, 1<<20 + 1, 3 << 20}
	for i := range 40 {
		p := randBytes(rng, sizes[rng.IntN(len(sizes))])
		switch i % 3 {
		case 0:
			n, err := w.Write(p)
			if err != nil || n != len(p) {
				t.Fatalf("Write(%d bytes) = %d, %v", len(p), n, err)
			}
		case 1:
			n, err := w.WriteString(string(p))
			if err != nil || n != len(p) {
				t.Fatalf("WriteString(%d bytes) = %d, %v", len(p), n, err)
			}
		case 2:
			b := w.Buffered()
			b = append(b, p...)
			if err := w.Commit(b); err != nil {
				t.Fatalf("Commit: %v", err)
			}
		}
		written = append(written, p...)
		if rng.IntN(4) == 0 {
			pos, err := w.Flush()
			if err != nil {
				t.Fatal(err)
			}
			checkPos(t, pos, written)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Size() != int64(len(written)) {
				t.Fatalf("after Flush the file has %d bytes, want %d", fi.Size(), len(written))
			}
		}
	}
	pos, err := w.Flush()
	if err != nil {
		t.Fatal(err)
	}
	checkPos(t, pos, written)
	if err := w.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	checkFile(t, path, written)
}

// TestResume: a file reopened at a position is cut back to it exactly,
// keeps the tail it needs for later positions, and goes on from there.
func TestResume(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 4))
	for _, firstLen := range []int{0, 1, 4095, 4096, 4097, 10_000, 2<<20 + 5} {
		path := filepath.Join(t.TempDir(), "out")
		w, err := sink.OpenFile(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		first := randBytes(rng, firstLen)
		w.Write(first)
		pos, err := w.Flush()
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
		// Output after the checkpoint, on disk, then lost by a crash.
		w.Write(randBytes(rng, 5000))
		w.Flush()
		w.Close()

		w, err = sink.OpenFile(path, pos)
		if err != nil {
			t.Fatalf("reopen at %s: %v", pos, err)
		}
		checkFile(t, path, first)
		again, err := w.Flush()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, pos) {
			t.Errorf("position right after reopening is %s, was %s", again, pos)
		}
		second := randBytes(rng, 1+rng.IntN(6000))
		w.Write(second)
		all := append(append([]byte(nil), first...), second...)
		pos2, err := w.Flush()
		if err != nil {
			t.Fatal(err)
		}
		checkPos(t, pos2, all)
		w.Close()
		checkFile(t, path, all)
		// And the later position reopens too.
		w, err = sink.OpenFile(path, pos2)
		if err != nil {
			t.Fatalf("reopen at the second position: %v", err)
		}
		w.Close()
		checkFile(t, path, all)
	}
}

func TestResumeRefused(t *testing.T) {
	content := bytes.Repeat([]byte("0123456789abcdef"), 1000) // 16000 bytes
	tests := []struct {
		name   string
		change func(t *testing.T, path string)
		says   string
	}{
		{"missing", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, "no longer exists"},
		{"shorter", func(t *testing.T, path string) {
			if err := os.Truncate(path, 15999); err != nil {
				t.Fatal(err)
			}
		}, "shorter"},
		{"empty", func(t *testing.T, path string) {
			if err := os.WriteFile(path, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "shorter"},
		{"byte just before the position", func(t *testing.T, path string) { patch(t, path, 15999) }, "differs"},
		{"byte 4 KiB before the position", func(t *testing.T, path string) { patch(t, path, 16000-4096) }, "differs"},
		{"replaced, same length", func(t *testing.T, path string) {
			if err := os.WriteFile(path, bytes.Repeat([]byte("x"), 20000), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "differs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out")
			w, err := sink.OpenFile(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(content)
			pos, err := w.Flush()
			if err != nil {
				t.Fatal(err)
			}
			w.Write([]byte("after the checkpoint"))
			w.Close()
			tt.change(t, path)
			before, _ := os.ReadFile(path)
			w, err = sink.OpenFile(path, pos)
			if err == nil {
				w.Close()
				t.Fatalf("reopened a changed output")
			}
			if !errors.Is(err, sink.ErrOutputChanged) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("error %q: want ErrOutputChanged naming %s and saying %q", err, path, tt.says)
			}
			// A refused output is left as it is.
			after, _ := os.ReadFile(path)
			if !bytes.Equal(before, after) {
				t.Errorf("the refused output was changed")
			}
		})
	}
	t.Run("bad position", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "out")
		os.WriteFile(path, content, 0o644)
		for _, pos := range []string{`{`, `{"length":-1}`, `[]`} {
			if w, err := sink.OpenFile(path, json.RawMessage(pos)); err == nil {
				w.Close()
				t.Errorf("position %s accepted", pos)
			}
		}
		checkFile(t, path, content)
	})
}

// patch flips one byte of path at off.
func patch(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x20
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestSync: after Sync the flushed output is in the file, read through
// another descriptor; Sync may run while the job writes; a cancelled
// context is reported.
func TestSync(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "out")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	w, err := sink.OpenFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var written []byte
	for i := range 20 {
		line := []byte(strings.Repeat("x", i*1000) + "\n")
		w.Write(line)
		written = append(written, line...)
		pos, err := w.Flush()
		if err != nil {
			t.Fatal(err)
		}
		// Sync runs beside more writes, as a background checkpoint does.
		var wg sync.WaitGroup
		var syncErr error
		wg.Go(func() { syncErr = w.Sync(context.Background()) })
		w.Write([]byte("pending\n"))
		wg.Wait()
		if syncErr != nil {
			t.Fatal(syncErr)
		}
		checkPos(t, pos, written)
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(got, written) {
			t.Fatalf("after Sync the file does not hold the flushed output")
		}
		written = append(written, "pending\n"...)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Sync(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Sync with a cancelled context: %v", err)
	}
}

func TestCloseTwice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out")
	w, err := sink.OpenFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString("x")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	checkFile(t, path, []byte("x"))
}
