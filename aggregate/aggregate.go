// Package aggregate is the library behind `ckpt aggregate`: a resumable
// group-by over CSV or JSON Lines input of any size, whose groups live in
// the job's checkpointed state, written sorted by group key at the end.
package aggregate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/codec"
	"github.com/ckptdev/ckpt/convert"
	"github.com/ckptdev/ckpt/internal/records"
	"github.com/ckptdev/ckpt/pipeline"
	"github.com/ckptdev/ckpt/sink"
	"github.com/ckptdev/ckpt/source"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/stream"
)

// Op is an aggregation.
type Op uint8

// The aggregations.
const (
	Count Op = iota // records in the group
	Sum             // sum of a column's values
	Min             // smallest value
	Max             // largest value
	Mean            // arithmetic mean
)

var opNames = [...]string{"count", "sum", "min", "max", "mean"}

func (o Op) String() string { return opNames[o] }

// Spec is one aggregation of one column (none for count).
type Spec struct {
	Op     Op
	Column string
}

// Name is the output column: "count", or COLUMN_OP as in "price_sum".
func (s Spec) Name() string {
	if s.Op == Count {
		return "count"
	}
	return s.Column + "_" + s.Op.String()
}

// ParseSpecs reads "count,sum:price,mean:qty".
func ParseSpecs(s string) ([]Spec, error) {
	var out []Spec
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, col, hasCol := strings.Cut(part, ":")
		i := slices.Index(opNames[:], name)
		if i < 0 {
			return nil, fmt.Errorf("unknown aggregation %q (use count, sum:COL, min:COL, max:COL, mean:COL)", name)
		}
		op := Op(i)
		if op == Count && hasCol {
			return nil, fmt.Errorf("count takes no column (%q)", part)
		}
		if op != Count && (!hasCol || col == "") {
			return nil, fmt.Errorf("%s needs a column, as %s:COLUMN", name, name)
		}
		out = append(out, Spec{Op: op, Column: col})
	}
	if len(out) == 0 {
		return nil, errors.New("no aggregation given")
	}
	return out, nil
}

// Options configure an aggregation.
type Options struct {
	Input   string
	Output  string
	From    convert.Format // Auto: from Input's extension
	To      convert.Format // Auto: from Output's extension
	GroupBy []string
	Aggs    []Spec
	// Until bounds a stream input (required for one: the groups are
	// written when the input ends).
	Until stream.Until
	// Delimiter is the field separator of CSV or TSV input, OutDelimiter
	// of CSV or TSV output; 0 is the format's own. Columns names the
	// columns of CSV input without a header line.
	Delimiter, OutDelimiter byte
	Columns                 []string
	// Pipeline names the job and sets store, triggers, bad-record policy
	// and progress. Its codec is set to gob: the groups encode themselves
	// compactly.
	Pipeline pipeline.Config
}

