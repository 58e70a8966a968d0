package s3io_test

import (
	"context"
	"fmt"
	"log"

	"github.com/ckptdev/ckpt/pipeline"
	"github.com/ckptdev/ckpt/s3io"
	"github.com/ckptdev/ckpt/source"
)

// A nightly CSV drop in S3 copied, one column of it, into an object,
// exactly once whatever kills the job: run it again after a crash and it
// resumes its reads and its upload where its last checkpoint left them.
func Example() {
	const q = "?endpoint=http://127.0.0.1:7070&path_style=true"
	res, err := pipeline.Run(context.Background(), pipeline.Config{Job: "ids"},
		s3io.CSV("s3://drops/2026-12-05/*.csv.gz"+q, source.CSVOptions{}, nil),
		s3io.Output{URL: "s3://lake/ids/2026-12-05.txt" + q},
		func(ctx context.Context, row *source.Row, _ *struct{}, out *s3io.Writer) error {
			b := append(out.Buffered(), row.Fields[0]...)
			return out.Commit(append(b, '\n'))
		})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Records, "ids")
}
