//go:build unix

package vfs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// PowerLossStats says what ApplyPowerLoss found in a log and undid.
type PowerLossStats struct {
	// Changes is the number of changes the log records; Undone how many of
	// them no later sync made durable, and were undone.
	Changes, Undone int
}

// ApplyPowerLoss turns the files a killed process left into those a power
// loss at the moment of the kill would have left, from the power-loss log
// at path that a Journal wrote (see PowerLossEnv). It keeps the semantics
// of MemFS.CrashClone: a file's data is as of its last Sync, the names in
// a directory are as of the directory's last sync. Changes are undone
// newest first, each with what the log saved of what it replaced. The
// process that wrote the log must be dead.
//
// Only changes made through the Journal are undone: the program's other
// files keep everything it wrote, as after a kill.
func ApplyPowerLoss(path string) (PowerLossStats, error) {
	var st PowerLossStats
	recs, err := readJournal(path)
	if err != nil {
		return st, err
	}
	// Which changes a later sync covers: walk newest first, collecting the
	// files and directories synced after the change being looked at.
	syncedFile := map[[2]uint64]bool{}
	type dirID struct {
		path string
		gen  int64
	}
	syncedDir := map[dirID]bool{}
	var undo []journalRecord
	for i := len(recs) - 1; i >= 0; i-- {
		r := recs[i]
		switch r.Op {
		case "sync":
			syncedFile[[2]uint64{r.Dev, r.Ino}] = true
			continue
		case "syncdir":
			syncedDir[dirID{r.Path, r.Gen}] = true
			continue
		}
		st.Changes++
		u := r
		switch r.Op {
		case "write", "truncate":
			if syncedFile[[2]uint64{r.Dev, r.Ino}] {
				continue
			}
		case "create", "remove", "mkdir":
			if syncedDir[dirID{filepath.Dir(r.Path), r.PGen}] {
				continue
			}
		case "link":
			if syncedDir[dirID{filepath.Dir(r.New), r.NGen}] {
				continue
			}
		case "rename":
			// Two halves: the old name's removal is durable with its
			// directory, the new name with its own.
			oldDone, newDone := syncedDir[dirID{filepath.Dir(r.Path), r.PGen}], syncedDir[dirID{filepath.Dir(r.New), r.NGen}]
			if oldDone && newDone {
				continue
			}
			if oldDone {
				u.Op = "rename-new" // only the new name is lost
			} else if newDone {
				u.Op = "rename-old" // only the old name comes back
			}
		default:
			return st, fmt.Errorf("vfs: power-loss log %s: record %d: unknown operation %q", path, i+1, r.Op)
		}
		u.last = i == len(recs)-1
		undo = append(undo, u)
	}
	a := applier{known: knownPaths(recs), hold: path + ".keep", cur: map[string]int64{}}
	for _, r := range recs {
		switch {
		case r.Op == "mkdir":
			a.cur[r.Path] = r.Gen
		case r.Op == "remove" && r.Dir:
			a.cur[r.Path] = -1
		}
	}
	for _, r := range undo {
		if err := a.undo(r); err != nil {
			return st, fmt.Errorf("vfs: power loss: undo %s %s: %w", r.Op, r.Path, err)
		}
		st.Undone++
	}
	return st, nil
}

// PowerLossChanges returns the number of changes the power-loss log at
// path records, undoing nothing: for a run that finished.
func PowerLossChanges(path string) (int, error) {
	recs, err := readJournal(path)
	n := 0
	for _, r := range recs {
		if r.Op != "sync" && r.Op != "syncdir" {
			n++
		}
	}
	return n, err
}

// readJournal reads the log's records, dropping cancelled ones. A last line
// cut short by the kill is the record of a change never begun.
func readJournal(path string) ([]journalRecord, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("vfs: power-loss log: %w", err)
	}
	var recs []journalRecord
	for n := 1; len(b) > 0; n++ {
		line, rest, complete := bytes.Cut(b, []byte{'\n'})
		b = rest
		var r journalRecord
		if err := json.Unmarshal(line, &r); err != nil {
			if !complete {
				break
			}
			return nil, fmt.Errorf("vfs: power-loss log %s: line %d: %w", path, n, err)
		}
		if !complete {
			break
		}
		if r.Op == "cancel" {
			if len(recs) > 0 {
				recs = recs[:len(recs)-1]
			}
			continue
		}
		recs = append(recs, r)
	}
	return recs, nil
}

