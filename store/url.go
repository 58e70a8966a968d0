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

// Redact renders u with its password and any secret-looking query values
// replaced by "xxxxx", so that credentials never reach a log or an error.
func Redact(u *url.URL) string {
	c := *u
	if c.User != nil {
		if _, has := c.User.Password(); has {
			c.User = url.UserPassword(c.User.Username(), "xxxxx")
		}
	}
	if c.RawQuery != "" {
		q := c.Query()
		for k := range q {
			lk := strings.ToLower(k)
			if strings.Contains(lk, "secret") || strings.Contains(lk, "password") || strings.Contains(lk, "token") || lk == "sslkey" {
				q.Set(k, "xxxxx")
			}
		}
		c.RawQuery = q.Encode()
	}
	return c.String()
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
