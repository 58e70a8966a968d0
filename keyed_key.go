package ckpt

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"unsafe"
)

// Key is the type of a keyed state's keys: a string or an integer type
// (named ones too). Keys are encoded so that byte order is key order
// (docs/FORMAT.md): a string as its bytes, an unsigned integer as 8 bytes
// big-endian, a signed one likewise with its sign bit flipped.
type Key interface {
	~string | ~int | ~int8 | ~int16 | ~int32 | ~int64 |
		~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~uintptr
}

// keyKind says how keys of K are encoded; it is recorded in the manifest
// so that a state is never read back with keys of another kind.
type keyKind struct {
	name   string // "string", "int" or "uint"
	signed bool
	size   uintptr
}

func keyKindOf[K Key]() keyKind {
	t := reflect.TypeFor[K]()
	switch t.Kind() {
	case reflect.String:
		return keyKind{name: "string"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return keyKind{name: "int", signed: true, size: t.Size()}
	default:
		return keyKind{name: "uint", size: t.Size()}
	}
}

// appendKey appends the order-preserving encoding of k.
func appendKey[K Key](b []byte, kk keyKind, k K) []byte {
	p := unsafe.Pointer(&k)
	if kk.name == "string" {
		return append(b, *(*string)(p)...)
	}
	return binary.BigEndian.AppendUint64(b, intBits(p, kk))
}

func intBits(p unsafe.Pointer, kk keyKind) uint64 {
	var v uint64
	if kk.signed {
		var s int64
		switch kk.size {
		case 1:
			s = int64(*(*int8)(p))
		case 2:
			s = int64(*(*int16)(p))
		case 4:
			s = int64(*(*int32)(p))
		default:
			s = *(*int64)(p)
		}
		v = uint64(s) ^ 1<<63
	} else {
		switch kk.size {
		case 1:
			v = uint64(*(*uint8)(p))
		case 2:
			v = uint64(*(*uint16)(p))
		case 4:
			v = uint64(*(*uint32)(p))
		default:
			v = *(*uint64)(p)
		}
	}
	return v
}

// decodeKey is the inverse of appendKey.
func decodeKey[K Key](kk keyKind, b []byte) (K, error) {
	var k K
	p := unsafe.Pointer(&k)
	if kk.name == "string" {
		*(*string)(p) = string(b)
		return k, nil
	}
	if len(b) != 8 {
		return k, fmt.Errorf("integer key of %d bytes", len(b))
	}
	v := binary.BigEndian.Uint64(b)
	if kk.signed {
		s := int64(v ^ 1<<63)
		switch kk.size {
		case 1:
			*(*int8)(p) = int8(s)
		case 2:
			*(*int16)(p) = int16(s)
		case 4:
			*(*int32)(p) = int32(s)
		default:
			*(*int64)(p) = s
		}
		return k, nil
	}
	switch kk.size {
	case 1:
		*(*uint8)(p) = uint8(v)
	case 2:
		*(*uint16)(p) = uint16(v)
	case 4:
		*(*uint32)(p) = uint32(v)
	default:
		*(*uint64)(p) = v
	}
	return k, nil
}
