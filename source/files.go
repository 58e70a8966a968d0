package source

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// Position is where a file source resumes: the next record starts at byte
// Offset of file number File, on line Line. Files fingerprints the whole
// input, so a resume on changed input is refused.
//
// In a compressed file, Offset is in the decompressed text, and the gzip
// member or zstd frame that holds it starts at byte MemberOffset of the
// file and MemberStart of the text: a resume decompresses from there.
// Both are 0 (omitted) in the first member, and in positions recorded
// before they were, which resume from the file's start.
type Position struct {
	File         int           `json:"file"`
	Offset       int64         `json:"offset"`
	Line         int64         `json:"line"`
	MemberOffset int64         `json:"member_offset,omitempty"`
	MemberStart  int64         `json:"member_start,omitempty"`
	Files        []Fingerprint `json:"files"`
}

// ParsePosition decodes a position recorded in a checkpoint. A nil or
// empty position means the beginning.
func ParsePosition(raw json.RawMessage) (*Position, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var p Position
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("bad input position in checkpoint: %w", err)
	}
	if p.File < 0 || p.File > len(p.Files) || p.Offset < 0 || p.Line < 1 {
		return nil, fmt.Errorf("bad input position in checkpoint: file %d, offset %d, line %d", p.File, p.Offset, p.Line)
	}
	if p.MemberOffset < 0 || p.MemberStart < 0 || p.MemberStart > p.Offset || (p.File < len(p.Files) && p.MemberOffset > p.Files[p.File].Size) {
		return nil, fmt.Errorf("bad input position in checkpoint: offset %d in a member at byte %d (text %d)", p.Offset, p.MemberOffset, p.MemberStart)
	}
	return &p, nil
}

const (
	defaultBuffer = 1 << 20
	// MaxRecord is the longest record a reader accepts. It bounds memory
	// on input with an unterminated quote or no line ends.
	MaxRecord = 64 << 20
)

// maxRecord is MaxRecord; tests lower it.
var maxRecord = MaxRecord

// errTooLong: the buffer holds maxRecord bytes of one record and needs
// more. Parsers turn it into a bad record or an error that says why.
var errTooLong = errors.New("record too long")

// initialBuffer is the size of a new reader's buffer. Only tests change
// it, to make records straddle buffer refills at every byte.
var initialBuffer = defaultBuffer

// errNeedMore: a parser reached the end of the buffered bytes mid-record.
var errNeedMore = errors.New("need more input")

// reader is a buffered reader over a list of files that knows the file
// offset and line number of every byte it hands out. Parsers look at
// buf[r:w] and advance r past whole records.
type reader struct {
	files []Fingerprint // Path: the file's name in messages and positions
	paths []string      // the files to open, as given to this run
	objs  Objects       // where the files are; nil: the local file system
	idx   int           // current file
	f     inputFile     // open current file, nil before the first and after the last
	dec   *decoder      // the current file's decompressor, if it is compressed
	buf   []byte
	r, w  int
	base  int64 // file offset of buf[0]
	line  int64 // line number of buf[r]
	eof   bool  // the current file has no more bytes beyond buf[w]
	prior int64 // total size of the files before idx
	total int64 // total size of all files
	// started: the current file's start was checked (encoding, BOM).
	started bool
	// changed is set when the current file turned out, at its end, to
	// differ from its fingerprint: it is returned instead of moving on.
	changed error
}

