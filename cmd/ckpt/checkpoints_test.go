package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/internal/progress"
)

var listCols = []string{"SEQ", "TIME", "TRIGGER", "RECORDS", "BYTES", "SOURCE POSITION", "WRITTEN", "STATE", "FLAGS"}

func TestListTable(t *testing.T) {
	dir, cps := ordersStore(t)
	r := ckptRun(t, nil, "checkpoints", "list", "--store", dir, "--job", "orders").want(t, exitOK)
	rows := parseTable(t, r.stdout, listCols...)
	if len(rows) != len(cps) {
		t.Fatalf("%d rows, want %d:\n%s", len(rows), len(cps), r.stdout)
	}
	wantFlags := []string{"-", "-", "savepoint,label=before-migration", "-", "final"}
	wantTrigger := []string{"manual", "manual", "manual", "manual", "final"}
	for i, row := range rows {
		cp := cps[i]
		n := int64(i + 1)
		if row["SEQ"] != strconv.FormatUint(cp.Seq, 10) || cp.Seq != uint64(n) {
			t.Errorf("row %d: SEQ %q, want %d", i, row["SEQ"], n)
		}
		tm, err := time.Parse(time.RFC3339, row["TIME"])
		if err != nil || !tm.Equal(cp.Time.Truncate(time.Second)) {
			t.Errorf("row %d: TIME %q, want %s (%v)", i, row["TIME"], cp.Time, err)
		}
		if row["TRIGGER"] != wantTrigger[i] {
			t.Errorf("row %d: TRIGGER %q, want %q", i, row["TRIGGER"], wantTrigger[i])
		}
		if row["RECORDS"] != strconv.FormatInt(n*recordsPerStep, 10) {
			t.Errorf("row %d: RECORDS %q, want %d", i, row["RECORDS"], n*recordsPerStep)
		}
		if want := fmt.Sprintf("%.1f KiB", float64(n*bytesPerStep)/1024); row["BYTES"] != want {
			t.Errorf("row %d: BYTES %q, want %q", i, row["BYTES"], want)
		}
		if want := fmt.Sprintf(`{"file":"orders.csv","offset":%d}`, n*bytesPerStep); row["SOURCE POSITION"] != want {
			t.Errorf("row %d: SOURCE POSITION %q, want %q", i, row["SOURCE POSITION"], want)
		}
		if want := progress.Bytes(cp.RawSize()) + "→" + progress.Bytes(cp.StoredSize()); row["STATE"] != want || !strings.Contains(want, "KiB→") {
			t.Errorf("row %d: STATE %q, want %q in KiB", i, row["STATE"], want)
		}
		if want := progress.Bytes(cp.SizeBytes); row["WRITTEN"] != want {
			t.Errorf("row %d: WRITTEN %q, want %q", i, row["WRITTEN"], want)
		}
		if row["FLAGS"] != wantFlags[i] {
			t.Errorf("row %d: FLAGS %q, want %q", i, row["FLAGS"], wantFlags[i])
		}
	}
}

func TestListJSON(t *testing.T) {
	dir, cps := ordersStore(t)
	r := ckptRun(t, nil, "checkpoints", "list", "--store", dir, "--job", "orders", "--json").want(t, exitOK)
	var got []checkpointJSON
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("list --json is not a JSON array of checkpoints: %v\n%s", err, r.stdout)
	}
	if len(got) != len(cps) {
		t.Fatalf("%d checkpoints, want %d", len(got), len(cps))
	}
	for i, g := range got {
		cp := cps[i]
		want := checkpointJSON{
			Seq: cp.Seq, Time: cp.Time, Trigger: cp.Trigger.String(), Savepoint: cp.Savepoint, Label: cp.Label,
			Final: cp.Final, Records: cp.Records, Bytes: cp.Bytes, Source: cp.Source,
			StateRawBytes: cp.RawSize(), StateStoredBytes: cp.StoredSize(), Metadata: map[string]string{"input": "orders.csv"},
			SizeBytes: cp.SizeBytes, FullSizeBytes: cp.FullSizeBytes,
		}
		if g.SizeBytes <= 0 || g.FullSizeBytes != g.StateStoredBytes {
			t.Errorf("checkpoint %d: size_bytes %d, full_size_bytes %d, state %d", i+1, g.SizeBytes, g.FullSizeBytes, g.StateStoredBytes)
		}
		if !g.Time.Equal(want.Time) {
			t.Errorf("checkpoint %d: time %v, want %v", i+1, g.Time, want.Time)
		}
		if !sameJSON(t, g.Source, want.Source) {
			t.Errorf("checkpoint %d: source %s, want %s", i+1, g.Source, want.Source)
		}
		g.Time, g.Source = want.Time, want.Source
		if !reflect.DeepEqual(g, want) {
			t.Errorf("checkpoint %d:\n got %+v\nwant %+v", i+1, g, want)
		}
	}
	if !got[2].Savepoint || got[2].Label != "before-migration" || !got[4].Final {
		t.Errorf("savepoint and final flags lost: %+v", got)
	}
}

