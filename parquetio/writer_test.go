package parquetio_test

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/ckptdev/ckpt/internal/parquettest"
	"github.com/ckptdev/ckpt/parquetio"
	"github.com/ckptdev/ckpt/sink"
	"github.com/ckptdev/ckpt/sink/pgsink"
)

var typedCols = []parquetio.Column{
	{Name: "id", Type: pgsink.BigInt},
	{Name: "price", Type: pgsink.Numeric, Scale: 2},
	{Name: "ratio", Type: pgsink.Double},
	{Name: "ok", Type: pgsink.Boolean},
	{Name: "at", Type: pgsink.Timestamptz},
	{Name: "name", Type: pgsink.Text},
}

func row(vals ...string) ([][]byte, []bool) {
	b := make([][]byte, len(vals))
	null := make([]bool, len(vals))
	for i, v := range vals {
		b[i] = []byte(v)
		null[i] = v == ""
	}
	return b, null
}

func TestWriteTypes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.parquet")
	w, err := parquetio.OpenWriter(path, typedCols, nil, sink.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range [][]string{
		{"1", "12.5", "0.25", "true", "2024-05-01T12:00:00Z", "a"},
		{"-9223372036854775808", "-0.01", "1e300", "false", "2024-05-01 14:00:00.123456+02:00", "é,\"x\""},
		{"", "", "", "", "", ""},
		{"42", "123456789012345678901234567890123456.78", "-0", "t", "1970-01-01T00:00:00Z", "z"},
	} {
		vals, null := row(r...)
		if err := w.WriteRow(vals, null); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	pos, err := w.Flush()
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	var p parquetio.Position
	json.Unmarshal(pos, &p)
	if !p.Done || p.RowGroups != 4 || p.Rows != 4 {
		t.Errorf("final position %s", pos)
	}
	names, types, rows := parquettest.Read(t, path)
	t.Log(names, types)
	for _, r := range rows {
		t.Log(r)
	}
}
