package asset

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sync/atomic"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/asset/eventlog"
	"github.com/ckptdev/ckpt/codec"
	"github.com/ckptdev/ckpt/internal/value"
	"github.com/ckptdev/ckpt/store"
)

// File is a value kept as a file, for values too large to hold in memory:
// its bytes are streamed into the store in chunks when the asset is
// materialized, and streamed back into a file of the run's working
// directory for each downstream asset that reads it (removed when the run
// ends). An asset whose value is a File writes the file and returns its
// path.
type File struct {
	Path string `json:"path"`
}

// maxExternal bounds the description an External asset records in the
// event log.
const maxExternal = 64 << 10

// fileCodec stores a File as the bytes of the file it names, and decodes
// into a new file in dir.
type fileCodec struct {
	dir string
	seq *atomic.Int64
}

func (fileCodec) Name() string { return "file" }

func (fileCodec) Encode(w io.Writer, v any) error {
	var path string
	switch f := v.(type) {
	case File:
		path = f.Path
	case *File:
		path = f.Path
	default:
		return fmt.Errorf("file codec: %T is not an asset.File", v)
	}
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	_, err = io.Copy(w, src)
	return err
}

func (c fileCodec) Decode(r io.Reader, v any) error {
	f, ok := v.(*File)
	if !ok {
		return fmt.Errorf("file codec: %T is not a *asset.File", v)
	}
	if c.dir == "" {
		return errors.New("file codec: no directory to restore files into")
	}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return err
	}
	dst, err := os.CreateTemp(c.dir, fmt.Sprintf("value-%d-*", c.seq.Add(1)))
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, r); err != nil {
		dst.Close()
		os.Remove(dst.Name())
		return err
	}
	if err := dst.Close(); err != nil {
		os.Remove(dst.Name())
		return err
	}
	f.Path = dst.Name()
	return nil
}

// valuePrefix is where the blobs of an asset's values live: content
// addressed, so a value saved twice is stored once.
func (in *Instance) valuePrefix(key string) string { return in.prefix + key + "/blobs/" }

// codecFor returns the codec that writes n's values.
func (in *Instance) codecFor(n *node, dir string) codec.Codec {
	if n.file {
		return fileCodec{dir: dir, seq: &in.fileSeq}
	}
	if n.spec.Codec != nil {
		return n.spec.Codec
	}
	return codec.JSON{}
}

// saveValue persists v, the value of n's partition part, and fills in the
// materialization's value reference and size.
func (in *Instance) saveValue(ctx context.Context, n *node, part string, v any, m *eventlog.Materialization) error {
	if n.spec.External {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode the description of external asset %s: %w", n.key, err)
		}
		if len(b) > maxExternal {
			return fmt.Errorf("the description of external asset %s is %d bytes, more than %d: record where the data is, not the data", n.key, len(b), maxExternal)
		}
		m.External = b
		m.Bytes = int64(len(b))
		return nil
	}
	st, err := in.storeFor(ctx, n.spec.Store)
	if err != nil {
		return err
	}
	ref, err := value.Save(ctx, st, in.valuePrefix(n.key), inputName(n.key, part), v,
		value.Options{Codec: in.codecFor(n, ""), Uncompressed: n.spec.Uncompressed})
	if err != nil {
		return err
	}
	m.Value = &ref
	m.Store = n.spec.Store
	m.Bytes = ref.StoredSize
	return nil
}

// loadValue reads the value a materialization of n references.
func (in *Instance) loadValue(ctx context.Context, n *node, m *eventlog.Materialization, dir string) (any, error) {
	p := n.newV()
	switch {
	case m.External != nil:
		if err := json.Unmarshal(m.External, p); err != nil {
			return nil, fmt.Errorf("decode the description of external asset %s: %w", n.key, err)
		}
	case m.Value != nil:
		st, err := in.storeFor(ctx, m.Store)
		if err != nil {
			return nil, err
		}
		var c codec.Codec
		if own := in.codecFor(n, dir); own.Name() == m.Value.Codec {
			c = own // also a codec that codec.ByName does not know
		}
		if err := value.Load(ctx, st, in.valuePrefix(n.key), *m.Value, c, p); err != nil {
			return nil, fmt.Errorf("load the value of %s: %w", n.key, err)
		}
	default:
		return nil, fmt.Errorf("the materialization of %s has no value", n.key)
	}
	return n.deref(p), nil
}

// storeFor returns the open store at url ("" for the instance's own).
func (in *Instance) storeFor(ctx context.Context, url string) (store.Store, error) {
	if url == "" {
		return in.st, nil
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if st, ok := in.stores[url]; ok {
		return st, nil
	}
	st, err := ckpt.OpenStore(ctx, url, in.logger)
	if err != nil {
		return nil, err
	}
	in.stores[url] = st
	return st, nil
}

// rowsOf returns the length of a slice, array or map value, or -1.
func rowsOf(v any) int64 {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array, reflect.Map:
		return int64(rv.Len())
	}
	return -1
}

// runDir is the working directory of a run, for File values restored for
// its assets.
func (in *Instance) runDir(runID string) string {
	return filepath.Join(in.workDir, "ckpt-assets-"+runID)
}

// Load decodes the newest materialized value of key's partition ("" when
// unpartitioned) into v, a pointer to the asset's value type. A File is
// restored into a new file of the instance's WorkDir, which the caller
// removes.
func (in *Instance) Load(ctx context.Context, key, part string, v any) error {
	n, ok := in.g.byKey[key]
	if !ok {
		return fmt.Errorf("asset: %w: %q", ErrUnknownAsset, key)
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Type().Elem() != n.out {
		return fmt.Errorf("asset: load %s: %w: it is a %v, so v must be a *%v, not a %T", key, ErrTypeMismatch, n.out, n.out, v)
	}
	s, ok, err := in.log.State(ctx, key, part)
	if err != nil {
		return fmt.Errorf("asset: %w", err)
	}
	if ok {
		if s.Materialization != nil && s.Materialization.Materialization != nil {
			val, err := in.loadValue(ctx, n, s.Materialization.Materialization, in.workDir)
			if err != nil {
				return fmt.Errorf("asset: %w", err)
			}
			if val != nil {
				rv.Elem().Set(reflect.ValueOf(val))
			}
			return nil
		}
	}
	return fmt.Errorf("asset: %s has never been materialized: %w", inputName(key, part), eventlog.ErrNotFound)
}
