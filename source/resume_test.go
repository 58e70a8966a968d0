package source_test

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ckptdev/ckpt/source"
)

// testSeed returns the seed of a randomized test: CKPT_SEED if set, else a
// random one; it is logged so that a failure can be repeated.
func testSeed(t testing.TB) uint64 {
	t.Helper()
	seed := rand.Uint64()
	if s := os.Getenv("CKPT_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("CKPT_SEED: %v", err)
		}
	}
	t.Logf("seed %d (set CKPT_SEED to repeat)", seed)
	return seed
}

// TestCSVResumeAcrossFiles resumes at every record boundary of input
// spread over several files, with bad records, blank lines, byte order
// marks and records that span lines.
func TestCSVResumeAcrossFiles(t *testing.T) {
	paths := writeFiles(t,
		"a,b\n1,2\nbad\n\"3\n\",4\n",
		bom+"a,b\r\n\r\n5,\"6\"\r\n7,\"8\"x\r\n9,10",
		"a,b\n",
		"\"a\",b\n\n11,12\n13,\"14",
	)
	s := mustReadCSV(t, paths, source.CSVOptions{})
	bad := 0
	for _, e := range s.events {
		if e.Err != "" {
			bad++
		}
	}
	if len(s.events) != 8 || bad != 3 {
		t.Fatalf("%d records, %d bad; want 8 and 3: %s", len(s.events), bad, fmtEvents(s.events))
	}
	checkPlaces(t, s, paths)
	checkResume(t, s, func(pos json.RawMessage) (stream, error) { return readCSV(paths, pos, source.CSVOptions{}) })
}

// TestCSVResumeGenerated resumes at every boundary of generated awkward
// input over several files.
func TestCSVResumeGenerated(t *testing.T) {
	rng := rand.New(rand.NewPCG(testSeed(t), 2))
	defer source.SetInitialBuffer(32)()
	rounds := 5
	if os.Getenv("CKPT_LONG") == "1" {
		rounds = 100
	}
	for range rounds {
		var files []string
		header := []string{"a", "b,\"c\"", "d\r\ne"}
		for range 1 + rng.IntN(3) {
			recs := append([][]string{header}, genRecords(rng, rng.IntN(30), 3)...)
			in := encodeCSV(rng, recs, ',')
			if rng.IntN(3) == 0 {
				in = bom + in
			}
			files = append(files, in)
		}
		paths := writeFiles(t, files...)
		s := mustReadCSV(t, paths, source.CSVOptions{})
		checkPlaces(t, s, paths)
		checkResume(t, s, func(pos json.RawMessage) (stream, error) { return readCSV(paths, pos, source.CSVOptions{}) })
	}
}

func TestLinesResumeAcrossFiles(t *testing.T) {
	paths := writeFiles(t, "a\nb\r\n\n", "", bom+"c", "\r\n\r\n", "d\ne\n")
	s, err := readLines(paths, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.events) != 8 {
		t.Fatalf("%d lines, want 8: %s", len(s.events), fmtEvents(s.events))
	}
	checkPlaces(t, s, paths)
	checkResume(t, s, func(pos json.RawMessage) (stream, error) { return readLines(paths, pos) })
}

