// Package crashpoint lets a crash-testing harness stop a program exactly at
// the boundaries of ckpt's commit protocol.
//
// The engine calls Hit with a phase name at each boundary. When the
// environment variable CKPT_CRASHPOINT is unset (the normal case), Hit is a
// load of a package-level bool and a return: nothing else happens.
//
// When it is set, it names two inherited file descriptors, "W,R" (for
// example "3,4"): Hit writes the phase name and a newline to W, then blocks
// until it reads one byte from R. The harness reads the announcement and
// either acknowledges it (the program goes on) or kills the process while it
// waits, which is a crash exactly at that boundary. If R reports end of file
// or an error (the harness went away), announcements stop and the program
// runs on normally.
package crashpoint

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Env is the environment variable that turns announcements on.
const Env = "CKPT_CRASHPOINT"

// The phases the commit protocol announces, in the order a checkpoint
// passes them.
const (
	// PhaseStateCaptured: the output is flushed and the sink and source
	// positions are taken; the state is not serialized yet.
	PhaseStateCaptured = "state-captured"
	// PhaseBlobsWritten: the state's blobs are written; nothing references
	// them yet.
	PhaseBlobsWritten = "blobs-written"
	// PhaseSinkSynced: the output is durable up to the checkpoint's sink
	// position; the manifest is not written yet.
	PhaseSinkSynced = "sink-synced"
	// PhaseManifestCommitted: the manifest is written; the checkpoint
	// exists. Retention has not run.
	PhaseManifestCommitted = "manifest-committed"
	// PhaseRetention: retention removed old checkpoints.
	PhaseRetention = "retention"
)

// Phases lists every phase, in protocol order.
var Phases = []string{PhaseStateCaptured, PhaseBlobsWritten, PhaseSinkSynced, PhaseManifestCommitted, PhaseRetention}

// enabled is read once, at start-up: a program is either under a harness
// or not for its whole life.
var enabled = os.Getenv(Env) != ""

var (
	once     sync.Once
	mu       sync.Mutex // one announcement at a time: checkpoints commit in the background
	announce *os.File
	ack      *os.File
)

// Hit announces that the program reached phase. It returns at once unless
// a harness is listening, and then only once the harness acknowledges.
func Hit(phase string) {
	if !enabled {
		return
	}
	hit(phase)
}

// Enabled reports whether a harness is listening.
func Enabled() bool { return enabled }

func hit(phase string) {
	once.Do(setup)
	mu.Lock()
	defer mu.Unlock()
	if announce == nil {
		return
	}
	line := append([]byte(strings.ReplaceAll(phase, "\n", " ")), '\n')
	if _, err := announce.Write(line); err != nil {
		stop()
		return
	}
	var b [1]byte
	if n, err := ack.Read(b[:]); n != 1 || err != nil {
		stop()
	}
}

// setup opens the descriptors named by Env; a malformed value turns
// announcements off rather than failing the program.
func setup() {
	w, r, ok := parse(os.Getenv(Env))
	if !ok {
		return
	}
	announce = os.NewFile(uintptr(w), "crashpoint-announce")
	ack = os.NewFile(uintptr(r), "crashpoint-ack")
	if announce == nil || ack == nil {
		announce, ack = nil, nil
	}
}

// stop turns announcements off after the harness went away.
func stop() {
	announce.Close()
	ack.Close()
	announce, ack = nil, nil
}

// parse reads "W,R".
func parse(v string) (w, r int, ok bool) {
	a, b, found := bytes.Cut([]byte(v), []byte(","))
	if !found {
		return 0, 0, false
	}
	w, err1 := strconv.Atoi(strings.TrimSpace(string(a)))
	r, err2 := strconv.Atoi(strings.TrimSpace(string(b)))
	if err1 != nil || err2 != nil || w < 3 || r < 3 {
		return 0, 0, false
	}
	return w, r, true
}

// Value is the value of Env for a child that inherits the announcement
// pipe as descriptor w and the acknowledgement pipe as r.
func Value(w, r int) string { return strconv.Itoa(w) + "," + strconv.Itoa(r) }
