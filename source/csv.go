package source

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"
)

// CSVOptions configure a CSV reader. The zero value reads RFC 4180 CSV with
// a header line and commas.
type CSVOptions struct {
	// Comma is the field separator; 0 means ','.
	Comma byte
	// Columns, if set, names the columns of input that has no header
	// line: every line of every file is a record.
	Columns []string
	// Objects, if set, is where the paths are: objects of a bucket rather
	// than local files (see Objects).
	Objects Objects
}

// Row is one CSV record. Its slices are valid until the next call to Next.
type Row struct {
	Header []string // the column names; shared, do not modify
	Fields [][]byte
	Raw    []byte // the record's bytes as in the file, without its line end
	File   string
	Line   int64 // 1-based line where the record starts
	Offset int64 // byte offset of the record in File
}

// CSV reads RFC 4180 CSV from a list of files: a header line (each file
// has one and they must be equal; an empty file, of no bytes, holds no
// records and needs none), quoted fields with embedded separators,
// quotes ("") and line ends, CRLF or LF line ends, an optional UTF-8 byte
// order mark. Blank lines are not records. Quoted field content is kept
// byte for byte, including CR LF inside quotes.
type CSV struct {
	rd     *reader
	comma  byte
	header []string
	row    Row
	rec    []byte // the current record's field bytes, unescaped
	ends   []int  // ends of the fields in rec
	raw    []byte // the current record's raw bytes (bad records only)
	// headerless: the columns were named by CSVOptions.Columns, and no
	// file has a header line.
	headerless bool
}

// OpenCSV opens CSV input at the start, or at the position recorded in a
// checkpoint (nil for the start): an O(1) seek.
func OpenCSV(paths []string, pos json.RawMessage, opts CSVOptions) (*CSV, error) {
	p, err := ParsePosition(pos)
	if err != nil {
		return nil, err
	}
	rd, err := openReader(opts.Objects, paths, p)
	if err != nil {
		return nil, err
	}
	c := &CSV{rd: rd, comma: opts.Comma}
	if c.comma == 0 {
		c.comma = ','
	}
	if c.comma == '"' || c.comma == '\n' || c.comma == '\r' || c.comma >= utf8.RuneSelf {
		rd.close()
		return nil, fmt.Errorf("invalid CSV separator %q: use one ASCII character other than a quote or a line end", c.comma)
	}
	if len(opts.Columns) > 0 {
		for i, name := range opts.Columns {
			if !utf8.ValidString(name) {
				rd.close()
				return nil, fmt.Errorf("%w: column %d's name %q", ErrNotUTF8, i+1, name)
			}
		}
		c.header = slices.Clone(opts.Columns)
		c.row.Header = c.header
		c.headerless = true
		if err := c.rd.start(); err != nil {
			rd.close()
			return nil, err
		}
		return c, nil
	}
	// The header of the first file that is not empty names the columns.
	// When resuming past it, read it from that file's start: one short
	// read.
	if p == nil || (p.File == 0 && p.Offset == 0) {
		err = c.firstHeader()
	} else {
		err = c.headerFrom(rd)
	}
	if err != nil {
		rd.close()
		return nil, err
	}
	return c, nil
}

// firstHeader reads the header at the start of the input, passing over
// empty files: an export of no rows may leave a file of no bytes, and
// failing on it would stop a long job for a file that holds nothing.
func (c *CSV) firstHeader() error {
	for {
		if err := c.readHeader(); err != nil || c.header != nil {
			return err
		}
		ok, err := c.rd.nextFile()
		if err != nil {
			return err
		}
		if !ok {
			if n := len(c.rd.files); n > 1 {
				return fmt.Errorf("all %d input files are empty (%s, ...): no CSV header", n, c.rd.files[0].Path)
			}
			return fmt.Errorf("%s: empty file, no CSV header", c.rd.files[0].Path)
		}
	}
}

// Header returns the column names.
func (c *CSV) Header() []string { return c.header }

// Files returns the input files' fingerprints.
func (c *CSV) Files() []Fingerprint { return c.rd.files }

// Paths returns the input files, as opened.
func (c *CSV) Paths() []string { return c.rd.paths }

