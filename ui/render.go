package ui

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/asset/eventlog"
	"github.com/ckptdev/ckpt/internal/progress"
)

// pageNames are the templates of templates/, one per page; each defines
// "title" and "main" and is rendered inside layout.html.
var pageNames = []string{"jobs", "job", "assets", "asset", "runs", "run", "error"}

func (s *Server) parse() error {
	s.pages = map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(s.funcs()).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return fmt.Errorf("ui: template %s: %w", name, err)
		}
		s.pages[name] = t
	}
	return nil
}

func (s *Server) funcs() template.FuncMap {
	return template.FuncMap{
		"url": func(parts ...string) string { return s.o.Prefix + strings.Join(parts, "") },
		"q":   url.QueryEscape,
		"p":   url.PathEscape,
		"bytes": func(n int64) string {
			return progress.Bytes(n)
		},
		"time": func(t time.Time) string {
			if t.IsZero() {
				return "-"
			}
			return t.UTC().Format("2006-01-02 15:04:05Z")
		},
		"age":  age,
		"dur":  dur,
		"pct":  func(f float64) string { return fmt.Sprintf("%.1f%%", f*100) },
		"json": func(b json.RawMessage) string { return string(b) },
		"first": func(s string) string {
			l, _, _ := strings.Cut(s, "\n")
			return l
		},
		"rev": func(rows []CheckpointRow) []CheckpointRow {
			out := make([]CheckpointRow, len(rows))
			for i, r := range rows {
				out[len(rows)-1-i] = r
			}
			return out
		},
		"f": func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) },
		"rate": func(v float64) string {
			if v <= 0 {
				return "-"
			}
			return strconv.FormatFloat(v, 'f', 0, 64) + "/s"
		},
		"short": func(s string) string {
			if len(s) > 12 {
				return s[:12]
			}
			return s
		},
	}
}

// age is how long ago t was, for people.
func age(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm ago", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// dur renders a duration rounded for people.
func dur(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// page is what every template gets: the page's own data and the server's.
type page struct {
	Title      string
	Nav        string // the section, for the menu
	StoreName  string
	EventsName string
	HasStore   bool
	HasAssets  bool
	HasGraph   bool
	Actions    bool
	Token      string
	Refresh    int64 // milliseconds
	Prefix     string
	Data       any
}

// render writes page name. A request with the header X-CKPT-Fragment
// (the live refresh of ui.js) gets the "live" part of the page only.
func (s *Server) render(w http.ResponseWriter, r *http.Request, name, title, nav string, data any) error {
	p := page{
		Title: title, Nav: nav, StoreName: s.o.StoreName, EventsName: s.o.EventsName,
		HasStore: s.o.Store != nil, HasAssets: s.o.Assets != nil, HasGraph: s.hasGr,
		Actions: s.o.AllowActions, Refresh: s.o.Refresh.Milliseconds(), Prefix: s.o.Prefix, Data: data,
	}
	if s.o.AllowActions {
		p.Token = s.token
	}
	tmpl := "layout.html"
	if r.Header.Get("X-CKPT-Fragment") != "" {
		tmpl = "live"
	}
	var buf bytes.Buffer
	if err := s.pages[name].ExecuteTemplate(&buf, tmpl, p); err != nil {
		return fmt.Errorf("ui: render %s: %w", name, err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, err := w.Write(buf.Bytes())
	return err
}

// httpError is an error with the status it answers.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func notFound(format string, args ...any) error {
	return &httpError{http.StatusNotFound, fmt.Sprintf(format, args...)}
}

func forbidden(format string, args ...any) error {
	return &httpError{http.StatusForbidden, fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// fail answers err as an error page (or JSON for the API and actions).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	var he *httpError
	switch {
	case errors.As(err, &he):
		status = he.status
	case errors.Is(err, ckpt.ErrNotFound), errors.Is(err, eventlog.ErrNotFound):
		status = http.StatusNotFound
	}
	if status == http.StatusInternalServerError {
		s.log.Error("ui: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if r.Method != http.MethodGet || strings.HasPrefix(r.URL.Path, s.o.Prefix+"/api/") || r.Header.Get("Accept") == "application/json" {
		writeJSON(w, status, map[string]string{"error": err.Error()})
		return
	}
	w.WriteHeader(status)
	if rerr := s.render(w, r, "error", http.StatusText(status), "", map[string]any{"Status": status, "Message": err.Error()}); rerr != nil {
		s.log.Error("ui: render error page", "err", rerr)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// checkPost refuses a POST that does not come from the UI's own pages:
// browsers send Sec-Fetch-Site (or at least Origin) with every POST, and
// a page of another site cannot read the token that the UI's pages carry.
func (s *Server) checkPost(r *http.Request) error {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return forbidden("refused: a request from another site (Sec-Fetch-Site: %s)", r.Header.Get("Sec-Fetch-Site"))
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return forbidden("refused: a request from another origin (%s)", o)
		}
	}
	tok := r.Header.Get("X-CKPT-Token")
	if tok == "" {
		tok = r.PostFormValue("token")
	}
	if subtle.ConstantTimeCompare([]byte(tok), []byte(s.token)) != 1 {
		return forbidden("refused: the request does not carry this server's token; reload the page and try again")
	}
	return nil
}
