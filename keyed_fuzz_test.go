package ckpt

import (
	"os"
	"path/filepath"
	"testing"
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
