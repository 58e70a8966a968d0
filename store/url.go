package store

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
)

// ErrBadURL: a store address could not be understood.
var ErrBadURL = errors.New("bad store URL")

// Location is a parsed store address. Every command and library call that
// takes a store takes it as one string, parsed here and nowhere else:
//
//	./dir, dir, /abs/dir     a local directory (scheme "file")
//	file:///abs/dir          the same, as a URL
//	mem://name               an in-memory store, for tests
//	s3://bucket/prefix?...   S3-compatible object storage
//	postgres://...           PostgreSQL (also postgresql://)
type Location struct {
	Scheme string     // "file", "mem", "s3" or "postgres"
	Path   string     // file: the directory, cleaned; mem: the name
	URL    *url.URL   // the address as a URL, for backends that need more (host, query, user)
	Query  url.Values // URL.Query(), for convenience
}

// String returns the address with any password removed, for logs and errors.
func (l Location) String() string {
	if l.Scheme == "file" {
		return l.Path
	}
	if l.URL == nil {
		return l.Scheme + "://"
	}
	return Redact(l.URL)
}

// Redact renders u with its credentials replaced by "xxxxx", so that they
// never reach a log or an error: the password of its user information, the
// values of secret-looking query parameters (password, secret, token, key,
// credential, signature and the like), and the same, recursively, inside
// query values that are themselves addresses, as in
// endpoint=http://user:SECRET@host.
func Redact(u *url.URL) string {
	return redactURL(u, 0).String()
}

// RedactString is Redact for an address not yet parsed. One that does not
// parse is not shown at all, since where its secret is cannot be told.
func RedactString(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(address not shown: it does not parse)"
	}
	return Redact(u)
}

const redacted = "xxxxx"

// maxNesting bounds the recursion into query values that are addresses.
const maxNesting = 4

func redactURL(u *url.URL, depth int) *url.URL {
	c := *u
	if c.User != nil {
		if _, has := c.User.Password(); has {
			c.User = url.UserPassword(c.User.Username(), redacted)
		}
	}
	if c.Opaque != "" {
		// scheme:opaque, as user:PASSWORD@host without its slashes
		// parses: nothing in it can be told apart from a secret.
		c.Opaque = redacted
	}
	if c.RawQuery != "" {
		q, err := url.ParseQuery(c.RawQuery)
		if err != nil {
			// A query that does not parse cannot be redacted piecewise.
			c.RawQuery = "(query not shown: it does not parse)"
			return &c
		}
		for k, vs := range q {
			for i, v := range vs {
				vs[i] = redactValue(k, v, depth)
			}
		}
		c.RawQuery = encodeQuery(q)
	}
	if c.Fragment != "" {
		c.Fragment, c.RawFragment = redactValue("", c.Fragment, depth), ""
	}
	return &c
}

// encodeQuery is url.Values.Encode that leaves ':', '/' and '@' as they
// are, so that an address in a value stays readable in a message.
func encodeQuery(q url.Values) string {
	keep := strings.NewReplacer("%3A", ":", "%2F", "/", "%40", "@")
	return keep.Replace(q.Encode())
}

// redactValue redacts the value v of query parameter k.
func redactValue(k, v string, depth int) string {
	if secretKey(k) {
		return redacted
	}
	if !strings.Contains(v, "://") && !strings.Contains(v, "@") {
		return v // not an address
	}
	if depth >= maxNesting {
		return redacted
	}
	// A value with a scheme is an address; one without may still hold
	// user:password@host.
	raw := v
	if !strings.Contains(v, "://") {
		raw = "//" + v
	}
	u, err := url.Parse(raw)
	if err != nil {
		return redacted
	}
	r := redactURL(u, depth+1).String()
	if raw != v {
		r = strings.TrimPrefix(r, "//")
	}
	return r
}

// secretKey reports whether a query parameter's name says its value is a
// credential.
func secretKey(k string) bool {
	k = strings.ToLower(k)
	for _, s := range []string{"secret", "passw", "pwd", "token", "credential", "signature", "apikey", "api_key", "private", "auth"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return k == "sslkey" || k == "key" || strings.HasSuffix(k, "_key") && !strings.HasSuffix(k, "access_key") || strings.HasSuffix(k, "-key")
}

// ParseURL parses a store address. A string without a scheme is a local
// directory path.
func ParseURL(raw string) (Location, error) {
	if strings.TrimSpace(raw) == "" {
		return Location{}, fmt.Errorf("%w: empty address", ErrBadURL)
	}
	scheme, _, hasScheme := strings.Cut(raw, "://")
	if !hasScheme || strings.ContainsAny(scheme, `/\.`) {
		if err := notAPath(raw); err != nil {
			return Location{}, err
		}
		return Location{Scheme: "file", Path: filepath.Clean(raw)}, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse quotes the input, password included: do not wrap it.
		return Location{}, fmt.Errorf("%w: cannot parse %q-style address (check its syntax)", ErrBadURL, scheme)
	}
	loc := Location{Scheme: strings.ToLower(u.Scheme), URL: u, Query: u.Query()}
	switch loc.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return Location{}, fmt.Errorf("%w: %s: file URLs name a local absolute path, as file:///abs/dir", ErrBadURL, Redact(u))
		}
		if u.Path == "" {
			return Location{}, fmt.Errorf("%w: %s: no directory", ErrBadURL, Redact(u))
		}
		loc.Path = filepath.Clean(u.Path)
	case "mem":
		loc.Path = u.Host + u.Path
	case "s3":
		if u.Host == "" {
			return Location{}, fmt.Errorf("%w: %s: no bucket (use s3://bucket/prefix)", ErrBadURL, Redact(u))
		}
		loc.Path = strings.Trim(u.Path, "/")
	case "postgres", "postgresql":
		loc.Scheme = "postgres"
	default:
		return Location{}, fmt.Errorf("%w: unknown scheme %q (use a directory path, file://, s3:// or postgres://)", ErrBadURL, u.Scheme)
	}
	return loc, nil
}

// notAPath catches addresses that would otherwise be taken for a local
// directory and silently created: a known scheme with its slashes missing
// ("s3:/bucket"), or a PostgreSQL key=value connection string. Its error
// never repeats the address, which may hold a password.
func notAPath(raw string) error {
	if scheme, rest, ok := strings.Cut(raw, ":"); ok {
		switch strings.ToLower(scheme) {
		case "file", "mem", "s3", "postgres", "postgresql":
			if !strings.HasPrefix(rest, "//") {
				return fmt.Errorf("%w: %s: needs // after the scheme, as %s://... (for a local directory of that name, write ./%s:...)", ErrBadURL, scheme, scheme, scheme)
			}
		}
	}
	if key, _, ok := strings.Cut(strings.TrimSpace(raw), "="); ok && !strings.ContainsAny(key, `/\ `) {
		switch strings.ToLower(key) {
		case "host", "hostaddr", "port", "dbname", "user", "password", "sslmode", "application_name":
			return fmt.Errorf("%w: a PostgreSQL key=value connection string is not a store address: use a postgres://user@host:port/db URL", ErrBadURL)
		}
	}
	return nil
}
