package crashpoint

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The child side: announces two phases, then says it finished.
func TestHelperAnnouncer(t *testing.T) {
	if os.Getenv("CRASHPOINT_HELPER") == "" {
		t.Skip("run by TestAnnouncementsWaitForTheHarness")
	}
	Hit("one")
	Hit("two")
	Hit("three")
	fmt.Println("finished")
}

// Announcements reach the harness in order, each waits for its
// acknowledgement, and a harness that stops listening lets the program run
// on.
func TestAnnouncementsWaitForTheHarness(t *testing.T) {
	annR, annW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	ackR, ackW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperAnnouncer$", "-test.v")
	cmd.Env = append(os.Environ(), "CRASHPOINT_HELPER=1", Env+"="+Value(3, 4))
	cmd.ExtraFiles = []*os.File{annW, ackR}
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	annW.Close()
	ackR.Close()
	sc := bufio.NewScanner(annR)
	if !sc.Scan() || sc.Text() != "one" {
		t.Fatalf("first announcement %q, want one", sc.Text())
	}
	// The child waits: it cannot have announced "two" before the ack.
	// Acknowledge, then read the next one.
	if _, err := ackW.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	if !sc.Scan() || sc.Text() != "two" {
		t.Fatalf("second announcement %q, want two", sc.Text())
	}
	// Stop listening: the child must finish anyway, announcing nothing
	// more.
	ackW.Close()
	if sc.Scan() {
		t.Errorf("announcement %q after the harness stopped listening", sc.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "finished") {
		t.Errorf("child did not finish:\n%s", out.String())
	}
}

func TestDisabledHitDoesNothing(t *testing.T) {
	if Enabled() {
		t.Skip(Env + " is set for this process")
	}
	Hit(PhaseStateCaptured) // must neither block nor touch any descriptor
	if announce != nil || ack != nil {
		t.Error("a disabled Hit opened the descriptors")
	}
	if n := testing.AllocsPerRun(100, func() { Hit(PhaseSinkSynced) }); n != 0 {
		t.Errorf("a disabled Hit allocates %v times", n)
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		w, r int
		ok   bool
	}{
		{"3,4", 3, 4, true},
		{" 7 , 9 ", 7, 9, true},
		{"3", 0, 0, false},
		{"1,2", 0, 0, false}, // stdout and stderr are not ours
		{"a,b", 0, 0, false},
		{"", 0, 0, false},
	} {
		w, r, ok := parse(tc.in)
		if ok != tc.ok || (ok && (w != tc.w || r != tc.r)) {
			t.Errorf("parse(%q) = %d, %d, %v", tc.in, w, r, ok)
		}
	}
}
