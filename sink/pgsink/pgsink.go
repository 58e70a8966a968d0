// Package pgsink is an exactly-once output into a PostgreSQL table: the
// rows written up to a checkpoint and the checkpoint's manifest are
// committed in one transaction, so that after any crash the table holds
// exactly the rows of the newest checkpoint, never a row twice, never one
// lost.
//
// Rows stream into an open transaction with COPY (binary format) as they
// are written. At a checkpoint, Flush ends that transaction's COPY and
// hands the transaction to the commit, which the engine runs in the
// background, while the rows that follow go into a new transaction on a
// second connection. CommitManifest writes the manifest into the job's
// store (PostgreSQL, in the same database) inside the handed-over
// transaction, fenced by the job's lock token, and commits it.
//
// On resume, the rows after the checkpoint were never committed: the
// server rolled them back with their transaction, and there is nothing to
// truncate. A job that starts from the beginning empties the table, in
// the transaction of its first checkpoint: the table belongs to the job.
package pgsink

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/pipeline"
	"github.com/ckptdev/ckpt/sink"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/pgstore"
)

// DefaultRowColumn is the name of the column of load order that
// convert's tables get.
const DefaultRowColumn = "ckpt_row"

// Config configures a table sink.
type Config struct {
	// URL is the database's postgres:// address. Its table parameter
	// names the table unless Table is set; ckpt's other parameters are
	// ignored.
	URL string
	// Table is the table, as NAME or SCHEMA.NAME (unquoted; letters,
	// digits and '_'). Empty means the URL's table parameter.
	Table string
	// Columns are the table's columns that rows fill, in the order of
	// WriteRow's values.
	Columns []string
	// Types are the columns' types, one per column; empty means text
	// for every column.
	Types []ColumnType
	// RowColumn, if set, is a bigint column that gets each row's 1-based
	// place in the output, so that the load order can be read back.
	RowColumn string
	// Store is the job's store, in the same database: the sink commits
	// checkpoints into it, in the transaction of its rows. Required.
	Store *pgstore.Store
	// Logger receives debug events; nil means slog.Default().
	Logger *slog.Logger
}

// Position is the sink's position in a checkpoint: the rows committed,
// and the table they went to (schema-qualified; empty in positions
// written before it was recorded).
type Position struct {
	Rows  int64  `json:"rows"`
	Table string `json:"table,omitempty"`
}

// InvalidValueError is a value PostgreSQL would refuse in its column: not
// UTF-8, or holding a NUL byte, for text; not of the column's type for
// the others. WriteRow writes nothing of its row.
type InvalidValueError struct {
	Column string
	Err    error
}

func (e *InvalidValueError) Error() string {
	return fmt.Sprintf("column %s: %v", e.Column, e.Err)
}

// Unwrap returns the cause.
func (e *InvalidValueError) Unwrap() error { return e.Err }

var (
	errNotUTF8 = errors.New("not valid UTF-8 (PostgreSQL text must be)")
	errNUL     = errors.New("holds a NUL byte, which PostgreSQL text cannot")
)

const (
	bufSize   = 512 << 10 // encoded rows handed to COPY at a time
	queued    = 4         // buffers queued for COPY before WriteRow waits
	copyMagic = "PGCOPY\n\377\r\n\x00"
)

// Sink writes rows into a table. It implements pipeline.Output and
// ckpt.ManifestCommitter. WriteRow, Flush and Close are called from one
// goroutine; Sync and CommitManifest may run concurrently with WriteRow,
// as the engine does.
type Sink struct {
	cfg     Config
	log     *slog.Logger
	st      *pgstore.Store
	schema  string // the table's schema, resolved
	table   string // quoted and qualified
	copySQL string
	ncols   int16 // fields per row, the row column included

	ctx    context.Context // ends with Close
	cancel context.CancelFunc
	conns  [2]*pgx.Conn
	cur    int      // the connection of the next segment
	seg    *segment // the transaction rows are going into; nil until a row comes
	buf    []byte   // encoded rows not handed over yet
	free   chan []byte
	rows   int64 // rows written, buffered ones included
	trunc  bool  // the next segment empties the table first

	mu      sync.Mutex
	pending *segment // flushed, waiting for CommitManifest
	failed  error    // once set, every call fails with it
}

