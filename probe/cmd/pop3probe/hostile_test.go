package main

// Probe-versus-broken-server tests (issue 5, "Probe"): each test starts a
// small misbehaving POP3 server on loopback and runs the probe against it
// in a child process (Ginkgo allows one suite run per process; the child
// is this test binary, switched into the probe by envAsProbe). Every run
// must end within its time bound, exit 1 or 2 as `probe --help`
// documents, give every spec a verdict with a reason, stay within bounded
// memory, and still write the report in every requested format.

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/probe/report"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// envAsProbe makes this test binary run the probe's main instead of the
// tests.
const envAsProbe = "POP3CONFORMANCE_TEST_AS_PROBE"

func TestMain(m *testing.M) {
	if os.Getenv(envAsProbe) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// A few quick readonly specs that use the commands the servers break:
// STAT, LIST, RETR (a multi-line response each).
const fewSpecs = "readonly && req: containsAny {RFC1939-5-stat-format, RFC1939-5-list-all, RFC1939-5-retr-ok}"

const testPassword = "Pr0be-hostile-s3cret"

// The message every fake maildrop holds.
const fakeMessage = "From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nhello\r\n"

// server is a fake POP3 server on 127.0.0.1:0.
type server struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
	done  chan struct{}
}

// startServer accepts connections and hands each to handle; the test's
// cleanup closes the listener and every connection and waits for the
// handlers.
func startServer(t *testing.T, tlsConf *tls.Config, handle func(c net.Conn, done <-chan struct{})) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
	}
	s := &server{ln: ln, done: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				handle(c, s.done)
			}()
		}
	}()
	t.Cleanup(func() {
		close(s.done)
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return ln.Addr().(*net.TCPAddr).Port
}

// pop3 is a minimal POP3 dialogue with one message. override may answer
// a command itself: it returns false to fall back to the default answer.
// The dialogue ends when override or QUIT says so, or on a read error.
type pop3 struct {
	greeting string
	stls     bool
	// write sends a reply; the default writes it at once.
	write    func(c net.Conn, s string) error
	override func(c net.Conn, verb, arg string) (handled, end bool)
}

func (p pop3) serve(c net.Conn, done <-chan struct{}) {
	write := p.write
	if write == nil {
		write = func(c net.Conn, s string) error { _, err := io.WriteString(c, s); return err }
	}
	greeting := p.greeting
	if greeting == "" {
		greeting = "+OK fake POP3 ready\r\n"
	}
	if write(c, greeting) != nil {
		return
	}
	br := bufio.NewReaderSize(c, 4096)
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(strings.TrimRight(string(line), "\r\n"), " ")
		verb = strings.ToUpper(verb)
		if p.override != nil {
			handled, end := p.override(c, verb, arg)
			if end {
				return
			}
			if handled {
				continue
			}
		}
		size := strconv.Itoa(len(fakeMessage))
		var reply string
		switch verb {
		case "USER", "NOOP", "RSET", "DELE":
			reply = "+OK\r\n"
		case "PASS":
			reply = "+OK logged in\r\n"
		case "STAT":
			reply = "+OK 1 " + size + "\r\n"
		case "LIST":
			if arg != "" {
				reply = "+OK 1 " + size + "\r\n"
			} else {
				reply = "+OK 1 message\r\n1 " + size + "\r\n.\r\n"
			}
		case "UIDL":
			if arg != "" {
				reply = "+OK 1 uid-1\r\n"
			} else {
				reply = "+OK\r\n1 uid-1\r\n.\r\n"
			}
		case "RETR", "TOP":
			reply = "+OK " + size + " octets\r\n" + fakeMessage + ".\r\n"
		case "CAPA":
			reply = "+OK\r\nUSER\r\nUIDL\r\nTOP\r\n"
			if p.stls {
				reply += "STLS\r\n"
			}
			reply += ".\r\n"
		case "STLS":
			reply = "-ERR not supported\r\n"
		case "QUIT":
			_ = write(c, "+OK bye\r\n")
			return
		default:
			reply = "-ERR unknown command\r\n"
		}
		if write(c, reply) != nil {
			return
		}
		select {
		case <-done:
			return
		default:
		}
	}
}

