package asset

import (
	"context"
	"time"
)

// RetryWait exposes RetryPolicy.wait to the tests.
func RetryWait(p RetryPolicy, n int) time.Duration { return p.wait(n) }

// RunCheck runs c on v as a materialization would.
func RunCheck(c Check, v any) error {
	return c.fn(context.Background(), checked{value: v, rows: rowsOf(v)})
}
