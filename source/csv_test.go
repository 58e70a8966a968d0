package source_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt/source"
)

const bom = "\xef\xbb\xbf"

func TestCSVRecords(t *testing.T) {
	tests := []struct {
		name   string
		input  string
		comma  byte
		header []string
		want   [][]string
	}{
		{"LF", "a,b\n1,2\n3,4\n", 0, []string{"a", "b"}, [][]string{{"1", "2"}, {"3", "4"}}},
		{"CRLF", "a,b\r\n1,2\r\n3,4\r\n", 0, []string{"a", "b"}, [][]string{{"1", "2"}, {"3", "4"}}},
		{"mixed line ends", "a,b\r\n1,2\n3,4\r\n", 0, []string{"a", "b"}, [][]string{{"1", "2"}, {"3", "4"}}},
		{"no final line end", "a,b\n1,2\n3,4", 0, []string{"a", "b"}, [][]string{{"1", "2"}, {"3", "4"}}},
		{"no final line end, quoted", "a,b\n1,2\n3,\"4\"", 0, []string{"a", "b"}, [][]string{{"1", "2"}, {"3", "4"}}},
		{"final CR without LF", "a,b\n1,2\r", 0, []string{"a", "b"}, [][]string{{"1", "2"}}},
		{"final CR without LF, quoted", "a,b\n1,\"2\"\r", 0, []string{"a", "b"}, [][]string{{"1", "2"}}},
		{"BOM", bom + "a,b\n1,2\n", 0, []string{"a", "b"}, [][]string{{"1", "2"}}},
		{"BOM and quoted header", bom + "\"a\",b\n1,2\n", 0, []string{"a", "b"}, [][]string{{"1", "2"}}},
		{"BOM only at the start", "a,b\n" + bom + "1,2\n", 0, []string{"a", "b"}, [][]string{{bom + "1", "2"}}},
		{"blank lines", "\n\r\na,b\n\n1,2\r\n\r\n\n3,4\n\n", 0, []string{"a", "b"}, [][]string{{"1", "2"}, {"3", "4"}}},
		{"header only", "a,b\n", 0, []string{"a", "b"}, nil},
		{"header only, no line end", "a,b", 0, []string{"a", "b"}, nil},
		{"empty fields", "a,b,c\n,,\n\"\",,\"\"\n", 0, []string{"a", "b", "c"}, [][]string{{"", "", ""}, {"", "", ""}}},
		{"one column, empty quoted value", "a\n\"\"\nx\n", 0, []string{"a"}, [][]string{{""}, {"x"}}},
		{"quoted separator", "a,b\n\"1,5\",2\n", 0, []string{"a", "b"}, [][]string{{"1,5", "2"}}},
		{"quoted quotes", "a,b\n\"say \"\"hi\"\"\",\"\"\"\"\n", 0, []string{"a", "b"}, [][]string{{`say "hi"`, `"`}}},
		{"quoted LF", "a,b\n\"x\ny\",2\n", 0, []string{"a", "b"}, [][]string{{"x\ny", "2"}}},
		{"quoted CRLF kept", "a,b\r\n\"x\r\ny\",2\r\n", 0, []string{"a", "b"}, [][]string{{"x\r\ny", "2"}}},
		{"quoted CR kept", "a,b\n\"x\ry\r\",2\n", 0, []string{"a", "b"}, [][]string{{"x\ry\r", "2"}}},
		{"quoted blank lines kept", "a,b\n\"\n\n\r\n\",2\n", 0, []string{"a", "b"}, [][]string{{"\n\n\r\n", "2"}}},
		{"quoted last field then CRLF", "a,b\n1,\"2\"\r\n3,4\n", 0, []string{"a", "b"}, [][]string{{"1", "2"}, {"3", "4"}}},
		{"quoted then unquoted", "a,b,c\n\"1\",2,3\r\n", 0, []string{"a", "b", "c"}, [][]string{{"1", "2", "3"}}},
		{"CR inside unquoted field", "a,b\nx\ry,2\n", 0, []string{"a", "b"}, [][]string{{"x\ry", "2"}}},
		{"spaces kept", "a,b\n 1 , 2 \n", 0, []string{"a", "b"}, [][]string{{" 1 ", " 2 "}}},
		{"trailing empty field", "a,b\n1,\n2,", 0, []string{"a", "b"}, [][]string{{"1", ""}, {"2", ""}}},
		{"trailing empty field after quote", "a,b\n\"1\",\n\"2\",", 0, []string{"a", "b"}, [][]string{{"1", ""}, {"2", ""}}},
		{"unicode", "ä,日本\n😀,\"é,ü\"\n", 0, []string{"ä", "日本"}, [][]string{{"😀", "é,ü"}}},
		{"semicolon", "a;b\n1,5;\"x;y\"\n", ';', []string{"a", "b"}, [][]string{{"1,5", "x;y"}}},
		{"tab", "a\tb\n1\t\"2\t3\"\n", '\t', []string{"a", "b"}, [][]string{{"1", "2\t3"}}},
		{"pipe, quoted", "\"a\"|b\n\"1|2\"|\"\"\"\"\n", '|', []string{"a", "b"}, [][]string{{"1|2", `"`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			paths := writeFiles(t, tt.input)
			c, err := source.OpenCSV(paths, nil, source.CSVOptions{Comma: tt.comma})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Header(), tt.header) {
				t.Errorf("header %q, want %q", c.Header(), tt.header)
			}
			c.Close()
			s := mustReadCSV(t, paths, source.CSVOptions{Comma: tt.comma})
			for _, e := range s.events {
				if e.Err != "" {
					t.Fatalf("bad record %v", e)
				}
			}
			if got := goodRecords(s); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("records %q, want %q", got, tt.want)
			}
			checkPlaces(t, s, paths)
			checkResume(t, s, func(pos json.RawMessage) (stream, error) {
				return readCSV(paths, pos, source.CSVOptions{Comma: tt.comma})
			})
		})
	}
}

