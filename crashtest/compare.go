package crashtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// result is what a finished run left: the compared files (normalized) and
// the check command's output, by name.
type result map[string]entry

type entry struct {
	data    []byte
	missing bool
}

// Difference is the first place where a trial's result differs from the
// reference's.
type Difference struct {
	// Path is the file (relative to the scratch directory) or the check
	// command that differs.
	Path string `json:"path"`
	// Reason is "missing", "unexpected" or "content".
	Reason string `json:"reason"`
	// Offset is the byte offset of the first differing byte, and Line its
	// line (1-based), when Reason is "content".
	Offset int64 `json:"offset"`
	Line   int   `json:"line"`
	// Want and Got are the lines around it, in the reference and in the
	// trial.
	Want []string `json:"want,omitempty"`
	Got  []string `json:"got,omitempty"`
	// WantSize and GotSize are the sizes of the two versions.
	WantSize int64 `json:"want_size"`
	GotSize  int64 `json:"got_size"`
}

func (d *Difference) String() string {
	switch d.Reason {
	case "missing":
		return fmt.Sprintf("%s: missing (the reference has %d bytes)", d.Path, d.WantSize)
	case "unexpected":
		return fmt.Sprintf("%s: not in the reference (%d bytes)", d.Path, d.GotSize)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: differs at byte %d (line %d); reference %d bytes, got %d bytes\n", d.Path, d.Offset, d.Line, d.WantSize, d.GotSize)
	b.WriteString("  reference:\n")
	for _, l := range d.Want {
		fmt.Fprintf(&b, "    | %s\n", l)
	}
	b.WriteString("  got:\n")
	for _, l := range d.Got {
		fmt.Fprintf(&b, "    | %s\n", l)
	}
	return strings.TrimRight(b.String(), "\n")
}

// collect reads what the run in dir left, as the configuration says.
func (h *harness) collect(ctx context.Context, dir string) (result, error) {
	res := result{}
	for _, p := range h.cfg.Compare {
		p = strings.ReplaceAll(p, "{dir}", dir)
		abs := p
		if !filepath.IsAbs(abs) {
			abs = filepath.Join(dir, p)
		}
		rel, err := filepath.Rel(dir, abs)
		if err != nil || strings.HasPrefix(rel, "..") {
			rel = abs
		}
		fi, err := os.Stat(abs)
		if errors.Is(err, fs.ErrNotExist) {
			res[rel] = entry{missing: true}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("crashtest: %w", err)
		}
		if !fi.IsDir() {
			if err := h.addFile(ctx, res, dir, abs, rel); err != nil {
				return nil, err
			}
			continue
		}
		err = filepath.WalkDir(abs, func(q string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			r, _ := filepath.Rel(dir, q)
			if strings.HasPrefix(r, "..") {
				r = q
			}
			return h.addFile(ctx, res, dir, q, r)
		})
		if err != nil {
			return nil, fmt.Errorf("crashtest: read %s: %w", abs, err)
		}
	}
	if h.cfg.Check != "" {
		cmd := exec.CommandContext(ctx, "sh", "-c", strings.ReplaceAll(h.cfg.Check, "{dir}", dir))
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), h.cfg.Env...)
		var out bytes.Buffer
		cmd.Stdout = &out
		cmd.Stderr = &out
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			return nil, fmt.Errorf("crashtest: check command %q: %w", h.cfg.Check, err)
		}
		if code := cmd.ProcessState.ExitCode(); code != 0 {
			fmt.Fprintf(&out, "\n[exit status %d]\n", code)
		}
		res["check: "+h.cfg.Check] = entry{data: out.Bytes()}
	}
	return res, nil
}

// addFile reads one file, through the normalizer if there is one.
func (h *harness) addFile(ctx context.Context, res result, dir, abs, rel string) error {
	data, err := os.ReadFile(abs)
	if err != nil {
		return fmt.Errorf("crashtest: %w", err)
	}
	if h.cfg.Normalize != "" {
		cmd := exec.CommandContext(ctx, "sh", "-c", h.cfg.Normalize)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), h.cfg.Env...)
		cmd.Stdin = bytes.NewReader(data)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if data, err = cmd.Output(); err != nil {
			return fmt.Errorf("crashtest: normalize %s with %q: %w: %s", rel, h.cfg.Normalize, err, strings.TrimSpace(stderr.String()))
		}
	}
	res[rel] = entry{data: data}
	return nil
}

// diff returns the first difference between want and got, or nil.
func diff(want, got result) *Difference {
	names := make([]string, 0, len(want)+len(got))
	for n := range want {
		names = append(names, n)
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		w, inW := want[n]
		g, inG := got[n]
		switch {
		case inW && !w.missing && (!inG || g.missing):
			return &Difference{Path: n, Reason: "missing", WantSize: int64(len(w.data))}
		case inG && !g.missing && (!inW || w.missing):
			return &Difference{Path: n, Reason: "unexpected", GotSize: int64(len(g.data))}
		case w.missing && g.missing:
			continue
		}
		if d := diffBytes(n, w.data, g.data); d != nil {
			return d
		}
	}
	return nil
}

// contextLines is how many lines before and after the difference are shown.
const contextLines = 2

// diffBytes locates the first differing byte of a and b.
func diffBytes(name string, a, b []byte) *Difference {
	if bytes.Equal(a, b) {
		return nil
	}
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	line := 1 + bytes.Count(a[:i], []byte{'\n'})
	return &Difference{
		Path: name, Reason: "content", Offset: int64(i), Line: line,
		Want: around(a, i), Got: around(b, i),
		WantSize: int64(len(a)), GotSize: int64(len(b)),
	}
}

// around returns the lines of data around offset off, each cut to 200
// bytes, with non-printable bytes quoted.
func around(data []byte, off int) []string {
	off = min(off, len(data))
	start := off
	for n := 0; start > 0; start-- {
		if data[start-1] == '\n' {
			if n == contextLines {
				break
			}
			n++
		}
	}
	end := off
	for n := 0; end < len(data); end++ {
		if data[end] == '\n' {
			if n == contextLines {
				break
			}
			n++
		}
	}
	if start == end {
		if len(data) == 0 {
			return []string{"(empty)"}
		}
		return []string{"(end of file)"}
	}
	seg := data[start:end]
	if end == len(data) {
		seg = bytes.TrimSuffix(seg, []byte{'\n'})
	}
	var lines []string
	for _, l := range strings.Split(string(seg), "\n") {
		if len(l) > 200 {
			l = l[:200] + "…"
		}
		q := fmt.Sprintf("%q", l)
		lines = append(lines, q[1:len(q)-1])
	}
	if end == len(data) && off >= len(data) {
		lines = append(lines, "(end of file)")
	}
	return lines
}
