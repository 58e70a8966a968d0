package pgstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ckptdev/ckpt/store"
)

// Put writes name with the bytes of r in one transaction, replacing any
// existing object. It is durable when it returns (the server's commit,
// with the server's synchronous_commit and fsync settings).
func (s *Store) Put(ctx context.Context, name string, r io.Reader) error {
	return s.write(ctx, "put", name, r, false, nil)
}

// Create is Put that fails with store.ErrExist if name exists; the check
// and the write are one transaction.
func (s *Store) Create(ctx context.Context, name string, r io.Reader) error {
	return s.write(ctx, "create", name, r, true, nil)
}

// fence makes a write conditional on a lock row's token.
type fence struct {
	lock  string
	token int64
}

// sourceError is a failure of the caller's reader or context while a write
// streams it: never retried, and never confused with the server's errors.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// write stores r under name. An object that fits in one part (most
// manifests) is written in one statement or one batch: one round trip. A
// larger one is streamed part by part into an explicit transaction.
func (s *Store) write(ctx context.Context, op, name string, r io.Reader, create bool, f *fence) error {
	if err := s.check(ctx, name); err != nil {
		return err
	}
	first, err := io.ReadAll(io.LimitReader(r, int64(s.partSize)))
	if err != nil {
		return fmt.Errorf("pgstore: %s %s: %w", op, name, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pgstore: %s %s: %w", op, name, err)
	}
	if len(first) < s.partSize {
		err = s.writeSmall(ctx, op, name, first, create, f)
	} else {
		err = s.writeLarge(ctx, op, name, first, r, create, f)
	}
	if err != nil {
		var se *sourceError
		if errors.As(err, &se) {
			return fmt.Errorf("pgstore: %s %s: %w", op, name, se.err)
		}
		return s.opError(ctx, op+" "+name, err)
	}
	return nil
}

func (s *Store) writeSmall(ctx context.Context, op, name string, data []byte, create bool, f *fence) error {
	attempt := 0
	return s.retry(ctx, op+" "+name, func(ctx context.Context) error {
		attempt++
		if !create {
			b := &pgx.Batch{}
			b.Queue(s.q.lockName, int32(s.nsOID), name)
			b.Queue(s.q.deleteObject, name)
			b.Queue(s.q.putSmall, name, len(data), data)
			return s.pool.SendBatch(ctx, b).Close()
		}
		var fenced, created bool
		var err error
		if f == nil {
			err = s.pool.QueryRow(ctx, s.q.createSmall, name, len(data), data).Scan(&fenced, &created)
		} else {
			err = s.pool.QueryRow(ctx, s.q.createFenced, name, len(data), data, f.lock, f.token).Scan(&fenced, &created)
		}
		if err != nil || created {
			return err
		}
		// A try before this one may have committed with its reply lost:
		// the object holding exactly our bytes is our own write.
		if attempt > 1 && s.holds(ctx, name, bytes.NewReader(data)) {
			return nil
		}
		if !fenced {
			return fmt.Errorf("lock %s has a newer holder: %w", f.lock, store.ErrLeaseLost)
		}
		return store.ErrExist
	})
}

func (s *Store) writeLarge(ctx context.Context, op, name string, first []byte, r io.Reader, create bool, f *fence) error {
	// A transaction that failed transiently can be started over only if
	// the input can be read again from its start.
	start := int64(-1)
	sk, seekable := r.(io.Seeker)
	if seekable {
		if pos, err := sk.Seek(0, io.SeekCurrent); err == nil {
			start = pos - int64(len(first))
		}
	}
	buf := make([]byte, s.partSize)
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			if _, err := sk.Seek(start, io.SeekStart); err != nil {
				return &sourceError{err}
			}
			if _, err := io.ReadFull(r, first); err != nil {
				return &sourceError{err}
			}
		}
		err := s.writeLargeOnce(ctx, name, first, buf, r, create, f)
		if attempt > 1 && (errors.Is(err, store.ErrExist) || errors.Is(err, store.ErrLeaseLost)) {
			if _, serr := sk.Seek(start, io.SeekStart); serr == nil && s.holds(ctx, name, r) {
				return nil // an earlier try committed; its reply was lost
			}
		}
		if err == nil || start < 0 || attempt == maxAttempts || !Transient(err) || ctx.Err() != nil {
			return err
		}
		s.log.Warn("pgstore: transient error; writing again", "op", op, "name", name, "attempt", attempt, "err", err)
	}
}

