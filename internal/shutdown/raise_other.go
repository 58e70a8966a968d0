//go:build !linux

package shutdown

import "syscall"

// raise does nothing where a thread cannot be sent a signal portably; the
// caller then exits with the status a shell reports for the signal.
func raise(syscall.Signal) {}
