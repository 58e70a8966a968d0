package source_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt/source"
)

// tree makes files (and the directories they are in) under a new
// temporary directory and returns it.
func tree(t *testing.T, files ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range files {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, "/") {
			continue
		}
		if err := os.WriteFile(p, []byte("a\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestExpand(t *testing.T) {
	dir := tree(t, "b.csv", "a.csv", "c.txt", "10.csv", "9.csv", ".hidden.csv", "sub.csv/x.csv", "sub/d.csv", "e.jsonl", "f.ndjson", "noext")
	if err := os.Symlink(filepath.Join(dir, "a.csv"), filepath.Join(dir, "link.csv")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "sub"), filepath.Join(dir, "dirlink.csv")); err != nil {
		t.Fatal(err)
	}
	in := func(names ...string) []string {
		var out []string
		for _, n := range names {
			out = append(out, filepath.Join(dir, n))
		}
		return out
	}
	tests := []struct {
		name string
		arg  string
		exts []string
		want []string
	}{
		{"file", filepath.Join(dir, "c.txt"), []string{".csv"}, in("c.txt")},
		{"hidden file named", filepath.Join(dir, ".hidden.csv"), nil, in(".hidden.csv")},
		{"directory, one extension", dir, []string{".csv"}, in("10.csv", "9.csv", "a.csv", "b.csv", "link.csv")},
		{"directory, several extensions", dir, []string{".jsonl", ".ndjson", ".txt"}, in("c.txt", "e.jsonl", "f.ndjson")},
		{"directory, all files", dir, nil, in("10.csv", "9.csv", "a.csv", "b.csv", "c.txt", "e.jsonl", "f.ndjson", "link.csv", "noext")},
		{"glob", filepath.Join(dir, "[ab9]*.csv"), nil, in("9.csv", "a.csv", "b.csv")},
		{"glob over directories", filepath.Join(dir, "*", "*.csv"), nil, in("dirlink.csv/d.csv", "sub.csv/x.csv", "sub/d.csv")},
		{"glob leaves out directories and hidden files", filepath.Join(dir, "*.csv"), nil, in("10.csv", "9.csv", "a.csv", "b.csv", "link.csv")},
		{"glob for hidden files", filepath.Join(dir, ".*.csv"), nil, in(".hidden.csv")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := source.Expand(tt.arg, tt.exts...)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Expand(%s, %q) = %q, want %q", tt.arg, tt.exts, got, tt.want)
			}
		})
	}
}

func TestExpandNoInput(t *testing.T) {
	dir := tree(t, "a.txt", ".b.csv", "sub.csv/")
	empty := t.TempDir()
	tests := []struct {
		name string
		arg  string
		exts []string
		says string
	}{
		{"missing file", filepath.Join(dir, "nope.csv"), nil, "does not exist"},
		{"no file with the extension", dir, []string{".csv"}, "has no .csv files"},
		{"no file with the extensions", dir, []string{".csv", ".tsv"}, "has no .csv or .tsv files"},
		{"empty directory", empty, nil, "has no files"},
		{"glob matching nothing", filepath.Join(dir, "*.json"), nil, "matches no files"},
		{"glob matching a directory and a hidden file", filepath.Join(dir, "*.csv"), nil, "matches no files"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := source.Expand(tt.arg, tt.exts...)
			if !errors.Is(err, source.ErrNoInput) {
				t.Fatalf("Expand(%s) = %q, %v; want ErrNoInput", tt.arg, got, err)
			}
			if !strings.Contains(err.Error(), tt.arg) || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("message %q does not name %s and say %q", err, tt.arg, tt.says)
			}
		})
	}
	if _, err := source.Expand(filepath.Join(dir, "[")); err == nil || errors.Is(err, source.ErrNoInput) {
		t.Errorf("Expand of a malformed pattern: %v, want a pattern error", err)
	}
}

// TestExpandBrokenLink: a broken link in a directory is not dropped
// silently; opening the input reports it.
func TestExpandBrokenLink(t *testing.T) {
	dir := tree(t, "a.csv")
	broken := filepath.Join(dir, "b.csv")
	if err := os.Symlink(filepath.Join(dir, "gone.csv"), broken); err != nil {
		t.Fatal(err)
	}
	files, err := source.Expand(dir, ".csv")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(files, []string{filepath.Join(dir, "a.csv"), broken}) {
		t.Fatalf("Expand = %q", files)
	}
	if _, err := source.OpenLines(files, nil); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), broken) {
		t.Errorf("OpenLines with a broken link: %v", err)
	}
}
