package ckpt_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/codec"
)

// A job saves and restores its state with each compression; the formats
// written are the oldest that describe them: version 1 for none and zstd,
// which a ckpt reading only version 1 still reads, version 2 (manifest and
// blobs) for s2. A job may change its compression between runs, and
// every checkpoint still reads, each blob by its own header.
func TestCompressions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	// Over 4 KiB compressed, so that the state is a blob, not inline.
	words := map[string]int{}
	for i := range 300 {
		words[fmt.Sprintf("w%03d-%s", i, randomText(t, 40))] = i
	}
	runs := []struct {
		name     string
		cfg      ckpt.Config
		comp     string
		manifest string
	}{
		{"default", ckpt.Config{}, "s2", "ckpt-manifest 2 "},
		{"s2", ckpt.Config{Compression: codec.S2}, "s2", "ckpt-manifest 2 "},
		{"zstd", ckpt.Config{Compression: codec.Zstd}, "zstd", "ckpt-manifest 1 "},
		{"none", ckpt.Config{Compression: codec.S2, Uncompressed: true}, "none", "ckpt-manifest 1 "},
		{"s2 again", ckpt.Config{Compression: codec.S2}, "s2", "ckpt-manifest 2 "},
	}
	for i, run := range runs {
		run.cfg.Retain = -1
		j := openJob(t, dir, run.cfg)
		if i > 0 && (j.State.Next != i || !maps.Equal(j.State.Words, words)) {
			t.Fatalf("run %s: resumed at %d with %d words, want %d and every word", run.name, j.State.Next, len(j.State.Words), i)
		}
		if i == 0 {
			j.State.Words = words
		}
		j.State.Next = i + 1
		j.State.Sum += int64(i)
		cp, err := j.Checkpoint(ctx)
		if err != nil {
			t.Fatalf("run %s: %v", run.name, err)
		}
		if got := cp.State[0].Compression; got != run.comp {
			t.Errorf("run %s: state compressed with %s, want %s", run.name, got, run.comp)
		}
		if len(cp.State[0].Chunks) != 1 || cp.State[0].Chunks[0].Data != nil {
			t.Fatalf("run %s: want the state in one blob, not inline: %+v", run.name, cp.State[0].Chunks)
		}
		m, err := os.ReadFile(objectPath(dir, manifestObject("count", cp.Seq)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(m, []byte(run.manifest)) {
			t.Errorf("run %s: manifest starts %.20q, want %q", run.name, m, run.manifest)
		}
		b, err := os.ReadFile(objectPath(dir, blobObject("count", cp.State[0].Chunks[0].ID)))
		if err != nil {
			t.Fatal(err)
		}
		if want := byte(1 + strings.Count(run.comp, "s2")); b[3] != want {
			t.Errorf("run %s: blob of format version %d, want %d", run.name, b[3], want)
		}
		if err := ckpt.Verify(ctx, openFileStore(t, dir), cp); err != nil {
			t.Fatalf("run %s: %v", run.name, err)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	}
	j := openJob(t, dir, ckpt.Config{})
	if j.State.Next != len(runs) || !maps.Equal(j.State.Words, words) {
		t.Fatalf("last resume at %d with %d words, want %d and %d", j.State.Next, len(j.State.Words), len(runs), len(words))
	}
	// Every checkpoint still reads, whichever compression wrote it.
	st := openFileStore(t, dir)
	for _, e := range listSeqs(t, st, "count") {
		if e.Err != nil {
			t.Fatalf("checkpoint %d: %v", e.Seq, e.Err)
		}
		var s map[string]any
		if err := ckpt.Load(ctx, st, e.Checkpoint, &s); err != nil {
			t.Fatalf("checkpoint %d (%s): %v", e.Seq, e.Checkpoint.State[0].Compression, err)
		}
	}
}

func TestConfigRefusesUnknownCompression(t *testing.T) {
	_, err := ckpt.Open[counterState](context.Background(), "count", ckpt.Config{Store: t.TempDir(), NoSignals: true, Compression: codec.Compression(9), Logger: quietLogger()})
	if err == nil || !strings.Contains(err.Error(), "Compression") {
		t.Fatalf("Open with compression 9: %v, want an error naming Config.Compression", err)
	}
}

// A version 1 manifest cannot name s2, which version 2 added: one that
// does is damaged (or forged), not of a newer format.
func TestS2InVersion1ManifestIsCorrupt(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	j := openJob(t, dir, ckpt.Config{Compression: codec.S2})
	j.State.Next = 1
	cp, err := j.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	j.Close()
	path := objectPath(dir, manifestObject("count", cp.Seq))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	header, body := splitManifest(t, b)
	if header[1] != "2" {
		t.Fatalf("an s2 checkpoint's manifest is of format %s, want 2", header[1])
	}
	writeManifestFile(t, path, 1, body)
	entries := listSeqs(t, openFileStore(t, dir), "count")
	if len(entries) != 1 || !errors.Is(entries[0].Err, ckpt.ErrCorrupt) || errors.Is(entries[0].Err, ckpt.ErrFormat) {
		t.Fatalf("listed %+v, want the checkpoint corrupt", entries)
	}
}
