package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ckptdev/ckpt/internal/gen"
	"github.com/ckptdev/ckpt/internal/testenv"
)

// S3 objects as inputs and outputs of `ckpt convert`: the real binary
// killed with SIGKILL at random moments until it completes, reading CSV
// objects of a versitygw bucket through a glob and writing JSON Lines to
// an object (or a local file), compared byte for byte with an
// uninterrupted run over the same data as local files.
func TestConvertS3CrashLoops(t *testing.T) {
	if testing.Short() {
		t.Skip("a kill -9 loop: skipped with -short")
	}
	bucket := testenv.S3(t)
	for _, kv := range bucket.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	c := buildCLI(t)
	rows, minKills := int64(50_000), 6
	if longTests() {
		rows, minKills = 400_000, 30
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "local"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"part-1.csv", "part-2.csv"} {
		p := filepath.Join(dir, "local", name)
		writeSample(t, p, gen.Options{Rows: rows, Seed: uint64(41 + i)})
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		putObject(t, bucket, "drop/"+name, data)
	}
	if code, out := c.run(dir, "convert", "local/*.csv", "ref.jsonl", "--store", "ref-store"); code != 0 {
		t.Fatalf("uninterrupted run: exit %d\n%s", code, out)
	}
	ref, err := os.ReadFile(filepath.Join(dir, "ref.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ref) < 11<<20 {
		t.Fatalf("the reference output is %d bytes: want more than two parts of 5 MiB", len(ref))
	}
	input := bucket.URL("drop") // drop/*.csv, with the query after the pattern
	input = strings.Replace(input, "/drop?", "/drop/*.csv?", 1)
	flags := []string{"--every", "2000", "--interval", "5ms", "--no-progress"}

	// JSON Lines objects into CSV: the reference output, as an object.
	putObject(t, bucket, "lines/all.jsonl", ref)
	if code, out := c.run(dir, "convert", "ref.jsonl", "ref.csv", "--store", "ref-store"); code != 0 {
		t.Fatalf("uninterrupted run: exit %d\n%s", code, out)
	}
	refCSV, err := os.ReadFile(filepath.Join(dir, "ref.csv"))
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name, in, out string
		key           string // the output object's key, or "" for a local file
		want          []byte
	}{
		{"s3-to-s3", input, bucket.URL("out/a.jsonl", "part_size=5MiB"), "out/a.jsonl", ref},
		{"s3-to-local", input, "b.jsonl", "", ref},
		{"local-to-s3", "local/*.csv", bucket.URL("out/c.jsonl", "part_size=5MiB"), "out/c.jsonl", ref},
		{"jsonl-to-csv", bucket.URL("lines/all.jsonl"), bucket.URL("out/d.csv", "part_size=5MiB"), "out/d.csv", refCSV},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := c.in(t)
			args := append([]string{"convert", tc.in, tc.out, "--store", "store-" + tc.name}, flags...)
			kills := c.crashUntilDone(dir, uint64(i+1), 400*time.Millisecond, args...)
			for kills < minKills {
				// Finished too soon: start over (replacing the output)
				// and kill more.
				kills += c.crashUntilDone(dir, uint64(kills+10*i), 300*time.Millisecond, append(args, "--restart")...)
			}
			t.Logf("%d kills", kills)
			var got []byte
			if tc.key != "" {
				got = getObject(t, bucket, tc.key)
			} else {
				got, err = os.ReadFile(filepath.Join(dir, tc.out))
				if err != nil {
					t.Fatal(err)
				}
			}
			if want := tc.want; !bytes.Equal(got, want) {
				n := 0
				for n < len(got) && n < len(want) && got[n] == want[n] {
					n++
				}
				t.Fatalf("output differs from the uninterrupted run's at byte %d (sizes %d and %d)", n, len(got), len(want))
			}
			code, out := c.run(dir, args...)
			if code != 0 || !strings.Contains(out, "already finished") {
				t.Fatalf("rerun of a finished job: exit %d\n%s", code, out)
			}
			if tc.key != "" {
				if n := openUploads(t, bucket, tc.key); n != 0 {
					t.Fatalf("%d incomplete uploads of %s left", n, tc.key)
				}
				if ks := listKeys(t, bucket, tc.key+".ckpt-tail/"); len(ks) != 0 {
					t.Fatalf("tail objects left: %v", ks)
				}
			}
		})
	}

	// ckpt aggregate reads the same objects as the local files.
	agg := []string{"--group-by", "city", "--agg", "count,sum:amount", "--no-progress"}
	if code, out := c.run(dir, append([]string{"aggregate", "local/*.csv", "agg-ref.csv", "--store", "agg-ref"}, agg...)...); code != 0 {
		t.Fatalf("aggregate of the local files: exit %d\n%s", code, out)
	}
	if code, out := c.run(dir, append([]string{"aggregate", input, "agg-s3.csv", "--store", "agg-s3"}, agg...)...); code != 0 {
		t.Fatalf("aggregate of the objects: exit %d\n%s", code, out)
	}
	sameFile(t, filepath.Join(dir, "agg-s3.csv"), filepath.Join(dir, "agg-ref.csv"))

	// A first run over an object that exists is refused: the job would
	// replace an object it did not write.
	putObject(t, bucket, "out/exists.jsonl", []byte("{}\n"))
	code, out := c.run(dir, "convert", input, bucket.URL("out/exists.jsonl"), "--store", "store-exists")
	if code == 0 || !strings.Contains(out, "exists") || !strings.Contains(out, "--restart") {
		t.Fatalf("a run over an existing object: exit %d\n%s", code, out)
	}
	if got := getObject(t, bucket, "out/exists.jsonl"); string(got) != "{}\n" {
		t.Fatalf("the existing object changed: %q", got)
	}
}

