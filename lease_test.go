package ckpt_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/memstore"
)

// takeoverStore hands the job's lock to another writer while the
// manifest of a checkpoint is being created, as a lease that expires
// during a slow write would be taken over.
type takeoverStore struct {
	store.Store
	lease store.Lease
}

func (s *takeoverStore) Lock(ctx context.Context, name string, o store.Owner) (store.Lease, error) {
	l, err := s.Store.Lock(ctx, name, o)
	s.lease = l
	return l, err
}

func (s *takeoverStore) Create(ctx context.Context, name string, r io.Reader) error {
	err := s.Store.Create(ctx, name, r)
	if strings.Contains(name, "/checkpoints/") && s.lease != nil {
		lock := strings.SplitAfter(name, "/checkpoints/")[0]
		lock = strings.TrimSuffix(lock, "checkpoints/") + "LOCK"
		s.lease.Release(ctx)
		if _, lerr := s.Store.Lock(ctx, lock, store.Owner{ID: "the other writer"}); lerr != nil {
			return lerr
		}
	}
	return err
}

// A final checkpoint whose manifest was written as the lease was taken
// over is not reported as taken: the other writer may be rewriting the
// output it describes.
func TestFinishAfterLeaseLostFails(t *testing.T) {
	ctx := context.Background()
	st := &takeoverStore{Store: memstore.New()}
	j, err := ckpt.Open[counterState](ctx, "lost", ckpt.Config{Backend: st, NoSignals: true, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	j.State.Next = 1
	if _, err := j.Finish(ctx); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("Finish with the lease taken over during its commit: %v, want ErrLeaseLost", err)
	}
}
