package source

import (
	"bytes"
	"encoding/json"
	"io"
)

// Line is one line of input. Its Text is valid until the next call to
// Next.
type Line struct {
	Text   []byte // without the line end (LF or CRLF)
	File   string
	Line   int64 // 1-based line number
	Offset int64 // byte offset of the line in File
}

// Lines reads lines from a list of files: plain text, or JSON Lines (one
// JSON value per line, which the caller decodes). A last line without a
// line end is a line. The UTF-8 byte order mark at the start of a file is
// dropped.
type Lines struct {
	rd   *reader
	line Line
}

// OpenLines opens line input at the start, or at the position recorded in
// a checkpoint (nil for the start): an O(1) seek.
func OpenLines(paths []string, pos json.RawMessage) (*Lines, error) {
	return OpenLinesFrom(nil, paths, pos)
}

// OpenLinesFrom is OpenLines over the objects objs names by paths (nil:
// local files).
func OpenLinesFrom(objs Objects, paths []string, pos json.RawMessage) (*Lines, error) {
	p, err := ParsePosition(pos)
	if err != nil {
		return nil, err
	}
	rd, err := openReader(objs, paths, p)
	if err != nil {
		return nil, err
	}
	return &Lines{rd: rd}, nil
}

// Next returns the next line, or io.EOF after the last line of the last
// file.
func (l *Lines) Next() (*Line, error) {
	rd := l.rd
	for {
		if err := rd.start(); err != nil {
			return nil, err
		}
		b := rd.buf[rd.r:rd.w]
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 && !rd.eof {
			if err := rd.fill(); err == errTooLong {
				return nil, rd.skipLine()
			} else if err != nil {
				return nil, err
			}
			continue
		}
		if nl < 0 && len(b) == 0 {
			ok, err := rd.nextFile()
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, io.EOF
			}
			continue
		}
		end := nl + 1
		if nl < 0 {
			// The last line, without a line end: half written, if the
			// file is still growing.
			if changed, err := rd.changedAtEnd(); err != nil {
				return nil, err
			} else if changed {
				rd.w = rd.r
				continue
			}
			nl, end = len(b), len(b)
		}
		text := b[:nl]
		if len(text) > 0 && text[len(text)-1] == '\r' {
			text = text[:len(text)-1]
		}
		l.line = Line{Text: text, File: rd.path(), Line: rd.line, Offset: rd.offset()}
		rd.r += end
		rd.line++
		return &l.line, nil
	}
}

// Position returns where the line after the last one returned starts.
func (l *Lines) Position() (json.RawMessage, error) { return l.rd.position() }

// Consumed returns the input bytes read so far, over all files.
func (l *Lines) Consumed() int64 { return l.rd.consumed() }

// Size returns the total size of the input files.
func (l *Lines) Size() int64 { return l.rd.total }

// Files returns the input files' fingerprints.
func (l *Lines) Files() []Fingerprint { return l.rd.files }

// Paths returns the input files, as opened.
func (l *Lines) Paths() []string { return l.rd.paths }

// Close closes the current file.
func (l *Lines) Close() error { return l.rd.close() }
