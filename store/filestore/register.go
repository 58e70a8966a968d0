package filestore

import (
	"context"
	"log/slog"

	"github.com/ckptdev/ckpt/store"
)

func init() {
	store.Register("file", func(ctx context.Context, loc store.Location, log *slog.Logger) (store.Store, error) {
		return Open(loc.Path, Options{Logger: log})
	})
}
