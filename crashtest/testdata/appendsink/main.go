// Command appendsink is a ckpt pipeline whose output sink is a deliberately
// broken variant of ckpt's file sink: on resume it appends to the output
// without truncating it to the checkpoint's length, so lines written after
// the last checkpoint appear twice after a crash. With -truncate it does
// truncate, as ckpt's sink does, and is correct.
//
//	appendsink [-truncate] INPUT.csv OUTPUT.txt
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/pipeline"
	"github.com/ckptdev/ckpt/source"
)

// appendSink writes straight to the file, unbuffered; its position is the
// file's length.
type appendSink struct {
	f *os.File
	n int64
}

func (s *appendSink) Write(p []byte) (int, error) {
	n, err := s.f.Write(p)
	s.n += int64(n)
	return n, err
}

func (s *appendSink) Flush() (json.RawMessage, error) { return json.Marshal(s.n) }

func (s *appendSink) Sync(context.Context) error { return s.f.Sync() }

func (s *appendSink) Close() error { return s.f.Close() }

func open(path string, truncate bool) pipeline.SinkOpener[*appendSink] {
	return pipeline.SinkFunc[*appendSink](func(_ context.Context, pos json.RawMessage) (*appendSink, error) {
		if pos == nil {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
			return &appendSink{f: f}, err
		}
		var n int64
		if err := json.Unmarshal(pos, &n); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return nil, err
		}
		if truncate {
			if err := f.Truncate(n); err != nil {
				return nil, err
			}
		}
		// The bug: without the truncation, the file may be longer than
		// n, and the job appends after what the crash left.
		end, err := f.Seek(0, 2)
		if err != nil {
			return nil, err
		}
		return &appendSink{f: f, n: end}, nil
	})
}

type rows struct{ N int64 }

func main() {
	truncate := flag.Bool("truncate", false, "truncate the output to the checkpoint's length on resume")
	flag.Parse()
	if flag.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "usage: appendsink [-truncate] INPUT.csv OUTPUT.txt")
		os.Exit(2)
	}
	cfg := pipeline.Config{Job: "appendsink", Config: ckpt.Config{Every: ckpt.Every{Records: 200}}}
	_, err := pipeline.Run(context.Background(), cfg, pipeline.CSV(flag.Arg(0)), open(flag.Arg(1), *truncate),
		func(ctx context.Context, row *source.Row, r *rows, out *appendSink) error {
			r.N++
			_, err := fmt.Fprintf(out, "%d: %s\n", r.N, bytes.Join(row.Fields, []byte(" | ")))
			return err
		})
	switch {
	case errors.Is(err, ckpt.ErrInterrupted):
		os.Exit(75)
	case errors.Is(err, pipeline.ErrAlreadyDone):
	case err != nil:
		fmt.Fprintln(os.Stderr, "appendsink:", err)
		os.Exit(1)
	}
}