// probeRun is one finished child probe.
type probeRun struct {
	code           int
	stdout, stderr string
	elapsed        time.Duration
	maxRSSMiB      int64
	out            string
}

// runProbe runs the probe against 127.0.0.1:port with the password in
// the environment variable PW, writing every format into a fresh
// directory. It fails the test when the probe outlives limit.
func runProbe(t *testing.T, port int, limit time.Duration, args ...string) probeRun {
	t.Helper()
	out := t.TempDir()
	// One session at a time: these tests bound the time and memory one
	// client spends on a hostile server; sharing the specs among worker
	// processes is proven in latency_test.go.
	all := append([]string{"--host", "127.0.0.1", "--port", strconv.Itoa(port), "--user", "alice",
		"--password-env", "PW", "--out", out, "--format", "json,yaml,md,html,junit", "--no-observe",
		"--max-connections", "1"}, args...)
	cmd := exec.Command(os.Args[0], all...)
	cmd.Env = append(os.Environ(), envAsProbe+"=1", "PW="+testPassword)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-exited:
	case <-time.After(limit):
		_ = cmd.Process.Kill()
		<-exited
		t.Fatalf("the probe still ran after %v (hangs)\nstdout:\n%s\nstderr:\n%s", limit, stdout.String(), stderr.String())
	}
	r := probeRun{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(start), out: out}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.maxRSSMiB = ru.Maxrss >> 10 // KiB on Linux
	}
	t.Logf("exit %d after %v, peak RSS %d MiB", r.code, r.elapsed.Round(10*time.Millisecond), r.maxRSSMiB)
	return r
}

// check verifies what every hostile run must give: the expected exit
// code, every report file, a verdict and reason for every spec, no
// password anywhere, and the peak memory below maxRSSMiB.
func (r probeRun) check(t *testing.T, wantCode int, maxRSSMiB int64, wantText ...string) *report.Report {
	t.Helper()
	console := r.stdout + r.stderr
	if r.code != wantCode {
		t.Errorf("exit %d, want %d\n%s", r.code, wantCode, console)
	}
	if strings.Contains(console, testPassword) {
		t.Errorf("the console output holds the password")
	}
	if r.maxRSSMiB > maxRSSMiB {
		t.Errorf("peak RSS %d MiB, want at most %d", r.maxRSSMiB, maxRSSMiB)
	}
	rep := r.reports(t, wantCode)
	var text strings.Builder
	text.WriteString(console + "\n" + rep.SuiteError + "\n")
	for _, st := range rep.Statements {
		for _, s := range st.Specs {
			switch s.Verdict {
			case verdict.Conformant:
			case verdict.Deviates, verdict.Error, verdict.Inconclusive, verdict.NotApplicable, verdict.NotObservable, verdict.NotRun:
				if strings.TrimSpace(s.Reason) == "" {
					t.Errorf("%s: spec %q ends %s without a reason", st.ID, s.Text, s.Verdict)
				}
			default:
				t.Errorf("%s: spec %q has no verdict (%q)", st.ID, s.Text, s.Verdict)
			}
			fmt.Fprintf(&text, "%s %s: %s\n", s.Verdict, s.Text, s.Reason)
		}
	}
	for _, w := range wantText {
		if !strings.Contains(text.String(), w) {
			t.Errorf("neither the console nor the report says %q:\n%s", w, text.String())
		}
	}
	if t.Failed() {
		t.Logf("report:\n%s", text.String())
	}
	return rep
}

