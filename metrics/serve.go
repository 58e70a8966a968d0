package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Server serves /metrics on an address of its own, for a command that
// runs a job (`--metrics-listen ADDR`).
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan error
}

// Listen starts serving the metrics of g (prometheus.DefaultGatherer
// when nil) at http://addr/metrics. An addr with port 0 takes a free
// port; Addr says which.
func Listen(addr string, g prometheus.Gatherer) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", Handler(g))
	s := &Server{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, ln: ln, done: make(chan error, 1)}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// Addr returns the address served, as host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops serving, letting a scrape in flight finish until ctx ends.
func (s *Server) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if serr := <-s.done; err == nil && !errors.Is(serr, http.ErrServerClosed) {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("metrics: stop serving: %w", err)
	}
	return nil
}