// A job stopped midway and then deleted leaves no incomplete upload: ckpt
// checkpoints delete --all aborts it.
func TestDeleteAbortsTheJobsUpload(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the built ckpt binary: skipped with -short")
	}
	bucket := testenv.S3(t)
	for _, kv := range bucket.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	c := buildCLI(t)
	dir := t.TempDir()
	// Large enough that the job is still running when the signal comes:
	// the upload begins after 5 MiB of some 120.
	writeSample(t, filepath.Join(dir, "in.csv"), gen.Options{Rows: 2_000_000, Seed: 7})
	args := []string{"convert", "in.csv", bucket.URL("out.jsonl", "part_size=5MiB"), "--store", "st", "--job", "j", "--no-progress"}
	cmd := exec.Command(c.bin, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Once the upload has begun, the job is open and takes a shutdown
	// checkpoint on SIGTERM.
	for deadline := time.Now().Add(30 * time.Second); openUploads(t, bucket, "out.jsonl") == 0; {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("no upload began in 30s\n%s", out.String())
		}
		time.Sleep(5 * time.Millisecond) // polling the bucket, not waiting for an event
	}
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
		t.Fatalf("the job ended with %v, not interrupted (it may have finished before the signal)\n%s", err, out.String())
	}
	if n := openUploads(t, bucket, "out.jsonl"); n != 1 {
		t.Fatalf("%d uploads after the interruption, want the job's", n)
	}
	if code, out := c.run(dir, "checkpoints", "delete", "--all", "--yes", "--store", "st", "--job", "j"); code != 0 {
		t.Fatalf("delete: exit %d\n%s", code, out)
	}
	if n := openUploads(t, bucket, "out.jsonl"); n != 0 {
		t.Fatalf("%d uploads left after the job was deleted", n)
	}
	if ks := listKeys(t, bucket, ""); len(ks) != 0 {
		t.Fatalf("objects left after the job was deleted: %v", ks)
	}
}

func putObject(t *testing.T, b testenv.S3Bucket, key string, data []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := b.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b.Bucket), Key: aws.String(key), Body: bytes.NewReader(data)}); err != nil {
		t.Fatal(err)
	}
}

func getObject(t *testing.T, b testenv.S3Bucket, key string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := b.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b.Bucket), Key: aws.String(key)})
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

func openUploads(t *testing.T, b testenv.S3Bucket, key string) int {
	t.Helper()
	out, err := b.Client().ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(b.Bucket), Prefix: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Uploads)
}

func listKeys(t *testing.T, b testenv.S3Bucket, prefix string) []string {
	t.Helper()
	out, err := b.Client().ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(b.Bucket), Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	var ks []string
	for _, o := range out.Contents {
		ks = append(ks, aws.ToString(o.Key))
	}
	return ks
}
