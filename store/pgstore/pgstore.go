// Package pgstore is a store.Store on PostgreSQL.
//
// A store lives in one schema of one database (by default the schema
// "ckpt"), in tables that pgstore creates and migrates itself:
//
//	schema_migrations  the versions of these tables that were applied
//	meta               one row: a random id of this store, so that a sink
//	                   can tell it writes to the same database
//	objects            one row per object: name, id, size
//	parts              the bytes of each object, cut into rows of at most
//	                   PartSize bytes (1 MiB by default)
//	locks              one row per lock: its fencing token and last holder
//
// Every write is one transaction, so a reader, or the next run after a
// crash or a dropped connection, sees an object whole or not at all.
// Objects are streamed part by part in both directions: memory is bounded
// by the part size, not by the object's.
//
// A lock is a row plus a session-level advisory lock held on a connection
// of its own, so it ends with its holder's process or connection, as
// flock does for a local file; every new holder increments the row's
// fencing token, and a fenced write (CreateFenced, CreateFencedTx) commits
// only while the row still has the writer's token.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ckptdev/ckpt/store"
)

// DefaultSchema is the schema that holds ckpt's tables when the URL names
// none.
const DefaultSchema = "ckpt"

// DefaultPartSize is the size of the rows an object is cut into.
const DefaultPartSize = 1 << 20

// defaultConnectTimeout bounds a connection attempt when the URL sets no
// connect_timeout: a firewall that drops packets must not hang a job.
const defaultConnectTimeout = 10 * time.Second

// Params are ckpt's own query parameters of a postgres:// URL. They are
// taken out of the URL before it reaches pgx, which would otherwise send
// them to the server as settings (and the server refuse the connection).
type Params struct {
	Schema string // schema=NAME: the schema of ckpt's tables (default "ckpt")
	Table  string // table=NAME or table=SCHEMA.NAME: an output table (package pgsink)
}

// ckptParams are the query parameters that belong to ckpt, not to pgx.
var ckptParams = []string{"schema", "table"}

// Config is a parsed postgres:// address.
type Config struct {
	// Pool is pgx's configuration, ckpt's parameters removed.
	Pool *pgxpool.Config
	// Params are ckpt's parameters, Schema defaulted.
	Params Params
	// Redacted is the address with any password replaced, for messages.
	Redacted string
}

// ParseURL parses a postgres:// (or postgresql://) address: ckpt's
// parameters (Params) are taken out and checked, and the rest is parsed by
// pgx, so that every libpq parameter (sslmode, connect_timeout,
// application_name, ...) and pgx's pool_* parameters work. Every
// connection is set to default_transaction_isolation read committed,
// which ckpt's statements rely on. The error never holds the password.
func ParseURL(raw string) (*Config, error) {
	loc, err := store.ParseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	if loc.Scheme != "postgres" {
		return nil, fmt.Errorf("pgstore: %w: %s is not a postgres:// address", store.ErrBadURL, loc)
	}
	u := *loc.URL
	q := u.Query()
	var p Params
	p.Schema, p.Table = q.Get("schema"), q.Get("table")
	for _, k := range ckptParams {
		q.Del(k)
	}
	u.RawQuery = q.Encode()
	redacted := store.Redact(loc.URL)
	if p.Schema == "" {
		p.Schema = DefaultSchema
	}
	if err := ValidIdent(p.Schema); err != nil {
		return nil, fmt.Errorf("pgstore: %w: %s: schema %q: %v", store.ErrBadURL, redacted, p.Schema, err)
	}
	pc, err := pgxpool.ParseConfig(u.String())
	if err != nil {
		// pgx masks the password in its message; scrub it anyway.
		return nil, fmt.Errorf("pgstore: %w: %s: %w", store.ErrBadURL, redacted, scrub(err, password(&u)))
	}
	cc := pc.ConnConfig
	if cc.RuntimeParams == nil {
		cc.RuntimeParams = map[string]string{}
	}
	if cc.RuntimeParams["application_name"] == "" {
		cc.RuntimeParams["application_name"] = "ckpt"
	}
	// ckpt's statements rely on read committed: a statement that waited
	// for a lock (a migration's, a name's) sees what committed meanwhile.
	// A role or database whose default is repeatable read or serializable
	// would make them fail on conflicts they are written to resolve. Set
	// once a connection is up rather than as a startup parameter, which
	// connection poolers such as PgBouncer refuse.
	after := cc.AfterConnect
	cc.AfterConnect = func(ctx context.Context, c *pgconn.PgConn) error {
		if after != nil {
			if err := after(ctx, c); err != nil {
				return err
			}
		}
		return c.Exec(ctx, "SET default_transaction_isolation = 'read committed'").Close()
	}
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = defaultConnectTimeout
	}
	return &Config{Pool: pc, Params: p, Redacted: redacted}, nil
}