func TestListShortensLongSourcePositions(t *testing.T) {
	long := json.RawMessage(`{"files":["` + strings.Repeat("a", 100) + `"],  "offset": 1}`)
	got := compactJSON(long, sourceWidth)
	if n := len([]rune(got)); n != sourceWidth || !strings.HasSuffix(got, "…") || !strings.HasPrefix(got, `{"files":["aaa`) {
		t.Errorf("compactJSON(long) = %q (%d runes), want %d runes ending in …", got, n, sourceWidth)
	}
	if got := compactJSON(json.RawMessage(`{ "offset" : 12 }`), sourceWidth); got != `{"offset":12}` {
		t.Errorf("compactJSON = %q, want compact JSON in full", got)
	}
	if got := compactJSON(nil, sourceWidth); got != "-" {
		t.Errorf("compactJSON(nil) = %q, want -", got)
	}
}

func TestListInfersTheOnlyJob(t *testing.T) {
	dir, _ := ordersStore(t)
	with := ckptRun(t, nil, "checkpoints", "list", "--store", dir, "--job", "orders").want(t, exitOK)
	without := ckptRun(t, nil, "checkpoints", "list", "--store", dir).want(t, exitOK)
	if with.stdout != without.stdout {
		t.Errorf("list without --job differs from list --job orders:\n%s\nvs\n%s", without.stdout, with.stdout)
	}

	writeJob(t, dir, "events", 10, stepCheckpoint)
	r := ckptRun(t, nil, "checkpoints", "list", "--store", dir).want(t, exitUsage)
	if line := r.errLine(t); !strings.Contains(line, "events, orders") || !strings.Contains(line, "--job") {
		t.Errorf("error %q should name both jobs and ask for --job", line)
	}
}

func TestListUnknownJobOrStore(t *testing.T) {
	dir, _ := ordersStore(t)
	r := ckptRun(t, nil, "checkpoints", "list", "--store", dir, "--job", "ordres").want(t, exitError)
	if line := r.errLine(t); !strings.Contains(line, `"ordres"`) || !strings.Contains(line, "orders") {
		t.Errorf("error %q should name the missing job and the store's jobs", line)
	}

	missing := filepath.Join(t.TempDir(), "nope")
	r = ckptRun(t, nil, "checkpoints", "list", "--store", missing, "--job", "orders").want(t, exitError)
	if line := r.errLine(t); !strings.Contains(line, "no store at "+missing) || !strings.Contains(line, "--store") {
		t.Errorf("error %q should say there is no store and how to name one", line)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("reading a missing store created it (stat: %v)", err)
	}
}

