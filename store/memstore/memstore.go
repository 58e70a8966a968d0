// Package memstore is an in-memory store.Store for tests and examples. It
// keeps the store contract except durability: everything is gone when the
// process exits.
package memstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/internal/locallock"
)

// Store is an in-memory store.Store. The zero value is an empty store.
type Store struct {
	mu      sync.Mutex
	objects map[string][]byte
	locks   locallock.Table
	closed  bool
}

var (
	_ store.Store    = (*Store)(nil)
	_ store.Deferred = (*Store)(nil)
)

// New returns an empty store.
func New() *Store { return &Store{} }

func (s *Store) check(ctx context.Context, name string) error {
	if err := store.ValidName(name); err != nil {
		return fmt.Errorf("memstore: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memstore: %s: %w", name, err)
	}
	if s.closed {
		return fmt.Errorf("memstore: %w", store.ErrClosed)
	}
	return nil
}

// Put stores the bytes of r under name.
func (s *Store) Put(ctx context.Context, name string, r io.Reader) error {
	return s.write(ctx, name, r, true)
}

// Create stores the bytes of r under name unless name exists.
func (s *Store) Create(ctx context.Context, name string, r io.Reader) error {
	return s.write(ctx, name, r, false)
}

func (s *Store) write(ctx context.Context, name string, r io.Reader, replace bool) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("memstore: put %s: %w", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx, name); err != nil {
		return err
	}
	if _, ok := s.objects[name]; ok && !replace {
		return fmt.Errorf("memstore: create %s: %w", name, store.ErrExist)
	}
	if s.objects == nil {
		s.objects = make(map[string][]byte)
	}
	s.objects[name] = b
	return nil
}

// Get returns a reader over a copy-free view of the object.
func (s *Store) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx, name); err != nil {
		return nil, err
	}
	b, ok := s.objects[name]
	if !ok {
		return nil, fmt.Errorf("memstore: get %s: %w", name, store.ErrNotFound)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// List returns the names starting with prefix, sorted.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	if err := store.ValidPrefix(prefix); err != nil {
		return nil, fmt.Errorf("memstore: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("memstore: %w", store.ErrClosed)
	}
	var names []string
	for n := range s.objects {
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, nil
}

// Delete removes name.
func (s *Store) Delete(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx, name); err != nil {
		return err
	}
	delete(s.objects, name)
	return nil
}

// PutDeferred is Put: nothing here outlives the process, so there is no
// durability to defer.
func (s *Store) PutDeferred(ctx context.Context, name string, r io.Reader) error {
	return s.Put(ctx, name, r)
}

// DeleteDeferred is Delete.
func (s *Store) DeleteDeferred(ctx context.Context, name string) error {
	return s.Delete(ctx, name)
}

// Sync checks its arguments: every write is as durable as it will be when
// it returns.
func (s *Store) Sync(ctx context.Context, prefix string) error {
	if err := store.ValidPrefix(prefix); err != nil {
		return fmt.Errorf("memstore: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("memstore: %w", store.ErrClosed)
	}
	return ctx.Err()
}

// Lock takes the named lock within this process.
func (s *Store) Lock(ctx context.Context, name string, owner store.Owner) (store.Lease, error) {
	s.mu.Lock()
	err := s.check(ctx, name)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	l, err := s.locks.Lock(name, owner)
	if err != nil {
		return nil, fmt.Errorf("memstore: %w", err)
	}
	return l, nil
}

// Close marks the store closed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