// TestCSVRowPlaces checks Row's File, Line and Offset on input whose
// records span several lines.
func TestCSVRowPlaces(t *testing.T) {
	in := "a,b\r\n\r\n1,\"x\r\ny\"\r\n\n\"\n\n\",2\n3,4"
	paths := writeFiles(t, in)
	s := mustReadCSV(t, paths, source.CSVOptions{})
	var got []event
	for _, e := range s.events {
		got = append(got, event{File: e.File, Line: e.Line, Offset: e.Offset, Raw: e.Raw})
	}
	want := []event{
		{File: paths[0], Line: 3, Offset: int64(strings.Index(in, "1,")), Raw: "1,\"x\r\ny\""},
		{File: paths[0], Line: 6, Offset: int64(strings.Index(in, "\"\n\n\"")), Raw: "\"\n\n\",2"},
		{File: paths[0], Line: 9, Offset: int64(strings.Index(in, "3,4")), Raw: "3,4"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %s\nwant %s", fmtEvents(got), fmtEvents(want))
	}
	checkPlaces(t, s, paths)
}

// faultMark marks where a bad record's fault is in the inputs of
// TestCSVBadRecords; the test removes it and computes the line and column
// it expects from its place.
const faultMark = "‸"

func TestCSVBadRecords(t *testing.T) {
	tests := []struct {
		name  string
		input string // the fault marked with faultMark; the bad record is the one after "1,2\n"
		raw   string // the bad record's bytes, as reported
		msg   string // in the error
		after [][]string
	}{
		{"bare quote", "a,b\n1,2\nx,y‸\"z\n3,4\n", "x,y\"z", "bare quote", [][]string{{"3", "4"}}},
		{"bare quote, CRLF", "a,b\r\n1,2\r\nx,y‸\"z\r\n3,4\r\n", "x,y\"z", "bare quote", [][]string{{"3", "4"}}},
		{"bare quote in a later field", "a,b\n1,2\n\"x\",y‸\"\n3,4\n", "\"x\",y\"", "bare quote", [][]string{{"3", "4"}}},
		{"bare quote on the record's second line", "a,b\n1,2\n\"x\ny\",z‸\"\n3,4\n", "\"x\ny\",z\"", "bare quote", [][]string{{"3", "4"}}},
		{"text after a closing quote", "a,b\n1,2\n\"x\"‸y,z\n3,4\n", "\"x\"y,z", "after a closing quote", [][]string{{"3", "4"}}},
		{"text after a closing quote, multi-line", "a,b\n1,2\nq,\"x\r\n\"‸y\r\n3,4\r\n", "q,\"x\r\n\"y", "after a closing quote", [][]string{{"3", "4"}}},
		{"CR after a closing quote", "a,b\n1,2\n\"x\"‸\ry,z\n3,4\n", "\"x\"\ry,z", "after a closing quote", [][]string{{"3", "4"}}},
		{"unterminated quote", "a,b\n1,2\n3,‸\"4\n5,6\n", "3,\"4\n5,6", "not closed", nil},
		{"unterminated quote, no line end", "a,b\n1,2\n3,‸\"4", "3,\"4", "not closed", nil},
		{"too few fields", "a,b\n1,2\n3‸\n4,5\n", "3", "1 fields, the header has 2", [][]string{{"4", "5"}}},
		{"too many fields", "a,b\n1,2\n3,4,‸5\r\n6,7\n", "3,4,5", "3 fields, the header has 2", [][]string{{"6", "7"}}},
		{"too many fields, quoted", "a,b\n1,2\n\"3\",\"4\n\",‸5\n6,7\n", "\"3\",\"4\n\",5", "3 fields, the header has 2", [][]string{{"6", "7"}}},
		{"too few fields, last line", "a,b\n1,2\n3‸", "3", "1 fields, the header has 2", nil},
		{"too many fields, empty", "a,b\n1,2\n,,‸\n6,7\n", ",,", "3 fields, the header has 2", [][]string{{"6", "7"}}},
		{"too many fields, quoted separators", "a,b\n1,2\n\"x,\"\"y,\",\"\",‸\"z,\"\n6,7\n", "\"x,\"\"y,\",\"\",\"z,\"", "3 fields, the header has 2", [][]string{{"6", "7"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at := strings.Index(tt.input, faultMark)
			in := strings.Replace(tt.input, faultMark, "", 1)
			paths := writeFiles(t, in)
			recStart := strings.Index(in, "1,2") + 3
			for in[recStart] == '\r' || in[recStart] == '\n' {
				recStart++
			}
			wantLine := int64(1 + strings.Count(in[:at], "\n"))
			wantCol := int64(at - (strings.LastIndex(in[:at], "\n") + 1) + 1)

			c, err := source.OpenCSV(paths, nil, source.CSVOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if row, err := c.Next(); err != nil || string(row.Fields[0]) != "1" {
				t.Fatalf("first record: %v, %v", row, err)
			}
			_, err = c.Next()
			var re *source.RecordError
			if !errors.As(err, &re) {
				t.Fatalf("Next = %v, want a *RecordError", err)
			}
			if re.File != paths[0] || re.Line != wantLine || re.Column != wantCol || re.Offset != int64(recStart) || string(re.Raw) != tt.raw {
				t.Errorf("RecordError{File %s, Line %d, Column %d, Offset %d, Raw %q}, want {%s, %d, %d, %d, %q}",
					re.File, re.Line, re.Column, re.Offset, re.Raw, paths[0], wantLine, wantCol, recStart, tt.raw)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not say %q", err, tt.msg)
			}
			prefix := paths[0] + ":" + strconv.FormatInt(wantLine, 10) + ":"
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q does not start with %q", err, prefix)
			}
			if !bytes.Equal(c.Raw(), re.Raw) {
				t.Errorf("Raw() = %q after the bad record, RecordError.Raw %q", c.Raw(), re.Raw)
			}
			var after [][]string
			for {
				row, err := c.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("after the bad record: %v", err)
				}
				var rec []string
				for _, f := range row.Fields {
					rec = append(rec, string(f))
				}
				after = append(after, rec)
			}
			if !reflect.DeepEqual(after, tt.after) {
				t.Errorf("records after the bad one %q, want %q", after, tt.after)
			}
			s := mustReadCSV(t, paths, source.CSVOptions{})
			checkPlaces(t, s, paths)
			checkResume(t, s, func(pos json.RawMessage) (stream, error) { return readCSV(paths, pos, source.CSVOptions{}) })
		})
	}
}

// TestCSVRecordErrorRawIsOwned: a bad record's Raw stays intact after
// more records are read, so that a caller may keep the error.
func TestCSVRecordErrorRawIsOwned(t *testing.T) {
	defer source.SetInitialBuffer(16)()
	in := "a,b\nbad\n" + strings.Repeat("xxxxxxx,yyyyyyyy\n", 10) + "x,y\"z\n" + strings.Repeat("xxxxxxx,yyyyyyyy\n", 10)
	paths := writeFiles(t, in)
	c, err := source.OpenCSV(paths, nil, source.CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var errs []*source.RecordError
	for {
		_, err := c.Next()
		if err == io.EOF {
			break
		}
		var re *source.RecordError
		if errors.As(err, &re) {
			errs = append(errs, re)
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if len(errs) != 2 {
		t.Fatalf("%d bad records, want 2", len(errs))
	}
	if string(errs[0].Raw) != "bad" || string(errs[1].Raw) != "x,y\"z" {
		t.Errorf("kept errors' Raw %q and %q, want %q and %q", errs[0].Raw, errs[1].Raw, "bad", "x,y\"z")
	}
}

func TestCSVOpenErrors(t *testing.T) {
	t.Run("empty file", func(t *testing.T) {
		for _, in := range []string{"", "\n\r\n\n", bom} {
			paths := writeFiles(t, in)
			_, err := source.OpenCSV(paths, nil, source.CSVOptions{})
			if err == nil || !strings.Contains(err.Error(), paths[0]) || !strings.Contains(err.Error(), "empty") {
				t.Errorf("%q: OpenCSV error %v, want one naming %s as empty", in, err, paths[0])
			}
		}
	})
	t.Run("all files empty", func(t *testing.T) {
		paths := writeFiles(t, "", "")
		_, err := source.OpenCSV(paths, nil, source.CSVOptions{})
		if err == nil || !strings.Contains(err.Error(), paths[0]) || !strings.Contains(err.Error(), "empty") {
			t.Errorf("OpenCSV on empty files: %v, want an error naming %s as empty", err, paths[0])
		}
	})
	t.Run("no files", func(t *testing.T) {
		if _, err := source.OpenCSV(nil, nil, source.CSVOptions{}); !errors.Is(err, source.ErrNoInput) {
			t.Errorf("OpenCSV(nil) = %v, want ErrNoInput", err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		paths := writeFiles(t, "a\n")
		paths = append(paths, paths[0]+".missing")
		_, err := source.OpenCSV(paths, nil, source.CSVOptions{})
		if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), paths[1]) {
			t.Errorf("OpenCSV with a missing file: %v", err)
		}
	})
	t.Run("bad header", func(t *testing.T) {
		paths := writeFiles(t, "a,b\"c\n1,2\n")
		_, err := source.OpenCSV(paths, nil, source.CSVOptions{})
		var re *source.RecordError
		if !errors.As(err, &re) || re.Line != 1 || re.Column != 4 {
			t.Errorf("OpenCSV on a bad header: %v, want a RecordError at 1:4", err)
		}
	})
	t.Run("bad separator", func(t *testing.T) {
		paths := writeFiles(t, "a\n")
		for _, c := range []byte{'"', '\n', '\r'} {
			if _, err := source.OpenCSV(paths, nil, source.CSVOptions{Comma: c}); err == nil {
				t.Errorf("separator %q accepted", c)
			}
		}
	})
}

func TestCSVMultipleFiles(t *testing.T) {
	// A file of no bytes (an export of no rows) holds no records and needs
	// no header, wherever it is in the list.
	t.Run("empty files", func(t *testing.T) {
		paths := writeFiles(t, "", "a,b\n1,2\n", "", "a,b\n3,4\n", "")
		s := mustReadCSV(t, paths, source.CSVOptions{})
		want := [][]string{{"1", "2"}, {"3", "4"}}
		if got := goodRecords(s); !reflect.DeepEqual(got, want) {
			t.Fatalf("records %q, want %q", got, want)
		}
		checkPlaces(t, s, paths)
		checkResume(t, s, func(pos json.RawMessage) (stream, error) { return readCSV(paths, pos, source.CSVOptions{}) })
	})
	t.Run("same header", func(t *testing.T) {
		paths := writeFiles(t, "a,b\n1,2\n", bom+"a,b\r\n3,4\r\n", "\"a\",\"b\"\n", "a,b\n5,6")
		s := mustReadCSV(t, paths, source.CSVOptions{})
		want := [][]string{{"1", "2"}, {"3", "4"}, {"5", "6"}}
		if got := goodRecords(s); !reflect.DeepEqual(got, want) {
			t.Fatalf("records %q, want %q", got, want)
		}
		if s.events[1].File != paths[1] || s.events[1].Line != 2 || s.events[2].File != paths[3] {
			t.Errorf("records' places: %s", fmtEvents(s.events))
		}
		checkPlaces(t, s, paths)
		checkResume(t, s, func(pos json.RawMessage) (stream, error) { return readCSV(paths, pos, source.CSVOptions{}) })
	})
	for _, other := range []string{"a,c\n3,4\n", "a,b,c\n3,4,5\n", "a\n3\n", "b,a\n3,4\n", "a,b\"\n3,4\n"} {
		t.Run("different header "+strings.SplitN(other, "\n", 2)[0], func(t *testing.T) {
			paths := writeFiles(t, "a,b\n1,2\n", other)
			c, err := source.OpenCSV(paths, nil, source.CSVOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Next(); err != nil {
				t.Fatal(err)
			}
			_, err = c.Next()
			var re *source.RecordError
			if err == nil || err == io.EOF || errors.As(err, &re) || !strings.Contains(err.Error(), paths[1]) || !strings.Contains(err.Error(), "header") {
				t.Errorf("Next at a file with another header: %v, want an error naming %s and its header", err, paths[1])
			}
		})
	}
}

// TestCSVLargeRecords reads records larger than the reader's initial
// buffer (1 MiB), quoted and unquoted.
func TestCSVLargeRecords(t *testing.T) {
	big := strings.Repeat("x,\"\r\ny", 600_000)  // 3.6 MB of quoted content
	plain := strings.Repeat("abcdefgh", 300_000) // 2.4 MB unquoted
	in := "a,b\n1,\"" + strings.ReplaceAll(big, `"`, `""`) + "\"\n" + plain + ",2\r\n3,4\n"
	paths := writeFiles(t, in)
	s := mustReadCSV(t, paths, source.CSVOptions{})
	want := [][]string{{"1", big}, {plain, "2"}, {"3", "4"}}
	got := goodRecords(s)
	if len(s.events) != len(want) || !reflect.DeepEqual(got, want) {
		t.Fatalf("%d records (%d events), want the 3 large ones intact", len(got), len(s.events))
	}
	checkPlaces(t, s, paths)
	checkResume(t, s, func(pos json.RawMessage) (stream, error) { return readCSV(paths, pos, source.CSVOptions{}) })
}

// TestCSVRecordTooLong: a record longer than MaxRecord (an unterminated
// quote, typically) is an error naming the file and line, not unbounded
// memory.
func TestCSVRecordTooLong(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 65 MiB file")
	}
	in := "a,b\n1,2\n3,\"" + strings.Repeat("y", source.MaxRecord+1024)
	paths := writeFiles(t, in)
	c, err := source.OpenCSV(paths, nil, source.CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Next(); err != nil {
		t.Fatal(err)
	}
	_, err = c.Next()
	if err == nil || !strings.Contains(err.Error(), paths[0]+":3") || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("Next on an overlong record: %v", err)
	}
}

// awkwardCSV is input with every construct the parser has a branch for,
// records that span lines, blank lines, bad records and no final line end.
const awkwardCSV = bom + "\"h,1\",h2,h3\r\n" +
	"a,b,c\n" +
	"\r\n" +
	"\"q,\"\"uo\"\"te\",\"\r\nx\n\",\"\"\r\n" +
	"é,,😀\n" +
	"x,y\"z,w\n" + // bare quote
	"1,2,3\r\n" +
	"\"1\"2,3,4\n" + // text after a closing quote
	"only,two\n" + // field count
	",,\n" +
	"\n\n" +
	"\"long\nlong\nlong\",\"\",\"\r\"\r\n" +
	"last,\"re\"\"c\",\"ord\""

// TestCSVBufferSplits reads the same input with every initial buffer size
// from 1 byte up, so that every record straddles a buffer refill at every
// possible point, and checks each read gives the records, places and
// positions of a read with the default buffer.
func TestCSVBufferSplits(t *testing.T) {
	for _, in := range []string{awkwardCSV, strings.ReplaceAll(awkwardCSV, "\r\n", "\n"), strings.ReplaceAll(awkwardCSV, "\n", "\r\n")} {
		paths := writeFiles(t, in, in)
		want := mustReadCSV(t, paths, source.CSVOptions{})
		if len(want.events) < 16 {
			t.Fatalf("only %d records in the test input", len(want.events))
		}
		checkPlaces(t, want, paths)
		for size := 1; size <= len(in)+1; size++ {
			restore := source.SetInitialBuffer(size)
			got, err := readCSV(paths, nil, source.CSVOptions{})
			restore()
			if err != nil {
				t.Fatalf("buffer %d: %v", size, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("buffer %d bytes:\n got %s\nwant %s", size, fmtEvents(got.events), fmtEvents(want.events))
			}
		}
		// Resume with a small buffer too.
		restore := source.SetInitialBuffer(3)
		checkResume(t, want, func(pos json.RawMessage) (stream, error) { return readCSV(paths, pos, source.CSVOptions{}) })
		restore()
	}
}

// Header-less input: Columns names the columns, every line of every file
// is a record (a BOM is still dropped), and a resume at any record reads
// the rest exactly.
func TestCSVColumnsWithoutHeader(t *testing.T) {
	paths := writeFiles(t, "1\t\"a\tb\"\n2\tc\n", "", bom+"3\td\r\n4\te")
	opts := source.CSVOptions{Comma: '\t', Columns: []string{"n", "s"}}
	s := mustReadCSV(t, paths, opts)
	want := [][]string{{"1", "a\tb"}, {"2", "c"}, {"3", "d"}, {"4", "e"}}
	if got := goodRecords(s); !reflect.DeepEqual(got, want) {
		t.Fatalf("records %q, want %q", got, want)
	}
	if s.events[0].Line != 1 || s.events[2].File != paths[2] || s.events[2].Line != 1 {
		t.Errorf("records' places: %s", fmtEvents(s.events))
	}
	checkPlaces(t, s, paths)
	checkResume(t, s, func(pos json.RawMessage) (stream, error) { return readCSV(paths, pos, opts) })
	c, err := source.OpenCSV(paths, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !reflect.DeepEqual(c.Header(), []string{"n", "s"}) {
		t.Errorf("header %q", c.Header())
	}
	if _, err := source.OpenCSV(paths, nil, source.CSVOptions{Comma: 0xe9}); err == nil {
		t.Error("a separator that is not ASCII was accepted")
	}
}
