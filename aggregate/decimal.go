package aggregate

import (
	"cmp"
	"errors"
	"math"
	"math/big"
	"math/bits"
	"strconv"
	"unsafe"
)

// num is an exact decimal: m × 10^-scale, or b × 10^-scale when b is not
// nil. The int64 form is the common case and costs no allocation; the
// big.Int form holds what the int64 form cannot (a mantissa past int64, a
// scale past maxFastScale). scale is never negative and at most maxScale.
type num struct {
	m     int64
	scale int32
	b     *big.Int
}

const (
	// maxFastScale is the largest scale of the int64 form: 10^18 fits an
	// int64, so aligning two scales multiplies by a power of ten that does.
	maxFastScale = 18
	// maxDigits bounds a value's digits before the point and after it
	// (leading and trailing zeros aside): enough for the exact decimal
	// form of every finite float64 (at most 309 integer digits, at most
	// 1074 fraction digits), while an exponent like 1e999999999 cannot
	// make one value cost gigabytes.
	maxDigits = 1100
	// maxScale bounds a scale: a value's scale after its trailing zeros
	// are dropped is at most maxDigits.
	maxScale = maxDigits
)

var (
	errNotNumber = errors.New("is not a number")
	errRange     = errors.New("is beyond the exact range (at most 1100 digits before and after the point)")
)

// pow10u holds 10^0 ... 10^19, every power of ten a uint64 holds.
var pow10u = func() (p [20]uint64) {
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * 10
	}
	return p
}()

// parseNum reads a number as an exact decimal. It takes an optional sign,
// digits with an optional decimal point, and an optional exponent (1.5e3,
// 2E-7), and hexadecimal floats (0x1p-2) as the float64 they denote.
// Infinities, NaN and anything else are refused. The common case, a
// plain decimal of at most 19 digits and 18 fraction digits, allocates
// nothing.
func parseNum(b []byte) (num, error) {
	i, neg := 0, false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg, i = b[0] == '-', 1
	}
	start := i
	var m uint64
	digits, frac, over, dot := 0, 0, false, false
	for ; i < len(b); i++ {
		c := b[i]
		if c >= '0' && c <= '9' {
			digits++
			if dot {
				frac++
			}
			if m > (math.MaxUint64-9)/10 {
				over = true
			} else {
				m = m*10 + uint64(c-'0')
			}
			continue
		}
		if c == '.' && !dot {
			dot = true
			continue
		}
		break
	}
	end := i
	if digits == 0 {
		return num{}, errNotNumber
	}
	exp := 0
	if i < len(b) && b[i]|0x20 == 'e' {
		i++
		eneg := false
		if i < len(b) && (b[i] == '-' || b[i] == '+') {
			eneg, i = b[i] == '-', i+1
		}
		ed := 0
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			if exp < 1e8 {
				exp = exp*10 + int(b[i]-'0')
			}
			ed++
		}
		if ed == 0 {
			return num{}, errNotNumber
		}
		if eneg {
			exp = -exp
		}
	}
	if i != len(b) {
		if digits == 1 && m == 0 && !dot && i == start+1 && b[i]|0x20 == 'x' {
			return parseHex(b)
		}
		return num{}, errNotNumber
	}
	scale := frac - exp
	if !over && exp == 0 && scale <= maxFastScale && (m < 1<<63 || neg && m == 1<<63) {
		v := int64(m) // -2^63 when m is 2^63, as wanted for neg
		if neg {
			v = -v
		}
		return num{m: v, scale: int32(scale)}, nil
	}
	return parseBig(b[start:end], neg, frac, exp)
}

// parseBig is parseNum's general case: digits (with at most one point)
// holding frac fraction digits, times 10^exp.
func parseBig(digits []byte, neg bool, frac, exp int) (num, error) {
	// Drop leading zeros and trailing fraction zeros: they change
	// neither the value nor (for the bound) the digits that count.
	buf := make([]byte, 0, len(digits))
	for _, c := range digits {
		if c != '.' {
			buf = append(buf, c)
		}
	}
	for len(buf) > 0 && buf[0] == '0' {
		buf = buf[1:]
	}
	for frac > 0 && len(buf) > 0 && buf[len(buf)-1] == '0' {
		buf, frac = buf[:len(buf)-1], frac-1
	}
	// The value is buf × 10^(exp-frac): len(buf)-frac+exp digits before
	// the point and frac-exp after it. (Zero with a huge exponent is
	// refused too, as it would be with another digit.)
	if len(buf)-frac+exp > maxDigits || frac-exp > maxDigits {
		return num{}, errRange
	}
	if len(buf) == 0 {
		return num{}, nil
	}
	x, ok := new(big.Int).SetString(string(buf), 10)
	if !ok {
		return num{}, errNotNumber // unreachable: buf is digits
	}
	if neg {
		x.Neg(x)
	}
	scale := frac - exp
	if scale < 0 {
		x.Mul(x, pow10Big(-scale))
		scale = 0
	}
	return normalize(num{b: x, scale: int32(scale)}), nil
}

