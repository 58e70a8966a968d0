package ckpt

import (
	"context"
	"errors"
	"fmt"

	"github.com/ckptdev/ckpt/codec"
	"github.com/ckptdev/ckpt/store"
)

// Values are serialized the way checkpoint state is (a codec, zstd, cut
// into content-addressed, checksummed chunks), but live outside any job:
// the asset layer keeps materialized values with them. Whoever saves
// values decides when their blobs are removed; nothing collects them.

// ValueOptions configure SaveValue. The zero value means JSON, compressed.
type ValueOptions struct {
	Codec        codec.Codec // nil means codec.JSON
	Uncompressed bool
}

// SaveValue serializes v into blobs named prefix + chunk id (prefix ends
// in "/", as "assets/orders/blobs/") and returns the reference that
// LoadValue needs. Blobs are durable when it returns; chunks already in
// the store under prefix are written again (harmless: same content).
func SaveValue(ctx context.Context, st store.Store, prefix, name string, v any, o ValueOptions) (StateRef, error) {
	if err := store.ValidPrefix(prefix); err != nil || prefix == "" || prefix[len(prefix)-1] != '/' {
		return StateRef{}, fmt.Errorf("ckpt: value prefix %q must be a valid store prefix ending in /", prefix)
	}
	c := o.Codec
	if c == nil {
		c = codec.JSON{}
	}
	comp := codec.Zstd
	if o.Uncompressed {
		comp = codec.None
	}
	ref, err := writeState(ctx, st, prefix, name, c, v, comp, defaultChunkSize, nil)
	if err != nil {
		return StateRef{}, fmt.Errorf("ckpt: save value %q: %w", name, err)
	}
	return ref, nil
}

// LoadValue decodes the value ref names into v (a pointer), verifying
// every chunk, with the codec recorded in ref unless c is given.
func LoadValue(ctx context.Context, st store.Store, prefix string, ref StateRef, c codec.Codec, v any) error {
	if c == nil {
		var err error
		if c, err = codec.ByName(ref.Codec); err != nil {
			return fmt.Errorf("ckpt: load value %q: %w", ref.Name, err)
		}
	} else if c.Name() != ref.Codec {
		return fmt.Errorf("ckpt: load value %q: written with codec %q, asked to read with %q", ref.Name, ref.Codec, c.Name())
	}
	loc := chunkLoc{prefix: prefix, manifest: "value " + ref.Name}
	// The reference comes from the caller's records, which no checksum
	// guards here: a damaged one must fail, not allocate or panic.
	if err := ref.validate(); err != nil {
		return fmt.Errorf("ckpt: load value %q: %w", ref.Name, &CorruptError{Object: loc.manifest, Err: fmt.Errorf("bad reference: %w", err)})
	}
	if err := decodeChunks(ctx, st, loc, &ref, c, v); err != nil {
		if errors.Is(err, ErrCorrupt) {
			return err
		}
		return fmt.Errorf("ckpt: load value %q: %w", ref.Name, err)
	}
	return nil
}

// ValueBlobs returns the names of the blobs in the store that ref uses
// (inline chunks have none), so their owner can delete them.
func ValueBlobs(prefix string, ref StateRef) []string {
	var names []string
	for _, c := range ref.Chunks {
		if c.Data == nil {
			names = append(names, prefix+c.ID)
		}
	}
	return names
}
