package ui_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/ui"
)

// Every page answers, with what it is about.
func TestPages(t *testing.T) {
	f := newFixture(t, ui.Options{Prefix: "/ckpt"})
	for _, c := range []struct{ path, want string }{
		{"/ckpt/jobs", "orders-convert"},
		{"/ckpt/jobs/orders-convert", "final"},
		{"/ckpt/jobs/stopped-job", "stopped"},
		{"/ckpt/assets", `data-key="report"`},
		{"/ckpt/asset?key=events", `data-state="failed"`},
		{"/ckpt/asset?key=clean", "note"},
		{"/ckpt/runs", f.runID},
		{"/ckpt/runs?status=failure", f.runID},
		{"/ckpt/runs/" + f.runID, "first attempt fails"},
		{"/ckpt/static/ui.js", "X-CKPT-Fragment"},
	} {
		if body := f.get(t, c.path, http.StatusOK); !strings.Contains(body, c.want) {
			t.Errorf("GET %s: no %q in the page", c.path, c.want)
		}
	}
	if body := f.get(t, "/ckpt/runs?status=success", http.StatusOK); strings.Contains(body, f.runID) {
		t.Errorf("runs filtered by success show the failed run %s", f.runID)
	}
	f.get(t, "/ckpt/jobs/nope", http.StatusNotFound)
	f.get(t, "/ckpt/asset?key=nope", http.StatusNotFound)
	f.get(t, "/ckpt/runs/nope", http.StatusNotFound)
	f.get(t, "/jobs", http.StatusNotFound) // outside the prefix
	var jobs []ui.JobSummary
	if err := json.Unmarshal([]byte(f.get(t, "/ckpt/api/jobs", http.StatusOK)), &jobs); err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 || jobs[0].State != ui.JobFinished || jobs[1].State != ui.JobStopped || jobs[0].NewestSeq != 3 {
		t.Errorf("api/jobs: %+v, want orders-convert finished at 3 and stopped-job stopped", jobs)
	}
}

// Markup in everything a user named is escaped on every page.
func TestEscapesMarkup(t *testing.T) {
	f := newFixture(t, ui.Options{})
	for _, path := range []string{"/assets", "/asset?key=orders", "/asset?key=clean", "/asset?key=events", "/runs/" + f.runID} {
		body := f.get(t, path, http.StatusOK)
		if strings.Contains(body, "<script>window") || strings.Contains(body, "<img src=x") || strings.Contains(body, "<b>bold</b>") {
			t.Errorf("GET %s: markup of the user's went through unescaped", path)
		}
		if !strings.Contains(body, "&lt;") {
			t.Errorf("GET %s: the escaped markup is not shown at all", path)
		}
	}
}

// Read-only by default: actions are refused, and the pages offer none.
func TestReadOnly(t *testing.T) {
	f := newFixture(t, ui.Options{})
	body := f.get(t, "/runs/"+f.runID, http.StatusOK)
	if strings.Contains(body, "/resume") || strings.Contains(body, f.srv.Token()) {
		t.Error("a read-only UI offers resume or shows its token")
	}
	status, _ := f.post(t, "/runs/"+f.runID+"/resume", map[string]string{"token": f.srv.Token()}, nil)
	if status != http.StatusForbidden {
		t.Errorf("resume on a read-only UI: %d, want 403", status)
	}
}

