package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Backoff between attempts: full jitter over an exponentially growing
// window, so that many clients throttled at once spread out instead of
// retrying in step.
const (
	backoffBase = 100 * time.Millisecond
	backoffMax  = 10 * time.Second
)

// backoff returns the pause before attempt n+1 (n >= 1).
func backoff(n int) time.Duration {
	window := backoffBase << min(n-1, 16)
	if window > backoffMax || window <= 0 {
		window = backoffMax
	}
	return time.Duration(rand.Int64N(int64(window))) + time.Millisecond
}

// errAttemptTimeout: an attempt got no answer within RequestTimeout.
var errAttemptTimeout = errors.New("no answer within the request timeout")

// attemptError describes the failure of a request that may have been
// retried: how many attempts were made, in how long.
type attemptError struct {
	attempts int
	elapsed  time.Duration
	err      error
}

func (e *attemptError) Error() string {
	if e.attempts <= 1 {
		return describe(e.err)
	}
	return fmt.Sprintf("gave up after %d attempts in %s: %s", e.attempts, e.elapsed.Round(time.Millisecond), describe(e.err))
}

func (e *attemptError) Unwrap() error { return e.err }

// do runs op under the retry policy: each attempt has its own timeout,
// and an attempt that fails transiently (throttling, 5xx, a timeout, a
// connection error) is retried after a backoff, while attempts and time
// last. It returns the number of attempts made with the error of the
// last. The caller's context ends everything at once: its error is then
// returned, wrapped.
func (s *Store) do(ctx context.Context, op string, fn func(ctx context.Context) error) (int, error) {
	return s.doN(ctx, op, s.opts.MaxAttempts, fn)
}

// doN is do with at most maxAttempts attempts.
func (s *Store) doN(ctx context.Context, op string, maxAttempts int, fn func(ctx context.Context) error) (int, error) {
	start := time.Now()
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return attempt - 1, err
		}
		actx, cancel := context.WithTimeoutCause(ctx, s.opts.RequestTimeout, errAttemptTimeout)
		err := fn(actx)
		timedOut := ctx.Err() == nil && errors.Is(context.Cause(actx), errAttemptTimeout)
		cancel()
		if err == nil {
			return attempt, nil
		}
		if ctx.Err() != nil {
			return attempt, fmt.Errorf("%w (%s)", ctx.Err(), describe(err))
		}
		if timedOut {
			err = fmt.Errorf("%w (%s): %w", errAttemptTimeout, s.opts.RequestTimeout, err)
		}
		pause := backoff(attempt)
		elapsed := time.Since(start)
		if !retryable(err, timedOut) || attempt >= maxAttempts || elapsed+pause > s.opts.MaxRetryTime {
			return attempt, &attemptError{attempts: attempt, elapsed: elapsed, err: err}
		}
		s.log.Debug("s3store: retrying", "op", op, "attempt", attempt, "pause", pause, "err", describe(err))
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return attempt, fmt.Errorf("%w (%s)", ctx.Err(), describe(err))
		}
	}
}

// retryable reports whether a failed attempt may succeed if repeated.
func retryable(err error, timedOut bool) bool {
	if timedOut {
		return true
	}
	if code, status := apiCode(err); status != 0 {
		switch {
		case status == http.StatusNotImplemented:
			// The service lacks what the request asks for (S3 answered
			// conditional writes so before 2024): no retry changes that.
			return false
		case status == http.StatusTooManyRequests, status >= 500:
			return true
		case code == "SlowDown", code == "Throttling", code == "ThrottlingException", code == "RequestTimeout",
			code == "ConditionalRequestConflict", code == "OperationAborted", code == "InternalError":
			return true
		}
		return false
	}
	return transportError(err)
}

// transportError reports whether err is a failure of the connection
// rather than an answer: refused, reset, cut off, timed out.
func transportError(err error) bool {
	var send *smithyhttp.RequestSendError
	var ne net.Error
	return errors.As(err, &send) || errors.As(err, &ne) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, errAttemptTimeout)
}

// apiCode returns the S3 error code and HTTP status of an error answer,
// or a zero status if err is no answer.
func apiCode(err error) (code string, status int) {
	if err != nil && strings.Contains(err.Error(), "get identity: ") {
		// Finding credentials failed before the request was sent: a
		// status in the error is that of a credential source (the
		// instance metadata service's 404), not the bucket's.
		return "", 0
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	return code, status
}

// describe renders an SDK error shortly: "HTTP 403 AccessDenied: Access
// Denied." rather than the SDK's operation, request and host ids.
func describe(err error) string {
	if err == nil {
		return "<nil>"
	}
	var ae *attemptError
	if errors.As(err, &ae) {
		return ae.Error()
	}
	code, status := apiCode(err)
	if status == 0 {
		var send *smithyhttp.RequestSendError
		if errors.As(err, &send) && send.Err != nil {
			return send.Err.Error()
		}
		return err.Error()
	}
	var ae2 smithy.APIError
	msg := ""
	if errors.As(err, &ae2) {
		msg = ae2.ErrorMessage()
	}
	s := fmt.Sprintf("HTTP %d", status)
	if code != "" {
		s += " " + code
	}
	if msg != "" && !strings.EqualFold(msg, code) {
		s += ": " + msg
	}
	return s
}
