package ckpt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ckptdev/ckpt/codec"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/memstore"
)

// The decoders read bytes from a store, which is to say untrusted bytes:
// they must return an error for anything they do not accept, never panic,
// and what they do accept must survive a round trip.
//
// Checksums make random inputs fail early, so each target takes a flag
// "fix": when set, the target first makes the input's checksums (and the
// manifest's length) right, letting the fuzzer reach the parsers behind
// them.

// fuzzRandom returns n deterministic pseudo-random bytes.
func fuzzRandom(seed uint64, n int) []byte {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	b := make([]byte, n)
	rand.NewChaCha8(s).Read(b)
	return b
}

// seedManifests returns manifests as the writer produces them: written by
// a real job into a memory store, plus hand-built ones using every field.
func seedManifests(tb testing.TB) [][]byte {
	tb.Helper()
	ctx := context.Background()
	st := memstore.New()
	defer st.Close()
	type state struct {
		N    int
		Blob []byte
		Tags map[string]int
	}
	var out [][]byte
	for _, c := range []codec.Codec{codec.JSON{}, codec.Gob{}} {
		for _, uncompressed := range []bool{false, true} {
			job := fmt.Sprintf("seed-%s-%v", c.Name(), uncompressed)
			j, err := Open[state](ctx, job, Config{Backend: st, Codec: c, Uncompressed: uncompressed, NoSignals: true, Retain: -1,
				Metadata: map[string]string{"pipeline": "orders"}})
			if err != nil {
				tb.Fatal(err)
			}
			SetChunkSize(j, 4<<10)
			for i, n := range []int{0, 10, 3000, 20000} {
				j.State = state{N: i, Blob: fuzzRandom(uint64(i), n), Tags: map[string]int{"a": i}}
				j.Advance(ctx, int64(i), int64(n))
				var err error
				switch i {
				case 2:
					_, err = j.Savepoint(ctx, "label")
				case 3:
					_, err = j.Finish(ctx)
				default:
					_, err = j.Checkpoint(ctx)
				}
				if err != nil {
					tb.Fatal(err)
				}
			}
			j.Close()
			names, err := st.List(ctx, checkpointsPrefix(job))
			if err != nil {
				tb.Fatal(err)
			}
			for _, n := range names {
				rc, err := st.Get(ctx, n)
				if err != nil {
					tb.Fatal(err)
				}
				b, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					tb.Fatal(err)
				}
				out = append(out, b)
			}
		}
	}
	inline, err := encodeBlob(nil, []byte("inline state"), codec.None)
	if err != nil {
		tb.Fatal(err)
	}
	full := &Checkpoint{
		Job: "full", Seq: 42, Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Trigger: TriggerShutdown,
		Savepoint: true, Label: "before upgrade", Final: false, Token: 7,
		Writer: store.Owner{ID: "abc", PID: 12, Host: "h", Since: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		Source: json.RawMessage(`{"offset":123,"file":"in.csv"}`), Sink: json.RawMessage(`{"length":99}`),
		Records: 1000, Bytes: 1 << 40,
		State: []StateRef{
			{Name: "state", Codec: "json", Compression: "none", RawSize: 12, StoredSize: int64(len(inline)),
				Chunks: []ChunkRef{{ID: chunkID([]byte("inline state")), Raw: 12, Stored: int64(len(inline)), Data: inline}}},
			{Name: "other", Codec: "gob", Compression: "zstd", RawSize: 100, StoredSize: 60,
				Chunks: []ChunkRef{{ID: chunkID([]byte("x")), Raw: 100, Stored: 60}}},
			{Name: "empty", Codec: "json", Compression: "zstd", Chunks: []ChunkRef{}},
		},
		Metadata: map[string]string{"k": "v", "": "empty key"},
	}
	b, err := encodeManifest(full)
	if err != nil {
		tb.Fatal(err)
	}
	return append(out, b)
}

// manifestWithHeader returns body under a correct version 1 header.
func manifestWithHeader(body []byte) []byte {
	return append([]byte(fmt.Sprintf("%s %d %d %08x\n", manifestMagic, ManifestVersion, len(body), crc32.Checksum(body, castagnoli))), body...)
}

