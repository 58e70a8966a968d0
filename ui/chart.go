package ui

import (
	"fmt"
	"strings"
	"time"

	"github.com/ckptdev/ckpt/internal/progress"
)

// chart is a line chart of a job's checkpoint sizes over time, drawn as
// SVG by job.html: a polyline per series, axes labeled at both ends.
type chart struct {
	W, H          int
	Full, Written string // polyline points
	Points        []chartPoint
	MaxLabel      string
	FirstT, LastT string
}

type chartPoint struct {
	X, Y  float64
	Title string
}

const chartW, chartH, chartPad = 720, 160, 8

// sizeChart plots the full size and the bytes written of each checkpoint
// against its time; nil when fewer than two checkpoints have a time.
func sizeChart(rows []CheckpointRow) *chart {
	var pts []CheckpointRow
	for _, r := range rows {
		if !r.Time.IsZero() {
			pts = append(pts, r)
		}
	}
	if len(pts) < 2 {
		return nil
	}
	t0, t1 := pts[0].Time, pts[len(pts)-1].Time
	span := t1.Sub(t0)
	if span <= 0 {
		span = time.Second
	}
	var top int64 = 1
	for _, r := range pts {
		top = max(top, r.FullSize, r.Written)
	}
	x := func(t time.Time) float64 {
		return chartPad + float64(t.Sub(t0))/float64(span)*(chartW-2*chartPad)
	}
	y := func(v int64) float64 {
		return chartH - chartPad - float64(v)/float64(top)*(chartH-2*chartPad)
	}
	c := &chart{W: chartW, H: chartH, MaxLabel: progress.Bytes(top), FirstT: t0.UTC().Format("15:04:05"), LastT: t1.UTC().Format("15:04:05")}
	var full, written strings.Builder
	for _, r := range pts {
		fmt.Fprintf(&full, "%.1f,%.1f ", x(r.Time), y(r.FullSize))
		fmt.Fprintf(&written, "%.1f,%.1f ", x(r.Time), y(r.Written))
		c.Points = append(c.Points, chartPoint{X: x(r.Time), Y: y(r.FullSize),
			Title: fmt.Sprintf("checkpoint %d at %s: %s stored, %s written", r.Seq, r.Time.UTC().Format(time.TimeOnly), progress.Bytes(r.FullSize), progress.Bytes(r.Written))})
	}
	c.Full, c.Written = full.String(), written.String()
	return c
}
