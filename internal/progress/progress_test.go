package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

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
	// A resumed run's rate counts only this run's bytes.
	if line := b.Line(pipeline.Progress{Consumed: 60 << 20, Start: 50 << 20, Size: 100 << 20, Elapsed: 10 * time.Second}); !strings.Contains(line, "1.0 MiB/s") {
		t.Errorf("resumed rate: %q", line)
	}
	if line := b.Line(pipeline.Progress{Records: 1, Consumed: 10, Size: 100, Elapsed: time.Second}); !strings.Contains(line, " 1 record ") {
		t.Errorf("one record: %q", line)
	}
}

// At every width the line fits, and the rate and the time left are the
// last parts to go.
func TestBarFitsTheWidth(t *testing.T) {
	b := &Bar{Label: "convert"}
	p := pipeline.Progress{Records: 123_456_789, Consumed: 600 << 30, Size: 1 << 40, Start: 100 << 30, Elapsed: 90 * time.Minute}
	full := b.Line(p)
	for _, c := range []struct {
		width int
		has   []string
		lacks []string
	}{
		{200, []string{"convert", "[", "600.0 GiB/1.0 TiB", "123,456,789 records", "/s", "ETA"}, nil},
		{len(full), []string{"convert", "[", "records", "/s", "ETA"}, nil},
		{60, []string{"%", "records", "/s", "ETA"}, []string{"["}},
		{40, []string{"%", "/s", "ETA"}, []string{"[", "records", "GiB/"}},
		{25, []string{"/s", "ETA"}, []string{"%"}},
		{15, []string{"ETA"}, []string{"/s"}},
		{5, nil, nil},
	} {
		line := b.Fit(p, c.width)
		if n := utf8.RuneCountInString(line); n > c.width {
			t.Errorf("width %d: %d columns: %q", c.width, n, line)
		}
		for _, s := range c.has {
			if !strings.Contains(line, s) {
				t.Errorf("width %d: %q lacks %q", c.width, line, s)
			}
		}
		for _, s := range c.lacks {
			if strings.Contains(line, s) {
				t.Errorf("width %d: %q has %q, a less useful part than what was left out", c.width, line, s)
			}
		}
	}
	// Without a known size (no percentage, no time left) the rate is the
	// last to go.
	p.Size = -1
	if line := b.Fit(p, 20); !strings.Contains(line, "/s") || utf8.RuneCountInString(line) > 20 {
		t.Errorf("unknown size, width 20: %q", line)
	}
	// Update fits the line too, keeping the time left.
	var w bytes.Buffer
	p.Size = 1 << 40
	(&Bar{W: &w, Width: 40}).Update(p)
	if got := w.String(); !strings.Contains(got, "ETA") || utf8.RuneCountInString(got) > len("\r\x1b[K")+39 {
		t.Errorf("40-column terminal: %q", got)
	}
	// Update leaves the last column free and follows WidthFunc.
	w.Reset()
	b = &Bar{W: &w, Width: 200, WidthFunc: func() int { return 30 }}
	b.Update(p)
	if got := strings.TrimSuffix(strings.TrimPrefix(w.String(), "\r"), "\x1b[K"); utf8.RuneCountInString(got) > 29 {
		t.Errorf("line of %d columns on a 30-column terminal: %q", utf8.RuneCountInString(got), got)
	}
}

// A log line written while the bar is drawn clears the bar's line, takes
// it, and the bar is drawn again below it.
func TestLogLinesDoNotOverwriteTheBar(t *testing.T) {
	var w bytes.Buffer
	b := &Bar{W: &w, Width: 80}
	log := b.Writer()
	log.Write([]byte("before any bar\n"))
	if w.String() != "before any bar\n" {
		t.Fatalf("without a bar, a log line is written as is: %q", w.String())
	}
	p := pipeline.Progress{Records: 10, Consumed: 10, Size: 100, Elapsed: time.Second}
	b.Update(p)
	bar := b.Fit(p, 79)
	w.Reset()
	log.Write([]byte("level=WARN msg=slow\n"))
	if want := "\r\x1b[Klevel=WARN msg=slow\n" + bar + "\x1b[K"; w.String() != want {
		t.Fatalf("log over the bar: %q, want %q", w.String(), want)
	}
	p.Done = true
	b.Update(p)
	w.Reset()
	log.Write([]byte("after\n"))
	if w.String() != "after\n" {
		t.Fatalf("after the last update: %q", w.String())
	}
}

// A stream's line shows messages per second in this run and the lag.
func TestBarStream(t *testing.T) {
	b := &Bar{}
	p := pipeline.Progress{Records: 5000, StartRecords: 1000, Consumed: 1 << 20, Size: -1, Elapsed: 2 * time.Second, Stream: true, Lag: 12345}
	line := b.Line(p)
	for _, want := range []string{"5,000 records", "2,000 msg/s", "lag 12,345"} {
		if !strings.Contains(line, want) {
			t.Errorf("line %q lacks %q", line, want)
		}
	}
	if strings.Contains(line, "MiB/s") {
		t.Errorf("a stream's line shows bytes per second: %q", line)
	}
	p.Lag = -1 // the server has not said yet
	if line := b.Line(p); strings.Contains(line, "lag") {
		t.Errorf("unknown lag shown: %q", line)
	}
}
