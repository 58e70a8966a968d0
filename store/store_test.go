package store_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ckptdev/ckpt/store"
)

func TestValidName(t *testing.T) {
	for _, name := range []string{
		"a", "A9", "a/b", "orders/checkpoints/0042", "a.b", "a..b", "x.", "a-b_c", "-", "_",
		strings.Repeat("x", 200), "a/" + strings.Repeat("y", 200) + "/z",
	} {
		if err := store.ValidName(name); err != nil {
			t.Errorf("ValidName(%q) = %v, want nil", name, err)
		}
	}
	tests := []struct {
		name string
		rule string // what the error must say
	}{
		{"", "empty"},
		{"a//b", "empty"},
		{"a/", "empty"},
		{"/abs", "empty"},
		{"../x", "dot"},
		{"a/../b", "dot"},
		{"..", "dot"},
		{".", "dot"},
		{"a/./b", "dot"},
		{".hidden", "dot"},
		{"a/.b", "dot"},
		{"a\\b", "'\\\\'"},
		{"a b", "' '"},
		{"a:b", "':'"},
		{"a*b", "'*'"},
		{"caf\u00e9", "not allowed"},
		{"a\x00b", "not allowed"},
		{strings.Repeat("x", 201), "200"},
		{"a/" + strings.Repeat("y", 201), "200"},
	}
	for _, tc := range tests {
		err := store.ValidName(tc.name)
		if !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("ValidName(%q) = %v, want an error matching store.ErrInvalidName", tc.name, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.rule) {
			t.Errorf("ValidName(%q) = %q, want it to mention %q", tc.name, err, tc.rule)
		}
	}
}

func TestValidPrefix(t *testing.T) {
	for _, prefix := range []string{
		"", "a", "a/", "a/b", "a/b/", "a/b-", "jobs/x/checkpoints/00", "x.", strings.Repeat("x", 200) + "/",
	} {
		if err := store.ValidPrefix(prefix); err != nil {
			t.Errorf("ValidPrefix(%q) = %v, want nil", prefix, err)
		}
	}
	for _, prefix := range []string{
		"/", "/a", "a//", "a//b", "//", ".a", "a/.b", "../", "..", "a/../", "a b", `a\`,
		strings.Repeat("x", 201), "a/" + strings.Repeat("y", 201) + "/",
	} {
		if err := store.ValidPrefix(prefix); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("ValidPrefix(%q) = %v, want an error matching store.ErrInvalidName", prefix, err)
		}
	}
}

func TestOwnerString(t *testing.T) {
	since := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	tests := []struct {
		owner store.Owner
		want  string
	}{
		{store.Owner{ID: "ab12", PID: 123, Host: "host-a", Since: since}, "pid 123 on host-a since 2026-01-02T15:04:05Z"},
		{store.Owner{PID: 123, Host: "host-a", Since: since.In(time.FixedZone("UTC+1", 3600))}, "pid 123 on host-a since 2026-01-02T15:04:05Z"},
		{store.Owner{PID: 7}, "pid 7"},
		{store.Owner{ID: "ab12"}, "process ab12"},
		{store.Owner{ID: "ab12", Host: "h"}, "process ab12 on h"},
		{store.Owner{ID: "ab12", Since: since}, "process ab12 since 2026-01-02T15:04:05Z"},
	}
	for _, tc := range tests {
		if got := tc.owner.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.owner, got, tc.want)
		}
	}
}

func TestLockedError(t *testing.T) {
	le := &store.LockedError{Name: "jobs/j/LOCK", Holder: store.Owner{ID: "x", PID: 42, Host: "host-b"}}
	err := fmt.Errorf("ckpt: job %q: %w", "j", fmt.Errorf("filestore: %w", le))
	if !errors.Is(err, store.ErrLocked) {
		t.Errorf("errors.Is(%v, ErrLocked) = false", err)
	}
	for _, other := range []error{store.ErrNotFound, store.ErrExist, store.ErrLeaseLost, store.ErrClosed} {
		if errors.Is(err, other) {
			t.Errorf("errors.Is(%v, %v) = true", err, other)
		}
	}
	var got *store.LockedError
	if !errors.As(err, &got) || got != le {
		t.Fatalf("errors.As(%v) = %v, want the LockedError", err, got)
	}
	if want := "jobs/j/LOCK is held by pid 42 on host-b"; le.Error() != want {
		t.Errorf("Error() = %q, want %q", le.Error(), want)
	}
}
