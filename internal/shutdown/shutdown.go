// Package shutdown handles SIGINT and SIGTERM as every ckpt program
// should: the first asks for a clean stop, the second ends the process at
// once, however soon it follows the first.
package shutdown

import (
	"os"
	"os/signal"
	"syscall"
)

// Watch calls first, from another goroutine, on the first SIGINT or
// SIGTERM, and ends the process at once on the second (killed by that
// signal). It returns the function that stops watching; a signal after
// that gets the default action, unless something else listens for it.
//
// A process started with SIGINT ignored (a background job of a shell
// without job control) handles it too. Where it was ignored, the second
// signal ends the process with exit code 128+SIGINT, since re-raising an
// ignored signal does nothing.
//
// The second signal is caught rather than left to the default action,
// because the first may not have been handled yet when it arrives (both
// can be queued here), and because another package may also be listening
// for it, which would keep the default action from ever applying.
func Watch(first func(os.Signal)) (stop func()) {
	// SIGINT is handled even where the process started with it ignored,
	// as a script's background job does: scripts stop such jobs with
	// kill -INT, and expect the checkpoint a Ctrl-C takes.
	sigs := []os.Signal{os.Interrupt, syscall.SIGTERM}
	// Room for both signals: one delivered while the channel is full
	// would be lost.
	ch := make(chan os.Signal, 2)
	done := make(chan struct{})
	signal.Notify(ch, sigs...)
	go func() {
		select {
		case sig := <-ch:
			first(sig)
		case <-done:
			return
		}
		select {
		case sig := <-ch:
			exitBySignal(sig)
		case <-done:
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}

// exitBySignal ends the process as sig's default action does, so that the
// parent sees death by that signal (a shell reports 130 for SIGINT).
func exitBySignal(sig os.Signal) {
	// No handler may keep the signal from its default action now.
	signal.Reset(sig)
	n := 1
	if s, ok := sig.(syscall.Signal); ok {
		n = int(s)
		raise(s)
	}
	// The signal did not end the process: end it as a shell would report
	// it.
	os.Exit(128 + n)
}
