package stream

import (
	"testing"
	"time"
)

func TestParseUntil(t *testing.T) {
	ts := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want Until
		bad  bool
	}{
		{in: "", want: Until{}},
		{in: "now", want: Until{Now: true}},
		{in: "NOW", want: Until{Now: true}},
		{in: "42", want: Until{Seq: 42}},
		{in: "2026-01-02T15:04:05Z", want: Until{Time: ts}},
		{in: "0", bad: true},
		{in: "-1", bad: true},
		{in: "yesterday", bad: true},
		{in: "2026-01-02", bad: true},
	} {
		got, err := ParseUntil(tc.in)
		if (err != nil) != tc.bad {
			t.Errorf("ParseUntil(%q): error %v, want error %v", tc.in, err, tc.bad)
			continue
		}
		if !tc.bad && (got.Seq != tc.want.Seq || got.Now != tc.want.Now || !got.Time.Equal(tc.want.Time)) {
			t.Errorf("ParseUntil(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		if !tc.bad {
			if again, err := ParseUntil(got.String()); err != nil || again.String() != got.String() {
				t.Errorf("ParseUntil(%q).String() = %q does not read back: %v", tc.in, got.String(), err)
			}
		}
	}
}
