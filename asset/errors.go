package asset

import (
	"errors"
	"fmt"
	"strings"
)

// Errors to check with errors.Is.
var (
	// ErrInvalidGraph: the definitions are wrong (one of the errors below,
	// or a bad Spec). Validate returns all of them, joined.
	ErrInvalidGraph = errors.New("invalid asset graph")
	// ErrUnknownAsset: a dependency or a selection names no defined asset.
	ErrUnknownAsset = errors.New("unknown asset")
	// ErrDuplicate: two assets have the same key.
	ErrDuplicate = errors.New("duplicate asset key")
	// ErrCycle: dependencies form a cycle (the error is a *CycleError).
	ErrCycle = errors.New("dependency cycle")
	// ErrTypeMismatch: an input's type is not the output type of the asset
	// it reads, or a check's type is not its asset's.
	ErrTypeMismatch = errors.New("type mismatch")
	// ErrPartitionMismatch: an input joins partitioned assets that do not
	// share their partitions without saying how (see AllPartitions).
	ErrPartitionMismatch = errors.New("partition mismatch")
	// ErrSelection: a selection or a partition selection that cannot be
	// parsed or matches nothing.
	ErrSelection = errors.New("bad selection")
	// ErrRunFailed: a run ended with failed steps; the Run it returns says
	// which. Resume it to compute only those and what depends on them.
	ErrRunFailed = errors.New("run failed")
	// ErrRunCanceled: the run's context was canceled; resume it to go on.
	ErrRunCanceled = errors.New("run canceled")
	// ErrRunActive: the run to resume is still running in a live process.
	ErrRunActive = errors.New("run is still running")
	// ErrNothingToResume: the run (and its chain) already succeeded.
	ErrNothingToResume = errors.New("nothing to resume")
	// ErrEventLogEmpty: the event log has no runs while the store holds
	// asset values, so it is likely not the log they were recorded in.
	ErrEventLogEmpty = errors.New("empty")
)

// CycleError names the assets of a dependency cycle in the direction data
// flows: each feeds the next, and the last feeds the first.
type CycleError struct {
	Keys []string
}

// Error names the cycle: "dependency cycle: a -> b -> a".
func (e *CycleError) Error() string {
	return fmt.Sprintf("%v: %s -> %s", ErrCycle, strings.Join(e.Keys, " -> "), e.Keys[0])
}

// Is reports whether target is ErrCycle or ErrInvalidGraph.
func (e *CycleError) Is(target error) bool { return target == ErrCycle || target == ErrInvalidGraph }

// graphError marks a definition error as both its own kind and
// ErrInvalidGraph.
type graphError struct {
	kind error
	msg  string
}

func (e *graphError) Error() string { return e.msg }

func (e *graphError) Is(target error) bool { return target == e.kind || target == ErrInvalidGraph }

func graphErrorf(kind error, format string, args ...any) error {
	return &graphError{kind: kind, msg: "asset: " + fmt.Sprintf(format, args...)}
}

// permanent marks an error that retrying cannot fix.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent wraps err so that the asset is not retried, whatever its retry
// policy: the input is bad, not the weather.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

func isPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p)
}
