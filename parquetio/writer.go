package parquetio

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"

	"github.com/ckptdev/ckpt/sink"
	"github.com/ckptdev/ckpt/sink/pgsink"
)

// ErrFinished: rows were written to an output whose footer is written.
var ErrFinished = errors.New("parquet: the output is finished (its footer is written)")

const magic = "PAR1"

// Position is a Parquet output's position in a checkpoint: the file's
// (its length after the last whole row group, and the hashes that
// sink.File checks), and the metadata of the row groups in it, from which
// a resumed job rebuilds the footer.
type Position struct {
	File json.RawMessage `json:"file"` // a sink.FilePosition
	// RowGroups and Rows count the row groups and rows in the file.
	RowGroups int   `json:"row_groups"`
	Rows      int64 `json:"rows"`
	// Meta is the file's metadata so far (schema and row groups), as the
	// Thrift compact encoding of a FileMetaData, compressed with zstd, in
	// base64. Empty once the footer is written.
	Meta string `json:"meta,omitempty"`
	// PageIndex is the column indexes of the row groups in the file, then
	// their offset indexes (each as long as the metadata says), compressed
	// with zstd, in base64. Empty once the footer is written.
	PageIndex string `json:"page_index,omitempty"`
	// Done says that the footer is written: the file is complete.
	Done bool `json:"done,omitempty"`
}

// Output opens a Parquet output file for a pipeline: a
// pipeline.SinkOpener[*Writer].
type Output struct {
	Path    string
	Columns []Column
	// FileOptions are passed to the file sink (Refuse is set by Open to
	// refuse an input file, before FileOptions' own).
	FileOptions sink.FileOptions
}

// Open opens the output fresh (pos nil) or at a checkpoint's position:
// the file is checked and truncated back to its last whole row group.
func (o Output) Open(_ context.Context, pos json.RawMessage, inputs []string) (*Writer, error) {
	return OpenWriter(o.Path, o.Columns, pos, o.fileOptions(inputs))
}

// Verify checks that the file is what a finished job's final checkpoint
// left.
func (o Output) Verify(_ context.Context, pos json.RawMessage) error {
	p, err := parsePosition(pos)
	if err != nil {
		return err
	}
	return sink.VerifyFileWith(o.Path, p.File, o.FileOptions)
}

func (o Output) fileOptions(inputs []string) sink.FileOptions {
	opts := o.FileOptions
	refuse := opts.Refuse
	opts.Refuse = func(fi fs.FileInfo) error {
		for _, in := range inputs {
			if ii, err := os.Stat(in); err == nil && os.SameFile(fi, ii) {
				return fmt.Errorf("%s is the input file %s, which writing would destroy before it is read: write to another file", o.Path, in)
			}
		}
		if refuse != nil {
			return refuse(fi)
		}
		return nil
	}
	return opts
}

func parsePosition(raw json.RawMessage) (Position, error) {
	var p Position
	if err := json.Unmarshal(raw, &p); err != nil || len(p.File) == 0 || p.RowGroups < 0 || p.Rows < 0 {
		return p, fmt.Errorf("bad Parquet output position in checkpoint: %.200s", raw)
	}
	return p, nil
}

// Writer writes rows to a Parquet file. Rows are encoded in memory; Flush
// (at every checkpoint) ends the row group, appends it to the file and
// returns the position; Finish writes the footer. It is used from one
// goroutine, except that Sync may run concurrently with WriteRow.
type Writer struct {
	f    *sink.File
	path string
	enc  []encoder
	row  parquet.Row
	rows []parquet.Row // row, to hand to WriteRows without allocating

	pw      *parquet.GenericWriter[any]
	buf     bytes.Buffer // the row group being encoded, as a file of its own
	pending int64        // rows in it

	size int64               // bytes in the file (handed to f)
	meta format.FileMetaData // schema and row groups in the file
	// colIdx and offIdx are the page index of the row groups in the
	// file, written before the footer: every column chunk's column
	// index, one after the other, and so its offset index.
	colIdx, offIdx []byte
	done           bool  // the footer is written
	err            error // a failed write: every later call returns it
}

