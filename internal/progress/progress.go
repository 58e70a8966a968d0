// Package progress draws a one-line progress bar for a running pipeline on
// a terminal: percent, bytes, records, rates and the time left.
package progress

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ckptdev/ckpt/pipeline"
)

// Bar renders pipeline.Progress snapshots to a terminal, redrawing one
// line. Width is the terminal's width (0 means 80).
type Bar struct {
	W     io.Writer
	Width int
	Label string
}

// Update draws p; the last update (p.Done) ends the line.
func (b *Bar) Update(p pipeline.Progress) {
	line := b.Line(p)
	width := b.Width
	if width <= 0 {
		width = 80
	}
	if len([]rune(line)) > width-1 {
		line = string([]rune(line)[:width-1])
	}
	fmt.Fprintf(b.W, "\r%s\x1b[K", line)
	if p.Done {
		fmt.Fprint(b.W, "\n")
	}
}

// Line formats p as text without terminal codes.
func (b *Bar) Line(p pipeline.Progress) string {
	var s strings.Builder
	if b.Label != "" {
		s.WriteString(b.Label + " ")
	}
	secs := p.Elapsed.Seconds()
	rate := 0.0 // bytes per second in this run
	if secs > 0 {
		rate = float64(p.Consumed-p.Start) / secs
	}
	if p.Size > 0 {
		frac := min(float64(p.Consumed)/float64(p.Size), 1)
		const cells = 20
		full := int(frac * cells)
		fmt.Fprintf(&s, "%5.1f%% [%s%s] %s/%s", 100*frac, strings.Repeat("=", full), strings.Repeat(" ", cells-full), Bytes(p.Consumed), Bytes(p.Size))
	} else {
		s.WriteString(Bytes(p.Consumed))
	}
	fmt.Fprintf(&s, "  %s records", Count(p.Records))
	if secs > 0 {
		fmt.Fprintf(&s, "  %s/s", Bytes(int64(rate)))
	}
	if p.Size > 0 && rate > 0 && !p.Done {
		left := time.Duration(float64(p.Size-p.Consumed) / rate * float64(time.Second))
		fmt.Fprintf(&s, "  ETA %s", Duration(left))
	}
	if p.Done {
		fmt.Fprintf(&s, "  in %s", Duration(p.Elapsed))
	}
	return s.String()
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
