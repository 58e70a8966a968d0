package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/pipeline"
	"github.com/ckptdev/ckpt/store"
)

// A job's default name is unique per output: a readable part (the command
// and the output's file or table name, cut and with unusual characters
// replaced) and a short hash of the output's identity, such as
// "convert-orders.jsonl-3f9a1c0b7e2d". Two outputs whose readable parts
// are the same ("my out.jsonl" and "my_out.jsonl", or d1/out.jsonl and
// d2/out.jsonl in one store) differ in the hash, so they are two jobs.
//
// The identity of a file is its absolute, cleaned path (symbolic links
// resolved); of a table, its
// name as given (the table's checkpoints live in its own database, so the
// database is implied by the store). Moving an output's directory makes a
// new job; --job keeps the old one.

// hashLen is the hex digits of the identity's hash in a job name: 48 bits,
// so that two outputs sharing a store collide with odds of about one in
// 10^14.
const hashLen = 12

// jobName derives the default job name for verb writing the output whose
// readable name is display (a file's base name, a table's name) and whose
// identity is id.
func jobName(verb, display, id string) string {
	sum := sha256.Sum256([]byte(id))
	suffix := "-" + hex.EncodeToString(sum[:])[:hashLen]
	name := sanitizeName(verb + "-" + display)
	if room := 128 - len(suffix); len(name) > room {
		name = name[:room]
	}
	return name + suffix
}

// legacyJobName is the name earlier versions of ckpt derived: the command
// and the output's base name only, so it could be shared by two outputs.
func legacyJobName(verb, output string) string {
	name := sanitizeName(verb + "-" + filepath.Base(output))
	if len(name) > 128 {
		name = name[:128]
	}
	return name
}

// sanitizeName replaces every character a job name does not allow by '_'.
func sanitizeName(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c < 0x80 && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// fileIdentity is the identity of an output file: its absolute, cleaned
// path, with symbolic links resolved in the part that exists, so that one
// file reached through a link is one job.
func fileIdentity(output string) (string, error) {
	if _, err := filepath.Abs(output); err != nil {
		return "", fmt.Errorf("output %s: %w", output, err)
	}
	return "file:" + realPath(output), nil
}

// tableIdentity is the identity of an output table.
func tableIdentity(table string) string { return "table:" + table }

// target is what a run writes: the output as the user gave it (a path, or
// a table's name), its identity, and how messages show it.
type target struct {
	verb    string
	output  string // the path, or the table's name
	id      string
	display string // for messages: the path, or the address without password
	isFile  bool
	// noLegacy: no earlier ckpt wrote such outputs, so no job can have
	// the name earlier versions gave jobs (an S3 object).
	noLegacy bool
}

// checkStoreApart refuses a local store that is the output, lies inside
// it, or holds it: the job would write its checkpoints over its output or
// its output into the store's directory. Nothing exists yet when this
// refuses.
func checkStoreApart(storeURL string, outputs ...string) error {
	loc, err := store.ParseURL(storeURL)
	if err != nil {
		return usageErrorf("--store: %w", err)
	}
	if loc.Scheme != "file" {
		return nil
	}
	st := realPath(loc.Path)
	for _, o := range outputs {
		if o == "" {
			continue
		}
		out := realPath(o)
		switch {
		case out == st:
			return usageErrorf("--store %s is the output %s: give the store a directory of its own", loc.Path, o)
		case within(st, out):
			return usageErrorf("--store %s is inside the output %s: give the store a directory of its own", loc.Path, o)
		case within(out, st):
			return usageErrorf("the output %s is inside the store %s: write it elsewhere, or give the store a directory of its own", o, loc.Path)
		}
	}
	return nil
}

// realPath returns p absolute and cleaned, with symbolic links resolved
// in the longest part of it that exists.
func realPath(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return filepath.Clean(p)
	}
	rest := ""
	for dir := abs; ; dir = filepath.Dir(dir) {
		if r, err := filepath.EvalSymlinks(dir); err == nil {
			return filepath.Join(r, rest)
		}
		if dir == filepath.Dir(dir) {
			return abs
		}
		rest = filepath.Join(filepath.Base(dir), rest)
	}
}

// within reports whether path lies strictly inside dir.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// inspectStore looks at the store before a run: it settles the job's
// name when the store holds a job under the name earlier versions of ckpt
// derived and --job did not name it (jobGiven). A local store that does
// not exist yet holds nothing and is not created.
func (a *app) inspectStore(ctx context.Context, cfg *pipeline.Config, t target, jobGiven, defaultStore bool) error {
	if jobGiven {
		return nil
	}
	loc, err := store.ParseURL(cfg.Store)
	if err != nil {
		return usageErrorf("--store: %w", err)
	}
	if loc.Scheme == "file" {
		if _, err := os.Stat(loc.Path); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
	}
	st, err := ckpt.OpenStore(ctx, cfg.Store, a.log)
	if err != nil {
		return err
	}
	defer st.Close()
	return a.settleLegacyName(ctx, st, loc, cfg, t, defaultStore)
}

// settleLegacyName decides what to do with a job that has the name earlier
// versions of ckpt gave this output. Such a name may belong to another
// output (it was derived from the base name alone), so it is used only
// where it cannot: for a table (in its own database), and in the default
// store beside an output file when no other file there maps to the same
// name. Anywhere else ckpt stops and asks: --job NAME resumes the old job,
// --restart starts the new one.
func (a *app) settleLegacyName(ctx context.Context, st store.Store, loc store.Location, cfg *pipeline.Config, t target, defaultStore bool) error {
	legacy := legacyJobName(t.verb, t.output)
	if t.noLegacy || ckpt.ValidJobName(legacy) != nil || legacy == cfg.Job {
		return nil
	}
	old, err := ckpt.List(ctx, st, legacy)
	if err != nil || len(old) == 0 {
		return err
	}
	cur, err := ckpt.List(ctx, st, cfg.Job)
	if err != nil || len(cur) > 0 {
		return err // the new job exists: the old one was left behind
	}
	if cfg.Restart {
		a.log.Info("starting over under the job's new name; the old job's checkpoints stay in the store",
			"job", cfg.Job, "old_job", legacy, "delete_with", fmt.Sprintf("ckpt checkpoints delete --all --yes --store %s --job %s", loc, legacy))
		return nil
	}
	// A table's name is letters, digits, '_' and '.': its old name was its
	// own unless cut, and its checkpoints live in its own database.
	ownTable := !t.isFile && len(t.verb)+1+len(t.output) <= 128
	if ownTable || defaultStore && t.isFile && onlyOwner(t.output, legacy, t.verb) {
		a.log.Info("continuing the job under the name an earlier ckpt gave it", "job", legacy, "new_name", cfg.Job)
		cfg.Job = legacy
		return nil
	}
	return &codedError{code: exitUsage, err: fmt.Errorf(
		"store %s holds job %q, named as earlier versions of ckpt named jobs, which may be this output's or another's with the same file name", loc, legacy),
		hint: fmt.Sprintf("pass --job %s to continue it, or --restart to start %s over as job %s", legacy, t.display, cfg.Job)}
}

// onlyOwner reports whether output is the only entry of its directory whose
// legacy job name is legacy.
func onlyOwner(output, legacy, verb string) bool {
	entries, err := os.ReadDir(filepath.Dir(output))
	if err != nil {
		return false
	}
	base := filepath.Base(output)
	for _, e := range entries {
		if e.Name() != base && legacyJobName(verb, e.Name()) == legacy {
			return false
		}
	}
	return true
}
