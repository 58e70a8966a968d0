package eventlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"modernc.org/sqlite"
)

// SQLite result codes this package looks at (sqlite3.h).
const (
	sqliteCorrupt              = 11
	sqliteNotADB               = 26
	sqliteConstraintPrimaryKey = 1555
	sqliteConstraintUnique     = 2067
)

// OpenSQLite opens the SQLite event log in the file at path, creating the
// file, its directory and its tables if needed.
//
// An existing file is checked first (PRAGMA quick_check, one pass over
// the file): a damaged one, whose indexes could silently hide events, is
// refused with ErrCorrupt. A read that finds damage later fails with
// ErrCorrupt too.
//
// The file is in WAL mode, so readers never block the writer; write
// transactions begin IMMEDIATE and wait up to 30 s for another process's,
// so concurrent writers queue instead of failing.
func OpenSQLite(ctx context.Context, path string, o Options) (*Log, error) {
	if err := o.fill(); err != nil {
		return nil, err
	}
	if o.Schema != "" {
		return nil, errors.New("eventlog: Schema applies to PostgreSQL only")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("eventlog: %w", err)
		}
	}
	sync := "NORMAL"
	if o.SyncFull {
		sync = "FULL"
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(30000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous("+sync+")")
	q.Set("_txlock", "immediate")
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("eventlog: open %s: %w", path, err)
	}
	// One writer at a time is all SQLite allows; a few connections let
	// readers run beside it.
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("eventlog: open %s: %w", path, err)
	}
	if err := quickCheck(ctx, db, path); err != nil {
		db.Close()
		return nil, err
	}
	d := &dialect{
		name:      "sqlite",
		idColumn:  "INTEGER PRIMARY KEY AUTOINCREMENT",
		maxParams: 30000,
	}
	return open(ctx, db, d, "sqlite:"+path, o)
}

// isUniqueViolation reports whether err is a unique or primary key
// violation, in either backend.
func isUniqueViolation(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqliteConstraintUnique || se.Code() == sqliteConstraintPrimaryKey
	}
	return isPgUniqueViolation(err)
}

// quickCheck runs SQLite's PRAGMA quick_check on the file: the structure
// of every table and index, and that each index has as many entries as its
// table. It reads the whole file once.
func quickCheck(ctx context.Context, db *sql.DB, path string) error {
	rows, err := db.QueryContext(ctx, `PRAGMA quick_check(20)`)
	if err != nil {
		if isCorrupt(err) {
			return damaged(path, err.Error())
		}
		return fmt.Errorf("eventlog: check %s: %w", path, err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return fmt.Errorf("eventlog: check %s: %w", path, err)
		}
		if s != "ok" {
			problems = append(problems, strings.Join(strings.Fields(s), " "))
		}
	}
	if err := rows.Err(); err != nil {
		if isCorrupt(err) {
			return damaged(path, err.Error())
		}
		return fmt.Errorf("eventlog: check %s: %w", path, err)
	}
	if len(problems) > 0 {
		return damaged(path, strings.Join(problems, "; "))
	}
	return nil
}

// damaged is the error for a damaged SQLite log file, with what to do.
func damaged(path, detail string) error {
	return fmt.Errorf("eventlog: the event log %s is %w (%s): if only indexes are named, 'sqlite3 %s REINDEX' rebuilds them from the tables; otherwise restore the file from a backup",
		path, ErrCorrupt, detail, path)
}

// isCorrupt reports whether err is SQLite's "the file is damaged".
func isCorrupt(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	c := se.Code() & 0xff
	return c == sqliteCorrupt || c == sqliteNotADB
}

// classify turns a SQLite error that says the file is damaged into an
// ErrCorrupt with what to do; other errors are returned as they are.
func (l *Log) classify(err error) error {
	if l.d.name != "sqlite" || !isCorrupt(err) {
		return err
	}
	return damaged(strings.TrimPrefix(l.url, "sqlite:"), err.Error())
}
