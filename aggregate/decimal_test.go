package aggregate

import (
	"math"
	"math/big"
	"strconv"
	"strings"
	"testing"
)

func mustNum(t testing.TB, s string) num {
	t.Helper()
	n, err := parseNum([]byte(s))
	if err != nil {
		t.Fatalf("parseNum(%q): %v", s, err)
	}
	return n
}

func TestParseNum(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"0", "0"}, {"-0", "0"}, {"-0.000", "0"}, {"+5", "5"}, {"007", "7"}, {".5", "0.5"}, {"1.", "1"},
		{"-0.1", "-0.1"}, {"1546.72", "1546.72"}, {"1.50", "1.5"},
		{"9007199254740993", "9007199254740993"},
		{"9223372036854775807", "9223372036854775807"},
		{"9223372036854775808", "9223372036854775808"},
		{"-9223372036854775808", "-9223372036854775808"},
		{"-9223372036854775809", "-9223372036854775809"},
		{"123456789012345678901234567890.123456789012345678901234567890", "123456789012345678901234567890.12345678901234567890123456789"},
		{"0.0000000000000000000000000001", "0.0000000000000000000000000001"},
		{"1e2", "100"}, {"1E-2", "0.01"}, {"-2.5e+3", "-2500"}, {"5.e3", "5000"}, {".5e1", "5"},
		{"1e300", "1" + strings.Repeat("0", 300)},
		{"1.7976931348623157e308", "17976931348623157" + strings.Repeat("0", 292)},
		{"0x1p-2", "0.25"}, {"-0X1.8p1", "-3"},
		{"1.0000000000000000000000000", "1"},
	} {
		n, err := parseNum([]byte(c.in))
		if err != nil {
			t.Errorf("parseNum(%q): %v", c.in, err)
			continue
		}
		if got := string(appendNum(nil, &n)); got != c.want {
			t.Errorf("parseNum(%q) = %s, want %s", c.in, got, c.want)
		}
	}
	for _, in := range []string{"", "-", "+", ".", "-.", "e5", "1e", "1e+", "1.2.3", "1..2", "1,5", " 1", "1 ", "NaN", "nan", "Inf", "-Inf", "+Infinity",
		"0x10", "0x", "1_000", "--1", "1e5.5", "0x1p99999", "$5", "1/3"} {
		if n, err := parseNum([]byte(in)); err == nil {
			t.Errorf("parseNum(%q) = %s, want an error", in, appendNum(nil, &n))
		}
	}
	// Exponents that would make one value huge are refused, not expanded.
	for _, in := range []string{"1e1100", "1e-1101", "1e999999999999", "0E10000000000000000000", "0.1e-1100", "1" + strings.Repeat("0", 1100)} {
		if _, err := parseNum([]byte(in)); err != errRange {
			t.Errorf("parseNum(%.20q): %v, want errRange", in, err)
		}
	}
	for _, in := range []string{"1e1099", "1e-1100", "4.9406564584124654e-324", "0x1p-1074", "1" + strings.Repeat("0", 1099)} {
		if _, err := parseNum([]byte(in)); err != nil {
			t.Errorf("parseNum(%.20q): %v", in, err)
		}
	}
}

func sumOf(t testing.TB, vals ...string) num {
	t.Helper()
	var s num
	var scratch big.Int
	for _, v := range vals {
		n := mustNum(t, v)
		s.add(&n, &scratch)
	}
	return s
}

