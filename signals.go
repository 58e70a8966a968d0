package ckpt

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// watchSignals makes the first SIGINT or SIGTERM call first, and the
// second one end the process at once, however soon it follows. It returns
// the function that stops watching.
//
// A process started with SIGINT ignored (nohup, or a background job of a
// shell without job control) keeps ignoring it, as such a process is
// meant to: listening would turn the terminal's Ctrl-C into a shutdown of
// jobs the user put out of its reach. SIGTERM still stops it.
//
// The second signal is caught rather than left to the default action,
// because the first may not have been seen yet when it arrives (both can
// be queued for this handler), and because another package may also be
// listening for it, which would keep the default action from ever
// applying.
func watchSignals(log *slog.Logger, job string, first func()) (stop func()) {
	sigs := []os.Signal{syscall.SIGTERM}
	if !signal.Ignored(os.Interrupt) {
		sigs = append(sigs, os.Interrupt)
	}
	// Room for both signals: one delivered while the channel is full
	// would be lost.
	ch := make(chan os.Signal, 2)
	done := make(chan struct{})
	signal.Notify(ch, sigs...)
	go func() {
		select {
		case sig := <-ch:
			log.Info("ckpt: signal received; checkpointing before exit (signal again to exit at once)", "job", job, "signal", sig.String())
			first()
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
		// A signal that arrives after the job is closed gets the default
		// action (unless someone else listens for it).
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
