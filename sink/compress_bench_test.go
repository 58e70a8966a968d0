package sink_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/ckptdev/ckpt/sink"
)

// BenchmarkCompressedOutput writes 64 MiB of JSON Lines records through a
// file sink, plain, gzip and zstd at their default levels and at faster
// ones, with a checkpoint (Flush, which ends a member) every 100,000
// records (about 12 MiB of text) as a job at its default triggers makes
// about once a second. MB/s is of text; stored/text the compressed size.
func BenchmarkCompressedOutput(b *testing.B) {
	var text bytes.Buffer
	var ends []int // text offsets of checkpoints
	for i := 0; text.Len() < 64<<20; i++ {
		text.WriteString(record(i))
		if i%100_000 == 99_999 {
			ends = append(ends, text.Len())
		}
	}
	ends = append(ends, text.Len())
	for _, tc := range []struct {
		name string
		c    sink.Compression
		gzip int
		zstd zstd.EncoderLevel
	}{
		{"out=plain", sink.Plain, gzip.DefaultCompression, zstd.SpeedDefault},
		{"out=gzip-6", sink.Gzip, gzip.DefaultCompression, zstd.SpeedDefault},
		{"out=gzip-1", sink.Gzip, gzip.BestSpeed, zstd.SpeedDefault},
		{"out=zstd-3", sink.Zstd, gzip.DefaultCompression, zstd.SpeedDefault},
		{"out=zstd-1", sink.Zstd, gzip.DefaultCompression, zstd.SpeedFastest},
	} {
		b.Run(tc.name, func(b *testing.B) {
			defer sink.SetLevels(tc.gzip, tc.zstd)()
			path := filepath.Join(b.TempDir(), "out")
			b.SetBytes(int64(text.Len()))
			var size int64
			for b.Loop() {
				w, err := sink.OpenFileWith(path, nil, sink.FileOptions{Compression: tc.c})
				if err != nil {
					b.Fatal(err)
				}
				t := text.Bytes()
				from := 0
				for _, end := range ends {
					for from < end {
						// Records of about 100 bytes, appended as the
						// converters do, a few KiB at a time.
						n := min(end-from, 4096)
						if err := w.Commit(append(w.Buffered(), t[from:from+n]...)); err != nil {
							b.Fatal(err)
						}
						from += n
					}
					if _, err := w.Flush(); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
				fi, _ := os.Stat(path)
				size = fi.Size()
			}
			b.ReportMetric(float64(size)/float64(text.Len()), "stored/text")
		})
	}
}
