package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/pop3conformance/pop3conformance/probe/report"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// recordingProxy forwards TCP connections to a server and keeps every
// octet the client sent: what reached the server, whatever the probe
// believes it sent.
type recordingProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	sent   []*bytes.Buffer
	wg     sync.WaitGroup
}

func startProxy(t *testing.T, target string) *recordingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &recordingProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *recordingProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		buf := &bytes.Buffer{}
		p.mu.Lock()
		p.sent = append(p.sent, buf)
		p.mu.Unlock()
		p.wg.Add(1)
		go p.relay(c, buf)
	}
}

func (p *recordingProxy) relay(c net.Conn, buf *bytes.Buffer) {
	defer p.wg.Done()
	defer c.Close()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer s.Close()
	go func() { _, _ = io.Copy(c, s); c.Close() }()
	_, _ = io.Copy(io.MultiWriter(s, &lockedWriter{mu: &p.mu, w: buf}), c)
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// deleLines returns the client lines that a server could read as DELE:
// the keyword in any casing after optional blanks, at the start of a line
// or after a bare CR.
var deleLineRE = regexp.MustCompile(`(?i)(?:^|[\r\n])[ \t\x00]*DELE`)

func (p *recordingProxy) deleLines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, b := range p.sent {
		for _, m := range deleLineRE.FindAllIndex(b.Bytes(), -1) {
			end := min(m[1]+20, b.Len())
			out = append(out, strings.TrimSpace(string(b.Bytes()[m[0]:end])))
		}
	}
	return out
}

// TestReadonlyRunSendsNoDele audits the reference server as a remote host
// through a proxy that records what the server received: a readonly run
// (parameter measurement included) sends no DELE in any form, keeps every
// message, reports the classes it sent without dele, and has nothing
// refused by the wire guard (a refusal would mean a readonly spec tried
// a line it must not send). A run allowed the reversible class, on one
// DELE spec, shows that the proxy does see DELE when one is sent.
func TestReadonlyRunSendsNoDele(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the readonly suite against a remote target")
	}
	srv, err := harness.Open(context.Background(), harness.Config{Profile: "exchange2010"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	proxy := startProxy(t, srv.PlainAddr())
	host, port, err := net.SplitHostPort(proxy.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	before := countMessages(t, srv, "alice")

	probe := func(args ...string) *report.Report {
		out := t.TempDir()
		cmd := exec.Command(os.Args[0], append([]string{"--host", host, "--port", port,
			"--user", "alice", "--password-env", "PROBE_TEST_PW", "--user2", "bob", "--password2-env", "PROBE_TEST_PW2",
			"--mailbox-fixture", "alice", "--profile", "exchange2010", "--insecure-skip-verify",
			"--format", "json", "--quiet", "--out", out, "--timeout", "5m"}, args...)...)
		cmd.Env = append(os.Environ(), envAsProbe+"=1", "PROBE_TEST_PW=wonderland", "PROBE_TEST_PW2=two words")
		console, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("probe: %v\n%s", err, console)
		}
		rep, err := report.Load(filepath.Join(out, report.JSON.FileName()))
		if err != nil {
			t.Fatalf("%v\n%s", err, console)
		}
		return rep
	}

	rep := probe()
	if got := proxy.deleLines(); len(got) > 0 {
		t.Errorf("a readonly run sent DELE to the server: %q", got)
	}
	if after := countMessages(t, srv, "alice"); after != before {
		t.Errorf("alice holds %d messages after a readonly run, %d before", after, before)
	}
	c := rep.Commands
	if c == nil {
		t.Fatal("the report lists no command classes")
	}
	if c.Sent["dele"] != 0 || c.Sent["read"] == 0 || c.Sent["login"] == 0 {
		t.Errorf("commands sent %v: want read and login, no dele", c.Sent)
	}
	if len(c.Refused) > 0 {
		t.Errorf("the wire guard refused %v in a readonly run: a readonly spec tried to send what its class forbids", c.Refused)
	}
	if rep.Target.AllowedText() != "readonly only" {
		t.Errorf("allowed %v, want none", rep.Target.Allowed)
	}
	t.Logf("readonly: %s; commands sent: %s", rep.Line(), report.CountsText(c.Sent))

	// The proxy sees DELE when the run allows it.
	rep = probe("--no-observe", "--allow-reversible", "--label-filter", "req: containsAny {RFC1939-5-dele-twice}")
	if len(proxy.deleLines()) == 0 || rep.Commands == nil || rep.Commands.Sent["dele"] == 0 {
		t.Errorf("a reversible run of RFC1939-5-dele-twice: the proxy saw %q, the report counts %v; want DELE in both", proxy.deleLines(), rep.Commands)
	}
	if after := countMessages(t, srv, "alice"); after != before {
		t.Errorf("alice holds %d messages after a reversible run, %d before", after, before)
	}
}
