package parquetio_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/ckptdev/ckpt/internal/parquettest"
	"github.com/ckptdev/ckpt/parquetio"
	"github.com/ckptdev/ckpt/sink"
	"github.com/ckptdev/ckpt/sink/pgsink"
)

var typedCols = []parquetio.Column{
	{Name: "id", Type: pgsink.BigInt},
	{Name: "price", Type: pgsink.Numeric, Scale: 2},
	{Name: "ratio", Type: pgsink.Double},
	{Name: "ok", Type: pgsink.Boolean},
	{Name: "at", Type: pgsink.Timestamptz},
	{Name: "name", Type: pgsink.Text},
}

// row makes a row of text values; "" is null.
func row(vals ...string) ([][]byte, []bool) {
	b := make([][]byte, len(vals))
	null := make([]bool, len(vals))
	for i, v := range vals {
		b[i] = []byte(v)
		null[i] = v == ""
	}
	return b, null
}

func write(t testing.TB, w *parquetio.Writer, vals ...string) {
	t.Helper()
	b, null := row(vals...)
	if err := w.WriteRow(b, null); err != nil {
		t.Fatal(err)
	}
}

func flush(t testing.TB, w *parquetio.Writer) json.RawMessage {
	t.Helper()
	pos, err := w.Flush()
	if err != nil {
		t.Fatal(err)
	}
	return pos
}

func finish(t testing.TB, w *parquetio.Writer) parquetio.Position {
	t.Helper()
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	var p parquetio.Position
	if err := json.Unmarshal(flush(t, w), &p); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// Every type, null in every column, and values at the edges of their
// types, each row a row group of its own, read back by Arrow's reader.
func TestWriteTypes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.parquet")
	w, err := parquetio.OpenWriter(path, typedCols, nil, sink.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	in := [][]string{
		{"1", "12.5", "0.25", "true", "2024-05-01T12:00:00Z", "a"},
		{"-9223372036854775808", "-0.01", "1e300", "false", "2024-05-01 14:00:00.123456+02:00", "é,\"x\""},
		{"", "", "", "", "", ""},
		{"42", "123456789012345678901234567890123456.78", "-0", "t", "1970-01-01T00:00:00Z", "z"},
		{"9223372036854775807", "-99999999999999999999999999999999999.99", "-1.5", "no", "1969-12-31T23:59:59.999999Z", ""},
		{"0", "1.5e2", "2", "1", "2024-05-01T12:00:00.0000004Z", "\x00"},
	}
	for _, r := range in {
		write(t, w, r...)
		flush(t, w)
	}
	flush(t, w) // no rows: no empty row group
	p := finish(t, w)
	if !p.Done || p.RowGroups != len(in) || p.Rows != int64(len(in)) {
		t.Errorf("final position %+v", p)
	}
	// Every column chunk has statistics and a page index, at offsets
	// inside the file.
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	pf, err := parquet.OpenFile(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	for i, rg := range pf.Metadata().RowGroups {
		for j, c := range rg.Columns {
			if i != 2 && len(c.MetaData.Statistics.MinValue) == 0 && c.MetaData.Statistics.NullCount == 0 {
				t.Errorf("row group %d, column %d: no statistics", i, j)
			}
			if c.ColumnIndexOffset <= 0 || c.OffsetIndexOffset <= 0 || c.OffsetIndexOffset+int64(c.OffsetIndexLength) > fi.Size() {
				t.Errorf("row group %d, column %d: page index at %d and %d", i, j, c.ColumnIndexOffset, c.OffsetIndexOffset)
			}
		}
	}
	if len(pf.ColumnIndexes()) == 0 || len(pf.OffsetIndexes()) == 0 {
		t.Error("no page index read")
	}
	names, types, got := parquettest.Read(t, path)
	if want := []string{"id", "price", "ratio", "ok", "at", "name"}; !slices.Equal(names, want) {
		t.Errorf("names %q, want %q", names, want)
	}
	if want := []string{"int64", "decimal(38, 2)", "float64", "bool", "timestamp[us, tz=UTC]", "utf8"}; !slices.Equal(types, want) {
		t.Errorf("types %q, want %q", types, want)
	}
	want := [][]string{
		{"1", "12.5", "0.25", "true", "2024-05-01T12:00:00Z", "a"},
		{"-9223372036854775808", "-0.01", "1e+300", "false", "2024-05-01T12:00:00.123456Z", "é,\"x\""},
		{"<null>", "<null>", "<null>", "<null>", "<null>", "<null>"},
		{"42", "123456789012345678901234567890123456.78", "-0", "true", "1970-01-01T00:00:00Z", "z"},
		{"9223372036854775807", "-99999999999999999999999999999999999.99", "-1.5", "false", "1969-12-31T23:59:59.999999Z", "<null>"},
		{"0", "150", "2", "true", "2024-05-01T12:00:00Z", "\x00"},
	}
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("row %d: %q, want %q", i, got[i], want[i])
		}
	}
}

