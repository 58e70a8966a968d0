package aggregate

import (
	"bytes"
	"math"
	"strconv"
	"testing"
)

func sampleState() *State {
	s := &State{groups: map[string]*group{}}
	a := &aggregator{opts: Options{GroupBy: []string{"k"}, Aggs: []Spec{{Op: Count}, {Op: Sum, Column: "x"}, {Op: Min, Column: "x"}}}}
	for i, rec := range [][]string{{"a", "1"}, {"b", "2.5"}, {"a", ""}, {"é,\n", "-7"}} {
		vals := [][]byte{[]byte(rec[0]), nil, []byte(rec[1]), []byte(rec[1])}
		if err := a.add(s, vals, func(err error) error { return err }); err != nil {
			panic(i)
		}
	}
	return s
}

func TestStateRoundTrip(t *testing.T) {
	s := sampleState()
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back State
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	b2, err := back.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, b2) || len(back.groups) != 3 {
		t.Fatalf("round trip changed the state: %d groups", len(back.groups))
	}
	for i := range b {
		if err := new(State).UnmarshalBinary(b[:i]); err == nil {
			t.Fatalf("truncated to %d of %d bytes: no error", i, len(b))
		}
	}
}

func FuzzStateUnmarshal(f *testing.F) {
	b, _ := sampleState().MarshalBinary()
	f.Add(b)
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var s State
		if err := s.UnmarshalBinary(data); err != nil {
			return
		}
		// Whatever decodes encodes back to the same bytes.
		out, err := s.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var again State
		if err := again.UnmarshalBinary(out); err != nil {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
	})
}

// fastDecimal must give exactly what strconv.ParseFloat gives, or decline.
func FuzzFastDecimal(f *testing.F) {
	for _, s := range []string{"0", "-0", "1546.72", ".5", "5.", "+3.25", "999999999999999", "0.000000000000001", "1e5", "", "-", ".", "1.2.3", "0.1", "9007199254740993"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := fastDecimal([]byte(s))
		if !ok {
			return
		}
		want, err := strconv.ParseFloat(s, 64)
		if err != nil || math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("fastDecimal(%q) = %v, strconv says %v, %v", s, got, want, err)
		}
	})
}
