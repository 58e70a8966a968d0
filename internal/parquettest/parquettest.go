// Package parquettest reads Parquet files in tests with Apache Arrow's Go
// implementation, a reader independent of the library ckpt writes with.
package parquettest

import (
	"context"
	"os"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// Read reads a Parquet file with Apache Arrow's Go implementation, a
// reader independent of the writer's library, and returns its column
// names, types and every value as text ("<null>" for null), row by row.
func Read(t testing.TB, path string) (names, types []string, rows [][]string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rdr, err := file.NewParquetReader(f)
	if err != nil {
		t.Fatalf("arrow: open %s: %v", path, err)
	}
	defer rdr.Close()
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatalf("arrow: read %s: %v", path, err)
	}
	defer tbl.Release()
	for i, fld := range tbl.Schema().Fields() {
		names = append(names, fld.Name)
		types = append(types, fld.Type.String())
		r := 0
		for _, chunk := range tbl.Column(i).Data().Chunks() {
			for j := 0; j < chunk.Len(); j++ {
				if i == 0 {
					rows = append(rows, make([]string, tbl.Schema().NumFields()))
				}
				v := "<null>"
				if chunk.IsValid(j) {
					v = chunk.ValueStr(j)
				}
				rows[r][i] = v
				r++
			}
		}
	}
	return names, types, rows
}