func TestShowNewestAndBySeq(t *testing.T) {
	dir, cps := ordersStore(t)
	r := ckptRun(t, nil, "checkpoints", "show", "--store", dir, "--job", "orders").want(t, exitOK)
	newest := cps[len(cps)-1]
	for _, want := range []string{
		"Job:              orders",
		"Checkpoint:       5",
		"Trigger:          final",
		"Final:            yes",
		"Records:          500",
		fmt.Sprintf("Source position:  {\"file\":\"orders.csv\",\"offset\":%d}", 5*bytesPerStep),
		fmt.Sprintf("Fencing token:    %d", newest.Token),
		fmt.Sprintf("pid %d", os.Getpid()),
		newest.State[0].Chunks[0].ID,
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show output lacks %q:\n%s", want, r.stdout)
		}
	}
	if !regexp.MustCompile(`(?m)^Metadata:\s*\n  input +orders\.csv$`).MatchString(r.stdout) {
		t.Errorf("show output lacks the metadata:\n%s", r.stdout)
	}
	state := parseTable(t, r.stdout[strings.Index(r.stdout, "STATE "):], "STATE", "CODEC", "COMPRESSION", "RAW", "STORED", "CHUNKS")
	if s := state[0]; s["STATE"] != "state" || s["CODEC"] != "json" || s["COMPRESSION"] != "s2" ||
		s["RAW"] != progress.Bytes(newest.RawSize()) || s["STORED"] != progress.Bytes(newest.StoredSize()) || s["CHUNKS"] != "1" {
		t.Errorf("state row %v, want state json s2 %s %s 1", s, progress.Bytes(newest.RawSize()), progress.Bytes(newest.StoredSize()))
	}

	r = ckptRun(t, nil, "checkpoints", "show", "--store", dir, "--job", "orders", "3").want(t, exitOK)
	for _, want := range []string{"Checkpoint:       3", "Savepoint:        yes", "Label:            before-migration", "Final:            no"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show 3 lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestShowJSON(t *testing.T) {
	dir, cps := ordersStore(t)
	r := ckptRun(t, nil, "checkpoints", "show", "--store", dir, "--job", "orders", "--json", "3").want(t, exitOK)
	var got ckpt.Checkpoint
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("show --json is not a manifest: %v\n%s", err, r.stdout)
	}
	want := cps[2]
	if got.Seq != 3 || got.Job != "orders" || !got.Savepoint || got.Label != want.Label || got.Records != want.Records ||
		!got.Time.Equal(want.Time) || !sameJSON(t, got.Source, want.Source) || got.Writer.PID != os.Getpid() {
		t.Errorf("show --json 3:\n got %+v\nwant %+v", got, *want)
	}
	if !reflect.DeepEqual(got.State, want.State) {
		t.Errorf("state refs differ:\n got %+v\nwant %+v", got.State, want.State)
	}
}

func TestShowMissingSeq(t *testing.T) {
	dir, _ := ordersStore(t)
	r := ckptRun(t, nil, "checkpoints", "show", "--store", dir, "--job", "orders", "42").want(t, exitError)
	if line := r.errLine(t); !strings.Contains(line, "no checkpoint 42") || !strings.Contains(line, "1, 2, 3, 4, 5") {
		t.Errorf("error %q should name the missing checkpoint and the ones there are", line)
	}
}

func TestVerifyAllOK(t *testing.T) {
	dir, cps := ordersStore(t)
	r := ckptRun(t, nil, "checkpoints", "verify", "--store", dir, "--job", "orders").want(t, exitOK)
	for _, cp := range cps {
		if !strings.Contains(r.stdout, fmt.Sprintf("checkpoint %d: ok\n", cp.Seq)) {
			t.Errorf("verify output lacks checkpoint %d ok:\n%s", cp.Seq, r.stdout)
		}
	}
	if !strings.Contains(r.stdout, "all 5 checkpoints") {
		t.Errorf("verify output lacks the summary:\n%s", r.stdout)
	}

	r = ckptRun(t, nil, "checkpoints", "verify", "--store", dir, "--job", "orders", "--json").want(t, exitOK)
	var got []verifyJSON
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("verify --json: %v\n%s", err, r.stdout)
	}
	if len(got) != len(cps) {
		t.Fatalf("verify --json: %d results, want %d", len(got), len(cps))
	}
	for i, g := range got {
		if g != (verifyJSON{Seq: cps[i].Seq, Status: "ok"}) {
			t.Errorf("result %d: %+v, want ok", i, g)
		}
	}
}

