// Package progress draws a one-line progress bar for a running pipeline on
// a terminal: percent, bytes, records, rate and the time left, fitted to
// the terminal's width, with log lines printed above it rather than over
// it.
package progress

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/ckptdev/ckpt/pipeline"
)

// Bar renders pipeline.Progress snapshots to a terminal, redrawing one
// line. The line fits the terminal: the least useful parts are left out
// first (the bar graph, the byte counts, the records, the label, the
// percentage), the rate and the time left last.
//
// Logs written through Writer while the bar is drawn clear the line,
// print, and draw it again below them.
type Bar struct {
	W io.Writer
	// Width is the terminal's width in columns (0 means 80). WidthFunc,
	// if set, is asked at every redraw instead, so that a resized
	// terminal is followed; it returns 0 when it cannot tell.
	Width     int
	WidthFunc func() int
	Label     string

	mu    sync.Mutex
	drawn string // the line on the terminal now, "" if none
}

// Update draws p; the last update (p.Done) ends the line.
func (b *Bar) Update(p pipeline.Progress) {
	line := b.Fit(p, b.width()-1) // the last column would wrap on some terminals
	b.mu.Lock()
	defer b.mu.Unlock()
	fmt.Fprintf(b.W, "\r%s\x1b[K", line)
	b.drawn = line
	if p.Done {
		fmt.Fprint(b.W, "\n")
		b.drawn = ""
	}
}

func (b *Bar) width() int {
	if b.WidthFunc != nil {
		if w := b.WidthFunc(); w > 0 {
			return w
		}
	}
	if b.Width > 0 {
		return b.Width
	}
	return 80
}

// Writer returns a writer for log lines: each write clears the bar's
// line, writes, and draws the bar again. A write must hold whole lines,
// as a slog handler's does.
func (b *Bar) Writer() io.Writer { return logWriter{b} }

type logWriter struct{ b *Bar }

func (w logWriter) Write(p []byte) (int, error) {
	b := w.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.drawn == "" {
		return b.W.Write(p)
	}
	if _, err := io.WriteString(b.W, "\r\x1b[K"); err != nil {
		return 0, err
	}
	n, err := b.W.Write(p)
	if err != nil {
		return n, err
	}
	_, err = fmt.Fprintf(b.W, "%s\x1b[K", b.drawn)
	return n, err
}

// part is one piece of the line.
type part struct {
	text string
	sep  string // put before it when a part precedes it
	drop int    // the order in which parts are left out: lowest first
}

// parts returns the pieces of p's line, in display order.
func (b *Bar) parts(p pipeline.Progress, cells int) []part {
	var ps []part
	if b.Label != "" {
		ps = append(ps, part{b.Label, " ", 4})
	}
	secs := p.Elapsed.Seconds()
	rate := 0.0 // bytes per second in this run
	if secs > 0 {
		rate = float64(p.Consumed-p.Start) / secs
	}
	if p.Size > 0 {
		frac := min(float64(p.Consumed)/float64(p.Size), 1)
		ps = append(ps, part{fmt.Sprintf("%5.1f%%", 100*frac), " ", 5})
		if cells > 0 {
			full := int(frac * float64(cells))
			ps = append(ps, part{"[" + strings.Repeat("=", full) + strings.Repeat(" ", cells-full) + "]", " ", 1})
		}
		ps = append(ps, part{Bytes(p.Consumed) + "/" + Bytes(p.Size), " ", 2})
	} else {
		ps = append(ps, part{Bytes(p.Consumed), " ", 2})
	}
	noun := " records"
	if p.Records == 1 {
		noun = " record"
	}
	ps = append(ps, part{Count(p.Records) + noun, "  ", 3})
	if p.Stream {
		// A stream: messages per second and how far behind its end.
		if secs > 0 {
			ps = append(ps, part{Count(int64(float64(p.Records-p.StartRecords)/secs)) + " msg/s", "  ", 6})
		}
		if p.Lag >= 0 {
			ps = append(ps, part{"lag " + Count(p.Lag), "  ", 5})
		}
	} else if secs > 0 {
		ps = append(ps, part{Bytes(int64(rate)) + "/s", "  ", 6})
	}
	if p.Size > 0 && rate > 0 && !p.Done {
		left := time.Duration(float64(p.Size-p.Consumed) / rate * float64(time.Second))
		ps = append(ps, part{"ETA " + Duration(left), "  ", 7})
	}
	if p.Done {
		ps = append(ps, part{"in " + Duration(p.Elapsed), "  ", 7})
	}
	return ps
}

// join renders the parts not dropped.
func join(ps []part, dropped int) string {
	var s strings.Builder
	for _, x := range ps {
		if x.drop <= dropped {
			continue
		}
		if s.Len() > 0 {
			s.WriteString(x.sep)
		}
		s.WriteString(x.text)
	}
	return s.String()
}

// Line formats p in full, as text without terminal codes.
func (b *Bar) Line(p pipeline.Progress) string { return join(b.parts(p, 20), 0) }

// Fit formats p in at most width columns: the bar graph shrinks, then the
// least useful parts are left out, and what still does not fit is cut.
func (b *Bar) Fit(p pipeline.Progress, width int) string {
	if width <= 0 {
		return ""
	}
	for _, cells := range []int{20, 10} {
		if line := join(b.parts(p, cells), 0); utf8.RuneCountInString(line) <= width {
			return line
		}
	}
	ps := b.parts(p, 10)
	last := 0 // the most useful part, never left out
	for _, x := range ps {
		last = max(last, x.drop)
	}
	for dropped := 1; dropped < last; dropped++ {
		if line := join(ps, dropped); utf8.RuneCountInString(line) <= width {
			return line
		}
	}
	r := []rune(strings.TrimSpace(join(ps, last-1)))
	return string(r[:min(len(r), width)])
}

// Bytes formats n in binary units: 512 B, 1.5 KiB, 3.2 GiB.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Count formats n with thousands separators.
func Count(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// Duration formats d as h:mm:ss or m:ss.
func Duration(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%d:%02d", m, s)
}
