package s3io

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path"
	"slices"
	"strings"

	"github.com/ckptdev/ckpt/pipeline"
	"github.com/ckptdev/ckpt/source"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/s3store"
)

// Input is the objects an address names, as the sources read them: Paths
// are their s3:// names, in key order, and Objects reads them. Close
// releases its connections.
type Input struct {
	Paths   []string
	Objects source.Objects
	st      *s3store.Store
}

// Close releases the input's connections.
func (in *Input) Close() error { return in.st.Close() }

// OpenInput lists the objects that addr names (a key, a glob over keys,
// or a prefix ending in '/', whose objects directly under it ending in one
// of exts are taken, or all if exts is empty), in key order. Reads use
// ctx.
func OpenInput(ctx context.Context, addr string, exts []string, log *slog.Logger) (*Input, error) {
	st, key, err := open(ctx, addr, log)
	if err != nil {
		return nil, err
	}
	in, err := list(ctx, st, key, exts)
	if err != nil {
		st.Close()
		return nil, err
	}
	return in, nil
}

func list(ctx context.Context, st *s3store.Store, key string, exts []string) (*Input, error) {
	objs := &objects{ctx: ctx, st: st, known: make(map[string]s3store.ObjectInfo)}
	in := &Input{Objects: objs, st: st}
	name := func(k string) string { return display(st.Bucket(), k) }
	glob := strings.IndexAny(key, "*?[")
	dir := strings.HasSuffix(key, "/")
	if glob < 0 && !dir {
		in.Paths = []string{name(key)}
		return in, nil
	}
	prefix := key
	if glob >= 0 {
		prefix = key[:glob]
		if _, err := path.Match(key, ""); err != nil {
			return nil, fmt.Errorf("bad input pattern %q: %w", key, err)
		}
	}
	listed, err := st.ListKeys(ctx, prefix)
	if err != nil {
		return nil, err
	}
	// As in a shell and as for local files: a pattern matches no hidden
	// name (nor the upload tails of an output, kept under .ckpt-tail/)
	// unless its last element starts with a dot.
	hiddenOK := strings.HasPrefix(path.Base(key), ".")
	for _, o := range listed {
		rest := o.Key[len(prefix):]
		switch {
		case strings.HasSuffix(o.Key, "/"):
			continue // a "folder" marker
		case dir && (strings.Contains(rest, "/") || len(exts) > 0 && !slices.ContainsFunc(exts, func(x string) bool { return strings.HasSuffix(o.Key, x) })):
			continue
		case glob >= 0:
			if ok, _ := path.Match(key, o.Key); !ok {
				continue
			}
		}
		if !hiddenOK && strings.HasPrefix(path.Base(o.Key), ".") {
			continue
		}
		objs.known[o.Key] = o
		in.Paths = append(in.Paths, name(o.Key))
	}
	slices.Sort(in.Paths)
	if len(in.Paths) == 0 {
		if dir {
			return nil, fmt.Errorf("%w: %s holds no %s objects", source.ErrNoInput, name(key), strings.Join(exts, " or "))
		}
		return nil, fmt.Errorf("%w: pattern %s matches no objects", source.ErrNoInput, name(key))
	}
	return in, nil
}

// objects reads a bucket's objects for the sources.
type objects struct {
	ctx   context.Context
	st    *s3store.Store
	known map[string]s3store.ObjectInfo // from the listing: no HEAD needed
}

func (o *objects) key(name string) (string, error) {
	k, ok := strings.CutPrefix(name, "s3://"+o.st.Bucket()+"/")
	if !ok {
		return "", fmt.Errorf("s3io: %s is not an object of bucket %s", name, o.st.Bucket())
	}
	return k, nil
}

// Fingerprint is an object's ETag and size: S3 gives a new ETag to every
// new version of an object, so that no content hash is needed.
func (o *objects) Fingerprint(name string) (source.Fingerprint, error) {
	key, err := o.key(name)
	if err != nil {
		return source.Fingerprint{}, err
	}
	if info, ok := o.known[key]; ok {
		return source.Fingerprint{Path: name, Size: info.Size, ETag: info.ETag}, nil
	}
	head, err := o.st.HeadObject(o.ctx, key)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return source.Fingerprint{}, fmt.Errorf("%s: no such object: %w", name, fs.ErrNotExist)
		}
		return source.Fingerprint{}, err
	}
	var size int64
	if head.ContentLength != nil {
		size = *head.ContentLength
	}
	etag := ""
	if head.ETag != nil {
		etag = *head.ETag
	}
	return source.Fingerprint{Path: name, Size: size, ETag: etag}, nil
}

