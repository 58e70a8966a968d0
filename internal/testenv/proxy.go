package testenv

import (
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy forwards TCP connections from a loopback port to a target address
// and fails them on demand, for tests of what a client does when the
// network does: connections reset mid-request, a service that stops
// answering, one that answers slowly, one that cannot be reached at all.
// It never looks into the bytes it forwards.
type Proxy struct {
	target string
	addr   string

	mu        sync.Mutex
	ln        net.Listener
	conns     map[*proxyConn]struct{}
	gate      chan struct{} // closed while forwarding flows, open while stalled
	delayUp   time.Duration
	delayDown time.Duration
	cutAfter  int64 // upstream bytes left before the connection carrying them is reset; <0: off
	up        int64 // upstream bytes forwarded in all
	accepted  int
	closed    bool
	wg        sync.WaitGroup
}

// NewProxy starts a proxy to target on a free loopback port; it is closed
// when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: proxy: %v", err)
	}
	gate := make(chan struct{})
	close(gate)
	p := &Proxy{target: target, addr: ln.Addr().String(), ln: ln, conns: make(map[*proxyConn]struct{}), gate: gate, cutAfter: -1}
	p.wg.Add(1)
	go p.serve(ln)
	t.Cleanup(p.close)
	return p
}

// Addr returns the proxy's host:port.
func (p *Proxy) Addr() string { return p.addr }

// Endpoint returns the proxy's address as an http:// URL.
func (p *Proxy) Endpoint() string { return "http://" + p.addr }

// Stall stops forwarding in both directions: connections, new ones too,
// stay open and silent until Resume.
func (p *Proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate:
		p.gate = make(chan struct{})
	default:
	}
}

// Resume lets stalled connections go on.
func (p *Proxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate:
	default:
		close(p.gate)
	}
}

// SetDelay delays every forwarded read: up for what the client sends,
// down for what the server answers. Zero turns a delay off.
func (p *Proxy) SetDelay(up, down time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delayUp, p.delayDown = up, down
}

// CutAfter resets the connection that carries the n-th next byte from the
// client, once: the request it belongs to is cut off midway.
func (p *Proxy) CutAfter(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutAfter = n
}

// DropAll resets every open connection.
func (p *Proxy) DropAll() {
	p.mu.Lock()
	conns := make([]*proxyConn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.reset()
	}
}

// Down makes the service unreachable: the port is closed, so connecting
// is refused, and every open connection is reset.
func (p *Proxy) Down() {
	p.mu.Lock()
	ln := p.ln
	p.ln = nil
	p.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	p.DropAll()
}

// Up opens the port again after Down.
func (p *Proxy) Up(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil || p.closed {
		return
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatalf("testenv: proxy: listen again on %s: %v", p.addr, err)
	}
	p.ln = ln
	p.wg.Add(1)
	go p.serve(ln)
}

// UpBytes returns how many bytes clients have sent through the proxy.
func (p *Proxy) UpBytes() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.up
}

// Accepted returns how many connections the proxy has accepted.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

func (p *Proxy) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.Down()
	p.Resume()
	p.wg.Wait()
}

func (p *Proxy) serve(ln net.Listener) {
	defer p.wg.Done()
	for {
		client, err := ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.accepted++
		p.mu.Unlock()
		p.wg.Add(1)
		go p.handle(client, ln)
	}
}

type proxyConn struct {
	client, server net.Conn
	once           sync.Once
	done           chan struct{}
}

// reset closes both ends with a TCP reset rather than an orderly close,
// as a dropped connection looks to the peers.
func (c *proxyConn) reset() {
	c.once.Do(func() {
		for _, conn := range []net.Conn{c.client, c.server} {
			if tc, ok := conn.(*net.TCPConn); ok {
				tc.SetLinger(0)
			}
			conn.Close()
		}
		close(c.done)
	})
}

// handle forwards a connection that ln accepted.
func (p *Proxy) handle(client net.Conn, ln net.Listener) {
	defer p.wg.Done()
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		client.Close()
		return
	}
	c := &proxyConn{client: client, server: server, done: make(chan struct{})}
	p.mu.Lock()
	// Down (or close) may have come while this connection was accepted
	// and dialled, too late for its DropAll to see it: it must not
	// outlive the listener that accepted it.
	if p.closed || p.ln != ln {
		p.mu.Unlock()
		c.reset()
		return
	}
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() { p.pump(c, client, server, true) })
	wg.Go(func() { p.pump(c, server, client, false) })
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// pump copies src to dst until either side fails, then ends the whole
// connection: a half-closed proxied connection would hide failures.
func (p *Proxy) pump(c *proxyConn, src, dst net.Conn, upstream bool) {
	defer c.reset()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.wait(c, upstream) {
				return
			}
			b := buf[:n]
			cut := false
			if upstream {
				p.mu.Lock()
				if p.cutAfter >= 0 && int64(len(b)) >= p.cutAfter {
					b, cut = b[:p.cutAfter], true
					p.cutAfter = -1
				} else if p.cutAfter >= 0 {
					p.cutAfter -= int64(len(b))
				}
				p.up += int64(len(b))
				p.mu.Unlock()
			}
			if _, werr := dst.Write(b); werr != nil || cut {
				return
			}
		}
		if err != nil {
			return // io.EOF included: the peer closed its side
		}
	}
}

// wait holds a chunk while the proxy is stalled and for the delay; it
// reports false if the connection ended meanwhile.
func (p *Proxy) wait(c *proxyConn, upstream bool) bool {
	p.mu.Lock()
	gate := p.gate
	delay := p.delayDown
	if upstream {
		delay = p.delayUp
	}
	p.mu.Unlock()
	select {
	case <-gate:
	case <-c.done:
		return false
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-c.done:
			return false
		}
	}
	return true
}