// verify of every checkpoint counts the blobs no kept checkpoint names,
// and exits 0 for them.
func TestVerifyCountsUnreferencedBlobs(t *testing.T) {
	dir, _ := ordersStore(t)
	r := ckptRun(t, nil, "checkpoints", "verify", "--store", dir, "--job", "orders").want(t, exitOK)
	if strings.Contains(r.stdout, "named by no kept checkpoint") {
		t.Fatalf("a clean store reported unreferenced blobs:\n%s", r.stdout)
	}
	stray := filepath.Join(dir, "jobs", "orders", "blobs", strings.Repeat("ab", 32))
	if err := os.WriteFile(stray, []byte("left by a crash"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = ckptRun(t, nil, "checkpoints", "verify", "--store", dir, "--job", "orders").want(t, exitOK)
	if !strings.Contains(r.stdout, "1 of the job's") || !strings.Contains(r.stdout, "named by no kept checkpoint") {
		t.Fatalf("verify did not report the stray blob:\n%s", r.stdout)
	}
	// One checkpoint, or JSON: nothing about the others' blobs.
	r = ckptRun(t, nil, "checkpoints", "verify", "--store", dir, "--job", "orders", "--json").want(t, exitOK)
	if strings.Contains(r.stdout, "named by no kept checkpoint") {
		t.Fatalf("verify --json printed the count:\n%s", r.stdout)
	}
}

func TestVerifyCorruptBlob(t *testing.T) {
	dir, cps := ordersStore(t)
	bad := blobOf(t, cps[1])
	flipByte(t, dir, bad, -3)

	r := ckptRun(t, nil, "checkpoints", "verify", "--store", dir, "--job", "orders").want(t, exitCorrupt)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != len(cps) {
		t.Fatalf("want one line per checkpoint, got:\n%s", r.stdout)
	}
	for i, l := range lines {
		if i == 1 {
			if !strings.HasPrefix(l, "checkpoint 2: CORRUPT: "+bad+": ") || !strings.Contains(l, "checksum mismatch") {
				t.Errorf("line %q should say checkpoint 2 is corrupt, naming %s and why", l, bad)
			}
		} else if l != fmt.Sprintf("checkpoint %d: ok", i+1) {
			t.Errorf("line %q, want checkpoint %d: ok", l, i+1)
		}
	}
	line := r.errLine(t)
	if !strings.Contains(line, "checkpoint 2 of job \"orders\" is corrupt: "+bad) || !strings.Contains(line, "resumes from checkpoint 5") {
		t.Errorf("error %q should name checkpoint 2 and its blob, and say the job resumes from 5", line)
	}

	r = ckptRun(t, nil, "checkpoints", "verify", "--store", dir, "--job", "orders", "--json").want(t, exitCorrupt)
	var got []verifyJSON
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("verify --json: %v\n%s", err, r.stdout)
	}
	if len(got) != 5 || got[1].Status != "corrupt" || got[1].Object != bad || got[1].Error == "" || got[0].Status != "ok" {
		t.Errorf("verify --json = %+v, want checkpoint 2 corrupt naming %s", got, bad)
	}

	ckptRun(t, nil, "checkpoints", "verify", "--store", dir, "--job", "orders", "2").want(t, exitCorrupt)
	r = ckptRun(t, nil, "checkpoints", "verify", "--store", dir, "--job", "orders", "1").want(t, exitOK)
	if strings.TrimSpace(r.stdout) != "checkpoint 1: ok\ncheckpoint 1 of job \"orders\" verifies" {
		t.Errorf("verify 1 printed:\n%s", r.stdout)
	}
}

func TestVerifyCorruptManifest(t *testing.T) {
	dir, _ := ordersStore(t)
	bad := manifestObject("orders", 5)
	flipByte(t, dir, bad, -10)

	r := ckptRun(t, nil, "checkpoints", "verify", "--store", dir, "--job", "orders").want(t, exitCorrupt)
	if !strings.Contains(r.stdout, "checkpoint 5: CORRUPT: "+bad+": manifest checksum mismatch") {
		t.Errorf("verify output should name the manifest of checkpoint 5:\n%s", r.stdout)
	}
	if line := r.errLine(t); !strings.Contains(line, bad) || !strings.Contains(line, "resumes from checkpoint 4, the newest that verifies") {
		t.Errorf("error %q should name %s and the checkpoint the job resumes from", line, bad)
	}

	// list reports the manifest, show refuses it.
	r = ckptRun(t, nil, "checkpoints", "list", "--store", dir, "--job", "orders").want(t, exitOK)
	rows := parseTable(t, r.stdout, listCols...)
	if last := rows[len(rows)-1]; last["SEQ"] != "5" || last["FLAGS"] != "corrupt" || last["TIME"] != "-" {
		t.Errorf("list shows the corrupt checkpoint as %v", last)
	}
	r = ckptRun(t, nil, "checkpoints", "show", "--store", dir, "--job", "orders").want(t, exitCorrupt)
	if line := r.errLine(t); !strings.Contains(line, bad) {
		t.Errorf("show error %q should name %s", line, bad)
	}
	ckptRun(t, nil, "checkpoints", "show", "--store", dir, "--job", "orders", "4").want(t, exitOK)
}

func TestVerifyNoValidCheckpoint(t *testing.T) {
	dir := t.TempDir()
	cps := writeJob(t, dir, "solo", 12000, stepCheckpoint)
	flipByte(t, dir, blobOf(t, cps[0]), 30)
	r := ckptRun(t, nil, "checkpoints", "verify", "--store", dir).want(t, exitCorrupt)
	if line := r.errLine(t); !strings.Contains(line, "no checkpoint verifies") || !strings.Contains(line, "cannot resume") {
		t.Errorf("error %q should say no checkpoint verifies", line)
	}
}

func TestPrune(t *testing.T) {
	dir, _ := ordersStore(t)
	r := ckptRun(t, nil, "checkpoints", "prune", "--store", dir, "--job", "orders", "--retain", "2").want(t, exitOK)
	if r.stdout != "removed checkpoint 1 of job \"orders\"\nremoved checkpoint 2 of job \"orders\"\n" {
		t.Errorf("prune printed:\n%s", r.stdout)
	}
	// The savepoint stays whatever --retain says.
	if got := seqs(t, dir, "orders"); !slices.Equal(got, []uint64{3, 4, 5}) {
		t.Errorf("after prune --retain 2: checkpoints %v, want [3 4 5]", got)
	}
	ckptRun(t, nil, "checkpoints", "verify", "--store", dir, "--job", "orders").want(t, exitOK)

	r = ckptRun(t, nil, "checkpoints", "prune", "--store", dir, "--job", "orders", "--retain", "2").want(t, exitOK)
	if !strings.HasPrefix(r.stdout, "nothing to prune") {
		t.Errorf("second prune printed:\n%s", r.stdout)
	}
	r = ckptRun(t, nil, "-q", "checkpoints", "prune", "--store", dir, "--job", "orders", "--retain", "1").want(t, exitOK)
	if r.stdout != "" || r.stderr != "" {
		t.Errorf("prune -q printed %q and %q", r.stdout, r.stderr)
	}
	if got := seqs(t, dir, "orders"); !slices.Equal(got, []uint64{3, 5}) {
		t.Errorf("after prune --retain 1: checkpoints %v, want [3 5]", got)
	}
}

func TestRefusedWhileTheJobRuns(t *testing.T) {
	dir, cps := ordersStore(t)
	j := openJob(t, dir, "orders")
	holder := fmt.Sprintf("pid %d", os.Getpid())

	for _, args := range [][]string{
		{"checkpoints", "prune", "--retain", "1"},
		{"checkpoints", "delete", "1", "--yes"},
		{"checkpoints", "delete", "--all", "--yes"},
	} {
		args = append(args, "--store", dir, "--job", "orders")
		r := ckptRun(t, nil, args...).want(t, exitLocked)
		line := r.errLine(t)
		verb := args[1]
		if !strings.Contains(line, verb+" refused") || !strings.Contains(line, "already running") || !strings.Contains(line, holder) || !strings.Contains(line, "retry") {
			t.Errorf("%s: error %q should say it was refused, who holds the job and what to do", verb, line)
		}
	}
	if got := seqs(t, dir, "orders"); len(got) != len(cps) {
		t.Fatalf("checkpoints changed while the job ran: %v", got)
	}
	// Reading needs no lock.
	ckptRun(t, nil, "checkpoints", "verify", "--store", dir, "--job", "orders").want(t, exitOK)

	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	ckptRun(t, nil, "checkpoints", "prune", "--retain", "1", "--store", dir, "--job", "orders").want(t, exitOK)
}

func TestDeleteNeedsConfirmation(t *testing.T) {
	dir, cps := ordersStore(t)
	for _, args := range [][]string{{"1"}, {"--all"}} {
		args = append([]string{"checkpoints", "delete", "--store", dir, "--job", "orders"}, args...)
		r := ckptRun(t, strings.NewReader("y\n"), args...).want(t, exitUsage)
		if line := r.errLine(t); !strings.Contains(line, "not a terminal") || !strings.Contains(line, "--yes") {
			t.Errorf("error %q should say stdin is not a terminal and to pass --yes", line)
		}
	}
	if got := seqs(t, dir, "orders"); len(got) != len(cps) {
		t.Fatalf("delete without confirmation removed checkpoints: %v left", got)
	}
}

func TestDeleteOne(t *testing.T) {
	dir, cps := ordersStore(t)
	writeJob(t, dir, "events", 10, stepCheckpoint)
	r := ckptRun(t, nil, "checkpoints", "delete", "--store", dir, "--job", "orders", "3", "--yes").want(t, exitOK)
	if r.stdout != "deleted checkpoint 3 of job \"orders\"\n" {
		t.Errorf("delete printed %q", r.stdout)
	}
	if got := seqs(t, dir, "orders"); !slices.Equal(got, []uint64{1, 2, 4, 5}) {
		t.Errorf("after deleting the savepoint: %v, want [1 2 4 5]", got)
	}
	if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(blobOf(t, cps[2])))); !os.IsNotExist(err) {
		t.Errorf("the deleted checkpoint's blob is still there (stat: %v)", err)
	}
	ckptRun(t, nil, "checkpoints", "verify", "--store", dir, "--job", "orders").want(t, exitOK)

	r = ckptRun(t, nil, "checkpoints", "delete", "--store", dir, "--job", "orders", "3", "--yes").want(t, exitError)
	if line := r.errLine(t); !strings.Contains(line, "no checkpoint 3") {
		t.Errorf("deleting it again: error %q", line)
	}
}

