package ui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/ckptdev/ckpt/asset"
	"github.com/ckptdev/ckpt/asset/eventlog"
)

// RunRow is one line of the runs page.
type RunRow struct {
	eventlog.Run
	State    string
	Duration time.Duration
}

// runState is a run's state for people: "running" or "dead" for a run
// that has not ended, as its liveness says.
func runState(r eventlog.Run, alive bool) string {
	if r.Status == eventlog.RunStarted {
		if alive {
			return "running"
		}
		return "dead"
	}
	return string(r.Status)
}

var runStates = []string{"running", "dead", "success", "failure", "canceled"}

type runsData struct {
	Rows   []RunRow
	Status string
	Limit  int
	States []string
	More   bool
}

func (s *Server) runsPage(w http.ResponseWriter, r *http.Request) error {
	if err := s.needAssets(); err != nil {
		return err
	}
	q := r.URL.Query()
	d := runsData{Status: q.Get("status"), Limit: 50, States: runStates}
	if l, err := strconv.Atoi(q.Get("limit")); err == nil && l > 0 {
		d.Limit = min(l, 1000)
	}
	f := eventlog.RunFilter{Limit: d.Limit + 1}
	switch d.Status {
	case "":
	case "running", "dead":
		// The log knows only "started"; live or dead is judged here, so
		// the limit applies after.
		f.Status, f.Limit = []eventlog.RunStatus{eventlog.RunStarted}, 0
	case "success", "failure", "canceled":
		f.Status = []eventlog.RunStatus{eventlog.RunStatus(d.Status)}
	default:
		return badRequest("status %q: use one of running, dead, success, failure, canceled", d.Status)
	}
	runs, err := s.o.Assets.EventLog().Runs(r.Context(), f)
	if err != nil {
		return err
	}
	lv := s.o.Assets.Liveness()
	for _, run := range runs {
		st := runState(run, run.Alive(lv))
		if (d.Status == "running" || d.Status == "dead") && st != d.Status {
			continue
		}
		if len(d.Rows) == d.Limit {
			d.More = true
			break
		}
		end := run.Ended
		if end.IsZero() {
			end = run.Heartbeat
		}
		d.Rows = append(d.Rows, RunRow{Run: run, State: st, Duration: end.Sub(run.Created)})
	}
	return s.render(w, r, "runs", "Runs", "runs", d)
}

// bar is one step of a run's timeline.
type bar struct {
	Key, Partition string
	Outcome        asset.Outcome
	X, W           float64 // percent of the timeline
	Y              int
	Start          time.Time
	Took           time.Duration
	Attempts       int
	Error          string
	Retries        []retryMark
	Open           bool // started and not ended
}

type retryMark struct {
	X      float64
	Y1, Y2 int
	Title  string
}

// gantt is a run's timeline: a bar per step, from its start to its end.
type gantt struct {
	Bars   []bar
	H      int
	Span   time.Duration
	Hidden int // steps beyond maxBars
	Ticks  []tick
}

type tick struct {
	X     float64
	Label string
}

const maxBars, barH = 1000, 18

