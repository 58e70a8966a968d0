package aggregate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

// MarshalBinary encodes the groups compactly and deterministically (sorted
// by key), for the job's checkpoints.
func (s *State) MarshalBinary() ([]byte, error) {
	keys := make([]string, 0, len(s.groups))
	for k := range s.groups {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b := []byte{stateVersion}
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		g := s.groups[k]
		b = appendString(b, k)
		b = binary.AppendUvarint(b, uint64(len(g.keys)))
		for _, gk := range g.keys {
			b = appendString(b, gk)
		}
		b = binary.AppendVarint(b, g.count)
		b = binary.AppendUvarint(b, uint64(len(g.accs)))
		for _, c := range g.accs {
			var flags byte
			if c.isFloat {
				flags = 1
			}
			b = append(b, flags)
			b = binary.AppendVarint(b, c.n)
			b = binary.AppendVarint(b, c.isum)
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(c.fsum))
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(c.min))
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(c.max))
			b = appendString(b, c.minText)
			b = appendString(b, c.maxText)
		}
	}
	return b, nil
}

const stateVersion = 1

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// UnmarshalBinary decodes what MarshalBinary wrote, refusing anything
// malformed.
func (s *State) UnmarshalBinary(b []byte) error {
	d := decoder{b: b}
	if v := d.byte(); v != stateVersion {
		return fmt.Errorf("aggregate: state version %d, this ckpt reads %d", v, stateVersion)
	}
	n := d.uvarint()
	if d.err == nil && n > uint64(len(b)) {
		return errors.New("aggregate: corrupt state: impossible group count")
	}
	s.groups = make(map[string]*group, n)
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
			c.isFloat = d.byte() == 1
			c.n = d.varint()
			c.isum = d.varint()
			c.fsum = math.Float64frombits(d.uint64())
			c.min = math.Float64frombits(d.uint64())
			c.max = math.Float64frombits(d.uint64())
			c.minText = d.string()
			c.maxText = d.string()
		}
		s.groups[k] = g
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

func (d *decoder) uint64() uint64 {
	if d.err != nil || d.i+8 > len(d.b) {
		d.err = errShort
		return 0
	}
	d.i += 8
	return binary.LittleEndian.Uint64(d.b[d.i-8:])
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
