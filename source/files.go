package source

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Position is where a file source resumes: the next record starts at byte
// Offset of file number File, on line Line. Files fingerprints the whole
// input, so a resume on changed input is refused.
type Position struct {
	File   int           `json:"file"`
	Offset int64         `json:"offset"`
	Line   int64         `json:"line"`
	Files  []Fingerprint `json:"files"`
}

// ParsePosition decodes a position recorded in a checkpoint. A nil or
// empty position means the beginning.
func ParsePosition(raw json.RawMessage) (*Position, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var p Position
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("source: bad position in checkpoint: %w", err)
	}
	if p.File < 0 || p.File > len(p.Files) || p.Offset < 0 || p.Line < 1 {
		return nil, fmt.Errorf("source: bad position in checkpoint: file %d, offset %d, line %d", p.File, p.Offset, p.Line)
	}
	return &p, nil
}

const (
	defaultBuffer = 1 << 20
	// MaxRecord is the longest record a reader accepts. It bounds memory
	// on input with an unterminated quote or no line ends.
	MaxRecord = 64 << 20
)

// initialBuffer is the size of a new reader's buffer. Only tests change
// it, to make records straddle buffer refills at every byte.
var initialBuffer = defaultBuffer

// errNeedMore: a parser reached the end of the buffered bytes mid-record.
var errNeedMore = errors.New("need more input")

// reader is a buffered reader over a list of files that knows the file
// offset and line number of every byte it hands out. Parsers look at
// buf[r:w] and advance r past whole records.
type reader struct {
	files []Fingerprint
	idx   int      // current file
	f     *os.File // open current file, nil before the first and after the last
	buf   []byte
	r, w  int
	base  int64 // file offset of buf[0]
	line  int64 // line number of buf[r]
	eof   bool  // the current file has no more bytes beyond buf[w]
	prior int64 // total size of the files before idx
	total int64 // total size of all files
}

// openReader fingerprints paths and opens the first file at its start, or
// the file and offset of pos, after checking that the input matches the
// fingerprints pos recorded.
func openReader(paths []string, pos *Position) (*reader, error) {
	if len(paths) == 0 {
		return nil, ErrNoInput
	}
	rd := &reader{buf: make([]byte, initialBuffer), line: 1}
	for _, p := range paths {
		fp, err := fingerprint(p)
		if err != nil {
			if pos != nil && errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("source: %w: %s no longer exists: %w", ErrInputChanged, p, err)
			}
			return nil, fmt.Errorf("source: %w", err)
		}
		rd.files = append(rd.files, fp)
		rd.total += fp.Size
	}
	idx, off, line := 0, int64(0), int64(1)
	if pos != nil {
		if err := sameInput(rd.files, pos.Files); err != nil {
			return nil, err
		}
		idx, off, line = pos.File, pos.Offset, pos.Line
	}
	for i := range idx {
		rd.prior += rd.files[i].Size
	}
	rd.idx = idx
	if idx < len(rd.files) {
		if off > rd.files[idx].Size {
			return nil, fmt.Errorf("source: %w: %s is shorter than the checkpoint's offset %d", ErrInputChanged, rd.files[idx].Path, off)
		}
		if err := rd.open(off, line); err != nil {
			return nil, err
		}
	} else {
		rd.eof = true
	}
	return rd, nil
}

func sameInput(now, then []Fingerprint) error {
	if len(now) != len(then) {
		return fmt.Errorf("source: %w: %s", ErrInputChanged, listChange(now, then))
	}
	for i := range now {
		if d := now[i].diff(then[i]); d != "" {
			return fmt.Errorf("source: %w: %s: %s", ErrInputChanged, now[i].Path, d)
		}
	}
	return nil
}

