package ckpt

import (
	"context"
	"errors"
	"fmt"

	"github.com/ckptdev/ckpt/codec"
	"github.com/ckptdev/ckpt/internal/enginehook"
	"github.com/ckptdev/ckpt/store"
)

// Values are serialized the way checkpoint state is, but live outside any
// job: the asset layer keeps materialized values with them, through
// package internal/value, which calls the functions below.

func init() {
	enginehook.SaveValue = saveValue
	enginehook.LoadValue = loadValue
}

// saveValue serializes v into blobs named prefix + chunk id and returns
// their reference. Blobs are durable when it returns.
func saveValue(ctx context.Context, st store.Store, prefix, name string, v any, c codec.Codec, uncompressed bool) (StateRef, error) {
	if err := store.ValidPrefix(prefix); err != nil || prefix == "" || prefix[len(prefix)-1] != '/' {
		return StateRef{}, fmt.Errorf("ckpt: value prefix %q must be a valid store prefix ending in /", prefix)
	}
	if c == nil {
		c = codec.JSON{}
	}
	comp := codec.Zstd
	if uncompressed {
		comp = codec.None
	}
	ref, err := writeState(ctx, st, prefix, name, c, v, comp, defaultChunkSize, nil)
	if err != nil {
		return StateRef{}, fmt.Errorf("ckpt: save value %q: %w", name, err)
	}
	return ref, nil
}

// loadValue decodes the value ref names into v, verifying every chunk,
// with the codec recorded in ref unless c is given.
func loadValue(ctx context.Context, st store.Store, prefix string, ref StateRef, c codec.Codec, v any) error {
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
