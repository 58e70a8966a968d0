package pgsink_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/sink/pgsink"
)

// Typed columns: every type's values reach PostgreSQL exactly (read back
// as text by the server), and a value its column cannot hold refuses the
// row alone.
func TestTypedColumns(t *testing.T) {
	f := newFixture(t)
	cols := []string{"i", "num", "d", "b", "ts", "s"}
	types := []pgsink.ColumnType{pgsink.BigInt, pgsink.Numeric, pgsink.Double, pgsink.Boolean, pgsink.Timestamptz, pgsink.Text}
	cfg := ckpt.Config{Backend: f.st, NoSignals: true, Logger: quiet}
	j, err := ckpt.Open[int](t.Context(), "typed", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	sc := f.sinkConfig()
	sc.Columns, sc.Types = cols, types
	s, err := pgsink.Open(t.Context(), sc, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	j.Bind(nil, s)
	rows := [][]string{
		{"-9223372036854775808", "12345678901234567890.000123", "1.5e-7", "true", "2024-05-01T12:34:56.789012+02:00", "héllo"},
		{"42", "-0.10", "-3", "F", "2024-05-01 10:00:00Z", ""},
		{"0", "NaN", "Infinity", "yes", "1999-12-31T23:59:59.999999Z", "a\tb"},
		{"7", "1e3", "0", "off", "2000-01-01T00:00:00Z", "x"},
	}
	for _, r := range rows {
		vals := make([][]byte, len(r))
		for i, v := range r {
			vals[i] = []byte(v)
		}
		if err := s.WriteRow(vals, nil); err != nil {
			t.Fatalf("WriteRow %q: %v", r, err)
		}
	}
	for _, bad := range []struct {
		col, val string
	}{
		{"i", "1.5"}, {"i", "9223372036854775808"}, {"i", "007x"}, {"num", "1,5"}, {"num", "--1"}, {"d", "abc"},
		{"b", "maybe"}, {"ts", "2024-05-01 10:00:00"}, {"ts", "yesterday"}, {"s", "nul\x00"},
	} {
		vals := [][]byte{[]byte("1"), []byte("1"), []byte("1"), []byte("true"), []byte("2024-01-01T00:00:00Z"), []byte("s")}
		vals[slices.Index(cols, bad.col)] = []byte(bad.val)
		err := s.WriteRow(vals, nil)
		var ie *pgsink.InvalidValueError
		if !errors.As(err, &ie) || ie.Column != bad.col {
			t.Errorf("WriteRow with %s = %q: %v, want an InvalidValueError for column %s", bad.col, bad.val, err, bad.col)
		}
	}
	cp, err := j.Checkpoint(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	r, err := f.conn.Query(t.Context(), `SELECT concat_ws('|', i, num, d, b, ts AT TIME ZONE 'UTC', s) FROM `+f.table+` ORDER BY n`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for r.Next() {
		var line string
		if err := r.Scan(&line); err != nil {
			t.Fatal(err)
		}
		got = append(got, line)
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"-9223372036854775808|12345678901234567890.000123|1.5e-07|t|2024-05-01 10:34:56.789012|héllo",
		"42|-0.10|-3|f|2024-05-01 10:00:00|",
		"0|NaN|Infinity|t|1999-12-31 23:59:59.999999|a\tb",
		"7|1000|0|f|2000-01-01 00:00:00|x",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("rows\n%q\nwant\n%q", got, want)
	}

	// The table's types are part of it: a sink that wants text refuses it.
	sc.Types = nil
	if _, err := pgsink.Open(t.Context(), sc, cp.Sink); err == nil {
		t.Error("a sink of text columns resumed into a table of typed ones")
	}
}