// Run aggregates Input into Output as the job o.Pipeline.Job.
func Run(ctx context.Context, o Options) (pipeline.Result, error) {
	if len(o.GroupBy) == 0 {
		return pipeline.Result{}, errors.New("aggregate: no group-by column")
	}
	if len(o.Aggs) == 0 {
		return pipeline.Result{}, errors.New("aggregate: no aggregation")
	}
	var err error
	if convert.IsStream(o.Input) {
		if o.From != convert.Auto && o.From != convert.JSONL {
			return pipeline.Result{}, errors.New("aggregate: the input is a stream of JSON messages: --from does not apply")
		}
		if o.Until.IsZero() {
			return pipeline.Result{}, errors.New("aggregate: a stream input needs a bound (--until now, a sequence or a time): the groups are written when the input ends")
		}
		o.From = convert.JSONL
	} else if !o.Until.IsZero() {
		return pipeline.Result{}, errors.New("aggregate: --until applies to a stream input only")
	}
	if o.From == convert.Auto {
		if o.From, err = convert.InputFormatOf(o.Input); err != nil {
			return pipeline.Result{}, fmt.Errorf("aggregate: input: %w", err)
		}
	}
	if convert.IsS3(o.Output) || convert.IsPostgres(o.Output) || convert.IsStream(o.Output) {
		return pipeline.Result{}, fmt.Errorf("aggregate: output %s: ckpt aggregate writes a local file (CSV, TSV or JSON Lines, compressed if named .gz or .zst); convert it from there", store.RedactString(o.Output))
	}
	if o.To == convert.Auto {
		if o.To, err = convert.FormatOf(o.Output); err != nil {
			return pipeline.Result{}, fmt.Errorf("aggregate: output: %w", err)
		}
	}
	if !o.From.IsCSV() && (o.Delimiter != 0 || len(o.Columns) > 0) {
		return pipeline.Result{}, fmt.Errorf("aggregate: the input is %s: a delimiter and column names apply to CSV and TSV input only", o.From)
	}
	if !o.To.IsCSV() && o.OutDelimiter != 0 {
		return pipeline.Result{}, fmt.Errorf("aggregate: the output is %s: an output delimiter applies to CSV and TSV output only", o.To)
	}
	for side, d := range map[string]byte{"input": o.Delimiter, "output": o.OutDelimiter} {
		if d != 0 {
			if err := convert.CheckSeparator(side, d); err != nil {
				return pipeline.Result{}, fmt.Errorf("aggregate: %w", err)
			}
		}
	}
	if o.To == convert.JSONL {
		for _, name := range o.columns() {
			if !utf8.ValidString(name) {
				return pipeline.Result{}, fmt.Errorf("aggregate: output column %q is not valid UTF-8, which JSON Lines cannot hold", name)
			}
		}
	}
	o.Pipeline.Codec = codec.Gob{}
	// The groups' layout in the state follows these: a resume with others
	// would fold records into the wrong accumulators.
	group, _ := json.Marshal(o.GroupBy)
	aggs := make([]string, len(o.Aggs))
	for i, s := range o.Aggs {
		aggs[i] = s.Op.String()
		if s.Op != Count {
			aggs[i] += ":" + s.Column
		}
	}
	specs, _ := json.Marshal(aggs)
	o.Pipeline.Params = map[string]string{"from": o.From.String(), "group_by": string(group), "aggs": string(specs)}
	// Set only when not the default, so that jobs begun before these
	// options resume.
	if o.Delimiter != 0 {
		o.Pipeline.Params["delimiter"] = string(o.Delimiter)
	}
	if o.OutDelimiter != 0 {
		o.Pipeline.Params["out_delimiter"] = string(o.OutDelimiter)
	}
	if len(o.Columns) > 0 {
		o.Pipeline.Params["columns"] = strings.Join(o.Columns, ",")
	}
	a := &aggregator{opts: o}
	end := pipeline.AtEnd(a.write)
	onOpen := pipeline.OnOpen[State, *sink.File](a.open)
	if o.From.IsCSV() {
		csvOpts := source.CSVOptions{Comma: o.From.Separator(o.Delimiter), Columns: o.Columns}
		return pipeline.Run(ctx, o.Pipeline, convert.CSVInput(o.Input, csvOpts), pipeline.File(o.Output), a.csvRow, end, onOpen)
	}
	return pipeline.Run(ctx, o.Pipeline, convert.LinesInput(o.Input, o.Until), pipeline.File(o.Output), a.jsonLine, end, onOpen)
}

// columns returns the output's column names: the group-by columns, then
// one per aggregation.
func (o *Options) columns() []string {
	names := append([]string(nil), o.GroupBy...)
	for _, s := range o.Aggs {
		names = append(names, s.Name())
	}
	return names
}

// aggregator holds per-run scratch space; the groups are in State.
type aggregator struct {
	opts    Options
	cols    []int // CSV: index of each group-by column, then each agg column
	vals    [][]byte
	obj     records.Object
	scratch big.Int // for sums past int64
	first   []int   // per aggregation, the first one of the same column
	// maxMemory is how many bytes State's table may hold before its
	// groups are handed to the keyed state; zero means no limit (they are
	// handed over at every checkpoint).
	maxMemory int64

	// The output being written: buffered bytes, whether the header is
	// in them, the cells of a line.
	outBuf []byte
	header bool
	cells  [][]byte
	names  []string // the output's columns
	accs   []acc
	// Scratch space of writeEncoded: the cells' bytes and where each ends.
	cellBuf  []byte
	cellEnds []int

	// The size of the last table handed over, which the next one is
	// likely to reach.
	lastGroups, lastKeyBytes int
	accIdx                   []int  // each aggregation's accumulator in a table's group, -1: none
	accs0                    int    // accumulators per group
	spares                   spares // tables the keyed state is done with
	// seed hashes group keys for every table of the run, so that a
	// record hashed before its table is handed over (memory full) finds
	// its group in the next one; seeded says it is set.
	seed   maphash.Seed
	seeded bool
}

// hashSeed returns the run's hash seed, made on first use.
func (a *aggregator) hashSeed() maphash.Seed {
	if !a.seeded {
		a.seed, a.seeded = maphash.MakeSeed(), true
	}
	return a.seed
}

