package aggregate

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"github.com/ckptdev/ckpt/convert"
	"github.com/ckptdev/ckpt/sink"
	"math/big"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
)

// The table's accumulators, without pointers, hold what acc holds: for
// random records over thousands of groups (sums past int64, minima and
// maxima in odd forms, blanks), each group encodes to the bytes of the
// partial that acc.add computes, the groups come out in key order, and a
// table emptied for reuse holds the same after the same records.
func TestTableMatchesAcc(t *testing.T) {
	aggs := []Spec{{Op: Count}, {Op: Sum, Column: "x"}, {Op: Mean, Column: "x"}, {Op: Min, Column: "x"}, {Op: Max, Column: "x"}, {Op: Sum, Column: "y"}}
	a := &aggregator{opts: Options{GroupBy: []string{"k1", "k2"}, Aggs: aggs}}
	values := []string{"1", "-2.5", "007", "+5", "1e3", ".5", "9223372036854775807", "-9223372036854775808",
		"123456789012345678901234567890", "0.000000000000000000001", "", "3.14159", "-0"}
	r := rand.New(rand.NewPCG(1, 2))
	type ref struct {
		count int64
		accs  []acc
	}
	var scratch big.Int
	st := &State{}
	for pass := range 2 {
		want := make(map[string]*ref)
		for range 20000 {
			k1 := fmt.Sprintf("g%d", r.IntN(3000))
			k2 := []string{"", "a", "a\x00b", "zz"}[r.IntN(4)]
			x, y := values[r.IntN(len(values))], values[r.IntN(len(values))]
			vals := [][]byte{[]byte(k1), []byte(k2), nil, []byte(x), []byte(x), []byte(x), []byte(x), []byte(y)}
			if err := a.add(st, vals, func(err error) error { return err }); err != nil {
				t.Fatal(err)
			}
			key := string(appendGroupKey(nil, []string{k1, k2}))
			g := want[key]
			if g == nil {
				g = &ref{accs: make([]acc, len(aggs))}
				want[key] = g
			}
			g.count++
			for i, s := range aggs {
				v := vals[2+i]
				if s.Op == Count || len(v) == 0 {
					continue
				}
				p, err := parseNumber(v)
				if err != nil {
					t.Fatal(err)
				}
				g.accs[i].add(s.Op, &p, &scratch)
			}
		}
		if err := a.flush(st); err != nil {
			t.Fatal(err)
		}
		if st.tab.len() != len(want) {
			t.Fatalf("pass %d: %d groups, want %d", pass, st.tab.len(), len(want))
		}
		var prev []byte
		for n, i := range st.tab.sorted() {
			key := st.tab.key(int(i))
			if n > 0 && bytes.Compare(prev, key) >= 0 {
				t.Fatalf("pass %d: %q sorted after %q", pass, key, prev)
			}
			prev = key
			g := want[string(key)]
			if g == nil {
				t.Fatalf("pass %d: group %q was never added", pass, key)
			}
			wantEnc, _ := (&partial{count: g.count, accs: g.accs}).AppendBinary(nil)
			if got := st.tab.appendPartial(nil, int(i)); !bytes.Equal(got, wantEnc) {
				t.Fatalf("pass %d: group %q encodes as %x, want %x", pass, key, got, wantEnc)
			}
			if j, _ := st.tab.find(key); j != int(i) {
				t.Fatalf("pass %d: find(%q) = %d, want %d", pass, key, j, i)
			}
		}
		// The second pass reuses the table's memory, as a table the
		// keyed state released is reused.
		st.tab.reset()
		r = rand.New(rand.NewPCG(1, 2))
	}
}

