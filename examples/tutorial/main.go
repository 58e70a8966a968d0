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
// it. Once it has finished, or to take other input, start over with
// -restart:
//
//	go run ./examples/tutorial -restart other.csv processed.txt
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
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

// main only exits: os.Exit skips deferred calls, so everything that must
// be closed (the job's lock, or its lease on S3) is closed in run.
func main() {
	os.Exit(run(context.Background(), os.Args[1:]))
}

func run(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("tutorial", flag.ContinueOnError)
	restart := fs.Bool("restart", false, "discard the job's checkpoints and start over from the first row")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: tutorial [-restart] INPUT.csv OUTPUT.txt")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return 2
	}
	input, output := fs.Arg(0), fs.Arg(1)
	cfg := pipeline.Config{Job: "tutorial", Config: ckpt.Config{
		Every:   ckpt.Every{Records: 10_000},
		Restart: *restart,
	}}

	res, err := pipeline.Run(ctx, cfg, pipeline.CSV(input), pipeline.File(output),
		func(ctx context.Context, row *source.Row, t *Totals, out *sink.File) error {
			t.Rows++
			_, err := fmt.Fprintf(out, "row %d: %s\n", t.Rows, bytes.Join(row.Fields, []byte(" | ")))
			return err
		})

	switch {
	case errors.Is(err, ckpt.ErrInterrupted):
		fmt.Fprintf(os.Stderr, "stopped after %d rows; run again to resume\n", res.Records)
		return 75
	case errors.Is(err, pipeline.ErrAlreadyDone):
		fmt.Printf("already done: %d rows in %s; pass -restart to run it again\n", res.Records, output)
	case errors.Is(err, source.ErrInputChanged), errors.Is(err, sink.ErrOutputChanged), errors.Is(err, pipeline.ErrParamsChanged):
		fmt.Fprintf(os.Stderr, "tutorial: %v\npass -restart to start over on this input\n", err)
		return 1
	case err != nil:
		fmt.Fprintln(os.Stderr, "tutorial:", err)
		return 1
	default:
		fmt.Printf("processed %d rows\n", res.Records)
	}
	return 0
}