// makeGantt builds the timeline of run from its events, oldest first.
func makeGantt(run eventlog.Run, alive bool, evs []eventlog.Event, now time.Time) *gantt {
	t0 := run.Created
	t1 := run.Ended
	if t1.IsZero() {
		// Running: up to now. Dead: up to its last sign of life.
		t1 = now
		if !alive && !run.Heartbeat.IsZero() {
			t1 = run.Heartbeat
		}
	}
	for _, e := range evs {
		if e.Time.After(t1) {
			t1 = e.Time
		}
	}
	span := t1.Sub(t0)
	if span <= 0 {
		span = time.Millisecond
	}
	pct := func(t time.Time) float64 {
		return min(max(float64(t.Sub(t0))/float64(span)*100, 0), 100)
	}
	g := &gantt{Span: span}
	idx := map[string]int{}
	for _, e := range evs {
		if e.Key == "" {
			continue
		}
		k := e.Key + "\x00" + e.Partition
		i, ok := idx[k]
		if !ok {
			if len(g.Bars) == maxBars {
				g.Hidden++
				idx[k] = -1
				continue
			}
			i = len(g.Bars)
			idx[k] = i
			g.Bars = append(g.Bars, bar{Key: e.Key, Partition: e.Partition, Start: e.Time, Open: true, Outcome: asset.OutcomeInterrupted})
		}
		if i < 0 {
			continue
		}
		b := &g.Bars[i]
		switch e.Kind {
		case eventlog.KindStepStart:
			if e.Time.Before(b.Start) {
				b.Start = e.Time
			}
		case eventlog.KindStepRetry:
			b.Retries = append(b.Retries, retryMark{X: pct(e.Time), Title: fmt.Sprintf("attempt %d failed: %s", e.Attempt, firstLine(e.Error))})
			b.Attempts = e.Attempt + 1
		default:
			if o := e.Kind.Outcome(); o != "" {
				b.Outcome, b.Open = o, false
				b.Took = e.Time.Sub(b.Start)
				if e.Error != "" {
					b.Error = e.Error
				} else if e.Message != "" && e.Kind == eventlog.KindStepSkipped {
					b.Error = e.Message
				}
				if m := e.Materialization; m != nil && m.Attempt > 0 {
					b.Attempts = m.Attempt
				} else if e.Attempt > 0 {
					b.Attempts = e.Attempt
				}
			}
		}
	}
	for i := range g.Bars {
		b := &g.Bars[i]
		end := t1
		if !b.Open {
			end = b.Start.Add(b.Took)
		} else {
			b.Took = end.Sub(b.Start)
		}
		b.X = pct(b.Start)
		b.W = max(pct(end)-b.X, 0.2)
		b.Y = i * barH
		for k := range b.Retries {
			b.Retries[k].Y1, b.Retries[k].Y2 = b.Y-1, b.Y+15
		}
	}
	g.H = max(len(g.Bars), 1) * barH
	for i := 0; i <= 4; i++ {
		g.Ticks = append(g.Ticks, tick{X: float64(i) * 25, Label: "+" + dur(span*time.Duration(i)/4)})
	}
	g.Ticks[0].Label = "0"
	return g
}

type runData struct {
	*asset.RunDetails
	State      string
	Gantt      *gantt
	Counts     []outcomeCount
	CanResume  bool
	CanCancel  bool
	ResumeNote string
}

type outcomeCount struct {
	Outcome asset.Outcome
	N       int
}

