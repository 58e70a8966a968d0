package source

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Compressed inputs. A file named *.gz is read through gzip (several
// members in a row, as concatenated files have, are one stream), *.zst and
// *.zstd through zstd. Positions in them are offsets in the decompressed
// text, so a checkpoint is the same whether a file is compressed or not; a
// resume decompresses the file from its start up to the position again
// (neither format can start in the middle), which costs a pass over the
// part already read of that one file (see docs/CLI.md).

// CompressionSuffixes are the file name endings of the compressed inputs
// the sources read.
var CompressionSuffixes = []string{".gz", ".zst", ".zstd"}

// CompressionSuffix returns the compression ending of name (".gz",
// ".zst", ".zstd"), or "" for a plain file.
func CompressionSuffix(name string) string {
	lower := strings.ToLower(name)
	for _, s := range CompressionSuffixes {
		if strings.HasSuffix(lower, s) {
			return name[len(name)-len(s):]
		}
	}
	return ""
}

// countingReader counts the bytes read through it: the compressed bytes a
// decoder has taken, for progress.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// decoder is an open decompressor over a file's bytes.
type decoder struct {
	io.Reader
	raw   *countingReader
	close func()
}

// newDecoder returns a decompressor for the file of the given suffix,
// reading raw.
func newDecoder(suffix string, raw *countingReader) (*decoder, error) {
	switch strings.ToLower(suffix) {
	case ".gz":
		z, err := gzip.NewReader(raw)
		if err != nil {
			return nil, err
		}
		return &decoder{Reader: z, raw: raw, close: func() { z.Close() }}, nil
	case ".zst", ".zstd":
		z, err := zstd.NewReader(raw, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, err
		}
		return &decoder{Reader: z, raw: raw, close: z.Close}, nil
	}
	return nil, fmt.Errorf("unknown compression %q", suffix)
}

// errCorrupt wraps a decompression failure in the input's terms.
func corruptInput(path string, err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%s: the compressed data ends early (a file cut short, or still being written): %w", path, err)
	}
	return fmt.Errorf("%s: cannot decompress: %w", path, err)
}
