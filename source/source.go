// Package source reads input records from files with a position that makes
// resuming O(1): a checkpoint records which file and at which byte offset
// the next record starts, and a resumed reader seeks there instead of
// re-reading and skipping.
//
// Inputs must not change while a job uses them. Every position carries a
// fingerprint of the input files (size, modification time, and hashes of
// their first and last 64 KiB and of 4 KiB at eight places between);
// resuming from a position whose files no longer match fails with
// ErrInputChanged. A fingerprint is a cheap check, not a hash of the whole
// file: an edit that keeps the size and the modification time and changes
// only bytes outside the hashed spans goes unnoticed.
//
// A reader reads a file only up to the size it had when it was opened
// (and fingerprinted). A file that has changed when the reader reaches
// that size, such as one still being written, is read no further: a last
// line without a line end is not returned as a record, and the reader
// fails with ErrInputChanged.
//
// Text must be UTF-8 (an initial UTF-8 byte order mark is dropped): a
// file with a UTF-16 or UTF-32 byte order mark, or with the NUL bytes of
// UTF-16 text, and a CSV header that is not UTF-8 fail with ErrNotUTF8.
package source

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

var (
	// ErrInputChanged: the input differs from the one the checkpoint was
	// taken on. Resuming would not give the result of one uninterrupted
	// run, so the job must be restarted instead.
	ErrInputChanged = errors.New("input changed since the checkpoint")
	// ErrNoInput: the path or pattern names no files.
	ErrNoInput = errors.New("no input files")
	// ErrNotUTF8: an input file is text in another encoding than UTF-8,
	// which cannot be read without guessing.
	ErrNotUTF8 = errors.New("input is not UTF-8 text")
)

// RecordError is a record that cannot be read or converted. Reading can go
// on with the next record: what happens to this one is the job's bad-record
// policy (fail, skip, dead-letter).
type RecordError struct {
	File   string // input file
	Line   int64  // 1-based line of the fault (of the record's start if Column is 0)
	Column int64  // 1-based byte column of the fault in its line, 0 if none
	Offset int64  // byte offset of the record in File
	Raw    []byte // the record's bytes as read, without its line end
	Err    error  // what is wrong
}

func (e *RecordError) Error() string {
	if e.Column > 0 {
		return fmt.Sprintf("%s:%d:%d: %v", e.File, e.Line, e.Column, e.Err)
	}
	return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

// Fingerprint identifies the content of one input file cheaply.
type Fingerprint struct {
	Path    string `json:"path"`
	Size    int64  `json:"size"`
	ModTime int64  `json:"mtime_ns"`
	Head    string `json:"head"` // SHA-256 (first 16 bytes, hex) of the first 64 KiB
	Tail    string `json:"tail"` // the same of the last 64 KiB
	// Samples is the same of 4 KiB at each of eight offsets spread evenly
	// between the head and the tail (empty when they overlap, or in
	// positions written before it was recorded).
	Samples string `json:"samples,omitempty"`
	// ETag is an object's entity tag (inputs read from a bucket, whose
	// fingerprint is their ETag and size).
	ETag string `json:"etag,omitempty"`
}

const (
	fingerprintSpan = 64 << 10
	sampleSpan      = 4 << 10
	samples         = 8
)

func fingerprint(path string) (Fingerprint, error) {
	f, err := os.Open(path)
	if err != nil {
		return Fingerprint{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Fingerprint{}, err
	}
	if !fi.Mode().IsRegular() {
		return Fingerprint{}, fmt.Errorf("%s is not a regular file", path)
	}
	fp := Fingerprint{Path: path, Size: fi.Size(), ModTime: fi.ModTime().UnixNano()}
	buf := make([]byte, min(fi.Size(), fingerprintSpan))
	hash := func(off int64) (string, error) {
		if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
			return "", err
		}
		sum := sha256.Sum256(buf)
		return hex.EncodeToString(sum[:16]), nil
	}
	if fp.Head, err = hash(0); err != nil {
		return Fingerprint{}, err
	}
	if fp.Tail, err = hash(fi.Size() - int64(len(buf))); err != nil {
		return Fingerprint{}, err
	}
	// Eight samples in the middle, which the head and tail miss, for
	// little more than eight reads: an edit in the middle of a large file
	// that keeps its size and time is caught if it touches one of them.
	if mid := fi.Size() - 2*fingerprintSpan; mid >= samples*sampleSpan {
		h := sha256.New()
		buf = buf[:sampleSpan]
		for i := range int64(samples) {
			off := fingerprintSpan + i*(mid-sampleSpan)/(samples-1)
			if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
				return Fingerprint{}, err
			}
			h.Write(buf)
		}
		fp.Samples = hex.EncodeToString(h.Sum(nil)[:16])
	}
	return fp, nil
}

