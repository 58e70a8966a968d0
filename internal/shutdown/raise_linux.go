package shutdown

import (
	"runtime"
	"syscall"
)

// raise sends sig to the calling thread, which takes it before the system
// call returns: the process ends here, not at some later instant.
func raise(sig syscall.Signal) {
	runtime.LockOSThread()
	syscall.Tgkill(syscall.Getpid(), syscall.Gettid(), sig)
}
