package pgstore

import (
	"context"
	"log/slog"

	"github.com/ckptdev/ckpt/store"
)

// Importing the package makes postgres:// addresses open with store.Open.
func init() {
	store.Register("postgres", func(ctx context.Context, loc store.Location, log *slog.Logger) (store.Store, error) {
		return Open(ctx, loc.URL.String(), Options{Logger: log})
	})
}