func (s *Server) runPage(w http.ResponseWriter, r *http.Request) error {
	if err := s.needAssets(); err != nil {
		return err
	}
	ctx := r.Context()
	in := s.o.Assets
	d, err := in.RunDetails(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	evs, err := in.EventLog().Events(ctx, eventlog.EventFilter{Runs: []string{d.ID}})
	if err != nil {
		return err
	}
	rd := &runData{RunDetails: d, State: runState(d.Run, d.Alive), Gantt: makeGantt(d.Run, d.Alive, evs, time.Now())}
	for _, o := range []asset.Outcome{asset.OutcomeMaterialized, asset.OutcomeReused, asset.OutcomeFresh, asset.OutcomeFailed, asset.OutcomeSkipped, asset.OutcomeCanceled, asset.OutcomeInterrupted} {
		if n := d.Steps.Count(o); n > 0 {
			rd.Counts = append(rd.Counts, outcomeCount{o, n})
		}
	}
	if s.o.AllowActions {
		switch {
		case !s.hasGr:
			rd.ResumeNote = "resuming needs the assets' code: use the program's own ui command"
		case d.Status == eventlog.RunSuccess, d.Alive, len(d.Children) > 0:
		default:
			rd.CanResume = true
		}
		rd.CanCancel = s.cancelable(d.ID, d.Parent) != nil
	}
	return s.render(w, r, "run", "Run "+d.ID, "runs", rd)
}

// activeRun is a resume this server started.
type activeRun struct {
	resumed string // the id given to Resume
	cancel  context.CancelFunc
	done    chan struct{}
}

// cancelable returns the active run that run id (whose parent is parent)
// is, or nil.
func (s *Server) cancelable(id, parent string) *activeRun {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.started[parent]; a != nil && parent != "" {
		return a
	}
	return s.started[id]
}

// resume starts a run that resumes run id, in this process, and goes back
// to the run's page, which lists the new run as "resumed by".
func (s *Server) resume(w http.ResponseWriter, r *http.Request) error {
	if !s.o.AllowActions {
		return forbidden("this UI is read-only: start it with --allow-actions to resume runs")
	}
	if err := s.checkPost(r); err != nil {
		return err
	}
	if !s.hasGr {
		return &httpError{http.StatusConflict, "resuming needs the assets' code: use the program's own ui command"}
	}
	id := r.PathValue("id")
	run, err := s.o.Assets.EventLog().Run(r.Context(), id)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if a := s.started[run.ID]; a != nil {
		s.mu.Unlock()
		return &httpError{http.StatusConflict, fmt.Sprintf("run %s is already being resumed here", run.ID)}
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &activeRun{resumed: run.ID, cancel: cancel, done: make(chan struct{})}
	s.started[run.ID] = a
	s.mu.Unlock()
	errc := make(chan error, 1)
	go func() {
		defer close(a.done)
		defer cancel()
		defer func() {
			s.mu.Lock()
			delete(s.started, run.ID)
			s.mu.Unlock()
		}()
		_, err := s.o.Assets.Resume(ctx, run.ID, asset.ResumeOptions{Progress: func(st asset.Step) {
			s.steps.Step(st.Key, string(st.Outcome), st.Duration)
		}})
		switch {
		case err == nil, errors.Is(err, asset.ErrRunFailed), errors.Is(err, asset.ErrRunCanceled):
			s.log.Info("ui: resumed run ended", "run", run.ID, "err", err)
		default:
			s.log.Warn("ui: resume failed", "run", run.ID, "err", err)
		}
		errc <- err
	}()
	// A resume refused at once (nothing to resume, still running) is
	// reported; one that started is followed on the run's page.
	select {
	case err := <-errc:
		if errors.Is(err, asset.ErrNothingToResume) || errors.Is(err, asset.ErrRunActive) {
			return &httpError{http.StatusConflict, err.Error()}
		}
	case <-time.After(300 * time.Millisecond):
	}
	http.Redirect(w, r, s.o.Prefix+"/runs/"+run.ID, http.StatusSeeOther)
	return nil
}

// cancel cancels a run that this server started (runs of other processes
// are stopped by signalling their process).
func (s *Server) cancel(w http.ResponseWriter, r *http.Request) error {
	if !s.o.AllowActions {
		return forbidden("this UI is read-only: start it with --allow-actions to cancel runs")
	}
	if err := s.checkPost(r); err != nil {
		return err
	}
	run, err := s.o.Assets.EventLog().Run(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	a := s.cancelable(run.ID, run.Parent)
	if a == nil {
		return &httpError{http.StatusConflict, fmt.Sprintf("run %s was not started by this UI: stop it with SIGINT or SIGTERM to its process (pid %d on %s)", run.ID, run.PID, run.Host)}
	}
	a.cancel()
	select {
	case <-a.done:
	case <-r.Context().Done():
	}
	http.Redirect(w, r, s.o.Prefix+"/runs/"+run.ID, http.StatusSeeOther)
	return nil
}

// Close cancels the runs this server started and waits for them to end.
func (s *Server) Close() error {
	s.mu.Lock()
	var active []*activeRun
	for _, a := range s.started {
		active = append(active, a)
	}
	s.mu.Unlock()
	for _, a := range active {
		a.cancel()
		<-a.done
	}
	return nil
}
