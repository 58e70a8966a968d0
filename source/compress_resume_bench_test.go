package source_test

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/ckptdev/ckpt/internal/gen"
	"github.com/ckptdev/ckpt/source"
)

// memberWriter is a gzip or zstd writer that Reset starts a new member
// or frame of.
type benchMemberWriter interface {
	io.WriteCloser
	Reset(io.Writer)
}

// writeMembers compresses text into path with enc, a member or frame per
// every bytes of text (0: one), and returns the position of the record
// that starts at offset at (line line): with the member that holds it
// when withMember.
func writeMembers(b *testing.B, path string, text []byte, enc benchMemberWriter, every int, at, line int64) source.Position {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	cw := &countWriter{w: f}
	var m source.Position
	if every == 0 {
		every = len(text)
	}
	for from := 0; from < len(text); from += every {
		if int64(from) < at {
			m.MemberOffset, m.MemberStart = cw.n, int64(from)
		}
		enc.Reset(cw)
		if _, err := enc.Write(text[from:min(len(text), from+every)]); err != nil {
			b.Fatal(err)
		}
		if err := enc.Close(); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	c, err := source.OpenCSV([]string{path}, nil, source.CSVOptions{})
	if err != nil {
		b.Fatal(err)
	}
	raw, _ := c.Position()
	c.Close()
	var pos source.Position
	json.Unmarshal(raw, &pos)
	pos.Offset, pos.Line, pos.MemberOffset, pos.MemberStart = at, line, m.MemberOffset, m.MemberStart
	return pos
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// BenchmarkCompressedResume: resuming a compressed CSV at 99 % of its
// text, time to the first record after the position, for one gzip member
// or zstd frame (decompressed again from the start) and for a member or
// frame per 16 MiB of text (decompressed from the one that holds the
// position), against the plain file. 200 MB of sample CSV (gzip makes it
// 23 % of that); BIG=1: 2 GB.
// text-MB/s is the text decompressed again per second of the resume.
func BenchmarkCompressedResume(b *testing.B) {
	size := 200 << 20
	if os.Getenv("BIG") == "1" {
		size = 2000 << 20
	}
	// Sample CSV as the pipeline benchmarks read (quoted fields, line
	// ends in fields, non-ASCII text), about 61 bytes a row.
	var text bytes.Buffer
	text.Grow(size + 1<<10)
	if err := gen.Write(&text, gen.Options{Rows: int64(size / 61), Seed: 1}); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	gz, _ := gzip.NewWriterLevel(nil, gzip.DefaultCompression)
	zs, _ := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	plain := filepath.Join(dir, "in.csv")
	if err := os.WriteFile(plain, text.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	// The record at 99 % of the text, and the plain file's position there.
	c, err := source.OpenCSV([]string{plain}, nil, source.CSVOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var at, line int64
	for at == 0 {
		row, err := c.Next()
		if err != nil {
			b.Fatal(err)
		}
		if row.Offset >= int64(text.Len())*99/100 {
			at, line = row.Offset, row.Line
		}
	}
	raw, _ := c.Position()
	c.Close()
	var plainPos source.Position
	json.Unmarshal(raw, &plainPos)
	plainPos.Offset, plainPos.Line = at, line
	cases := []struct {
		name string
		path string
		pos  source.Position
	}{
		{"file=plain", plain, plainPos},
		{"file=gzip-1-member", filepath.Join(dir, "one.csv.gz"), source.Position{}},
		{"file=gzip-members", filepath.Join(dir, "members.csv.gz"), source.Position{}},
		{"file=zstd-1-frame", filepath.Join(dir, "one.csv.zst"), source.Position{}},
		{"file=zstd-frames", filepath.Join(dir, "frames.csv.zst"), source.Position{}},
	}
	cases[1].pos = writeMembers(b, cases[1].path, text.Bytes(), gz, 0, at, line)
	cases[2].pos = writeMembers(b, cases[2].path, text.Bytes(), gz, 16<<20, at, line)
	cases[3].pos = writeMembers(b, cases[3].path, text.Bytes(), zs, 0, at, line)
	cases[4].pos = writeMembers(b, cases[4].path, text.Bytes(), zs, 16<<20, at, line)
	for _, tc := range cases {
		resume, _ := json.Marshal(tc.pos)
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				c, err := source.OpenCSV([]string{tc.path}, resume, source.CSVOptions{})
				if err != nil {
					b.Fatal(err)
				}
				row, err := c.Next()
				if err != nil {
					b.Fatal(err)
				}
				if row.Offset != at {
					b.Fatalf("first record at %d, want %d", row.Offset, at)
				}
				c.Close()
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms-to-first-record")
			b.ReportMetric(float64(at-tc.pos.MemberStart)/1e6/(b.Elapsed().Seconds()/float64(b.N)), "text-MB/s")
		})
	}
}