// OpenWriter opens a Parquet output file: created or emptied when pos is
// nil, else checked against pos (see sink.OpenFileWith) and truncated to
// its length, its row groups' metadata taken from pos.
func OpenWriter(path string, cols []Column, pos json.RawMessage, opts sink.FileOptions) (*Writer, error) {
	schema, err := schemaOf(cols)
	if err != nil {
		return nil, err
	}
	w := &Writer{path: path, enc: make([]encoder, len(cols)), row: make(parquet.Row, len(cols))}
	for i, c := range cols {
		w.enc[i] = encoder{col: c, index: i}
	}
	w.rows = []parquet.Row{w.row}
	w.pw = parquet.NewGenericWriter[any](&w.buf, schema, parquet.Compression(&parquet.Snappy),
		parquet.CreatedBy("ckpt", "", ""),
		// As parquet-mr: a column whose dictionary passes 1 MiB in a row
		// group (mostly distinct values) is written plain from there on.
		parquet.DictionaryMaxBytes(1<<20))
	// An empty file of the schema gives the footer's schema elements.
	if err := w.pw.Close(); err != nil {
		return nil, fmt.Errorf("parquet: encode the schema: %w", err)
	}
	empty, err := readFooter(w.buf.Bytes())
	if err != nil {
		return nil, err
	}
	w.buf.Reset()
	w.pw.Reset(&w.buf)
	w.meta = *empty

	fresh := len(pos) == 0 || string(pos) == "null"
	var p Position
	if !fresh {
		if p, err = parsePosition(pos); err != nil {
			return nil, err
		}
		if p.Done {
			return nil, fmt.Errorf("%w: the checkpoint says %s is complete", ErrFinished, path)
		}
		meta, err := decodeMeta(p.Meta)
		if err != nil {
			return nil, err
		}
		if !sameSchema(meta.Schema, w.meta.Schema) {
			return nil, fmt.Errorf("parquet: %s was begun with other columns or types than this run's: restart the job", path)
		}
		if len(meta.RowGroups) != p.RowGroups || meta.NumRows != p.Rows {
			return nil, fmt.Errorf("bad Parquet output position in checkpoint: %d row groups and %d rows, its metadata has %d and %d", p.RowGroups, p.Rows, len(meta.RowGroups), meta.NumRows)
		}
		w.meta.RowGroups, w.meta.NumRows = meta.RowGroups, meta.NumRows
		if w.colIdx, w.offIdx, err = decodePageIndex(p.PageIndex, meta); err != nil {
			return nil, err
		}
		var fp sink.FilePosition
		if err := json.Unmarshal(p.File, &fp); err != nil {
			return nil, fmt.Errorf("bad Parquet output position in checkpoint: %w", err)
		}
		w.size = fp.Length
	}
	if w.f, err = sink.OpenFileWith(path, p.File, opts); err != nil {
		return nil, err
	}
	if fresh {
		if _, err := w.f.WriteString(magic); err != nil {
			w.f.Close()
			return nil, err
		}
		w.size = int64(len(magic))
	}
	return w, nil
}

// Columns returns the number of columns.
func (w *Writer) Columns() int { return len(w.enc) }

