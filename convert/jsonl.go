package convert

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/ckptdev/ckpt/internal/records"
	"github.com/ckptdev/ckpt/source"
)

// objectRow maps each JSON Lines object onto fixed columns: the keys of
// the first object, in their order. A key that is not a column, or a key
// given twice, makes the record bad; a missing key is an absent value.
type objectRow struct {
	cols  []string
	index map[string]int
	obj   records.Object
	vals  [][]byte // per column; nil when absent or null
	null  []bool   // per column: absent or JSON null
	seen  []bool   // per column: its key was in the object
}

// setColumns fixes the columns. A name repeated in the first object is a
// column of its own, but a key finds the first column of its name.
func (r *objectRow) setColumns(cols []string) {
	r.cols = cols
	r.index = make(map[string]int, len(cols))
	for i, c := range cols {
		if _, dup := r.index[c]; !dup {
			r.index[c] = i
		}
	}
	r.vals = make([][]byte, len(cols))
	r.null = make([]bool, len(cols))
	r.seen = make([]bool, len(cols))
}

// scan parses line into r.obj: false for a blank line, which holds no
// record; a *source.RecordError for a line that is not one JSON object.
func (r *objectRow) scan(line *source.Line) (bool, error) {
	if len(bytes.TrimSpace(line.Text)) == 0 {
		return false, nil
	}
	if err := r.obj.Scan(line.Text); err != nil {
		var se *records.SyntaxError
		if errors.As(err, &se) {
			return false, lineError(line, se.Offset+1, errors.New(se.Msg))
		}
		return false, lineError(line, 0, err)
	}
	return true, nil
}

// fill maps the keys of the object scan read onto the columns.
func (r *objectRow) fill(line *source.Line) error {
	clear(r.seen)
	for c := range r.cols {
		r.vals[c], r.null[c] = nil, true
	}
	for i, k := range r.obj.Keys {
		c := -1
		if i < len(r.cols) && r.cols[i] == string(k) {
			c = i
		} else if j, ok := r.index[string(k)]; ok {
			c = j
		}
		if c < 0 {
			return lineError(line, 0, fmt.Errorf("key %q is not a column (the columns are fixed by the first record: %s)", k, strings.Join(r.cols, ",")))
		}
		if r.seen[c] {
			return lineError(line, 0, fmt.Errorf("duplicate key %q", k))
		}
		r.seen[c] = true
		if r.obj.Kinds[i] != records.Null {
			r.vals[c], r.null[c] = r.obj.Values[i], false
		}
	}
	return nil
}

// lineError makes a bad-record error for line, with the fault at byte
// column col (0 if none).
func lineError(line *source.Line, col int, err error) *source.RecordError {
	return &source.RecordError{File: line.File, Line: line.Line, Column: int64(col), Offset: line.Offset, Raw: line.Text, Err: err}
}
