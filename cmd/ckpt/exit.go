package main

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/pipeline"
	"github.com/ckptdev/ckpt/store"
)

// The exit codes of ckpt. Scripts depend on them, so a code never changes
// its meaning; exitCodes below is the table `ckpt --help` prints.
const (
	exitOK    = 0
	exitError = 1
	// exitUsage: bad flags or arguments, or a confirmation that cannot be
	// asked for (stdin is not a terminal and --yes is absent).
	exitUsage = 2
	// exitCorrupt: verification failed, or no checkpoint verifies.
	exitCorrupt = 3
	// exitLocked: the job is held by another running process.
	exitLocked = 4
	// exitInterrupted: a signal stopped a run after its shutdown checkpoint
	// was saved; running the same command again resumes. 75 is EX_TEMPFAIL
	// of sysexits.h: a temporary failure, try again.
	exitInterrupted = 75
	// exitSignal is never returned by ckpt: a second SIGINT ends the
	// process at once and the shell reports 128+2. It is listed so that
	// users know it is safe.
	exitSignal = 130
	// exitSignalTerm is the same for a second SIGTERM: 128+15.
	exitSignalTerm = 143
)

// exitCodes documents every exit code, in the order `ckpt --help` lists them.
var exitCodes = []struct {
	code    int
	meaning string
}{
	{exitOK, "success"},
	{exitError, "error (the message on stderr says what happened and what to do)"},
	{exitUsage, "usage error: bad flags or arguments, or a choice is needed (pass --yes, or --job or --restart as the message says)"},
	{exitCorrupt, "verification failed or no valid checkpoint: corruption found"},
	{exitLocked, "the job is locked by another running process"},
	{exitInterrupted, "interrupted by a signal after a shutdown checkpoint: rerun to resume"},
	{exitSignal, "killed by a second SIGINT (set by the shell; the next run resumes)"},
	{exitSignalTerm, "killed by a second SIGTERM (set by the shell; the next run resumes)"},
}

// exitCodeHelp renders exitCodes for the root command's help.
func exitCodeHelp() string {
	var b strings.Builder
	b.WriteString("Exit codes:\n")
	for _, e := range exitCodes {
		fmt.Fprintf(&b, "  %-4d %s\n", e.code, e.meaning)
	}
	return b.String()
}

// codedError is an error that carries the code ckpt exits with (0 means:
// classify the wrapped error) and, where it helps, what the user can do.
type codedError struct {
	code  int
	err   error
	hint  string
	usage bool // print the command's usage line after the message
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

// usageErrorf reports bad flags or arguments: exit code 2, and the command's
// usage is printed after the message.
func usageErrorf(format string, args ...any) error {
	return &codedError{code: exitUsage, err: fmt.Errorf(format, args...), usage: true}
}

// asUsage marks err, which the argument parser returned, as a usage error.
func asUsage(err error) error {
	var ee *codedError
	if errors.As(err, &ee) {
		return err
	}
	return &codedError{code: exitUsage, err: err, usage: true}
}

// withHint attaches what to do about err. Its exit code stays the one err
// classifies as.
func withHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &codedError{err: err, hint: hint}
}

// exitCode maps an error to ckpt's exit code: an explicit code first, then
// the library's error classes.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ee *codedError
	for e := err; errors.As(e, &ee); e = ee.err {
		if ee.code != 0 {
			return ee.code
		}
	}
	switch {
	case errors.Is(err, pipeline.ErrOutputIsInput):
		return exitUsage
	case errors.Is(err, ckpt.ErrInterrupted):
		return exitInterrupted
	case errors.Is(err, ckpt.ErrLocked):
		return exitLocked
	case errors.Is(err, ckpt.ErrCorrupt), errors.Is(err, ckpt.ErrNoValidCheckpoint):
		return exitCorrupt
	}
	return exitError
}

// hintFor returns what the user can do about err: the first hint attached
// with withHint, else one for the error's class, else "".
func hintFor(err error) string {
	var ee *codedError
	for e := err; errors.As(e, &ee); e = ee.err {
		if ee.hint != "" {
			return ee.hint
		}
	}
	var le *store.LockedError
	switch {
	case errors.As(err, &le):
		return "wait for that process to finish or stop it, then retry"
	case errors.Is(err, ckpt.ErrInterrupted):
		return "run the same command again to resume"
	case errors.Is(err, ckpt.ErrNoValidCheckpoint):
		return "check the store, restore it from a backup, or start over (--restart for convert and aggregate, or ckpt checkpoints delete --all)"
	case errors.Is(err, ckpt.ErrCorrupt):
		return "run `ckpt checkpoints verify` to check every checkpoint"
	}
	return ""
}

// wantsUsage reports whether the command's usage line should follow err.
func wantsUsage(err error) bool {
	var ee *codedError
	for e := err; errors.As(e, &ee); e = ee.err {
		if ee.usage {
			return true
		}
	}
	return false
}

// errorLine renders err as the one line ckpt prints on stderr:
// "ckpt: what happened; what to do".
func errorLine(err error) string {
	msg := errorText(err)
	if h := hintFor(err); h != "" {
		// The hint says what to do in ckpt's own terms (flags, not
		// library options): the library's advice would say it twice.
		msg = libraryAdvice.ReplaceAllString(msg, "")
		msg += "; " + h
	}
	return "ckpt: " + msg
}

// libraryAdvice matches the library's advice in a message, in terms of its
// API ("restart the job", "the bad-record policy"), which a hint of
// ckpt's replaces.
var libraryAdvice = regexp.MustCompile(`;? ?\((restart the job|set the bad-record policy)[^)]*\)|; check the store, or restart the job to discard them`)
