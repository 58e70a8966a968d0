package aggregate

import (
	"slices"
	"testing"
)

// FuzzGroupKey: the group key form round-trips and keeps the order of
// the values; any bytes decode cleanly or fail.
func FuzzGroupKey(f *testing.F) {
	f.Add("a", "b\x00c", "")
	f.Add("\x00", "\x00\x01", "\xff")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		for _, keys := range [][]string{{a}, {a, b}, {a, b, c}} {
			k := appendGroupKey(nil, keys)
			back, err := decodeGroupKey(string(k), len(keys))
			if err != nil || !slices.Equal(back, keys) {
				t.Fatalf("%q: %q, %v", keys, back, err)
			}
		}
		x, y := appendGroupKey(nil, []string{a, b}), appendGroupKey(nil, []string{b, c})
		if got, want := sign(string(x), string(y)), slices.Compare([]string{a, b}, []string{b, c}); got != want {
			t.Fatalf("order of %q and %q: %d, want %d", []string{a, b}, []string{b, c}, got, want)
		}
		decodeGroupKey(a+b+c, 2)
	})
}

func sign(x, y string) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// FuzzPartial: a group's encoding in the keyed state decodes cleanly or
// fails, and what decodes encodes back to bytes that decode.
func FuzzPartial(f *testing.F) {
	p := partial{count: 3, accs: []acc{{n: 2}, {n: 1, text: "1.5"}}}
	b, _ := p.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var p partial
		if p.UnmarshalBinary(data) != nil {
			return
		}
		out, err := p.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var again partial
		if err := again.UnmarshalBinary(out); err != nil {
			t.Fatalf("re-encoded group does not decode: %v", err)
		}
	})
}
