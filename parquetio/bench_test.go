package parquetio_test

import (
	"fmt"
	"io"
	"path/filepath"
	"testing"

	"github.com/ckptdev/ckpt/parquetio"
	"github.com/ckptdev/ckpt/sink"
)

// BenchmarkWriteRow encodes rows of every type into row groups of 100,000
// rows, as CSV to Parquet does; BenchmarkSourceNext reads them back as
// text.
func BenchmarkWriteRow(b *testing.B) {
	rows := sampleRows(1000)
	path := filepath.Join(b.TempDir(), "out.parquet")
	w, err := parquetio.OpenWriter(path, typedCols, nil, sink.FileOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r := rows[i%len(rows)]
		if err := w.WriteRow(r.vals, r.null); err != nil {
			b.Fatal(err)
		}
		if i%100_000 == 99_999 {
			if _, err := w.Flush(); err != nil {
				b.Fatal(err)
			}
		}
	}
	if _, err := w.Flush(); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkSourceNext(b *testing.B) {
	rows := sampleRows(1000)
	path := filepath.Join(b.TempDir(), "in.parquet")
	w, err := parquetio.OpenWriter(path, typedCols, nil, sink.FileOptions{})
	if err != nil {
		b.Fatal(err)
	}
	for i := range 200_000 {
		r := rows[i%len(rows)]
		if err := w.WriteRow(r.vals, r.null); err != nil {
			b.Fatal(err)
		}
		if i%100_000 == 99_999 {
			flush(b, w)
		}
	}
	finish(b, w)
	src, err := parquetio.OpenSource([]string{path}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := src.Next(); err == io.EOF {
			src.Close()
			if src, err = parquetio.OpenSource([]string{path}, nil); err != nil {
				b.Fatal(err)
			}
		} else if err != nil {
			b.Fatal(err)
		}
	}
	src.Close()
}

type sampleRow struct {
	vals [][]byte
	null []bool
}

func sampleRows(n int) []sampleRow {
	out := make([]sampleRow, n)
	for i := range out {
		vals, null := row(fmt.Sprint(i*7919), fmt.Sprintf("%d.%02d", i, i%100), fmt.Sprintf("%de-3", i),
			fmt.Sprint(i%3 == 0), fmt.Sprintf("2024-05-01T10:%02d:00Z", i%60), fmt.Sprintf("name %d", i%97))
		out[i] = sampleRow{vals, null}
	}
	return out
}
