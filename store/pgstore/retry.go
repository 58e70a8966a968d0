package pgstore

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// maxAttempts bounds the tries of an operation that failed transiently.
const maxAttempts = 4

// retryBase is the wait before the second try; it doubles for each next.
const retryBase = 25 * time.Millisecond

// retry runs fn until it succeeds, fails with an error that is not
// transient, or has been tried maxAttempts times. Only idempotent work, or
// work that is all-or-nothing and can be started over, goes through it.
func (s *Store) retry(ctx context.Context, what string, fn func(ctx context.Context) error) error {
	wait := retryBase
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil || attempt == maxAttempts || !Transient(err) || ctx.Err() != nil {
			return err
		}
		// A refused connection is reported by the final error if it
		// persists, and says nothing new before; a connection lost midway
		// is worth a warning at once.
		var ce *pgconn.ConnectError
		if !errors.As(err, &ce) {
			s.log.Warn("pgstore: transient error; retrying", "op", what, "attempt", attempt, "err", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait *= 2
	}
}

// Transient reports whether err is a failure that the same work, tried
// again on another connection, may not meet: a lost or refused connection,
// a server shutting down or starting, a serialization failure or a
// deadlock. A cancelled context is not transient.
func Transient(err error) bool {
	var se *sourceError
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &se) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "40001", // serialization_failure
			"40P01", // deadlock_detected
			"57P01", // admin_shutdown: pg_terminate_backend, a fast shutdown
			"57P02", // crash_shutdown
			"57P03": // cannot_connect_now: starting up
			return true
		}
		return strings.HasPrefix(pe.Code, "08") // connection_exception
	}
	if pgconn.SafeToRetry(err) {
		return true
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) ||
		strings.Contains(err.Error(), "conn closed")
}
