package sink_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ckptdev/ckpt/sink"
)

// written opens path fresh, writes content and returns the position.
func written(t *testing.T, path string, content []byte) []byte {
	t.Helper()
	w, err := sink.OpenFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(content); err != nil {
		t.Fatal(err)
	}
	pos, err := w.Flush()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return pos
}

// TestOutputsThatCannotBeResumedAreRefused: an output that cannot be
// truncated back to a checkpoint is refused before anything is opened.
func TestOutputsThatCannotBeResumedAreRefused(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, says string }{
		{"/dev/null", "device"},
		{"/dev/stdout", "stream"},
		{"/proc/self/fd/1", "stream"},
		{fifo, "named pipe"},
		{t.TempDir(), "directory"},
	} {
		// A FIFO with no reader would block the open: the refusal must
		// come first.
		w, err := sink.OpenFile(tc.path, nil)
		if !errors.Is(err, sink.ErrNotResumable) || !strings.Contains(err.Error(), tc.says) {
			if w != nil {
				w.Close()
			}
			t.Errorf("OpenFile(%s): %v, want ErrNotResumable saying %q", tc.path, err, tc.says)
		}
	}
}

// TestOneWriterPerOutput: while one File has the output open, a second
// (another job, whatever its name or store) is refused, also through a
// hard link or a symbolic link; once it is closed, the output is free.
func TestOneWriterPerOutput(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out")
	w, err := sink.OpenFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("first\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	hard, soft := filepath.Join(dir, "hard"), filepath.Join(dir, "soft")
	if err := os.Link(path, hard); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(path, soft); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, hard, soft} {
		if w2, err := sink.OpenFile(p, nil); !errors.Is(err, sink.ErrOutputBusy) {
			if w2 != nil {
				w2.Close()
			}
			t.Errorf("second writer on %s: %v, want ErrOutputBusy", p, err)
		}
	}
	if b, _ := os.ReadFile(path); string(b) != "first\n" {
		t.Errorf("the refused writer changed the output: %q", b)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w2, err := sink.OpenFile(path, nil)
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	w2.Close()
}

// TestRefuseComesBeforeTruncation: a file the caller refuses (an input)
// is left as it was.
func TestRefuseComesBeforeTruncation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.csv")
	if err := os.WriteFile(path, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	no := errors.New("no")
	_, err := sink.OpenFileWith(path, nil, sink.FileOptions{Refuse: func(fs.FileInfo) error { return no }})
	if !errors.Is(err, no) {
		t.Fatalf("OpenFileWith: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "precious\n" {
		t.Errorf("refused file changed: %q", b)
	}
}

// TestEditBeforeTheTailIsDetected: an edit anywhere in the output, not
// only in its last 4 KiB, is caught at resume and by VerifyFile.
func TestEditBeforeTheTailIsDetected(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out")
	content := bytes.Repeat([]byte("0123456789abcdef\n"), 4096) // 68 KiB
	pos := written(t, path, content)
	if err := sink.VerifyFile(path, pos); err != nil {
		t.Fatalf("VerifyFile on the intact output: %v", err)
	}
	patch(t, path, 100)
	if err := sink.VerifyFile(path, pos); !errors.Is(err, sink.ErrOutputChanged) {
		t.Errorf("VerifyFile after an edit at byte 100: %v, want ErrOutputChanged", err)
	}
	if w, err := sink.OpenFile(path, pos); !errors.Is(err, sink.ErrOutputChanged) {
		if w != nil {
			w.Close()
		}
		t.Errorf("resume after an edit at byte 100: %v, want ErrOutputChanged", err)
	}
}

// TestVerifyFile: a finished output that was deleted, truncated,
// appended to or replaced is reported; nothing is changed.
func TestVerifyFile(t *testing.T) {
	content := []byte("a\nb\nc\n")
	for _, tc := range []struct {
		name   string
		change func(path string) error
		says   string
	}{
		{"deleted", os.Remove, "no longer exists"},
		{"truncated", func(p string) error { return os.Truncate(p, 2) }, "is 2 bytes; the job wrote 6"},
		{"emptied", func(p string) error { return os.WriteFile(p, nil, 0o644) }, "is 0 bytes"},
		{"appended to", func(p string) error { return os.WriteFile(p, append(content, 'd'), 0o644) }, "is 7 bytes"},
		{"replaced", func(p string) error { return os.WriteFile(p, []byte("x\ny\nz\n"), 0o644) }, "differs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out")
			pos := written(t, path, content)
			if err := tc.change(path); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(path)
			err := sink.VerifyFile(path, pos)
			if !errors.Is(err, sink.ErrOutputChanged) || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("VerifyFile: %v, want ErrOutputChanged saying %q", err, tc.says)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Errorf("VerifyFile changed the file")
			}
		})
	}
}

// TestResumeOfALargeOutputReadsItsTail: resuming an output of more than
// 64 MiB checks its length and last 4 KiB, and goes on from the CRC the
// checkpoint recorded, instead of reading it whole (which would make a
// resume cost seconds per gigabyte); the finished output is still checked
// whole. An edit at byte 100 therefore passes the resume but not
// VerifyFile, and an intact output resumed and written on verifies.
func TestResumeOfALargeOutputReadsItsTail(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 65 MiB")
	}
	dir := t.TempDir()
	content := bytes.Repeat([]byte("0123456789abcdef\n"), (65<<20)/17)
	for _, edited := range []bool{false, true} {
		path := filepath.Join(dir, fmt.Sprint("out-", edited))
		pos := written(t, path, content)
		if edited {
			patch(t, path, 100)
		}
		w, err := sink.OpenFile(path, pos)
		if err != nil {
			t.Fatalf("edited=%v: resume: %v", edited, err)
		}
		if _, err := w.Write([]byte("more\n")); err != nil {
			t.Fatal(err)
		}
		final, err := w.Flush()
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		err = sink.VerifyFile(path, final)
		if edited && !errors.Is(err, sink.ErrOutputChanged) {
			t.Errorf("VerifyFile of the finished output edited at byte 100: %v, want ErrOutputChanged", err)
		}
		if !edited && err != nil {
			t.Errorf("VerifyFile of the intact output resumed and written on: %v", err)
		}
	}
}