// headerFrom reads the header of the first file of rd that is not empty.
func (c *CSV) headerFrom(rd *reader) error {
	files := rd.files
	i := 0
	for i < len(files)-1 && files[i].Size == 0 {
		i++
	}
	first, err := openReader(rd.objs, []string{rd.paths[i]}, nil)
	if err != nil {
		return err
	}
	defer first.close()
	first.files[0].Path = files[i].Path
	h := &CSV{rd: first, comma: c.comma}
	if err := h.readHeader(); err != nil {
		return err
	}
	if h.header == nil {
		return fmt.Errorf("%s: empty file, no CSV header", files[i].Path)
	}
	c.header = h.header
	c.row.Header = c.header
	return nil
}

// readHeader reads the header line at the start of the current file. The
// first file's sets the columns; every later one must repeat it. An empty
// file (no bytes, as fingerprinted) has no header and no records.
func (c *CSV) readHeader() error {
	if c.rd.files[c.rd.idx].Size == 0 {
		return nil
	}
	if err := c.rd.start(); err != nil {
		return err
	}
	if c.headerless {
		return nil
	}
	path := c.rd.path()
	err := c.parse()
	if err == io.EOF {
		return fmt.Errorf("%s: empty file, no CSV header", path)
	}
	if err != nil {
		return fmt.Errorf("CSV header: %w", err)
	}
	// Column names become JSON keys and table columns: bytes that are not
	// UTF-8 would have to be guessed at (Latin-1? Windows-1252?), and a
	// guess would rename the columns silently.
	for i := range c.ends {
		if f := c.field(i); !utf8.Valid(f) {
			return fmt.Errorf("%w: %s: the CSV header is not UTF-8 (column %d, %q): the file is in another encoding, perhaps Latin-1 or Windows-1252; convert it first, as with iconv -f WINDOWS-1252 -t UTF-8 %s > %s.utf8",
				ErrNotUTF8, path, i+1, strings.ToValidUTF8(string(f), "\uFFFD"), path, path)
		}
	}
	if c.header == nil {
		c.header = make([]string, len(c.ends))
		for i := range c.ends {
			c.header[i] = string(c.field(i))
		}
		c.row.Header = c.header
		return nil
	}
	same := len(c.ends) == len(c.header)
	for i := 0; same && i < len(c.ends); i++ {
		same = string(c.field(i)) == c.header[i]
	}
	if !same {
		return fmt.Errorf("%s: header differs from the first file's (%s)", path, c.rd.files[0].Path)
	}
	return nil
}

func (c *CSV) field(i int) []byte {
	start := 0
	if i > 0 {
		start = c.ends[i-1]
	}
	return c.rec[start:c.ends[i]]
}

