package aggregate

import (
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"

	"github.com/ckptdev/ckpt/internal/records"
	"github.com/ckptdev/ckpt/sink"
)

// begin returns the output buffer, with the header line in it before the
// first line of a CSV output.
func (a *aggregator) begin() []byte {
	if a.names == nil {
		a.names = a.opts.columns()
	}
	b := a.outBuf
	if a.opts.To.IsCSV() && !a.header {
		comma := a.opts.To.Separator(a.opts.OutDelimiter)
		for i, n := range a.names {
			if i > 0 {
				b = append(b, comma)
			}
			b = records.AppendCSVField(b, []byte(n), comma)
		}
		b = append(b, '\n')
	}
	a.header = true
	return b
}

// end keeps b as the output buffer, writing it to out when it is large or
// last is set.
func (a *aggregator) end(out *sink.File, b []byte, last bool) error {
	if len(b) > 1<<20 || last {
		if _, err := out.Write(b); err != nil {
			return err
		}
		b = b[:0]
	}
	a.outBuf = b
	return nil
}

// appendRow appends one output line of cells: nkeys group-by values,
// then the aggregates' results (empty: no value).
func (a *aggregator) appendRow(b []byte, nkeys int, cells [][]byte) ([]byte, error) {
	if a.opts.To.IsCSV() {
		comma := a.opts.To.Separator(a.opts.OutDelimiter)
		for i, c := range cells {
			if i > 0 {
				b = append(b, comma)
			}
			b = records.AppendCSVField(b, c, comma)
		}
		return append(b, '\n'), nil
	}
	var err error
	for i, c := range cells {
		if i == 0 {
			b = append(b, '{')
		} else {
			b = append(b, ',')
		}
		if b, err = records.AppendString(b, []byte(a.names[i])); err != nil {
			return b, fmt.Errorf("aggregate: column name %q: %w", a.names[i], err)
		}
		b = append(b, ':')
		switch {
		case i < nkeys:
			if b, err = records.AppendString(b, c); err != nil {
				return b, fmt.Errorf("aggregate: group %q: %w", cells[:nkeys], err)
			}
		case len(c) == 0:
			b = append(b, "null"...)
		case records.IsNumber(c):
			b = append(b, c...)
		default:
			// A min or max written in a form JSON does not allow
			// (+5, 007, .5, 1.): the same number in JSON's form.
			b = append(b, jsonNumber(c)...)
		}
	}
	return append(b, "}\n"...), nil
}

// writeEncoded appends the line of one group as the keyed state holds it:
// key in appendGroupKey's form, val in partial.AppendBinary's. It decodes
// both into scratch space, allocating nothing per group, and writes what
// writeGroup writes for the decoded group.
func (a *aggregator) writeEncoded(out *sink.File, key, val []byte) error {
	// The cells are taken as offsets into a.cellBuf, which grows.
	buf := a.cellBuf[:0]
	ends := a.cellEnds[:0]
	nkeys := 0
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c != 0 {
			buf = append(buf, c)
			continue
		}
		if i+1 >= len(key) {
			return errCorruptKey
		}
		i++
		switch key[i] {
		case 0xff:
			buf = append(buf, 0)
		case 1:
			ends = append(ends, len(buf))
			nkeys++
		default:
			return errCorruptKey
		}
	}
	if nkeys != len(a.opts.GroupBy) || len(ends) == 0 || ends[len(ends)-1] != len(buf) {
		return errCorruptKey
	}
	d := decoder{b: val}
	count := d.varint()
	if na := d.uvarint(); d.err == nil && na != uint64(len(a.opts.Aggs)) {
		return fmt.Errorf("aggregate: corrupt group: %d aggregates, want %d", na, len(a.opts.Aggs))
	}
	for _, s := range a.opts.Aggs {
		n := d.varint()
		tl := d.uvarint()
		if d.err != nil || tl > uint64(len(val)-d.i) {
			return fmt.Errorf("aggregate: corrupt group: %w", errShort)
		}
		text := val[d.i : d.i+int(tl)]
		d.i += int(tl)
		var v num
		if tl == 0 {
			v = d.num()
		}
		if d.err != nil {
			return fmt.Errorf("aggregate: corrupt group: %w", d.err)
		}
		switch {
		case s.Op == Count:
			buf = strconv.AppendInt(buf, count, 10)
		case s.Op == Sum:
			buf = appendNum(buf, &v)
		case n == 0:
		case s.Op == Mean:
			buf = appendMean(buf, &v, n)
		default:
			buf = append(buf, text...)
		}
		ends = append(ends, len(buf))
	}
	if d.i != len(val) {
		return errors.New("aggregate: corrupt group: trailing bytes")
	}
	a.cells = a.cells[:0]
	start := 0
	for _, e := range ends {
		a.cells = append(a.cells, buf[start:e:e])
		start = e
	}
	a.cellBuf, a.cellEnds = buf, ends
	b, err := a.appendRow(a.begin(), nkeys, a.cells)
	if err != nil {
		return err
	}
	return a.end(out, b, false)
}

var errCorruptKey = errors.New("aggregate: corrupt group key")

// writeFrom writes the groups that scan yields, encoded and in key order
// (Keyed.RangeEncoded), then ends the output. Two goroutines share the
// work: the caller's reads the groups (merging the keyed state's runs)
// into batches, another formats them and writes the lines, so that both
// CPUs work on the end of a large aggregation.
func (a *aggregator) writeFrom(out *sink.File, scan func(func(key, val []byte) bool) error) error {
	type batch struct {
		data []byte
		ends []int // per group, where its key ends, then where its value does
	}
	const batchBytes = 256 << 10
	full := make(chan *batch, 2)
	free := make(chan *batch, 3)
	for range 3 {
		free <- &batch{data: make([]byte, 0, batchBytes+4096)}
	}
	var failed atomic.Bool
	done := make(chan error, 1)
	go func() {
		var err error
		for b := range full {
			start := 0
			for i := 0; err == nil && i < len(b.ends); i += 2 {
				k, v := b.ends[i], b.ends[i+1]
				err = a.writeEncoded(out, b.data[start:k], b.data[k:v])
				start = v
			}
			if err != nil {
				failed.Store(true)
			}
			b.data, b.ends = b.data[:0], b.ends[:0]
			free <- b
		}
		done <- err
	}()
	cur := <-free
	serr := scan(func(key, val []byte) bool {
		cur.data = append(cur.data, key...)
		cur.ends = append(cur.ends, len(cur.data))
		cur.data = append(cur.data, val...)
		cur.ends = append(cur.ends, len(cur.data))
		if len(cur.data) >= batchBytes {
			full <- cur
			cur = <-free
		}
		return !failed.Load()
	})
	if len(cur.ends) > 0 {
		full <- cur
	}
	close(full)
	err := <-done
	if err == nil {
		err = serr
	}
	if err == nil {
		err = a.writeGroup(nil, out, true)
	}
	return err
}
