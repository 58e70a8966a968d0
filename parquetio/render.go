package parquetio

import (
	"encoding/hex"
	"fmt"
	"math/big"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/deprecated"
	"github.com/parquet-go/parquet-go/format"

	"github.com/ckptdev/ckpt/sink/pgsink"
)

// Kind is how a column's values are written as JSON.
type Kind int

// The kinds.
const (
	KindString Kind = iota // a JSON string
	KindNumber             // a JSON number (a non-finite float is a string)
	KindBool               // true or false
)

// SourceColumn is a column of a Parquet input: its name, how its values
// are written as JSON, and the type of the table column it loads into.
type SourceColumn struct {
	Name string
	Kind Kind
	Type pgsink.ColumnType
	// render appends the text of a non-null value of kind kind.
	render func(b []byte, v parquet.Value) []byte
	kind   parquet.Kind
}

// columnsOf reads the columns of a flat schema: a root group of leaf
// columns, none repeated.
func columnsOf(path string, schema []format.SchemaElement) ([]SourceColumn, error) {
	if len(schema) == 0 {
		return nil, fmt.Errorf("parquet: %s has no schema", path)
	}
	root := schema[0]
	n := int(root.NumChildren.V)
	if n != len(schema)-1 {
		return nil, fmt.Errorf("parquet: %s has nested columns (groups, lists or maps): ckpt reads flat Parquet files only", path)
	}
	cols := make([]SourceColumn, n)
	for i := range n {
		e := &schema[i+1]
		if e.NumChildren.V > 0 || (e.RepetitionType.Valid && e.RepetitionType.V == format.Repeated) {
			return nil, fmt.Errorf("parquet: %s: column %q is nested or repeated: ckpt reads flat Parquet files only", path, e.Name)
		}
		cols[i] = column(e)
	}
	return cols, nil
}

// column chooses how to write a leaf column's values as text.
func column(e *format.SchemaElement) SourceColumn {
	c := SourceColumn{Name: e.Name, kind: parquet.Kind(e.Type.V)}
	lt := e.LogicalType.Value
	ct, hasCT := e.ConvertedType.Get()
	scale := -1
	switch t := lt.(type) {
	case *format.DecimalType:
		scale = int(t.Scale)
	default:
		if hasCT && ct == deprecated.Decimal {
			scale = int(e.Scale.V)
		}
	}
	if scale >= 0 {
		c.Kind, c.Type = KindNumber, pgsink.Numeric
		c.render = func(b []byte, v parquet.Value) []byte { return appendDecimal(b, v, scale) }
		return c
	}
	switch e.Type.V {
	case format.Boolean:
		c.Kind, c.Type = KindBool, pgsink.Boolean
		c.render = func(b []byte, v parquet.Value) []byte { return strconv.AppendBool(b, v.Boolean()) }
	case format.Int32, format.Int64:
		c.render, c.Kind, c.Type = intRenderer(e, lt, ct, hasCT)
	case format.Int96:
		c.Type = pgsink.Timestamptz
		c.render = func(b []byte, v parquet.Value) []byte {
			return appendTime(b, v.Int96(), true)
		}
	case format.Float:
		c.Kind, c.Type = KindNumber, pgsink.Double
		c.render = func(b []byte, v parquet.Value) []byte { return appendFloat(b, float64(v.Float()), 32) }
	case format.Double:
		c.Kind, c.Type = KindNumber, pgsink.Double
		c.render = func(b []byte, v parquet.Value) []byte { return appendFloat(b, v.Double(), 64) }
	default: // byte arrays
		_, isUUID := lt.(*format.UUIDType)
		switch {
		case isUUID && e.TypeLength.V == 16:
			c.render = appendUUID
		case isText(lt, ct, hasCT):
			c.render = func(b []byte, v parquet.Value) []byte { return append(b, v.ByteArray()...) }
		default:
			c.render = appendBytes
		}
	}
	return c
}