// A value its column cannot hold is an *pgsink.InvalidValueError naming
// the column, and nothing of its row is written.
func TestWriteBadValues(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.parquet")
	w, err := parquetio.OpenWriter(path, typedCols, nil, sink.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	good := []string{"1", "1.00", "1", "true", "2024-05-01T12:00:00Z", "a"}
	for _, tc := range []struct {
		col int
		v   string
	}{
		{0, "1.5"}, {0, "9223372036854775808"}, {0, "x"},
		{1, "1.001"}, {1, "1e-3"}, {1, "1234567890123456789012345678901234567"}, {1, "--1"}, {1, "1.2.3"}, {1, "NaN"},
		{2, "1e400"}, {2, "one"},
		{3, "maybe"},
		{4, "2024-05-01T12:00:00"}, {4, "yesterday"},
		{5, "\xff"},
	} {
		r := slices.Clone(good)
		r[tc.col] = tc.v
		b, null := row(r...)
		var ie *pgsink.InvalidValueError
		if err := w.WriteRow(b, null); !errors.As(err, &ie) || ie.Column != typedCols[tc.col].Name {
			t.Errorf("%s %q: %v, want an InvalidValueError of the column", typedCols[tc.col].Name, tc.v, err)
		}
	}
	if err := w.WriteRow([][]byte{[]byte("1")}, nil); err == nil {
		t.Error("a row of 1 value for 6 columns was written")
	}
	write(t, w, good...)
	finish(t, w)
	if _, _, got := parquettest.Read(t, path); len(got) != 1 {
		t.Fatalf("%d rows, want the good one only", len(got))
	}
}

// A job that resumes from a checkpoint truncates the file to its last
// whole row group (whatever was written after it: a row group, a footer,
// a torn write) and goes on: the file is then the same, byte for byte,
// as one written without interruption with the same row groups.
func TestWriterResume(t *testing.T) {
	dir := t.TempDir()
	rowsOf := func(n, k int) []string {
		return []string{strconv.Itoa(n), strconv.Itoa(n) + ".25", "0.5", strconv.FormatBool(n%2 == 0), "2024-05-01T12:00:00Z", "name " + strconv.Itoa(k)}
	}
	// The uninterrupted file: row groups of 100 rows.
	ref := filepath.Join(dir, "ref.parquet")
	w, err := parquetio.OpenWriter(ref, typedCols, nil, sink.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for g := range 5 {
		for i := range 100 {
			write(t, w, rowsOf(g*100+i, i)...)
		}
		flush(t, w)
	}
	finish(t, w)

	for _, after := range []string{"row group", "footer", "torn"} {
		t.Run(after, func(t *testing.T) {
			path := filepath.Join(dir, after+".parquet")
			w, err := parquetio.OpenWriter(path, typedCols, nil, sink.FileOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var pos json.RawMessage
			for g := range 5 {
				for i := range 100 {
					write(t, w, rowsOf(g*100+i, i)...)
				}
				p := flush(t, w)
				if g == 1 {
					pos = p
				}
			}
			switch after {
			case "footer":
				finish(t, w)
			case "torn":
				w.Close()
				f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					t.Fatal(err)
				}
				f.Write([]byte("half a row group"))
				f.Close()
			default:
				w.Close()
			}
			w, err = parquetio.OpenWriter(path, typedCols, pos, sink.FileOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for g := 2; g < 5; g++ {
				for i := range 100 {
					write(t, w, rowsOf(g*100+i, i)...)
				}
				flush(t, w)
			}
			if p := finish(t, w); p.RowGroups != 5 || p.Rows != 500 {
				t.Errorf("final position %+v", p)
			}
			a, _ := os.ReadFile(path)
			b, _ := os.ReadFile(ref)
			if !bytes.Equal(a, b) {
				t.Fatalf("resumed file (%d bytes) differs from the uninterrupted one (%d bytes)", len(a), len(b))
			}
			if _, _, got := parquettest.Read(t, path); len(got) != 500 || got[499][0] != "499" {
				t.Fatalf("%d rows", len(got))
			}
		})
	}
}

// A resume refuses a file that is not what its checkpoint left: shorter,
// or with other bytes; and other columns than the checkpoint's.
func TestWriterResumeRefuses(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.parquet")
	w, err := parquetio.OpenWriter(path, typedCols, nil, sink.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	write(t, w, "1", "1.00", "1", "true", "2024-05-01T12:00:00Z", "a")
	pos := flush(t, w)
	if err := w.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	w.Close()
	data, _ := os.ReadFile(path)

	other := slices.Clone(typedCols)
	other[5].Type = pgsink.BigInt
	if _, err := parquetio.OpenWriter(path, other, pos, sink.FileOptions{}); err == nil {
		t.Error("resume with other column types: no error")
	}
	if err := os.WriteFile(path, data[:len(data)-1], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := parquetio.OpenWriter(path, typedCols, pos, sink.FileOptions{}); !errors.Is(err, sink.ErrOutputChanged) {
		t.Errorf("truncated file: %v, want ErrOutputChanged", err)
	}
	edited := slices.Clone(data)
	edited[len(edited)-3] ^= 1
	if err := os.WriteFile(path, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := parquetio.OpenWriter(path, typedCols, pos, sink.FileOptions{}); !errors.Is(err, sink.ErrOutputChanged) {
		t.Errorf("edited file: %v, want ErrOutputChanged", err)
	}
}
