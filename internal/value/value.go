// Package value saves and loads values outside any job, serialized the way
// checkpoint state is (a codec, zstd, cut into content-addressed,
// checksummed chunks). The asset layer keeps materialized values with it.
// Whoever saves values decides when their blobs are removed; nothing
// collects them.
package value

import (
	"context"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/codec"
	"github.com/ckptdev/ckpt/internal/enginehook"
	"github.com/ckptdev/ckpt/store"
)

// Options configure Save. The zero value means JSON, compressed.
type Options struct {
	Codec        codec.Codec // nil means codec.JSON
	Uncompressed bool
}

// Package ckpt has set the hooks by the time this package initializes,
// since this package imports it.
var (
	save = enginehook.SaveValue.(func(context.Context, store.Store, string, string, any, codec.Codec, bool) (ckpt.StateRef, error))
	load = enginehook.LoadValue.(func(context.Context, store.Store, string, ckpt.StateRef, codec.Codec, any) error)
)

// Save serializes v into blobs named prefix + chunk id (prefix ends in
// "/", as "assets/orders/blobs/") and returns the reference that Load
// needs. Blobs are durable when it returns; chunks already in the store
// under prefix are written again (harmless: same content).
func Save(ctx context.Context, st store.Store, prefix, name string, v any, o Options) (ckpt.StateRef, error) {
	return save(ctx, st, prefix, name, v, o.Codec, o.Uncompressed)
}

// Load decodes the value ref names into v (a pointer), verifying every
// chunk, with the codec recorded in ref unless c is given. A damaged
// chunk or reference is an error wrapping ckpt.ErrCorrupt.
func Load(ctx context.Context, st store.Store, prefix string, ref ckpt.StateRef, c codec.Codec, v any) error {
	return load(ctx, st, prefix, ref, c, v)
}

// Blobs returns the names of the blobs in the store that ref uses (inline
// chunks have none), so their owner can delete them.
func Blobs(prefix string, ref ckpt.StateRef) []string {
	var names []string
	for _, c := range ref.Chunks {
		if c.Data == nil {
			names = append(names, prefix+c.ID)
		}
	}
	return names
}
