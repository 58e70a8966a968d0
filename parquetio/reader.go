package parquetio

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/parquet-go/parquet-go"

	"github.com/ckptdev/ckpt/source"
)

// Row is one row of a Parquet input.
type Row struct {
	Columns []SourceColumn // shared, do not modify
	Header  []string       // the column names; shared
	Fields  [][]byte       // the text of each value; empty for null
	Null    []bool
	File    string
	// RowGroup and Row place the row in File: its row group and its
	// 0-based row within it.
	RowGroup int
	Row      int64
}

// SourcePosition is where a Parquet input resumes: row Row of row group
// RowGroup of file number File. Files fingerprints the whole input.
type SourcePosition struct {
	File     int                  `json:"file"`
	RowGroup int                  `json:"row_group"`
	Row      int64                `json:"row"`
	Files    []source.Fingerprint `json:"files"`
}

// Source reads the rows of Parquet files, in order, row group by row
// group. It is a pipeline.Source[*Row], Sized and InputFiles.
type Source struct {
	paths []string
	fps   []source.Fingerprint
	cols  []SourceColumn
	hdr   []string
	total int64

	idx   int // current file
	osf   *os.File
	f     *parquet.File
	rg    int   // current row group
	row   int64 // next row in it
	rows  parquet.Rows
	batch []parquet.Row
	bi    int // next row in batch
	bn    int // rows in batch
	prior int64

	rec  Row
	buf  []byte
	offs []int
}

const batchRows = 256

// OpenSource opens Parquet files at their start (pos nil) or where a
// checkpoint's position says. Every file must have the first's columns.
func OpenSource(paths []string, pos json.RawMessage) (*Source, error) {
	if len(paths) == 0 {
		return nil, source.ErrNoInput
	}
	s := &Source{paths: paths, batch: make([]parquet.Row, batchRows)}
	for _, p := range paths {
		fp, err := source.FingerprintFile(p)
		if err != nil {
			if len(pos) > 0 && errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("%w: %s no longer exists: %w", source.ErrInputChanged, p, err)
			}
			return nil, err
		}
		s.fps = append(s.fps, fp)
		s.total += fp.Size
	}
	var p SourcePosition
	if len(pos) > 0 && string(pos) != "null" {
		if err := json.Unmarshal(pos, &p); err != nil || p.File < 0 || p.File > len(p.Files) || p.RowGroup < 0 || p.Row < 0 {
			return nil, fmt.Errorf("bad Parquet input position in checkpoint: %.200s", pos)
		}
		if err := source.SameInput(s.fps, p.Files); err != nil {
			return nil, err
		}
		for i := range s.fps {
			if p.Files[i].Path != "" {
				s.fps[i].Path = p.Files[i].Path
			}
		}
	}
	// The columns come from the first file, every file is checked as it
	// is opened.
	if err := s.open(0); err != nil {
		return nil, err
	}
	if p.File > 0 || p.RowGroup > 0 || p.Row > 0 {
		if err := s.seek(p); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// errCorrupt turns a panic of the Parquet library on malformed input into
// an error naming the file, so that a damaged input stops the job with a
// message rather than a crash.
func (s *Source) errCorrupt(err *error) {
	if r := recover(); r != nil {
		name := "the input"
		if s.idx < len(s.fps) {
			name = s.fps[s.idx].Path
		}
		*err = fmt.Errorf("parquet: %s is damaged: %v (row group %d, row %d)", name, r, s.rg, s.row)
	}
}

// open opens file i and reads its schema.
func (s *Source) open(i int) (err error) {
	defer s.errCorrupt(&err)
	s.closeFile()
	s.idx, s.rg, s.row = i, 0, 0
	if i >= len(s.paths) {
		return nil
	}
	name := s.fps[i].Path
	f, err := os.Open(s.paths[i])
	if err != nil {
		return err
	}
	pf, err := parquet.OpenFile(f, s.fps[i].Size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		f.Close()
		return fmt.Errorf("parquet: %s: %w", name, err)
	}
	cols, err := columnsOf(name, pf.Metadata().Schema)
	if err != nil {
		f.Close()
		return err
	}
	if s.cols == nil {
		s.cols = cols
		s.hdr = make([]string, len(cols))
		for j, c := range cols {
			s.hdr[j] = c.Name
		}
		s.rec = Row{Columns: s.cols, Header: s.hdr, Fields: make([][]byte, len(cols)), Null: make([]bool, len(cols))}
	} else if !sameColumns(s.cols, cols) {
		f.Close()
		return fmt.Errorf("parquet: %s has other columns than %s: the files of one input must have the same columns", name, s.fps[0].Path)
	}
	s.osf, s.f = f, pf
	return nil
}

func sameColumns(a, b []SourceColumn) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || a[i].Kind != b[i].Kind || a[i].Type != b[i].Type {
			return false
		}
	}
	return true
}

