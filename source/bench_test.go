package source_test

import (
	"bufio"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/ckptdev/ckpt/source"
)

// benchSize is the size of the benchmarks' input file.
const benchSize = 50 << 20

// writeBenchCSV writes a CSV file of about benchSize bytes: five columns,
// and in the quoted variant a quoted field with separators, quotes and a
// line end in every tenth record.
func writeBenchCSV(b *testing.B, quoted bool) (string, int64) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "bench.csv")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	rng := rand.New(rand.NewPCG(1, 2))
	cities := []string{"Lisbon", "Zürich", "São Paulo", "Kyoto", "Oslo"}
	w.WriteString("id,name,city,amount,note\n")
	var n int64
	for size := 0; size < benchSize; n++ {
		line := strconv.FormatInt(n, 10) + ",customer-" + strconv.Itoa(rng.IntN(100000)) + "," +
			cities[rng.IntN(len(cities))] + "," + strconv.Itoa(rng.IntN(1_000_000)) + "." + strconv.Itoa(rng.IntN(100)) + ","
		if quoted && n%10 == 0 {
			line += "\"said \"\"hello, world\"\"\nand left\""
		} else {
			line += "ok"
		}
		line += "\n"
		w.WriteString(line)
		size += len(line)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return path, n
}

// BenchmarkCSVRead measures CSV parsing throughput over a 50 MB file.
func BenchmarkCSVRead(b *testing.B) {
	for _, quoted := range []bool{false, true} {
		name := map[bool]string{false: "plain", true: "quoted"}[quoted]
		b.Run(name, func(b *testing.B) {
			path, n := writeBenchCSV(b, quoted)
			fi, err := os.Stat(path)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(fi.Size())
			b.ReportAllocs()
			for b.Loop() {
				c, err := source.OpenCSV([]string{path}, nil, source.CSVOptions{})
				if err != nil {
					b.Fatal(err)
				}
				var got int64
				for {
					_, err := c.Next()
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					got++
				}
				c.Close()
				if got != n {
					b.Fatalf("%d records, want %d", got, n)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkLinesRead measures line reading throughput over a 50 MB file.
func BenchmarkLinesRead(b *testing.B) {
	path, n := writeBenchCSV(b, false)
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	n++ // the header is a line too
	b.SetBytes(fi.Size())
	b.ReportAllocs()
	for b.Loop() {
		l, err := source.OpenLines([]string{path}, nil)
		if err != nil {
			b.Fatal(err)
		}
		var got int64
		for {
			_, err := l.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			got++
		}
		l.Close()
		if got != n {
			b.Fatalf("%d lines, want %d", got, n)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}