func TestSumsAreExact(t *testing.T) {
	for _, c := range []struct {
		vals []string
		want string
	}{
		{[]string{"0.1", "0.2"}, "0.3"},
		{[]string{"1.5", "2.25"}, "3.75"},
		{[]string{"2.25", "1.5"}, "3.75"},
		{[]string{"-0.1", "0.1"}, "0"},
		{[]string{"-0", "-0.0"}, "0"},
		{[]string{"-0.1"}, "-0.1"},
		{[]string{"9007199254740992", "1"}, "9007199254740993"},
		{[]string{"9223372036854775807", "1"}, "9223372036854775808"},
		{[]string{"-9223372036854775808", "-1"}, "-9223372036854775809"},
		{[]string{"9223372036854775807", "9223372036854775807", "-9223372036854775807", "-9223372036854775807"}, "0"},
		{[]string{"92233720368547758.07", "0.01"}, "92233720368547758.08"},
		{[]string{"1", "0.000000000000000000001"}, "1.000000000000000000001"},
		{[]string{"0.000000000000000000001", "1"}, "1.000000000000000000001"},
		{[]string{"123456789012345678901234567890", "0.5"}, "123456789012345678901234567890.5"},
		{[]string{"1e300", "-1e300", "0.25"}, "0.25"},
		{[]string{"0x1p-2", "0.1"}, "0.35"},
	} {
		s := sumOf(t, c.vals...)
		if got := string(appendNum(nil, &s)); got != c.want {
			t.Errorf("sum of %v = %s, want %s", c.vals, got, c.want)
		}
	}
}

// The money column that float64 sums got wrong: 2 million values with two
// decimals sum to exactly what big.Rat says.
func TestMoneySumIsExact(t *testing.T) {
	rows := 2_000_000
	if testing.Short() {
		rows = 200_000
	}
	var s num
	var scratch big.Int
	want := new(big.Int)
	x := uint64(12345)
	for range rows {
		x = x*6364136223846793005 + 1442695040888963407
		cents := int64(x>>33) % 25_000_00
		text := strconv.FormatFloat(float64(cents)/100, 'f', 2, 64)
		n := mustNum(t, text)
		s.add(&n, &scratch)
		want.Add(want, big.NewInt(cents))
	}
	w := num{b: want, scale: 2}
	if got, exp := string(appendNum(nil, &s)), string(appendNum(nil, &w)); got != exp {
		t.Fatalf("sum %s, want %s", got, exp)
	}
}

func TestCompareIsExact(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"9007199254740993", "9007199254740992", 1}, // equal as float64
		{"9223372036854775807", "9223372036854775806", 1},
		{"9223372036854775808", "9223372036854775807", 1},
		{"-9223372036854775809", "-9223372036854775808", -1},
		{"1.5", "1.50", 0},
		{"-0", "0", 0},
		{"0.1", "0.10000000000000001", -1}, // equal as float64
		{"-0.1", "-0.10000000000000001", 1},
		{"1.000000000000000001", "1", 1},
		{"99999999999999999.9", "100000000000000000", -1},
		{"-5", "3.25", -1},
		{"0", "-0.001", 1},
		{"1e300", "1e299", 1},
		{"1" + strings.Repeat("0", 30), "0.5", 1},
	} {
		a, b := mustNum(t, c.a), mustNum(t, c.b)
		if got := a.cmp(&b); got != c.want {
			t.Errorf("cmp(%s, %s) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := b.cmp(&a); got != -c.want {
			t.Errorf("cmp(%s, %s) = %d, want %d", c.b, c.a, got, -c.want)
		}
	}
}

