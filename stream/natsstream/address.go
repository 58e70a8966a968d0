// Package natsstream reads and writes NATS JetStream streams exactly once,
// with the stream position in every checkpoint:
//
//   - Source (OpenSource, Messages, Lines) reads a stream, optionally
//     filtered by subject, from the sequence its checkpoint recorded; it
//     acknowledges nothing to the server (an ordered, ephemeral consumer),
//     so the checkpoint alone says where a resume starts. A run is bounded
//     (stream.Until: a sequence, a time, or what the stream holds when
//     the job starts) or unbounded, ending on a signal with a shutdown
//     checkpoint.
//   - Sink (Output) publishes to a stream with a message id derived from
//     the job, an epoch chosen when the job starts and the message's place
//     in the output, and finds on resume which of its messages the stream
//     already holds, so that a resume publishes none twice.
//
// It is the only ckpt package that links the NATS client: programs that do
// not read or write streams do not import it. docs/STREAMS.md says what is
// guaranteed and what depends on the server's settings.
package natsstream

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// ErrBadAddress: an address is not nats://[USER:PASSWORD@]HOST[:PORT]/STREAM[?subject=...].
var ErrBadAddress = errors.New("bad NATS stream address")

// Address is a stream's address,
// nats://[USER:PASSWORD@]HOST[:PORT]/STREAM[?subject=S&subject=T][&prefix=P].
type Address struct {
	// Server is the server's URL, credentials included.
	Server string
	// Stream is the stream's name.
	Stream string
	// Subjects: for a source, the filter (empty: the whole stream); for a
	// sink, the one subject every message is published to.
	Subjects []string
	// Prefix: for a sink, published messages keep the subject they were
	// read with, behind this prefix (as "copy." + "orders.eu").
	Prefix string
	// Display is the address without its password, for messages.
	Display string
}

// IsAddress reports whether s is a nats:// address.
func IsAddress(s string) bool {
	scheme, _, ok := strings.Cut(s, "://")
	return ok && strings.EqualFold(scheme, "nats")
}

// ParseAddress reads a stream's address.
func ParseAddress(s string) (Address, error) {
	u, err := url.Parse(s)
	if err != nil || !strings.EqualFold(u.Scheme, "nats") || u.Host == "" {
		return Address{}, fmt.Errorf("%w: %q (use nats://HOST:PORT/STREAM?subject=SUBJECT)", ErrBadAddress, redact(s))
	}
	name := strings.Trim(u.Path, "/")
	if name == "" || strings.ContainsAny(name, "/.*> \t") {
		return Address{}, fmt.Errorf("%w: %q names no stream, or one with a character stream names cannot have (/ . * >)", ErrBadAddress, redact(s))
	}
	a := Address{Stream: name}
	q := u.Query()
	for k := range q {
		if k != "subject" && k != "prefix" {
			return Address{}, fmt.Errorf("%w: %q: unknown parameter %q (subject, prefix)", ErrBadAddress, redact(s), k)
		}
	}
	for _, sub := range q["subject"] {
		if sub == "" || strings.ContainsAny(sub, " \t") {
			return Address{}, fmt.Errorf("%w: %q: subject %q", ErrBadAddress, redact(s), sub)
		}
		a.Subjects = append(a.Subjects, sub)
	}
	a.Prefix = q.Get("prefix")
	srv := url.URL{Scheme: "nats", User: u.User, Host: u.Host}
	a.Server = srv.String()
	srv.User = nil
	if u.User != nil {
		srv.User = url.User(u.User.Username())
	}
	d := url.URL{Scheme: "nats", User: srv.User, Host: u.Host, Path: "/" + name}
	a.Display = d.String()
	return a, nil
}

// redact hides the password of an address that failed to parse.
func redact(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return "(unreadable address)"
}

// connect opens a connection that reconnects for as long as it takes:
// a server restart pauses a job, it does not end it.
func connect(server string, opts ...nats.Option) (*nats.Conn, error) {
	nc, err := nats.Connect(server, append([]nats.Option{
		nats.Name("ckpt"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(100 * time.Millisecond),
		nats.RetryOnFailedConnect(false)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", redact(server), err)
	}
	return nc, nil
}