// WriteRow adds a row: vals[i] is the text of column i, or null where
// null is not nil and null[i] is true. A value its column cannot hold is
// a *pgsink.InvalidValueError, and nothing of the row is written. The
// values are copied.
func (w *Writer) WriteRow(vals [][]byte, null []bool) error {
	if w.err != nil {
		return w.err
	}
	if w.done {
		return ErrFinished
	}
	if len(vals) != len(w.enc) {
		return &pgsink.InvalidValueError{Column: "*", Err: fmt.Errorf("%d values for %d columns", len(vals), len(w.enc))}
	}
	for i := range w.enc {
		e := &w.enc[i]
		v, err := e.value(vals[i], null != nil && null[i])
		if err != nil {
			return &pgsink.InvalidValueError{Column: e.col.Name, Err: err}
		}
		w.row[i] = v
	}
	if _, err := w.pw.WriteRows(w.rows); err != nil {
		w.err = fmt.Errorf("parquet: encode a row of %s: %w", w.path, err)
		return w.err
	}
	w.pending++
	return nil
}

// endRowGroup encodes the buffered rows as a row group and appends it to
// the file.
func (w *Writer) endRowGroup() error {
	if w.pending == 0 {
		return nil
	}
	if err := w.pw.Close(); err != nil {
		w.err = fmt.Errorf("parquet: encode a row group of %s: %w", w.path, err)
		return w.err
	}
	rg, chunks, ci, oi, err := relocate(w.buf.Bytes(), w.size, len(w.meta.RowGroups))
	if err != nil {
		w.err = fmt.Errorf("parquet: %s: %w", w.path, err)
		return w.err
	}
	if _, err := w.f.Write(chunks); err != nil {
		w.err = err
		return err
	}
	w.size += int64(len(chunks))
	w.colIdx = append(w.colIdx, ci...)
	w.offIdx = append(w.offIdx, oi...)
	w.meta.RowGroups = append(w.meta.RowGroups, *rg)
	w.meta.NumRows += rg.NumRows
	w.pending = 0
	w.buf.Reset()
	w.pw.Reset(&w.buf)
	return nil
}

// Flush ends the row group (if it has rows), hands it to the OS and
// returns the position covering it.
func (w *Writer) Flush() (json.RawMessage, error) {
	if w.err != nil {
		return nil, w.err
	}
	if w.f == nil {
		return nil, os.ErrClosed
	}
	if err := w.endRowGroup(); err != nil {
		return nil, err
	}
	fp, err := w.f.Flush()
	if err != nil {
		return nil, err
	}
	p := Position{File: fp, RowGroups: len(w.meta.RowGroups), Rows: w.meta.NumRows, Done: w.done}
	if !w.done {
		if p.Meta, err = encodeMeta(&w.meta); err != nil {
			return nil, err
		}
		idx := make([]byte, 0, len(w.colIdx)+len(w.offIdx))
		idx = append(append(idx, w.colIdx...), w.offIdx...)
		p.PageIndex = base64.StdEncoding.EncodeToString(zenc.EncodeAll(idx, nil))
	}
	return json.Marshal(p)
}

// Finish ends the last row group and writes the footer: the file is then
// complete, and the next Flush's position says so. A job calls it once
// its input is exhausted, before its final checkpoint.
func (w *Writer) Finish() error {
	if w.err != nil || w.done {
		return w.err
	}
	if w.f == nil {
		return os.ErrClosed
	}
	if err := w.endRowGroup(); err != nil {
		return err
	}
	// The page index lies in one piece before the footer, all column
	// indexes first, as readers (parquet-go among them) expect.
	ci, oi := w.size, w.size+int64(len(w.colIdx))
	for i := range w.meta.RowGroups {
		for j := range w.meta.RowGroups[i].Columns {
			c := &w.meta.RowGroups[i].Columns[j]
			if c.ColumnIndexLength > 0 {
				c.ColumnIndexOffset, ci = ci, ci+int64(c.ColumnIndexLength)
			}
			if c.OffsetIndexLength > 0 {
				c.OffsetIndexOffset, oi = oi, oi+int64(c.OffsetIndexLength)
			}
		}
	}
	for _, b := range [][]byte{w.colIdx, w.offIdx} {
		if _, err := w.f.Write(b); err != nil {
			w.err = err
			return err
		}
		w.size += int64(len(b))
	}
	footer, err := thrift.Marshal(new(thrift.CompactProtocol), &w.meta)
	if err != nil {
		return fmt.Errorf("parquet: encode the footer of %s: %w", w.path, err)
	}
	footer = binary.LittleEndian.AppendUint32(footer, uint32(len(footer)))
	footer = append(footer, magic...)
	if _, err := w.f.Write(footer); err != nil {
		w.err = err
		return err
	}
	w.size += int64(len(footer))
	w.done = true
	return nil
}

