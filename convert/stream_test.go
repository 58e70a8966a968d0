package convert

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/internal/testenv"
	"github.com/ckptdev/ckpt/pipeline"
	"github.com/ckptdev/ckpt/stream"
)

func streamOptions(t *testing.T, in, out string) Options {
	return Options{Input: in, Output: out, Until: stream.Until{Now: true},
		Pipeline: pipeline.Config{Job: "j", OnBadRecord: pipeline.Skip, Config: ckpt.Config{Store: filepath.Join(t.TempDir(), "store"), NoSignals: true}}}
}

func TestStreamToJSONL(t *testing.T) {
	n := testenv.NewNATS(t)
	s := n.NewStream(t, 0)
	for _, p := range []string{`{"a":1}`, "not json", "{\n  \"b\": [1, 2]\n}", `"a string"`, "{\"bad\":\"\xff\"}", `[true]`} {
		s.Publish(t, s.Subject+".x", []byte(p))
	}
	out := filepath.Join(t.TempDir(), "out.jsonl")
	res, err := Run(context.Background(), streamOptions(t, s.Address(""), out))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	if want := "{\"a\":1}\n{\"b\":[1,2]}\n\"a string\"\n[true]\n"; string(got) != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
	if res.Skipped != 2 {
		t.Errorf("skipped %d, want 2 (not JSON, not UTF-8)", res.Skipped)
	}

	// With the metadata: subject, sequence, time, headers, data.
	out = filepath.Join(t.TempDir(), "meta.jsonl")
	o := streamOptions(t, s.Address(""), out)
	o.WithMeta = true
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(out)
	first, _, _ := strings.Cut(string(got), "\n")
	var m struct {
		Subject string          `json:"subject"`
		Seq     uint64          `json:"seq"`
		Time    string          `json:"time"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal([]byte(first), &m); err != nil || m.Subject != s.Subject+".x" || m.Seq != 1 || m.Time == "" || string(m.Data) != `{"a":1}` {
		t.Errorf("first line %s: %+v, %v", first, m, err)
	}
}

func TestStreamToCSV(t *testing.T) {
	n := testenv.NewNATS(t)
	s := n.NewStream(t, 0)
	for _, p := range []string{`{"a":1,"b":"x"}`, `{"b":"y","a":2}`, `{"a":3,"c":1}`} {
		s.Publish(t, s.Subject+".x", []byte(p))
	}
	out := filepath.Join(t.TempDir(), "out.csv")
	if _, err := Run(context.Background(), streamOptions(t, s.Address(""), out)); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	if want := "a,b\n1,x\n2,y\n"; string(got) != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
}

func TestStreamOptionsRefused(t *testing.T) {
	for _, o := range []Options{
		{Input: "nats://h:1/S", Output: "out.csv", WithMeta: true},
		{Input: "nats://h:1/S", Output: "out.jsonl", From: CSV},
		{Input: "in.csv", Output: "out.jsonl", Until: stream.Until{Now: true}},
		{Input: "in.jsonl", Output: "nats://h:1/S?subject=x"},
		{Input: "nats://h:1/S", Output: "nats://h:1/T?subject=x", WithMeta: true},
	} {
		if err := o.Resolve(); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}