func (s *Store) writeLargeOnce(ctx context.Context, name string, first, buf []byte, r io.Reader, create bool, f *fence) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if f != nil {
		if err := tx.QueryRow(ctx, s.q.fenceCheck, f.lock, f.token).Scan(new(int)); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("lock %s has a newer holder: %w", f.lock, store.ErrLeaseLost)
			}
			return err
		}
	}
	var id int64
	if create {
		// Taking the name first makes a concurrent Create wait for this
		// one and then fail, rather than both stream their bytes.
		if err := tx.QueryRow(ctx, s.q.createObject, name).Scan(&id); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return store.ErrExist
			}
			return err
		}
	} else {
		b := &pgx.Batch{}
		b.Queue(s.q.lockName, int32(s.nsOID), name)
		b.Queue(s.q.deleteObject, name)
		b.Queue(s.q.putObject, name).QueryRow(func(row pgx.Row) error { return row.Scan(&id) })
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
	}
	src := &partSource{ctx: ctx, r: r, id: id, first: first, buf: buf}
	_, err = tx.CopyFrom(ctx, pgx.Identifier{s.schema, "parts"}, []string{"object_id", "n", "data"}, src)
	if src.err != nil {
		return &sourceError{src.err}
	}
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, s.q.setSize, id, src.size); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// partSource feeds an object's parts to COPY: the part already read, then
// parts read from r into one reused buffer (pgx encodes each row before
// asking for the next).
type partSource struct {
	ctx   context.Context
	r     io.Reader
	id    int64
	n     int32
	first []byte
	buf   []byte
	cur   []byte
	size  int64
	last  bool
	row   [3]any
	err   error
}

func (p *partSource) Next() bool {
	if p.err != nil {
		return false
	}
	if err := p.ctx.Err(); err != nil {
		p.err = err
		return false
	}
	switch {
	case p.first != nil:
		p.cur, p.first = p.first, nil
	case p.last:
		return false
	default:
		k, err := io.ReadFull(p.r, p.buf)
		switch err {
		case nil:
		case io.ErrUnexpectedEOF:
			p.last = true
		case io.EOF:
			return false
		default:
			p.err = err
			return false
		}
		p.cur = p.buf[:k]
	}
	p.row = [3]any{p.id, p.n, p.cur}
	p.size += int64(len(p.cur))
	p.n++
	return true
}

func (p *partSource) Values() ([]any, error) { return p.row[:], nil }
func (p *partSource) Err() error             { return p.err }

// holds reports whether name exists with exactly the bytes of r.
func (s *Store) holds(ctx context.Context, name string, r io.Reader) bool {
	rc, err := s.Get(ctx, name)
	if err != nil {
		return false
	}
	defer rc.Close()
	a, b := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, ea := io.ReadFull(rc, a)
		nb, eb := io.ReadFull(r, b)
		if na != nb || !bytes.Equal(a[:na], b[:nb]) {
			return false
		}
		doneA := ea == io.EOF || ea == io.ErrUnexpectedEOF
		doneB := eb == io.EOF || eb == io.ErrUnexpectedEOF
		if doneA || doneB {
			return doneA && doneB
		}
		if ea != nil || eb != nil {
			return false
		}
	}
}

// Get opens name for reading. The parts stream from one query, so the
// reader sees one version of the object even while it is replaced; it
// holds a connection until closed.
func (s *Store) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := s.check(ctx, name); err != nil {
		return nil, err
	}
	rd := &objectReader{s: s, name: name}
	err := s.retry(ctx, "get "+name, func(ctx context.Context) error { return rd.open(ctx, 0, 0) })
	if err != nil {
		return nil, s.opError(ctx, "get "+name, err)
	}
	return rd, nil
}

// objectReader streams the parts of one version (id) of an object.
type objectReader struct {
	s      *Store
	name   string
	conn   *pgxpool.Conn
	rows   pgx.Rows
	cancel context.CancelFunc
	ctx    context.Context // the caller's

	id      int64
	size    int64 // as recorded with the object
	next    int32 // the part number expected next
	read    int64 // bytes of the object passed on
	cur     []byte
	resumes int
	eof     bool
	err     error
}

// open runs the query from part `from` of version id (0: the current
// version from its start) and reads its first row.
func (r *objectReader) open(ctx context.Context, id int64, from int32) error {
	conn, err := r.s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	qctx, cancel := context.WithCancel(ctx)
	var rows pgx.Rows
	if id == 0 {
		rows, err = conn.Query(qctx, r.s.q.getObject, r.name)
	} else {
		rows, err = conn.Query(qctx, r.s.q.getFrom, r.name, id, from)
	}
	if err != nil {
		cancel()
		conn.Release()
		return err
	}
	r.ctx, r.conn, r.rows, r.cancel = ctx, conn, rows, cancel
	if !rows.Next() {
		err := rows.Err()
		r.release()
		if err != nil {
			return err
		}
		if id == 0 {
			return store.ErrNotFound
		}
		return fmt.Errorf("object %s was replaced or deleted while being read", r.name)
	}
	if err := r.take(); err != nil {
		r.release()
		return err
	}
	return nil
}

