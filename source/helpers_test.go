package source_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt/source"
)

// writeFiles writes each content to its own file (in.0.csv, in.1.csv, ...)
// in a new temporary directory and returns their paths.
func writeFiles(t testing.TB, contents ...string) []string {
	t.Helper()
	dir := t.TempDir()
	paths := make([]string, len(contents))
	for i, c := range contents {
		paths[i] = filepath.Join(dir, fmt.Sprintf("in.%d.csv", i))
		if err := os.WriteFile(paths[i], []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return paths
}

// event is what one call to Next gave: a record, or a bad record.
type event struct {
	File   string
	Line   int64
	Offset int64
	Fields []string // the record's fields (the line's text for Lines); nil for a bad record
	Raw    string   // the record's bytes as Raw (CSV) or RecordError.Raw report them
	Column int64    // of a bad record
	Err    string   // a bad record's message
}

func (e event) String() string {
	if e.Err != "" {
		return fmt.Sprintf("bad %s:%d:%d @%d raw %q: %s", e.File, e.Line, e.Column, e.Offset, e.Raw, e.Err)
	}
	return fmt.Sprintf("%s:%d @%d %q raw %q", e.File, e.Line, e.Offset, e.Fields, e.Raw)
}

// stream is one read of an input to its end: the events, and the position
// before the first and after every event (len(pos) == len(events)+1).
type stream struct {
	events []event
	pos    []json.RawMessage
}

// positionSource is what CSV and Lines have in common.
type positionSource interface {
	Position() (json.RawMessage, error)
	Consumed() int64
	Paths() []string
	Close() error
}

// readStream reads src to its end with next, recording every record or bad
// record and the position after it. It checks that every call that does not
// end the input consumes input (so reading always terminates; compressed
// input counts compressed bytes, which a decoder takes in blocks, so there
// it checks only that the count never goes back), and returns an error
// that is not a *RecordError.
func readStream(src positionSource, next func() (event, error)) (stream, error) {
	var s stream
	p, err := src.Position()
	if err != nil {
		return s, err
	}
	s.pos = append(s.pos, p)
	last := src.Consumed()
	for {
		ev, err := next()
		if err == io.EOF {
			return s, nil
		}
		var re *source.RecordError
		if errors.As(err, &re) {
			ev = event{File: re.File, Line: re.Line, Offset: re.Offset, Raw: string(re.Raw), Column: re.Column, Err: re.Error()}
		} else if err != nil {
			return s, err
		}
		compressed := slices.ContainsFunc(src.Paths(), func(p string) bool { return source.CompressionSuffix(p) != "" })
		if c := src.Consumed(); c < last || c == last && !compressed {
			return s, fmt.Errorf("Next returned %v without consuming input (consumed %d, before %d)", ev, c, last)
		} else {
			last = c
		}
		s.events = append(s.events, ev)
		p, err := src.Position()
		if err != nil {
			return s, err
		}
		s.pos = append(s.pos, p)
	}
}

func csvNext(c *source.CSV) func() (event, error) {
	return func() (event, error) {
		row, err := c.Next()
		if err != nil {
			return event{}, err
		}
		if !bytes.Equal(row.Raw, c.Raw()) {
			return event{}, fmt.Errorf("Row.Raw %q, Raw() %q", row.Raw, c.Raw())
		}
		ev := event{File: row.File, Line: row.Line, Offset: row.Offset, Raw: string(row.Raw), Fields: make([]string, len(row.Fields))}
		for i, f := range row.Fields {
			ev.Fields[i] = string(f)
		}
		return ev, nil
	}
}

func linesNext(l *source.Lines) func() (event, error) {
	return func() (event, error) {
		ln, err := l.Next()
		if err != nil {
			return event{}, err
		}
		return event{File: ln.File, Line: ln.Line, Offset: ln.Offset, Fields: []string{string(ln.Text)}, Raw: string(ln.Text)}, nil
	}
}

// readCSV opens paths at pos and reads them to the end.
func readCSV(paths []string, pos json.RawMessage, opts source.CSVOptions) (stream, error) {
	c, err := source.OpenCSV(paths, pos, opts)
	if err != nil {
		return stream{}, err
	}
	defer c.Close()
	return readStream(c, csvNext(c))
}

// readLines opens paths at pos and reads them to the end.
func readLines(paths []string, pos json.RawMessage) (stream, error) {
	l, err := source.OpenLines(paths, pos)
	if err != nil {
		return stream{}, err
	}
	defer l.Close()
	return readStream(l, linesNext(l))
}

// mustReadCSV is readCSV that fails the test on error.
func mustReadCSV(t testing.TB, paths []string, opts source.CSVOptions) stream {
	t.Helper()
	s, err := readCSV(paths, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkResume checks, for every position of s, that opening the input
// there and reading to the end gives exactly the rest of s: the same
// events and the same positions after them.
func checkResume(t testing.TB, s stream, read func(pos json.RawMessage) (stream, error)) {
	t.Helper()
	checkResumeAt(t, s, read, len(s.pos))
}

// checkResumeAt is checkResume at up to n positions spread evenly over s,
// the first and the last included.
func checkResumeAt(t testing.TB, s stream, read func(pos json.RawMessage) (stream, error), n int) {
	t.Helper()
	stride := max(1, (len(s.pos)+n-1)/n)
	for k, p := range s.pos {
		if k%stride != 0 && k != len(s.pos)-1 {
			continue
		}
		rest, err := read(p)
		if err != nil {
			t.Fatalf("resume after %d records at %s: %v", k, p, err)
		}
		if !reflect.DeepEqual(rest.events, s.events[k:]) && !(len(rest.events) == 0 && len(s.events[k:]) == 0) {
			t.Fatalf("resume after %d records at %s:\n got %s\nwant %s", k, p, fmtEvents(rest.events), fmtEvents(s.events[k:]))
		}
		for j, q := range rest.pos {
			if !bytes.Equal(q, s.pos[k+j]) {
				t.Fatalf("resume after %d records: position after %d more is %s, uninterrupted %s", k, j, q, s.pos[k+j])
			}
		}
	}
}

// checkPlaces checks each event's line number and offset against the
// input itself: the line is one more than the line ends before the offset,
// and the record's raw bytes are at the offset.
func checkPlaces(t testing.TB, s stream, paths []string) {
	t.Helper()
	content := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		content[p] = b
	}
	for _, ev := range s.events {
		b, ok := content[ev.File]
		if !ok {
			t.Fatalf("%v: names a file that is not an input", ev)
		}
		if ev.Offset < 0 || ev.Offset > int64(len(b)) {
			t.Fatalf("%v: offset outside the file (%d bytes)", ev, len(b))
		}
		if want := 1 + int64(bytes.Count(b[:ev.Offset], []byte{'\n'})); ev.Line != want && ev.Err == "" {
			t.Errorf("%v: line %d, the offset is on line %d", ev, ev.Line, want)
		}
		if !bytes.HasPrefix(b[ev.Offset:], []byte(ev.Raw)) {
			t.Errorf("%v: the raw bytes are not at the offset (%q there)", ev, b[ev.Offset:min(len(b), int(ev.Offset)+len(ev.Raw)+8)])
		}
	}
}

func fmtEvents(evs []event) string {
	var sb strings.Builder
	for _, e := range evs {
		sb.WriteString("\n\t")
		sb.WriteString(e.String())
	}
	return sb.String()
}

// goodRecords returns the fields of the good records of s.
func goodRecords(s stream) [][]string {
	var out [][]string
	for _, e := range s.events {
		if e.Err == "" {
			out = append(out, e.Fields)
		}
	}
	return out
}
