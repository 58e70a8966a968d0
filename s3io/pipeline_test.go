package s3io_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/pipeline"
	"github.com/ckptdev/ckpt/s3io"
	"github.com/ckptdev/ckpt/source"
)

// dyingOutput is an S3 output whose process dies, in effect, right after
// the final checkpoint: its Complete does nothing.
type dyingOutput struct{ s3io.Output }

type dyingWriter struct{ *s3io.Writer }

func (dyingWriter) Complete(context.Context) error { return nil }

func (o dyingOutput) Open(ctx context.Context, pos json.RawMessage, inputs []string) (dyingWriter, error) {
	w, err := o.Output.Open(ctx, pos, inputs)
	return dyingWriter{w}, err
}

// A job that died between its final checkpoint and the completion of its
// upload has finished: the next run completes the upload and says the job
// is done.
func TestPipelineCompletesAfterDyingAtTheEnd(t *testing.T) {
	b := bucketEnv(t)
	// Long lines: few records, one part and a tail.
	var data []byte
	for i := 0; len(data) < 6*mib; i++ {
		data = append(data, fmt.Sprintf("%06d %s\n", i, strings.Repeat("y", 2000))...)
	}
	put(t, b, "in.txt", data)
	cfg := pipeline.Config{Job: "copy", Config: ckpt.Config{Store: filepath.Join(t.TempDir(), "st"), NoSignals: true}}
	copyLine := func(_ context.Context, l *source.Line, _ *struct{}, out interface {
		Buffered() []byte
		Commit([]byte) error
	}) error {
		return out.Commit(append(append(out.Buffered(), l.Text...), '\n'))
	}
	in := s3io.Lines(b.URL("in.txt"), nil)
	out := s3io.Output{URL: b.URL("out.txt", "part_size=5MiB")}
	_, err := pipeline.Run(context.Background(), cfg, in, dyingOutput{out},
		func(ctx context.Context, l *source.Line, st *struct{}, w dyingWriter) error {
			return copyLine(ctx, l, st, w)
		})
	if err != nil {
		t.Fatal(err)
	}
	if exists(t, b, "out.txt") {
		t.Fatal("the object exists though its upload was not completed")
	}
	_, err = pipeline.Run(context.Background(), cfg, in, out,
		func(ctx context.Context, l *source.Line, st *struct{}, w *s3io.Writer) error {
			return copyLine(ctx, l, st, w)
		})
	if !errors.Is(err, pipeline.ErrAlreadyDone) {
		t.Fatalf("rerun of the finished job: %v, want ErrAlreadyDone", err)
	}
	if got := getObject(t, b, "out.txt"); string(got) != string(data) {
		t.Fatalf("object of %d bytes, want the input's %d", len(got), len(data))
	}
	if n := uploads(t, b); n != 0 {
		t.Fatalf("%d uploads left", n)
	}
}
