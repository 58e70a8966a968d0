package ckpt

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/ckptdev/ckpt/codec"
)

// FuzzRun reads arbitrary bytes as a local run: iterating, indexing and
// looking keys up fail cleanly, never panic or allocate without bound.
func FuzzRun(f *testing.F) {
	dir := f.TempDir()
	w, err := newRunWriter(dir, 0, false)
	if err != nil {
		f.Fatal(err)
	}
	for i, k := range []string{"a", "b", "bb", "c"} {
		if err := w.add([]byte(k), []byte{byte(i)}, byte(i%3)); err != nil {
			f.Fatal(err)
		}
	}
	r, err := w.finish()
	if err != nil {
		f.Fatal(err)
	}
	b, err := os.ReadFile(r.path)
	if err != nil {
		f.Fatal(err)
	}
	r.close()
	f.Add(b)
	f.Add([]byte{0x01, 'a', 0x07})
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "x.run")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		fh, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		r := &run{path: path, f: fh, size: int64(len(data))}
		it := r.iter()
		for it.next() {
		}
		if r.buildIndex() == nil {
			for _, k := range []string{"", "a", "bb", "zz"} {
				r.get([]byte(k), nil)
			}
		}
		m := newMergeIter([]*run{r, r}, true, func(a, b []byte) ([]byte, error) { return append(a, b...), nil })
		for m.next() {
		}
	})
}

// FuzzPlainJSONString: where the fast path decodes a value, it decodes it
// as encoding/json does; strings that JSON encodes are mostly plain.
func FuzzPlainJSONString(f *testing.F) {
	for _, s := range []string{`"abc"`, "\"abc\"\n", `"a\"b"`, `"a\u00e9"`, "\"\xff\"", "\"é\"", `""`, `"a\nb"`, "\"\x01\"", `"<&>"`, ` "x"`, `"x" `, `"`, `x`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := plainJSONString(b)
		var want string
		err := json.Unmarshal(b, &want)
		if ok && (err != nil || got != want) {
			t.Fatalf("%q: fast path %q, encoding/json %q, %v", b, got, want, err)
		}
		// What codec.JSON writes for a string is decoded by the fast path
		// unless it needed escaping.
		var buf bytes.Buffer
		if err := (codec.JSON{}).Encode(&buf, string(b)); err != nil {
			t.Fatal(err)
		}
		got, ok = plainJSONString(buf.Bytes())
		if plain := !bytes.ContainsAny(buf.Bytes()[1:buf.Len()-2], "\\"); ok != plain || ok && got != string(b) {
			t.Fatalf("%q encoded as %q: fast path %q, %v", b, buf.Bytes(), got, ok)
		}
	})
}
