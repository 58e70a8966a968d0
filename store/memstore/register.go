package memstore

import (
	"context"
	"log/slog"

	"github.com/ckptdev/ckpt/store"
)

// Every open of a mem:// address is a new, empty store.
func init() {
	store.Register("mem", func(ctx context.Context, loc store.Location, log *slog.Logger) (store.Store, error) {
		return New(), nil
	})
}