func TestMean(t *testing.T) {
	for _, c := range []struct {
		sum   string
		count int64
		want  string
	}{
		{"0.3", 2, "0.15"},
		{"3", 2, "1.5"},
		{"4", 3, "1.3333333333333333"},
		{"2", 3, "0.6666666666666666"},
		{"-0.1", 1, "-0.1"},
		{"0", 5, "0"},
		// 2^53+1 is not a float64: the mean rounds it once, to even.
		{"9007199254740993", 1, "9007199254740992"},
		// Rounded from the exact quotient, not from a rounded sum:
		// (2^53+1)·3 / 3.
		{"27021597764222979", 3, "9007199254740992"},
		{"27021597764222985", 3, "9007199254740996"},
		// A huge count.
		{"9223372036854775807", math.MaxInt64, "1"},
		{"922337203685477580.7", math.MaxInt64, "0.1"},
		{"1" + strings.Repeat("0", 400), 1, "1e+400"},
		{"2" + strings.Repeat("0", 400), 3, "6.6666666666666667e+399"},
		{"-0." + strings.Repeat("0", 399) + "1", 1, "-1e-400"},
		{"0." + strings.Repeat("9", 30), 1, "1"},
		{"0.001", 1, "0.001"},
		{"0.0000001", 1, "1e-07"},
		{"12345678901234567890123", 1, "1.2345678901234568e+22"},
	} {
		s := mustNum(t, c.sum)
		if got := string(appendMean(nil, &s, c.count)); got != c.want {
			t.Errorf("mean of %.30s… over %d = %s, want %s", c.sum, c.count, got, c.want)
		}
	}
}

// appendSignificant rounds the exact quotient once, half to even, and
// carries a rounding into the next power of ten.
func TestAppendSignificant(t *testing.T) {
	for _, c := range []struct {
		q    string
		n    int
		want string
	}{
		{"1/3", 3, "3.33e-1"},
		{"2/3", 3, "6.67e-1"},
		{"9995/1", 3, "1e+4"},
		{"1005/1", 3, "1e+3"}, // half to even: 100|5 → 100
		{"1015/1", 3, "1.02e+3"},
		{"-1/8", 1, "-1e-1"},
		{"1/1", 17, "1e+0"},
	} {
		q, _ := new(big.Rat).SetString(c.q)
		if got := string(appendSignificant(nil, q, c.n)); got != c.want {
			t.Errorf("appendSignificant(%s, %d) = %s, want %s", c.q, c.n, got, c.want)
		}
	}
}

// The common case, decimals and integers that fit an int64 at a scale up
// to 18, allocates nothing: not in parsing, not in summing, not in
// comparing.
func TestCommonCaseAllocatesNothing(t *testing.T) {
	a := &aggregator{opts: Options{GroupBy: []string{"k"}, Aggs: benchAggs}}
	st := &State{}
	recs := [][][]byte{
		{[]byte("x"), nil, []byte("1546.72"), []byte("1546.72"), []byte("1546.72"), []byte("7")},
		{[]byte("x"), nil, []byte("-0.1"), []byte("0.123456789"), []byte("99999.9"), []byte("-9223372036854775808")},
		{[]byte("x"), nil, []byte("3"), []byte("2.5"), []byte("1.0"), []byte("9223372036854775807")},
	}
	bad := func(err error) error { return err }
	for _, r := range recs { // the group and its min and max texts exist
		if err := a.add(st, r, bad); err != nil {
			t.Fatal(err)
		}
	}
	i := 0
	if n := testing.AllocsPerRun(1000, func() {
		if err := a.add(st, recs[i%len(recs)], bad); err != nil {
			t.Fatal(err)
		}
		i++
	}); n != 0 {
		t.Fatalf("%v allocations per record", n)
	}
}

// ratOf parses s as big.Rat does, or as strconv.ParseFloat does for a
// hexadecimal float.
func ratOf(s string) (*big.Rat, bool) {
	if strings.ContainsAny(s, "xX") {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, false
		}
		return new(big.Rat).SetFloat64(f), true
	}
	return new(big.Rat).SetString(s)
}

