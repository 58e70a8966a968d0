// Package store defines where ckpt keeps its bytes: a small interface over
// named objects with an atomic, durable Put and an exclusive per-job lock.
//
// Backends store bytes; they do not decide what a checkpoint is. The commit
// protocol (which objects are written in which order, and which write is the
// commit point) lives in package ckpt and relies only on the contract below.
//
// Object names are slash-separated keys such as "orders/checkpoints/0042".
// Every segment is non-empty, uses only the characters [A-Za-z0-9._-] and
// does not start with a dot, so that no name can escape a backend's root or
// collide with a backend's own temporary files. ValidName checks this.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Errors every backend returns, wrapped with context; check with errors.Is.
var (
	// ErrNotFound: the object does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExist: Create found the object already there.
	ErrExist = errors.New("already exists")
	// ErrLocked: another live writer holds the lock. The error is also a
	// *LockedError naming the holder.
	ErrLocked = errors.New("locked by another writer")
	// ErrInvalidName: the object name breaks the naming rules above.
	ErrInvalidName = errors.New("invalid object name")
	// ErrClosed: the store or lease was used after Close or Release.
	ErrClosed = errors.New("closed")
	// ErrCorrupt: an object's bytes fail the checksum the backend keeps
	// with it: it was damaged at rest or in transit.
	ErrCorrupt = errors.New("object fails its checksum")
	// ErrLeaseLost: the lease is no longer held (taken over after it
	// expired, or its connection dropped); the holder must stop writing.
	ErrLeaseLost = errors.New("lease lost")
)

// Store is a flat namespace of immutable-once-written objects.
//
// Contract, which the storetest suite checks for every backend:
//   - Put and Create are atomic: a concurrent or later reader, including one
//     after a crash of the writer at any instant, sees the whole new object
//     or the previous state (the old object, or none), never a torn one.
//   - When Put or Create returns nil, the object is durable: it survives a
//     crash of the process and of the machine.
//   - A failed Put or Create (an error, a cancelled context) leaves the
//     previous state in place; it may leave invisible garbage that the
//     backend removes later, never a visible partial object.
//   - Delete of a missing object is not an error.
//   - Methods are safe for concurrent use.
type Store interface {
	// Put writes name with the bytes of r, replacing any existing object.
	Put(ctx context.Context, name string, r io.Reader) error
	// Create is Put that fails with ErrExist if name already exists. The
	// check and the write are one atomic step.
	Create(ctx context.Context, name string, r io.Reader) error
	// Get opens name for reading. It fails with ErrNotFound if it is absent.
	Get(ctx context.Context, name string) (io.ReadCloser, error)
	// List returns the names that start with prefix, sorted.
	List(ctx context.Context, prefix string) ([]string, error)
	// Delete removes name; a missing name is not an error.
	Delete(ctx context.Context, name string) error
	// Lock takes the exclusive lock called name for owner, or fails with an
	// error wrapping ErrLocked (a *LockedError) if a live holder has it. A
	// lock left by a holder that died is taken over. The lock lives until
	// the lease is released or the holder dies.
	Lock(ctx context.Context, name string, owner Owner) (Lease, error)
	// Close releases the store's resources. Leases must be released first.
	Close() error
}

// Deferred is implemented by a store that can make a batch of writes and
// deletes durable together, cheaper than one at a time: the local store
// writes each object with a file fsync but no directory fsync, and
// fsyncs each directory once in Sync. The engine writes a checkpoint's
// blobs with PutDeferred and one Sync before the manifest that names
// them, and removes blobs whose manifests are gone with DeleteDeferred.
//
// Callers use the functions PutDeferred, DeleteDeferred and Sync of this
// package, which fall back to Put and Delete, durable per call, for a
// store that does not implement Deferred: a store durable per request (S3,
// PostgreSQL) keeps this contract as it is, since what it promises is
// only less than Put and Delete promise.
//
// Contract, which the storetest suite checks for every backend (the
// crash half with the local store on a file system that forgets what
// was not synced):
//   - PutDeferred is Put (atomic, visible to readers, whole or absent, a
//     failure leaving the previous state) except that a crash of the
//     machine before a Sync covering name returns may leave the previous
//     state (the old object, or none) instead of the new one; never a
//     torn object.
//   - DeleteDeferred is Delete except that such a crash may bring the
//     object back whole, as it was.
//   - Sync(prefix) returns once every PutDeferred and DeleteDeferred of a
//     name starting with prefix that returned before Sync was called is
//     durable. Calls of Put, Create and Delete stay durable on return.
type Deferred interface {
	PutDeferred(ctx context.Context, name string, r io.Reader) error
	DeleteDeferred(ctx context.Context, name string) error
	Sync(ctx context.Context, prefix string) error
}

