// Command benchtab reads the output of `go test -bench` on standard input
// and prints one aligned Markdown table per top-level benchmark, as
// docs/BENCHMARKS.md shows them. scripts/bench.sh pipes into it.
//
// Sub-benchmarks are named key=value (BenchmarkEngineSave/size=64MiB/
// codec=zstd); each key becomes a column. The row whose -base key has the
// base value (codec=raw by default) is the baseline of the rows that differ
// from it in that key alone: a table with MB/s gets a column "MB/s ÷ raw",
// one without gets "time ÷ raw". When a benchmark ran several times
// (-count), every number is the median of its runs.
//
// It exits non-zero if the input holds a failure or no benchmark at all,
// so a broken benchmark never yields a table that looks complete.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

func main() {
	base := flag.String("base", "codec=raw", "`key=value` of the baseline sub-benchmark that ratios are taken against")
	drop := flag.String("drop", "allocs/op", "comma-separated units to leave out of the tables")
	order := flag.String("order", "", "comma-separated units of the benchmarks' own metrics to put first, in this order")
	flag.Parse()
	key, value, ok := strings.Cut(*base, "=")
	if !ok || key == "" || value == "" {
		fmt.Fprintf(os.Stderr, "benchtab: -base %q: want key=value\n", *base)
		os.Exit(2)
	}
	opts := options{baseKey: key, baseValue: value, drop: strings.Split(*drop, ","), order: strings.Split(*order, ",")}
	if err := run(os.Stdin, os.Stdout, opts); err != nil {
		fmt.Fprintln(os.Stderr, "benchtab:", err)
		os.Exit(1)
	}
}

type options struct {
	baseKey, baseValue string
	drop               []string
	order              []string // units to show first; the rest follow as they appear
}

// result is one benchmark, with the values of every run of it.
type result struct {
	name    string // without the -GOMAXPROCS suffix
	top     string // the top-level benchmark
	keys    []kv   // the sub-benchmark path
	iters   []float64
	metrics map[string][]float64 // unit to the values of every run
	units   []string             // in order of appearance
}

type kv struct{ key, value string }

// run parses r and writes the tables to w.
func run(r io.Reader, w io.Writer, opts options) error {
	results, failures, err := parse(r)
	if err != nil {
		return err
	}
	if len(results) == 0 && len(failures) == 0 {
		return errors.New("no benchmark results in the input")
	}
	for i, t := range group(results) {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "#### %s\n\n", t[0].top)
		writeTable(w, t, opts)
	}
	if len(failures) > 0 {
		return fmt.Errorf("the benchmarks failed:\n%s", strings.Join(failures, "\n"))
	}
	return nil
}

var procsSuffix = regexp.MustCompile(`-\d+$`)

// parse reads benchmark lines. A result line is the name, the iteration
// count and value-unit pairs; when a benchmark logs, go test prints the
// name alone first and the numbers on a later line.
func parse(r io.Reader) ([]*result, []string, error) {
	byName := map[string]*result{}
	var order []*result
	var failures []string
	pending := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "--- FAIL") || strings.HasPrefix(line, "FAIL") || strings.HasPrefix(line, "panic:") {
			failures = append(failures, line)
			continue
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if strings.HasPrefix(f[0], "Benchmark") {
			pending = procsSuffix.ReplaceAllString(f[0], "")
			f = f[1:]
			if len(f) == 0 {
				continue
			}
		}
		if pending == "" || len(f) < 3 || len(f)%2 != 1 {
			continue
		}
		iters, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		res := byName[pending]
		if res == nil {
			res = newResult(pending)
			byName[pending] = res
			order = append(order, res)
		}
		res.iters = append(res.iters, iters)
		for i := 1; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: value %q of %s is not a number", pending, f[i], f[i+1])
			}
			unit := f[i+1]
			if _, ok := res.metrics[unit]; !ok {
				res.units = append(res.units, unit)
			}
			res.metrics[unit] = append(res.metrics[unit], v)
		}
		pending = ""
	}
	return order, failures, sc.Err()
}

func newResult(name string) *result {
	parts := strings.Split(name, "/")
	res := &result{name: name, top: parts[0], metrics: map[string][]float64{}}
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			k, v = "", p
		}
		res.keys = append(res.keys, kv{k, v})
	}
	return res
}

// group splits results by top-level benchmark, in order of appearance.
func group(results []*result) [][]*result {
	var groups [][]*result
	idx := map[string]int{}
	for _, r := range results {
		i, ok := idx[r.top]
		if !ok {
			i = len(groups)
			idx[r.top] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], r)
	}
	return groups
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// value returns the median of unit over runs, and whether it was measured.
func (r *result) value(unit string) (float64, bool) {
	v, ok := r.metrics[unit]
	return median(v), ok
}

// baseline returns the result that differs from r only in having the base
// value in the base key, or nil.
func baseline(r *result, all []*result, opts options) *result {
	var want []kv
	found := false
	for _, k := range r.keys {
		if k.key == opts.baseKey {
			k.value = opts.baseValue
			found = true
		}
		want = append(want, k)
	}
	if !found {
		return nil
	}
	for _, o := range all {
		if slices.Equal(o.keys, want) {
			return o
		}
	}
	return nil
}

type column struct {
	header  string
	numeric bool
	cell    func(r *result) string
}

