package assetcli_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ckptdev/ckpt/asset/assetcli"
)

// `prog ui` serves the lineage graph of the program's assets, with their
// state from the event log, on a loopback address until it is stopped.
func TestUIServesTheGraph(t *testing.T) {
	var fail atomic.Value
	fail.Store("2026-01-02")
	c := newCLI(t, &fail)
	if code, _, _ := c.run("assets", "materialize"); code != assetcli.ExitError {
		t.Fatalf("materialize with a failing partition: exit %d, want %d", code, assetcli.ExitError)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	code := make(chan int, 1)
	go func() {
		code <- assetcli.Run(ctx, c.g, assetcli.Options{Name: "prog"}, []string{"ui", "--store", c.store, "--listen", "127.0.0.1:0"}, pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("prog ui printed no address: %v", err)
	}
	go io.Copy(io.Discard, pr)
	addr := regexp.MustCompile(`http://127\.0\.0\.1:\d+/`).FindString(line)
	if addr == "" {
		t.Fatalf("prog ui does not serve on loopback: %q", line)
	}
	resp, err := http.Get(addr + "assets")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`data-key="src"`, `data-key="day" data-state="failed"`, `data-key="sum" data-state="missing"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("GET /assets: no %s in\n%s", want, body)
		}
	}
	cancel()
	if c := <-code; c != assetcli.ExitOK {
		t.Errorf("prog ui stopped with exit code %d, want 0", c)
	}
}