// Sync makes everything flushed so far durable.
func (w *Writer) Sync(ctx context.Context) error {
	if w.f == nil {
		return os.ErrClosed
	}
	return w.f.Sync(ctx)
}

// Stat returns the file's identity.
func (w *Writer) Stat() (fs.FileInfo, error) {
	if w.f == nil {
		return nil, os.ErrClosed
	}
	return w.f.Stat()
}

// Close closes the file. Rows not flushed are dropped: the file is
// complete only after Finish and a Flush.
func (w *Writer) Close() error {
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// readFooter decodes the footer of the Parquet file b.
func readFooter(b []byte) (*format.FileMetaData, error) {
	n := len(b)
	if n < 12 || string(b[:4]) != magic || string(b[n-4:]) != magic {
		return nil, errors.New("parquet: the encoded row group is not a Parquet file")
	}
	size := int(binary.LittleEndian.Uint32(b[n-8:]))
	if size > n-12 {
		return nil, errors.New("parquet: the encoded row group's footer is longer than the file")
	}
	var md format.FileMetaData
	if err := thrift.Unmarshal(new(thrift.CompactProtocol), b[n-8-size:n-8], &md); err != nil {
		return nil, fmt.Errorf("parquet: decode the encoded row group's footer: %w", err)
	}
	return &md, nil
}

// relocate takes the Parquet file b, of one row group, apart for
// appending to a file at offset at, where the row group will be number
// ordinal: it returns the row group's metadata with every offset moved,
// the bytes of its column chunks, and its page index: the column indexes
// and the offset indexes (their page locations moved too) of its column
// chunks, one after the other, to be written with every other row
// group's before the footer. Their lengths are in the metadata; their
// offsets are set when they are written.
func relocate(b []byte, at int64, ordinal int) (rg *format.RowGroup, chunks, colIdx, offIdx []byte, err error) {
	md, err := readFooter(b)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if len(md.RowGroups) != 1 {
		return nil, nil, nil, nil, fmt.Errorf("the encoded row group is %d row groups", len(md.RowGroups))
	}
	rg = &md.RowGroups[0]
	// The column chunks lie from just after the magic to the end of the
	// last one; the page index follows them.
	end := int64(len(magic))
	for i := range rg.Columns {
		m := &rg.Columns[i].MetaData
		start := m.DataPageOffset
		if m.DictionaryPageOffset > 0 && m.DictionaryPageOffset < start {
			start = m.DictionaryPageOffset
		}
		end = max(end, start+m.TotalCompressedSize)
	}
	if end > int64(len(b)) {
		return nil, nil, nil, nil, errors.New("the encoded row group's column chunks run past its end")
	}
	shift := at - int64(len(magic))
	move := func(off *int64) {
		if *off > 0 {
			*off += shift
		}
	}
	for i := range rg.Columns {
		c := &rg.Columns[i]
		move(&c.FileOffset)
		move(&c.MetaData.DataPageOffset)
		move(&c.MetaData.IndexPageOffset)
		move(&c.MetaData.DictionaryPageOffset)
		if c.MetaData.BloomFilterOffset > 0 {
			return nil, nil, nil, nil, errors.New("the encoded row group has bloom filters, which are not relocated")
		}
		if c.ColumnIndexLength > 0 {
			ci, err := span(b, c.ColumnIndexOffset, int64(c.ColumnIndexLength))
			if err != nil {
				return nil, nil, nil, nil, err
			}
			c.ColumnIndexOffset = 0
			colIdx = append(colIdx, ci...)
		}
	}
	for i := range rg.Columns {
		c := &rg.Columns[i]
		if c.OffsetIndexLength == 0 {
			continue
		}
		raw, err := span(b, c.OffsetIndexOffset, int64(c.OffsetIndexLength))
		if err != nil {
			return nil, nil, nil, nil, err
		}
		var oi format.OffsetIndex
		if err := thrift.Unmarshal(new(thrift.CompactProtocol), raw, &oi); err != nil {
			return nil, nil, nil, nil, fmt.Errorf("decode an offset index: %w", err)
		}
		for j := range oi.PageLocations {
			oi.PageLocations[j].Offset += shift
		}
		enc, err := thrift.Marshal(new(thrift.CompactProtocol), &oi)
		if err != nil {
			return nil, nil, nil, nil, fmt.Errorf("encode an offset index: %w", err)
		}
		c.OffsetIndexOffset = 0
		c.OffsetIndexLength = int32(len(enc))
		offIdx = append(offIdx, enc...)
	}
	move(&rg.FileOffset)
	rg.Ordinal = int16(ordinal)
	return rg, b[len(magic):end], colIdx, offIdx, nil
}

func span(b []byte, off, n int64) ([]byte, error) {
	if off < 0 || n < 0 || off+n > int64(len(b)) {
		return nil, fmt.Errorf("a page index at %d (%d bytes) lies outside the encoded row group", off, n)
	}
	return b[off : off+n], nil
}

var (
	zenc, _ = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	zdec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
)

// encodeMeta encodes the schema and row groups of md for a position.
func encodeMeta(md *format.FileMetaData) (string, error) {
	b, err := thrift.Marshal(new(thrift.CompactProtocol), md)
	if err != nil {
		return "", fmt.Errorf("parquet: encode the row groups' metadata: %w", err)
	}
	return base64.StdEncoding.EncodeToString(zenc.EncodeAll(b, nil)), nil
}

func decodeMeta(s string) (*format.FileMetaData, error) {
	z, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("bad Parquet output position in checkpoint: metadata: %w", err)
	}
	b, err := zdec.DecodeAll(z, nil)
	if err != nil {
		return nil, fmt.Errorf("bad Parquet output position in checkpoint: metadata: %w", err)
	}
	var md format.FileMetaData
	if err := thrift.Unmarshal(new(thrift.CompactProtocol), b, &md); err != nil {
		return nil, fmt.Errorf("bad Parquet output position in checkpoint: metadata: %w", err)
	}
	return &md, nil
}