func TestDeleteAll(t *testing.T) {
	dir, _ := ordersStore(t)
	writeJob(t, dir, "events", 10, stepCheckpoint)
	r := ckptRun(t, nil, "checkpoints", "delete", "--store", dir, "--job", "orders", "--all", "-y").want(t, exitOK)
	if r.stdout != "deleted job \"orders\": 5 checkpoints\n" {
		t.Errorf("delete --all printed %q", r.stdout)
	}
	if got := jobsIn(t, dir); !slices.Equal(got, []string{"events"}) {
		t.Errorf("jobs after delete --all: %v, want [events]", got)
	}
	blobs, err := os.ReadDir(filepath.Join(dir, "jobs", "orders", "blobs"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if len(blobs) != 0 {
		t.Errorf("%d blobs of the deleted job are left", len(blobs))
	}
	if got := seqs(t, dir, "events"); len(got) != 1 {
		t.Errorf("the other job lost checkpoints: %v", got)
	}
}

// sameJSON reports whether a and b are the same JSON value.
func sameJSON(t *testing.T, a, b json.RawMessage) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

func TestVerifyNewerFormat(t *testing.T) {
	dir, _ := ordersStore(t)
	body := `{"job":"orders","seq":5}`
	p := filepath.Join(dir, filepath.FromSlash(manifestObject("orders", 5)))
	if err := os.WriteFile(p, fmt.Appendf(nil, "ckpt-manifest 99 %d 00000000\n%s", len(body), body), 0o644); err != nil {
		t.Fatal(err)
	}
	r := ckptRun(t, nil, "checkpoints", "verify", "--store", dir, "--job", "orders").want(t, exitError)
	if !strings.Contains(r.stdout, "checkpoint 5: UNREADABLE: ") || !strings.Contains(r.stdout, "checkpoint 4: ok") {
		t.Errorf("verify should report checkpoint 5 as unreadable and check the others:\n%s", r.stdout)
	}
	if line := r.errLine(t); !strings.Contains(line, "newer ckpt") || !strings.Contains(line, "checkpoint 5") {
		t.Errorf("error %q should say a newer ckpt wrote checkpoint 5", line)
	}
}
