package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/internal/errtext"
	"github.com/ckptdev/ckpt/internal/progress"
)

// compactJSON renders a position as compact JSON, shortened to at most max
// characters ("…" marks the cut); max <= 0 means in full. An absent
// position is "-".
func compactJSON(raw json.RawMessage, max int) string {
	if len(raw) == 0 || string(raw) == "null" {
		return "-"
	}
	var b bytes.Buffer
	s := string(raw)
	if json.Compact(&b, raw) == nil {
		s = b.String()
	}
	if max <= 0 || utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	return string(r[:max-1]) + "…"
}

// formatTime renders a checkpoint time, in UTC to the second.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// quoteIfNeeded quotes s when it would not read as one word.
func quoteIfNeeded(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\n\",=") || !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	return s
}

// checkpointFlags lists what is special about a checkpoint, such as
// "savepoint,label=before-migration" or "final".
func checkpointFlags(cp *ckpt.Checkpoint) string {
	var f []string
	if cp.Savepoint {
		f = append(f, "savepoint")
	}
	if cp.Label != "" {
		f = append(f, "label="+quoteIfNeeded(cp.Label))
	}
	if cp.Final {
		f = append(f, "final")
	}
	if len(f) == 0 {
		return "-"
	}
	return strings.Join(f, ",")
}

// stateSizes renders a checkpoint's state size as "raw→stored".
func stateSizes(cp *ckpt.Checkpoint) string {
	if len(cp.State) == 0 && len(cp.Keyed) == 0 {
		return "-"
	}
	return progress.Bytes(cp.RawSize()) + "→" + progress.Bytes(cp.StoredSize())
}

// writtenSize renders what a checkpoint wrote, "-" where its manifest
// does not say (written before ckpt recorded it).
func writtenSize(cp *ckpt.Checkpoint) string {
	if cp.SizeBytes == 0 {
		return "-"
	}
	return progress.Bytes(cp.SizeBytes)
}

// fullSize is the full size of a checkpoint's state, recorded or, in
// manifests written before it was, computed.
func fullSize(cp *ckpt.Checkpoint) int64 {
	if cp.FullSizeBytes > 0 {
		return cp.FullSizeBytes
	}
	return cp.StoredSize()
}

// checkpointJSON is one checkpoint in the JSON output of list and jobs.
// Its field names are part of ckpt's interface, like the manifest's.
type checkpointJSON struct {
	Seq              uint64          `json:"seq"`
	Time             time.Time       `json:"time,omitzero"`
	Trigger          string          `json:"trigger,omitempty"`
	Savepoint        bool            `json:"savepoint"`
	Label            string          `json:"label,omitempty"`
	Final            bool            `json:"final"`
	Records          int64           `json:"records"`
	Bytes            int64           `json:"bytes"`
	Source           json.RawMessage `json:"source,omitempty"`
	Sink             json.RawMessage `json:"sink,omitempty"`
	StateRawBytes    int64           `json:"state_raw_bytes"`
	StateStoredBytes int64           `json:"state_stored_bytes"`
	// SizeBytes is what the checkpoint wrote to the store (0 if its
	// manifest predates the field); FullSizeBytes the stored size of all
	// the state it references, shared blobs of earlier checkpoints too.
	SizeBytes     int64             `json:"size_bytes"`
	FullSizeBytes int64             `json:"full_size_bytes"`
	Metadata      map[string]string `json:"metadata,omitempty"`
	// Corrupt is set when the manifest does not decode; Error says why.
	// Blobs are not read: `verify` checks them.
	Corrupt bool   `json:"corrupt"`
	Error   string `json:"error,omitempty"`
}

func entryJSON(e ckpt.Entry) checkpointJSON {
	if e.Checkpoint == nil {
		return checkpointJSON{Seq: e.Seq, Corrupt: errors.Is(e.Err, ckpt.ErrCorrupt), Error: errorText(e.Err)}
	}
	cp := e.Checkpoint
	return checkpointJSON{
		Seq:              cp.Seq,
		Time:             cp.Time,
		Trigger:          cp.Trigger.String(),
		Savepoint:        cp.Savepoint,
		Label:            cp.Label,
		Final:            cp.Final,
		Records:          cp.Records,
		Bytes:            cp.Bytes,
		Source:           cp.Source,
		Sink:             cp.Sink,
		StateRawBytes:    cp.RawSize(),
		StateStoredBytes: cp.StoredSize(),
		SizeBytes:        cp.SizeBytes,
		FullSizeBytes:    fullSize(cp),
		Metadata:         cp.Metadata,
	}
}

// errorText renders an error for people, without the package prefixes
// that library errors carry at every level of wrapping, on one line.
func errorText(err error) string {
	if err == nil {
		return ""
	}
	return errtext.Plain(err.Error())
}

// entryProblem says why a manifest did not decode, for a table cell.
func entryProblem(e ckpt.Entry) string {
	if errors.Is(e.Err, ckpt.ErrCorrupt) {
		return "corrupt"
	}
	return "unreadable"
}
