package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
)

// A backend package registers the URL scheme it serves when it is
// imported, as database/sql drivers do: a program links only the backends
// it imports. The local directory (filestore) and the in-memory store
// (memstore) are always imported by package ckpt; the S3 and PostgreSQL
// stores are linked by a blank import:
//
//	import _ "github.com/ckptdev/ckpt/store/s3store"
//	import _ "github.com/ckptdev/ckpt/store/pgstore"

// ErrNoBackend: the address's scheme is known, but no backend serving it
// is linked into this program. The error says which package to import.
var ErrNoBackend = errors.New("store backend not linked into this program")

// Opener opens the store at a parsed address. The logger is never nil.
type Opener func(ctx context.Context, loc Location, log *slog.Logger) (Store, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]Opener{}
)

// backendPackages names the package that serves each scheme ParseURL
// knows, for the error that asks for its import.
var backendPackages = map[string]string{
	"file":     "github.com/ckptdev/ckpt/store/filestore",
	"mem":      "github.com/ckptdev/ckpt/store/memstore",
	"s3":       "github.com/ckptdev/ckpt/store/s3store",
	"postgres": "github.com/ckptdev/ckpt/store/pgstore",
}

// Register makes a backend available to Open for scheme, the scheme of
// Location (lower case; "postgres" also serves "postgresql"). Backends
// call it from an init function. As with database/sql.Register, a second
// registration of one scheme, an unknown scheme or a nil opener is a
// programming error and panics.
func Register(scheme string, open Opener) {
	if open == nil {
		panic("store: Register of a nil opener for " + scheme)
	}
	if _, known := backendPackages[scheme]; !known {
		panic("store: Register of scheme " + scheme + ", which ParseURL does not know")
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[scheme]; dup {
		panic("store: Register called twice for scheme " + scheme)
	}
	registry[scheme] = open
}

// Schemes returns the schemes of the backends linked into this program,
// sorted.
func Schemes() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	s := make([]string, 0, len(registry))
	for k := range registry {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}

// Open opens the store at a URL (see ParseURL for the forms) with the
// backend registered for its scheme. An address whose backend is not
// linked into the program fails with ErrNoBackend, naming the package to
// import. A nil logger means slog.Default(). The caller closes the store.
func Open(ctx context.Context, url string, log *slog.Logger) (Store, error) {
	loc, err := ParseURL(url)
	if err != nil {
		return nil, err
	}
	return OpenLocation(ctx, loc, log)
}

// OpenLocation is Open for an address ParseURL has parsed.
func OpenLocation(ctx context.Context, loc Location, log *slog.Logger) (Store, error) {
	if log == nil {
		log = slog.Default()
	}
	registryMu.RLock()
	open := registry[loc.Scheme]
	registryMu.RUnlock()
	if open == nil {
		return nil, fmt.Errorf("open store %s: %w: the %s backend is not linked in; add import _ %q to the program", loc, ErrNoBackend, loc.Scheme, backendPackages[loc.Scheme])
	}
	st, err := open(ctx, loc, log)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", loc, err)
	}
	return st, nil
}