// A table handed to the keyed state yields its groups sorted, encoded,
// and is reused once released.
func TestTableSortedAndReused(t *testing.T) {
	a := &aggregator{opts: Options{GroupBy: []string{"k"}, Aggs: []Spec{{Op: Count}}}}
	t1 := a.newTable()
	for _, k := range []string{"b", "a", "c", "ab", ""} {
		key := appendGroupKey(nil, []string{k})
		_, h := t1.find(key)
		t1.ents[t1.insert(key, h)].count = int64(len(k))
	}
	var keys []string
	if err := t1.Sorted(func(key, val []byte) error {
		keys = append(keys, string(key))
		var p partial
		if err := p.UnmarshalBinary(val); err != nil {
			return err
		}
		ks, err := decodeGroupKey(string(key), 1)
		if err != nil || p.count != int64(len(ks[0])) {
			return fmt.Errorf("%q: count %d, %v", key, p.count, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.IsSorted(keys) || len(keys) != 5 {
		t.Fatalf("Sorted gave %q", keys)
	}
	t1.Release()
	t2 := a.newTable()
	if t2 != t1 || t2.len() != 0 {
		t.Fatalf("a released table is not reused empty: %p %p, %d groups", t1, t2, t2.len())
	}
	if j, _ := t2.find(appendGroupKey(nil, []string{"a"})); j >= 0 {
		t.Fatal("a reused table still finds an old group")
	}
}

// Groups read from a checkpoint's plain state (an accumulator for every
// aggregation, counts included) move into the run's own layout (none for
// a count) when the run first adds to them, and come out as the groups of
// a run that added every record itself.
func TestRestoredGroupsTakeTheRunsLayout(t *testing.T) {
	recs := [][]string{{"a", "1"}, {"b", "2.5"}, {"a", ""}, {"c", "-7"}, {"b", "9223372036854775807"}, {"a", "0.25"}}
	newAgg := func() *aggregator {
		return &aggregator{opts: Options{GroupBy: []string{"k"}, Aggs: []Spec{{Op: Count}, {Op: Sum, Column: "x"}, {Op: Min, Column: "x"}}}}
	}
	add := func(a *aggregator, st *State, rs [][]string) {
		for _, rec := range rs {
			if err := a.add(st, [][]byte{[]byte(rec[0]), nil, []byte(rec[1]), []byte(rec[1])}, func(err error) error { return err }); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.flush(st); err != nil {
			t.Fatal(err)
		}
	}
	whole := &State{}
	add(newAgg(), whole, recs)
	first := &State{}
	add(newAgg(), first, recs[:3])
	b, err := first.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var resumed State
	if err := resumed.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if resumed.tab.na != 3 {
		t.Fatalf("restored groups have %d accumulators, want one per aggregation", resumed.tab.na)
	}
	a := newAgg()
	add(a, &resumed, recs[3:])
	if resumed.tab.na != 2 {
		t.Fatalf("groups added to have %d accumulators, want 2 (none for the count)", resumed.tab.na)
	}
	got, _ := resumed.MarshalBinary()
	want, _ := whole.MarshalBinary()
	if !bytes.Equal(got, want) {
		t.Fatalf("resumed groups encode as\n%x\nwant\n%x", got, want)
	}
}

// radixSort orders by prefix as a comparison sort does, for sizes on
// both sides of its cutoff and prefixes that share bytes or repeat.
func TestRadixSort(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{0, 1, 255, 256, 257, 5000} {
		for _, gen := range []func() uint64{
			r.Uint64,
			func() uint64 { return uint64(r.IntN(40)) << 56 },               // the top byte alone differs
			func() uint64 { return 0x6731323300000000 | uint64(r.IntN(7)) }, // the bottom byte alone
		} {
			o := make([]ord, n)
			for i := range o {
				o[i] = ord{gen(), int32(i)}
			}
			want := slices.Clone(o)
			slices.SortStableFunc(want, func(a, b ord) int { return cmp.Compare(a.prefix, b.prefix) })
			got := radixSort(o, make([]ord, n))
			for i := range got {
				if got[i].prefix != want[i].prefix {
					t.Fatalf("n=%d: at %d prefix %x, want %x", n, i, got[i].prefix, want[i].prefix)
				}
			}
			if n >= 256 && !slices.Equal(got, want) {
				t.Fatalf("n=%d: not stable", n)
			}
		}
	}
}

// writeFrom stops reading the groups at the first one the formatting
// goroutine cannot write, and returns its error, after batches of good
// groups have gone through both goroutines; a read error comes back too.
func TestWriteFromStopsAtABadGroup(t *testing.T) {
	a := &aggregator{opts: Options{GroupBy: []string{"k"}, Aggs: []Spec{{Op: Count}}, To: convert.CSV}}
	val, err := (&partial{count: 1, accs: []acc{{}}}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "out.csv")
	out, err := sink.OpenFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	const good = 50_000 // several batches
	yielded := 0
	err = a.writeFrom(out, func(fn func(key, val []byte) bool) error {
		// The reader runs at most a few batches (tens of thousands of
		// groups) ahead of the writer.
		for i := range 20 * good {
			key := appendGroupKey(nil, []string{fmt.Sprintf("g%07d", i)})
			if i == good {
				key = []byte("no end") // not appendGroupKey's form
			}
			yielded++
			if !fn(key, val) {
				return nil
			}
		}
		return nil
	})
	if !errors.Is(err, errCorruptKey) {
		t.Fatalf("writeFrom = %v, want the corrupt key's error", err)
	}
	if yielded == 20*good {
		t.Fatal("the groups after the bad one were all read")
	}
	readErr := errors.New("run unreadable")
	err = a.writeFrom(out, func(fn func(key, val []byte) bool) error { return readErr })
	if !errors.Is(err, readErr) {
		t.Fatalf("writeFrom = %v, want the read error", err)
	}
}
