package ui

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// DefaultListen is the address the ui commands listen on: loopback only,
// so that nobody but this machine's users can read the pages.
const DefaultListen = "127.0.0.1:8321"

// Listen opens addr for the UI. It reports whether the address is
// loopback only; anything else (0.0.0.0, a host's address) exposes the
// pages, and the actions if allowed, to whoever can reach it, which the
// commands say in a warning.
func Listen(addr string) (net.Listener, bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, false, fmt.Errorf("ui: listen address %q: %w (use host:port, as %s)", addr, err, DefaultListen)
	}
	loopback := host == "localhost"
	if ip := net.ParseIP(host); ip != nil {
		loopback = ip.IsLoopback()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, false, fmt.Errorf("ui: %w", err)
	}
	return ln, loopback, nil
}

// Serve serves h on ln until ctx is done, then shuts the server down,
// giving requests in flight five seconds to finish.
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("ui: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("ui: shut down: %w", err)
	}
	return nil
}
