package s3io_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/klauspost/compress/gzip"

	"github.com/ckptdev/ckpt/internal/testenv"
	"github.com/ckptdev/ckpt/pipeline"
	"github.com/ckptdev/ckpt/s3io"
	"github.com/ckptdev/ckpt/source"
)

func put(t *testing.T, b testenv.S3Bucket, key string, data []byte) {
	t.Helper()
	if _, err := b.Client().PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(b.Bucket), Key: aws.String(key), Body: bytes.NewReader(data)}); err != nil {
		t.Fatal(err)
	}
}

// readAll reads every line from a fresh source, or from pos.
func readLines(t *testing.T, open pipeline.Opener[*source.Line], pos json.RawMessage, limit int) (lines []string, at json.RawMessage, err error) {
	t.Helper()
	src, err := open(context.Background(), pos)
	if err != nil {
		return nil, nil, err
	}
	defer src.Close()
	for limit < 0 || len(lines) < limit {
		l, err := src.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return lines, nil, err
		}
		lines = append(lines, l.File+":"+string(l.Text))
	}
	at, err = src.Position()
	return lines, at, err
}

func TestInputGlobInKeyOrderAndResume(t *testing.T) {
	b := bucketEnv(t)
	put(t, b, "drop/b.jsonl", []byte("{\"b\":1}\n{\"b\":2}\n"))
	put(t, b, "drop/a.jsonl", []byte("{\"a\":1}\n{\"a\":2}\n"))
	put(t, b, "drop/.hidden.jsonl", []byte("{\"h\":1}\n"))
	put(t, b, "drop/sub/c.jsonl", []byte("{\"c\":1}\n"))
	put(t, b, "drop/notes.txt", []byte("no\n"))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("{\"z\":1}\n{\"z\":2}\n"))
	zw.Close()
	put(t, b, "drop/c.jsonl.gz", gz.Bytes())

	open := s3io.Lines(b.URL("drop/*.jsonl*"), nil)
	all, _, err := readLines(t, open, nil, -1)
	if err != nil {
		t.Fatal(err)
	}
	p := "s3://" + b.Bucket + "/drop/"
	want := []string{p + "a.jsonl:{\"a\":1}", p + "a.jsonl:{\"a\":2}", p + "b.jsonl:{\"b\":1}", p + "b.jsonl:{\"b\":2}", p + "c.jsonl.gz:{\"z\":1}", p + "c.jsonl.gz:{\"z\":2}"}
	if strings.Join(all, "\n") != strings.Join(want, "\n") {
		t.Fatalf("read\n%s\nwant\n%s", strings.Join(all, "\n"), strings.Join(want, "\n"))
	}
	// Resume after every record: the rest comes from the position.
	for k := range len(want) {
		first, pos, err := readLines(t, open, nil, k)
		if err != nil {
			t.Fatal(err)
		}
		rest, _, err := readLines(t, open, pos, -1)
		if err != nil {
			t.Fatalf("resume after %d: %v", k, err)
		}
		if got := append(first, rest...); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("resumed after %d records: %v", k, got)
		}
	}

	// A changed object, or a changed list, is refused.
	_, pos, err := readLines(t, open, nil, 3)
	if err != nil {
		t.Fatal(err)
	}
	put(t, b, "drop/a.jsonl", []byte("{\"a\":1}\n{\"a\":3}\n"))
	if _, _, err := readLines(t, open, pos, -1); !errors.Is(err, source.ErrInputChanged) || !strings.Contains(err.Error(), "a.jsonl") {
		t.Fatalf("resume over a replaced object: %v, want ErrInputChanged naming it", err)
	}
	_, pos, err = readLines(t, open, nil, 3)
	if err != nil {
		t.Fatal(err)
	}
	put(t, b, "drop/d.jsonl", []byte("{\"d\":1}\n"))
	if _, _, err := readLines(t, open, pos, -1); !errors.Is(err, source.ErrInputChanged) || !strings.Contains(err.Error(), "d.jsonl") {
		t.Fatalf("resume with an object added: %v, want ErrInputChanged naming it", err)
	}
}

func TestInputPrefixAndMissing(t *testing.T) {
	b := bucketEnv(t)
	put(t, b, "in/x.csv", []byte("id,name\n1,a\n2,b\n"))
	put(t, b, "in/y.txt", []byte("nope\n"))
	src, err := s3io.CSV(strings.Replace(b.URL("in"), "/in?", "/in/?", 1), source.CSVOptions{}, nil)(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for {
		row, err := src.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		if row.Header[1] != "name" {
			t.Fatalf("header %v", row.Header)
		}
	}
	src.Close()
	if n != 2 {
		t.Fatalf("%d rows, want 2", n)
	}
	if _, err := s3io.CSV(b.URL("in/missing.csv"), source.CSVOptions{}, nil)(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "missing.csv") {
		t.Fatalf("a missing object: %v", err)
	}
	if _, err := s3io.CSV(b.URL("in/*.tsv"), source.CSVOptions{}, nil)(context.Background(), nil); !errors.Is(err, source.ErrNoInput) {
		t.Fatalf("a pattern matching nothing: %v", err)
	}
}

// A read cut by a dropped connection goes on with a new ranged request
// from the byte it stopped at.
func TestInputSurvivesDroppedConnections(t *testing.T) {
	b := bucketEnv(t)
	data := text("r", 16*mib)
	data[len(data)-1] = '\n'
	put(t, b, "big.txt", data)
	proxy := testenv.NewProxy(t, strings.TrimPrefix(b.Endpoint, "http://"))
	src, err := s3io.Lines(b.URLAt(proxy.Endpoint(), "big.txt"), nil)(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var got bytes.Buffer
	for i := 0; ; i++ {
		l, err := src.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got.Write(l.Text)
		got.WriteByte('\n')
		if i == 10 || i == 200000 {
			proxy.DropAll()
		}
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("read %d bytes, want the object's %d", got.Len(), len(data))
	}
}

func TestNames(t *testing.T) {
	for _, c := range []struct {
		in, out string
		want    bool
	}{
		{"s3://b/drop/*.jsonl?region=x", "s3://b/drop/all.jsonl?region=x", true},
		{"s3://b/drop/*.jsonl", "s3://b/out/all.jsonl", false},
		{"s3://b/drop/*.jsonl", "s3://c/drop/all.jsonl", false},
		{"s3://b/drop/", "s3://b/drop/all.csv", true},
		{"s3://b/drop/", "s3://b/drop/sub/all.csv", false},
		{"s3://b/in.csv", "s3://b/in.csv?endpoint=http://127.0.0.1:1", true},
		{"s3://b/in.csv", "s3://b/in.jsonl", false},
	} {
		if got := s3io.Names(c.in, c.out); got != c.want {
			t.Errorf("Names(%s, %s) = %v, want %v", c.in, c.out, got, c.want)
		}
	}
}
