package s3io_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ckptdev/ckpt/internal/testenv"
	"github.com/ckptdev/ckpt/s3io"
	"github.com/ckptdev/ckpt/sink"
)

const mib = 1 << 20

// bucketEnv returns a fresh bucket on the shared versitygw server, with
// its credentials in the environment, where the AWS chain finds them.
func bucketEnv(t *testing.T) testenv.S3Bucket {
	t.Helper()
	b := testenv.S3(t)
	for _, kv := range b.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	return b
}

// text returns n bytes of numbered lines, different for each seed.
func text(seed string, n int) []byte {
	b := make([]byte, 0, n+100)
	xs := strings.Repeat("x", 50)
	for i := 0; len(b) < n; i++ {
		b = append(b, seed...)
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, ',')
		b = append(b, xs[:i%50]...)
		b = append(b, '\n')
	}
	return b[:n]
}

// write writes data in 64 KiB pieces.
func write(t *testing.T, w *s3io.Writer, data []byte) {
	t.Helper()
	for len(data) > 0 {
		n := min(len(data), 64<<10)
		if _, err := w.Write(data[:n]); err != nil {
			t.Fatal(err)
		}
		data = data[n:]
	}
}

func checkpoint(t *testing.T, w *s3io.Writer) json.RawMessage {
	t.Helper()
	pos, err := w.Flush()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	return pos
}

func getObject(t *testing.T, b testenv.S3Bucket, key string) []byte {
	t.Helper()
	out, err := b.Client().GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(b.Bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func exists(t *testing.T, b testenv.S3Bucket, key string) bool {
	t.Helper()
	_, err := b.Client().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(b.Bucket), Key: aws.String(key)})
	return err == nil
}

func keys(t *testing.T, b testenv.S3Bucket) []string {
	t.Helper()
	out, err := b.Client().ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(b.Bucket)})
	if err != nil {
		t.Fatal(err)
	}
	var ks []string
	for _, o := range out.Contents {
		ks = append(ks, aws.ToString(o.Key))
	}
	return ks
}

func uploads(t *testing.T, b testenv.S3Bucket) int {
	t.Helper()
	out, err := b.Client().ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(b.Bucket)})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Uploads)
}