// diff describes how fp differs from want, or returns "".
func (fp Fingerprint) diff(want Fingerprint) string {
	switch {
	case fp.Size != want.Size:
		return fmt.Sprintf("size %d bytes, was %d", fp.Size, want.Size)
	case fp.ETag != want.ETag:
		return fmt.Sprintf("ETag %s, was %s (the object was replaced)", fp.ETag, want.ETag)
	case fp.Head != want.Head || fp.Tail != want.Tail,
		fp.Samples != "" && want.Samples != "" && fp.Samples != want.Samples:
		return "content differs"
	case fp.ModTime != want.ModTime:
		return fmt.Sprintf("modified %s, was %s", time.Unix(0, fp.ModTime).UTC().Format(time.RFC3339Nano), time.Unix(0, want.ModTime).UTC().Format(time.RFC3339Nano))
	}
	return ""
}

// sniffEncoding names the encoding of text that starts with b if it is
// not UTF-8 and says so: a byte order mark of UTF-16 or UTF-32, or the
// NUL bytes that UTF-16 gives every ASCII character. It returns "" for
// anything else.
func sniffEncoding(b []byte) string {
	switch {
	case len(b) >= 4 && string(b[:4]) == "\xff\xfe\x00\x00":
		return "UTF-32 little-endian text"
	case len(b) >= 4 && string(b[:4]) == "\x00\x00\xfe\xff":
		return "UTF-32 big-endian text"
	case len(b) >= 2 && string(b[:2]) == "\xff\xfe":
		return "UTF-16 little-endian text (Excel's \"Unicode text\")"
	case len(b) >= 2 && string(b[:2]) == "\xfe\xff":
		return "UTF-16 big-endian text"
	}
	// Text has no NUL bytes; UTF-16 of mostly ASCII text has one in
	// every other byte, at odd offsets (little-endian) or even ones.
	var even, odd int
	for i, c := range b {
		if c == 0 {
			if i%2 == 0 {
				even++
			} else {
				odd++
			}
		}
	}
	if len(b) >= 4 && 4*(even+odd) >= len(b) {
		if odd > even {
			return "UTF-16 little-endian text without a byte order mark"
		}
		return "UTF-16 big-endian text without a byte order mark"
	}
	return ""
}

// encodingSniff is how many bytes at the start of a file sniffEncoding
// looks at.
const encodingSniff = 4 << 10

// iconvName is iconv's name of an encoding sniffEncoding found.
func iconvName(enc string) string {
	switch {
	case strings.HasPrefix(enc, "UTF-32 little"):
		return "UTF-32LE"
	case strings.HasPrefix(enc, "UTF-32"):
		return "UTF-32BE"
	case strings.Contains(enc, "without") && strings.Contains(enc, "little"):
		return "UTF-16LE"
	case strings.Contains(enc, "without"):
		return "UTF-16BE"
	}
	return "UTF-16"
}

// Expand resolves an input argument to an ordered file list: a file; a
// directory (its regular files, and links to files, whose names end in one
// of exts, or all if exts is empty, hidden ones left out, sorted by name);
// or a glob pattern (the files it matches, sorted; directories left out,
// and hidden files unless the pattern's last element starts with a dot).
func Expand(arg string, exts ...string) ([]string, error) {
	if fi, err := os.Stat(arg); err == nil {
		if !fi.IsDir() {
			return []string{arg}, nil
		}
		entries, err := os.ReadDir(arg)
		if err != nil {
			return nil, err
		}
		var files []string
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") || (len(exts) > 0 && !slices.ContainsFunc(exts, func(x string) bool { return strings.HasSuffix(e.Name(), x) })) {
				continue
			}
			path := filepath.Join(arg, e.Name())
			regular := e.Type().IsRegular()
			if e.Type()&fs.ModeSymlink != 0 {
				// A link to a file is an input like the file itself;
				// skipping it would drop its records without a word. A
				// broken link is kept, so that opening it reports it.
				fi, err := os.Stat(path)
				regular = err != nil || fi.Mode().IsRegular()
			}
			if regular {
				files = append(files, path)
			}
		}
		if len(files) == 0 {
			if len(exts) == 0 {
				return nil, fmt.Errorf("%w: directory %s has no files", ErrNoInput, arg)
			}
			return nil, fmt.Errorf("%w: directory %s has no %s files", ErrNoInput, arg, strings.Join(exts, " or "))
		}
		return files, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	matches, err := filepath.Glob(arg)
	if err != nil {
		return nil, fmt.Errorf("bad input pattern %q: %w", arg, err)
	}
	// As in a shell, a pattern does not match hidden files unless its last
	// element starts with a dot (macOS leaves "._x.csv" files of metadata
	// beside x.csv); and a directory is not an input file.
	hiddenOK := strings.HasPrefix(filepath.Base(arg), ".")
	files := matches[:0]
	for _, m := range matches {
		if !hiddenOK && strings.HasPrefix(filepath.Base(m), ".") {
			continue
		}
		if fi, err := os.Stat(m); err == nil && fi.IsDir() {
			continue
		}
		files = append(files, m)
	}
	if len(files) == 0 {
		if !strings.ContainsAny(arg, "*?[") {
			return nil, fmt.Errorf("%w: %s does not exist", ErrNoInput, arg)
		}
		return nil, fmt.Errorf("%w: pattern %q matches no files", ErrNoInput, arg)
	}
	slices.Sort(files)
	return files, nil
}