// openReader fingerprints paths and opens the first file at its start, or
// the file and offset of pos, after checking that the input matches the
// fingerprints pos recorded.
func openReader(objs Objects, paths []string, pos *Position) (*reader, error) {
	if len(paths) == 0 {
		return nil, ErrNoInput
	}
	rd := &reader{buf: make([]byte, initialBuffer), line: 1, paths: paths, objs: objs}
	for _, p := range paths {
		fp, err := rd.fingerprint(p)
		if err != nil {
			if pos != nil && errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("%w: %s no longer exists: %w", ErrInputChanged, p, err)
			}
			return nil, err
		}
		rd.files = append(rd.files, fp)
		rd.total += fp.Size
	}
	idx, off, line := 0, int64(0), int64(1)
	var m member
	if pos != nil {
		m = member{pos.MemberOffset, pos.MemberStart}
		if err := sameInput(rd.files, pos.Files); err != nil {
			return nil, err
		}
		idx, off, line = pos.File, pos.Offset, pos.Line
		// The files keep the names the first run gave them, so that
		// messages and dead letters name an input the same way in every
		// run, whatever directory a resume runs in.
		for i := range rd.files {
			if pos.Files[i].Path != "" {
				rd.files[i].Path = pos.Files[i].Path
			}
		}
	}
	for i := range idx {
		rd.prior += rd.files[i].Size
	}
	rd.idx = idx
	if idx < len(rd.files) {
		if off > rd.files[idx].Size && CompressionSuffix(rd.paths[idx]) == "" {
			return nil, fmt.Errorf("%w: %s is shorter than the checkpoint's offset %d", ErrInputChanged, rd.files[idx].Path, off)
		}
		if err := rd.open(off, line, m); err != nil {
			return nil, err
		}
	} else {
		rd.eof = true
	}
	return rd, nil
}

func sameInput(now, then []Fingerprint) error {
	if len(now) != len(then) {
		return fmt.Errorf("%w: %s", ErrInputChanged, listChange(now, then))
	}
	for i := range now {
		if d := now[i].diff(then[i]); d != "" {
			return fmt.Errorf("%w: %s: %s", ErrInputChanged, now[i].Path, d)
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

// open opens the current file at offset off, on line line; in a
// compressed file, decompressing from m, the start of the member or frame
// that holds off.
func (rd *reader) open(off, line int64, m member) error {
	suffix := CompressionSuffix(rd.paths[rd.idx])
	if rd.objs != nil {
		// An object is read from off with one ranged request (a
		// compressed one from the start of the member or frame m, to
		// decompress up to off).
		from := off
		if suffix != "" {
			from = m.comp
		}
		fp := rd.files[rd.idx]
		body, err := rd.objs.Open(fp, from)
		if err != nil {
			return err
		}
		f := &objectFile{ReadCloser: body, fp: fp}
		if suffix != "" && fp.Size > 0 {
			return rd.openCompressed(f, suffix, off, line, m)
		}
		rd.f, rd.base, rd.line, rd.r, rd.w, rd.eof = f, off, line, 0, 0, false
		rd.started, rd.changed = off != 0, nil
		return nil
	}
	f, err := os.Open(rd.paths[rd.idx])
	if err != nil {
		return err
	}
	// A compressed file of no bytes is read as the empty file it is (an
	// export of no rows), not as a damaged stream.
	if suffix != "" && rd.files[rd.idx].Size > 0 {
		if m.comp > 0 {
			if _, err := f.Seek(m.comp, io.SeekStart); err != nil {
				f.Close()
				return fmt.Errorf("%s: seek to %d: %w", rd.files[rd.idx].Path, m.comp, err)
			}
		}
		return rd.openCompressed(f, suffix, off, line, m)
	}
	if off > 0 {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			f.Close()
			return fmt.Errorf("%s: seek to %d: %w", rd.files[rd.idx].Path, off, err)
		}
	}
	rd.f, rd.base, rd.line, rd.r, rd.w, rd.eof = f, off, line, 0, 0, false
	rd.started, rd.changed = off != 0, nil
	return nil
}

// openCompressed opens the decompressor of the current file, f, which is
// read from m.comp, the start of the member or frame m, and reads it up
// to the decompressed offset off. It reads no further than the size the
// file had when fingerprinted, as fill does for plain files.
func (rd *reader) openCompressed(f inputFile, suffix string, off, line int64, m member) error {
	fp := rd.files[rd.idx]
	raw := &countingReader{r: io.LimitReader(f, fp.Size-m.comp), n: m.comp}
	dec, err := newDecoder(suffix, raw, m.text)
	if err != nil {
		f.Close()
		if m.comp > 0 {
			err = fmt.Errorf("at byte %d, where the checkpoint's member starts: %w", m.comp, err)
		}
		return corruptInput(fp.Path, err)
	}
	if off > m.text {
		n, err := io.CopyN(io.Discard, dec, off-m.text)
		n += m.text
		if err != nil {
			dec.close()
			f.Close()
			if err == io.EOF {
				return fmt.Errorf("%w: %s holds %d bytes once decompressed, fewer than the checkpoint's offset %d", ErrInputChanged, fp.Path, n, off)
			}
			return corruptInput(fp.Path, err)
		}
	}
	rd.f, rd.dec, rd.base, rd.line, rd.r, rd.w, rd.eof = f, dec, off, line, 0, 0, false
	rd.started, rd.changed = off != 0, nil
	return nil
}

// closeFile closes the current file and its decompressor.
func (rd *reader) closeFile() error {
	if rd.dec != nil {
		rd.dec.close()
		rd.dec = nil
	}
	if rd.f == nil {
		return nil
	}
	err := rd.f.Close()
	rd.f = nil
	return err
}

// nextFile moves to the start of the next file; false after the last.
func (rd *reader) nextFile() (bool, error) {
	if err := rd.endOfFile(); err != nil {
		return false, err
	}
	rd.closeFile()
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
	return true, rd.open(0, 1, member{})
}

// fill makes more bytes of the current file available in buf[r:w],
// keeping the unread ones. It sets eof when the file has no more.
//
// It reads no further than the size the file had when it was
// fingerprinted: the position and the fingerprint in a checkpoint then
// describe exactly the bytes read. A file whose size or modification time
// has changed since (still being written, or rewritten) is reported at its
// end (see changedAtEnd).
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
		if len(rd.buf) >= maxRecord {
			return errTooLong
		}
		nb := make([]byte, min(2*len(rd.buf), maxRecord))
		copy(nb, rd.buf[:rd.w])
		rd.buf = nb
	}
	if rd.dec != nil {
		return rd.fillCompressed()
	}
	for {
		left := rd.files[rd.idx].Size - rd.base - int64(rd.w)
		if left <= 0 {
			rd.eof = true
			return nil
		}
		n, err := rd.f.Read(rd.buf[rd.w : rd.w+int(min(int64(len(rd.buf)-rd.w), left))])
		rd.w += n
		if err == io.EOF {
			rd.eof = true // shorter than its fingerprint: see changedAtEnd
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", rd.path(), err)
		}
		if n > 0 {
			return nil
		}
	}
}