// knownPaths lists every name the log mentions, kept copies included:
// where a file may be found after durable renames and removals moved it.
func knownPaths(recs []journalRecord) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range recs {
		for _, p := range []string{r.Path, r.New, r.Keep} {
			if p != "" && !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out
}

type applier struct {
	known []string
	hold  string // where names undone are moved, for earlier undos that need their file
	held  int
	cur   map[string]int64 // the generation of the directory at a path, as undos go (-1: none)
}

// dirIs reports whether the directory at p is of generation gen.
func (a *applier) dirIs(p string, gen int64) bool {
	if g, ok := a.cur[p]; ok {
		return g == gen
	}
	return gen == 0 && exists(p)
}

// release takes the name p away, keeping its file reachable for the undos
// still to come.
func (a *applier) release(p string) error {
	if err := os.MkdirAll(a.hold, 0o755); err != nil {
		return err
	}
	a.held++
	h := filepath.Join(a.hold, fmt.Sprintf("undone-%d", a.held))
	if err := os.Rename(p, h); err != nil {
		return err
	}
	a.known = append(a.known, h)
	return nil
}

// find returns a name of the file (dev, ino): where the log last saw it,
// or any name the log mentions; "" if it is gone.
func (a *applier) find(p string, dev, ino uint64) string {
	match := func(p string) bool {
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() {
			return false
		}
		d, i := identity(fi)
		return d == dev && i == ino
	}
	if match(p) {
		return p
	}
	for _, k := range a.known {
		if match(k) {
			return k
		}
	}
	return ""
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func (a *applier) undo(r journalRecord) error {
	// A name to bring back whose directory is gone stays gone: the
	// directory's removal was durable, and everything in it went with it
	// (the path may name another directory since).
	// A name that a removed directory held went with it, and a name in a
	// directory made again since is not this record's.
	switch r.Op {
	case "remove", "create", "mkdir":
		if !a.dirIs(filepath.Dir(r.Path), r.PGen) {
			return nil
		}
	case "link":
		if !a.dirIs(filepath.Dir(r.New), r.NGen) {
			return nil
		}
	}
	switch r.Op {
	case "write", "truncate":
		p := a.find(r.Path, r.Dev, r.Ino)
		if p == "" {
			return nil // the file is gone, with its data
		}
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		err = f.Truncate(r.Size)
		if err == nil && len(r.Pre) > 0 {
			_, err = f.WriteAt(r.Pre, r.Off)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	case "create", "link":
		p := r.Path
		if r.Op == "link" {
			p = r.New
		}
		return removeIfExists(p)
	case "mkdir":
		a.cur[r.Path] = -1
		return os.RemoveAll(r.Path)
	case "remove":
		if exists(r.Path) {
			return nil // the removal never happened
		}
		switch {
		case r.Dir:
			if err := os.Mkdir(r.Path, 0o755); err != nil {
				return err
			}
			a.cur[r.Path] = r.Gen
			return nil
		case r.Keep != "":
			return os.Rename(r.Keep, r.Path)
		}
		return nil // not a regular file: nothing was kept
	case "rename", "rename-new", "rename-old":
		at := a.find(r.New, r.Dev, r.Ino)
		if r.last && at != r.New {
			// The kill came between logging the rename and making it.
			if r.Keep != "" {
				os.Remove(r.Keep)
			}
			return nil
		}
		// Every later change in an undone half's directory was undone
		// before this one; what a durable half did later (a removal, a
		// rename onward) stays, and the file is found wherever it went.
		if r.Op != "rename-old" && at == r.New {
			if err := a.release(r.New); err != nil {
				return err
			}
			at = a.known[len(a.known)-1]
		}
		if r.Op != "rename-new" && at != "" && a.dirIs(filepath.Dir(r.Path), r.PGen) && !exists(r.Path) {
			if err := os.Link(at, r.Path); err != nil {
				return err
			}
		}
		if r.Op != "rename-old" && r.Keep != "" && a.dirIs(filepath.Dir(r.New), r.NGen) && !exists(r.New) {
			return os.Rename(r.Keep, r.New)
		}
		return nil
	}
	return fmt.Errorf("unknown operation %q", r.Op)
}

func removeIfExists(p string) error {
	err := os.Remove(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