// reports reads what the run wrote: every report format, or, when the
// suite never started (exit 2), the one short preflight report, whose
// message then stands as the report's suite error.
func (r probeRun) reports(t *testing.T, wantCode int) *report.Report {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(r.out, "*"))
	for _, f := range files {
		if data, err := os.ReadFile(f); err == nil && bytes.Contains(data, []byte(testPassword)) {
			t.Errorf("%s holds the password", filepath.Base(f))
		}
	}
	if wantCode == 2 && len(files) == 1 && filepath.Base(files[0]) == report.PreflightFile {
		data, _ := os.ReadFile(files[0])
		_, msg, ok := strings.Cut(string(data), "**Before any spec:** ")
		if !ok {
			t.Fatalf("the preflight report states no error:\n%s", data)
		}
		msg, _, _ = strings.Cut(msg, "\n")
		return &report.Report{SuiteError: msg}
	}
	for _, f := range report.Formats {
		if _, err := os.Stat(filepath.Join(r.out, f.FileName())); err != nil {
			t.Errorf("report not written: %v", err)
		}
	}
	rep, err := report.Load(filepath.Join(r.out, report.JSON.FileName()))
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// Memory bounds of the child, generous for the race detector's overhead
// yet far below what an unbounded read of the streaming servers reaches.
const (
	smallRSSMiB = 256
	bigRSSMiB   = 640
)

// TestProbeNeverGreeted: a server that accepts and never says a word. The
// probe's connection check gives up after harness.DefaultTimeout (default
// settings, no --timeout), exits 2 naming the cause, and writes the
// report; it does not run one spec into the silence.
func TestProbeNeverGreeted(t *testing.T) {
	t.Parallel()
	port := startServer(t, nil, func(c net.Conn, done <-chan struct{}) { <-done })
	r := runProbe(t, port, harness.DefaultTimeout+20*time.Second)
	rep := r.check(t, 2, smallRSSMiB, "no greeting within "+harness.DefaultTimeout.String())
	if r.elapsed < harness.DefaultTimeout-time.Second {
		t.Errorf("gave up after %v, before the greeting timeout", r.elapsed)
	}
	if rep.SuiteError == "" {
		t.Error("the report does not say why nothing was judged")
	}
}

// TestProbeTrickledGreeting: a server that sends its greeting one octet
// per second. The read bound is per line, not per octet, so the probe
// stops at harness.DefaultTimeout as if it had heard nothing.
func TestProbeTrickledGreeting(t *testing.T) {
	t.Parallel()
	port := startServer(t, nil, pop3{write: trickle}.serve)
	r := runProbe(t, port, 2*harness.DefaultTimeout, "--timeout", "30s")
	r.check(t, 2, smallRSSMiB, "no greeting within "+harness.DefaultTimeout.String())
}

// trickle writes s one octet per second.
func trickle(c net.Conn, s string) error {
	for i := range len(s) {
		if _, err := c.Write([]byte{s[i]}); err != nil {
			return err
		}
		time.Sleep(time.Second)
	}
	return nil
}

// TestProbeTrickleAfterLogin: a server that logs in at once, then answers
// every command one octet per second with a multi-line response that
// never ends (each line arrives within the per-read bound). Only the
// probe's --timeout stops it: the spec in progress is cut off at once
// (its connection is tied to the run's context), the report is written,
// and the unfinished run exits 2.
func TestProbeTrickleAfterLogin(t *testing.T) {
	t.Parallel()
	const timeout = 12 * time.Second
	port := startServer(t, nil, pop3{override: func(c net.Conn, verb, _ string) (bool, bool) {
		switch verb {
		case "USER", "PASS", "QUIT":
			return false, false
		}
		if trickle(c, "+OK\r\n") != nil {
			return true, true
		}
		for {
			if trickle(c, "1 1\r\n") != nil {
				return true, true
			}
		}
	}}.serve)
	r := runProbe(t, port, timeout+harness.DefaultTimeout, "--timeout", timeout.String())
	r.check(t, 2, smallRSSMiB, "did not finish", "raise --timeout")
	if r.elapsed > timeout+5*time.Second {
		t.Errorf("ended %v after its --timeout %v", r.elapsed-timeout, timeout)
	}
}

