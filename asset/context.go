package asset

import (
	"context"
	"log/slog"
	"maps"
	"sync"
	"time"
)

// Context is what a compute function gets besides its inputs: the asset
// and partition being computed, the run, and ways to report on the value.
// It is a context.Context, canceled when the run is.
type Context struct {
	context.Context

	// Key and Partition name what is being computed ("" when the asset is
	// not partitioned).
	Key       string
	Partition string
	// WindowStart and WindowEnd are the partition's time window, when it
	// has one: [WindowStart, WindowEnd).
	WindowStart, WindowEnd time.Time
	// RunID is the run's id; Attempt counts from 1.
	RunID   string
	Attempt int
	// Log writes to the run's logger with the asset and partition.
	Log *slog.Logger

	deps   []input
	inputs []any

	mu          sync.Mutex
	metadata    map[string]string
	rows        int64
	rowsSet     bool
	dataVersion string
	err         error
}

// AddMetadata records key=value with the materialization.
func (c *Context) AddMetadata(key, value string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.metadata == nil {
		c.metadata = map[string]string{}
	}
	c.metadata[key] = value
}

// SetRows records the number of rows of the value (by default, the length
// of a slice, array or map value; unknown otherwise).
func (c *Context) SetRows(n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rows, c.rowsSet = n, true
}

// SetDataVersion sets the data version of the value, instead of the
// default hash of the code version and the inputs' data versions: for an
// asset that reads data from outside, whose version it can tell (a file's
// checksum, a table's last update). Downstream assets are stale only when
// it changes.
func (c *Context) SetDataVersion(v string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dataVersion = v
}

func (c *Context) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
}

// report returns what the compute function reported.
func (c *Context) report() (meta map[string]string, rows int64, rowsSet bool, dataVersion string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.metadata), c.rows, c.rowsSet, c.dataVersion, c.err
}
