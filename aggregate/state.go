package aggregate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"math/big"
)

// MarshalBinary encodes the groups compactly and deterministically (sorted
// by key), for the job's checkpoints.
func (s *State) MarshalBinary() ([]byte, error) {
	if s.q.len() > 0 {
		// The checkpoint would miss them: OnCapture folds them in.
		return nil, fmt.Errorf("aggregate: %d records not yet folded into the groups", s.q.len())
	}
	order := s.tab.sorted()
	b := []byte{stateVersion}
	b = binary.AppendUvarint(b, uint64(len(order)))
	for _, i := range order {
		k := s.tab.key(int(i))
		keys, err := decodeGroupKey(string(k), -1)
		if err != nil {
			return nil, err
		}
		b = appendString(b, string(k))
		b = binary.AppendUvarint(b, uint64(len(keys)))
		for _, gk := range keys {
			b = appendString(b, gk)
		}
		// A min or max is read back from its text; a sum has none.
		b = s.tab.appendPartial(b, int(i))
	}
	return b, nil
}

// stateVersion is the encoding's version. Version 1 kept sums and
// extremes as float64 (inexact past 2^53 and for decimals) and is refused:
// its totals cannot be made exact. Version 2 keyed the groups by their
// values each prefixed with its length; version 3, the same layout, by
// appendGroupKey's order-preserving form, which the keyed state shares.
// Version 2 is read, its keys derived again.
const stateVersion = 3

// ErrStateVersion is returned (wrapped) when a checkpoint holds the groups
// in an encoding this ckpt does not read.
var ErrStateVersion = errors.New("aggregate: checkpoint state written by another version of ckpt")

// appendNumBinary encodes n: a uvarint of scale<<1 | form, then for the
// int64 form (0) a varint of the mantissa, for the big form (1) a uvarint
// of len<<1 | negative and the magnitude's len bytes, big-endian.
func appendNumBinary(b []byte, n *num) []byte {
	if n.b == nil {
		b = binary.AppendUvarint(b, uint64(n.scale)<<1)
		return binary.AppendVarint(b, n.m)
	}
	b = binary.AppendUvarint(b, uint64(n.scale)<<1|1)
	mag := n.b.Bytes()
	neg := uint64(0)
	if n.b.Sign() < 0 {
		neg = 1
	}
	b = binary.AppendUvarint(b, uint64(len(mag))<<1|neg)
	return append(b, mag...)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// UnmarshalBinary decodes what MarshalBinary wrote, refusing anything
// malformed.
func (s *State) UnmarshalBinary(b []byte) error {
	d := decoder{b: b}
	v := d.byte()
	if v != stateVersion && v != 2 {
		if v == 1 {
			return fmt.Errorf("%w: its sums, minima and maxima were kept as floating point, which this ckpt does not resume from because they are not exact; rerun with --restart to aggregate the input again", ErrStateVersion)
		}
		return fmt.Errorf("%w: state format version %d, this ckpt reads version %d", ErrStateVersion, v, stateVersion)
	}
	n := d.uvarint()
	if d.err == nil && n > uint64(len(b)) {
		return errors.New("aggregate: corrupt state: impossible group count")
	}
	s.tab = nil
	for i := uint64(0); i < n && d.err == nil; i++ {
		k := d.string()
		g := &group{}
		nk := d.uvarint()
		if nk > uint64(len(b)) {
			return errors.New("aggregate: corrupt state: impossible key count")
		}
		for j := uint64(0); j < nk && d.err == nil; j++ {
			g.keys = append(g.keys, d.string())
		}
		g.count = d.varint()
		na := d.uvarint()
		if na > uint64(len(b)) {
			return errors.New("aggregate: corrupt state: impossible aggregate count")
		}
		g.accs = make([]acc, na)
		for j := range g.accs {
			c := &g.accs[j]
			c.n = d.varint()
			if c.n < 0 {
				d.fail(errors.New("negative value count"))
			}
			if c.text, c.v = d.numText(); c.text == "" {
				c.v = d.num()
			}
		}
		key := string(appendGroupKey(nil, g.keys))
		if v == stateVersion && key != k && d.err == nil {
			d.fail(fmt.Errorf("group key %q does not match its values", k))
		}
		if d.err != nil {
			break
		}
		if s.tab == nil {
			// The layout of the state as it is: an accumulator for
			// every aggregation (the aggregator moves the groups into
			// its own layout before it adds to them).
			idx := make([]int, len(g.accs))
			for k := range idx {
				idx[k] = k
			}
			s.tab = &table{na: len(g.accs), idx: idx, seed: maphash.MakeSeed()}
		}
		if len(g.accs) != s.tab.na {
			return fmt.Errorf("aggregate: corrupt state: groups of %d and %d aggregates", s.tab.na, len(g.accs))
		}
		j, h := s.tab.find([]byte(key))
		if j >= 0 {
			return fmt.Errorf("aggregate: corrupt state: group %q twice", key)
		}
		j = s.tab.insert([]byte(key), h)
		s.tab.ents[j].count = g.count
		for k := range g.accs {
			s.tab.setAcc(&s.tab.group(j)[k], &g.accs[k])
		}
	}
	if d.err == nil && d.i != len(b) {
		d.err = errors.New("trailing bytes")
	}
	if d.err != nil {
		return fmt.Errorf("aggregate: corrupt state: %w", d.err)
	}
	return nil
}

type decoder struct {
	b   []byte
	i   int
	err error
}

var errShort = errors.New("truncated")

func (d *decoder) byte() byte {
	if d.err != nil || d.i >= len(d.b) {
		d.err = errShort
		return 0
	}
	d.i++
	return d.b[d.i-1]
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.i:])
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.i += n
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.i:])
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.i += n
	return v
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

// num decodes what appendNumBinary wrote.
func (d *decoder) num() num {
	h := d.uvarint()
	if d.err != nil {
		return num{}
	}
	if h>>1 > maxScale {
		d.fail(fmt.Errorf("scale %d beyond %d", h>>1, maxScale))
		return num{}
	}
	n := num{scale: int32(h >> 1)}
	if h&1 == 0 {
		if n.scale > maxFastScale {
			d.fail(fmt.Errorf("scale %d in the int64 form", n.scale))
		}
		n.m = d.varint()
		return n
	}
	l := d.uvarint()
	if d.err != nil || l>>1 > uint64(len(d.b)-d.i) {
		d.fail(errShort)
		return num{}
	}
	mag := d.b[d.i : d.i+int(l>>1)]
	d.i += int(l >> 1)
	n.b = new(big.Int).SetBytes(mag)
	if l&1 == 1 {
		n.b.Neg(n.b)
	}
	return n
}

// numText decodes a value's text, if any, and parses it.
func (d *decoder) numText() (string, num) {
	s := d.string()
	if d.err != nil || s == "" {
		return "", num{}
	}
	n, err := parseNum([]byte(s))
	if err != nil {
		d.fail(fmt.Errorf("value %q: %w", s, err))
	}
	return s, n
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)-d.i) {
		d.err = errShort
		return ""
	}
	d.i += int(n)
	return string(d.b[d.i-int(n) : d.i])
}
