package ckpt

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/ckptdev/ckpt/codec"
)

// A blob holds one chunk of serialized state. Layout (docs/FORMAT.md):
//
//	0  4  magic "CKB" and format version: 1, or 2 for compression s2
//	4  1  compression (codec.Compression)
//	5  3  reserved, zero
//	8  8  raw (uncompressed) length, little endian
//	16 4  CRC-32C of the payload as stored
//	20 4  CRC-32C of bytes 0..19
//	24 .. payload
//
// The blob's id is the hex SHA-256 of the raw bytes: content addressed, so
// writing a blob twice is harmless and a later checkpoint may reference a
// blob that an earlier one wrote. The CRCs catch a torn or flipped blob
// before decompression; the SHA-256 proves the decompressed bytes are the
// ones that were saved.
const (
	blobHeaderSize = 24
	// blobVersion is the newest blob format this ckpt reads. It writes
	// the oldest that describes a blob (blobVersionOf), so that a ckpt
	// that reads only version 1 still reads every blob it could before,
	// and refuses one compressed with s2 as of a newer format rather than
	// as damaged.
	blobVersion = 2
)

// blobVersionOf returns the format version of a blob stored with comp:
// 2 for codec.S2, which version 1 does not have, else 1.
func blobVersionOf(comp codec.Compression) byte {
	if comp == codec.S2 {
		return 2
	}
	return 1
}

