package pgstore_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/ckptdev/ckpt/internal/testenv"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/pgstore"
	"github.com/ckptdev/ckpt/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openStore(t, testenv.NewPostgres(t).URL, pgstore.Options{})
	})
}

// With tiny parts every object of the suite spans many rows: the
// streaming paths are the ones checked.
func TestConformanceSmallParts(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: the whole suite again with tiny parts; TestConformance covers the store in -short")
	}
	storetest.Run(t, func(t *testing.T) store.Store {
		return openStore(t, testenv.NewPostgres(t).URL, pgstore.Options{PartSize: 4099})
	})
}

// openStore opens a store the test closes itself (or the suite does).
func openStore(t testing.TB, url string, opts pgstore.Options) *pgstore.Store {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	st, err := pgstore.Open(context.Background(), url, opts)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	return st
}
