package source_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt/source"
)

func TestLines(t *testing.T) {
	long := strings.Repeat("0123456789", 350_000) // 3.5 MB: longer than the 1 MiB buffer
	tests := []struct {
		name  string
		files []string
		want  []string
	}{
		{"LF", []string{"a\nb\n"}, []string{"a", "b"}},
		{"CRLF", []string{"a\r\nb\r\n"}, []string{"a", "b"}},
		{"no final line end", []string{"a\nb"}, []string{"a", "b"}},
		{"no final line end, CR", []string{"a\nb\r"}, []string{"a", "b"}},
		{"empty lines are records", []string{"\na\n\r\n\nb\n\n"}, []string{"", "a", "", "", "b", ""}},
		{"CR inside a line kept", []string{"a\rb\r\r\n"}, []string{"a\rb\r"}},
		{"BOM", []string{bom + "a\nb\n"}, []string{"a", "b"}},
		{"BOM only at the start", []string{"a\n" + bom + "b\n"}, []string{"a", bom + "b"}},
		{"BOM alone", []string{bom}, nil},
		{"BOM and an empty line", []string{bom + "\n"}, []string{""}},
		{"empty file", []string{""}, nil},
		{"long line", []string{"a\n" + long + "\nb"}, []string{"a", long, "b"}},
		{"multiple files", []string{"a\nb", bom + "c\r\n", "", "\n", "d"}, []string{"a", "b", "c", "", "d"}},
		{"JSON lines", []string{`{"a":1}` + "\n" + `{"a":"x\ny"}` + "\r\n"}, []string{`{"a":1}`, `{"a":"x\ny"}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			paths := writeFiles(t, tt.files...)
			s, err := readLines(paths, nil)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range s.events {
				got = append(got, e.Fields[0])
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("lines %q, want %q", got, tt.want)
			}
			checkPlaces(t, s, paths)
			checkResume(t, s, func(pos json.RawMessage) (stream, error) { return readLines(paths, pos) })
		})
	}
}

func TestLinesBufferSplits(t *testing.T) {
	in := bom + "a\r\n\n\r\nlonger line\r\n\r\r\n" + `{"k":"v"}` + "\nlast\r"
	paths := writeFiles(t, in, in)
	want, err := readLines(paths, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(want.events) != 14 {
		t.Fatalf("%d lines, want 14: %s", len(want.events), fmtEvents(want.events))
	}
	checkPlaces(t, want, paths)
	for size := 1; size <= len(in)+1; size++ {
		restore := source.SetInitialBuffer(size)
		got, err := readLines(paths, nil)
		restore()
		if err != nil {
			t.Fatalf("buffer %d: %v", size, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("buffer %d bytes:\n got %s\nwant %s", size, fmtEvents(got.events), fmtEvents(want.events))
		}
	}
}

func TestLinesOpenErrors(t *testing.T) {
	if _, err := source.OpenLines(nil, nil); !errors.Is(err, source.ErrNoInput) {
		t.Errorf("OpenLines(nil) = %v, want ErrNoInput", err)
	}
	paths := writeFiles(t, "a\n")
	for _, pos := range []string{`{`, `{"file":0,"offset":-1,"line":1,"files":[]}`, `{"file":2,"offset":0,"line":1,"files":[]}`, `{"file":0,"offset":0,"line":0,"files":[]}`} {
		if _, err := source.OpenLines(paths, json.RawMessage(pos)); err == nil || !strings.Contains(err.Error(), "bad input position") {
			t.Errorf("OpenLines at %s: %v, want a bad input position error", pos, err)
		}
	}
}
