package sink

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Compression is how a file sink compresses its output.
//
// A compressed output is a series of gzip members or zstd frames, one per
// checkpoint: Flush ends the current one, so the length a checkpoint
// records always ends a whole member or frame, and the file truncated to
// it (which a resume does) is a complete compressed file. gzip, zcat and
// zstd -d read the members or frames in a row as one text, the plain
// output. Each member costs about 20 bytes and starts its dictionary
// afresh, so checkpoints far apart compress best.
//
// The compressed bytes depend only on the text and on where the
// checkpoints fall: a resumed job whose checkpoints fall at the same
// records writes the same bytes as an uninterrupted one.
type Compression string

// The compressions of a file sink.
const (
	Plain Compression = ""
	Gzip  Compression = "gzip"
	Zstd  Compression = "zstd"
)

// The levels compressed outputs are written at: gzip's default (6) and
// zstd's default (level 3), as the gzip and zstd commands use. Tests and
// benchmarks change them; see docs/BENCHMARKS.md for what they cost
// against a plain output, and against gzip's fastest level.
var (
	gzipLevel = gzip.DefaultCompression
	zstdLevel = zstd.SpeedDefault
)

// CompressionOf returns the compression a file name asks for by its
// ending: .gz gzip, .zst or .zstd zstd, anything else Plain.
func CompressionOf(path string) Compression {
	lower := strings.ToLower(path)
	switch {
	case strings.HasSuffix(lower, ".gz"):
		return Gzip
	case strings.HasSuffix(lower, ".zst"), strings.HasSuffix(lower, ".zstd"):
		return Zstd
	}
	return Plain
}

func (c Compression) name() string {
	if c == Plain {
		return "a plain file"
	}
	return string(c)
}

// memberWriter is a gzip or zstd writer that starts a new member or frame
// on Reset and ends it on Close.
type memberWriter interface {
	io.WriteCloser
	Reset(io.Writer)
}

// compressor compresses a file sink's output into out, which the sink
// hands to the OS.
type compressor struct {
	kind Compression
	enc  memberWriter
	out  bytes.Buffer
	open bool // a member is started
}

func newCompressor(c Compression) (*compressor, error) {
	z := &compressor{kind: c}
	switch c {
	case Gzip:
		enc, err := gzip.NewWriterLevel(&z.out, gzipLevel)
		if err != nil {
			return nil, err
		}
		z.enc = enc
	case Zstd:
		// One goroutine: the sink is written from one, and the frames
		// come out the same however the writes are cut. Zero frames
		// are written, so that an output of no records is a valid file.
		enc, err := zstd.NewWriter(&z.out, zstd.WithEncoderLevel(zstdLevel),
			zstd.WithEncoderConcurrency(1), zstd.WithZeroFrames(true))
		if err != nil {
			return nil, err
		}
		z.enc = enc
	default:
		return nil, fmt.Errorf("unknown output compression %q (gzip or zstd)", string(c))
	}
	return z, nil
}

// compress compresses p into the current member, starting one if none
// is, and hands what the encoder has produced to the OS.
func (w *File) compress(p []byte) error {
	z := w.z
	if !z.open {
		z.enc.Reset(&z.out)
		z.open = true
	}
	if _, err := z.enc.Write(p); err != nil {
		w.err = fmt.Errorf("compress %s: %w (output from byte %d on is lost; resume from the last checkpoint)", w.path, err, w.n)
		return w.err
	}
	return w.drain()
}

// endMember ends the current gzip member or zstd frame, if the output is
// compressed. An output that has none yet gets an empty one, so that
// even an output of no records is a valid compressed file.
func (w *File) endMember() error {
	z := w.z
	if z == nil || w.err != nil {
		return w.err
	}
	if !z.open {
		if w.n > 0 {
			return nil
		}
		z.enc.Reset(&z.out)
	}
	z.open = false
	if err := z.enc.Close(); err != nil {
		w.err = fmt.Errorf("compress %s: %w (output from byte %d on is lost; resume from the last checkpoint)", w.path, err, w.n)
		return w.err
	}
	return w.drain()
}

// drain hands the compressed bytes made so far to the OS.
func (w *File) drain() error {
	z := w.z
	if z.out.Len() == 0 {
		return nil
	}
	err := w.writeOS(z.out.Bytes())
	z.out.Reset()
	return err
}