// parseHex reads a hexadecimal float as the float64 it denotes, exactly.
func parseHex(b []byte) (num, error) {
	s := unsafe.String(unsafe.SliceData(b), len(b)) // not retained: strconv copies into its errors
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return num{}, errNotNumber
	}
	return floatNum(f), nil
}

// floatNum returns the exact decimal value of a finite float64.
func floatNum(f float64) num {
	r := new(big.Rat).SetFloat64(f)
	// The denominator is 2^k: x/2^k = x·5^k / 10^k.
	k := r.Denom().BitLen() - 1
	x := new(big.Int).Mul(r.Num(), new(big.Int).Exp(big.NewInt(5), big.NewInt(int64(k)), nil))
	return normalize(num{b: x, scale: int32(k)})
}

// normalize returns the int64 form of n when it has one.
func normalize(n num) num {
	if n.b == nil {
		return n
	}
	for n.scale > maxFastScale && n.b.Sign() != 0 {
		// Trailing zeros cost a big.Int where an int64 may do.
		q, r := new(big.Int).QuoRem(n.b, big.NewInt(10), new(big.Int))
		if r.Sign() != 0 {
			break
		}
		n.b, n.scale = q, n.scale-1
	}
	if n.b.Sign() == 0 {
		return num{}
	}
	if n.scale <= maxFastScale && n.b.IsInt64() {
		return num{m: n.b.Int64(), scale: n.scale}
	}
	return n
}

// pow10Big returns 10^n.
func pow10Big(n int) *big.Int {
	if n < len(pow10u) {
		return new(big.Int).SetUint64(pow10u[n])
	}
	return new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil)
}

// bigOf returns n's mantissa at the given scale, scale >= n.scale, as a
// new big.Int.
func bigOf(n *num, scale int32) *big.Int {
	x := new(big.Int)
	if n.b != nil {
		x.Set(n.b)
	} else {
		x.SetInt64(n.m)
	}
	if d := scale - n.scale; d > 0 {
		x.Mul(x, pow10Big(int(d)))
	}
	return x
}

// add sets n to n + v exactly. The int64 form stays while the aligned sum
// fits; past that n becomes a big.Int, which scratch helps update in
// place.
func (n *num) add(v *num, scratch *big.Int) {
	if n.b == nil && v.b == nil {
		a, b, s := n.m, v.m, n.scale
		ok := true
		switch {
		case v.scale > s:
			a, ok = mul10(a, v.scale-s)
			s = v.scale
		case v.scale < s:
			b, ok = mul10(b, s-v.scale)
		}
		if ok {
			if sum, overflow := addInt(a, b); !overflow {
				n.m, n.scale = sum, s
				return
			}
		}
	}
	scale := max(n.scale, v.scale)
	if n.b == nil || n.scale < scale {
		n.b, n.scale = bigOf(n, scale), scale
	}
	if v.b == nil && v.scale == scale {
		n.b.Add(n.b, scratch.SetInt64(v.m))
		return
	}
	n.b.Add(n.b, bigOf(v, scale))
}

// mul10 returns a × 10^d, or false when it does not fit an int64.
func mul10(a int64, d int32) (int64, bool) {
	if d > maxFastScale {
		return 0, false
	}
	p := int64(pow10u[d])
	if a == 0 {
		return 0, true
	}
	r := a * p
	if r/p != a || (a < 0) != (r < 0) {
		return 0, false
	}
	return r, true
}

func addInt(a, b int64) (int64, bool) {
	s := a + b
	return s, (a > 0 && b > 0 && s < 0) || (a < 0 && b < 0 && s >= 0)
}

// sign returns -1, 0 or +1.
func (n *num) sign() int {
	if n.b != nil {
		return n.b.Sign()
	}
	switch {
	case n.m < 0:
		return -1
	case n.m > 0:
		return 1
	}
	return 0
}

// cmp compares n and v exactly: -1, 0 or +1.
func (n *num) cmp(v *num) int {
	if n.b == nil && v.b == nil {
		if n.scale == v.scale {
			switch {
			case n.m < v.m:
				return -1
			case n.m > v.m:
				return 1
			}
			return 0
		}
		sn, sv := n.sign(), v.sign()
		if sn != sv || sn == 0 {
			return cmp.Compare(sn, sv)
		}
		// Same sign: compare the magnitudes at a common scale, in 128 bits.
		an, av := absU(n.m), absU(v.m)
		var nh, nl, vh, vl uint64
		if n.scale < v.scale {
			nh, nl = bits.Mul64(an, pow10u[v.scale-n.scale])
			vl = av
		} else {
			nl = an
			vh, vl = bits.Mul64(av, pow10u[n.scale-v.scale])
		}
		c := 0
		switch {
		case nh != vh:
			c = cmp.Compare(nh, vh)
		default:
			c = cmp.Compare(nl, vl)
		}
		return c * sn
	}
	s := max(n.scale, v.scale)
	return bigOf(n, s).Cmp(bigOf(v, s))
}

func absU(a int64) uint64 {
	if a < 0 {
		return uint64(-a) // -(-2^63) wraps to 2^63, as a uint64 should be
	}
	return uint64(a)
}

