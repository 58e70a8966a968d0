package ui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/store"
)

// JobState is what a job is doing, as far as its store tells.
type JobState string

// The job states.
const (
	// JobRunning: a process holds the job's lock.
	JobRunning JobState = "running"
	// JobFinished: its newest checkpoint is the final one.
	JobFinished JobState = "finished"
	// JobStopped: not running and not finished (it failed, or was
	// stopped): running it again resumes it.
	JobStopped JobState = "stopped"
	// JobInterrupted: stopped by a signal, after a shutdown checkpoint.
	JobInterrupted JobState = "interrupted"
	// JobDied: its process ended without closing the job (killed, or it
	// crashed); seen only for a process of this host.
	JobDied JobState = "died"
	// JobCorrupt: its newest manifest does not decode.
	JobCorrupt JobState = "corrupt"
)

// JobSummary is one line of the jobs page and of /api/jobs.
type JobSummary struct {
	Job         string    `json:"job"`
	State       JobState  `json:"state"`
	Holder      string    `json:"holder,omitempty"` // "pid 12 on host-a since ..." while running
	Checkpoints int       `json:"checkpoints"`
	Savepoints  int       `json:"savepoints"`
	NewestSeq   uint64    `json:"newest_seq"`
	NewestTime  time.Time `json:"newest_time,omitzero"`
	Trigger     string    `json:"trigger,omitempty"`
	Records     int64     `json:"records"`
	Bytes       int64     `json:"bytes"`
	Progress    float64   `json:"progress"`     // 0..1 of the input read; -1 when unknown
	Rate        float64   `json:"records_rate"` // records/s between the two newest checkpoints; 0 when unknown
	Error       string    `json:"error,omitempty"`
}

// lockRecord is what a local store's lock file says (the other stores
// keep their own form, read the same way where it matches).
type lockRecord struct {
	Holder   *store.Owner `json:"holder"`
	Released bool         `json:"released"`
}

// holder says who holds job's lock, "" if nobody seems to. The lock is
// not taken: the UI must never get in a job's way. A holder on this host
// whose process is gone is not a holder (the kernel released its lock):
// then died names it.
func holder(ctx context.Context, st store.Store, job string) (who, died string) {
	rc, err := st.Get(ctx, "jobs/"+job+"/LOCK")
	if err != nil {
		return "", ""
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 1<<16))
	if err != nil {
		return "", ""
	}
	var rec lockRecord
	if json.Unmarshal(b, &rec) != nil || rec.Holder == nil || rec.Released {
		return "", ""
	}
	if h, _ := os.Hostname(); rec.Holder.Host == h && rec.Holder.PID > 0 {
		if err := syscall.Kill(rec.Holder.PID, 0); errors.Is(err, syscall.ESRCH) {
			return "", rec.Holder.String()
		}
	}
	return rec.Holder.String(), ""
}

// sourceProgress reads the fraction of the input a checkpoint's source
// position has reached, from the file sizes it records; -1 if unknown.
func sourceProgress(raw json.RawMessage) float64 {
	var pos struct {
		File   int   `json:"file"`
		Offset int64 `json:"offset"`
		Files  []struct {
			Size int64 `json:"size"`
		} `json:"files"`
	}
	if len(raw) == 0 || json.Unmarshal(raw, &pos) != nil || len(pos.Files) == 0 {
		return -1
	}
	var done, total int64
	for i, f := range pos.Files {
		total += f.Size
		if i < pos.File {
			done += f.Size
		}
	}
	done += pos.Offset
	if total <= 0 {
		return -1
	}
	return min(float64(done)/float64(total), 1)
}

