package assetcli_test

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ckptdev/ckpt/asset"
	"github.com/ckptdev/ckpt/asset/assetcli"
)

// TestMain runs, when the test binary is started with CKPT_ASSETCLI_CHILD
// set, a materialization whose asset sees the cancellation but never
// ends, for TestSecondSignalEndsTheProcess to signal.
func TestMain(m *testing.M) {
	if store := os.Getenv("CKPT_ASSETCLI_CHILD"); store != "" {
		g := asset.New()
		asset.Define(g, asset.Spec{Key: "stuck"}, func(c *asset.Context) (int, error) {
			os.Stdout.WriteString("computing\n")
			<-c.Done()
			os.Stdout.WriteString("canceled\n")
			select {} // and does not stop
		})
		os.Exit(assetcli.Run(context.Background(), g, assetcli.Options{Name: "prog"}, []string{"assets", "materialize", "--store", store}, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestSecondSignalEndsTheProcess: a second SIGINT or SIGTERM ends the
// process at once, also when it follows the first immediately and when
// the process was started with SIGINT ignored (as a shell starts a
// background job), and the asset being computed does not stop.
func TestSecondSignalEndsTheProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("signals child processes: runs without -short")
	}
	cases := []struct {
		name          string
		first, second syscall.Signal
		ignoreSIGINT  bool
	}{
		{"SIGINT twice", syscall.SIGINT, syscall.SIGINT, false},
		{"SIGTERM then SIGINT", syscall.SIGTERM, syscall.SIGINT, false},
		{"SIGINT twice, started with SIGINT ignored", syscall.SIGINT, syscall.SIGINT, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "CKPT_ASSETCLI_CHILD="+filepath.Join(t.TempDir(), "store"))
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if tc.ignoreSIGINT {
				// The child inherits the ignored disposition.
				signal.Ignore(syscall.SIGINT)
			}
			err = cmd.Start()
			if tc.ignoreSIGINT {
				signal.Reset(syscall.SIGINT)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			sc := bufio.NewScanner(out)
			if !sc.Scan() || sc.Text() != "computing" {
				t.Fatalf("child said %q (%v)", sc.Text(), sc.Err())
			}
			// Two signals sent at once may reach the process as one (the
			// kernel does not queue them): the second follows the moment
			// the first is seen.
			cmd.Process.Signal(tc.first)
			if !sc.Scan() || sc.Text() != "canceled" {
				t.Fatalf("child said %q (%v)", sc.Text(), sc.Err())
			}
			cmd.Process.Signal(tc.second)
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			select {
			case err := <-exited:
				var ee *exec.ExitError
				if !errors.As(err, &ee) {
					t.Errorf("the child ended with %v, want a nonzero exit", err)
				}
			case <-time.After(time.Minute):
				t.Fatal("the child still runs a minute after a second signal")
			}
		})
	}
}