// rat returns n as a big.Rat.
func (n *num) rat() *big.Rat {
	var x *big.Int
	if n.b != nil {
		x = new(big.Int).Set(n.b)
	} else {
		x = big.NewInt(n.m)
	}
	return new(big.Rat).SetFrac(x, pow10Big(int(n.scale)))
}

// appendNum appends n as a plain decimal, exactly, with no exponent and
// no trailing fraction zeros: 0.3, 249211054.46, -7, 0.
func appendNum(dst []byte, n *num) []byte {
	var digits []byte
	neg := false
	if n.b != nil {
		digits = n.b.Append(nil, 10)
		if digits[0] == '-' {
			neg, digits = true, digits[1:]
		}
	} else {
		var a [20]byte
		neg = n.m < 0
		digits = strconv.AppendUint(a[:0], absU(n.m), 10)
	}
	scale := int(n.scale)
	for scale > 0 && len(digits) > 0 && digits[len(digits)-1] == '0' {
		digits, scale = digits[:len(digits)-1], scale-1
	}
	if len(digits) == 0 || len(digits) == 1 && digits[0] == '0' {
		return append(dst, '0')
	}
	if neg {
		dst = append(dst, '-')
	}
	if scale == 0 {
		return append(dst, digits...)
	}
	if len(digits) <= scale {
		dst = append(dst, '0', '.')
		for range scale - len(digits) {
			dst = append(dst, '0')
		}
		return append(dst, digits...)
	}
	dst = append(dst, digits[:len(digits)-scale]...)
	dst = append(dst, '.')
	return append(dst, digits[len(digits)-scale:]...)
}

// appendMean appends sum / count, count > 0, rounded once: to the nearest
// float64, written as the shortest decimal that reads back as it (what
// strconv, DuckDB and most JSON readers print). A mean that float64 cannot
// hold (beyond its range or below its normal range, which only values
// written with large exponents reach) is written with 17 significant
// digits instead, rounded half to even from the exact quotient.
func appendMean(dst []byte, sum *num, count int64) []byte {
	if sum.sign() == 0 {
		return append(dst, '0')
	}
	if sum.b == nil {
		// Both operands exact in a float64: one IEEE division rounds
		// the exact quotient correctly.
		den := uint64(count)
		if hi, lo := bits.Mul64(den, pow10u[sum.scale]); hi == 0 && lo <= 1<<53 && absU(sum.m) <= 1<<53 {
			return appendFloat(dst, float64(sum.m)/float64(lo))
		}
	}
	q := new(big.Rat).Quo(sum.rat(), new(big.Rat).SetInt64(count))
	f, _ := q.Float64()
	if a := math.Abs(f); !math.IsInf(f, 0) && a >= 0x1p-1022 {
		return appendFloat(dst, f)
	}
	return appendSignificant(dst, q, 17)
}

// appendFloat writes the shortest text that reads back as f, without an
// exponent in the usual range, valid as a JSON number.
func appendFloat(dst []byte, f float64) []byte {
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		return strconv.AppendFloat(dst, f, 'e', -1, 64)
	}
	return strconv.AppendFloat(dst, f, 'f', -1, 64)
}

// appendSignificant writes q, not zero, rounded half to even to n
// significant digits, in exponent form: -1.2345e+400.
func appendSignificant(dst []byte, q *big.Rat, n int) []byte {
	num, den := new(big.Int).Abs(q.Num()), q.Denom()
	// 10^(n-1) <= |q| × 10^k < 10^n; start from the digit counts'
	// estimate and correct it.
	k := n - (len(num.String()) - len(den.String()))
	lo, hi := pow10Big(n-1), pow10Big(n)
	var r *big.Int
	for {
		a, d := new(big.Int).Set(num), new(big.Int).Set(den)
		if k >= 0 {
			a.Mul(a, pow10Big(k))
		} else {
			d.Mul(d, pow10Big(-k))
		}
		var rem big.Int
		r, _ = new(big.Int).QuoRem(a, d, &rem)
		// Round half to even.
		if c := new(big.Int).Lsh(&rem, 1).Cmp(d); c > 0 || c == 0 && r.Bit(0) == 1 {
			r.Add(r, big.NewInt(1))
		}
		switch {
		case r.Cmp(lo) < 0:
			k++
			continue
		case r.Cmp(hi) >= 0:
			if r.Cmp(hi) == 0 {
				// Rounded up to 10^n: one digit fewer, same value.
				r = lo
				k--
				break
			}
			k--
			continue
		}
		break
	}
	digits := []byte(r.String())
	exp := n - 1 - k
	for len(digits) > 1 && digits[len(digits)-1] == '0' {
		digits = digits[:len(digits)-1]
	}
	if q.Sign() < 0 {
		dst = append(dst, '-')
	}
	dst = append(dst, digits[0])
	if len(digits) > 1 {
		dst = append(dst, '.')
		dst = append(dst, digits[1:]...)
	}
	dst = append(dst, 'e')
	if exp >= 0 {
		dst = append(dst, '+')
	}
	return strconv.AppendInt(dst, int64(exp), 10)
}