// longLine is 1 MiB without a line end: with the LF it could not have,
// one octet over the client's limit.
var longLine = strings.Repeat("x", harness.MaxLineOctets)

// TestProbeLongLines: a server that greets, then answers every command
// with a line longer than the client's limit and no LF. The connection
// check fails on USER, naming the limit.
func TestProbeLongLines(t *testing.T) {
	t.Parallel()
	port := startServer(t, nil, pop3{override: func(c net.Conn, _, _ string) (bool, bool) {
		_, err := io.WriteString(c, longLine)
		return true, err != nil
	}}.serve)
	r := runProbe(t, port, 2*harness.DefaultTimeout, "--timeout", "30s")
	r.check(t, 2, smallRSSMiB, "longer than the client's limit")
}

// TestProbeLongLinesAfterLogin: the same after a good login, so the specs
// meet the long lines: each ends deviating, none waits.
func TestProbeLongLinesAfterLogin(t *testing.T) {
	t.Parallel()
	port := startServer(t, nil, pop3{override: func(c net.Conn, verb, _ string) (bool, bool) {
		switch verb {
		case "USER", "PASS", "QUIT":
			return false, false
		}
		_, err := io.WriteString(c, longLine)
		return true, err != nil
	}}.serve)
	r := runProbe(t, port, 30*time.Second, "--timeout", "30s", "--label-filter", fewSpecs)
	r.check(t, 1, smallRSSMiB, "longer than the client's limit")
	if r.elapsed > 10*time.Second {
		t.Errorf("took %v: a spec waited on a line it had already refused", r.elapsed)
	}
}

// TestProbeDropMidRETR: the server sends half a message to RETR and TOP,
// then closes the connection.
func TestProbeDropMidRETR(t *testing.T) {
	t.Parallel()
	port := startServer(t, nil, pop3{override: func(c net.Conn, verb, _ string) (bool, bool) {
		if verb != "RETR" && verb != "TOP" {
			return false, false
		}
		_, _ = io.WriteString(c, "+OK "+strconv.Itoa(len(fakeMessage))+" octets\r\n"+fakeMessage[:30])
		return true, true
	}}.serve)
	r := runProbe(t, port, 30*time.Second, "--timeout", "30s", "--label-filter", fewSpecs)
	r.check(t, 1, smallRSSMiB, "multi-line response not terminated", "EOF")
}

// TestProbeLostOneFormReply: the server drops the connection at LIST n.
// The specs read STAT, LIST and LIST n once (a Reading): those that judge
// STAT and LIST alone must still be judged on what they saw, and only the
// spec that judges LIST n may fail for the lost reply.
func TestProbeLostOneFormReply(t *testing.T) {
	t.Parallel()
	port := startServer(t, nil, pop3{override: func(c net.Conn, verb, arg string) (bool, bool) {
		return false, verb == "LIST" && arg != ""
	}}.serve)
	r := runProbe(t, port, 30*time.Second, "--timeout", "30s", "--label-filter", "readonly && req: containsAny {RFC1939-5-stat-format, RFC1939-5-list-one}")
	rep := r.check(t, 1, smallRSSMiB, `the session failed at "LIST 1"`)
	seen := 0
	for _, st := range rep.Statements {
		for _, s := range st.Specs {
			switch {
			case strings.HasPrefix(s.Text, "RFC 1939 section 5: STAT answers STAT with +OK"):
				seen++
				if s.Verdict != verdict.Conformant {
					t.Errorf("%q: %s (%s); STAT and LIST were answered", s.Text, s.Verdict, s.Reason)
				}
			case strings.HasPrefix(s.Text, "RFC 1939 section 5: LIST answers LIST n"):
				seen++
				if s.Verdict == verdict.Conformant {
					t.Errorf("%q is conformant, but LIST n was never answered", s.Text)
				}
			}
		}
	}
	if seen != 2 {
		t.Errorf("found %d of the 2 specs in the report", seen)
	}
}