// Where describes the server and login for a message, without the
// password: "host 127.0.0.1 port 5432, database test, user postgres".
func (c *Config) Where() string {
	return where(c.Pool.ConnConfig)
}

func where(cc *pgx.ConnConfig) string {
	host := cc.Host
	if strings.HasPrefix(host, "/") {
		host = "socket " + host
	} else {
		host = "host " + host
	}
	return fmt.Sprintf("%s port %d, database %s, user %s", host, cc.Port, cc.Database, cc.User)
}

func password(u *url.URL) string {
	if u.User != nil {
		if p, ok := u.User.Password(); ok {
			return p
		}
	}
	return u.Query().Get("password")
}

// ValidIdent checks a schema or table name: letters, digits and
// underscores, not starting with a digit, at most 63 bytes (PostgreSQL's
// limit, beyond which it cuts names silently). Such a name never needs
// quoting, so it is safe to put in SQL text.
func ValidIdent(s string) error {
	if s == "" {
		return errors.New("empty name")
	}
	if len(s) > 63 {
		return errors.New("longer than 63 bytes")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			return fmt.Errorf("character %q is not allowed (use letters, digits and '_', not starting with a digit)", c)
		}
	}
	return nil
}

// Options configure a store. The zero value is usable.
type Options struct {
	// Schema overrides the URL's schema parameter.
	Schema string
	// PartSize is the size of the rows objects are cut into; zero means
	// DefaultPartSize. It bounds the memory of a write or a read.
	PartSize int
	// Logger receives warnings (a transient error retried); nil means
	// slog.Default().
	Logger *slog.Logger
}

// Store is a store.Store in a PostgreSQL schema. It is safe for concurrent
// use.
type Store struct {
	pool     *pgxpool.Pool
	cfg      *Config
	schema   string
	q        queries
	nsOID    uint32 // the schema's oid: the high half of every lock's advisory key
	instance string
	partSize int
	log      *slog.Logger

	mu     sync.Mutex
	closed bool
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at rawURL (see ParseURL), creates or
// migrates ckpt's tables in the schema, and returns the store. The caller
// closes it.
func Open(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	cfg, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return OpenConfig(ctx, cfg, opts)
}

// OpenConfig is Open with a parsed address.
func OpenConfig(ctx context.Context, cfg *Config, opts Options) (*Store, error) {
	schema := cfg.Params.Schema
	if opts.Schema != "" {
		if err := ValidIdent(opts.Schema); err != nil {
			return nil, fmt.Errorf("pgstore: schema %q: %w", opts.Schema, err)
		}
		schema = opts.Schema
	}
	s := &Store{cfg: cfg, schema: schema, q: newQueries(schema), partSize: opts.PartSize, log: opts.Logger}
	if s.partSize <= 0 {
		s.partSize = DefaultPartSize
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg.Pool)
	if err != nil {
		return nil, s.openError(err)
	}
	s.pool = pool
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	err = s.retry(ctx, "read the store's identity", func(ctx context.Context) error {
		return pool.QueryRow(ctx, s.q.identity, schema).Scan(&s.nsOID, &s.instance)
	})
	if err != nil {
		pool.Close()
		return nil, s.openError(err)
	}
	return s, nil
}

// Schema returns the schema that holds the store's tables.
func (s *Store) Schema() string { return s.schema }

// Instance returns the store's random id, kept in its meta table: two
// connections that read the same id from the schema reach the same store.
func (s *Store) Instance() string { return s.instance }

// Config returns the parsed address the store was opened with. The caller
// must not modify it.
func (s *Store) Config() *Config { return s.cfg }

// String describes the store for messages, without the password.
func (s *Store) String() string {
	return fmt.Sprintf("PostgreSQL store in schema %s (%s)", s.schema, s.cfg.Where())
}

// Close closes the store's connections. Leases must be released first.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.pool.Close()
	return nil
}

// check is the preamble of every object call.
func (s *Store) check(ctx context.Context, name string) error {
	if err := store.ValidName(name); err != nil {
		return fmt.Errorf("pgstore: %w", err)
	}
	return s.usable(ctx)
}

func (s *Store) usable(ctx context.Context) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return fmt.Errorf("pgstore: %w", store.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pgstore: %w", err)
	}
	return nil
}

// opError wraps the error of an operation: the context's error if ctx
// ended, with what to check when the server cannot be reached or refuses
// the login, else as it is.
func (s *Store) opError(ctx context.Context, op string, err error) error {
	err = ended(ctx, err)
	if e := explain(s.cfg, err); e != nil {
		return fmt.Errorf("pgstore: %s: %w", op, e)
	}
	return fmt.Errorf("pgstore: %s: %w", op, scrub(err, s.cfg.Pool.ConnConfig.Password))
}