// newTable returns an empty table for the run's groups, with room for as
// many as the last one held.
func (a *aggregator) newTable() *table {
	if t := a.spares.get(); t != nil {
		t.reset()
		t.seed = a.hashSeed()
		return t
	}
	if a.accIdx == nil {
		// An accumulator per aggregation but counts, which need none.
		for _, s := range a.opts.Aggs {
			if s.Op == Count {
				a.accIdx = append(a.accIdx, -1)
				continue
			}
			a.accIdx = append(a.accIdx, a.accs0)
			a.accs0++
		}
	}
	t := &table{na: a.accs0, idx: a.accIdx, seed: a.hashSeed(), spare: &a.spares}
	if a.maxMemory > 0 {
		// Room for every group the budget allows: memory from the
		// operating system is zero already and takes no room until
		// used, and the table never copies itself to grow.
		n := groupsIn(a.maxMemory, t.na)
		t.reserve(n, 16*n)
	} else {
		t.reserve(a.lastGroups, a.lastKeyBytes)
	}
	return t
}

// State is the job's state: the groups seen since the last checkpoint
// (all of them when the state is used without a job), and the keyed
// state that holds the others.
type State struct {
	tab   *table
	keyed *ckpt.Keyed[string, partial]
	// q holds the records read but not yet folded into tab: folded a
	// batch at a time (aggregator.flush), before every checkpoint and
	// before the groups are written.
	q queue
}

// queue is a batch of records, parsed, with their group keys and hashes,
// waiting to be folded into the table together: looking up many keys at
// once lets their cache misses overlap, where one lookup after another
// waits for each in turn (a table of millions of groups is far larger
// than the CPU's caches, and almost every lookup misses).
type queue struct {
	keys []byte   // the records' group keys, one after another
	ends []int    // where each record's key ends in keys
	hash []uint64 // each record's key's hash, with the run's seed
	nums []value  // per record, one value per aggregation
	text []byte   // the texts of the values of minima and maxima
	sink uint64   // keeps the loads that warm the cache from being dropped
}

// queueLen is how many records a queue holds before they are folded in:
// enough for every miss the CPU can have in flight, few enough that the
// index slots they warm are still in cache when they are used.
const queueLen = 32

func (q *queue) len() int { return len(q.ends) }

func (q *queue) reset() {
	q.keys, q.ends, q.hash, q.nums, q.text = q.keys[:0], q.ends[:0], q.hash[:0], q.nums[:0], q.text[:0]
}

// group is a group decoded from a checkpoint's plain state (State's
// encoding), as ckpt before keyed state wrote them.
type group struct {
	keys  []string
	count int64
	accs  []acc
}

// acc accumulates one aggregation of one column of one group, exactly.
// For sum and mean, v is the exact sum; for min and max, v is the extreme
// so far as an exact decimal and text is that value as written, which the
// output shows.
type acc struct {
	n    int64 // values folded in
	v    num
	text string
}

// value is one parsed input value.
type value struct {
	text  []byte
	empty bool
	num   num
}

func (a *aggregator) csvRow(ctx context.Context, row *source.Row, st *State, _ *sink.File) error {
	if a.cols == nil {
		if err := a.resolveCSV(row.Header); err != nil {
			return err
		}
	}
	a.vals = a.vals[:0]
	for _, c := range a.cols {
		if c >= 0 {
			a.vals = append(a.vals, row.Fields[c])
		} else {
			a.vals = append(a.vals, nil)
		}
	}
	return a.add(st, a.vals, func(err error) error {
		return &source.RecordError{File: row.File, Line: row.Line, Offset: row.Offset, Raw: slices.Clone(row.Raw), Err: err}
	})
}

func (a *aggregator) resolveCSV(header []string) error {
	find := func(name string) (int, error) {
		i := slices.Index(header, name)
		if i < 0 {
			return 0, fmt.Errorf("aggregate: no column %q in the header (%s)", name, strings.Join(header, ","))
		}
		return i, nil
	}
	for _, g := range a.opts.GroupBy {
		i, err := find(g)
		if err != nil {
			return err
		}
		a.cols = append(a.cols, i)
	}
	for _, s := range a.opts.Aggs {
		i := -1
		if s.Op != Count {
			var err error
			if i, err = find(s.Column); err != nil {
				return err
			}
		}
		a.cols = append(a.cols, i)
	}
	return nil
}

