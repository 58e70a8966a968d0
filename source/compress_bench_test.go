package source_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/ckptdev/ckpt/source"
)

// compressedBenchFiles writes a CSV of about size bytes, plain, gzip and
// zstd, and returns their paths and the offset of the record at 99 %.
func compressedBenchFiles(b *testing.B, size int) (map[string]string, int64) {
	b.Helper()
	dir := b.TempDir()
	var text bytes.Buffer
	text.WriteString("id,city,amount,note\n")
	var at99 int64
	for i := 0; text.Len() < size; i++ {
		if at99 == 0 && text.Len() >= size*99/100 {
			at99 = int64(text.Len())
		}
		fmt.Fprintf(&text, "%d,city-%d,%d.%02d,some note about order %d\n", i, i%1000, i%100000, i%100, i)
	}
	paths := map[string]string{"plain": filepath.Join(dir, "in.csv"), "gzip": filepath.Join(dir, "in.csv.gz"), "zstd": filepath.Join(dir, "in.csv.zst")}
	var gz, zs bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.DefaultCompression)
	zw.Write(text.Bytes())
	zw.Close()
	sw, _ := zstd.NewWriter(&zs)
	sw.Write(text.Bytes())
	sw.Close()
	for k, v := range map[string][]byte{"plain": text.Bytes(), "gzip": gz.Bytes(), "zstd": zs.Bytes()} {
		if err := os.WriteFile(paths[k], v, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return paths, at99
}

// BenchmarkCompressedInput: reading a whole input, and resuming at 99 %
// of it (time to the first record after the checkpoint), plain, gzip and
// zstd. A compressed file is decompressed again up to the position.
func BenchmarkCompressedInput(b *testing.B) {
	paths, at99 := compressedBenchFiles(b, 64<<20)
	for _, kind := range []string{"plain", "gzip", "zstd"} {
		p := []string{paths[kind]}
		b.Run("read/"+kind, func(b *testing.B) {
			b.SetBytes(64 << 20)
			for b.Loop() {
				c, err := source.OpenCSV(p, nil, source.CSVOptions{})
				if err != nil {
					b.Fatal(err)
				}
				for {
					if _, err := c.Next(); err == io.EOF {
						break
					} else if err != nil {
						b.Fatal(err)
					}
				}
				c.Close()
			}
		})
		c, err := source.OpenCSV(p, nil, source.CSVOptions{})
		if err != nil {
			b.Fatal(err)
		}
		raw, _ := c.Position()
		c.Close()
		var pos source.Position
		json.Unmarshal(raw, &pos)
		pos.Offset, pos.Line = at99, 2
		resume, _ := json.Marshal(pos)
		b.Run("resume-at-99%/"+kind, func(b *testing.B) {
			for b.Loop() {
				c, err := source.OpenCSV(p, resume, source.CSVOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.Next(); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}
