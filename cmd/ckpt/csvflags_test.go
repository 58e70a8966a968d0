package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseDelimiter(t *testing.T) {
	for in, want := range map[string]byte{"": 0, "tab": '\t', `\t`: '\t', "TAB": '\t', ";": ';', "pipe": '|', "comma": ',', "semicolon": ';', "space": ' ', "|": '|'} {
		if got, err := parseDelimiter(in); err != nil || got != want {
			t.Errorf("parseDelimiter(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{`"`, "\n", ";;", "é", "tabs"} {
		if _, err := parseDelimiter(in); err == nil {
			t.Errorf("parseDelimiter(%q) accepted", in)
		}
	}
}

func TestConvertSeparatorFlags(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "export.txt"), filepath.Join(dir, "orders.tsv")
	if err := os.WriteFile(in, []byte("1;a b\n2;\"c;d\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ckptRun(t, nil, "convert", "--quiet", "--from", "csv", "--delimiter", ";", "--columns", "id,name", in, out).want(t, exitOK)
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := "id\tname\n1\ta b\n2\tc;d\n"; string(got) != want {
		t.Errorf("output %q, want %q", got, want)
	}
	for _, args := range [][]string{
		{"convert", "--delimiter", `"`, in, out},
		{"convert", "--from", "csv", "--columns", "", in, out},
		{"convert", "--from", "csv", "--out-delimiter", "ab", in, out},
	} {
		r := ckptRun(t, nil, args...).want(t, exitUsage)
		if line := r.errLine(t); !strings.Contains(line, "delimiter") && !strings.Contains(line, "columns") {
			t.Errorf("%q: error line %s", args, line)
		}
	}
}