// fillCompressed is fill for a compressed file: its decompressor reads
// no further than the fingerprinted size.
func (rd *reader) fillCompressed() error {
	for {
		n, err := rd.dec.Read(rd.buf[rd.w:])
		rd.w += n
		if err == io.EOF {
			rd.eof = true
			return nil
		}
		if err != nil {
			// Cut short: a file still being written has changed since
			// it was fingerprinted, and is reported as such at its end
			// (see changedAtEnd); one that did not change is damaged.
			fp := rd.files[rd.idx]
			if fi, serr := rd.f.Stat(); serr == nil && (fi.Size() != fp.Size || fi.ModTime().UnixNano() != fp.ModTime) {
				rd.eof = true
				return nil
			}
			return corruptInput(rd.path(), err)
		}
		if n > 0 {
			return nil
		}
	}
}

// skipLine passes over the rest of a line too long to hold, from buf[r]
// (the start of a record) to just past its line end, or to the end of
// the file, and returns the bad record: its place, its first 4 KiB, and
// its length.
func (rd *reader) skipLine() error {
	e := &RecordError{File: rd.path(), Line: rd.line, Offset: rd.offset(), Raw: slices.Clone(rd.buf[rd.r : rd.r+min(rd.w-rd.r, 4<<10)])}
	lineEnd := int64(0)
	for {
		if i := bytes.IndexByte(rd.buf[rd.r:rd.w], '\n'); i >= 0 {
			rd.r += i + 1
			lineEnd = 1
			break
		}
		rd.r = rd.w
		if rd.eof {
			break
		}
		if err := rd.fill(); err != nil {
			return err
		}
		if rd.r == rd.w && rd.eof {
			break
		}
	}
	rd.line++
	e.Err = fmt.Errorf("line of %d bytes, longer than the %s a record may have; it is not kept whole (Raw holds its first %d bytes)", rd.offset()-e.Offset-lineEnd, limit(), len(e.Raw))
	return e
}

// limit is maxRecord for messages.
func limit() string {
	if maxRecord >= 1<<20 {
		return fmt.Sprintf("%d MiB", maxRecord>>20)
	}
	return fmt.Sprintf("%d bytes", maxRecord)
}