// segment is one transaction's worth of rows: a COPY fed by buffers.
type segment struct {
	conn *pgx.Conn
	bufs chan []byte // closed by Flush; nil for an empty segment
	done chan struct{}
	tx   pgx.Tx // set before done closes; nil for an empty segment that truncates nothing
	err  error  // set before done closes
}

var (
	_ pipeline.Output        = (*Sink)(nil)
	_ ckpt.ManifestCommitter = (*Sink)(nil)
)

// Output returns the opener of a table sink for pipeline.Run.
func Output(cfg Config) pipeline.SinkOpener[*Sink] { return opener(cfg) }

type opener Config

// Open opens the sink; a table has no input files to refuse.
func (o opener) Open(ctx context.Context, pos json.RawMessage, _ []string) (*Sink, error) {
	return Open(ctx, Config(o), pos)
}

// Verify checks that the table holds the rows a finished job committed.
func (o opener) Verify(ctx context.Context, pos json.RawMessage) error {
	return Verify(ctx, Config(o), pos)
}

// Open opens the sink: from the beginning when pos is nil (creating the
// table if it is missing; emptying it with the first checkpoint), else at
// the checkpoint's position, which the table must match.
func Open(ctx context.Context, cfg Config, pos json.RawMessage) (*Sink, error) {
	s, err := connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if len(pos) == 0 || string(pos) == "null" {
		err = s.prepare(ctx)
		s.trunc = true
	} else {
		err = s.resume(ctx, pos)
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	s.buf = make([]byte, 0, bufSize+bufSize/4)
	return s, nil
}

// Verify checks, changing nothing, that the table holds what a finished
// job's final checkpoint at pos committed: it exists, with the sink's
// columns and that many rows. A table dropped, emptied or loaded into
// since is reported with sink.ErrOutputChanged.
func Verify(ctx context.Context, cfg Config, pos json.RawMessage) error {
	s, err := connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	return s.resume(ctx, pos)
}

// connect checks cfg, connects, and finds the table.
func connect(ctx context.Context, cfg Config) (*Sink, error) {
	st := cfg.Store
	if st == nil {
		return nil, errors.New("the job's store is not set: a PostgreSQL table commits each checkpoint in the transaction of its rows, so the store must be PostgreSQL, in the same database (a postgres:// store URL)")
	}
	pc, err := pgstore.ParseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Table == "" {
		if err := CutQuery(cfg.URL); err != nil {
			return nil, err
		}
		cfg.Table = pc.Params.Table
	}
	schema, name, err := SplitTable(cfg.Table)
	if err != nil {
		return nil, err
	}
	if len(cfg.Columns) == 0 {
		return nil, errors.New("a table output needs columns")
	}
	if len(cfg.Types) != 0 && len(cfg.Types) != len(cfg.Columns) {
		return nil, fmt.Errorf("%d column types for %d columns", len(cfg.Types), len(cfg.Columns))
	}
	s := &Sink{cfg: cfg, log: cfg.Logger, st: st, free: make(chan []byte, queued+2), ncols: int16(len(cfg.Columns))}
	if s.log == nil {
		s.log = slog.Default()
	}
	if cfg.RowColumn != "" {
		s.ncols++
	}
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	for i := range s.conns {
		if s.conns[i], err = pgx.ConnectConfig(ctx, pc.Pool.ConnConfig); err != nil {
			s.Close()
			return nil, pc.Explain(err)
		}
	}
	if err := s.sameDatabase(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if s.schema, err = s.resolveSchema(ctx, schema, name); err != nil {
		s.Close()
		return nil, err
	}
	s.table = pgx.Identifier{s.schema, name}.Sanitize()
	var cols []string
	if cfg.RowColumn != "" {
		cols = append(cols, pgx.Identifier{cfg.RowColumn}.Sanitize())
	}
	for _, c := range cfg.Columns {
		cols = append(cols, pgx.Identifier{c}.Sanitize())
	}
	s.copySQL = fmt.Sprintf("COPY %s (%s) FROM STDIN (FORMAT binary)", s.table, strings.Join(cols, ", "))
	return s, nil
}

// CutQuery refuses a postgres:// address whose query has a ';': URL
// parsing ends a parameter there and drops the pair, so table=a;b would
// name another table than the one written, or none.
func CutQuery(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return nil // the address's parser reports it
	}
	if _, err := url.ParseQuery(u.RawQuery); err != nil && strings.Contains(u.RawQuery, ";") {
		return fmt.Errorf("%w: the address's parameters hold a ';', where URL parsing cuts them (the table=... value is dropped): table names are letters, digits and '_', and parameters are separated by '&'", store.ErrBadURL)
	}
	return nil
}

// resolveSchema returns the schema of the table: the one named, or for an
// unqualified name the schema where PostgreSQL finds it on the
// search_path, or, if it does not exist yet, the schema it would be
// created in (the first of the search_path that exists). The sink then
// uses the qualified name throughout, so that CREATE, TRUNCATE, COPY and
// the checks all mean one table. The system catalogs are refused.
func (s *Sink) resolveSchema(ctx context.Context, schema, name string) (string, error) {
	if schema == "" {
		var found *string
		if err := s.conns[0].QueryRow(ctx, `SELECT n.nspname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)`,
			pgx.Identifier{name}.Sanitize()).Scan(&found); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return "", fmt.Errorf("find table %s: %w", name, err)
		}
		if found != nil {
			schema = *found
		} else {
			var cur *string
			if err := s.conns[0].QueryRow(ctx, `SELECT current_schema()::text`).Scan(&cur); err != nil {
				return "", fmt.Errorf("find table %s: %w", name, err)
			}
			if cur == nil {
				var path string
				_ = s.conns[0].QueryRow(ctx, `SHOW search_path`).Scan(&path)
				return "", fmt.Errorf("table %s: no schema of the search_path (%s) exists to create it in: name its schema, as table=SCHEMA.%s", name, path, name)
			}
			schema = *cur
		}
	}
	if schema == "pg_catalog" || schema == "information_schema" || strings.HasPrefix(schema, "pg_") {
		return "", fmt.Errorf("table %s.%s: %s is a PostgreSQL system schema, which a job must not write to: name a table in another schema", schema, name, schema)
	}
	return schema, nil
}

