package ckpt_test

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/store"
)

// failingStore fails every read of one object with an error that says
// nothing about the object's content: a store failure.
type failingStore struct {
	store.Store
	object string
	err    error
}

func (s *failingStore) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if name == s.object {
		return nil, s.err
	}
	return s.Store.Get(ctx, name)
}

// VerifyEntries gives each checkpoint its verdict: ok, corrupt (naming the
// object at fault) or unreadable (a newer format); a store failure is no
// verdict and stops it.
func TestVerifyEntriesClassifies(t *testing.T) {
	const job = "verdicts"
	ctx := context.Background()
	dir := t.TempDir()
	states := []payloadState{payloadFor(1, 10<<10), payloadFor(2, 10<<10), payloadFor(3, 10<<10), payloadFor(4, 10<<10)}
	cps := writePayloadCheckpoints(t, dir, job, ckpt.Config{Retain: -1}, states)
	bad := blobObject(job, onlyBlob(t, cps[1]))
	flipByte(t, objectPath(dir, bad), func(n int) int { return n / 2 })
	path := objectPath(dir, manifestObject(job, 3))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, body := splitManifest(t, b)
	writeManifestFile(t, path, ckpt.ManifestVersion+1, body)

	st := openFileStore(t, dir)
	entries, err := ckpt.List(ctx, st, job)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ckpt.VerifyEntries(ctx, st, entries)
	if err != nil {
		t.Fatal(err)
	}
	want := []ckpt.VerifyStatus{ckpt.VerifyOK, ckpt.VerifyCorrupt, ckpt.VerifyUnreadable, ckpt.VerifyOK}
	if len(got) != len(want) {
		t.Fatalf("%d verdicts, want %d", len(got), len(want))
	}
	for i, r := range got {
		if r.Seq != uint64(i+1) || r.Status != want[i] {
			t.Errorf("verdict %d: checkpoint %d %v, want checkpoint %d %v", i, r.Seq, r.Status, i+1, want[i])
		}
		if (r.Status == ckpt.VerifyOK) != (r.Err == nil) {
			t.Errorf("checkpoint %d: %v with error %v", r.Seq, r.Status, r.Err)
		}
	}
	if r := got[1]; r.Object != bad || !errors.Is(r.Err, ckpt.ErrCorrupt) {
		t.Errorf("corrupt checkpoint 2: object %q, error %v; want %q and ErrCorrupt", r.Object, r.Err, bad)
	}
	if r := got[2]; !errors.Is(r.Err, ckpt.ErrFormat) || r.Object != "" {
		t.Errorf("unreadable checkpoint 3: object %q, error %v; want ErrFormat", r.Object, r.Err)
	}

	down := errors.New("connection reset")
	fst := &failingStore{Store: st, object: blobObject(job, onlyBlob(t, cps[3])), err: down}
	got, err = ckpt.VerifyEntries(ctx, fst, entries)
	if !errors.Is(err, down) || errors.Is(err, ckpt.ErrCorrupt) || !strings.Contains(err.Error(), "checkpoint 4") {
		t.Fatalf("verify with the store failing on checkpoint 4: %v, want that failure, naming checkpoint 4, not corruption", err)
	}
	if len(got) != 3 {
		t.Fatalf("%d verdicts before the store failed, want the 3 before checkpoint 4", len(got))
	}
}
