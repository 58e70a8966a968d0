package eventlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"modernc.org/sqlite"
)

// SQLite result codes this package looks at (sqlite3.h).
const (
	sqliteConstraintPrimaryKey = 1555
	sqliteConstraintUnique     = 2067
)

// OpenSQLite opens the SQLite event log in the file at path, creating the
// file, its directory and its tables if needed.
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