// Open reads the object from off with one ranged GET, resumed where it
// broke if the connection fails, from the version fp names.
func (o *objects) Open(fp source.Fingerprint, off int64) (io.ReadCloser, error) {
	key, err := o.key(fp.Path)
	if err != nil {
		return nil, err
	}
	r, err := o.st.GetRange(o.ctx, key, fp.ETag, off, fp.Size)
	if err != nil {
		if code, status := s3store.ErrorCode(err); status == 412 || status == 404 || code == "NoSuchKey" {
			return nil, fmt.Errorf("%w: %s was replaced or removed: %w", source.ErrInputChanged, fp.Path, err)
		}
		return nil, err
	}
	return r, nil
}

// CSV opens the CSV objects addr names (see OpenInput; a prefix takes its
// .csv objects, or .tsv and .tab ones with a tab separator, compressed
// or not) as a pipeline source.
func CSV(addr string, opts source.CSVOptions, log *slog.Logger) pipeline.Opener[*source.Row] {
	exts := []string{".csv"}
	if opts.Comma == '\t' {
		exts = []string{".tsv", ".tab"}
	}
	return func(ctx context.Context, pos json.RawMessage) (pipeline.Source[*source.Row], error) {
		in, err := OpenInput(ctx, addr, withCompressed(exts), log)
		if err != nil {
			return nil, err
		}
		opts.Objects = in.Objects
		c, err := source.OpenCSV(in.Paths, pos, opts)
		if err != nil {
			in.Close()
			return nil, err
		}
		return &closing[*source.Row]{Source: c, in: in}, nil
	}
}

// Lines opens the objects addr names (a prefix takes its .jsonl, .ndjson
// and .txt objects, compressed or not) as a pipeline source of lines.
func Lines(addr string, log *slog.Logger) pipeline.Opener[*source.Line] {
	return func(ctx context.Context, pos json.RawMessage) (pipeline.Source[*source.Line], error) {
		in, err := OpenInput(ctx, addr, withCompressed([]string{".jsonl", ".ndjson", ".txt"}), log)
		if err != nil {
			return nil, err
		}
		l, err := source.OpenLinesFrom(in.Objects, in.Paths, pos)
		if err != nil {
			in.Close()
			return nil, err
		}
		return &closing[*source.Line]{Source: l, in: in}, nil
	}
}

func withCompressed(exts []string) []string {
	out := slices.Clone(exts)
	for _, e := range exts {
		for _, c := range source.CompressionSuffixes {
			out = append(out, e+c)
		}
	}
	return out
}

// positioned is what the file sources are besides a pipeline.Source.
type positioned[R any] interface {
	pipeline.Source[R]
	Consumed() int64
	Size() int64
	Paths() []string
}

// closing is a file source over objects that releases the bucket's
// connections when closed. It keeps the source's Sized and InputFiles.
type closing[R any] struct {
	pipeline.Source[R]
	in *Input
}

func (c *closing[R]) Consumed() int64 { return c.Source.(positioned[R]).Consumed() }
func (c *closing[R]) Size() int64     { return c.Source.(positioned[R]).Size() }
func (c *closing[R]) Paths() []string { return c.in.Paths }

// Header returns a CSV source's column names.
func (c *closing[R]) Header() []string {
	if h, ok := c.Source.(interface{ Header() []string }); ok {
		return h.Header()
	}
	return nil
}

func (c *closing[R]) Close() error {
	err := c.Source.Close()
	c.in.Close()
	return err
}

// Names reports whether the input address in would name the object at
// the output address out once it exists: the same bucket, and the same
// key, a pattern that matches it, or a prefix that holds it. A job whose
// output is among its inputs would read it on a rerun.
func Names(in, out string) bool {
	li, err1 := store.ParseURL(in)
	lo, err2 := store.ParseURL(out)
	if err1 != nil || err2 != nil || li.URL == nil || lo.URL == nil || li.URL.Host != lo.URL.Host {
		return false
	}
	pattern := strings.TrimPrefix(li.URL.Path, "/")
	key := strings.TrimPrefix(lo.URL.Path, "/")
	switch {
	case strings.HasSuffix(pattern, "/"):
		rest, ok := strings.CutPrefix(key, pattern)
		return ok && !strings.Contains(rest, "/")
	case strings.ContainsAny(pattern, "*?["):
		ok, _ := path.Match(pattern, key)
		return ok
	}
	return pattern == key
}
