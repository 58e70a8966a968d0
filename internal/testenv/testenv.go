// Package testenv gives tests the real services they run against
// (PostgreSQL, an S3-compatible server) and decides what happens when one
// is missing: the test skips with a message saying what to start, unless
// CKPT_REQUIRE_SERVICES=1 (as CI sets it), where a missing service fails
// the test instead.
package testenv

import (
	"os"
	"testing"
)

// RequireServices reports whether missing services fail tests.
func RequireServices() bool { return os.Getenv("CKPT_REQUIRE_SERVICES") == "1" }

// Unavailable stops the test because a service it needs is missing: a
// skip normally, a failure when services are required.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if RequireServices() {
		t.Fatalf("required service unavailable (CKPT_REQUIRE_SERVICES=1): "+format, args...)
	}
	t.Skipf("service unavailable, skipping: "+format, args...)
}
