package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/ckptdev/ckpt/pipeline"
)

func TestFormats(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{Bytes(0), "0 B"}, {Bytes(1023), "1023 B"}, {Bytes(1024), "1.0 KiB"}, {Bytes(1536), "1.5 KiB"}, {Bytes(3 << 30), "3.0 GiB"}, {Bytes(1 << 40), "1.0 TiB"}, {Bytes(1<<63 - 1), "8.0 EiB"},
		{Count(0), "0"}, {Count(999), "999"}, {Count(1000), "1,000"}, {Count(-1234567), "-1,234,567"},
		{Duration(59 * time.Second), "0:59"}, {Duration(61 * time.Minute), "1:01:00"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestBar(t *testing.T) {
	var w bytes.Buffer
	b := &Bar{W: &w, Width: 200}
	p := pipeline.Progress{Records: 1500, Consumed: 50 << 20, Size: 100 << 20, Start: 0, Elapsed: 10 * time.Second}
	line := b.Line(p)
	for _, want := range []string{" 50.0%", "50.0 MiB/100.0 MiB", "1,500 records", "5.0 MiB/s", "ETA 0:10"} {
		if !strings.Contains(line, want) {
			t.Errorf("line %q lacks %q", line, want)
		}
	}
	b.Update(p)
	if !strings.HasPrefix(w.String(), "\r") || !strings.HasSuffix(w.String(), "\x1b[K") {
		t.Errorf("update %q does not redraw one line", w.String())
	}
	w.Reset()
	p.Done, p.Consumed = true, 100<<20
	b.Update(p)
	if !strings.HasSuffix(w.String(), "\n") || !strings.Contains(w.String(), "in 0:10") || strings.Contains(w.String(), "ETA") {
		t.Errorf("last update %q", w.String())
	}
	// A resumed run's rate counts only this run's bytes; a narrow terminal
	// gets a cut line.
	b.Width = 30
	w.Reset()
	b.Update(pipeline.Progress{Consumed: 60 << 20, Start: 50 << 20, Size: 100 << 20, Elapsed: 10 * time.Second})
	if got := strings.TrimSuffix(strings.TrimPrefix(w.String(), "\r"), "\x1b[K"); len([]rune(got)) > 29 {
		t.Errorf("line of %d runes on a 30-column terminal", len([]rune(got)))
	}
	if line := b.Line(pipeline.Progress{Consumed: 60 << 20, Start: 50 << 20, Size: 100 << 20, Elapsed: 10 * time.Second}); !strings.Contains(line, "1.0 MiB/s") {
		t.Errorf("resumed rate: %q", line)
	}
}