// ended makes err match ctx's error once ctx has ended. pgx closes the
// connection of a query whose context ends, and the failure it reports
// may then be the closed connection's ("use of closed network
// connection") rather than the cancellation that caused it.
func ended(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && err != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w (%w)", cerr, err)
	}
	return err
}

// openError wraps an error of Open, saying which server and schema.
func (s *Store) openError(err error) error {
	if errors.Is(err, ErrSchemaTooNew) {
		return err
	}
	if e := explain(s.cfg, err); e != nil {
		return fmt.Errorf("pgstore: %w", e)
	}
	return fmt.Errorf("pgstore: open the store in schema %q (%s): %w", s.schema, s.cfg.Where(), scrub(err, s.cfg.Pool.ConnConfig.Password))
}

// Explain returns err with what was tried and what to check when it is a
// failure to reach the server or log in; other errors as they are. The
// password is never in the result.
func (c *Config) Explain(err error) error {
	if e := explain(c, err); e != nil {
		return e
	}
	return scrub(err, c.Pool.ConnConfig.Password)
}

// explain returns err with what was tried and what to check, if err is a
// failure to reach the server, log in, or use the schema; else nil.
func explain(cfg *Config, err error) error {
	if err == nil {
		return nil
	}
	cc := cfg.Pool.ConnConfig
	where := cfg.Where()
	err = scrub(err, cc.Password)
	var pe *pgconn.PgError
	var ce *pgconn.ConnectError
	switch {
	case errors.As(err, &pe) && pe.Code == "3D000":
		return fmt.Errorf("database %q does not exist (%s): create it, or name another database in the URL: %w", cc.Database, where, err)
	case errors.As(err, &pe) && (pe.Code == "28P01" || pe.Code == "28000"):
		return fmt.Errorf("PostgreSQL refused the login (%s): check the user and password in the URL, and the server's pg_hba.conf: %w", where, err)
	case errors.As(err, &pe) && pe.Code == "42501":
		return fmt.Errorf("user %s may not create or use schema %q (%s): grant it CREATE on the database, or have the schema's owner create it: %w", cc.User, cfg.Params.Schema, where, err)
	case errors.As(err, &pe):
		return nil
	case errors.As(err, &ce):
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("connect to PostgreSQL (%s): %w", where, err)
		}
		return fmt.Errorf("cannot connect to PostgreSQL (%s; connect timeout %s): check that the server runs and accepts TCP connections there, the URL's host and port, and sslmode: %w",
			where, cc.ConnectTimeout, err)
	}
	return nil
}

// scrub hides secret in err's message, keeping err for errors.Is and As.
// pgx keeps passwords out of its messages; this is the second guard.
func scrub(err error, secret string) error {
	if err == nil || len(secret) < 4 || !strings.Contains(err.Error(), secret) {
		return err
	}
	return &scrubbed{err: err, secret: secret}
}

type scrubbed struct {
	err    error
	secret string
}

func (e *scrubbed) Error() string { return strings.ReplaceAll(e.err.Error(), e.secret, "xxxxx") }
func (e *scrubbed) Unwrap() error { return e.err }

// ident quotes a schema-qualified name.
func ident(parts ...string) string { return pgx.Identifier(parts).Sanitize() }

// queries are the store's SQL statements with its schema filled in.
type queries struct {
	identity      string
	migrationsVer string
	getObject     string
	getFrom       string
	list          string
	listAll       string
	deleteObject  string
	deleteAsync   string
	lockName      string
	createSmall   string
	createFenced  string
	putSmall      string
	createObject  string
	putObject     string
	fenceCheck    string
	setSize       string
	lockID        string
	lockRow       string
	lockHolder    string
	lockTake      string
	lockCheck     string
}