// PutDeferred writes name as Put does, durable only once Sync covers it
// (see Deferred); on a store without Deferred it is Put.
func PutDeferred(ctx context.Context, st Store, name string, r io.Reader) error {
	if d, ok := st.(Deferred); ok {
		return d.PutDeferred(ctx, name, r)
	}
	return st.Put(ctx, name, r)
}

// DeleteDeferred removes name as Delete does, durable only once Sync
// covers it (see Deferred); on a store without Deferred it is Delete.
func DeleteDeferred(ctx context.Context, st Store, name string) error {
	if d, ok := st.(Deferred); ok {
		return d.DeleteDeferred(ctx, name)
	}
	return st.Delete(ctx, name)
}

// Sync makes the deferred writes and deletes below prefix durable (see
// Deferred); on a store without Deferred, whose every write is durable on
// return, it checks the prefix and does nothing else.
func Sync(ctx context.Context, st Store, prefix string) error {
	if d, ok := st.(Deferred); ok {
		return d.Sync(ctx, prefix)
	}
	if err := ValidPrefix(prefix); err != nil {
		return err
	}
	return ctx.Err()
}

// Lease is a held lock.
type Lease interface {
	// Token is the fencing token of this lease: strictly greater than the
	// token of every earlier holder of the same lock.
	Token() uint64
	// Check reports ErrLeaseLost if the lease is no longer held. Writers
	// call it before a commit point.
	Check(ctx context.Context) error
	// Release gives the lock up. Calling it twice is harmless.
	Release(ctx context.Context) error
}

// FencedLease is a Lease whose backend can make a write conditional on the
// lease still being held, in one atomic step: a writer whose lease was
// taken over (it expired, its connection dropped) cannot commit. The
// engine writes every manifest through it when the lease offers it.
type FencedLease interface {
	Lease
	// CreateFenced is Store.Create that fails with ErrLeaseLost, writing
	// nothing, unless this lease is still the lock's current holder.
	CreateFenced(ctx context.Context, name string, r io.Reader) error
}

// Owner identifies a lock holder to the people reading an error about it.
type Owner struct {
	ID    string    `json:"id"`             // random per process, or given by the caller
	PID   int       `json:"pid,omitempty"`  // process id on Host
	Host  string    `json:"host,omitempty"` // host name
	Since time.Time `json:"since,omitzero"` // when the lock was taken
	// Start is when the process PID started, where the system tells
	// (Linux); backends record it so that a pid reused by another process
	// is not taken for a live holder.
	Start time.Time `json:"start,omitzero"`
}

// String describes the owner as "pid 123 on host-a since 2026-01-02T15:04:05Z".
func (o Owner) String() string {
	var b strings.Builder
	if o.PID != 0 {
		fmt.Fprintf(&b, "pid %d", o.PID)
	} else {
		b.WriteString("process " + o.ID)
	}
	if o.Host != "" {
		b.WriteString(" on " + o.Host)
	}
	if !o.Since.IsZero() {
		b.WriteString(" since " + o.Since.UTC().Format(time.RFC3339))
	}
	return b.String()
}

// LockedError says who holds a lock. It matches ErrLocked with errors.Is.
type LockedError struct {
	Name   string // the lock's name
	Holder Owner  // the live holder, as far as it is known
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("%s is held by %s", e.Name, e.Holder)
}

// Is reports whether target is ErrLocked.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// ValidName reports whether name follows the object naming rules, with an
// error that says which rule it breaks.
func ValidName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrInvalidName)
	}
	for seg := range strings.SplitSeq(name, "/") {
		if err := validSegment(seg); err != nil {
			return fmt.Errorf("%w %q: %v", ErrInvalidName, name, err)
		}
	}
	return nil
}

// ValidPrefix is ValidName for a List prefix, which may be empty or end in a
// slash or in the middle of a segment.
func ValidPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	segs := strings.Split(prefix, "/")
	for i, seg := range segs {
		if i == len(segs)-1 && seg == "" {
			break
		}
		if err := validSegment(seg); err != nil {
			return fmt.Errorf("%w: prefix %q: %v", ErrInvalidName, prefix, err)
		}
	}
	return nil
}

func validSegment(seg string) error {
	if seg == "" {
		return errors.New("empty path segment")
	}
	if seg[0] == '.' {
		return errors.New("a segment may not start with a dot")
	}
	if len(seg) > 200 {
		return errors.New("a segment is longer than 200 bytes")
	}
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("character %q is not allowed (use letters, digits, '.', '_' and '-')", c)
		}
	}
	return nil
}
