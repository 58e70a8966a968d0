package source_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt/source"
)

// TestGrowingInput: a file that is still being written is read up to the
// size it had when it was opened; its half-written last line is never a
// record, and the reader stops with ErrInputChanged instead of reaching an
// end the fingerprint does not describe.
func TestGrowingInput(t *testing.T) {
	tests := []struct {
		name, before, appended string
		want                   []string // the records read before the error
	}{
		{"half a line at the end", "h\na\nb\nhal", "f\nmore\n", []string{"a", "b"}},
		{"complete lines at the end", "h\na\nb\n", "c\nd\n", []string{"a", "b"}},
	}
	for _, tt := range tests {
		for _, lines := range []bool{false, true} {
			name := tt.name + map[bool]string{false: " (CSV)", true: " (Lines)"}[lines]
			t.Run(name, func(t *testing.T) {
				paths := writeFiles(t, tt.before)
				var next func() (string, error)
				if lines {
					l, err := source.OpenLines(paths, nil)
					if err != nil {
						t.Fatal(err)
					}
					defer l.Close()
					if _, err := l.Next(); err != nil { // the "h" line
						t.Fatal(err)
					}
					next = func() (string, error) {
						ln, err := l.Next()
						if err != nil {
							return "", err
						}
						return string(ln.Text), nil
					}
				} else {
					c, err := source.OpenCSV(paths, nil, source.CSVOptions{})
					if err != nil {
						t.Fatal(err)
					}
					defer c.Close()
					next = func() (string, error) {
						r, err := c.Next()
						if err != nil {
							return "", err
						}
						return string(r.Fields[0]), nil
					}
				}
				// The writer goes on after the reader opened the file.
				appendTo(t, paths[0], tt.appended)
				var got []string
				var err error
				for {
					var s string
					if s, err = next(); err != nil {
						break
					}
					got = append(got, s)
				}
				if strings.Join(got, "|") != strings.Join(tt.want, "|") {
					t.Errorf("records %q, want %q", got, tt.want)
				}
				if !errors.Is(err, source.ErrInputChanged) || !strings.Contains(err.Error(), "still being written") {
					t.Errorf("end of a growing file: %v, want ErrInputChanged saying it may still be written", err)
				}
			})
		}
	}
}

// TestNotUTF8IsRefused: text in another encoding is refused with a
// message that says what it looks like, instead of becoming garbage.
func TestNotUTF8IsRefused(t *testing.T) {
	utf16le := func(s string, bom bool) string {
		var b []byte
		if bom {
			b = append(b, 0xff, 0xfe)
		}
		for _, c := range []byte(s) {
			b = append(b, c, 0)
		}
		return string(b)
	}
	utf16be := func(s string) string {
		b := []byte{0xfe, 0xff}
		for _, c := range []byte(s) {
			b = append(b, 0, c)
		}
		return string(b)
	}
	tests := []struct {
		name, content, says string
	}{
		{"UTF-16LE with BOM", utf16le("a,b\n1,2\n", true), "UTF-16 little-endian"},
		{"UTF-16BE with BOM", utf16be("a,b\n1,2\n"), "UTF-16 big-endian"},
		{"UTF-16LE without BOM", utf16le("a,b\n1,2\n", false), "UTF-16 little-endian text without a byte order mark"},
		{"UTF-32LE", "\xff\xfe\x00\x00a\x00\x00\x00", "UTF-32 little-endian"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			paths := writeFiles(t, tt.content)
			_, err := source.OpenCSV(paths, nil, source.CSVOptions{})
			if !errors.Is(err, source.ErrNotUTF8) || !strings.Contains(err.Error(), tt.says) || !strings.Contains(err.Error(), "iconv") {
				t.Errorf("OpenCSV: %v, want ErrNotUTF8 saying %q and how to convert", err, tt.says)
			}
			l, err := source.OpenLines(paths, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if _, err := l.Next(); !errors.Is(err, source.ErrNotUTF8) || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("Lines.Next: %v, want ErrNotUTF8 saying %q", err, tt.says)
			}
		})
	}
	t.Run("Latin-1 header", func(t *testing.T) {
		paths := writeFiles(t, "caf\xe9,prix\n1,2\n")
		_, err := source.OpenCSV(paths, nil, source.CSVOptions{})
		if !errors.Is(err, source.ErrNotUTF8) || !strings.Contains(err.Error(), "header") || !strings.Contains(err.Error(), "column 1") {
			t.Errorf("OpenCSV: %v, want ErrNotUTF8 naming the header's column", err)
		}
	})
	t.Run("UTF-8 with BOM is read", func(t *testing.T) {
		paths := writeFiles(t, "\xef\xbb\xbfcafé,b\n1,2\n")
		c, err := source.OpenCSV(paths, nil, source.CSVOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if h := c.Header(); h[0] != "café" {
			t.Errorf("header %q", h)
		}
	})
}