func (a *aggregator) jsonLine(ctx context.Context, line *source.Line, st *State, _ *sink.File) error {
	if len(bytes.TrimSpace(line.Text)) == 0 {
		return nil
	}
	bad := func(err error) error {
		return &source.RecordError{File: line.File, Line: line.Line, Offset: line.Offset, Raw: line.Text, Err: err}
	}
	if err := a.obj.Scan(line.Text); err != nil {
		return bad(err)
	}
	a.vals = a.vals[:0]
	lookup := func(name string) []byte {
		for i, k := range a.obj.Keys {
			if string(k) == name {
				if a.obj.Kinds[i] == records.Null {
					return []byte{}
				}
				return a.obj.Values[i]
			}
		}
		return nil
	}
	for _, g := range a.opts.GroupBy {
		v := lookup(g)
		if v == nil {
			v = []byte{}
		}
		a.vals = append(a.vals, v)
	}
	for _, s := range a.opts.Aggs {
		if s.Op == Count {
			a.vals = append(a.vals, nil)
			continue
		}
		a.vals = append(a.vals, lookup(s.Column))
	}
	return a.add(st, a.vals, bad)
}

// add parses one record and queues it to be folded into its group. vals
// holds the group-by values, then one value per aggregation. Every value
// is checked before the record is queued, so a bad record leaves the
// state untouched; the queue is folded in when full (flush).
func (a *aggregator) add(st *State, vals [][]byte, bad func(error) error) error {
	ng := len(a.opts.GroupBy)
	q := &st.q
	n0 := len(q.nums)
	for i, s := range a.opts.Aggs {
		v := vals[ng+i]
		if s.Op == Count || len(v) == 0 {
			q.nums = append(q.nums, value{empty: true})
			continue
		}
		var p value
		if j := a.firstOf(i); j < i {
			// sum:x,mean:x,max:x parse x once.
			p = q.nums[n0+j]
		} else {
			var err error
			if p, err = parseNumber(v); err != nil {
				q.nums = q.nums[:n0]
				return bad(fmt.Errorf("column %q: %q %w", s.Column, v, err))
			}
		}
		// The value's text is the input's, which the source reuses: a
		// minimum or maximum keeps a copy, the others none.
		p.text = nil
		if s.Op == Min || s.Op == Max {
			t0 := len(q.text)
			q.text = append(q.text, v...)
			p.text = q.text[t0:len(q.text):len(q.text)]
		}
		q.nums = append(q.nums, p)
	}
	if a.opts.To == convert.JSONL {
		// Caught here, as a bad record, rather than when the groups
		// are written after the whole input is read.
		for i, v := range vals[:ng] {
			if !utf8.Valid(v) {
				q.nums = q.nums[:n0]
				return bad(fmt.Errorf("column %q: %w: JSON Lines output cannot hold it", a.opts.GroupBy[i], records.ErrInvalidUTF8))
			}
		}
	}
	k0 := len(q.keys)
	q.keys = appendGroupKey(q.keys, vals[:ng])
	q.ends = append(q.ends, len(q.keys))
	q.hash = append(q.hash, maphash.Bytes(a.hashSeed(), q.keys[k0:]))
	if q.len() == queueLen {
		return a.flush(st)
	}
	return nil
}

// flush folds the queued records into their groups.
func (a *aggregator) flush(st *State) error {
	q := &st.q
	if q.len() == 0 {
		return nil
	}
	defer q.reset()
	if err := a.ready(st); err != nil {
		return err
	}
	t := st.tab
	if len(t.slots) > 0 {
		// Load every record's first index slot before using any: the
		// loads do not depend on one another, so the CPU has their
		// misses in flight together.
		mask := uint64(len(t.slots) - 1)
		var x uint64
		for _, h := range q.hash {
			x += t.slots[h&mask]
		}
		q.sink += x
	}
	na := len(a.opts.Aggs)
	k0 := 0
	for r, end := range q.ends {
		key, h := q.keys[k0:end], q.hash[r]
		k0 = end
		gi := t.findHash(key, h)
		if gi < 0 {
			if a.maxMemory > 0 && t.memory() >= a.maxMemory {
				// Memory is full: the groups go to disk now.
				if err := a.handoff(st); err != nil {
					return err
				}
				if err := st.keyed.Flush(); err != nil {
					return err
				}
				t = st.tab
			}
			gi = t.insert(key, h)
		}
		t.ents[gi].count++
		accs := t.group(gi)
		nums := q.nums[r*na : (r+1)*na]
		for i := range nums {
			// A count's value is always empty: it has no accumulator.
			if p := &nums[i]; !p.empty {
				t.add(&accs[a.accIdx[i]], a.opts.Aggs[i].Op, p, &a.scratch)
			}
		}
	}
	return nil
}

