package sink_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/ckptdev/ckpt/internal/vfs"
	"github.com/ckptdev/ckpt/sink"
)

// decompress reads a whole gzip (every member) or zstd (every frame)
// file's text.
func decompress(t *testing.T, c sink.Compression, b []byte) ([]byte, error) {
	t.Helper()
	switch c {
	case sink.Gzip:
		z, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(z)
	case sink.Zstd:
		z, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		defer z.Close()
		return io.ReadAll(z)
	}
	return b, nil
}

// testTool checks a compressed file with the gzip or zstd command, where
// installed: gzip -t, zstd -t.
func testTool(t *testing.T, c sink.Compression, path string) {
	t.Helper()
	tool := map[sink.Compression]string{sink.Gzip: "gzip", sink.Zstd: "zstd"}[c]
	if _, err := exec.LookPath(tool); err != nil {
		return
	}
	if out, err := exec.Command(tool, "-t", "-q", path).CombinedOutput(); err != nil {
		t.Fatalf("%s -t %s: %v: %s", tool, path, err, out)
	}
}

// record is the text of record i: lines of varied length, compressible
// as real output is.
func record(i int) string {
	return fmt.Sprintf(`{"id":%d,"name":"customer %d","amount":%d.%02d,"note":"%s"}`+"\n", i, i*7%1000, i*31%100000, i%100, bytes.Repeat([]byte{'a' + byte(i%26)}, i%50))
}

// writeRecords writes records from..to-1 to w, ending a checkpoint
// (Flush) after every record i with i%every == every-1, and returns the
// positions of those checkpoints and the text written before each.
func writeRecords(t *testing.T, w *sink.File, from, to, every int, text *bytes.Buffer) (pos []json.RawMessage, upTo []int) {
	t.Helper()
	for i := from; i < to; i++ {
		r := record(i)
		text.WriteString(r)
		b := w.Buffered()
		b = append(b, r...)
		if err := w.Commit(b); err != nil {
			t.Fatal(err)
		}
		if i%every == every-1 {
			p, err := w.Flush()
			if err != nil {
				t.Fatal(err)
			}
			pos = append(pos, p)
			upTo = append(upTo, text.Len())
		}
	}
	return pos, upTo
}

var compressions = []sink.Compression{sink.Gzip, sink.Zstd}

// Every checkpoint's length ends a member or frame: the output cut there
// is a whole compressed file, whose text is the output's up to the
// checkpoint.
func TestCompressedCutAtEveryCheckpoint(t *testing.T) {
	for _, c := range compressions {
		t.Run(string(c), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "out")
			w, err := sink.OpenFileWith(path, nil, sink.FileOptions{Compression: c})
			if err != nil {
				t.Fatal(err)
			}
			var text bytes.Buffer
			// Checkpoints every 3000 records: several members, some past
			// the 1 MiB the sink hands to the OS at once.
			pos, upTo := writeRecords(t, w, 0, 20000, 3000, &text)
			final, err := w.Flush()
			if err != nil {
				t.Fatal(err)
			}
			pos, upTo = append(pos, final), append(upTo, text.Len())
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			whole, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for k, raw := range pos {
				p := parsePos(t, raw)
				if p.Compression != c {
					t.Fatalf("position %s: compression %q, want %q", raw, p.Compression, c)
				}
				cut := whole[:p.Length]
				got, err := decompress(t, c, cut)
				if err != nil {
					t.Fatalf("checkpoint %d: the output cut at %d does not decompress: %v", k, p.Length, err)
				}
				if !bytes.Equal(got, text.Bytes()[:upTo[k]]) {
					t.Fatalf("checkpoint %d: the output cut at %d holds %d bytes of text, want %d", k, p.Length, len(got), upTo[k])
				}
				cutPath := filepath.Join(dir, fmt.Sprintf("cut%d", k))
				if err := os.WriteFile(cutPath, cut, 0o644); err != nil {
					t.Fatal(err)
				}
				testTool(t, c, cutPath)
			}
			if len(whole) >= text.Len()/2 {
				t.Errorf("%s output of %d bytes for %d bytes of text: not compressed", c, len(whole), text.Len())
			}
		})
	}
}