// parseNum agrees with big.Rat on every number it accepts, and accepts
// every plain decimal in range.
func FuzzParseNum(f *testing.F) {
	for _, s := range []string{"0", "-0", "1546.72", ".5", "5.", "+3.25", "999999999999999", "0.000000000000001", "1e5", "", "-", ".", "1.2.3", "0.1",
		"9007199254740993", "9223372036854775808", "-9223372036854775808", "1.0000000000000000001", "1e-30", "0x1p-2", "1/3", "1_0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseNum([]byte(s))
		if err != nil {
			if plainDecimal(s) && len(s) < 1000 {
				t.Fatalf("parseNum(%q) refused a decimal: %v", s, err)
			}
			return
		}
		want, ok := ratOf(s)
		if !ok {
			t.Fatalf("parseNum(%q) = %s, big.Rat refuses it", s, appendNum(nil, &n))
		}
		if n.rat().Cmp(want) != 0 {
			t.Fatalf("parseNum(%q) = %s, want %s", s, appendNum(nil, &n), want.FloatString(40))
		}
		// Its text reads back as the same value.
		back := mustNum(t, string(appendNum(nil, &n)))
		if back.cmp(&n) != 0 {
			t.Fatalf("%q: %s reads back as %s", s, appendNum(nil, &n), appendNum(nil, &back))
		}
	})
}

// plainDecimal reports whether s is a sign, digits and at most one point,
// with at least one digit.
func plainDecimal(s string) bool {
	if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	digits, dot := 0, false
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !dot:
			dot = true
		default:
			return false
		}
	}
	return digits > 0
}

// Sums, minima, maxima and means of any values agree with big.Rat: data is
// a comma-separated list of numbers.
func FuzzArithmetic(f *testing.F) {
	for _, s := range []string{"0.1,0.2", "9223372036854775807,1", "1.5,2.25,-0.1", "-9223372036854775808,-1,0.5", "1e300,-1e300,0.25",
		"9007199254740993,9007199254740992", "0.000000000000000000001,1,-1", "0x1p-2,1,1e-7", "12345678901234567.89,92233720368547758.07,-0.01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		var c, lo2, hi2 acc
		var scratch big.Int
		sum := new(big.Rat)
		var lo, hi *big.Rat
		for _, s := range strings.Split(data, ",") {
			n, err := parseNum([]byte(s))
			if err != nil {
				continue
			}
			r, ok := ratOf(s)
			if !ok {
				t.Fatalf("big.Rat refuses %q", s)
			}
			v := &value{text: []byte(s), num: n}
			c.add(Sum, v, &scratch)
			lo2.add(Min, v, &scratch)
			hi2.add(Max, v, &scratch)
			sum.Add(sum, r)
			if lo == nil || r.Cmp(lo) < 0 {
				lo = r
			}
			if hi == nil || r.Cmp(hi) > 0 {
				hi = r
			}
		}
		if c.n == 0 {
			return
		}
		if c.v.rat().Cmp(sum) != 0 {
			t.Fatalf("sum %s, want %s", appendNum(nil, &c.v), sum.FloatString(40))
		}
		if r, _ := ratOf(lo2.text); r.Cmp(lo) != 0 || lo2.v.rat().Cmp(lo) != 0 {
			t.Fatalf("min %s, want %s", lo2.text, lo.FloatString(40))
		}
		if r, _ := ratOf(hi2.text); r.Cmp(hi) != 0 || hi2.v.rat().Cmp(hi) != 0 {
			t.Fatalf("max %s, want %s", hi2.text, hi.FloatString(40))
		}
		// The sum's text is the exact sum.
		text := appendNum(nil, &c.v)
		if r, ok := new(big.Rat).SetString(string(text)); !ok || r.Cmp(sum) != 0 {
			t.Fatalf("sum written as %s, want %s", text, sum.FloatString(40))
		}
		// The mean is the exact quotient rounded once to a float64.
		mean := new(big.Rat).Quo(sum, new(big.Rat).SetInt64(c.n))
		want, _ := mean.Float64()
		got := appendMean(nil, &c.v, c.n)
		if a := math.Abs(want); !math.IsInf(want, 0) && (a >= 0x1p-1022 || a == 0) {
			f, err := strconv.ParseFloat(string(got), 64)
			if err != nil || f != want {
				t.Fatalf("mean %s, want %v", got, want)
			}
		}
	})
}
