package s3store

import (
	"context"
	"log/slog"

	"github.com/ckptdev/ckpt/store"
)

// Importing the package makes s3:// addresses open with store.Open.
func init() {
	store.Register("s3", func(ctx context.Context, loc store.Location, log *slog.Logger) (store.Store, error) {
		return OpenURL(ctx, loc, log)
	})
}
