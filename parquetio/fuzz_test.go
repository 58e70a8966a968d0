package parquetio_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/ckptdev/ckpt/parquetio"
	"github.com/ckptdev/ckpt/sink"
)

// FuzzSource reads damaged Parquet files: every one ends in rows or an
// error, never a panic or a hang.
func FuzzSource(f *testing.F) {
	dir := f.TempDir()
	good := filepath.Join(dir, "good.parquet")
	writeGroups(f, good, 0, 3, 2)
	b, err := os.ReadFile(good)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Add([]byte("PAR1PAR1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "in.parquet")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		src, err := parquetio.OpenSource([]string{path}, nil)
		if err != nil {
			return
		}
		defer src.Close()
		for range 1 << 16 {
			if _, err := src.Next(); err != nil {
				if errors.Is(err, io.EOF) {
					return
				}
				return
			}
		}
	})
}

// FuzzPosition opens an output at damaged positions: each is refused with
// an error or resumed, never a panic.
func FuzzPosition(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "out.parquet")
	w, err := parquetio.OpenWriter(path, typedCols, nil, sink.FileOptions{})
	if err != nil {
		f.Fatal(err)
	}
	write(f, w, "1", "1.00", "1", "true", "2024-05-01T12:00:00Z", "a")
	pos := flush(f, w)
	w.Close()
	good, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(pos))
	f.Add([]byte(`{"file":{"length":4},"row_groups":0,"rows":0,"meta":"","page_index":""}`))
	f.Fuzz(func(t *testing.T, pos []byte) {
		path := filepath.Join(t.TempDir(), "out.parquet")
		if err := os.WriteFile(path, good, 0o644); err != nil {
			t.Fatal(err)
		}
		w, err := parquetio.OpenWriter(path, typedCols, pos, sink.FileOptions{})
		if err != nil {
			return
		}
		defer w.Close()
		write(t, w, "2", "2.00", "2", "false", "2024-05-01T12:00:00Z", "b")
		if _, err := w.Flush(); err != nil {
			return
		}
		w.Finish()
	})
}
