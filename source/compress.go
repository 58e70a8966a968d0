package source

import (
	"bufio"
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
// text, so a checkpoint is the same whether a file is compressed or not.
//
// Neither format can start decompressing at any byte, but both can at the
// start of a gzip member or zstd frame: a position also records where,
// in the compressed file, the member or frame holding it starts, and at
// which offset of the text (Position.MemberOffset, MemberStart). A resume
// seeks there and decompresses that member only up to the position.
// Files ckpt writes have a member or frame per checkpoint, as bgzip and
// pzstd files have many; a file of one member (gzip's own) is
// decompressed again from its start (about 5 s per GB of text for gzip;
// see docs/ARCHITECTURE.md on why no restart index).

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
// decoder has taken, for progress. n counts from the start of the file.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// member is where a gzip member or zstd frame starts: at byte comp of
// the compressed file, and byte text of the decompressed text.
type member struct{ comp, text int64 }

// decoder is an open decompressor over a file's bytes, that notes where
// each member or frame starts.
type decoder struct {
	raw *countingReader
	br  *bufio.Reader // over raw: the decoders take exactly their bytes from it
	gz  *gzip.Reader
	zd  *zstd.Decoder
	fr  *frameReader
	// text is the offset in the decompressed text of the next byte Read
	// returns; members the starts of the members from the one that holds
	// the reader's position on (see at).
	text    int64
	members []member
}

// newDecoder returns a decompressor for the file of the given suffix,
// reading raw from the start of a member or frame, at byte raw.n of the
// file and byte text of the decompressed text.
func newDecoder(suffix string, raw *countingReader, text int64) (*decoder, error) {
	d := &decoder{raw: raw, br: bufio.NewReaderSize(raw, 64<<10), text: text, members: []member{{raw.n, text}}}
	switch strings.ToLower(suffix) {
	case ".gz":
		// One member at a time, so that the end of each is seen; the
		// flate reader takes bytes from a *bufio.Reader one by one, and
		// no more than the member has.
		z, err := gzip.NewReader(d.br)
		if err != nil {
			return nil, err
		}
		z.Multistream(false)
		d.gz = z
		return d, nil
	case ".zst", ".zstd":
		// One goroutine: the decoder then reads no further than the
		// frame it decodes, which frameReader ends.
		d.fr = &frameReader{br: d.br, at: d.compOffset}
		z, err := zstd.NewReader(d.fr, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, err
		}
		d.zd = z
		return d, nil
	}
	return nil, fmt.Errorf("unknown compression %q", suffix)
}

// compOffset is the offset in the compressed file of the next byte the
// decoder would take.
func (d *decoder) compOffset() int64 { return d.raw.n - int64(d.br.Buffered()) }

// Read returns decompressed text, the members or frames in a row as one.
func (d *decoder) Read(p []byte) (int, error) {
	for {
		var n int
		var err error
		if d.gz != nil {
			n, err = d.gz.Read(p)
		} else {
			n, err = d.zd.Read(p)
		}
		d.text += int64(n)
		if err != io.EOF {
			return n, err
		}
		if d.fr != nil {
			if err := d.fr.done(); err != nil {
				return n, err
			}
		}
		// The end of a member or frame: another may follow.
		next := member{d.compOffset(), d.text}
		if _, perr := d.br.Peek(1); perr == io.EOF {
			return n, io.EOF
		}
		if d.gz != nil {
			if err := d.gz.Reset(d.br); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return n, fmt.Errorf("gzip member at byte %d: %w", next.comp, err)
			}
			d.gz.Multistream(false)
		} else {
			d.fr.reset()
			if err := d.zd.Reset(d.fr); err != nil {
				return n, fmt.Errorf("zstd frame at byte %d: %w", next.comp, err)
			}
		}
		d.members = append(d.members, next)
		if n > 0 {
			return n, nil
		}
	}
}

// at returns the start of the member or frame that holds the byte just
// before off (an offset at most d.text), and forgets those before it: off
// only grows. The byte before, not the one at off: whether the end of a
// member at off has been seen yet depends on how far the reader has read,
// and positions must not. Every start before off has been seen (the bytes
// after it were read), and a resume notes the starts after the one its
// position names, so a resumed run records the same positions as an
// uninterrupted one.
func (d *decoder) at(off int64) member {
	i := 0
	for i+1 < len(d.members) && d.members[i+1].text < off {
		i++
	}
	if i > 0 {
		d.members = append(d.members[:0], d.members[i:]...)
	}
	return d.members[0]
}

func (d *decoder) close() {
	if d.zd != nil {
		d.zd.Close()
	}
	if d.gz != nil {
		d.gz.Close()
	}
}

// errCorrupt wraps a decompression failure in the input's terms.
func corruptInput(path string, err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%s: the compressed data ends early (a file cut short, or still being written): %w", path, err)
	}
	return fmt.Errorf("%s: cannot decompress: %w", path, err)
}

// compressedMagic returns "gzip" or "zstd" if b starts as a file
// compressed so does, for a plain file that is not text.
func compressedMagic(b []byte) string {
	switch {
	case len(b) >= 3 && string(b[:3]) == "\x1f\x8b\x08":
		return "gzip"
	case len(b) >= 4 && string(b[:4]) == "\x28\xb5\x2f\xfd":
		return "zstd"
	}
	return ""
}