// take reads the current row: checks its place and keeps its bytes.
func (r *objectReader) take() error {
	var id, size int64
	var n int32
	if err := r.rows.Scan(&id, &size, &n, nil); err != nil {
		return err
	}
	if r.id != 0 && id != r.id {
		return fmt.Errorf("object %s was replaced while being read", r.name)
	}
	if n != r.next {
		return fmt.Errorf("object %s: part %d where part %d was expected", r.name, n, r.next)
	}
	r.id, r.size = id, size
	r.next++
	// The bytes as received (bytea in binary format is the bytes
	// themselves), valid until the next row: no copy per part.
	if r.rows.FieldDescriptions()[3].Format == pgx.BinaryFormatCode {
		r.cur = r.rows.RawValues()[3]
		return nil
	}
	return r.rows.Scan(nil, nil, nil, &r.cur)
}

func (r *objectReader) release() {
	if r.rows != nil {
		r.cancel() // abandons a result not read to its end instead of draining it
		r.rows.Close()
		r.conn.Release()
		r.rows, r.conn = nil, nil
	}
}

func (r *objectReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.eof {
			return 0, io.EOF
		}
		r.err = r.advance()
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	r.read += int64(n)
	return n, nil
}

// advance moves to the next part; at the end it checks the object's size.
// A connection lost midway is resumed, on another connection, at the next
// part of the same version.
func (r *objectReader) advance() error {
	if r.rows != nil && r.rows.Next() {
		return r.take()
	}
	var err error
	if r.rows != nil {
		err = r.rows.Err()
		r.release()
	}
	if err == nil {
		if r.read != r.size {
			return fmt.Errorf("pgstore: get %s: %d bytes in its parts, %d recorded: %w", r.name, r.read, r.size, errTorn)
		}
		r.eof = true
		return nil
	}
	if !Transient(err) || r.resumes >= maxAttempts-1 || r.ctx.Err() != nil {
		return fmt.Errorf("pgstore: get %s: %w", r.name, ended(r.ctx, err))
	}
	r.resumes++
	r.s.log.Warn("pgstore: read interrupted; resuming", "name", r.name, "part", r.next, "err", err)
	if err := r.open(r.ctx, r.id, r.next); err != nil {
		return fmt.Errorf("pgstore: get %s: %w", r.name, err)
	}
	return nil
}

// errTorn: an object's parts disagree with its row. Transactions make this
// impossible unless the tables were edited by hand.
var errTorn = errors.New("object's parts do not match its record")

func (r *objectReader) Close() error {
	r.release()
	if r.err == nil {
		r.err = fmt.Errorf("pgstore: get %s: %w", r.name, store.ErrClosed)
	}
	r.cur = nil
	return nil
}

// List returns the names that start with prefix, sorted bytewise.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	if err := store.ValidPrefix(prefix); err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	var names []string
	err := s.retry(ctx, "list "+prefix, func(ctx context.Context) error {
		var rows pgx.Rows
		var err error
		if prefix == "" {
			rows, err = s.pool.Query(ctx, s.q.listAll)
		} else {
			rows, err = s.pool.Query(ctx, s.q.list, prefix, prefixEnd(prefix))
		}
		if err != nil {
			return err
		}
		names, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return nil, s.opError(ctx, fmt.Sprintf("list %q", prefix), err)
	}
	return names, nil
}

// prefixEnd returns the least string greater than every string that starts
// with prefix, which is not empty and (a valid prefix) all ASCII.
func prefixEnd(prefix string) string {
	b := []byte(prefix)
	b[len(b)-1]++
	return string(b)
}

// Delete removes name (its parts cascade); a missing name is not an
// error. The delete is committed without waiting for the server's WAL
// flush (see queries.deleteAsync): a server crash right after it may undo
// it, never reorder it after a later write.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := s.check(ctx, name); err != nil {
		return err
	}
	err := s.retry(ctx, "delete "+name, func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, s.q.deleteAsync, name)
		return err
	})
	if err != nil {
		return s.opError(ctx, "delete "+name, err)
	}
	return nil
}