// TestProbeUnterminatedMulti: every multi-line response goes on forever,
// as fast as loopback carries it, without the terminating ".". The client
// stops at harness.MaxMultiOctets instead of buffering without bound.
func TestProbeUnterminatedMulti(t *testing.T) {
	t.Parallel()
	filler := strings.Repeat("0123456789abcdef", 64)[:1022] + "\r\n"
	block := strings.Repeat(filler, 256)
	port := startServer(t, nil, pop3{override: func(c net.Conn, verb, _ string) (bool, bool) {
		switch verb {
		case "LIST", "UIDL", "RETR", "TOP", "CAPA":
		default:
			return false, false
		}
		if _, err := io.WriteString(c, "+OK here it comes\r\n"); err != nil {
			return true, true
		}
		for {
			if _, err := io.WriteString(c, block); err != nil {
				return true, true
			}
		}
	}}.serve)
	r := runProbe(t, port, 45*time.Second, "--timeout", "40s", "--label-filter", "readonly && req: containsAny {RFC1939-5-list-all}")
	r.check(t, 1, bigRSSMiB, fmt.Sprintf("limit of %d MiB", harness.MaxMultiOctets>>20))
}

// TestProbeSTLSGarbage: +OK to STLS, then octets that are not a TLS
// handshake.
func TestProbeSTLSGarbage(t *testing.T) {
	t.Parallel()
	port := startServer(t, nil, pop3{stls: true, override: func(c net.Conn, verb, _ string) (bool, bool) {
		if verb != "STLS" {
			return false, false
		}
		if _, err := io.WriteString(c, "+OK begin TLS\r\n"); err != nil {
			return true, true
		}
		time.Sleep(100 * time.Millisecond) // after the client read the +OK
		_, _ = io.WriteString(c, "this is not a TLS server hello\r\n")
		return true, false
	}}.serve)
	r := runProbe(t, port, 2*harness.DefaultTimeout, "--starttls", "--timeout", "30s")
	r.check(t, 2, smallRSSMiB, "TLS handshake", "first record does not look like a TLS handshake")
}

// TestProbeWrongCertificateName: implicit TLS with a certificate for
// another name, issued by a CA the probe trusts. Verification fails, for
// the address and for --server-name, with a message that names both
// names and the flag that skips it; --insecure-skip-verify lets the
// specs run.
func TestProbeWrongCertificateName(t *testing.T) {
	t.Parallel()
	caFile, conf := tlsFor(t, "mail.other.example")
	port := startServer(t, conf, pop3{}.serve)
	t.Run("verified", func(t *testing.T) {
		r := runProbe(t, port, 2*harness.DefaultTimeout, "--tls", "--ca-file", caFile, "--timeout", "30s")
		r.check(t, 2, smallRSSMiB, "failed to verify certificate", "--insecure-skip-verify")
	})
	t.Run("verified by name", func(t *testing.T) {
		r := runProbe(t, port, 2*harness.DefaultTimeout, "--tls", "--ca-file", caFile, "--server-name", "pop.example.net", "--timeout", "30s")
		r.check(t, 2, smallRSSMiB, "certificate is valid for mail.other.example, not pop.example.net", "--insecure-skip-verify")
	})
	t.Run("insecure-skip-verify", func(t *testing.T) {
		r := runProbe(t, port, 30*time.Second, "--tls", "--insecure-skip-verify", "--timeout", "30s", "--label-filter", fewSpecs)
		rep := r.check(t, r.code, smallRSSMiB)
		if r.code != 0 && r.code != 1 {
			t.Errorf("exit %d, want 0 or 1: the specs ran\n%s%s", r.code, r.stdout, r.stderr)
		}
		if rep.SuiteError != "" {
			t.Errorf("suite error: %s", rep.SuiteError)
		}
	})
}

// tlsFor makes a CA (written to a PEM file for --ca-file) and a server
// certificate for name only.
func tlsFor(t *testing.T, name string) (string, *tls.Config) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hostile test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return caFile, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}
