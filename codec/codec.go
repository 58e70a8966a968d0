// Package codec turns user state into bytes and back, and compresses the
// bytes. A codec's name is recorded in every checkpoint, so that state is
// always decoded by the codec that encoded it.
package codec

import (
	"encoding"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Codec encodes values to a stream and decodes them back. Encode and Decode
// must be safe for concurrent use; the built-in codecs are stateless.
type Codec interface {
	// Name identifies the codec in checkpoints ("json", "gob", "binary").
	Name() string
	// Encode writes v to w.
	Encode(w io.Writer, v any) error
	// Decode reads one value written by Encode from r into v, a pointer.
	Decode(r io.Reader, v any) error
}

// JSON is encoding/json: readable, portable, and slower and larger than the
// binary codecs. It is the default.
type JSON struct{}

// Name returns "json".
func (JSON) Name() string { return "json" }

// Encode writes v as one JSON document.
func (JSON) Encode(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }

// Decode reads one JSON document into v and refuses trailing data.
func (JSON) Decode(r io.Reader, v any) error {
	d := json.NewDecoder(r)
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("json: %w", err)
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("json: trailing data after the state")
	}
	return nil
}

// Gob is encoding/gob: compact and fast for Go structs, maps and slices,
// and readable only by Go.
type Gob struct{}

// Name returns "gob".
func (Gob) Name() string { return "gob" }

// Encode writes v as a gob stream.
func (Gob) Encode(w io.Writer, v any) error { return gob.NewEncoder(w).Encode(v) }

// Decode reads a gob stream into v.
func (Gob) Decode(r io.Reader, v any) error {
	if err := gob.NewDecoder(r).Decode(v); err != nil {
		return fmt.Errorf("gob: %w", err)
	}
	return nil
}

// Binary uses the value's own encoding.BinaryMarshaler and
// encoding.BinaryUnmarshaler (or BinaryAppender): the most compact form,
// for state types that define one.
//
// Decode hands UnmarshalBinary a buffer of its own, which nothing else
// references and which ckpt never reads or writes again: unlike what
// encoding.BinaryUnmarshaler's contract allows in general, the value may
// keep it (or slices of it) rather than copy it. For a large state that
// is mostly bytes, that saves a copy of the whole state on every load.
type Binary struct{}

// Name returns "binary".
func (Binary) Name() string { return "binary" }

// Encode writes the bytes of v.MarshalBinary (or AppendBinary).
func (Binary) Encode(w io.Writer, v any) error {
	var b []byte
	var err error
	switch m := v.(type) {
	case encoding.BinaryAppender:
		b, err = m.AppendBinary(nil)
	case encoding.BinaryMarshaler:
		b, err = m.MarshalBinary()
	default:
		return fmt.Errorf("binary: %T implements neither encoding.BinaryMarshaler nor encoding.BinaryAppender", v)
	}
	if err != nil {
		return fmt.Errorf("binary: %w", err)
	}
	_, err = w.Write(b)
	return err
}

// Decode reads all of r into a new buffer and passes it to
// v.UnmarshalBinary, which may keep it (see Binary).
func (Binary) Decode(r io.Reader, v any) error {
	u, ok := v.(encoding.BinaryUnmarshaler)
	if !ok {
		return fmt.Errorf("binary: %T does not implement encoding.BinaryUnmarshaler", v)
	}
	var b []byte
	var err error
	if s, ok := r.(interface{ Size() int64 }); ok && s.Size() >= 0 {
		// The reader knows how much comes: read it into one buffer of that
		// size (plus one byte, to see the end) instead of growing one.
		b = make([]byte, s.Size()+1)
		n, rerr := io.ReadFull(r, b)
		// Either EOF is the expected end: ErrUnexpectedEOF after some
		// bytes, EOF when the value is empty.
		if rerr != nil && rerr != io.ErrUnexpectedEOF && rerr != io.EOF {
			return rerr
		}
		b = b[:n]
	} else if b, err = io.ReadAll(r); err != nil {
		return err
	}
	if err := u.UnmarshalBinary(b); err != nil {
		return fmt.Errorf("binary: %w", err)
	}
	return nil
}

// ByName returns the built-in codec called name.
func ByName(name string) (Codec, error) {
	switch name {
	case "json":
		return JSON{}, nil
	case "gob":
		return Gob{}, nil
	case "binary":
		return Binary{}, nil
	}
	return nil, fmt.Errorf("codec: unknown codec %q (built in: json, gob, binary)", name)
}