// listChange describes how the list of input files now differs from the
// checkpoint's, which has another length: the files added and removed.
func listChange(now, then []Fingerprint) string {
	was := make(map[string]bool, len(then))
	for _, fp := range then {
		was[fp.Path] = true
	}
	is := make(map[string]bool, len(now))
	var added, removed []string
	for _, fp := range now {
		is[fp.Path] = true
		if !was[fp.Path] {
			added = append(added, fp.Path)
		}
	}
	for _, fp := range then {
		if !is[fp.Path] {
			removed = append(removed, fp.Path)
		}
	}
	msg := fmt.Sprintf("%d input files now, %d at the checkpoint", len(now), len(then))
	if len(added) > 0 {
		msg += "; added " + strings.Join(added, ", ")
	}
	if len(removed) > 0 {
		msg += "; removed " + strings.Join(removed, ", ")
	}
	return msg
}

func (rd *reader) open(off, line int64) error {
	f, err := os.Open(rd.files[rd.idx].Path)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	if off > 0 {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			f.Close()
			return fmt.Errorf("source: %s: seek to %d: %w", rd.files[rd.idx].Path, off, err)
		}
	}
	rd.f, rd.base, rd.line, rd.r, rd.w, rd.eof = f, off, line, 0, 0, false
	return nil
}

// nextFile moves to the start of the next file; false after the last.
func (rd *reader) nextFile() (bool, error) {
	if rd.f != nil {
		rd.f.Close()
		rd.f = nil
	}
	if rd.idx >= len(rd.files) {
		return false, nil
	}
	rd.prior += rd.files[rd.idx].Size
	rd.idx++
	if rd.idx >= len(rd.files) {
		rd.eof = true
		rd.r, rd.w, rd.base, rd.line = 0, 0, 0, 1
		return false, nil
	}
	return true, rd.open(0, 1)
}

// fill makes more bytes of the current file available in buf[r:w],
// keeping the unread ones. It sets eof when the file has no more.
func (rd *reader) fill() error {
	if rd.eof {
		return nil
	}
	if rd.r > 0 {
		n := copy(rd.buf, rd.buf[rd.r:rd.w])
		rd.base += int64(rd.r)
		rd.r, rd.w = 0, n
	}
	if rd.w == len(rd.buf) {
		if len(rd.buf) >= MaxRecord {
			return fmt.Errorf("source: %s:%d: record longer than %d MiB (no line end, or an unterminated quote?)", rd.path(), rd.line, MaxRecord>>20)
		}
		nb := make([]byte, min(2*len(rd.buf), MaxRecord))
		copy(nb, rd.buf[:rd.w])
		rd.buf = nb
	}
	for {
		n, err := rd.f.Read(rd.buf[rd.w:])
		rd.w += n
		if err == io.EOF {
			rd.eof = true
			return nil
		}
		if err != nil {
			return fmt.Errorf("source: read %s: %w", rd.path(), err)
		}
		if n > 0 {
			return nil
		}
	}
}

func (rd *reader) path() string {
	if rd.idx < len(rd.files) {
		return rd.files[rd.idx].Path
	}
	return ""
}

// offset is the file offset of buf[r]: where the next record starts.
func (rd *reader) offset() int64 { return rd.base + int64(rd.r) }

// position returns the resume position of the next record.
func (rd *reader) position() (json.RawMessage, error) {
	return json.Marshal(Position{File: rd.idx, Offset: rd.offset(), Line: rd.line, Files: rd.files})
}

// consumed is the number of input bytes before the next record, over all
// files: progress, and the bytes trigger.
func (rd *reader) consumed() int64 {
	if rd.idx >= len(rd.files) {
		return rd.total
	}
	return rd.prior + rd.offset()
}

func (rd *reader) close() error {
	if rd.f != nil {
		err := rd.f.Close()
		rd.f = nil
		return err
	}
	return nil
}

// skipBOM drops a UTF-8 byte order mark at the start of a file.
func (rd *reader) skipBOM() error {
	if rd.offset() != 0 {
		return nil
	}
	for rd.w-rd.r < 3 && !rd.eof {
		if err := rd.fill(); err != nil {
			return err
		}
	}
	if rd.w-rd.r >= 3 && string(rd.buf[rd.r:rd.r+3]) == "\xef\xbb\xbf" {
		rd.r += 3
	}
	return nil
}
