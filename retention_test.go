//go:build linux

package ckpt_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/codec"
)

// Retention deletes a blob when the last kept checkpoint naming it goes,
// and not before: a chunk that a newer checkpoint shares with a pruned
// one stays, whether the newer one reused the blob or wrote it again.
// It reuses the blob when it knows it sound (committed by this run, or
// verified by the resume), and writes it again otherwise.
func TestRetentionKeepsSharedBlobs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openFileStore(t, dir)
	shared := sha256.Sum256(crashStateFor(2).Shared)
	sharedBlob := filepath.Join(dir, "jobs", "shared", "blobs", hex.EncodeToString(shared[:]))
	// A Put writes a new file and renames it into place: a blob written
	// again has a new inode.
	inode := func() uint64 {
		t.Helper()
		fi, err := os.Stat(sharedBlob)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	var lastInode uint64
	open := func() *ckpt.Job[crashState] {
		t.Helper()
		j, err := ckpt.Open[crashState](ctx, "shared", ckpt.Config{Store: dir, Codec: codec.Binary{}, NoSignals: true, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { j.Close() })
		ckpt.SetChunkSize(j, crashChunk)
		return j
	}
	j := open()
	for seq := uint64(1); seq <= 12; seq++ {
		if seq == 6 || seq == 10 {
			// Resume from 5 (no shared part) and from 9 (none either).
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			j = open()
		}
		j.State = crashStateFor(seq)
		if _, err := j.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		switch seq {
		case 2:
			lastInode = inode()
		case 5, 8: // 2 was committed by this run; 5 was resumed from
			if ino := inode(); ino != lastInode {
				t.Fatalf("checkpoint %d wrote the shared blob again; it is known sound", seq)
			}
		case 11: // resumed from 9, which does not name the shared blob
			if ino := inode(); ino == lastInode {
				t.Fatalf("checkpoint %d reused the shared blob, which no read since the resume verified", seq)
			}
		}
		entries := listSeqs(t, st, "shared")
		if len(entries) != min(int(seq), 3) {
			t.Fatalf("after checkpoint %d: %d kept, want %d", seq, len(entries), min(int(seq), 3))
		}
		referenced := map[string]bool{}
		for _, e := range entries {
			if err := ckpt.Verify(ctx, st, e.Checkpoint); err != nil {
				t.Fatalf("after checkpoint %d: kept checkpoint %d: %v", seq, e.Seq, err)
			}
			for _, c := range e.Checkpoint.State[0].Chunks {
				if c.Data == nil {
					referenced[c.ID] = true
				}
			}
		}
		blobs, err := os.ReadDir(filepath.Join(dir, "jobs", "shared", "blobs"))
		if err != nil {
			t.Fatal(err)
		}
		if len(blobs) != len(referenced) {
			t.Fatalf("after checkpoint %d: %d blobs in the store, %d referenced", seq, len(blobs), len(referenced))
		}
		for _, b := range blobs {
			if !referenced[b.Name()] {
				t.Fatalf("after checkpoint %d: blob %s is referenced by no kept checkpoint", seq, b.Name())
			}
		}
	}
}