// With actions allowed, a request without the token, or from another
// site, is refused; one from the UI's own page resumes the run.
func TestActionsNeedTokenAndSameOrigin(t *testing.T) {
	f := newFixture(t, ui.Options{AllowActions: true})
	body := f.get(t, "/runs/"+f.runID, http.StatusOK)
	if !strings.Contains(body, `name="token" value="`+f.srv.Token()+`"`) {
		t.Fatal("the run page has no resume form carrying the token")
	}
	path := "/runs/" + f.runID + "/resume"
	for _, c := range []struct {
		name   string
		form   map[string]string
		header map[string]string
	}{
		{"no token", nil, nil},
		{"wrong token", map[string]string{"token": "x"}, nil},
		{"cross-site", map[string]string{"token": f.srv.Token()}, map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{"other origin", map[string]string{"token": f.srv.Token()}, map[string]string{"Origin": "http://evil.example"}},
	} {
		if status, _ := f.post(t, path, c.form, c.header); status != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", c.name, status)
		}
	}
	status, msg := f.post(t, path, map[string]string{"token": f.srv.Token()}, map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": f.http.URL})
	if status != http.StatusSeeOther {
		t.Fatalf("resume from the UI's page: %d %s, want 303", status, msg)
	}
	f.srv.Close() // waits for the resumed run
	d, err := f.in.RunDetails(t.Context(), f.runID)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Children) != 1 {
		t.Errorf("run %s has children %q after a resume, want one", f.runID, d.Children)
	}
	// The resumed run computed the failed partition again, and failed.
	if m := f.get(t, "/metrics", http.StatusOK); !strings.Contains(m, `ckpt_asset_materializations_total{asset="events",outcome="failed"} 1`) {
		t.Errorf("/metrics does not count the resumed run's failed step:\n%s", m)
	}
}

// Verification answers JSON for a good checkpoint and refuses other sites.
func TestVerify(t *testing.T) {
	f := newFixture(t, ui.Options{})
	status, body := f.post(t, "/jobs/orders-convert/verify", map[string]string{"seq": "3"}, nil)
	if status != http.StatusOK || !strings.Contains(body, `"ok": true`) {
		t.Errorf("verify: %d %s", status, body)
	}
	status, _ = f.post(t, "/jobs/orders-convert/verify", map[string]string{"seq": "3"}, map[string]string{"Sec-Fetch-Site": "cross-site"})
	if status != http.StatusForbidden {
		t.Errorf("cross-site verify: %d, want 403", status)
	}
	status, _ = f.post(t, "/jobs/orders-convert/verify", map[string]string{"seq": "99"}, nil)
	if status != http.StatusNotFound {
		t.Errorf("verify of a missing checkpoint: %d, want 404", status)
	}
}

// Deleting a checkpoint: refused read-only, without the token, and while
// the job runs; done otherwise.
func TestDeleteCheckpoint(t *testing.T) {
	ro := newFixture(t, ui.Options{})
	if body := ro.get(t, "/jobs/stopped-job", http.StatusOK); strings.Contains(body, "/delete") {
		t.Error("a read-only UI offers to delete checkpoints")
	}
	if status, _ := ro.post(t, "/jobs/stopped-job/delete", map[string]string{"seq": "1", "token": ro.srv.Token()}, nil); status != http.StatusForbidden {
		t.Errorf("delete on a read-only UI: %d, want 403", status)
	}

	f := newFixture(t, ui.Options{AllowActions: true})
	if status, _ := f.post(t, "/jobs/stopped-job/delete", map[string]string{"seq": "1"}, nil); status != http.StatusForbidden {
		t.Errorf("delete without the token: %d, want 403", status)
	}
	j, err := ckpt.Open[map[string]int](t.Context(), "stopped-job", ckpt.Config{Backend: f.st, NoSignals: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if status, body := f.post(t, "/jobs/stopped-job/delete", map[string]string{"seq": "1", "token": f.srv.Token()}, nil); status != http.StatusConflict {
		t.Errorf("delete while the job runs: %d %s, want 409", status, body)
	}
	j.Close()
	if status, body := f.post(t, "/jobs/stopped-job/delete", map[string]string{"seq": "1", "token": f.srv.Token()}, nil); status != http.StatusSeeOther {
		t.Fatalf("delete: %d %s, want 303", status, body)
	}
	entries, err := ckpt.List(t.Context(), f.st, "stopped-job")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Seq != 2 {
		t.Errorf("after deleting checkpoint 1 the job keeps %v, want only 2", entries)
	}
}