func isText(lt format.LogicalTypeValue, ct deprecated.ConvertedType, hasCT bool) bool {
	switch lt.(type) {
	case *format.StringType, *format.EnumType, *format.JsonType:
		return true
	}
	return hasCT && (ct == deprecated.UTF8 || ct == deprecated.Enum || ct == deprecated.Json)
}

// timeUnit returns nanoseconds per unit of u.
func timeUnit(u format.TimeUnit) int64 {
	switch u.Value.(type) {
	case *format.MilliSeconds:
		return 1e6
	case *format.NanoSeconds:
		return 1
	}
	return 1e3
}

func intRenderer(e *format.SchemaElement, lt format.LogicalTypeValue, ct deprecated.ConvertedType, hasCT bool) (func([]byte, parquet.Value) []byte, Kind, pgsink.ColumnType) {
	i64 := e.Type.V == format.Int64
	get := func(v parquet.Value) int64 {
		if i64 {
			return v.Int64()
		}
		return int64(v.Int32())
	}
	unit, utc, isTS, isTime := int64(0), true, false, false
	switch t := lt.(type) {
	case *format.TimestampType:
		unit, utc, isTS = timeUnit(t.Unit), t.IsAdjustedToUTC, true
	case *format.TimeType:
		unit, isTime = timeUnit(t.Unit), true
	case *format.DateType:
		return func(b []byte, v parquet.Value) []byte {
			return time.Unix(get(v)*86400, 0).UTC().AppendFormat(b, time.DateOnly)
		}, KindString, pgsink.Text
	case *format.IntType:
		if !t.IsSigned && t.BitWidth == 64 {
			return func(b []byte, v parquet.Value) []byte { return strconv.AppendUint(b, uint64(v.Int64()), 10) }, KindNumber, pgsink.Numeric
		}
		if !t.IsSigned && t.BitWidth == 32 {
			return func(b []byte, v parquet.Value) []byte { return strconv.AppendUint(b, uint64(uint32(v.Int32())), 10) }, KindNumber, pgsink.BigInt
		}
	case nil:
		switch {
		case hasCT && (ct == deprecated.TimestampMillis || ct == deprecated.TimestampMicros):
			unit, isTS = map[bool]int64{true: 1e6, false: 1e3}[ct == deprecated.TimestampMillis], true
		case hasCT && (ct == deprecated.TimeMillis || ct == deprecated.TimeMicros):
			unit, isTime = map[bool]int64{true: 1e6, false: 1e3}[ct == deprecated.TimeMillis], true
		case hasCT && ct == deprecated.Date:
			return func(b []byte, v parquet.Value) []byte {
				return time.Unix(get(v)*86400, 0).UTC().AppendFormat(b, time.DateOnly)
			}, KindString, pgsink.Text
		case hasCT && ct == deprecated.Uint64:
			return func(b []byte, v parquet.Value) []byte { return strconv.AppendUint(b, uint64(v.Int64()), 10) }, KindNumber, pgsink.Numeric
		case hasCT && ct == deprecated.Uint32:
			return func(b []byte, v parquet.Value) []byte { return strconv.AppendUint(b, uint64(uint32(v.Int32())), 10) }, KindNumber, pgsink.BigInt
		}
	}
	switch {
	case isTS:
		typ := pgsink.Text
		if utc {
			typ = pgsink.Timestamptz
		}
		return func(b []byte, v parquet.Value) []byte {
			n := get(v)
			t := time.Unix(floorDiv(n, 1e9/unit), floorMod(n, 1e9/unit)*unit).UTC()
			return appendTimestamp(b, t, utc)
		}, KindString, typ
	case isTime:
		return func(b []byte, v parquet.Value) []byte {
			t := time.Unix(0, get(v)*unit).UTC()
			return t.AppendFormat(b, "15:04:05.999999999")
		}, KindString, pgsink.Text
	}
	return func(b []byte, v parquet.Value) []byte { return strconv.AppendInt(b, get(v), 10) }, KindNumber, pgsink.BigInt
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

func floorMod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// appendTimestamp writes t in RFC 3339 with a Z when it is a UTC instant,
// else as a local date and time without a zone.
func appendTimestamp(b []byte, t time.Time, utc bool) []byte {
	if utc {
		return t.AppendFormat(b, time.RFC3339Nano)
	}
	return t.AppendFormat(b, "2006-01-02T15:04:05.999999999")
}

// appendTime writes a legacy INT96 timestamp: nanoseconds of the day,
// then the Julian day.
func appendTime(b []byte, w deprecated.Int96, utc bool) []byte {
	nanos := int64(w[0]) | int64(w[1])<<32
	day := int64(w[2]) - 2440588 // Julian day of 1970-01-01
	return appendTimestamp(b, time.Unix(day*86400, nanos).UTC(), utc)
}

func appendFloat(b []byte, f float64, bits int) []byte {
	return strconv.AppendFloat(b, f, 'g', -1, bits)
}

// appendDecimal writes the unscaled integer of v (INT32, INT64, or
// big-endian two's complement bytes) with scale digits after the point.
func appendDecimal(b []byte, v parquet.Value, scale int) []byte {
	var digits []byte
	neg := false
	switch v.Kind() {
	case parquet.Int32, parquet.Int64:
		n := v.Int64()
		if v.Kind() == parquet.Int32 {
			n = int64(v.Int32())
		}
		neg = n < 0
		u := uint64(n)
		if neg {
			u = -u
		}
		digits = strconv.AppendUint(nil, u, 10)
	default:
		raw := v.ByteArray()
		if len(raw) <= 8 {
			var x int64
			for _, c := range raw {
				x = x<<8 | int64(c)
			}
			if len(raw) > 0 && len(raw) < 8 && raw[0]&0x80 != 0 {
				x -= 1 << (8 * len(raw))
			}
			neg = x < 0
			u := uint64(x)
			if neg {
				u = -u
			}
			digits = strconv.AppendUint(nil, u, 10)
		} else {
			var x big.Int
			x.SetBytes(raw)
			if raw[0]&0x80 != 0 {
				x.Sub(&x, new(big.Int).Lsh(big.NewInt(1), uint(8*len(raw))))
			}
			neg = x.Sign() < 0
			x.Abs(&x)
			digits = x.Append(nil, 10)
		}
	}
	if neg {
		b = append(b, '-')
	}
	if scale <= 0 {
		b = append(b, digits...)
		for range -scale {
			b = append(b, '0')
		}
		return b
	}
	if len(digits) <= scale {
		b = append(b, '0', '.')
		for range scale - len(digits) {
			b = append(b, '0')
		}
		return append(b, digits...)
	}
	b = append(b, digits[:len(digits)-scale]...)
	b = append(b, '.')
	return append(b, digits[len(digits)-scale:]...)
}

func appendUUID(b []byte, v parquet.Value) []byte {
	u := v.ByteArray()
	var buf [36]byte
	hex.Encode(buf[0:8], u[0:4])
	buf[8] = '-'
	hex.Encode(buf[9:13], u[4:6])
	buf[13] = '-'
	hex.Encode(buf[14:18], u[6:8])
	buf[18] = '-'
	hex.Encode(buf[19:23], u[8:10])
	buf[23] = '-'
	hex.Encode(buf[24:], u[10:16])
	return append(b, buf[:]...)
}

// appendBytes writes binary data as its text when it is UTF-8, else as
// \x and hex digits (PostgreSQL's bytea form).
func appendBytes(b []byte, v parquet.Value) []byte {
	raw := v.ByteArray()
	if utf8.Valid(raw) {
		return append(b, raw...)
	}
	b = append(b, `\x`...)
	return hex.AppendEncode(b, raw)
}

// IsFinite reports whether the text of a number column's value is a
// finite number, which JSON can write as a number.
func IsFinite(v []byte) bool {
	switch string(v) {
	case "NaN", "+Inf", "-Inf":
		return false
	}
	return true
}
