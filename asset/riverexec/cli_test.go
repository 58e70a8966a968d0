package riverexec_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt/asset"
	"github.com/ckptdev/ckpt/asset/assetcli"
)

func runCLI(t *testing.T, e *env, f *fixture, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	args = append(args, "--store", e.store, "--events", e.events)
	code := assetcli.Run(context.Background(), f.g, assetcli.Options{Name: "prog", River: e.cfg}, args, &out, &out)
	return code, out.String()
}

// Without workers: a detached run waits in the queue; canceled, it ends
// at once; resumed detached, a new run waits in its place.
func TestCLIDetachCancelResume(t *testing.T) {
	e := newEnv(t)
	f := newFixture(5, asset.RetryPolicy{})
	code, out := runCLI(t, e, f, "assets", "materialize", "--executor", "river", "--detach", "--quiet")
	if code != 0 {
		t.Fatalf("materialize --detach: exit %d\n%s", code, out)
	}
	id := strings.TrimSpace(out)
	if code, out := runCLI(t, e, f, "runs", "cancel", id); code != 0 || !strings.Contains(out, "canceled") {
		t.Fatalf("runs cancel: exit %d\n%s", code, out)
	}
	if code, out := runCLI(t, e, f, "runs", "show", id); code != 0 || !strings.Contains(out, "state      canceled") || !strings.Contains(out, "computed by workers") {
		t.Fatalf("runs show: exit %d\n%s", code, out)
	}
	code, out = runCLI(t, e, f, "runs", "resume", id, "--executor", "river", "--detach", "--quiet")
	if code != 0 || strings.TrimSpace(out) == id {
		t.Fatalf("runs resume --detach: exit %d\n%s", code, out)
	}
	if code, out := runCLI(t, e, f, "assets", "materialize", "--detach"); code != assetcli.ExitUsage || !strings.Contains(out, "--detach needs --executor river") {
		t.Fatalf("--detach in process: exit %d\n%s", code, out)
	}
	if code, out := runCLI(t, e, f, "assets", "materialize", "--executor", "dask"); code != assetcli.ExitUsage {
		t.Fatalf("--executor dask: exit %d\n%s", code, out)
	}
}
