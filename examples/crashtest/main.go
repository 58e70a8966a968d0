// Command crashtest-job is the job of naive.py written with ckpt: it reads
// a CSV and writes one line per row, and `ckpt crashtest` finds no kill
// after which its output differs from an uninterrupted run's. See
// README.md for the commands that show naive.py broken and this one
// correct.
//
//	go build -o job ./examples/crashtest
//	./job data.csv out.txt
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/pipeline"
	"github.com/ckptdev/ckpt/sink"
	"github.com/ckptdev/ckpt/source"
)

// Rows is the job's state: the number of rows done, checkpointed with the
// input and output positions.
type Rows struct{ N int64 }

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: crashtest-job INPUT.csv OUTPUT.txt")
		os.Exit(2)
	}
	// A checkpoint every 50 rows, so that a crash test of a small input
	// resumes from many of them.
	cfg := pipeline.Config{Job: "crashtest-job", Config: ckpt.Config{Every: ckpt.Every{Records: 50}}}
	_, err := pipeline.Run(context.Background(), cfg, pipeline.CSV(os.Args[1]), pipeline.File(os.Args[2]),
		func(ctx context.Context, row *source.Row, r *Rows, out *sink.File) error {
			r.N++
			_, err := fmt.Fprintf(out, "row %d: %s\n", r.N, bytes.Join(row.Fields, []byte(" | ")))
			return err
		})
	switch {
	case errors.Is(err, ckpt.ErrInterrupted):
		os.Exit(75) // stopped by a signal after a checkpoint: run again
	case errors.Is(err, pipeline.ErrAlreadyDone):
	case err != nil:
		fmt.Fprintln(os.Stderr, "crashtest-job:", err)
		os.Exit(1)
	}
}