// changedAtEnd reports, once the current file has been read to its
// end, whether it still matches its fingerprint, by size and modification
// time; one that does not (still being written, or rewritten) sets
// rd.changed, the error the reader stops with when it would move past the
// file. Called where a parser would take a last record without a line end
// (which may be half written: it is not taken if the file changed) and
// before moving to the next file.
func (rd *reader) changedAtEnd() (bool, error) {
	if rd.changed != nil {
		return true, nil
	}
	fp := rd.files[rd.idx]
	fi, err := rd.f.Stat()
	if err != nil {
		return false, fmt.Errorf("read %s: %w", rd.path(), err)
	}
	end := rd.base + int64(rd.w)
	if rd.dec != nil {
		end = rd.dec.raw.n // compressed bytes read: all of them at the end
	}
	if fi.Size() == fp.Size && fi.ModTime().UnixNano() == fp.ModTime && end == fp.Size {
		return false, nil
	}
	msg := fmt.Sprintf("%s changed while it was being read (%d bytes when opened, %d bytes now", fp.Path, fp.Size, fi.Size())
	if fi.Size() == fp.Size {
		msg = fmt.Sprintf("%s changed while it was being read (modified %s, was %s", fp.Path,
			fi.ModTime().UTC().Format(time.RFC3339Nano), time.Unix(0, fp.ModTime).UTC().Format(time.RFC3339Nano))
	}
	rd.changed = fmt.Errorf("%w: %s: is it still being written?); it was read up to its last complete line, at byte %d (restart the job once the file is complete)",
		ErrInputChanged, msg, rd.offset())
	return true, nil
}

// endOfFile is changedAtEnd for nextFile: the error to stop with.
func (rd *reader) endOfFile() error {
	if rd.f == nil || rd.idx >= len(rd.files) {
		return nil
	}
	if _, err := rd.changedAtEnd(); err != nil {
		return err
	}
	return rd.changed
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
	p := Position{File: rd.idx, Offset: rd.offset(), Line: rd.line, Files: rd.files}
	if rd.dec != nil {
		m := rd.dec.at(p.Offset)
		p.MemberOffset, p.MemberStart = m.comp, m.text
	}
	return json.Marshal(p)
}

// consumed is the number of input bytes before the next record, over all
// files: progress, and the bytes trigger.
func (rd *reader) consumed() int64 {
	if rd.idx >= len(rd.files) {
		return rd.total
	}
	if rd.dec != nil {
		// Compressed: the share of the file's compressed bytes read,
		// which the sizes of the files add up with.
		return rd.prior + rd.dec.raw.n
	}
	return rd.prior + rd.offset()
}

func (rd *reader) close() error { return rd.closeFile() }

// start checks the start of a file the first time a parser looks at
// it: text that is not UTF-8 (a UTF-16 or UTF-32 byte order mark, or NUL
// bytes in the text as UTF-16 has them) is refused with ErrNotUTF8, and a
// UTF-8 byte order mark is dropped.
func (rd *reader) start() error {
	if rd.started {
		return nil
	}
	for rd.w-rd.r < encodingSniff && !rd.eof {
		if err := rd.fill(); err == errTooLong {
			break // a first line longer than a record may be: the parser reports it
		} else if err != nil {
			return err
		}
	}
	rd.started = true
	b := rd.buf[rd.r:rd.w]
	if rd.dec == nil {
		if kind := compressedMagic(b); kind != "" {
			name := rd.path()
			return fmt.Errorf("%w: %s holds %s data, and its name does not say so: name it %s so that ckpt decompresses it", ErrNotUTF8, name, kind, name+map[string]string{"gzip": ".gz", "zstd": ".zst"}[kind])
		}
	}
	if enc := sniffEncoding(b[:min(len(b), encodingSniff)]); enc != "" {
		name := rd.path()
		return fmt.Errorf("%w: %s looks like %s; ckpt reads UTF-8: convert it first, as with iconv -f %s -t UTF-8 %s > %s.utf8",
			ErrNotUTF8, name, enc, iconvName(enc), name, name)
	}
	if len(b) >= 3 && string(b[:3]) == "\xef\xbb\xbf" {
		rd.r += 3
	}
	return nil
}
