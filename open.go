package ckpt

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/ckptdev/ckpt/store"
	// The local directory and the in-memory store are always available;
	// other backends register their schemes when a program imports them
	// (store/s3store, store/pgstore), so that a program that keeps its
	// checkpoints on local disk links neither the AWS SDK nor pgx.
	_ "github.com/ckptdev/ckpt/store/filestore"
	_ "github.com/ckptdev/ckpt/store/memstore"
)

// DefaultStore is the store used when none is given: a directory named
// .ckpt in the working directory.
const DefaultStore = ".ckpt"

// OpenStore opens the store at a URL (see store.ParseURL for the forms)
// with the backend registered for its scheme (see store.Open): local
// directories and mem:// always; s3:// and postgres:// once the program
// imports store/s3store or store/pgstore, else the error (matching
// store.ErrNoBackend) names the import. The caller closes the store.
func OpenStore(ctx context.Context, url string, log *slog.Logger) (store.Store, error) {
	if url == "" {
		url = DefaultStore
	}
	st, err := store.Open(ctx, url, log)
	if err != nil {
		return nil, fmt.Errorf("ckpt: %w", err)
	}
	return st, nil
}