// ready makes st.tab a table of the run's layout, ready for records.
func (a *aggregator) ready(st *State) error {
	switch {
	case st.tab == nil:
		st.tab = a.newTable()
	case len(st.tab.idx) != len(a.opts.Aggs):
		return fmt.Errorf("aggregate: the checkpoint's groups have %d aggregates, the job %d", len(st.tab.idx), len(a.opts.Aggs))
	case st.tab.spare == nil:
		// Groups of a checkpoint's plain state, laid out as they were
		// read: into a table of this run's layout.
		old := st.tab
		st.tab = a.newTable()
		for i := range old.ents {
			_, h := st.tab.find(old.key(i))
			j := st.tab.insert(old.key(i), h)
			st.tab.ents[j].count = old.ents[i].count
			accs := old.appendAccs(nil, i)
			for k, x := range a.accIdx {
				if x >= 0 {
					st.tab.setAcc(&st.tab.group(j)[x], &accs[k])
				}
			}
		}
	}
	return nil
}

// firstOf returns the index of the first aggregation of aggregation i's
// column.
func (a *aggregator) firstOf(i int) int {
	if a.first == nil {
		a.first = make([]int, len(a.opts.Aggs))
		for k, s := range a.opts.Aggs {
			a.first[k] = k
			for j := range k {
				if a.opts.Aggs[j].Op != Count && a.opts.Aggs[j].Column == s.Column {
					a.first[k] = j
					break
				}
			}
		}
	}
	return a.first[i]
}

// parseNumber parses an input value; see parseNum for what is a number.
func parseNumber(b []byte) (value, error) {
	n, err := parseNum(b)
	if err != nil {
		return value{}, err
	}
	return value{text: b, num: n}, nil
}

// add folds v into c, which computes op: each op keeps only what it
// needs.
func (c *acc) add(op Op, v *value, scratch *big.Int) {
	switch op {
	case Min:
		if c.n == 0 || v.num.cmp(&c.v) < 0 {
			c.v, c.text = v.num, string(v.text)
		}
	case Max:
		if c.n == 0 || v.num.cmp(&c.v) > 0 {
			c.v, c.text = v.num, string(v.text)
		}
	default:
		c.v.add(&v.num, scratch)
	}
	c.n++
}

// write appends the groups, sorted by key, to out.
func (a *aggregator) write(ctx context.Context, st *State, out *sink.File) error {
	a.header, a.outBuf = false, a.outBuf[:0]
	if err := a.flush(st); err != nil {
		return err
	}
	if st.keyed != nil {
		if err := a.handoff(st); err != nil {
			return err
		}
		return a.writeFrom(out, st.keyed.RangeEncoded)
	}
	for _, i := range st.tab.sorted() {
		keys, err := decodeGroupKey(string(st.tab.key(int(i))), len(a.opts.GroupBy))
		if err != nil {
			return err
		}
		a.accs = st.tab.appendAccs(a.accs[:0], int(i))
		if err := a.writeGroup(&group{keys: keys, count: st.tab.ents[i].count, accs: a.accs}, out, false); err != nil {
			return err
		}
	}
	return a.writeGroup(nil, out, true)
}

// writeGroup appends one group's line to out (the header line before the
// first), through a buffer; last flushes the buffer and writes nothing
// else (the header only, if there were no groups).
func (a *aggregator) writeGroup(g *group, out *sink.File, last bool) error {
	b := a.begin()
	if g != nil {
		a.cells = a.cells[:0]
		for _, k := range g.keys {
			a.cells = append(a.cells, []byte(k))
		}
		for i, s := range a.opts.Aggs {
			a.cells = append(a.cells, g.accs[i].result(s.Op, g.count))
		}
		var err error
		if b, err = a.appendRow(b, len(g.keys), a.cells); err != nil {
			return err
		}
	}
	return a.end(out, b, last)
}

// jsonNumber rewrites text, a number parseNumber accepted, as a JSON
// number: its exact value as a plain decimal.
func jsonNumber(text []byte) []byte {
	n, err := parseNum(text)
	if err != nil {
		return []byte("null") // unreachable: text was parsed before
	}
	return appendNum(nil, &n)
}

// result formats an aggregate; empty when there were no values.
func (c *acc) result(op Op, count int64) []byte {
	switch op {
	case Count:
		return strconv.AppendInt(nil, count, 10)
	case Sum:
		return appendNum(nil, &c.v)
	}
	if c.n == 0 {
		return nil
	}
	if op == Mean {
		return appendMean(nil, &c.v, c.n)
	}
	return []byte(c.text)
}
