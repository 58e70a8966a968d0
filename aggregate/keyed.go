package aggregate

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/codec"
	"github.com/ckptdev/ckpt/pipeline"
)

// The groups live in the job's keyed state (ckpt.Keyed), one entry per
// group: its key the group-by values in an order-preserving form, its
// value the group's aggregates. Records are folded into State's table of
// the groups seen since the last checkpoint (table.go); before every
// checkpoint the table is handed to the keyed state as merge operands,
// already encoded (ckpt.Keyed.MergeEncoded), and a new one starts. So the
// per-record path stays a hash-table update, a checkpoint writes only the
// groups that changed since the previous one, and past the memory budget
// the keyed state spills to disk without reading anything back until the
// end, when the groups are read in key order, already sorted.

// partial is a group's aggregates over a part of the input; two parts
// merge into the aggregates over both.
type partial struct {
	count int64
	accs  []acc
}

// AppendBinary encodes p as the groups of State.MarshalBinary are
// encoded: varint count, uvarint number of aggregates, each a varint
// value count, the value's text, and for a sum the number.
func (p *partial) AppendBinary(b []byte) ([]byte, error) {
	b = binary.AppendVarint(b, p.count)
	b = binary.AppendUvarint(b, uint64(len(p.accs)))
	for i := range p.accs {
		c := &p.accs[i]
		b = binary.AppendVarint(b, c.n)
		b = appendString(b, c.text)
		if c.text == "" {
			b = appendNumBinary(b, &c.v)
		}
	}
	return b, nil
}

// MarshalBinary is AppendBinary to a new slice.
func (p *partial) MarshalBinary() ([]byte, error) { return p.AppendBinary(nil) }

// UnmarshalBinary decodes what AppendBinary wrote.
func (p *partial) UnmarshalBinary(b []byte) error {
	d := decoder{b: b}
	p.count = d.varint()
	na := d.uvarint()
	if na > uint64(len(b)) {
		return errors.New("aggregate: corrupt group: impossible aggregate count")
	}
	p.accs = make([]acc, na)
	for j := range p.accs {
		c := &p.accs[j]
		c.n = d.varint()
		if c.n < 0 {
			d.fail(errors.New("negative value count"))
		}
		if c.text, c.v = d.numText(); c.text == "" {
			c.v = d.num()
		}
	}
	if d.err == nil && d.i != len(b) {
		d.err = errors.New("trailing bytes")
	}
	if d.err != nil {
		return fmt.Errorf("aggregate: corrupt group: %w", d.err)
	}
	return nil
}

// merge returns the aggregates over older's part and newer's. It changes
// neither (a checkpoint in flight may be encoding them) and shares nothing
// with the per-record path: the keyed state calls it from the background
// commit too.
func (a *aggregator) merge(older, newer partial) partial {
	out := partial{count: older.count + newer.count, accs: make([]acc, len(older.accs))}
	for i := range out.accs {
		x, y := &older.accs[i], &newer.accs[i]
		switch {
		case i >= len(newer.accs) || y.n == 0:
			out.accs[i] = *x
			continue
		case x.n == 0:
			out.accs[i] = *y
			continue
		}
		c := &out.accs[i]
		c.n = x.n + y.n
		switch a.opts.Aggs[i].Op {
		case Min:
			c.v, c.text = x.v, x.text
			if y.v.cmp(&x.v) < 0 {
				c.v, c.text = y.v, y.text
			}
		case Max:
			c.v, c.text = x.v, x.text
			if y.v.cmp(&x.v) > 0 {
				c.v, c.text = y.v, y.text
			}
		default:
			c.v = x.v
			if c.v.b != nil {
				c.v.b = new(big.Int).Set(c.v.b)
			}
			// Not a.scratch: merge also runs in the background, while
			// the job's goroutine adds records with it.
			var scratch big.Int
			c.v.add(&y.v, &scratch)
		}
	}
	return out
}

// open opens the keyed state of the groups and hands the groups to it
// before every checkpoint.
func (a *aggregator) open(ctx context.Context, j pipeline.Job, st *State) error {
	// The map of recent groups and the keyed state share the budget.
	memory := a.opts.Pipeline.Memory
	k, err := ckpt.NewKeyed[string, partial](j, "groups", ckpt.KeyedOptions[partial]{Codec: codec.Binary{}, Merge: a.merge, Memory: memory / 2, NoCache: true})
	if err != nil {
		return err
	}
	st.keyed = k
	if memory > 0 {
		// Half the budget for the table of recent groups; as a table
		// handed over stays in memory until its run is written, two
		// tables take it.
		a.maxMemory = max(memory/4, 1<<20)
	}
	j.OnCapture(func() error {
		if err := a.flush(st); err != nil {
			return err
		}
		return a.handoff(st)
	})
	return nil
}

// handoff hands the recent groups to the keyed state, which writes them
// as a sorted run of merge operands (in the background when a checkpoint
// takes them), and starts a new table. The queued records stay queued:
// flush first to include them.
func (a *aggregator) handoff(st *State) error {
	if st.keyed == nil || st.tab.len() == 0 {
		return nil
	}
	if err := st.keyed.MergeEncoded(st.tab); err != nil {
		return fmt.Errorf("aggregate: %w", err)
	}
	a.lastGroups, a.lastKeyBytes = st.tab.len(), len(st.tab.keys)
	st.tab = a.newTable()
	return nil
}

// appendGroupKey appends the group-by values in a form whose byte order
// is their order (slices.Compare): each value with 0x00 written as 0x00
// 0xff, then 0x00 0x01. It is the key of a group in State's table and in
// the keyed state.
func appendGroupKey[T ~string | ~[]byte](b []byte, keys []T) []byte {
	for _, k := range keys {
		for len(k) > 0 {
			i := 0
			for i < len(k) && k[i] != 0 {
				i++
			}
			b = append(b, k[:i]...)
			if i == len(k) {
				break
			}
			b = append(b, 0, 0xff)
			k = k[i+1:]
		}
		b = append(b, 0, 1)
	}
	return b
}

// decodeGroupKey is the inverse of appendGroupKey: n values, or any
// number if n is negative.
func decodeGroupKey(key string, n int) ([]string, error) {
	keys := make([]string, 0, max(n, 0))
	var cur []byte
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c != 0 {
			cur = append(cur, c)
			continue
		}
		if i+1 >= len(key) {
			return nil, errors.New("aggregate: corrupt group key")
		}
		i++
		switch key[i] {
		case 0xff:
			cur = append(cur, 0)
		case 1:
			keys = append(keys, string(cur))
			cur = cur[:0]
		default:
			return nil, errors.New("aggregate: corrupt group key")
		}
	}
	if len(cur) > 0 || n >= 0 && len(keys) != n {
		return nil, errors.New("aggregate: corrupt group key")
	}
	return keys, nil
}
