package parquetio_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/ckptdev/ckpt/parquetio"
	"github.com/ckptdev/ckpt/sink"
	"github.com/ckptdev/ckpt/source"
)

// writeGroups writes a file of the typed columns with row groups of the
// given sizes, numbering rows from first.
func writeGroups(t testing.TB, path string, first int, sizes ...int) {
	t.Helper()
	w, err := parquetio.OpenWriter(path, typedCols, nil, sink.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := first
	for _, s := range sizes {
		for range s {
			name := fmt.Sprintf("row %d", n)
			if n%5 == 0 {
				name = ""
			}
			write(t, w, fmt.Sprint(n), fmt.Sprintf("%d.%02d", n, n%100), "0.5", "true", "2024-05-01T12:00:00Z", name)
			n++
		}
		flush(t, w)
	}
	finish(t, w)
}

// readAll reads src to its end, a row as its fields joined by |, null as ∅.
func readAll(t *testing.T, src *parquetio.Source, max int) []string {
	t.Helper()
	var out []string
	for len(out) < max {
		r, err := src.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		f := make([]string, len(r.Fields))
		for i := range f {
			f[i] = string(r.Fields[i])
			if r.Null[i] {
				f[i] = "∅"
			}
		}
		out = append(out, strings.Join(f, "|"))
	}
	return out
}

// A source resumed at any position (between rows of a row group, at the
// end of one, between files) reads exactly the rows after it.
func TestSourceResume(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.parquet"), filepath.Join(dir, "b.parquet")
	writeGroups(t, a, 0, 10, 7, 5)
	writeGroups(t, b, 22, 3)
	src, err := parquetio.OpenSource([]string{a, b}, nil)
	if err != nil {
		t.Fatal(err)
	}
	all := readAll(t, src, 1<<30)
	src.Close()
	if len(all) != 25 || all[0] != "0|0.00|0.5|true|2024-05-01T12:00:00Z|∅" || all[24] != "24|24.24|0.5|true|2024-05-01T12:00:00Z|row 24" {
		t.Fatalf("rows %q", all)
	}
	for k := 0; k <= len(all); k++ {
		src, err := parquetio.OpenSource([]string{a, b}, nil)
		if err != nil {
			t.Fatal(err)
		}
		head := readAll(t, src, k)
		pos, err := src.Position()
		if err != nil {
			t.Fatal(err)
		}
		src.Close()
		src, err = parquetio.OpenSource([]string{a, b}, pos)
		if err != nil {
			t.Fatalf("resume at %s: %v", pos, err)
		}
		rest := readAll(t, src, 1<<30)
		if got := append(head, rest...); !slices.Equal(got, all) {
			t.Fatalf("resumed after %d rows at %s: %d rows, want %d", k, pos, len(got), len(all))
		}
		if k == 12 {
			var p parquetio.SourcePosition
			json.Unmarshal(pos, &p)
			if p.File != 0 || p.RowGroup != 1 || p.Row != 2 {
				t.Errorf("position after 12 rows %s, want row group 1, row 2", pos)
			}
		}
		src.Close()
	}
	// A resume on changed input is refused.
	src, _ = parquetio.OpenSource([]string{a, b}, nil)
	readAll(t, src, 3)
	pos, _ := src.Position()
	src.Close()
	writeGroups(t, b, 100, 3)
	if _, err := parquetio.OpenSource([]string{a, b}, pos); !errors.Is(err, source.ErrInputChanged) {
		t.Fatalf("resume on a changed file: %v, want ErrInputChanged", err)
	}
}

// Values of the logical types other writers use are written as text: dates,
// times, timestamps of every unit with and without a zone, small integers,
// unsigned ones, decimals in INT32, INT64 and bytes, floats, UUIDs, and
// binary that is not text.
func TestSourceRendersTypes(t *testing.T) {
	type rec struct {
		Date  int32     `parquet:"date,date"`
		TSms  int64     `parquet:"ts_ms,timestamp(millisecond)"`
		TSns  time.Time `parquet:"ts_ns,timestamp(nanosecond)"`
		Local int64     `parquet:"local,timestamp(microsecond:local)"`
		I32   int32     `parquet:"i32"`
		U64   uint64    `parquet:"u64"`
		D32   int32     `parquet:"d32,decimal(2:9)"`
		D64   int64     `parquet:"d64,decimal(3:18)"`
		F32   float32   `parquet:"f32"`
		F64   float64   `parquet:"f64"`
		UUID  [16]byte  `parquet:"uuid,uuid"`
		Bin   []byte    `parquet:"bin"`
		Opt   *string   `parquet:"opt,optional"`
	}
	path := filepath.Join(t.TempDir(), "types.parquet")
	s := "text"
	recs := []rec{
		{Date: 19844, TSms: 1714564800123, TSns: time.Date(2024, 5, 1, 12, 0, 0, 1, time.UTC), Local: 1714564800000001,
			I32: -5, U64: 1<<64 - 1, D32: -5, D64: 123456, F32: 1.5, F64: 0.1,
			UUID: [16]byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 1, 2, 3, 4, 5, 6, 7, 8}, Bin: []byte{0xff, 0}, Opt: &s},
		{Date: -1, TSms: -1, TSns: time.Unix(0, 0), F64: math.Inf(-1), Bin: []byte("plain")},
	}
	if err := parquet.WriteFile(path, recs); err != nil {
		t.Fatal(err)
	}
	src, err := parquetio.OpenSource([]string{path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	got := readAll(t, src, 10)
	want := []string{
		"2024-05-01|2024-05-01T12:00:00.123Z|2024-05-01T12:00:00.000000001Z|2024-05-01T12:00:00.000001|-5|18446744073709551615|-0.05|123.456|1.5|0.1|12345678-9abc-def0-0102-030405060708|\\xff00|text",
		"1969-12-31|1969-12-31T23:59:59.999Z|1970-01-01T00:00:00Z|1970-01-01T00:00:00|0|0|0.00|0.000|0|-Inf|00000000-0000-0000-0000-000000000000|plain|∅",
	}
	for i := range want {
		if i >= len(got) || got[i] != want[i] {
			t.Errorf("row %d:\n got %q\nwant %q", i, got[min(i, len(got)-1)], want[i])
		}
	}
}
