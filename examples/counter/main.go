// Command counter shows the checkpoint engine without the pipeline runner:
// a loop whose state (where it is, what it has summed) is a Go struct that
// ckpt saves every 100,000 steps and every second, on Ctrl-C, and at the
// end. Kill it however you like; run it again and it continues from the
// last checkpoint with the state exactly as it was then.
//
//	go run ./examples/counter
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/ckptdev/ckpt"
)

// State is saved in every checkpoint.
type State struct {
	Next int64 // the next number to add
	Sum  int64
}

const n = 50_000_000

// main only exits: os.Exit skips deferred calls, so the job is opened and
// closed in run, and its lock (or its lease on S3) released before the
// process ends.
func main() {
	os.Exit(run(context.Background()))
}

func run(ctx context.Context) int {
	job, err := ckpt.Open[State](ctx, "counter", ckpt.Config{
		Store: ".ckpt",
		Every: ckpt.Every{Records: 100_000, Interval: time.Second},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "counter:", err)
		return 1
	}
	defer job.Close()
	if job.Done() {
		fmt.Println("already done: sum =", job.State.Sum)
		return 0
	}
	if cp := job.Resumed(); cp != nil {
		fmt.Printf("resuming at %d from checkpoint %d\n", job.State.Next, cp.Seq)
	}

	for i := job.State.Next; i < n; i++ {
		job.State.Sum += i
		job.State.Next = i + 1
		if err := job.Advance(ctx, 1, 0); err != nil {
			if errors.Is(err, ckpt.ErrInterrupted) {
				fmt.Println("interrupted at", job.State.Next, "- run again to resume")
				return 75
			}
			fmt.Fprintln(os.Stderr, "counter:", err)
			return 1
		}
	}
	if _, err := job.Finish(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "counter:", err)
		return 1
	}
	fmt.Println("sum =", job.State.Sum)
	return 0
}