// decodePageIndex splits a position's page index into the column and
// offset indexes, checking its length against the metadata's.
func decodePageIndex(s string, md *format.FileMetaData) (colIdx, offIdx []byte, err error) {
	bad := func(why string) error {
		return fmt.Errorf("bad Parquet output position in checkpoint: page index: %s", why)
	}
	z, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, nil, bad(err.Error())
	}
	b, err := zdec.DecodeAll(z, nil)
	if err != nil {
		return nil, nil, bad(err.Error())
	}
	var nci, noi int
	for _, rg := range md.RowGroups {
		for _, c := range rg.Columns {
			nci += int(c.ColumnIndexLength)
			noi += int(c.OffsetIndexLength)
		}
	}
	if len(b) != nci+noi {
		return nil, nil, bad(fmt.Sprintf("%d bytes, the metadata says %d", len(b), nci+noi))
	}
	return b[:nci:nci], b[nci:], nil
}

func sameSchema(a, b []format.SchemaElement) bool {
	ea, err1 := thrift.Marshal(new(thrift.CompactProtocol), &format.FileMetaData{Schema: a})
	eb, err2 := thrift.Marshal(new(thrift.CompactProtocol), &format.FileMetaData{Schema: b})
	return err1 == nil && err2 == nil && bytes.Equal(ea, eb)
}