// SplitTable parses NAME or SCHEMA.NAME.
func SplitTable(t string) (schema, name string, err error) {
	if t == "" {
		return "", "", errors.New("no table: name one (the URL's table parameter, as table=NAME or table=SCHEMA.NAME)")
	}
	schema, name, qualified := strings.Cut(t, ".")
	if !qualified {
		schema, name = "", t
	}
	for _, part := range []string{schema, name} {
		if part == "" && qualified || part != "" && pgstore.ValidIdent(part) != nil {
			return "", "", fmt.Errorf("table %q: use NAME or SCHEMA.NAME, each of letters, digits and '_', not starting with a digit, at most 63 bytes", t)
		}
	}
	return schema, name, nil
}

// sameDatabase checks that the sink's connections reach the store: the
// store's random id, read through them, is the store's.
func (s *Sink) sameDatabase(ctx context.Context) error {
	var inst string
	err := s.conns[0].QueryRow(ctx, `SELECT instance FROM `+pgx.Identifier{s.st.Schema(), "meta"}.Sanitize()+` LIMIT 1`).Scan(&inst)
	if err == nil && inst == s.st.Instance() {
		return nil
	}
	return fmt.Errorf("the table and the job's store are not in the same database (the table's: %s; the store: %v): a checkpoint must commit in the transaction of the rows, so give the store the table's database (the same postgres:// URL)",
		s.conns[0].Config().Database, s.st)
}

// prepare creates the table if it is missing and checks its columns.
func (s *Sink) prepare(ctx context.Context) error {
	var defs []string
	if s.cfg.RowColumn != "" {
		defs = append(defs, pgx.Identifier{s.cfg.RowColumn}.Sanitize()+" bigint")
	}
	for i, c := range s.cfg.Columns {
		defs = append(defs, pgx.Identifier{c}.Sanitize()+" "+s.typeOf(i).String())
	}
	if _, err := s.conns[0].Exec(ctx, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (%s)", s.table, strings.Join(defs, ", "))); err != nil {
		return fmt.Errorf("create table %s: %w", s.table, err)
	}
	return s.checkColumns(ctx)
}

