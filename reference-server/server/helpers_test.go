package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pop3conformance/pop3conformance/fixtures"
	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/reference-server/maildrop"
)

var bundled = []string{"exchange2010", "exchange2007", "rfc1939"}

func loadProfile(t testing.TB, name string) *profile.Profile {
	t.Helper()
	p, err := profile.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	return p.Clone()
}

type testServer struct {
	*Server
	store *maildrop.Store
	dir   string // the store's directory
	plain string
	tls   string
}

type serverOpt func(*Config, *maildrop.Options)

// startServer starts a seeded server for the server's own tests. It is
// the one place outside reference-server/embed that does: embed imports
// this package, so these tests cannot import embed (an import cycle), and
// they need the Server and the Store themselves.
func startServer(t testing.TB, prof *profile.Profile, opts ...serverOpt) *testServer {
	t.Helper()
	cfg := Config{Profile: prof}
	var mo maildrop.Options
	for _, o := range opts {
		o(&cfg, &mo)
	}
	dir := t.TempDir()
	store, err := maildrop.Open(dir, mo)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Seed(fixtures.Mailboxes()); err != nil {
		t.Fatal(err)
	}
	cfg.Store = store
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start("127.0.0.1:0", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	p, s := srv.Addrs()
	return &testServer{Server: srv, store: store, dir: dir, plain: p.String(), tls: s.String()}
}

type client struct {
	t        testing.TB
	conn     net.Conn
	r        *bufio.Reader
	greeting string
	// maxCommand is the server's command limit, for tests that must fit.
	maxCommand int
}

func (ts *testServer) dial(t testing.TB) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", ts.plain, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, c)
	cl.maxCommand = ts.prof.MaxCommandOctets
	return cl
}

func (ts *testServer) dialTLS(t testing.TB) *client {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ts.tls, ts.clientTLS())
	if err != nil {
		t.Fatal(err)
	}
	return newClient(t, c)
}

func (ts *testServer) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: ts.CertPool(), ServerName: "localhost"}
}

func newClient(t testing.TB, c net.Conn) *client {
	t.Cleanup(func() { c.Close() })
	cl := &client{t: t, conn: c, r: bufio.NewReaderSize(c, 64<<10)}
	cl.greeting = cl.line()
	if !strings.HasPrefix(cl.greeting, "+OK") {
		t.Fatalf("greeting %q", cl.greeting)
	}
	return cl
}

// line reads one response line without CRLF; it fails on a bare LF.
func (c *client) line() string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	s, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, s)
	}
	if !strings.HasSuffix(s, "\r\n") {
		c.t.Fatalf("line without CRLF: %q", s)
	}
	return strings.TrimSuffix(s, "\r\n")
}

func (c *client) send(raw string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.conn.Write([]byte(raw)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// cmd sends one command and returns the status line.
func (c *client) cmd(line string) string {
	c.t.Helper()
	c.send(line + "\r\n")
	return c.line()
}

// multi reads a multi-line body up to ".", undoing byte-stuffing; it
// returns the body with CRLF line ends.
func (c *client) multi() string {
	c.t.Helper()
	var b strings.Builder
	for {
		l := c.line()
		if l == "." {
			return b.String()
		}
		b.WriteString(strings.TrimPrefix(l, "."))
		b.WriteString("\r\n")
	}
}

func (c *client) lines() []string {
	c.t.Helper()
	body := c.multi()
	if body == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(body, "\r\n"), "\r\n")
}

func (c *client) login(user, pass string) {
	c.t.Helper()
	if r := c.cmd("USER " + user); !strings.HasPrefix(r, "+OK") {
		c.t.Fatalf("USER %s: %q", user, r)
	}
	if r := c.cmd("PASS " + pass); !strings.HasPrefix(r, "+OK") {
		c.t.Fatalf("PASS for %s: %q", user, r)
	}
}

// closed waits for the server to close the connection and returns what
// it sent before that.
func (c *client) closed() string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := c.r.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				c.t.Fatalf("connection not closed; got %q", b.String())
			}
			return b.String()
		}
	}
}

// withCodes adds RESP-CODES and AUTH-RESP-CODE to p, for tests about
// response codes: the Exchange profiles advertise neither, as real
// Exchange does not.
func withCodes(p *profile.Profile) *profile.Profile {
	p.Capabilities = append(p.Capabilities, "RESP-CODES", "AUTH-RESP-CODE")
	return p
}

// errPrefix is how a -ERR carrying code starts under p: the code only
// when p advertises it (RFC 2449 section 8, RFC 3206 section 6).
func errPrefix(p *profile.Profile, code string) string {
	tag := "RESP-CODES"
	if code == "AUTH" {
		tag = "AUTH-RESP-CODE"
	}
	if p.Announces(tag) {
		return "-ERR [" + code + "] "
	}
	return "-ERR "
}

func wantPrefix(t testing.TB, got, prefix string) {
	t.Helper()
	if !strings.HasPrefix(got, prefix) {
		t.Fatalf("got %q, want prefix %q", got, prefix)
	}
}

func forEachProfile(t *testing.T, f func(t *testing.T, p *profile.Profile)) {
	for _, name := range bundled {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t, loadProfile(t, name))
		})
	}
}

func tlsDial(ts *testServer) (net.Conn, error) {
	return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ts.tls, ts.clientTLS())
}

func netDial(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, 5*time.Second) }

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