func summarize(ctx context.Context, st store.Store, job string, entries []ckpt.Entry) JobSummary {
	j := JobSummary{Job: job, Checkpoints: len(entries), Progress: -1, State: JobStopped}
	var valid []*ckpt.Checkpoint
	for _, e := range entries {
		if e.Checkpoint != nil {
			valid = append(valid, e.Checkpoint)
			if e.Checkpoint.Savepoint {
				j.Savepoints++
			}
		}
	}
	newest := entries[len(entries)-1]
	j.NewestSeq = newest.Seq
	if newest.Err != nil {
		j.State, j.Error = JobCorrupt, newest.Err.Error()
	}
	if n := len(valid); n > 0 {
		cp := valid[n-1]
		j.NewestTime, j.Trigger, j.Records, j.Bytes = cp.Time, cp.Trigger.String(), cp.Records, cp.Bytes
		j.Progress = sourceProgress(cp.Source)
		switch {
		case cp.Final:
			j.State, j.Progress = JobFinished, 1
		case cp.Trigger == ckpt.TriggerShutdown:
			j.State = JobInterrupted
		}
		if n > 1 {
			prev := valid[n-2]
			if dt := cp.Time.Sub(prev.Time).Seconds(); dt > 0 && cp.Records >= prev.Records {
				j.Rate = float64(cp.Records-prev.Records) / dt
			}
		}
	}
	switch h, died := holder(ctx, st, job); {
	case h != "":
		j.State, j.Holder = JobRunning, h
	case died != "" && j.State != JobFinished:
		j.State, j.Holder = JobDied, died
	}
	return j
}

func (s *Server) needStore() error {
	if s.o.Store == nil {
		return notFound("this UI shows no checkpoint store (start it with --store)")
	}
	return nil
}

func (s *Server) jobs(ctx context.Context) ([]JobSummary, error) {
	if err := s.needStore(); err != nil {
		return nil, err
	}
	names, err := ckpt.Jobs(ctx, s.o.Store)
	if err != nil {
		return nil, err
	}
	out := make([]JobSummary, 0, len(names))
	for _, job := range names {
		entries, err := ckpt.List(ctx, s.o.Store, job)
		if err != nil {
			return nil, err
		}
		if len(entries) == 0 {
			continue
		}
		out = append(out, summarize(ctx, s.o.Store, job, entries))
	}
	return out, nil
}

func (s *Server) jobsPage(w http.ResponseWriter, r *http.Request) error {
	jobs, err := s.jobs(r.Context())
	if err != nil {
		return err
	}
	return s.render(w, r, "jobs", "Jobs", "jobs", jobs)
}

func (s *Server) jobsAPI(w http.ResponseWriter, r *http.Request) error {
	jobs, err := s.jobs(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, jobs)
	return nil
}

// CheckpointRow is one checkpoint of a job's history.
type CheckpointRow struct {
	Seq       uint64          `json:"seq"`
	Time      time.Time       `json:"time,omitzero"`
	Trigger   string          `json:"trigger,omitempty"`
	Interval  time.Duration   `json:"interval_ns,omitempty"` // since the previous checkpoint
	Duration  time.Duration   `json:"duration_ns,omitempty"` // taking it, flush to commit (0: not recorded)
	Written   int64           `json:"written_bytes"`         // bytes of state not in the previous checkpoint
	FullSize  int64           `json:"full_size_bytes"`
	RawSize   int64           `json:"raw_size_bytes"`
	Records   int64           `json:"records"`
	Bytes     int64           `json:"bytes"`
	Savepoint bool            `json:"savepoint,omitempty"`
	Label     string          `json:"label,omitempty"`
	Final     bool            `json:"final,omitempty"`
	Writer    string          `json:"writer,omitempty"`
	Error     string          `json:"error,omitempty"`
	Source    json.RawMessage `json:"source,omitempty"`
}

// JobDetail is the job page's data and /api/jobs/{job}.
type JobDetail struct {
	JobSummary
	History []CheckpointRow `json:"history"` // oldest first
	Chart   *chart          `json:"-"`
}

func (s *Server) job(ctx context.Context, job string) (*JobDetail, error) {
	if err := s.needStore(); err != nil {
		return nil, err
	}
	if err := ckpt.ValidJobName(job); err != nil {
		return nil, badRequest("%v", err)
	}
	entries, err := ckpt.List(ctx, s.o.Store, job)
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, notFound("the store has no job %q", job)
	}
	d := &JobDetail{JobSummary: summarize(ctx, s.o.Store, job, entries)}
	var prev *ckpt.Checkpoint
	for _, e := range entries {
		row := CheckpointRow{Seq: e.Seq}
		cp := e.Checkpoint
		if cp == nil {
			row.Error = e.Err.Error()
			d.History = append(d.History, row)
			continue
		}
		row.Time, row.Trigger, row.FullSize, row.RawSize = cp.Time, cp.Trigger.String(), cp.StoredSize(), cp.RawSize()
		row.Records, row.Bytes, row.Savepoint, row.Label, row.Final = cp.Records, cp.Bytes, cp.Savepoint, cp.Label, cp.Final
		row.Writer, row.Source, row.Duration = cp.Writer.String(), cp.Source, cp.Duration
		had := map[string]bool{}
		if prev != nil {
			row.Interval = cp.Time.Sub(prev.Time)
			for _, st := range prev.State {
				for _, c := range st.Chunks {
					had[c.ID] = true
				}
			}
		}
		for _, st := range cp.State {
			for _, c := range st.Chunks {
				if !had[c.ID] {
					row.Written += c.Stored
				}
			}
		}
		d.History = append(d.History, row)
		prev = cp
	}
	d.Chart = sizeChart(d.History)
	return d, nil
}