var (
	blobMagic  = [3]byte{'C', 'K', 'B'}
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// errBlob reports a blob that fails verification; callers wrap it in a
// CorruptError naming the blob.
var errBlob = errors.New("blob fails verification")

// chunkID returns the content address of raw.
func chunkID(raw []byte) string {
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// validChunkID reports whether s is a lowercase hex SHA-256.
func validChunkID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// encodeBlob appends the blob for raw to dst (reusing its capacity).
func encodeBlob(dst, raw []byte, comp codec.Compression) ([]byte, error) {
	dst = append(dst[:0], make([]byte, blobHeaderSize)...)
	dst, err := comp.Compress(dst, raw)
	if err != nil {
		return nil, err
	}
	putBlobHeader(dst[:blobHeaderSize], comp, len(raw), dst[blobHeaderSize:])
	return dst, nil
}

// putBlobHeader writes into h the header of a blob of rawLen raw bytes
// stored as payload with comp. An uncompressed chunk is stored as a
// header and the chunk's own bytes, never copied behind it.
func putBlobHeader(h []byte, comp codec.Compression, rawLen int, payload []byte) {
	clear(h[:blobHeaderSize])
	copy(h[0:3], blobMagic[:])
	h[3] = blobVersionOf(comp)
	h[4] = byte(comp)
	binary.LittleEndian.PutUint64(h[8:16], uint64(rawLen))
	binary.LittleEndian.PutUint32(h[16:20], crc32.Checksum(payload, castagnoli))
	binary.LittleEndian.PutUint32(h[20:24], crc32.Checksum(h[:20], castagnoli))
}

// blobReader yields a blob as its header and then its payload, held apart
// so that an uncompressed chunk goes to the store without a copy. Like a
// bytes.Reader it tells its length (Len), hands its bytes over (WriteTo)
// and seeks (a store retrying a write reads it again), so that every
// backend treats it as the in-memory reader it is.
type blobReader struct {
	head, body []byte
	off        int64
}

func (r *blobReader) size() int64 { return int64(len(r.head) + len(r.body)) }

// part returns the unread bytes of the part at the offset.
func (r *blobReader) part() []byte {
	if r.off < int64(len(r.head)) {
		return r.head[r.off:]
	}
	return r.body[r.off-int64(len(r.head)):]
}

// Len returns the number of bytes not yet read.
func (r *blobReader) Len() int { return int(max(r.size()-r.off, 0)) }

func (r *blobReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if r.off >= r.size() {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && r.off < r.size() {
		k := copy(p[n:], r.part())
		n += k
		r.off += int64(k)
	}
	return n, nil
}

// WriteTo writes the unread bytes to w, each part in one Write.
func (r *blobReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for r.off < r.size() {
		b := r.part()
		k, err := w.Write(b)
		total += int64(k)
		r.off += int64(k)
		if err != nil {
			return total, err
		}
		if k < len(b) {
			return total, io.ErrShortWrite
		}
	}
	return total, nil
}

// Seek sets the offset of the next Read, as bytes.Reader's does.
func (r *blobReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.size()
	default:
		return 0, errors.New("ckpt: blob reader: invalid whence")
	}
	if offset < 0 {
		return 0, errors.New("ckpt: blob reader: negative position")
	}
	r.off = offset
	return offset, nil
}

// blobHeader is what a verified blob header says.
type blobHeader struct {
	comp       codec.Compression
	rawLen     int64
	payloadCRC uint32
}

// parseBlobHeader verifies the header h (blobHeaderSize bytes): its
// checksum, version, reserved bytes and raw length limit.
func parseBlobHeader(h []byte) (blobHeader, error) {
	if len(h) < blobHeaderSize {
		return blobHeader{}, fmt.Errorf("%w: %d bytes is shorter than a blob header", errBlob, len(h))
	}
	if [3]byte(h[0:3]) != blobMagic {
		return blobHeader{}, fmt.Errorf("%w: not a ckpt blob (bad magic)", errBlob)
	}
	if got, want := crc32.Checksum(h[:20], castagnoli), binary.LittleEndian.Uint32(h[20:24]); got != want {
		return blobHeader{}, fmt.Errorf("%w: header checksum mismatch", errBlob)
	}
	if h[3] < 1 || h[3] > blobVersion {
		return blobHeader{}, fmt.Errorf("%w: blob format version %d was written by a newer ckpt; this ckpt reads versions 1 to %d: upgrade ckpt to read it", ErrFormat, h[3], blobVersion)
	}
	if h[5] != 0 || h[6] != 0 || h[7] != 0 {
		return blobHeader{}, fmt.Errorf("%w: reserved header bytes are not zero", errBlob)
	}
	comp := codec.Compression(h[4])
	if h[3] < blobVersionOf(comp) {
		return blobHeader{}, fmt.Errorf("%w: compression %s in a blob of format version %d, which does not have it", errBlob, comp, h[3])
	}
	rawLen := binary.LittleEndian.Uint64(h[8:16])
	if rawLen > codec.MaxBlock {
		return blobHeader{}, fmt.Errorf("%w: raw length %d exceeds the %d-byte limit", errBlob, rawLen, codec.MaxBlock)
	}
	return blobHeader{comp: comp, rawLen: int64(rawLen), payloadCRC: binary.LittleEndian.Uint32(h[16:20])}, nil
}

// decodePayload verifies the payload of a blob with header h and returns
// its raw bytes: the payload itself, in place, when it is stored
// uncompressed, else the payload decompressed into dst's capacity (or a
// new buffer if that is short). If id is not empty, the raw bytes must
// hash to it.
func decodePayload(h blobHeader, payload, dst []byte, id string) ([]byte, error) {
	if crc32.Checksum(payload, castagnoli) != h.payloadCRC {
		return nil, fmt.Errorf("%w: payload checksum mismatch (torn or altered)", errBlob)
	}
	var out []byte
	if h.comp == codec.None {
		if int64(len(payload)) != h.rawLen {
			return nil, fmt.Errorf("%w: %v: %d bytes stored, header says %d", errBlob, codec.ErrCorrupt, len(payload), h.rawLen)
		}
		out = payload
	} else {
		var err error
		if out, err = h.comp.Decompress(dst[:0], payload, int(h.rawLen)); err != nil {
			return nil, fmt.Errorf("%w: %v", errBlob, err)
		}
	}
	if id != "" && chunkID(out) != id {
		return nil, fmt.Errorf("%w: content does not match its id", errBlob)
	}
	return out, nil
}

// decodeBlob verifies blob and returns its raw bytes as decodePayload
// does, and its compression.
func decodeBlob(dst, blob []byte, id string) ([]byte, codec.Compression, error) {
	h, err := parseBlobHeader(blob)
	if err != nil {
		return nil, 0, err
	}
	out, err := decodePayload(h, blob[blobHeaderSize:], dst, id)
	if err != nil {
		return nil, 0, err
	}
	return out, h.comp, nil
}