// checkColumns checks that the table has the sink's columns with the
// types binary COPY writes (other columns may exist: they get their
// defaults).
func (s *Sink) checkColumns(ctx context.Context) error {
	rows, err := s.conns[0].Query(ctx, `SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
		WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, s.table)
	if err != nil {
		return fmt.Errorf("table %s: %w", s.table, err)
	}
	have := map[string]string{}
	var list []string
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return err
		}
		have[name] = typ
		list = append(list, name+" "+typ)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("table %s: %w", s.table, err)
	}
	var bad []string
	want := func(col, typ string) {
		if have[col] != typ {
			bad = append(bad, fmt.Sprintf("%s %s", col, typ))
		}
	}
	if s.cfg.RowColumn != "" {
		want(s.cfg.RowColumn, "bigint")
	}
	for i, c := range s.cfg.Columns {
		want(c, s.typeOf(i).formatType())
	}
	if len(bad) > 0 {
		return fmt.Errorf("table %s has columns (%s) but needs (%s): drop it or name another table", s.table, strings.Join(list, ", "), strings.Join(bad, ", "))
	}
	return nil
}

// resume checks the table against the checkpoint: it is the table the
// checkpoint committed to, and holds exactly the rows it committed.
func (s *Sink) resume(ctx context.Context, pos json.RawMessage) error {
	var p Position
	if err := json.Unmarshal(pos, &p); err != nil || p.Rows < 0 {
		return fmt.Errorf("bad output position in checkpoint: %s", pos)
	}
	if p.Table != "" && p.Table != s.table {
		return fmt.Errorf("%w: the checkpoint's rows are in table %s, and the address now names %s (another search_path?)", sink.ErrOutputChanged, p.Table, s.table)
	}
	var exists bool
	if err := s.conns[0].QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", s.table).Scan(&exists); err != nil {
		return fmt.Errorf("find table %s: %w", s.table, err)
	}
	if !exists {
		return fmt.Errorf("%w: table %s no longer exists (the checkpoint committed %d rows to it)", sink.ErrOutputChanged, s.table, p.Rows)
	}
	if err := s.checkColumns(ctx); err != nil {
		return fmt.Errorf("%w: %w", sink.ErrOutputChanged, err)
	}
	var n int64
	if err := s.conns[0].QueryRow(ctx, "SELECT count(*) FROM "+s.table).Scan(&n); err != nil {
		return fmt.Errorf("count the rows of %s: %w", s.table, err)
	}
	if n != p.Rows {
		return fmt.Errorf("%w: table %s has %d rows, the checkpoint committed %d", sink.ErrOutputChanged, s.table, n, p.Rows)
	}
	s.rows = p.Rows
	return nil
}

// typeOf returns the type of column i.
func (s *Sink) typeOf(i int) ColumnType {
	if len(s.cfg.Types) == 0 {
		return Text
	}
	return s.cfg.Types[i]
}

// WriteRow adds a row: vals[i] is the text of Columns[i], or NULL where
// null is not nil and null[i] is true. A value its column cannot hold (for
// text: not UTF-8, or with a NUL byte) is an *InvalidValueError, and
// nothing of the row is written. The values are copied: the caller may
// reuse them.
func (s *Sink) WriteRow(vals [][]byte, null []bool) error {
	if len(vals) != len(s.cfg.Columns) {
		return fmt.Errorf("%d values for %d columns", len(vals), len(s.cfg.Columns))
	}
	b := binary.BigEndian.AppendUint16(s.buf, uint16(s.ncols))
	if s.cfg.RowColumn != "" {
		b = binary.BigEndian.AppendUint32(b, 8)
		b = binary.BigEndian.AppendUint64(b, uint64(s.rows+1))
	}
	for i, v := range vals {
		if null != nil && null[i] {
			b = binary.BigEndian.AppendUint32(b, 0xffffffff)
			continue
		}
		var err error
		if b, err = appendValue(b, s.typeOf(i), v); err != nil {
			// s.buf keeps its length: the row's bytes so far are dropped.
			return &InvalidValueError{Column: s.cfg.Columns[i], Err: err}
		}
	}
	s.buf = b
	s.rows++
	if len(b) >= bufSize {
		return s.handOff()
	}
	return nil
}

// Rows returns the rows written so far, buffered ones included.
func (s *Sink) Rows() int64 { return s.rows }

// handOff queues the buffer for the segment's COPY, starting the segment
// (a transaction on the next connection) if there is none.
func (s *Sink) handOff() error {
	if err := s.err(); err != nil {
		return err
	}
	if s.seg == nil {
		s.seg = s.start()
	}
	// The COPY ends before Flush only when it failed. Checked first: the
	// send below may find room in the queue all the same.
	select {
	case <-s.seg.done:
		return s.fail(fmt.Errorf("write to %s: %w", s.table, s.seg.err))
	default:
	}
	select {
	case s.seg.bufs <- s.buf:
	case <-s.seg.done:
		return s.fail(fmt.Errorf("write to %s: %w", s.table, s.seg.err))
	}
	select {
	case b := <-s.free:
		s.buf = b[:0]
	default:
		s.buf = make([]byte, 0, bufSize+bufSize/4)
	}
	return nil
}

// start begins a segment: a transaction and a COPY into it, fed from
// seg.bufs, on a goroutine of its own. A failed segment closes done at
// once, without waiting for Flush: handOff sees it and stops the rows
// that follow, and no send blocks on it (Flush and Close only close
// bufs).
func (s *Sink) start() *segment {
	seg := s.newSegment(make(chan []byte, queued))
	if seg.err != nil {
		close(seg.done)
		return seg
	}
	go func() {
		defer close(seg.done)
		var err error
		if seg.tx == nil {
			seg.tx, err = s.begin(s.ctx, seg.conn, false)
		}
		if err == nil {
			_, err = seg.tx.Conn().PgConn().CopyFrom(s.ctx, &copyReader{seg: seg, free: s.free}, s.copySQL)
		}
		seg.err = err
	}()
	return seg
}

// newSegment returns the segment of the rows that follow, on the next
// connection. The first one of a job that starts from the beginning
// empties the table: its transaction begins here, with the TRUNCATE,
// before it returns. The table is then locked until that checkpoint
// commits, and the COPY of every later segment, on the other connection,
// waits for it. Were the TRUNCATE left to run after such a COPY had
// started, it would wait for a transaction that ends only with the next
// checkpoint, which waits for this one: the job would hang.
func (s *Sink) newSegment(bufs chan []byte) *segment {
	seg := &segment{conn: s.conns[s.cur], bufs: bufs, done: make(chan struct{})}
	if s.trunc {
		s.trunc = false
		seg.tx, seg.err = s.begin(s.ctx, seg.conn, true)
	}
	return seg
}

// begin starts a segment's transaction, emptying the table first if
// trunc.
func (s *Sink) begin(ctx context.Context, conn *pgx.Conn, trunc bool) (pgx.Tx, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, err
	}
	if trunc {
		if _, err := tx.Exec(ctx, "TRUNCATE "+s.table); err != nil {
			tx.Rollback(ctx)
			return nil, err
		}
	}
	return tx, nil
}

// copyReader is the COPY data of a segment: the binary header, the
// buffers as they come, the trailer once Flush closes the channel.
type copyReader struct {
	seg    *segment
	free   chan []byte
	cur    []byte
	held   []byte // the buffer cur is in, returned to free when read
	header bool
	end    bool
}

func (r *copyReader) Read(p []byte) (int, error) {
	if !r.header {
		r.header = true
		r.cur = append([]byte(copyMagic), 0, 0, 0, 0, 0, 0, 0, 0)
	}
	for len(r.cur) == 0 {
		if r.held != nil {
			select {
			case r.free <- r.held:
			default:
			}
			r.held = nil
		}
		if r.end {
			return 0, io.EOF
		}
		b, ok := <-r.seg.bufs
		if !ok {
			r.end = true
			r.cur = []byte{0xff, 0xff}
			continue
		}
		r.cur, r.held = b, b
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// Flush ends the current transaction's input and hands the transaction
// to the coming CommitManifest; the rows that follow go into a new
// transaction on the other connection. The position is every row written
// so far: committed by that CommitManifest.
func (s *Sink) Flush() (json.RawMessage, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	stale := s.pending != nil
	s.mu.Unlock()
	if stale {
		// The previous checkpoint flushed and never committed: its rows
		// cannot join this one's, which would then claim them.
		return nil, s.fail(errors.New("the previous checkpoint was not committed; its rows are lost with its transaction: stop, and run the job again to resume from its last checkpoint"))
	}
	if len(s.buf) > 0 {
		if err := s.handOff(); err != nil {
			return nil, err
		}
	}
	seg := s.seg
	if seg == nil {
		// No row since the last checkpoint: the commit starts a
		// transaction for the manifest alone.
		seg = s.newSegment(nil)
		close(seg.done)
	} else {
		close(seg.bufs)
	}
	s.seg = nil
	s.cur ^= 1
	s.mu.Lock()
	s.pending = seg
	s.mu.Unlock()
	return json.Marshal(Position{Rows: s.rows, Table: s.table})
}

// Sync waits until the server has taken every row of the flushed
// transaction. They become durable with the commit, in CommitManifest.
func (s *Sink) Sync(ctx context.Context) error {
	s.mu.Lock()
	seg := s.pending
	s.mu.Unlock()
	if seg == nil {
		return s.err()
	}
	select {
	case <-seg.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if seg.err != nil {
		return s.fail(fmt.Errorf("write to %s: %w", s.table, seg.err))
	}
	return nil
}

// CommitManifest writes the checkpoint's manifest into the store, fenced
// by the job's lock token, in the transaction of the flushed rows, and
// commits both. A failure rolls both back and the sink fails for good:
// the job stops and its next run resumes from the last checkpoint.
func (s *Sink) CommitManifest(ctx context.Context, m ckpt.ManifestCommit) (bool, error) {
	s.mu.Lock()
	seg := s.pending
	s.mu.Unlock()
	if seg == nil {
		return false, s.fail(errors.New("commit without a flush"))
	}
	if err := s.Sync(ctx); err != nil {
		return false, err
	}
	tx := seg.tx
	if tx == nil {
		var err error
		if tx, err = s.begin(ctx, seg.conn, false); err != nil {
			return false, s.fail(fmt.Errorf("begin a transaction: %w", err))
		}
	}
	if err := pgstore.CreateFencedTx(ctx, tx, s.st.Schema(), m.Lock, m.Token, m.Name, m.Body); err != nil {
		tx.Rollback(context.WithoutCancel(ctx))
		return false, s.fail(err)
	}
	if err := tx.Commit(ctx); err != nil {
		// If the reply was lost the commit may have happened: the next
		// run finds out from the store, where rows and manifest agree.
		return false, s.fail(fmt.Errorf("commit the rows and the checkpoint: %w", err))
	}
	s.mu.Lock()
	s.pending = nil
	s.mu.Unlock()
	s.log.Debug("rows committed with the checkpoint", "table", s.table, "checkpoint", m.Name)
	return true, nil
}

func (s *Sink) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

func (s *Sink) fail(err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed == nil {
		s.failed = err
	}
	return s.failed
}

// Close rolls back whatever was not committed (the server does, as the
// connections close) and closes the connections. It does not commit:
// checkpoints do.
func (s *Sink) Close() error {
	if s.cancel == nil {
		return nil
	}
	if s.seg != nil {
		close(s.seg.bufs)
	}
	s.cancel() // ends a COPY in progress; its transaction is rolled back
	for _, seg := range []*segment{s.seg, s.pending} {
		if seg != nil {
			<-seg.done
		}
	}
	s.seg, s.pending = nil, nil
	for _, c := range s.conns {
		if c != nil {
			c.Close(context.Background())
		}
	}
	s.cancel = nil
	return nil
}
