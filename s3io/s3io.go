// Package s3io reads a job's input from S3 objects and writes its output
// to an S3 object, exactly once, for pipelines (package pipeline) and
// `ckpt convert`. It links the AWS SDK, so the engine and the file
// sources and sinks stay free of it: only programs that import this
// package get it.
//
// Addresses are those of the S3 store (store/s3store) with the object's
// key as the path:
//
//	s3://bucket/drops/2026-12-05.csv?endpoint=http://127.0.0.1:7070&path_style=true
//	s3://bucket/drops/*.csv.gz?region=eu-west-1
//
// with the same query parameters (endpoint, region, path_style, profile,
// request_timeout, max_attempts, max_retry_time, part_size, concurrency)
// and credentials from the standard AWS chain.
//
// Input (Input, CSV, Lines): a key, a glob over keys ('*', '?' and
// '[...]' within one segment of the key, as in a shell), or a prefix
// ending in '/' (the objects directly under it with the format's
// extensions); the objects are read in key order. Every checkpoint
// records the key, offset and line of the next record and the ETag and
// size of every object; a resume refuses a changed object or list, and
// reads from the offset with one ranged GET (If-Match on the ETag, and a
// new range from where the bytes stopped if the connection breaks).
// gzip and zstd objects (.gz, .zst) are read as local compressed files
// are: a resume decompresses the current object again up to its offset.
//
// Output (Output, Writer): one multipart upload per job; see Writer for
// what a checkpoint records and how a resume continues it. The object
// appears only when the job finishes, created only if absent.
package s3io

import (
	"context"
	"log/slog"
	"strings"

	"github.com/ckptdev/ckpt/store/s3store"
)

// IsAddress reports whether s is an s3:// address.
func IsAddress(s string) bool { return strings.HasPrefix(strings.ToLower(s), "s3://") }

// open opens the bucket of an object address and returns the key.
func open(ctx context.Context, raw string, log *slog.Logger) (*s3store.Store, string, error) {
	if log == nil {
		log = slog.Default()
	}
	return s3store.OpenObjectURL(ctx, raw, log)
}

// display is how messages and positions name an object.
func display(bucket, key string) string { return "s3://" + bucket + "/" + key }
