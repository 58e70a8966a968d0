package parquetio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"

	"github.com/ckptdev/ckpt/sink/pgsink"
)

var errNotUTF8 = errors.New("not valid UTF-8 (Parquet strings must be)")

// encoder turns the text of one column's values into Parquet values.
type encoder struct {
	col   Column
	index int      // the column's place in the row
	dec   [16]byte // the last decimal encoded
	big   big.Int
}

// value encodes v as the column's value. The value may refer to v and to
// e's buffer: it must be written before the next call.
func (e *encoder) value(v []byte, null bool) (parquet.Value, error) {
	if null {
		return parquet.NullValue().Level(0, 0, e.index), nil
	}
	var pv parquet.Value
	switch e.col.Type {
	case pgsink.BigInt:
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return pv, fmt.Errorf("%q is not a 64-bit integer", v)
		}
		pv = parquet.Int64Value(n)
	case pgsink.Double:
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return pv, fmt.Errorf("%q is out of the range of a double", v)
			}
			return pv, fmt.Errorf("%q is not a floating-point number", v)
		}
		pv = parquet.DoubleValue(f)
	case pgsink.Boolean:
		b, ok := parseBool(v)
		if !ok {
			return pv, fmt.Errorf("%q is not a boolean", v)
		}
		pv = parquet.BooleanValue(b)
	case pgsink.Timestamptz:
		t, ok := pgsink.ParseTimestamp(v)
		if !ok {
			return pv, fmt.Errorf("%q is not a timestamp with a time zone (RFC 3339, as 2024-05-01T12:00:00Z)", v)
		}
		us, ok := unixMicros(t)
		if !ok {
			return pv, fmt.Errorf("%q is out of the range of a timestamp in microseconds", v)
		}
		pv = parquet.Int64Value(us)
	case pgsink.Numeric:
		if err := e.decimal(v); err != nil {
			return pv, err
		}
		pv = parquet.FixedLenByteArrayValue(e.dec[:])
	default:
		if !utf8.Valid(v) {
			return pv, errNotUTF8
		}
		pv = parquet.ByteArrayValue(v)
	}
	return pv.Level(0, 1, e.index), nil
}

// unixMicros returns t in microseconds since 1970, rounded, and whether
// it fits an int64.
func unixMicros(t time.Time) (int64, bool) {
	s := t.Unix()
	if s > math.MaxInt64/1_000_000-1 || s < math.MinInt64/1_000_000+1 {
		return 0, false
	}
	return s*1e6 + int64(math.Round(float64(t.Nanosecond())/1e3)), true
}

// parseBool reads the spellings of a boolean PostgreSQL accepts, as the
// typed table output does.
func parseBool(v []byte) (value, ok bool) {
	switch strings.ToLower(strings.TrimSpace(string(v))) {
	case "true", "t", "yes", "y", "on", "1":
		return true, true
	case "false", "f", "no", "n", "off", "0":
		return false, true
	}
	return false, false
}

// decimal encodes the decimal number v (an optional sign, digits with at
// most one point, an optional exponent) exactly, as the 16-byte two's
// complement of v×10^scale, into e.dec. A value with more digits after
// the point than the scale (other than zeros), or more than 38 digits in
// all, cannot be held exactly and is refused.
func (e *encoder) decimal(v []byte) error {
	s := string(v)
	bad := func(why string) error { return fmt.Errorf("%q %s", v, why) }
	mant, exp := s, int64(0)
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		x, err := strconv.ParseInt(s[i+1:], 10, 16)
		if err != nil {
			return bad("is not a decimal number")
		}
		mant, exp = s[:i], x
	}
	neg := false
	if mant != "" && (mant[0] == '+' || mant[0] == '-') {
		neg, mant = mant[0] == '-', mant[1:]
	}
	intPart, frac, _ := strings.Cut(mant, ".")
	digits := intPart + frac
	if digits == "" || !allDigits(digits) {
		return bad("is not a decimal number")
	}
	// v = digits × 10^(exp-len(frac)); we want digits × 10^shift.
	shift := exp - int64(len(frac)) + int64(e.col.Scale)
	if shift < 0 {
		cut := int64(len(digits)) + shift
		if cut < 0 {
			cut = 0
		}
		if strings.Trim(digits[cut:], "0") != "" {
			return bad(fmt.Sprintf("has more digits after the point than the column's %d", e.col.Scale))
		}
		digits, shift = digits[:cut], 0
	}
	digits = strings.TrimLeft(digits, "0")
	if int64(len(digits))+shift > DecimalPrecision {
		return bad(fmt.Sprintf("has more than %d digits (with the column's %d after the point)", DecimalPrecision, e.col.Scale))
	}
	if len(digits)+int(shift) <= 18 {
		var n int64
		for i := 0; i < len(digits); i++ {
			n = n*10 + int64(digits[i]-'0')
		}
		for range shift {
			n *= 10
		}
		if neg {
			n = -n
		}
		hi := uint64(0)
		if n < 0 {
			hi = math.MaxUint64
		}
		binary.BigEndian.PutUint64(e.dec[:8], hi)
		binary.BigEndian.PutUint64(e.dec[8:], uint64(n))
		return nil
	}
	b := &e.big
	b.SetString(digits+strings.Repeat("0", int(shift)), 10)
	if neg {
		b.Neg(b)
	}
	putInt128(&e.dec, b)
	return nil
}

// putInt128 writes b, which fits, as 16-byte big-endian two's complement.
func putInt128(dst *[16]byte, b *big.Int) {
	if b.Sign() >= 0 {
		clear(dst[:])
		b.FillBytes(dst[:])
		return
	}
	// -x = ^(x-1)
	var x big.Int
	x.Neg(b)
	x.Sub(&x, big.NewInt(1))
	clear(dst[:])
	x.FillBytes(dst[:])
	for i := range dst {
		dst[i] = ^dst[i]
	}
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
