// Command gendata writes deterministic sample CSV with awkward shapes
// (quoted separators, quotes and line ends in fields, non-ASCII text) for
// the demo and the benchmarks.
//
//	go run ./internal/cmd/gendata -rows 2000000 -o sample.csv
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/ckptdev/ckpt/internal/gen"
)

func main() {
	var o gen.Options
	out := flag.String("o", "", "output file (default stdout)")
	flag.Int64Var(&o.Rows, "rows", 100000, "number of rows")
	flag.Uint64Var(&o.Seed, "seed", 1, "random seed: the same seed writes the same file")
	flag.BoolVar(&o.CRLF, "crlf", false, "CRLF line ends")
	flag.BoolVar(&o.BOM, "bom", false, "start with a UTF-8 byte order mark")
	flag.Int64Var(&o.BadEvery, "bad-every", 0, "make about one row in N malformed (0: none)")
	flag.Parse()
	w := os.Stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			fmt.Fprintln(os.Stderr, "gendata:", err)
			os.Exit(1)
		}
		defer f.Close()
		w = f
	}
	if err := gen.Write(w, o); err != nil {
		fmt.Fprintln(os.Stderr, "gendata:", err)
		os.Exit(1)
	}
}
