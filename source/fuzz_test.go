package source_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt/internal/records"
	"github.com/ckptdev/ckpt/source"
)

var csvSeeds = []string{
	awkwardCSV,
	"a,b\n1,2\n",
	"a,b\r\n\"1\r\n\",\"2\"\"\"\r\n",
	"a\n\"\"\n\n\"\"",
	bom + "a;b\n1;2",
	"a,b\nx,y\"z\n1,2\n",
	"a,b\n\"x\"y,z\n1,2\n",
	"a,b\n1,\"2\n",
	"a,b\n1,\"2\"\r",
	"a,b\n1\n1,2,3\n",
	"\"a\nb\",c\r\n\r\n1,2",
	"a,b\n\r\r\n\r",
}

// FuzzCSV reads arbitrary input as two copies of one file, with the
// default buffer and with one of 1 to 64 bytes, and checks that reading terminates
// without panicking; that the records do not depend on the buffer size;
// that resuming at every record boundary gives the rest of one
// uninterrupted read; that places are right; that good records, written
// out again, read back the same; and that when encoding/csv accepts the
// input, the records are its records.
func FuzzCSV(f *testing.F) {
	for _, s := range csvSeeds {
		f.Add([]byte(s), uint8(63), false)
		f.Add([]byte(s), uint8(2), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, buf uint8, semicolon bool) {
		opts := source.CSVOptions{}
		if semicolon {
			opts.Comma = ';'
		}
		dir := t.TempDir()
		one := filepath.Join(dir, "one.csv")
		two := filepath.Join(dir, "two.csv")
		for _, p := range []string{one, two} {
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		paths := []string{one, two}
		c, err := source.OpenCSV(paths, nil, opts)
		if err != nil {
			return // no header: nothing to read
		}
		header := c.Header()
		c.Close()
		want, err := readCSV(paths, nil, opts)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		checkPlaces(t, want, paths)
		half := len(want.events) / 2
		if len(want.events) != 2*half || !reflect.DeepEqual(goodRecords(want)[:len(goodRecords(want))/2], goodRecords(want)[len(goodRecords(want))/2:]) {
			t.Fatalf("two copies of one file read as %s", fmtEvents(want.events))
		}

		// The rest runs with a small buffer (the default one is 1 MiB, and
		// resuming at every boundary opens the input many times).
		size := 1 + int(buf%64)
		defer source.SetInitialBuffer(size)()
		got, err := readCSV(paths, nil, opts)
		if err != nil {
			t.Fatalf("read with a %d-byte buffer: %v", size, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("read with a %d-byte buffer:\n got %s\nwant %s", size, fmtEvents(got.events), fmtEvents(want.events))
		}
		// Every boundary of small inputs; of large ones, a sample (resuming
		// everywhere is quadratic).
		checkResumeAt(t, want, func(pos json.RawMessage) (stream, error) { return readCSV(paths, pos, opts) }, 40)

		// Good records written out again read back the same.
		comma := byte(',')
		if semicolon {
			comma = ';'
		}
		out := []byte(bom) // one BOM is dropped: any in the header's first field is kept
		out = appendCSVRecord(out, header, comma)
		for _, rec := range goodRecords(want) {
			out = appendCSVRecord(out, rec, comma)
		}
		again := filepath.Join(dir, "again.csv")
		if err := os.WriteFile(again, out, 0o644); err != nil {
			t.Fatal(err)
		}
		c, err = source.OpenCSV([]string{again}, nil, opts)
		if err != nil {
			t.Fatalf("written out again: %v\n%q", err, out)
		}
		if !reflect.DeepEqual(c.Header(), header) {
			t.Fatalf("header written out again reads as %q, was %q", c.Header(), header)
		}
		c.Close()
		re, err := readCSV([]string{again}, nil, opts)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(goodRecords(re), goodRecords(want)) || len(re.events) != len(goodRecords(want)) {
			t.Fatalf("written out again:\n%q\nreads as %s\nwant %q", out, fmtEvents(re.events), goodRecords(want))
		}

		// Where encoding/csv reads the input without a syntax error, the
		// records are the same, but for CR LF inside quotes (which
		// encoding/csv turns into LF) and for records whose field count
		// differs from the header's (ckpt refuses them).
		std, _, stdErr := stdCSV(strings.TrimPrefix(string(data), bom), comma)
		if stdErr != nil {
			return
		}
		var ours [][]string
		ours = append(ours, header)
		for _, e := range want.events[:half] {
			if e.Err != "" && !strings.Contains(e.Err, "fields, the header has") {
				t.Fatalf("encoding/csv reads the input, ckpt refuses %v", e)
			}
			if e.Err == "" {
				ours = append(ours, e.Fields)
			}
		}
		var stdGood [][]string
		for i, rec := range std {
			if i == 0 || len(rec) == len(header) {
				stdGood = append(stdGood, rec)
			}
		}
		if !reflect.DeepEqual(normalizeCRLF(ours), stdGood) {
			t.Fatalf("records %q\nencoding/csv %q", ours, stdGood)
		}
	})
}

// appendCSVRecord appends rec as one CSV line.
func appendCSVRecord(b []byte, rec []string, comma byte) []byte {
	if len(rec) == 1 && rec[0] == "" {
		return append(b, "\"\"\n"...) // not a blank line
	}
	for i, f := range rec {
		if i > 0 {
			b = append(b, comma)
		}
		b = records.AppendCSVField(b, []byte(f), comma)
	}
	return append(b, '\n')
}

// FuzzLines reads arbitrary input as one file and two copies of it, and
// checks the lines against a plain split of the input, that they do not
// depend on the buffer size, and that resuming at every line boundary
// gives the rest of one uninterrupted read.
func FuzzLines(f *testing.F) {
	for _, s := range []string{"", "a", "a\n", "a\r\nb", "\n\n\r\n", bom, bom + "x\r\n", "x\r", "\r\r\n", "é\n😀"} {
		f.Add([]byte(s), uint8(63))
		f.Add([]byte(s), uint8(0))
	}
	f.Fuzz(func(t *testing.T, data []byte, buf uint8) {
		paths := writeFiles(t, string(data), string(data))
		want0, err := readLines(paths, nil)
		if errors.Is(err, source.ErrNotUTF8) {
			return // text that looks like UTF-16, or compressed data: refused, as it should be
		}
		if err != nil {
			t.Fatal(err)
		}
		size := 1 + int(buf%64)
		defer source.SetInitialBuffer(size)()
		got, err := readLines(paths, nil)
		if err != nil {
			t.Fatal(err)
		}
		var want []event
		for _, p := range paths {
			want = append(want, splitLines(p, data)...)
		}
		if !reflect.DeepEqual(got.events, want) && !(len(got.events) == 0 && len(want) == 0) {
			t.Fatalf("lines:\n got %s\nwant %s", fmtEvents(got.events), fmtEvents(want))
		}
		if !reflect.DeepEqual(got, want0) {
			t.Fatalf("read with a %d-byte buffer:\n got %s\nwant %s", size, fmtEvents(got.events), fmtEvents(want0.events))
		}
		checkPlaces(t, got, paths)
		checkResumeAt(t, got, func(pos json.RawMessage) (stream, error) { return readLines(paths, pos) }, 40)
	})
}

// splitLines is what Lines must read from data in file path: lines split
// at LF, a CR before the LF dropped, a UTF-8 BOM at the start dropped, a
// last line without LF kept if not empty.
func splitLines(path string, data []byte) []event {
	var evs []event
	off := 0
	if bytes.HasPrefix(data, []byte(bom)) {
		off = len(bom)
	}
	for line := int64(1); off < len(data); line++ {
		end := bytes.IndexByte(data[off:], '\n')
		next := off + end + 1
		if end < 0 {
			end, next = len(data)-off, len(data)
		}
		text := string(bytes.TrimSuffix(data[off:off+end], []byte{'\r'}))
		evs = append(evs, event{File: path, Line: line, Offset: int64(off), Fields: []string{text}, Raw: text})
		off = next
	}
	return evs
}

// TestCSVFuzzSeedsAgainstEncodingCSV guards the seeds themselves: every
// seed that encoding/csv reads without error must also be one that ckpt
// reads without a syntax error, so the fuzz target's comparison runs.
func TestCSVFuzzSeedsAgainstEncodingCSV(t *testing.T) {
	compared := 0
	for _, s := range csvSeeds {
		if _, _, err := stdCSV(strings.TrimPrefix(s, bom), ','); err == nil {
			compared++
		} else if pe := (*csv.ParseError)(nil); !errors.As(err, &pe) {
			t.Errorf("%q: encoding/csv: %v", s, err)
		}
	}
	if compared < 4 {
		t.Errorf("only %d seeds are valid CSV for encoding/csv; the comparison needs more", compared)
	}
}