func FuzzDecodeManifest(f *testing.F) {
	for _, m := range seedManifests(f) {
		f.Add(m, false)
		_, body, _ := bytes.Cut(m, []byte("\n"))
		f.Add(body, true)
		// Damaged copies: each must be refused.
		f.Add(m[:len(m)-1], false)
		f.Add(m[:len(m)/2], false)
		f.Add(append(bytes.Clone(m), '\n'), false)
		flipped := bytes.Clone(m)
		flipped[len(m)*2/3] ^= 4
		f.Add(flipped, false)
		f.Add(bytes.Replace(m, []byte("ckpt-manifest 1 "), []byte("ckpt-manifest 3 "), 1), false)
	}
	f.Add([]byte{}, false)
	f.Add([]byte("ckpt-manifest\n"), false)
	f.Add([]byte("ckpt-manifest 1 2 00000000\n{}"), false)
	f.Add([]byte(`{"job":"j","seq":1,"trigger":"manual","state":[{"name":"s","codec":"json","compression":"none","chunks":[{"id":"x","raw":-1}]}]}`), true)

	f.Fuzz(func(t *testing.T, data []byte, fix bool) {
		if fix {
			data = manifestWithHeader(data)
		}
		cp, err := decodeManifest(data)
		if err != nil {
			if cp != nil {
				t.Fatalf("decodeManifest returned a checkpoint and the error %v", err)
			}
			return
		}
		if err := cp.validate(); err != nil {
			t.Fatalf("decodeManifest accepted a manifest that does not validate: %v", err)
		}
		// What decodes re-encodes, and the encoding is a fixed point.
		enc, err := encodeManifest(cp)
		if err != nil {
			t.Fatalf("a decoded manifest does not encode: %v", err)
		}
		cp2, err := decodeManifest(enc)
		if err != nil {
			t.Fatalf("a re-encoded manifest does not decode: %v\n%s", err, enc)
		}
		enc2, err := encodeManifest(cp2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable:\n%s\n%s", enc, enc2)
		}
		if cp2.Job != cp.Job || cp2.Seq != cp.Seq || !cp2.Time.Equal(cp.Time) || cp2.Trigger != cp.Trigger ||
			cp2.Records != cp.Records || cp2.Bytes != cp.Bytes || len(cp2.State) != len(cp.State) ||
			cp2.StoredSize() != cp.StoredSize() || cp2.RawSize() != cp.RawSize() {
			t.Fatalf("round trip changed the checkpoint:\n%+v\n%+v", cp, cp2)
		}
		// Every blob a manifest names is one its job can hold.
		for _, id := range cp.blobIDs() {
			if err := store.ValidName(blobName(cp.Job, id)); err != nil {
				t.Fatalf("manifest names an impossible blob: %v", err)
			}
		}
	})
}

// fixBlob makes the checksums of a blob's header and payload right.
func fixBlob(b []byte) []byte {
	if len(b) < blobHeaderSize {
		return b
	}
	b = bytes.Clone(b)
	binary.LittleEndian.PutUint32(b[16:20], crc32.Checksum(b[blobHeaderSize:], castagnoli))
	binary.LittleEndian.PutUint32(b[20:24], crc32.Checksum(b[:20], castagnoli))
	return b
}

func seedBlobs(tb testing.TB) [][]byte {
	tb.Helper()
	raws := [][]byte{
		{},
		[]byte("a"),
		[]byte(`{"next":10,"sum":45}` + "\n"),
		bytes.Repeat([]byte("ckpt "), 2000),
		fuzzRandom(1, 3000),
	}
	var out [][]byte
	for _, raw := range raws {
		for _, comp := range []codec.Compression{codec.None, codec.Zstd, codec.S2} {
			b, err := encodeBlob(nil, raw, comp)
			if err != nil {
				tb.Fatal(err)
			}
			out = append(out, b)
		}
	}
	return out
}

func FuzzDecodeBlob(f *testing.F) {
	for _, b := range seedBlobs(f) {
		f.Add(b, false)
		f.Add(b[:len(b)-1], false)
		f.Add(b[:blobHeaderSize-1], false)
		flipped := bytes.Clone(b)
		flipped[len(b)-1] ^= 1
		f.Add(flipped, false)
		f.Add(flipped, true) // checksums right, content wrong
		future := bytes.Clone(b)
		future[3] = blobVersion + 1
		f.Add(future, true)
		odd := bytes.Clone(b)
		odd[4] = 7 // an unknown compression
		f.Add(odd, true)
		huge := bytes.Clone(b)
		binary.LittleEndian.PutUint64(huge[8:16], codec.MaxBlock)
		f.Add(huge, true)
	}
	f.Add([]byte{}, false)

	f.Fuzz(func(t *testing.T, blob []byte, fix bool) {
		if fix {
			blob = fixBlob(blob)
		}
		raw, comp, err := decodeBlob(make([]byte, 0, 8), blob, "")
		if err != nil {
			if !errors.Is(err, errBlob) && !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v is neither a verification nor a format error", err)
			}
			return
		}
		// An uncompressed payload is returned in place, not copied.
		if comp == codec.None && len(raw) > 0 && &raw[0] != &blob[blobHeaderSize] {
			t.Fatal("decodeBlob copied an uncompressed payload instead of returning it in place")
		}
		if want := binary.LittleEndian.Uint64(blob[8:16]); uint64(len(raw)) != want {
			t.Fatalf("decoded %d bytes, header says %d", len(raw), want)
		}
		// The id check accepts the right content and nothing else.
		id := chunkID(raw)
		if _, _, err := decodeBlob(nil, blob, id); err != nil {
			t.Fatalf("decodeBlob refuses the id of its own content: %v", err)
		}
		if _, _, err := decodeBlob(nil, blob, chunkID(append(bytes.Clone(raw), 0))); !errors.Is(err, errBlob) {
			t.Fatalf("decodeBlob with another id: %v, want a verification error", err)
		}
		// What decodes re-encodes to a blob with the same content;
		// uncompressed blobs have exactly one encoding.
		enc, err := encodeBlob(nil, raw, comp)
		if err != nil {
			t.Fatalf("decoded content does not encode with %s: %v", comp, err)
		}
		raw2, comp2, err := decodeBlob(nil, enc, id)
		if err != nil || comp2 != comp || !bytes.Equal(raw2, raw) {
			t.Fatalf("re-encoded blob decodes to %d bytes with %s (%v), want %d with %s", len(raw2), comp2, err, len(raw), comp)
		}
		if comp == codec.None && !bytes.Equal(enc, blob) {
			t.Fatal("an uncompressed blob decoded but is not the one encoding of its content")
		}
	})
}
