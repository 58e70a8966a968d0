package aggregate

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt/codec"
	"github.com/ckptdev/ckpt/convert"
	"github.com/ckptdev/ckpt/sink"
)

func sampleState() *State {
	s := &State{}
	a := &aggregator{opts: Options{GroupBy: []string{"k"}, Aggs: []Spec{{Op: Count}, {Op: Sum, Column: "x"}, {Op: Min, Column: "x"}}}}
	for i, rec := range [][]string{{"a", "1"}, {"b", "2.5"}, {"a", ""}, {"é,\n", "-7"}, {"b", "9223372036854775807"}, {"b", "-0.000000000000000000001"}} {
		vals := [][]byte{[]byte(rec[0]), nil, []byte(rec[1]), []byte(rec[1])}
		if err := a.add(s, vals, func(err error) error { return err }); err != nil {
			panic(i)
		}
	}
	if err := a.flush(s); err != nil {
		panic(err)
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
	if !bytes.Equal(b, b2) || back.tab.len() != 3 {
		t.Fatalf("round trip changed the state: %d groups", back.tab.len())
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
	f.Add([]byte{stateVersion, 0})
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

// v1State stands for a checkpoint written by a ckpt whose groups used the
// version 1 encoding (float64 sums).
type v1State struct{}

func (v1State) MarshalBinary() ([]byte, error) { return []byte{1, 0}, nil }

// A checkpoint of the inexact version 1 encoding is refused with advice,
// through the job's codec, not misread.
func TestOldStateVersionIsRefused(t *testing.T) {
	var buf bytes.Buffer
	if err := (codec.Gob{}).Encode(&buf, v1State{}); err != nil {
		t.Fatal(err)
	}
	var s State
	err := (codec.Gob{}).Decode(&buf, &s)
	if !errors.Is(err, ErrStateVersion) || !strings.Contains(err.Error(), "--restart") {
		t.Fatalf("err = %v, want ErrStateVersion with advice", err)
	}
	if err := s.UnmarshalBinary([]byte{9, 0}); !errors.Is(err, ErrStateVersion) || !strings.Contains(err.Error(), "version 9") {
		t.Fatalf("version 9: %v", err)
	}
}

// The exact values survive the encoding: sums past int64, scales past the
// int64 form, negative big sums, and min and max re-read from their text.
func TestStateKeepsExactValues(t *testing.T) {
	a := &aggregator{opts: Options{GroupBy: []string{"k"}, Aggs: []Spec{{Op: Sum, Column: "x"}, {Op: Min, Column: "x"}, {Op: Max, Column: "x"}, {Op: Mean, Column: "x"}}}}
	s := &State{}
	for _, rec := range [][]string{
		{"big", "9223372036854775807"}, {"big", "9223372036854775807"},
		{"neg", "-9223372036854775808"}, {"neg", "-9223372036854775808"},
		{"fine", "0.000000000000000000001"}, {"fine", "1.5"},
		{"ids", "9007199254740993"}, {"ids", "9007199254740992"},
		{"dec", "0.1"}, {"dec", "0.2"},
	} {
		vals := [][]byte{[]byte(rec[0]), []byte(rec[1]), []byte(rec[1]), []byte(rec[1]), []byte(rec[1])}
		if err := a.add(s, vals, func(err error) error { return err }); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.flush(s); err != nil {
		t.Fatal(err)
	}
	a.opts.To = convert.CSV
	out := func(s *State) string {
		path := filepath.Join(t.TempDir(), "out.csv")
		f, err := sink.OpenFile(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.write(context.Background(), s, f); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back State
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if got, want := out(&back), out(s); got != want {
		t.Fatalf("decoded state writes\n%s\nthe original\n%s", got, want)
	}
	// And the decoded state goes on exactly.
	for _, st := range []*State{s, &back} {
		if err := a.add(st, [][]byte{[]byte("big"), []byte("2"), []byte("2"), []byte("2"), []byte("2")}, func(err error) error { return err }); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := out(&back), out(s); got != want || !strings.Contains(got, "18446744073709551616") {
		t.Fatalf("decoded state after one more record writes\n%s\nthe original\n%s", got, want)
	}
}

// The encoding is pinned: a change is a new version, not a silent
// reinterpretation of existing checkpoints.
func TestStateEncodingIsStable(t *testing.T) {
	b, err := sampleState().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "state-v3.hex")
	if os.Getenv("CKPT_WRITE_FIXTURES") == "1" {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(hex.EncodeToString(b)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (CKPT_WRITE_FIXTURES=1 writes it)", err)
	}
	if got := hex.EncodeToString(b) + "\n"; got != string(want) {
		t.Fatalf("encoding changed:\n got %s\nwant %s", got, want)
	}
}

// A checkpoint of version 2, whose groups were keyed by length-prefixed
// values, is read into the same groups as version 3 holds.
func TestStateVersion2IsRead(t *testing.T) {
	h, err := os.ReadFile(filepath.Join("testdata", "state-v2.hex"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := hex.DecodeString(strings.TrimSpace(string(h)))
	if err != nil {
		t.Fatal(err)
	}
	var s State
	if err := s.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	got, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	want, err := sampleState().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("version 2 state reads as\n%x\nwant\n%x", got, want)
	}
}