func complete(t *testing.T, w *s3io.Writer) {
	t.Helper()
	if err := w.Complete(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestWriterWritesTheObjectOnlyWhenComplete(t *testing.T) {
	b := bucketEnv(t)
	ctx := context.Background()
	out := s3io.Output{URL: b.URL("out/data.csv", "part_size=5MiB")}
	w, err := out.Open(ctx, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	data := text("a", 12*mib+12345)
	write(t, w, data[:7*mib])
	checkpoint(t, w)
	write(t, w, data[7*mib:])
	checkpoint(t, w)
	if exists(t, b, "out/data.csv") {
		t.Fatal("the object appeared before the job finished")
	}
	complete(t, w)
	if got := getObject(t, b, "out/data.csv"); !bytes.Equal(got, data) {
		t.Fatalf("object of %d bytes, want the %d written", len(got), len(data))
	}
	if ks := keys(t, b); len(ks) != 1 {
		t.Fatalf("objects left beside the output: %v", ks)
	}
	if n := uploads(t, b); n != 0 {
		t.Fatalf("%d uploads left", n)
	}
}

// A resume continues the upload: the tail (under 5 MiB, kept in an object
// of its own) comes back, and a part uploaded after the checkpoint is
// replaced by what the resumed run writes.
func TestWriterResumeReplacesLaterPartsAndKeepsTheTail(t *testing.T) {
	b := bucketEnv(t)
	ctx := context.Background()
	out := s3io.Output{URL: b.URL("out.jsonl", "part_size=5MiB")}
	w, err := out.Open(ctx, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := text("a", 7*mib) // part 1 of 5 MiB, and a tail of 2 MiB
	write(t, w, a)
	pos := checkpoint(t, w)
	var p s3io.Position
	if err := json.Unmarshal(pos, &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Parts) != 1 || p.Tail == nil || p.Tail.Size != 2*mib {
		t.Fatalf("position %s: want one part and a tail of 2 MiB", pos)
	}
	write(t, w, text("lost", 9*mib))  // parts 2 and 3, after the checkpoint
	if err := w.Close(); err != nil { // a crash: nothing completed
		t.Fatal(err)
	}

	w, err = out.Open(ctx, pos, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := text("c", 3*mib+17)
	write(t, w, c)
	complete(t, w)
	want := append(bytes.Clone(a), c...)
	if got := getObject(t, b, "out.jsonl"); !bytes.Equal(got, want) {
		t.Fatalf("object of %d bytes, want %d: the checkpoint's bytes and the resumed run's", len(got), len(want))
	}
}

func TestWriterRefusesAnExistingObjectUnlessReplacing(t *testing.T) {
	b := bucketEnv(t)
	ctx := context.Background()
	if _, err := b.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b.Bucket), Key: aws.String("out.csv"), Body: strings.NewReader("old\n")}); err != nil {
		t.Fatal(err)
	}
	url := b.URL("out.csv", "part_size=5MiB")
	if _, err := (s3io.Output{URL: url}).Open(ctx, nil, nil); !errors.Is(err, s3io.ErrOutputExists) {
		t.Fatalf("open over an existing object: %v, want ErrOutputExists", err)
	}
	w, err := (s3io.Output{URL: url, Replace: true}).Open(ctx, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	write(t, w, []byte("new\n"))
	checkpoint(t, w)
	if got := getObject(t, b, "out.csv"); string(got) != "old\n" {
		t.Fatalf("the old object changed before the job finished: %q", got)
	}
	complete(t, w)
	if got := getObject(t, b, "out.csv"); string(got) != "new\n" {
		t.Fatalf("object %q, want the new output", got)
	}
}

// Another writer creating the object while the job runs wins: the job's
// completion is refused, not written over it.
func TestWriterCompleteIsCreateOnly(t *testing.T) {
	b := bucketEnv(t)
	ctx := context.Background()
	w, err := (s3io.Output{URL: b.URL("out.csv", "part_size=5MiB")}).Open(ctx, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	write(t, w, text("a", 6*mib))
	checkpoint(t, w)
	if _, err := b.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b.Bucket), Key: aws.String("out.csv"), Body: strings.NewReader("other\n")}); err != nil {
		t.Fatal(err)
	}
	if err := w.Complete(ctx); !errors.Is(err, s3io.ErrOutputExists) {
		t.Fatalf("complete over another writer's object: %v, want ErrOutputExists", err)
	}
	w.Close()
	if got := getObject(t, b, "out.csv"); string(got) != "other\n" {
		t.Fatalf("object %q: the other writer's was replaced", got)
	}
}

func TestWriterResumeWithoutItsUpload(t *testing.T) {
	b := bucketEnv(t)
	ctx := context.Background()
	out := s3io.Output{URL: b.URL("out.csv", "part_size=5MiB")}
	w, err := out.Open(ctx, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	write(t, w, text("a", 6*mib))
	pos := checkpoint(t, w)
	w.Close()
	var p s3io.Position
	json.Unmarshal(pos, &p)
	if _, err := b.Client().AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(b.Bucket), Key: aws.String("out.csv"), UploadId: aws.String(p.Upload)}); err != nil {
		t.Fatal(err)
	}
	_, err = out.Open(ctx, pos, nil)
	if !errors.Is(err, s3io.ErrUploadGone) || !errors.Is(err, sink.ErrOutputChanged) || !strings.Contains(err.Error(), p.Upload) {
		t.Fatalf("resume without the upload: %v, want ErrUploadGone naming the upload", err)
	}
}

func TestWriterResumeWithoutItsTail(t *testing.T) {
	b := bucketEnv(t)
	ctx := context.Background()
	out := s3io.Output{URL: b.URL("out.csv", "part_size=5MiB")}
	w, err := out.Open(ctx, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	write(t, w, text("a", mib))
	pos := checkpoint(t, w)
	w.Close()
	var p s3io.Position
	json.Unmarshal(pos, &p)
	if _, err := b.Client().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b.Bucket), Key: aws.String(p.Tail.Key)}); err != nil {
		t.Fatal(err)
	}
	if _, err := out.Open(ctx, pos, nil); !errors.Is(err, sink.ErrOutputChanged) || !strings.Contains(err.Error(), p.Tail.Key) {
		t.Fatalf("resume without the tail object: %v, want ErrOutputChanged naming it", err)
	}
}

