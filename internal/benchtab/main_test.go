package main

import (
	"bytes"
	"strings"
	"testing"
)

var defaultOpts = options{baseKey: "codec", baseValue: "raw", drop: []string{"allocs/op"}}

func TestTable(t *testing.T) {
	// The shape go test -bench prints, with a benchmark that logged (its
	// numbers on a later line) and one that ran twice.
	in := `goos: linux
goarch: amd64
pkg: github.com/ckptdev/ckpt
cpu: Intel(R) Xeon(R) Processor
BenchmarkEngineSave/size=1MiB/codec=raw-2         	     800	   1250000 ns/op	 838.86 MB/s	     416 B/op	       8 allocs/op
BenchmarkEngineSave/size=1MiB/codec=zstd-2        	     100	  10000000 ns/op	 104.86 MB/s	         3.815 raw/stored	 2621440 B/op	     137 allocs/op
BenchmarkEngineSave/size=1MiB/codec=zstd-2        	     120	  12000000 ns/op	  87.38 MB/s	         3.815 raw/stored	 2621440 B/op	     137 allocs/op
BenchmarkEngineSave/size=1MiB/codec=zstd-2        	     110	  30000000 ns/op	  34.95 MB/s	         3.815 raw/stored	 2621440 B/op	     137 allocs/op
BenchmarkEngineSmallCheckpoint/codec=raw-2
    bench_test.go:10: a log line
    5000	    400000 ns/op	  627.0 manifest-B
BenchmarkEngineSmallCheckpoint/codec=json+zstd-2   	    4000	    500000 ns/op	  652.0 manifest-B
BenchmarkEngineSmallCheckpoint/codec=orphan/extra-2 	    4000	    800000 ns/op
PASS
ok  	github.com/ckptdev/ckpt	9.263s
`
	want := `#### BenchmarkEngineSave

| size | codec | runs×iters | ms/op | MB/s | MB/s ÷ raw | raw/stored | alloc MiB/op |
| :--- | :---- | ---------: | ----: | ---: | ---------: | ---------: | -----------: |
| 1MiB | raw   |      1×800 |  1.25 |  839 |       1.00 |            |     0.000397 |
| 1MiB | zstd  |      3×110 |  12.0 | 87.4 |       0.10 |       3.81 |         2.50 |

#### BenchmarkEngineSmallCheckpoint

| codec     | case 2 | runs×iters | µs/op | time ÷ raw | manifest B |
| :-------- | :----- | ---------: | ----: | ---------: | ---------: |
| raw       |        |     1×5000 |   400 |       1.00 |        627 |
| json+zstd |        |     1×4000 |   500 |       1.25 |        652 |
| orphan    | extra  |     1×4000 |   800 |            |            |
`
	var out bytes.Buffer
	if err := run(strings.NewReader(in), &out, defaultOpts); err != nil {
		t.Fatal(err)
	}
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestOrder(t *testing.T) {
	in := "BenchmarkA/codec=x-2 \t 10\t 100 ns/op\t 1 a-u\t 2 b-u\t 3 c-u\n"
	opts := defaultOpts
	opts.order = []string{"c-u", "a-u"}
	var out bytes.Buffer
	if err := run(strings.NewReader(in), &out, opts); err != nil {
		t.Fatal(err)
	}
	header := strings.Split(out.String(), "\n")[2]
	if want := "| codec | runs×iters | µs/op | time ÷ raw |  c u |  a u |  b u |"; header != want {
		t.Errorf("header %q, want %q", header, want)
	}
}

func TestFailures(t *testing.T) {
	for _, tc := range []struct{ name, in, err string }{
		{"empty", "PASS\nok  \tx\t0.1s\n", "no benchmark results"},
		{"failed", "BenchmarkA/codec=raw-2 \t 10\t 100 ns/op\n--- FAIL: BenchmarkA/codec=x\n    a_test.go:1: boom\nFAIL\n", "--- FAIL: BenchmarkA/codec=x"},
		{"bad number", "BenchmarkA-2 \t 10\t 1x0 ns/op\n", `value "1x0" of ns/op`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(strings.NewReader(tc.in), &out, defaultOpts)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want one containing %q", err, tc.err)
			}
		})
	}
}

func TestFormatNum(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want string
	}{
		{1234.5, "1234"}, {100, "100"}, {42, "42.0"}, {0, "0"}, {12.345, "12.3"}, {3.14159, "3.14"}, {0.5, "0.5"}, {0.01234, "0.0123"},
	} {
		if got := formatNum(tc.v); got != tc.want {
			t.Errorf("formatNum(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}