func writeTable(w io.Writer, rows []*result, opts options) {
	var cols []column

	// One column per sub-benchmark key, in order of appearance.
	var keys []string
	for _, r := range rows {
		for i, k := range r.keys {
			name := k.key
			if name == "" {
				name = "case " + strconv.Itoa(i+1)
			}
			if !slices.Contains(keys, name) {
				keys = append(keys, name)
			}
		}
	}
	for _, name := range keys {
		cols = append(cols, column{header: name, cell: func(r *result) string {
			for i, k := range r.keys {
				if k.key == name || k.key == "" && name == "case "+strconv.Itoa(i+1) {
					return k.value
				}
			}
			return ""
		}})
	}
	cols = append(cols, column{header: "runs×iters", numeric: true, cell: func(r *result) string {
		return fmt.Sprintf("%d×%.0f", len(r.iters), median(r.iters))
	}})

	// Time, in µs or ms as suits the table's fastest row.
	minNs := -1.0
	hasMBs := false
	var units []string
	for _, r := range rows {
		if ns, ok := r.value("ns/op"); ok && (minNs < 0 || ns < minNs) {
			minNs = ns
		}
		if _, ok := r.metrics["MB/s"]; ok {
			hasMBs = true
		}
		for _, u := range r.units {
			if !slices.Contains(units, u) {
				units = append(units, u)
			}
		}
	}
	timeUnit, timeDiv := "ms/op", 1e6
	if minNs >= 0 && minNs < 1e6 {
		timeUnit, timeDiv = "µs/op", 1e3
	}
	cols = append(cols, metricColumn(timeUnit, "ns/op", 1/timeDiv))
	ratio := func(r *result, unit string, invert bool) string {
		b := baseline(r, rows, opts)
		if b == nil {
			return ""
		}
		v, ok1 := r.value(unit)
		bv, ok2 := b.value(unit)
		if !ok1 || !ok2 || v == 0 || bv == 0 {
			return ""
		}
		if invert {
			return strconv.FormatFloat(bv/v, 'f', 2, 64)
		}
		return strconv.FormatFloat(v/bv, 'f', 2, 64)
	}
	if hasMBs {
		cols = append(cols, metricColumn("MB/s", "MB/s", 1))
		cols = append(cols, column{header: "MB/s ÷ " + opts.baseValue, numeric: true, cell: func(r *result) string { return ratio(r, "MB/s", false) }})
	} else {
		cols = append(cols, column{header: "time ÷ " + opts.baseValue, numeric: true, cell: func(r *result) string { return ratio(r, "ns/op", false) }})
	}

	// The benchmarks' own metrics, then allocation.
	slices.SortStableFunc(units, func(a, b string) int { return rank(a, opts.order) - rank(b, opts.order) })
	for _, u := range units {
		switch {
		case u == "ns/op" || u == "MB/s" || u == "B/op" || slices.Contains(opts.drop, u):
		default:
			cols = append(cols, metricColumn(strings.ReplaceAll(u, "-", " "), u, 1))
		}
	}
	if slices.Contains(units, "B/op") && !slices.Contains(opts.drop, "B/op") {
		maxB := 0.0
		for _, r := range rows {
			if v, ok := r.value("B/op"); ok {
				maxB = max(maxB, v)
			}
		}
		if maxB >= 1<<20 {
			cols = append(cols, metricColumn("alloc MiB/op", "B/op", 1.0/(1<<20)))
		} else {
			cols = append(cols, metricColumn("alloc KiB/op", "B/op", 1.0/(1<<10)))
		}
	}

	cells := make([][]string, len(rows))
	widths := make([]int, len(cols))
	for j, c := range cols {
		widths[j] = len([]rune(c.header))
	}
	for i, r := range rows {
		cells[i] = make([]string, len(cols))
		for j, c := range cols {
			cells[i][j] = c.cell(r)
			widths[j] = max(widths[j], len([]rune(cells[i][j])), 3)
		}
	}
	line := func(vals []string, numeric func(j int) bool) {
		var b strings.Builder
		b.WriteString("|")
		for j, v := range vals {
			pad := strings.Repeat(" ", widths[j]-len([]rune(v)))
			if numeric(j) {
				b.WriteString(" " + pad + v + " |")
			} else {
				b.WriteString(" " + v + pad + " |")
			}
		}
		fmt.Fprintln(w, b.String())
	}
	headers := make([]string, len(cols))
	rules := make([]string, len(cols))
	for j, c := range cols {
		headers[j] = c.header
		if c.numeric {
			rules[j] = strings.Repeat("-", widths[j]-1) + ":"
		} else {
			rules[j] = ":" + strings.Repeat("-", widths[j]-1)
		}
	}
	line(headers, func(j int) bool { return cols[j].numeric })
	line(rules, func(int) bool { return false })
	for _, row := range cells {
		line(row, func(j int) bool { return cols[j].numeric })
	}
}

// rank is the place of unit in order, or after all of them.
func rank(unit string, order []string) int {
	if i := slices.Index(order, unit); i >= 0 {
		return i
	}
	return len(order)
}

func metricColumn(header, unit string, scale float64) column {
	return column{header: header, numeric: true, cell: func(r *result) string {
		v, ok := r.value(unit)
		if !ok {
			return ""
		}
		return formatNum(v * scale)
	}}
}

// formatNum prints about three significant digits, without an exponent
// from 0.0001 up.
func formatNum(v float64) string {
	a := v
	if a < 0 {
		a = -a
	}
	switch {
	case a >= 100 || a == 0:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}
