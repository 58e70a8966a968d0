package convert

import (
	"testing"

	"github.com/ckptdev/ckpt/sink/pgsink"
)

func TestClassifyNumber(t *testing.T) {
	for _, tc := range []struct {
		s                    string
		isInt, isDec, hasExp bool
	}{
		{"0", true, false, false}, {"-42", true, false, false}, {"+7", true, false, false},
		{"9223372036854775808", false, true, false}, {"1.50", false, true, false}, {"-0.1", false, true, false},
		{".5", false, true, false}, {"1e3", false, true, true}, {"-2.5E-10", false, true, true},
		{"007", false, false, false}, {"01.5", false, false, false}, {"1.", false, false, false},
		{"", false, false, false}, {"-", false, false, false}, {"1e", false, false, false}, {"1e+-3", false, false, false},
		{"1,5", false, false, false}, {"abc", false, false, false}, {"NaN", false, false, false}, {"1e99999", false, false, false},
	} {
		i, d, e := classifyNumber(tc.s)
		if i != tc.isInt || d != tc.isDec || e != tc.hasExp {
			t.Errorf("classifyNumber(%q) = %v %v %v, want %v %v %v", tc.s, i, d, e, tc.isInt, tc.isDec, tc.hasExp)
		}
	}
}

func TestTypeGuess(t *testing.T) {
	for _, tc := range []struct {
		vals []string
		want pgsink.ColumnType
	}{
		{nil, pgsink.Text},
		{[]string{"1", "-2", "30"}, pgsink.BigInt},
		{[]string{"1", "2.50"}, pgsink.Numeric},
		{[]string{"1", "2.5", "3e2"}, pgsink.Double},
		{[]string{"true", "FALSE"}, pgsink.Boolean},
		{[]string{"2024-01-01T00:00:00Z", "2024-01-01 10:00:00+02:00"}, pgsink.Timestamptz},
		{[]string{"1", "x"}, pgsink.Text},
		{[]string{"007", "12"}, pgsink.Text},
		{[]string{"1", "true"}, pgsink.Text},
		{[]string{"2024-01-01"}, pgsink.Text},
	} {
		g := newGuesses(1)
		for _, v := range tc.vals {
			g[0].add([]byte(v))
		}
		if got := g[0].column(); got != tc.want {
			t.Errorf("%q: %s, want %s", tc.vals, got, tc.want)
		}
	}
}
