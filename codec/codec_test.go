package codec_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt/codec"
)

type record struct {
	Name   string
	Counts map[string]int64
	Values []float64
}

// blob implements the binary marshallers over its bytes.
type blob struct{ b []byte }

func (x *blob) MarshalBinary() ([]byte, error) { return x.b, nil }
func (x *blob) UnmarshalBinary(b []byte) error {
	x.b = append([]byte(nil), b...)
	return nil
}

func TestCodecsRoundTrip(t *testing.T) {
	in := record{Name: "x,\"y\"\n", Counts: map[string]int64{"a": 1, "é": -9}, Values: []float64{0.1, -2e300}}
	for _, c := range []codec.Codec{codec.JSON{}, codec.Gob{}} {
		t.Run(c.Name(), func(t *testing.T) {
			var b bytes.Buffer
			if err := c.Encode(&b, in); err != nil {
				t.Fatal(err)
			}
			var out record
			if err := c.Decode(&b, &out); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(in, out) {
				t.Fatalf("got %+v, want %+v", out, in)
			}
			byName, err := codec.ByName(c.Name())
			if err != nil || byName.Name() != c.Name() {
				t.Fatalf("ByName(%q) = %v, %v", c.Name(), byName, err)
			}
		})
	}
	t.Run("binary", func(t *testing.T) {
		in := &blob{b: []byte("\x00raw\xffbytes")}
		var b bytes.Buffer
		if err := (codec.Binary{}).Encode(&b, in); err != nil {
			t.Fatal(err)
		}
		var out blob
		if err := (codec.Binary{}).Decode(&b, &out); err != nil || !bytes.Equal(out.b, in.b) {
			t.Fatalf("got %q, %v", out.b, err)
		}
		if err := (codec.Binary{}).Encode(&b, record{}); err == nil || !strings.Contains(err.Error(), "BinaryMarshaler") {
			t.Fatalf("a type without MarshalBinary: %v", err)
		}
	})
}

func TestJSONRefusesTrailingData(t *testing.T) {
	var v map[string]int
	if err := (codec.JSON{}).Decode(strings.NewReader(`{"a":1} {"b":2}`), &v); err == nil {
		t.Fatal("trailing data accepted")
	}
	if err := (codec.JSON{}).Decode(strings.NewReader(`{"a":`), &v); err == nil {
		t.Fatal("truncated JSON accepted")
	}
}

func TestByNameUnknown(t *testing.T) {
	if _, err := codec.ByName("yaml"); err == nil || !strings.Contains(err.Error(), "json, gob, binary") {
		t.Fatalf("ByName(yaml): %v", err)
	}
}

func TestCompression(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 100_000)
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	text := []byte(strings.Repeat("10000001,2025-01-01,cust-33199,US,SKU-26476,5,283.28\n", 2000))
	for _, comp := range []codec.Compression{codec.None, codec.Zstd, codec.S2} {
		for name, src := range map[string][]byte{"empty": {}, "random": random, "text": text} {
			t.Run(fmt.Sprintf("%s/%s", comp, name), func(t *testing.T) {
				packed, err := comp.Compress([]byte("prefix"), src)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.HasPrefix(packed, []byte("prefix")) {
					t.Fatal("Compress did not append to dst")
				}
				packed = packed[len("prefix"):]
				if comp != codec.None && name == "text" && len(packed) > len(src)/10 {
					t.Errorf("%s left %d of %d bytes of repetitive text", comp, len(packed), len(src))
				}
				out, err := comp.Decompress(nil, packed, len(src))
				if err != nil || !bytes.Equal(out, src) {
					t.Fatalf("round trip: %v", err)
				}
				if _, err := comp.Decompress(nil, packed, len(src)+1); !errors.Is(err, codec.ErrCorrupt) {
					t.Fatalf("wrong length accepted: %v", err)
				}
			})
		}
		if p, err := codec.ParseCompression(comp.String()); err != nil || p != comp {
			t.Errorf("ParseCompression(%q) = %v, %v", comp, p, err)
		}
	}
	if _, err := codec.Zstd.Decompress(nil, []byte("not zstd at all"), 10); !errors.Is(err, codec.ErrCorrupt) {
		t.Fatalf("garbage accepted: %v", err)
	}
	if _, err := codec.Zstd.Decompress(nil, nil, codec.MaxBlock+1); !errors.Is(err, codec.ErrCorrupt) {
		t.Fatalf("a block over the limit accepted: %v", err)
	}
	// An s2 block states its length first; one that states another than
	// the header's, or that is cut short, is refused before decoding.
	packed, err := codec.S2.Compress(nil, text)
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string][]byte{"garbage": []byte("not s2 at all"), "truncated": packed[:len(packed)/2], "empty": nil} {
		if _, err := codec.S2.Decompress(nil, src, len(text)); !errors.Is(err, codec.ErrCorrupt) {
			t.Errorf("s2 %s accepted: %v", name, err)
		}
	}
	if _, err := codec.S2.Decompress(nil, packed, codec.MaxBlock+1); !errors.Is(err, codec.ErrCorrupt) {
		t.Fatalf("a block over the limit accepted: %v", err)
	}
	if _, err := codec.ParseCompression("lz4"); err == nil {
		t.Fatal("ParseCompression(lz4) accepted")
	}
}

// Binary reads a reader that knows its size (as the engine's does) into
// one buffer; an empty value must decode through either kind of reader.
func TestBinaryDecodesWhateverTheReader(t *testing.T) {
	readers := map[string]func([]byte) io.Reader{
		"sized":   func(b []byte) io.Reader { return bytes.NewReader(b) }, // has Size
		"unsized": func(b []byte) io.Reader { return bytes.NewBuffer(b) },
	}
	values := map[string][]byte{"empty": nil, "one byte": {7}, "bytes": []byte("\x00raw\xffbytes")}
	for rname, newReader := range readers {
		for vname, v := range values {
			t.Run(rname+"/"+vname, func(t *testing.T) {
				var b bytes.Buffer
				if err := (codec.Binary{}).Encode(&b, &blob{b: v}); err != nil {
					t.Fatal(err)
				}
				out := blob{b: []byte("stale")}
				if err := (codec.Binary{}).Decode(newReader(b.Bytes()), &out); err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if !bytes.Equal(out.b, v) {
					t.Fatalf("decoded %q, want %q", out.b, v)
				}
			})
		}
	}
}

// keeper keeps the buffer UnmarshalBinary is given.
type keeper struct{ b []byte }

func (x *keeper) UnmarshalBinary(b []byte) error {
	x.b = b
	return nil
}

// Decode's buffer belongs to the value: it shares no memory with what the
// reader was reading from, and a second Decode does not reuse it.
func TestBinaryBufferIsTheValues(t *testing.T) {
	for name, newReader := range map[string]func([]byte) io.Reader{
		"sized":   func(b []byte) io.Reader { return bytes.NewReader(b) },
		"unsized": func(b []byte) io.Reader { return bytes.NewBuffer(b) },
	} {
		t.Run(name, func(t *testing.T) {
			src := []byte("first value")
			var a, b keeper
			if err := (codec.Binary{}).Decode(newReader(src), &a); err != nil {
				t.Fatal(err)
			}
			copy(src, "XXXXX")
			if err := (codec.Binary{}).Decode(newReader([]byte("second value")), &b); err != nil {
				t.Fatal(err)
			}
			if string(a.b) != "first value" || string(b.b) != "second value" {
				t.Fatalf("kept buffers hold %q and %q", a.b, b.b)
			}
		})
	}
}
