package sink_test

import (
	"path/filepath"
	"testing"

	"github.com/ckptdev/ckpt/sink"
)

// benchRecord is a typical output record: a CSV line of about 100 bytes.
var benchRecord = []byte("2026-12-04T22:30:00Z,order-0001234567,customer-98765,EUR,1234.56,shipped,warehouse-7,priority\n")

// benchFile writes records to a file sink through write, starting a new
// file every 64 MiB so that the benchmark does not fill the disk; the
// reopening is not timed.
func benchFile(b *testing.B, write func(w *sink.File) error) {
	dir := b.TempDir()
	open := func() *sink.File {
		w, err := sink.OpenFile(filepath.Join(dir, "out.csv"), nil)
		if err != nil {
			b.Fatal(err)
		}
		return w
	}
	w := open()
	const perFile = 64 << 20 / 96
	b.SetBytes(int64(len(benchRecord)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := write(w); err != nil {
			b.Fatal(err)
		}
		if i++; i%perFile == 0 {
			b.StopTimer()
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
			w = open()
			b.StartTimer()
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

// The per-record paths of a file sink: they must not allocate, and make a
// system call only once per megabyte.

func BenchmarkFileWrite(b *testing.B) {
	benchFile(b, func(w *sink.File) error { _, err := w.Write(benchRecord); return err })
}

func BenchmarkFileWriteString(b *testing.B) {
	s := string(benchRecord)
	benchFile(b, func(w *sink.File) error { _, err := w.WriteString(s); return err })
}

func BenchmarkFileBuffered(b *testing.B) {
	benchFile(b, func(w *sink.File) error { return w.Commit(append(w.Buffered(), benchRecord...)) })
}