// TestResumeChangedInput takes a position, changes the input, and checks
// that resuming fails with ErrInputChanged and a message naming the file
// and the change.
func TestResumeChangedInput(t *testing.T) {
	const in = "a,b\n1,2\n3,4\n5,6\n"
	tests := []struct {
		name   string
		change func(t *testing.T, paths []string) []string // returns the paths to resume with
		file   int                                         // the file the message names
		says   string
	}{
		{"same size, other content", func(t *testing.T, paths []string) []string {
			rewriteKeepTime(t, paths[1], strings.Replace(in, "3,4", "3,5", 1))
			return paths
		}, 1, "content differs"},
		{"same size, other content at the end", func(t *testing.T, paths []string) []string {
			rewriteKeepTime(t, paths[0], strings.Replace(in, "5,6", "5,7", 1))
			return paths
		}, 0, "content differs"},
		{"appended to", func(t *testing.T, paths []string) []string {
			appendTo(t, paths[1], "7,8\n")
			return paths
		}, 1, "size 20 bytes, was 16"},
		{"truncated", func(t *testing.T, paths []string) []string {
			if err := os.Truncate(paths[0], 8); err != nil {
				t.Fatal(err)
			}
			return paths
		}, 0, "size 8 bytes, was 16"},
		{"touched", func(t *testing.T, paths []string) []string {
			fi, err := os.Stat(paths[1])
			if err != nil {
				t.Fatal(err)
			}
			mt := fi.ModTime().Add(1500 * time.Millisecond)
			if err := os.Chtimes(paths[1], mt, mt); err != nil {
				t.Fatal(err)
			}
			return paths
		}, 1, "modified"},
		{"touched within the same second", func(t *testing.T, paths []string) []string {
			fi, err := os.Stat(paths[1])
			if err != nil {
				t.Fatal(err)
			}
			mt := fi.ModTime().Truncate(time.Second).Add(time.Millisecond)
			if mt.Equal(fi.ModTime()) {
				mt = mt.Add(time.Millisecond)
			}
			if err := os.Chtimes(paths[1], mt, mt); err != nil {
				t.Fatal(err)
			}
			return paths
		}, 1, "modified"},
		{"file added", func(t *testing.T, paths []string) []string {
			extra := writeFiles(t, in)[0]
			return append(paths, extra)
		}, 2, "added"},
		{"file removed", func(t *testing.T, paths []string) []string {
			return paths[:1]
		}, 1, "removed"},
		{"file deleted", func(t *testing.T, paths []string) []string {
			if err := os.Remove(paths[1]); err != nil {
				t.Fatal(err)
			}
			return paths
		}, 1, "no longer exists"},
	}
	for _, tt := range tests {
		for _, lines := range []bool{false, true} {
			name := tt.name + map[bool]string{false: " (CSV)", true: " (Lines)"}[lines]
			t.Run(name, func(t *testing.T) {
				paths := writeFiles(t, in, in)
				pos := positionAfter(t, paths, lines, 5)
				// The position resumes the unchanged input.
				if _, err := open(paths, pos, lines); err != nil {
					t.Fatalf("resume on unchanged input: %v", err)
				}
				now := tt.change(t, append([]string(nil), paths...))
				named := now
				if tt.file >= len(now) {
					named = paths
				}
				_, err := open(now, pos, lines)
				if !errors.Is(err, source.ErrInputChanged) {
					t.Fatalf("resume after the change: %v, want ErrInputChanged", err)
				}
				msg := err.Error()
				if !strings.Contains(msg, named[tt.file]) || !strings.Contains(msg, tt.says) {
					t.Errorf("message %q does not name %s and say %q", msg, named[tt.file], tt.says)
				}
				if tt.says == "modified" && strings.Count(msg, "modified") == 1 {
					// Both times must appear, and differ.
					i := strings.Index(msg, "modified ")
					j := strings.Index(msg, ", was ")
					if i < 0 || j < 0 || msg[i+len("modified "):j] == msg[j+len(", was "):] {
						t.Errorf("message %q does not show the two times apart", msg)
					}
				}
			})
		}
	}
}

// positionAfter reads n records (CSV) or lines of paths and returns the
// position after them.
func positionAfter(t *testing.T, paths []string, lines bool, n int) json.RawMessage {
	t.Helper()
	var src interface {
		Position() (json.RawMessage, error)
		Close() error
	}
	var next func() error
	if lines {
		l, err := source.OpenLines(paths, nil)
		if err != nil {
			t.Fatal(err)
		}
		src, next = l, func() error { _, err := l.Next(); return err }
	} else {
		c, err := source.OpenCSV(paths, nil, source.CSVOptions{})
		if err != nil {
			t.Fatal(err)
		}
		src, next = c, func() error { _, err := c.Next(); return err }
	}
	defer src.Close()
	for range n {
		if err := next(); err != nil {
			t.Fatal(err)
		}
	}
	pos, err := src.Position()
	if err != nil {
		t.Fatal(err)
	}
	return pos
}

func open(paths []string, pos json.RawMessage, lines bool) (interface{ Close() error }, error) {
	if lines {
		l, err := source.OpenLines(paths, pos)
		if err == nil {
			l.Close()
		}
		return l, err
	}
	c, err := source.OpenCSV(paths, pos, source.CSVOptions{})
	if err == nil {
		c.Close()
	}
	return c, err
}

// rewriteKeepTime replaces path's content and restores its modification
// time, so that only the content tells the change.
func rewriteKeepTime(t *testing.T, path, content string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
}

func appendTo(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestResumeBigFileChanged: in a file larger than the fingerprint's head
// and tail spans, a change in the head or the tail is refused even when
// size and modification time are kept.
func TestResumeBigFileChanged(t *testing.T) {
	var sb strings.Builder
	sb.WriteString("a,b\n")
	for i := 0; sb.Len() < 300_000; i++ {
		sb.WriteString(strconv.Itoa(i) + ",x\n")
	}
	in := sb.String()
	for _, where := range []int{10, len(in) - 10} {
		paths := writeFiles(t, in)
		pos := positionAfter(t, paths, false, 100)
		b := []byte(in)
		b[where] = 'y'
		if b[where] == in[where] {
			t.Fatal("no change")
		}
		rewriteKeepTime(t, paths[0], string(b))
		if _, err := open(paths, pos, false); !errors.Is(err, source.ErrInputChanged) {
			t.Errorf("byte %d of %d changed: resume gives %v, want ErrInputChanged", where, len(in), err)
		}
	}
}
