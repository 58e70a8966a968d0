package convert

import (
	"context"
	"fmt"
	"strings"

	"github.com/ckptdev/ckpt/pipeline"
	"github.com/ckptdev/ckpt/s3io"
	"github.com/ckptdev/ckpt/source"
)

// S3 objects: an input may be s3://bucket/key, a glob over keys
// (s3://bucket/drops/*.csv.gz) or a prefix ending in '/', and the output
// an object, s3://bucket/key, written exactly once by one multipart
// upload and created when the job finishes (see package s3io). The query
// parameters are the S3 store's (endpoint, region, path_style, profile,
// part_size, ...).

// IsS3 reports whether an input or output is an S3 address.
func IsS3(s string) bool { return s3io.IsAddress(s) }

// objectName is the name whose extension tells an input's or output's
// format: an S3 address without its query.
func objectName(s string) string {
	if IsS3(s) {
		s, _, _ = strings.Cut(s, "?")
	}
	return s
}

// CSVInput opens CSV or TSV input: S3 objects, or local files.
func CSVInput(input string, opts source.CSVOptions) pipeline.Opener[*source.Row] {
	if IsS3(input) {
		return s3io.CSV(input, opts, nil)
	}
	return pipeline.CSVWith(opts, input)
}

// recordOutput is what the conversions into files write to: a local
// file (*sink.File) or an S3 object (*s3io.Writer).
type recordOutput interface {
	pipeline.Output
	Buffered() []byte
	Commit([]byte) error
}

// runToS3 is Run for an S3 output. A job that starts from the beginning
// with Restart replaces an existing object when it finishes; otherwise
// an existing object is refused.
func runToS3(ctx context.Context, o Options) (pipeline.Result, error) {
	if IsS3(o.Input) && s3io.Names(o.Input, o.Output) {
		return pipeline.Result{}, fmt.Errorf("%w: the output object %s would be one of the input's objects once written: write it elsewhere", pipeline.ErrOutputIsInput, objectName(o.Output))
	}
	out := s3io.Output{URL: o.Output, Replace: o.Pipeline.Restart, Logger: o.Pipeline.Logger}
	switch {
	case o.From.IsCSV() && o.To.IsCSV():
		return csvToCSV(ctx, o, out)
	case o.From.IsCSV():
		return csvToJSONL(ctx, o, out)
	}
	return jsonlToCSV(ctx, o, out)
}