// A job killed after its final checkpoint, before its upload completed,
// has finished: Verify, which a rerun calls, completes the upload.
func TestVerifyCompletesAFinishedJobsUpload(t *testing.T) {
	b := bucketEnv(t)
	ctx := context.Background()
	out := s3io.Output{URL: b.URL("out.csv", "part_size=5MiB")}
	w, err := out.Open(ctx, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	data := text("a", 8*mib+3)
	write(t, w, data)
	final := checkpoint(t, w)
	w.Close()
	if exists(t, b, "out.csv") {
		t.Fatal("object exists before completion")
	}
	if err := out.Verify(ctx, final); err != nil {
		t.Fatal(err)
	}
	if got := getObject(t, b, "out.csv"); !bytes.Equal(got, data) {
		t.Fatalf("object of %d bytes, want %d", len(got), len(data))
	}
	if err := out.Verify(ctx, final); err != nil {
		t.Fatalf("verify of the completed object: %v", err)
	}
	if _, err := b.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b.Bucket), Key: aws.String("out.csv"), Body: bytes.NewReader(data)}); err != nil {
		t.Fatal(err)
	}
	if err := out.Verify(ctx, final); !errors.Is(err, sink.ErrOutputChanged) {
		t.Fatalf("verify of an object replaced since: %v, want ErrOutputChanged", err)
	}
}

func TestWriterEmptyOutput(t *testing.T) {
	b := bucketEnv(t)
	ctx := context.Background()
	w, err := (s3io.Output{URL: b.URL("empty.csv")}).Open(ctx, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkpoint(t, w)
	complete(t, w)
	if got := getObject(t, b, "empty.csv"); len(got) != 0 {
		t.Fatalf("empty output is %d bytes", len(got))
	}
	if n := uploads(t, b); n != 0 {
		t.Fatalf("%d uploads left", n)
	}
}

// A fresh start aborts the uploads that earlier runs of the job left.
func TestFreshStartAbortsAbandonedUploads(t *testing.T) {
	b := bucketEnv(t)
	ctx := context.Background()
	out := s3io.Output{URL: b.URL("out.csv", "part_size=5MiB")}
	for range 2 {
		w, err := out.Open(ctx, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		write(t, w, text("a", 6*mib))
		checkpoint(t, w)
		w.Close()
	}
	if n := uploads(t, b); n != 1 {
		t.Fatalf("%d uploads, want the last run's only", n)
	}
	if err := s3io.Abandon(ctx, out.URL, nil); err != nil {
		t.Fatal(err)
	}
	if n := uploads(t, b); n != 0 {
		t.Fatalf("%d uploads after Abandon", n)
	}
	if ks := keys(t, b); len(ks) != 0 {
		t.Fatalf("objects left after Abandon: %v", ks)
	}
}

// An output smaller than a part lives in its tail alone, checkpoint after
// checkpoint, and ends as an object of one small part.
func TestWriterSmallOutputAcrossResumes(t *testing.T) {
	b := bucketEnv(t)
	ctx := context.Background()
	out := s3io.Output{URL: b.URL("small.csv", "part_size=5MiB")}
	var want []byte
	var pos json.RawMessage
	for i := range 3 {
		w, err := out.Open(ctx, pos, nil)
		if err != nil {
			t.Fatal(err)
		}
		chunk := text(fmt.Sprint("run", i), 700<<10)
		write(t, w, chunk)
		want = append(want, chunk...)
		pos = checkpoint(t, w)
		write(t, w, text("lost", 100<<10)) // after the checkpoint: rolled back
		w.Close()
	}
	w, err := out.Open(ctx, pos, nil)
	if err != nil {
		t.Fatal(err)
	}
	complete(t, w)
	if got := getObject(t, b, "small.csv"); !bytes.Equal(got, want) {
		t.Fatalf("object of %d bytes, want the %d bytes of the checkpoints", len(got), len(want))
	}
	if ks := keys(t, b); len(ks) != 1 {
		t.Fatalf("objects left beside the output: %v", ks)
	}
}
