package asset

import (
	"errors"
	"math"
	"math/rand/v2"
	"time"
)

// RetryPolicy says how often a failed computation is attempted and how
// long to wait in between. The zero value attempts once.
type RetryPolicy struct {
	// MaxAttempts is the number of attempts in all; 0 or 1 means one.
	MaxAttempts int
	// Delay is the wait before the second attempt.
	Delay time.Duration
	// Backoff multiplies the wait after each attempt; 0 means 2, 1 keeps
	// it constant.
	Backoff float64
	// MaxDelay caps the wait; 0 means no cap.
	MaxDelay time.Duration
	// Jitter, between 0 and 1, scales each wait by a random factor in
	// [1-Jitter, 1+Jitter], so that many failed assets do not retry in
	// step.
	Jitter float64
}

func (p RetryPolicy) validate() error {
	if p.MaxAttempts < 0 || p.Delay < 0 || p.MaxDelay < 0 || p.Backoff < 0 {
		return errors.New("retry policy: negative values")
	}
	if p.Jitter < 0 || p.Jitter > 1 {
		return errors.New("retry policy: Jitter must be between 0 and 1")
	}
	return nil
}

func (p RetryPolicy) attempts() int { return max(p.MaxAttempts, 1) }

// wait returns how long to wait after the failed attempt number n (1
// based).
func (p RetryPolicy) wait(n int) time.Duration {
	b := p.Backoff
	if b == 0 {
		b = 2
	}
	d := float64(p.Delay) * math.Pow(b, float64(n-1))
	if p.MaxDelay > 0 && d > float64(p.MaxDelay) {
		d = float64(p.MaxDelay)
	}
	if p.Jitter > 0 {
		d *= 1 + p.Jitter*(2*rand.Float64()-1)
	}
	if d > float64(math.MaxInt64) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(d)
}