// A resume after a crash, with a half-written member or garbage after
// the checkpoint's length, writes the same bytes as an uninterrupted run
// whose checkpoints fall at the same records.
func TestCompressedResumeIsByteForByte(t *testing.T) {
	const n, every = 12000, 1000
	for _, c := range compressions {
		for _, after := range []string{"half a member", "garbage", "nothing"} {
			t.Run(string(c)+"/"+after, func(t *testing.T) {
				dir := t.TempDir()
				// The uninterrupted run.
				whole := filepath.Join(dir, "whole")
				w, err := sink.OpenFileWith(whole, nil, sink.FileOptions{Compression: c})
				if err != nil {
					t.Fatal(err)
				}
				var text bytes.Buffer
				wpos, _ := writeRecords(t, w, 0, n, every, &text)
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				want, _ := os.ReadFile(whole)

				// The crashed run: checkpoints to record 5000, then
				// more output that no checkpoint covers.
				out := filepath.Join(dir, "out")
				w, err = sink.OpenFileWith(out, nil, sink.FileOptions{Compression: c})
				if err != nil {
					t.Fatal(err)
				}
				var text2 bytes.Buffer
				pos, _ := writeRecords(t, w, 0, 5000, every, &text2)
				last := pos[len(pos)-1]
				if err := w.Sync(context.Background()); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(last, wpos[4]) {
					t.Fatalf("the position at record 5000 is %s, the uninterrupted run's %s", last, wpos[4])
				}
				l := parsePos(t, last).Length
				var tail []byte
				switch after {
				case "half a member":
					tail = want[l : l+(parsePos(t, wpos[5]).Length-l)/2]
				case "garbage":
					tail = []byte("\x1f\x8b\x08 not a member at all")
				}
				f, err := os.OpenFile(out, os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					t.Fatal(err)
				}
				f.Write(tail)
				f.Close()

				w, err = sink.OpenFileWith(out, last, sink.FileOptions{Compression: c})
				if err != nil {
					t.Fatalf("resume: %v", err)
				}
				writeRecords(t, w, 5000, n, every, &text2)
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				checkFile(t, out, want)
				got, _ := os.ReadFile(out)
				plain, err := decompress(t, c, got)
				if err != nil || !bytes.Equal(plain, text.Bytes()) {
					t.Fatalf("resumed output decompresses to %d bytes (%v), want %d", len(plain), err, text.Len())
				}
			})
		}
	}
}

// The bytes before the checkpoint's length are checked on resume, and a
// resume that would write another compression is refused.
func TestCompressedResumeRefused(t *testing.T) {
	for _, c := range compressions {
		t.Run(string(c), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out")
			w, err := sink.OpenFileWith(path, nil, sink.FileOptions{Compression: c})
			if err != nil {
				t.Fatal(err)
			}
			var text bytes.Buffer
			pos, _ := writeRecords(t, w, 0, 3000, 1000, &text)
			w.Close()
			last := pos[len(pos)-1]

			other := sink.Plain
			if c == sink.Plain {
				other = sink.Gzip
			}
			if _, err := sink.OpenFileWith(path, last, sink.FileOptions{Compression: other}); !errors.Is(err, sink.ErrOutputChanged) {
				t.Fatalf("resume as %q: %v, want ErrOutputChanged", other, err)
			}
			patch(t, path, parsePos(t, last).Length/2)
			if _, err := sink.OpenFileWith(path, last, sink.FileOptions{Compression: c}); !errors.Is(err, sink.ErrOutputChanged) {
				t.Fatalf("resume after an edit: %v, want ErrOutputChanged", err)
			}
			if err := sink.VerifyFile(path, last); !errors.Is(err, sink.ErrOutputChanged) {
				t.Fatalf("verify after an edit: %v, want ErrOutputChanged", err)
			}
		})
	}
}

