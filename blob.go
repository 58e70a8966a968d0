package ckpt

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/ckptdev/ckpt/codec"
)

// A blob holds one chunk of serialized state. Layout (docs/FORMAT.md):
//
//	0  4  magic "CKB" and format version 1
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
	blobVersion    = 1
)

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
	h := dst[:blobHeaderSize]
	copy(h[0:3], blobMagic[:])
	h[3] = blobVersion
	h[4] = byte(comp)
	binary.LittleEndian.PutUint64(h[8:16], uint64(len(raw)))
	binary.LittleEndian.PutUint32(h[16:20], crc32.Checksum(dst[blobHeaderSize:], castagnoli))
	binary.LittleEndian.PutUint32(h[20:24], crc32.Checksum(h[:20], castagnoli))
	return dst, nil
}

// decodeBlob verifies blob and appends its raw bytes to dst. If id is not
// empty, the raw bytes must hash to it.
func decodeBlob(dst, blob []byte, id string) ([]byte, codec.Compression, error) {
	if len(blob) < blobHeaderSize {
		return nil, 0, fmt.Errorf("%w: %d bytes is shorter than a blob header", errBlob, len(blob))
	}
	h := blob[:blobHeaderSize]
	if [3]byte(h[0:3]) != blobMagic {
		return nil, 0, fmt.Errorf("%w: not a ckpt blob (bad magic)", errBlob)
	}
	if got, want := crc32.Checksum(h[:20], castagnoli), binary.LittleEndian.Uint32(h[20:24]); got != want {
		return nil, 0, fmt.Errorf("%w: header checksum mismatch", errBlob)
	}
	if h[3] != blobVersion {
		return nil, 0, fmt.Errorf("%w: blob format version %d was written by a newer ckpt; this ckpt reads version %d: upgrade ckpt to read it", ErrFormat, h[3], blobVersion)
	}
	if h[5] != 0 || h[6] != 0 || h[7] != 0 {
		return nil, 0, fmt.Errorf("%w: reserved header bytes are not zero", errBlob)
	}
	comp := codec.Compression(h[4])
	rawLen := binary.LittleEndian.Uint64(h[8:16])
	if rawLen > codec.MaxBlock {
		return nil, 0, fmt.Errorf("%w: raw length %d exceeds the %d-byte limit", errBlob, rawLen, codec.MaxBlock)
	}
	payload := blob[blobHeaderSize:]
	if got, want := crc32.Checksum(payload, castagnoli), binary.LittleEndian.Uint32(h[16:20]); got != want {
		return nil, 0, fmt.Errorf("%w: payload checksum mismatch (torn or altered)", errBlob)
	}
	start := len(dst)
	out, err := comp.Decompress(dst, payload, int(rawLen))
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", errBlob, err)
	}
	if id != "" && chunkID(out[start:]) != id {
		return nil, 0, fmt.Errorf("%w: content does not match its id", errBlob)
	}
	return out, comp, nil
}