func newQueries(schema string) queries {
	t := func(name string) string { return ident(schema, name) }
	objects, parts, locks, ids := t("objects"), t("parts"), t("locks"), t("object_ids")
	return queries{
		identity:      `SELECT (SELECT oid FROM pg_namespace WHERE nspname = $1), (SELECT instance FROM ` + t("meta") + ` LIMIT 1)`,
		migrationsVer: `SELECT coalesce(max(version), 0) FROM ` + t("schema_migrations"),
		// One statement, so one snapshot: the parts of one version of the
		// object, or no row.
		getObject: `SELECT o.id, o.size, p.n, p.data FROM ` + objects + ` o JOIN ` + parts + ` p ON p.object_id = o.id WHERE o.name = $1 ORDER BY p.n`,
		getFrom:   `SELECT o.id, o.size, p.n, p.data FROM ` + objects + ` o JOIN ` + parts + ` p ON p.object_id = o.id WHERE o.name = $1 AND o.id = $2 AND p.n >= $3 ORDER BY p.n`,
		// A range on the primary key (COLLATE "C": byte order) rather than
		// LIKE, which would need '_' and '%' escaped and, as a parameter,
		// can use the index only in a custom plan.
		list:         `SELECT name FROM ` + objects + ` WHERE name >= $1 AND name < $2 ORDER BY name`,
		listAll:      `SELECT name FROM ` + objects + ` ORDER BY name`,
		deleteObject: `DELETE FROM ` + objects + ` WHERE name = $1`,
		// Delete alone commits without waiting for the WAL flush: a delete
		// lost in a server crash is redone by the next retention pass, and
		// the WAL's order still puts a manifest's delete before the deletes
		// of its blobs, and every delete before a later synchronous commit.
		// A checkpoint then costs one WAL flush, its manifest's, not two.
		deleteAsync: `WITH c AS (SELECT set_config('synchronous_commit', 'off', true)) DELETE FROM ` + objects + ` WHERE name = $1 AND EXISTS (SELECT FROM c)`,
		// Writers of one name queue here, in their transaction, before they
		// replace it. The key is the schema's oid and a hash of the name: a
		// collision makes two names wait for each other, nothing worse.
		lockName: `SELECT pg_advisory_xact_lock($1::int, hashtext($2))`,
		// Put of a small object: lock the name (lockName), drop the old
		// version (deleteObject; its parts cascade), insert the new one with
		// its single part (putSmall). Sent as one batch, one implicit
		// transaction, one round trip; each statement takes its snapshot
		// after the lock is granted.
		putSmall: `WITH o AS (INSERT INTO ` + objects + ` (name, id, size) VALUES ($1, nextval('` + ids + `'), $2) RETURNING id) INSERT INTO ` + parts + ` (object_id, n, data) SELECT id, 0, $3 FROM o`,
		// Create of a small object in one statement: ON CONFLICT waits for a
		// concurrent creator of the name and then does nothing.
		createSmall: `WITH o AS (INSERT INTO ` + objects + ` (name, id, size) VALUES ($1, nextval('` + ids + `'), $2) ON CONFLICT (name) DO NOTHING RETURNING id),
			p AS (INSERT INTO ` + parts + ` (object_id, n, data) SELECT id, 0, $3 FROM o RETURNING 1)
			SELECT true, (SELECT count(*) FROM p) = 1`,
		// The same, only while the lock row has the writer's token. FOR
		// SHARE holds the row until commit: a new holder's token increment
		// waits for this write, so the write is ordered before it or fails.
		createFenced: `WITH f AS (SELECT 1 FROM ` + locks + ` WHERE name = $4 AND token = $5 FOR SHARE),
			o AS (INSERT INTO ` + objects + ` (name, id, size) SELECT $1, nextval('` + ids + `'), $2 FROM f ON CONFLICT (name) DO NOTHING RETURNING id),
			p AS (INSERT INTO ` + parts + ` (object_id, n, data) SELECT id, 0, $3 FROM o RETURNING 1)
			SELECT (SELECT count(*) FROM f) = 1, (SELECT count(*) FROM p) = 1`,
		createObject: `INSERT INTO ` + objects + ` (name, id, size) VALUES ($1, nextval('` + ids + `'), -1) ON CONFLICT (name) DO NOTHING RETURNING id`,
		putObject:    `INSERT INTO ` + objects + ` (name, id, size) VALUES ($1, nextval('` + ids + `'), -1) RETURNING id`,
		fenceCheck:   `SELECT 1 FROM ` + locks + ` WHERE name = $1 AND token = $2 FOR SHARE`,
		setSize:      `UPDATE ` + objects + ` SET size = $2 WHERE id = $1`,
		// The lock's row, created on first use; its id is the low half of
		// the advisory key.
		lockID:     `SELECT id FROM ` + locks + ` WHERE name = $1`,
		lockRow:    `WITH i AS (INSERT INTO ` + locks + ` (name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING id) SELECT id FROM i UNION ALL SELECT id FROM ` + locks + ` WHERE name = $1`,
		lockHolder: `SELECT holder FROM ` + locks + ` WHERE name = $1`,
		lockTake:   `UPDATE ` + locks + ` SET token = token + 1, holder = $2, acquired = now() WHERE name = $1 RETURNING token`,
		// The session still holds the advisory lock (a bigint key shows in
		// pg_locks as classid = high half, objid = low half, objsubid = 1)
		// and the row still has this lease's token.
		lockCheck: `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
				AND classid = $2::bigint::oid AND objid = $3::bigint::oid AND objsubid = 1),
			coalesce((SELECT token FROM ` + locks + ` WHERE name = $1), -1)`,
	}
}

// lockKey is the advisory lock key of the lock row id in the schema nsOID:
// unique within the database, unlike a hash of the name.
func lockKey(nsOID uint32, id int32) int64 {
	return int64(uint64(nsOID)<<32 | uint64(uint32(id)))
}