func (s *Server) jobPage(w http.ResponseWriter, r *http.Request) error {
	d, err := s.job(r.Context(), r.PathValue("job"))
	if err != nil {
		return err
	}
	return s.render(w, r, "job", "Job "+d.Job, "jobs", d)
}

func (s *Server) jobAPI(w http.ResponseWriter, r *http.Request) error {
	d, err := s.job(r.Context(), r.PathValue("job"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

// verify checks every checksum of one checkpoint, on demand. It reads
// and changes nothing else, but reads the whole state: it is a POST from
// the UI's own pages, so that no other site can make the server do it.
func (s *Server) verify(w http.ResponseWriter, r *http.Request) error {
	if err := s.needStore(); err != nil {
		return err
	}
	if err := s.checkSameSite(r); err != nil {
		return err
	}
	job := r.PathValue("job")
	seq, err := strconv.ParseUint(r.FormValue("seq"), 10, 64)
	if err != nil || seq == 0 {
		return badRequest("seq %q is not a checkpoint sequence number", r.FormValue("seq"))
	}
	if err := ckpt.ValidJobName(job); err != nil {
		return badRequest("%v", err)
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	cp, err := ckpt.Get(ctx, s.o.Store, job, seq)
	if err == nil {
		err = ckpt.Verify(ctx, s.o.Store, cp)
	}
	res := map[string]any{"job": job, "seq": seq, "ok": err == nil, "took": dur(time.Since(start))}
	switch {
	case err == nil:
		res["message"] = "every checksum verifies"
	case errors.Is(err, ckpt.ErrCorrupt):
		res["message"] = "corrupt: " + err.Error()
	case errors.Is(err, ckpt.ErrNotFound), errors.Is(err, store.ErrNotFound):
		return notFound("job %q has no checkpoint %d (removed by retention?)", job, seq)
	default:
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// checkSameSite refuses requests that browsers mark as coming from
// another site; read-only requests that cost work (verification) use it.
func (s *Server) checkSameSite(r *http.Request) error {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return nil
	}
	return forbidden("refused: a request from another site")
}

// deleteCheckpoint removes one checkpoint of a job (and the blobs only it
// used), as `ckpt checkpoints delete` does: it takes the job's lock, so it
// is refused while the job runs.
func (s *Server) deleteCheckpoint(w http.ResponseWriter, r *http.Request) error {
	if err := s.needStore(); err != nil {
		return err
	}
	if !s.o.AllowActions {
		return forbidden("this UI is read-only: start it with --allow-actions to delete checkpoints")
	}
	if err := s.checkPost(r); err != nil {
		return err
	}
	job := r.PathValue("job")
	if err := ckpt.ValidJobName(job); err != nil {
		return badRequest("%v", err)
	}
	seq, err := strconv.ParseUint(r.FormValue("seq"), 10, 64)
	if err != nil || seq == 0 {
		return badRequest("seq %q is not a checkpoint sequence number", r.FormValue("seq"))
	}
	err = ckpt.Delete(r.Context(), s.o.Store, job, seq, ckpt.AdminOptions{Logger: s.log})
	switch {
	case errors.Is(err, ckpt.ErrLocked):
		return &httpError{http.StatusConflict, fmt.Sprintf("job %q is running: its checkpoints are deleted once it has stopped (%v)", job, err)}
	case err != nil:
		return err
	}
	s.log.Info("ui: checkpoint deleted", "job", job, "seq", seq)
	http.Redirect(w, r, s.o.Prefix+"/jobs/"+url.PathEscape(job), http.StatusSeeOther)
	return nil
}
