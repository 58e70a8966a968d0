package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultNATSURL is the NATS server with JetStream the tests use when
// CKPT_NATS_URL is not set: the local one, as CI starts it.
const DefaultNATSURL = "nats://127.0.0.1:4222"

// NATSURL returns CKPT_NATS_URL, or DefaultNATSURL.
func NATSURL() string {
	if u := os.Getenv("CKPT_NATS_URL"); u != "" {
		return u
	}
	return DefaultNATSURL
}

// NATS is a connection to a NATS server with JetStream, closed when the
// test ends.
type NATS struct {
	URL  string
	Conn *nats.Conn
	JS   jetstream.JetStream
}

// NewNATS connects to the server of NATSURL, or stops the test (see
// Unavailable) when none answers or it has no JetStream.
func NewNATS(t testing.TB) *NATS {
	t.Helper()
	return connectNATS(t, NATSURL())
}

func connectNATS(t testing.TB, url string) *NATS {
	t.Helper()
	nc, err := nats.Connect(url, nats.Timeout(2*time.Second), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		Unavailable(t, "no NATS server at %s (set CKPT_NATS_URL): %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		Unavailable(t, "the NATS server at %s has no JetStream (start it with -js): %v", url, err)
	}
	return &NATS{URL: url, Conn: nc, JS: js}
}

// Stream is a stream of one test, deleted when the test ends. Its name
// and subjects are unique, so tests running at once on one server never
// share one.
type Stream struct {
	// Name is the stream's name, as T_1a2b3c4d5e6f.
	Name string
	// Subject is the stream's subject prefix, as t_1a2b3c4d5e6f: the
	// stream holds the subjects below it (Subject + ".>").
	Subject string
	nats    *NATS
}

// NewStream creates a stream with file storage, the given duplicate
// window (0: the server's default of two minutes), and the subjects
// Subject.>.
func (n *NATS) NewStream(t testing.TB, dupWindow time.Duration) *Stream {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	s := &Stream{Name: "T_" + id, Subject: "t_" + id, nats: n}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := n.JS.CreateStream(ctx, jetstream.StreamConfig{
		Name:       s.Name,
		Subjects:   []string{s.Subject + ".>"},
		Storage:    jetstream.FileStorage,
		Duplicates: dupWindow,
	}); err != nil {
		t.Fatalf("create stream %s: %v", s.Name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.JS.DeleteStream(ctx, s.Name)
	})
	return s
}

// Address returns the stream's address for ckpt, with a subject filter
// if given.
func (s *Stream) Address(subject string) string {
	a := strings.TrimSuffix(s.nats.URL, "/") + "/" + s.Name
	if subject != "" {
		a += "?subject=" + subject
	}
	return a
}

// Publish publishes data to subject and waits for the server to store
// it, returning its sequence.
func (s *Stream) Publish(t testing.TB, subject string, data []byte) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ack, err := s.nats.JS.Publish(ctx, subject, data)
	if err != nil {
		t.Fatalf("publish to %s: %v", subject, err)
	}
	return ack.Sequence
}

// Messages returns the payloads the stream holds, in order, reading until
// its last sequence.
func (s *Stream) Messages(t testing.TB) []jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := s.nats.JS.Stream(ctx, s.Name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []jetstream.RawStreamMsg
	if info.State.Msgs == 0 {
		return nil
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	it, err := cons.Messages()
	if err != nil {
		t.Fatal(err)
	}
	defer it.Stop()
	for {
		m, err := it.Next(jetstream.NextMaxWait(10 * time.Second))
		if err != nil {
			t.Fatalf("read stream %s: %v", s.Name, err)
		}
		meta, _ := m.Metadata()
		out = append(out, jetstream.RawStreamMsg{Subject: m.Subject(), Sequence: meta.Sequence.Stream, Header: m.Headers(), Data: m.Data(), Time: meta.Timestamp})
		if meta.Sequence.Stream >= info.State.LastSeq {
			return out
		}
	}
}

// NATSServer is a private NATS server with JetStream, in this process, on
// a free loopback port, for tests that stop and restart the server (the
// machine's own must not be touched). It is shut down when the test ends.
type NATSServer struct {
	URL  string
	port int
	dir  string
	srv  *server.Server
}

// StartNATSServer starts a private server whose JetStream keeps its files
// in a temporary directory.
func StartNATSServer(t testing.TB) *NATSServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free loopback port: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := &NATSServer{URL: "nats://127.0.0.1:" + strconv.Itoa(port), port: port, dir: t.TempDir()}
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	return s
}

func (s *NATSServer) start() error {
	srv, err := server.NewServer(&server.Options{
		Host:      "127.0.0.1",
		Port:      s.port,
		JetStream: true,
		StoreDir:  s.dir,
		NoSigs:    true,
		NoLog:     true,
	})
	if err != nil {
		return fmt.Errorf("NATS server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return fmt.Errorf("NATS server on port %d did not start", s.port)
	}
	s.srv = srv
	return nil
}

func (s *NATSServer) stop() {
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
		s.srv = nil
	}
}

// Restart stops the server and starts it again on the same port and
// files: clients see their connection drop and reconnect.
func (s *NATSServer) Restart(t testing.TB) {
	t.Helper()
	s.stop()
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
}

// Connect connects to the private server.
func (s *NATSServer) Connect(t testing.TB) *NATS {
	t.Helper()
	return connectNATS(t, s.URL)
}
