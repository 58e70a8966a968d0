package ckpt

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/filestore"
	"github.com/ckptdev/ckpt/store/memstore"
	"github.com/ckptdev/ckpt/store/pgstore"
	"github.com/ckptdev/ckpt/store/s3store"
)

// DefaultStore is the store used when none is given: a directory named
// .ckpt in the working directory.
const DefaultStore = ".ckpt"

// OpenStore opens the store at a URL (see store.ParseURL for the forms).
// The caller closes it.
func OpenStore(ctx context.Context, url string, log *slog.Logger) (store.Store, error) {
	if url == "" {
		url = DefaultStore
	}
	loc, err := store.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("ckpt: %w", err)
	}
	switch loc.Scheme {
	case "file":
		st, err := filestore.Open(loc.Path, filestore.Options{Logger: log})
		if err != nil {
			return nil, fmt.Errorf("ckpt: open store %s: %w", loc, err)
		}
		return st, nil
	case "mem":
		return memstore.New(), nil
	case "s3":
		st, err := s3store.OpenURL(ctx, loc, log)
		if err != nil {
			return nil, fmt.Errorf("ckpt: open store %s: %w", loc, err)
		}
		return st, nil
	case "postgres":
		st, err := pgstore.Open(ctx, url, pgstore.Options{Logger: log})
		if err != nil {
			return nil, fmt.Errorf("ckpt: open store %s: %w", loc, err)
		}
		return st, nil
	}
	return nil, fmt.Errorf("ckpt: open store %s: the %s backend is not available in this build", loc, loc.Scheme)
}