// Next returns the next record, io.EOF after the last, or a *RecordError
// for a malformed record (reading may go on after it).
func (c *CSV) Next() (*Row, error) {
	for {
		err := c.parse()
		if err == io.EOF {
			ok, err := c.rd.nextFile()
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, io.EOF
			}
			if err := c.readHeader(); err != nil {
				var re *RecordError
				if errors.As(err, &re) {
					// Not a bad record to skip: without its header, the
					// file's columns are unknown, and reading its records
					// under the first file's would be a guess.
					return nil, fmt.Errorf("%s: the header is malformed, so the file cannot be read: %v", re.File, re.Error())
				}
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		c.row.File = c.rd.path()
		if len(c.ends) != len(c.header) {
			return nil, c.fieldCountError()
		}
		c.row.Raw = c.raw
		c.row.Fields = c.row.Fields[:0]
		start := 0
		for _, e := range c.ends {
			c.row.Fields = append(c.row.Fields, c.rec[start:e])
			start = e
		}
		return &c.row, nil
	}
}

// fieldCountError reports the record just parsed, whose field count is
// not the header's, at the first field too many or at the end of a record
// with too few.
func (c *CSV) fieldCountError() *RecordError {
	at, n, quoted := len(c.raw), 0, false
	for i, ch := range c.raw {
		if ch == '"' {
			quoted = !quoted // a doubled quote toggles twice
		} else if ch == c.comma && !quoted {
			if n++; n == len(c.header) {
				at = i + 1
				break
			}
		}
	}
	line := c.row.Line + int64(bytes.Count(c.raw[:at], []byte{'\n'}))
	col := at - (bytes.LastIndexByte(c.raw[:at], '\n') + 1) + 1
	err := fmt.Errorf("%d fields, the header has %d", len(c.ends), len(c.header))
	if line != c.row.Line {
		err = fmt.Errorf("%w (in the record that starts on line %d)", err, c.row.Line)
	}
	// Raw is cloned: the error may outlive the buffer it points into.
	return &RecordError{File: c.row.File, Line: line, Column: int64(col), Offset: c.row.Offset, Raw: slices.Clone(c.raw), Err: err}
}

// Raw returns the bytes of the record Next returned last, as in the file
// (without its line end). Valid until the next call to Next.
func (c *CSV) Raw() []byte { return c.raw }

// Position returns where the record after the last one returned starts.
func (c *CSV) Position() (json.RawMessage, error) { return c.rd.position() }

// Consumed returns the input bytes read so far, over all files.
func (c *CSV) Consumed() int64 { return c.rd.consumed() }

// Size returns the total size of the input files.
func (c *CSV) Size() int64 { return c.rd.total }

// Close closes the current file.
func (c *CSV) Close() error { return c.rd.close() }

// parse reads one record at buf[r:], filling the buffer as needed, and
// leaves its fields in rec/ends and its bytes in raw. It returns io.EOF at
// the end of the current file, and a *RecordError for a malformed record,
// which it skips (up to the end of the line where the fault is).
func (c *CSV) parse() error {
	rd := c.rd
	for {
		// Blank lines are not records.
		for rd.r < rd.w && (rd.buf[rd.r] == '\n' || rd.buf[rd.r] == '\r' && rd.r+1 < rd.w && rd.buf[rd.r+1] == '\n') {
			if rd.buf[rd.r] == '\r' {
				rd.r++
			}
			rd.r++
			rd.line++
		}
		if rd.r == rd.w || (rd.buf[rd.r] == '\r' && rd.r+1 == rd.w) {
			if rd.eof {
				if rd.r < rd.w { // a lone CR at the very end
					rd.r = rd.w
				}
				return io.EOF
			}
			if err := rd.fill(); err != nil {
				return err
			}
			continue
		}
		c.row.Line, c.row.Offset = rd.line, rd.offset()
		start, line := rd.r, rd.line
		err := c.parseRecord(rd.buf[rd.r:rd.w], rd.eof)
		if err != errNeedMore {
			if rd.eof && rd.r == rd.w && rd.w > 0 && rd.buf[rd.w-1] != '\n' {
				// The last record, without a line end: half written,
				// if the file is still growing.
				if changed, cerr := rd.changedAtEnd(); cerr != nil {
					return cerr
				} else if changed {
					rd.r, rd.w, rd.line = start, start, line
					return io.EOF
				}
			}
			return err
		}
		if err := rd.fill(); err == errTooLong {
			if bytes.IndexByte(rd.buf[rd.r:rd.w], '"') >= 0 {
				// Inside quotes, a line end is part of the field: where
				// the next record starts is unknown, and skipping to the
				// next line end would read the rest as records.
				return fmt.Errorf("%s:%d: a record longer than %s, with quotes in it: an unterminated quote, most likely, after which no record can be found for sure, so it cannot be skipped as a bad record; fix the input (a quote inside a quoted field is written \"\")",
					rd.path(), rd.line, limit())
			}
			return rd.skipLine()
		} else if err != nil {
			return err
		}
	}
}

// parseRecord parses the record at the start of b, which holds everything
// up to the end of the file if atEOF. It returns errNeedMore if b ends
// inside the record.
func (c *CSV) parseRecord(b []byte, atEOF bool) error {
	c.rec, c.ends = c.rec[:0], c.ends[:0]
	// Fast path: a line without quotes.
	nl := bytes.IndexByte(b, '\n')
	if nl < 0 && !atEOF {
		return errNeedMore
	}
	end, lineEnd := nl+1, nl
	if nl < 0 {
		end, lineEnd = len(b), len(b)
	}
	line := b[:lineEnd]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	if bytes.IndexByte(line, '"') < 0 {
		c.raw = line
		for {
			i := bytes.IndexByte(line, c.comma)
			if i < 0 {
				c.rec = append(c.rec, line...)
				c.ends = append(c.ends, len(c.rec))
				break
			}
			c.rec = append(c.rec, line[:i]...)
			c.ends = append(c.ends, len(c.rec))
			line = line[i+1:]
		}
		c.rd.r += end
		c.rd.line++
		return nil
	}
	return c.parseQuoted(b, atEOF)
}

// parseQuoted is the general parser, for records with quotes.
func (c *CSV) parseQuoted(b []byte, atEOF bool) error {
	i := 0
	for {
		if i < len(b) && b[i] == '"' {
			open := i
			i++
			for {
				j := bytes.IndexByte(b[i:], '"')
				if j < 0 {
					if !atEOF {
						return errNeedMore
					}
					return c.bad(b, open, len(b), atEOF, errors.New("quoted field is not closed before the end of the file"))
				}
				c.rec = append(c.rec, b[i:i+j]...)
				i += j + 1
				if i < len(b) && b[i] == '"' {
					c.rec = append(c.rec, '"')
					i++
					continue
				}
				if i == len(b) && !atEOF {
					return errNeedMore
				}
				break
			}
			c.ends = append(c.ends, len(c.rec))
			switch {
			case i == len(b):
				return c.done(b, i, i)
			case b[i] == c.comma:
				i++
				if i == len(b) && atEOF {
					c.ends = append(c.ends, len(c.rec))
					return c.done(b, i, i)
				}
				continue
			case b[i] == '\n':
				return c.done(b, i, i+1)
			case b[i] == '\r' && i+1 < len(b) && b[i+1] == '\n':
				return c.done(b, i, i+2)
			case b[i] == '\r' && i+1 == len(b):
				if !atEOF {
					return errNeedMore
				}
				// A CR that ends the file ends the record, as it does
				// after an unquoted field.
				return c.done(b, i, i+1)
			default:
				return c.bad(b, i, lineEnd(b, i), atEOF, fmt.Errorf("unexpected %q after a closing quote (a quote inside a quoted field is written \"\")", b[i]))
			}
		}
		// An unquoted field.
		j := i
		for j < len(b) && b[j] != c.comma && b[j] != '\n' && b[j] != '"' {
			j++
		}
		if j == len(b) && !atEOF {
			return errNeedMore
		}
		if j < len(b) && b[j] == '"' {
			return c.bad(b, j, lineEnd(b, j), atEOF, errors.New("bare quote in an unquoted field (quote the whole field, and write a quote inside it as \"\")"))
		}
		f := b[i:j]
		if (j == len(b) || b[j] == '\n') && len(f) > 0 && f[len(f)-1] == '\r' {
			f = f[:len(f)-1]
		}
		c.rec = append(c.rec, f...)
		c.ends = append(c.ends, len(c.rec))
		switch {
		case j == len(b):
			return c.done(b, len(b)-(len(b[i:j])-len(f)), j)
		case b[j] == '\n':
			return c.done(b, j-(len(b[i:j])-len(f)), j+1)
		}
		i = j + 1 // a separator
		if i == len(b) && atEOF {
			c.ends = append(c.ends, len(c.rec))
			return c.done(b, i, i)
		}
	}
}

// done ends a record whose content is b[:content] and which, with its line
// end, spans b[:end].
func (c *CSV) done(b []byte, content, end int) error {
	c.raw = b[:content]
	c.rd.line += int64(bytes.Count(b[:end], []byte{'\n'}))
	if end > 0 && b[end-1] != '\n' {
		// The record ends the file without a line end; the line count is
		// that of the next (non-existent) record, for positions.
		c.rd.line++
	}
	c.rd.r += end
	return nil
}

// bad reports a malformed record with the fault at b[at] and skips it up
// to b[skip], the end of the line where the fault is. The error names the
// fault's line and column, and the record's first line if it is earlier.
func (c *CSV) bad(b []byte, at, skip int, atEOF bool, err error) error {
	if skip == len(b) && !atEOF && (skip == 0 || b[skip-1] != '\n') {
		return errNeedMore // the rest of the faulty line is not buffered yet
	}
	nl := int64(bytes.Count(b[:at], []byte{'\n'}))
	col := at - (bytes.LastIndexByte(b[:at], '\n') + 1) + 1
	if nl > 0 {
		err = fmt.Errorf("%w (in the record that starts on line %d)", err, c.rd.line)
	}
	rawEnd := skip
	for rawEnd > 0 && (b[rawEnd-1] == '\n' || b[rawEnd-1] == '\r') {
		rawEnd--
	}
	e := &RecordError{File: c.rd.path(), Line: c.rd.line + nl, Column: int64(col), Offset: c.rd.offset(), Raw: slices.Clone(b[:rawEnd]), Err: err}
	c.raw = e.Raw
	c.rd.line += int64(bytes.Count(b[:skip], []byte{'\n'}))
	if skip > 0 && b[skip-1] != '\n' {
		c.rd.line++
	}
	c.rd.r += skip
	return e
}

// lineEnd returns the index just past the line end at or after i, or
// len(b).
func lineEnd(b []byte, i int) int {
	if j := bytes.IndexByte(b[i:], '\n'); j >= 0 {
		return i + j + 1
	}
	return len(b)
}
