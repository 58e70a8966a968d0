package codec

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// Compression is a block compression for state chunks. Its numeric value is
// written in every blob header, so the values below never change.
type Compression uint8

const (
	// None stores bytes as they are.
	None Compression = 0
	// Zstd is Zstandard at its fastest level: checkpoints are written far
	// more often than they are read, so encode speed matters most.
	Zstd Compression = 1
	// S2 is S2 (github.com/klauspost/compress/s2), Snappy's faster and
	// more compact successor, block format, default level: about 2.5
	// times as fast as Zstd to compress and 1.5 times to decompress, for
	// about 1.6 times the bytes (order records in CSV: 2.27 times
	// smaller against Zstd's 3.76; docs/BENCHMARKS.md). Blobs and
	// manifests that use it are of format version 2 (docs/FORMAT.md).
	S2 Compression = 2
)

// String returns "none", "zstd" or "s2".
func (c Compression) String() string {
	switch c {
	case None:
		return "none"
	case Zstd:
		return "zstd"
	case S2:
		return "s2"
	}
	return fmt.Sprintf("compression(%d)", uint8(c))
}

// ParseCompression reads a name written by String.
func ParseCompression(s string) (Compression, error) {
	switch s {
	case "none":
		return None, nil
	case "zstd":
		return Zstd, nil
	case "s2":
		return S2, nil
	}
	return 0, fmt.Errorf("codec: unknown compression %q (use s2, zstd or none)", s)
}

// MaxBlock is the largest block Compress and Decompress accept. It bounds
// the memory a corrupt or hostile header can make a reader allocate.
const MaxBlock = 64 << 20

var (
	zstdOnce sync.Once
	zstdEnc  *zstd.Encoder
	zstdDec  *zstd.Decoder
	zstdErr  error
)

func zstdCoders() (*zstd.Encoder, *zstd.Decoder, error) {
	zstdOnce.Do(func() {
		n := min(runtime.GOMAXPROCS(0), 8)
		zstdEnc, zstdErr = zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderConcurrency(n),
			zstd.WithEncoderCRC(false)) // blobs carry their own checksums
		if zstdErr != nil {
			return
		}
		zstdDec, zstdErr = zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(n),
			zstd.WithDecoderMaxMemory(MaxBlock),
			zstd.WithDecoderMaxWindow(MaxBlock))
	})
	return zstdEnc, zstdDec, zstdErr
}

// Compress appends the compressed form of src to dst. It is safe for
// concurrent use.
func (c Compression) Compress(dst, src []byte) ([]byte, error) {
	switch c {
	case None:
		return append(dst, src...), nil
	case Zstd:
		enc, _, err := zstdCoders()
		if err != nil {
			return nil, err
		}
		return enc.EncodeAll(src, dst), nil
	case S2:
		if len(src) > MaxBlock {
			return nil, fmt.Errorf("codec: s2: block of %d bytes exceeds the %d-byte limit", len(src), MaxBlock)
		}
		n := s2.MaxEncodedLen(len(src))
		dst = slices.Grow(dst, n)
		out := s2.Encode(dst[len(dst):len(dst)+n], src)
		return dst[:len(dst)+len(out)], nil
	}
	return nil, fmt.Errorf("codec: unknown compression %d", c)
}

// ErrCorrupt: compressed bytes do not decode to what their header says.
var ErrCorrupt = errors.New("codec: corrupt compressed data")

// Decompress appends the decompressed src to dst and checks that exactly
// rawLen bytes came out. It is safe for concurrent use.
func (c Compression) Decompress(dst, src []byte, rawLen int) ([]byte, error) {
	if rawLen < 0 || rawLen > MaxBlock {
		return nil, fmt.Errorf("%w: block size %d out of range", ErrCorrupt, rawLen)
	}
	start := len(dst)
	switch c {
	case None:
		dst = append(dst, src...)
	case Zstd:
		_, dec, err := zstdCoders()
		if err != nil {
			return nil, err
		}
		if cap(dst)-len(dst) < rawLen {
			nd := make([]byte, len(dst), len(dst)+rawLen)
			copy(nd, dst)
			dst = nd
		}
		dst, err = dec.DecodeAll(src, dst)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
	case S2:
		// The block states its decoded length first: checked before
		// anything is allocated or decoded.
		n, err := s2.DecodedLen(src)
		if err != nil {
			return nil, fmt.Errorf("%w: s2: %v", ErrCorrupt, err)
		}
		if n != rawLen {
			return nil, fmt.Errorf("%w: s2 block decodes to %d bytes, header says %d", ErrCorrupt, n, rawLen)
		}
		dst = slices.Grow(dst, n)
		out, err := s2.Decode(dst[len(dst):len(dst)+n], src)
		if err != nil {
			return nil, fmt.Errorf("%w: s2: %v", ErrCorrupt, err)
		}
		if len(out) != n || (n > 0 && &out[0] != &dst[len(dst) : len(dst)+n][0]) {
			return nil, fmt.Errorf("%w: s2 block decodes to %d bytes, header says %d", ErrCorrupt, len(out), rawLen)
		}
		dst = dst[:len(dst)+n]
	default:
		return nil, fmt.Errorf("%w: unknown compression %d", ErrCorrupt, c)
	}
	if got := len(dst) - start; got != rawLen {
		return nil, fmt.Errorf("%w: %d bytes decoded, header says %d", ErrCorrupt, got, rawLen)
	}
	return dst, nil
}