// seek moves to a checkpoint's position.
func (s *Source) seek(p SourcePosition) error {
	for i := 0; i < p.File; i++ {
		s.prior += s.fps[i].Size
	}
	if err := s.open(p.File); err != nil {
		return err
	}
	if s.f == nil {
		return nil
	}
	groups := s.f.RowGroups()
	if p.RowGroup > len(groups) || p.RowGroup < len(groups) && p.Row > groups[p.RowGroup].NumRows() {
		return fmt.Errorf("%w: %s has no row %d in row group %d", source.ErrInputChanged, s.fps[p.File].Path, p.Row, p.RowGroup)
	}
	s.rg, s.row = p.RowGroup, p.Row
	return nil
}

// Header returns the column names.
func (s *Source) Header() []string { return s.hdr }

// Columns returns the columns.
func (s *Source) Columns() []SourceColumn { return s.cols }

// Next returns the next row, or io.EOF after the last. The row and its
// fields are reused by the next call.
func (s *Source) Next() (_ *Row, err error) {
	defer s.errCorrupt(&err)
	for s.bi >= s.bn {
		if err := s.fill(); err != nil {
			return nil, err
		}
	}
	r := s.batch[s.bi]
	s.bi++
	rec := &s.rec
	rec.File, rec.RowGroup, rec.Row = s.fps[s.idx].Path, s.rg, s.row
	s.row++
	b := s.buf[:0]
	offs := s.offs[:0] // start, end per column
	for i := range rec.Null {
		rec.Null[i] = true
		offs = append(offs, 0, 0)
	}
	s.offs = offs
	for _, v := range r {
		c := v.Column()
		if c < 0 || c >= len(s.cols) || v.IsNull() {
			continue
		}
		if v.Kind() != s.cols[c].kind {
			return nil, fmt.Errorf("parquet: %s is damaged: row group %d, row %d: column %q holds a %s value, its schema says %s", rec.File, rec.RowGroup, rec.Row, s.cols[c].Name, v.Kind(), s.cols[c].kind)
		}
		start := len(b)
		b = s.cols[c].render(b, v)
		rec.Null[c] = false
		offs[2*c], offs[2*c+1] = start, len(b)
	}
	s.buf = b
	for i := range rec.Fields {
		rec.Fields[i] = b[offs[2*i]:offs[2*i+1]:offs[2*i+1]]
	}
	return rec, nil
}

// fill reads the next batch of rows, moving to the next row group or
// file at the end of one.
func (s *Source) fill() (err error) {
	defer s.errCorrupt(&err)
	s.bi, s.bn = 0, 0
	for s.f != nil {
		groups := s.f.RowGroups()
		if s.rg >= len(groups) {
			s.prior += s.fps[s.idx].Size
			if err := s.open(s.idx + 1); err != nil {
				return err
			}
			continue
		}
		if s.rows == nil {
			if s.row >= groups[s.rg].NumRows() {
				s.rg, s.row = s.rg+1, 0
				continue
			}
			s.rows = groups[s.rg].Rows()
			if s.row > 0 {
				if err := s.rows.SeekToRow(s.row); err != nil {
					return fmt.Errorf("parquet: %s: row group %d: seek to row %d: %w", s.fps[s.idx].Path, s.rg, s.row, err)
				}
			}
		}
		n, err := s.rows.ReadRows(s.batch)
		if n > 0 {
			s.bn = n
			return nil
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("parquet: %s: row group %d, row %d: %w", s.fps[s.idx].Path, s.rg, s.row, err)
		}
		s.rows.Close()
		s.rows = nil
		s.rg, s.row = s.rg+1, 0
	}
	return io.EOF
}

// Position returns where the row after the last one returned is.
func (s *Source) Position() (json.RawMessage, error) {
	p := SourcePosition{File: s.idx, RowGroup: s.rg, Row: s.row, Files: s.fps}
	return json.Marshal(p)
}

// Consumed estimates the input bytes read: the files before the current
// one, and of it the row groups before the current one and the part of
// it read, by compressed size.
func (s *Source) Consumed() int64 {
	n := s.prior
	if s.f == nil {
		return n
	}
	groups := s.f.Metadata().RowGroups
	for i := 0; i < s.rg && i < len(groups); i++ {
		n += groups[i].TotalCompressedSize
	}
	if s.rg < len(groups) && groups[s.rg].NumRows > 0 {
		n += groups[s.rg].TotalCompressedSize * s.row / groups[s.rg].NumRows
	}
	return n
}

// Size returns the total size of the input files.
func (s *Source) Size() int64 { return s.total }

// Paths returns the input files.
func (s *Source) Paths() []string { return s.paths }

func (s *Source) closeFile() {
	if s.rows != nil {
		s.rows.Close()
		s.rows = nil
	}
	if s.osf != nil {
		s.osf.Close()
		s.osf, s.f = nil, nil
	}
	s.bi, s.bn = 0, 0
}

// Close closes the current file.
func (s *Source) Close() error {
	s.closeFile()
	return nil
}
