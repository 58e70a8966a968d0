package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestJobsTable(t *testing.T) {
	dir, orders := ordersStore(t)
	events := writeJob(t, dir, "events", 10, stepCheckpoint, stepCheckpoint)

	r := ckptRun(t, nil, "jobs", "--store", dir).want(t, exitOK)
	rows := parseTable(t, r.stdout, "JOB", "CHECKPOINTS", "NEWEST", "TIME", "TRIGGER", "RECORDS", "LAG", "FLAGS")
	if len(rows) != 2 {
		t.Fatalf("want 2 jobs, sorted:\n%s", r.stdout)
	}
	want := []map[string]string{
		{"JOB": "events", "CHECKPOINTS": "2", "NEWEST": "2", "TRIGGER": "manual", "RECORDS": strconv.Itoa(2 * recordsPerStep), "LAG": "-", "FLAGS": "-"},
		{"JOB": "orders", "CHECKPOINTS": "5 (1 savepoint)", "NEWEST": "5", "TRIGGER": "final", "RECORDS": strconv.Itoa(5 * recordsPerStep), "LAG": "-", "FLAGS": "final"},
	}
	newest := []time.Time{events[1].Time, orders[4].Time}
	for i, row := range rows {
		for col, v := range want[i] {
			if row[col] != v {
				t.Errorf("job %s: %s = %q, want %q", want[i]["JOB"], col, row[col], v)
			}
		}
		if tm, err := time.Parse(time.RFC3339, row["TIME"]); err != nil || !tm.Equal(newest[i].Truncate(time.Second)) {
			t.Errorf("job %s: TIME %q, want %s", want[i]["JOB"], row["TIME"], newest[i])
		}
	}
}

func TestJobsJSON(t *testing.T) {
	dir, orders := ordersStore(t)
	r := ckptRun(t, nil, "jobs", "--store", dir, "--json").want(t, exitOK)
	var got []jobJSON
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("jobs --json: %v\n%s", err, r.stdout)
	}
	newest := orders[len(orders)-1]
	if len(got) != 1 || got[0].Job != "orders" || got[0].Checkpoints != 5 || got[0].Savepoints != 1 ||
		got[0].Newest.Seq != newest.Seq || !got[0].Newest.Final || got[0].Newest.StateStoredBytes != newest.StoredSize() {
		t.Errorf("jobs --json = %+v", got)
	}
}

func TestJobsEmptyStore(t *testing.T) {
	dir := t.TempDir()
	r := ckptRun(t, nil, "jobs", "--store", dir).want(t, exitOK)
	if !strings.Contains(r.stdout, "holds no jobs") {
		t.Errorf("jobs on an empty store printed %q", r.stdout)
	}
	r = ckptRun(t, nil, "jobs", "--store", dir, "--json").want(t, exitOK)
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("jobs --json on an empty store printed %q, want []", r.stdout)
	}
}

func TestJobsShowsACorruptNewestCheckpoint(t *testing.T) {
	dir, _ := ordersStore(t)
	flipByte(t, dir, manifestObject("orders", 5), 40)
	r := ckptRun(t, nil, "jobs", "--store", dir).want(t, exitOK)
	rows := parseTable(t, r.stdout, "JOB", "CHECKPOINTS", "NEWEST", "TIME", "TRIGGER", "RECORDS", "LAG", "FLAGS")
	if len(rows) != 1 || rows[0]["NEWEST"] != "5" || rows[0]["FLAGS"] != "corrupt" {
		t.Errorf("jobs with a corrupt newest manifest: %v", rows)
	}
}