// An output of no records is a valid compressed file of no text from its
// first checkpoint on; the bytes do not depend on how the writes are cut.
func TestCompressedEmptyAndChunking(t *testing.T) {
	for _, c := range compressions {
		t.Run(string(c), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "empty")
			w, err := sink.OpenFileWith(path, nil, sink.FileOptions{Compression: c})
			if err != nil {
				t.Fatal(err)
			}
			p1, err := w.Flush()
			if err != nil {
				t.Fatal(err)
			}
			p2, err := w.Flush()
			if err != nil {
				t.Fatal(err)
			}
			w.Close()
			b, _ := os.ReadFile(path)
			if got, err := decompress(t, c, b); err != nil || len(got) != 0 || len(b) == 0 || !bytes.Equal(p1, p2) {
				t.Fatalf("empty output: %d bytes, text %q, %v; positions %s, %s", len(b), got, err, p1, p2)
			}
			testTool(t, c, path)

			var text bytes.Buffer
			for i := range 30000 {
				text.WriteString(record(i))
			}
			var outs [][]byte
			for k, chunk := range []int{1, 7, 4096, 3 << 20} {
				path := filepath.Join(dir, fmt.Sprint(k))
				w, err := sink.OpenFileWith(path, nil, sink.FileOptions{Compression: c})
				if err != nil {
					t.Fatal(err)
				}
				for b := text.Bytes(); len(b) > 0; b = b[min(chunk, len(b)):] {
					if _, err := w.Write(b[:min(chunk, len(b))]); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := w.Flush(); err != nil {
					t.Fatal(err)
				}
				w.Close()
				b, _ := os.ReadFile(path)
				outs = append(outs, b)
				if k > 0 && !bytes.Equal(b, outs[0]) {
					t.Fatalf("writes of %d bytes made another output (%d bytes) than writes of 1 byte (%d bytes)", chunk, len(b), len(outs[0]))
				}
			}
		})
	}
}

// A compressed file sink cut off by a power loss at any of its
// operations resumes from the position its last Sync returned, and ends
// with the bytes of a run that lost no power, checkpoints falling at the
// same batches.
func TestCompressedPowerLoss(t *testing.T) {
	for _, c := range compressions {
		t.Run(string(c), func(t *testing.T) {
			const path = "/out/out.gz"
			base := vfs.NewMemFS()
			if err := base.Mkdir("/out", 0o755); err != nil {
				t.Fatal(err)
			}
			base.SyncAll()
			// write writes batches from on, each flushed and synced, and
			// returns the position of the last batch whose Sync returned
			// and the batches it covers.
			write := func(fsys vfs.FS, pos json.RawMessage, from int) (json.RawMessage, int, error) {
				w, err := sink.OpenFileWith(path, pos, sink.FileOptions{FS: fsys, Compression: c})
				if err != nil {
					return pos, from, err
				}
				defer w.Close()
				for batch := from; batch < 3; batch++ {
					if _, err := w.WriteString(strings.Repeat(fmt.Sprintf("batch %d\n", batch), 1000)); err != nil {
						return pos, batch, err
					}
					p, err := w.Flush()
					if err != nil {
						return pos, batch, err
					}
					if err := w.Sync(t.Context()); err != nil {
						return pos, batch, err
					}
					pos = p
				}
				return pos, 3, nil
			}
			ref := base.CrashClone()
			counter := vfs.NewCrashing(ref, 0)
			if _, _, err := write(counter, nil, 0); err != nil {
				t.Fatal(err)
			}
			want, _ := ref.ReadFile(path)
			ops := counter.Ops()
			for at := 1; at <= len(ops); at++ {
				live := base.CrashClone()
				pos, done, err := write(vfs.NewCrashing(live, at), nil, 0)
				if !errors.Is(err, vfs.ErrCrashed) {
					t.Fatalf("before operation %d (%s): %v, want a crash", at, ops[at-1], err)
				}
				after := live.CrashClone()
				if pos == nil {
					done = 0
				}
				if _, _, err := write(after, pos, done); err != nil {
					t.Fatalf("power lost before operation %d (%s): resume from %s: %v", at, ops[at-1], pos, err)
				}
				if got, _ := after.ReadFile(path); !bytes.Equal(got, want) {
					t.Fatalf("power lost before operation %d (%s): %d bytes, want %d", at, ops[at-1], len(got), len(want))
				}
			}
		})
	}
}
