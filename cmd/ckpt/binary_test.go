package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestBinary builds the real ckpt and runs it as a user's shell would:
// version set by -ldflags, exit codes seen by the parent, output piped.
func TestBinary(t *testing.T) {
	bin := buildCLI(t).bin

	ckptBin := func(args ...string) (code int, stdout, stderr string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		// What would colour a terminal's output: only the pipe stops it.
		cmd.Env = append(os.Environ(), "TERM=xterm", "NO_COLOR=")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			code = ee.ExitCode()
		case err != nil:
			t.Fatalf("run ckpt %v: %v", args, err)
		}
		return code, out.String(), errb.String()
	}

	if code, out, _ := ckptBin("--version"); code != 0 || !strings.HasPrefix(out, "ckpt "+testVersion+" (") {
		t.Errorf("--version: exit %d, %q; want the version set by -ldflags", code, out)
	}

	dir, cps := ordersStore(t)
	for _, args := range [][]string{
		{"jobs", "--store", dir},
		{"checkpoints", "list", "--store", dir},
		{"checkpoints", "show", "--store", dir},
		{"checkpoints", "verify", "--store", dir},
	} {
		code, out, errOut := ckptBin(args...)
		if code != exitOK || out == "" || strings.Contains(out, "\x1b") {
			t.Errorf("%v: exit %d, escape codes in piped stdout: %v\n%s%s", args, code, strings.Contains(out, "\x1b"), out, errOut)
		}
	}

	bad := blobOf(t, cps[3])
	flipByte(t, dir, bad, 50)
	code, out, errOut := ckptBin("checkpoints", "verify", "--store", dir)
	if code != exitCorrupt {
		t.Errorf("verify of a corrupt store: exit %d, want %d\n%s", code, exitCorrupt, errOut)
	}
	if strings.Contains(out, "\x1b") || !strings.Contains(out, "checkpoint 4: CORRUPT: "+bad) || !strings.Contains(errOut, bad) {
		t.Errorf("verify should name %s, without escape codes:\n%s%s", bad, out, errOut)
	}

	if code, _, errOut := ckptBin("checkpoints", "delete", "1", "--store", dir, "--job", "orders"); code != exitUsage || !strings.Contains(errOut, "--yes") {
		t.Errorf("delete with stdin not a terminal: exit %d, want %d asking for --yes\n%s", code, exitUsage, errOut)
	}
}
