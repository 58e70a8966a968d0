// Command tutorial is the classic "resume a CSV job after Ctrl-C" program,
// written with ckpt. The hand-written version rewrites checkpoint.txt after
// every row: slow, and a kill -9 in the middle of that rewrite leaves the
// file empty, so the job cannot restart at all. This one processes rows at
// full speed, survives kill -9 at any instant, and never writes a row to
// its output twice or leaves one out.
//
//	go run ./examples/tutorial data.csv processed.txt
//
// Interrupt it (Ctrl-C, kill -9) and run it again: it continues where it
// stopped, and processed.txt ends exactly as one uninterrupted run writes
// it.
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

// Totals is the job's state: checkpointed with every position, so it is
// exactly right after any number of crashes.
type Totals struct {
	Rows int64
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: tutorial INPUT.csv OUTPUT.txt")
		os.Exit(2)
	}
	cfg := pipeline.Config{Job: "tutorial", Config: ckpt.Config{Every: ckpt.Every{Records: 10_000}}}

	res, err := pipeline.Run(context.Background(), cfg, pipeline.CSV(os.Args[1]), pipeline.File(os.Args[2]),
		func(ctx context.Context, row *source.Row, t *Totals, out *sink.File) error {
			t.Rows++
			_, err := fmt.Fprintf(out, "row %d: %s\n", t.Rows, bytes.Join(row.Fields, []byte(" | ")))
			return err
		})

	switch {
	case errors.Is(err, ckpt.ErrInterrupted):
		fmt.Fprintf(os.Stderr, "stopped after %d rows; run again to resume\n", res.Records)
		os.Exit(75)
	case errors.Is(err, pipeline.ErrAlreadyDone):
		fmt.Println("already done")
	case err != nil:
		fmt.Fprintln(os.Stderr, "tutorial:", err)
		os.Exit(1)
	default:
		fmt.Printf("processed %d rows\n", res.Records)
	}
}
