// Package ui is ckpt's web UI: the jobs of a checkpoint store with their
// checkpoint history, and the assets and runs of an asset event log, as an
// http.Handler to serve alone (`ckpt ui`, `prog ui`) or to mount in a
// program's own server.
//
// Pages are rendered on the server with html/template, so everything a
// user named (job names, asset keys, metadata, error messages) is
// escaped; a little JavaScript, embedded with the templates, refreshes
// the live parts of a page every couple of seconds and asks for a
// checkpoint's verification. Nothing needs to be built besides the Go
// program.
//
// The handler is read-only unless Options.AllowActions is set. Actions
// (resuming and canceling runs) are then POST requests that must carry
// the server's token and come from the UI's own origin.
package ui

import (
	"crypto/rand"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ckptdev/ckpt/asset"
	"github.com/ckptdev/ckpt/metrics"
	"github.com/ckptdev/ckpt/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configure the handler. Store or Assets (or both) must be set.
type Options struct {
	// Store holds the checkpoints of the jobs shown; nil hides the jobs
	// pages. The handler does not close it.
	Store store.Store
	// StoreName is the store's address as shown on the pages; pass it
	// through store.Redact (Location.String does) so that no credential
	// shows. Empty shows nothing.
	StoreName string
	// Assets is the asset instance whose event log the assets and runs
	// pages read; nil hides them. With an empty graph (no code of the
	// assets, as `ckpt ui --events` has), the assets and their lineage
	// come from the event log alone and staleness is not known. The
	// handler does not close it.
	Assets *asset.Instance
	// EventsName is the event log's address as shown, redacted.
	EventsName string
	// Prefix is the path under which the handler is mounted, such as
	// "/ckpt" (no trailing slash); its links start with it. The handler
	// expects the full path, prefix included (do not strip it).
	Prefix string
	// AllowActions enables deleting checkpoints of jobs that are not
	// running, resuming runs (when the graph's code is there) and
	// canceling runs this handler started. Off, the UI is read-only.
	AllowActions bool
	// Refresh is how often live parts of a page are reloaded; zero means
	// 2s.
	Refresh time.Duration
	// Logger receives errors of requests; nil means slog.Default().
	Logger *slog.Logger
}

// Server is the UI's http.Handler.
type Server struct {
	o      Options
	log    *slog.Logger
	token  string // guards actions against cross-site requests
	mux    *http.ServeMux
	pages  map[string]*template.Template
	hasGr  bool // the asset graph's code is known
	static http.Handler

	steps *metrics.Assets // the steps of the runs resumed here

	mu      sync.Mutex
	started map[string]*activeRun // runs started here, by id
}

// New returns the UI handler.
func New(o Options) (*Server, error) {
	if o.Store == nil && o.Assets == nil {
		return nil, fmt.Errorf("ui: nothing to show: set Options.Store, Options.Assets or both")
	}
	o.Prefix = strings.TrimRight(o.Prefix, "/")
	if o.Prefix != "" && !strings.HasPrefix(o.Prefix, "/") {
		return nil, fmt.Errorf("ui: prefix %q must start with /", o.Prefix)
	}
	if o.Refresh <= 0 {
		o.Refresh = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		return nil, fmt.Errorf("ui: token: %w", err)
	}
	s := &Server{o: o, log: o.Logger, token: hex.EncodeToString(tok), mux: http.NewServeMux(), started: map[string]*activeRun{}, steps: metrics.NewAssets()}
	if o.Assets != nil {
		keys, err := o.Assets.Graph().Keys()
		if err != nil {
			return nil, fmt.Errorf("ui: %w", err)
		}
		s.hasGr = len(keys) > 0
	}
	if err := s.parse(); err != nil {
		return nil, err
	}
	sub, _ := fs.Sub(staticFS, "static")
	s.static = http.StripPrefix(o.Prefix+"/static/", http.FileServerFS(sub))
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	p := s.o.Prefix
	h := func(pattern string, fn func(http.ResponseWriter, *http.Request) error) {
		method, path, _ := strings.Cut(pattern, " ")
		s.mux.HandleFunc(method+" "+p+path, func(w http.ResponseWriter, r *http.Request) {
			if err := fn(w, r); err != nil {
				s.fail(w, r, err)
			}
		})
	}
	h("GET /{$}", s.home)
	h("GET /jobs", s.jobsPage)
	h("GET /jobs/{job}", s.jobPage)
	h("POST /jobs/{job}/verify", s.verify)
	h("POST /jobs/{job}/delete", s.deleteCheckpoint)
	h("GET /api/jobs", s.jobsAPI)
	h("GET /api/jobs/{job}", s.jobAPI)
	h("GET /assets", s.assetsPage)
	h("GET /asset", s.assetPage)
	h("GET /runs", s.runsPage)
	h("GET /runs/{id}", s.runPage)
	h("POST /runs/{id}/resume", s.resume)
	h("POST /runs/{id}/cancel", s.cancel)
	s.mux.Handle("GET "+p+"/static/", s.static)
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.steps)
	if s.o.Store != nil {
		reg.MustRegister(metrics.NewStoreJobs(s.o.Store, 10*time.Second, s.log))
	}
	s.mux.Handle("GET "+p+"/metrics", metrics.Handler(reg))
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	// Nothing of the UI may be framed by another site, nor load scripts
	// from anywhere but itself.
	hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	s.mux.ServeHTTP(w, r)
}

// Token returns the per-server token that action requests carry (in the
// form field "token" or the header X-CKPT-Token). The pages embed it when
// actions are allowed.
func (s *Server) Token() string { return s.token }

// home goes to the jobs page, or to the assets page when there is no store.
func (s *Server) home(w http.ResponseWriter, r *http.Request) error {
	to := s.o.Prefix + "/jobs"
	if s.o.Store == nil {
		to = s.o.Prefix + "/assets"
	}
	http.Redirect(w, r, to, http.StatusFound)
	return nil
}