// TestResumeKeepsTheFirstRunsNames: a resume that names the input another
// way (from another directory) reports its records under the names of the
// first run, so that messages and dead letters do not depend on where a
// run was started.
func TestResumeKeepsTheFirstRunsNames(t *testing.T) {
	paths := writeFiles(t, "a,b\n1,2\n3,x,4\n")
	pos := positionAfter(t, paths, false, 1)
	other := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(filepath.Dir(paths[0]), other); err != nil {
		t.Fatal(err)
	}
	c, err := source.OpenCSV([]string{filepath.Join(other, filepath.Base(paths[0]))}, pos, source.CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var re *source.RecordError
	if _, err := c.Next(); !errors.As(err, &re) || re.File != paths[0] {
		t.Fatalf("bad record after the resume: %v, want one in %s", err, paths[0])
	}
	if _, err := c.Next(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
	pos2, err := c.Position()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(pos2), strconv.Quote(paths[0])) {
		t.Errorf("position %s does not keep the first run's name %s", pos2, paths[0])
	}
}

// TestResumeBigFileChangedInTheMiddle: an edit in the middle of a large
// file, size and time kept, is caught where it touches one of the
// fingerprint's samples.
func TestResumeBigFileChangedInTheMiddle(t *testing.T) {
	var sb strings.Builder
	sb.WriteString("a,b\n")
	for i := 0; sb.Len() < 1<<20; i++ {
		sb.WriteString(strconv.Itoa(i) + ",x\n")
	}
	in := sb.String()
	paths := writeFiles(t, in)
	pos := positionAfter(t, paths, false, 100)
	// The fourth of the eight samples (see fingerprint).
	mid := int64(len(in)) - 2*(64<<10)
	where := 64<<10 + 3*(mid-4<<10)/7 + 100
	b := []byte(in)
	b[where]++
	rewriteKeepTime(t, paths[0], string(b))
	if _, err := open(paths, pos, false); !errors.Is(err, source.ErrInputChanged) {
		t.Errorf("byte %d of %d changed: resume gives %v, want ErrInputChanged", where, len(in), err)
	}
}

// TestOverlongRecord: a line longer than the record limit is a bad record
// (the policy decides), and reading goes on with the next line; in CSV,
// one with quotes cannot be skipped for sure, and the error says why.
func TestOverlongRecord(t *testing.T) {
	defer source.SetInitialBuffer(64)()
	defer source.SetMaxRecord(1024)()
	long := strings.Repeat("y", 5000)
	t.Run("Lines", func(t *testing.T) {
		paths := writeFiles(t, "a\n"+long+"\nb\n"+long)
		l, err := source.OpenLines(paths, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		var got []string
		for {
			ln, err := l.Next()
			if err == io.EOF {
				break
			}
			var re *source.RecordError
			if errors.As(err, &re) {
				got = append(got, "bad:"+strconv.Itoa(int(re.Line))+":"+strconv.Itoa(int(re.Offset)))
				if !strings.Contains(re.Error(), "5000 bytes") || len(re.Raw) == 0 {
					t.Errorf("bad record %v, raw %d bytes", re, len(re.Raw))
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, string(ln.Text)+":"+strconv.Itoa(int(ln.Line)))
		}
		if want := "a:1 bad:2:2 b:3 bad:4:5005"; strings.Join(got, " ") != want {
			t.Errorf("got %q, want %q", strings.Join(got, " "), want)
		}
	})
	t.Run("CSV without quotes", func(t *testing.T) {
		paths := writeFiles(t, "h\n1\n"+long+"\n2\n")
		s, err := readCSV(paths, nil, source.CSVOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if recs := goodRecords(s); len(recs) != 2 || recs[1][0] != "2" {
			t.Errorf("records %q", recs)
		}
	})
	t.Run("CSV with an open quote", func(t *testing.T) {
		paths := writeFiles(t, "h\n1\n\""+long+"\n2\n")
		c, err := source.OpenCSV(paths, nil, source.CSVOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Next()
		_, err = c.Next()
		var re *source.RecordError
		if err == nil || errors.As(err, &re) || !strings.Contains(err.Error(), "cannot be skipped") {
			t.Errorf("Next: %v, want an error saying why it cannot be skipped", err)
		}
	})
}
