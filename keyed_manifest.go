package ckpt

import (
	"errors"
	"fmt"

	"github.com/ckptdev/ckpt/codec"
)

// KeyedRef describes a keyed state in a manifest: its runs, oldest first.
type KeyedRef struct {
	Name        string   `json:"name"`
	Key         string   `json:"key"` // the key encoding: string, int or uint
	Codec       string   `json:"codec"`
	Compression string   `json:"compression"`
	Len         int64    `json:"len"` // live keys; -1 if not counted (see Keyed.Merge)
	Runs        []RunRef `json:"runs"`
}

// RunRef names one immutable sorted run of a keyed state.
type RunRef struct {
	ID      string     `json:"id"`      // hex SHA-256 of the run's bytes
	Entries int64      `json:"entries"` // entries, deletions included
	Raw     int64      `json:"raw"`     // bytes
	Stored  int64      `json:"stored"`  // bytes of its blobs, headers included
	Chunks  []ChunkRef `json:"chunks"`  // the run's bytes in order, as blobs
}

// storedSize is the size of the state's blobs in the store.
func (k *KeyedRef) storedSize() int64 {
	var n int64
	for _, r := range k.Runs {
		n += r.Stored
	}
	return n
}

func (k *KeyedRef) validate() error {
	if k.Name == "" {
		return errors.New("keyed state without a name")
	}
	if _, err := codec.ParseCompression(k.Compression); err != nil {
		return err
	}
	if k.Key != "string" && k.Key != "int" && k.Key != "uint" {
		return fmt.Errorf("keyed state %q: unknown key encoding %q", k.Name, k.Key)
	}
	if k.Len < -1 {
		return fmt.Errorf("keyed state %q: negative length", k.Name)
	}
	for _, r := range k.Runs {
		if !validChunkID(r.ID) {
			return fmt.Errorf("keyed state %q: bad run id %q", k.Name, r.ID)
		}
		var raw, stored int64
		for _, c := range r.Chunks {
			if !validChunkID(c.ID) || c.Data != nil {
				return fmt.Errorf("keyed state %q: run %s: bad chunk %q", k.Name, r.ID, c.ID)
			}
			if c.Raw < 0 || c.Raw > codec.MaxBlock || c.Stored < blobHeaderSize {
				return fmt.Errorf("keyed state %q: run %s: impossible sizes", k.Name, r.ID)
			}
			raw += c.Raw
			stored += c.Stored
		}
		if raw != r.Raw || stored != r.Stored || r.Entries < 0 {
			return fmt.Errorf("keyed state %q: run %s: sizes do not add up", k.Name, r.ID)
		}
	}
	return nil
}
