package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// startBinary runs the built command with args and returns its plain
// listener address.
func startBinary(t *testing.T, bin string, args ...string) string {
	t.Helper()
	// A data directory of the test's: the command removes its own
	// temporary one only on a clean exit, and the cleanup kills it.
	cmd := exec.Command(bin, append([]string{"--listen", "127.0.0.1:0", "--tls-listen", "", "--data", t.TempDir()}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("no listening line: %v\n%s", err, stderr.String())
	}
	m := regexp.MustCompile(`^listening pop3=(\S+) pop3s=none\n$`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("listening line %q", line)
	}
	return m[1]
}

type wire struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialWire(t *testing.T, addr string) (*wire, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	w := &wire{t: t, c: c, r: bufio.NewReader(c)}
	return w, w.line()
}

func (w *wire) line() string {
	w.t.Helper()
	s, err := w.r.ReadString('\n')
	if err != nil {
		w.t.Fatalf("read: %v (got %q)", err, s)
	}
	return s
}

func (w *wire) cmd(s string) string {
	w.t.Helper()
	if _, err := w.c.Write([]byte(s + "\r\n")); err != nil {
		w.t.Fatal(err)
	}
	return w.line()
}

// idleEnd waits for the server to close an idle connection and returns
// what it sent first.
func (w *wire) idleEnd(within time.Duration) string {
	w.t.Helper()
	w.c.SetReadDeadline(time.Now().Add(within))
	rest, err := io.ReadAll(w.r)
	if err != nil {
		w.t.Fatalf("connection still open or broken after %v: %v (got %q)", within, err, rest)
	}
	return string(rest)
}

// TestBinaryProfiles drives the command under exchange2010 and rfc1939
// through each behaviour in which MS-STANXPOP3 and RFC 1939 differ, as the
// issue that defines the server lists them.
func TestBinaryProfiles(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := binary(t)
	apopStamp := regexp.MustCompile(`<[^>]+@[^>]+>`)
	tests := []struct {
		profile string
		check   func(t *testing.T, addr string)
	}{
		{"exchange2010", func(t *testing.T, addr string) {
			w, greeting := dialWire(t, addr)
			if apopStamp.MatchString(greeting) {
				t.Errorf("greeting %q carries an APOP timestamp (V0012)", greeting)
			}
			if got := w.cmd("APOP alice 0123456789abcdef0123456789abcdef"); !strings.HasPrefix(got, "-ERR ") {
				t.Errorf("APOP: %q, want -ERR (V0012)", got)
			}
			if got := w.cmd("USER\talice"); !strings.HasPrefix(got, "+OK") {
				t.Errorf("USER<TAB>alice: %q (2.1.1)", got)
			}
			if got := w.cmd("USER nosuchuser"); !strings.HasPrefix(got, "+OK") {
				t.Errorf("USER of an unknown name: %q (V0008)", got)
			}
			// Two sessions of alice at once (2.1.3).
			a, _ := dialWire(t, addr)
			b, _ := dialWire(t, addr)
			for i, s := range []*wire{a, b} {
				a := s.cmd("USER alice")
				p := s.cmd("PASS wonderland")
				if !strings.HasPrefix(a, "+OK") || !strings.HasPrefix(p, "+OK") {
					t.Errorf("session %d of alice: %q %q (2.1.3: no lock)", i+1, a, p)
				}
			}
			// Idle: a notice, then the close (V0003).
			idle, _ := dialWire(t, addr)
			if got := idle.idleEnd(5 * time.Second); !strings.HasPrefix(got, "-ERR ") {
				t.Errorf("idle close sent %q, want a notice line (V0003)", got)
			}
		}},
		{"rfc1939", func(t *testing.T, addr string) {
			w, greeting := dialWire(t, addr)
			if !apopStamp.MatchString(greeting) {
				t.Errorf("greeting %q has no APOP timestamp", greeting)
			}
			if got := w.cmd("USER\talice"); !strings.HasPrefix(got, "-ERR") {
				t.Errorf("USER<TAB>alice: %q, want -ERR (single space)", got)
			}
			if got := w.cmd("USER nosuchuser"); !strings.HasPrefix(got, "-ERR") {
				t.Errorf("USER of an unknown name: %q, want -ERR", got)
			}
			// The maildrop is locked: the second login gets [IN-USE].
			a, _ := dialWire(t, addr)
			b, _ := dialWire(t, addr)
			a.cmd("USER alice")
			if got := a.cmd("PASS wonderland"); !strings.HasPrefix(got, "+OK") {
				t.Fatalf("first login: %q", got)
			}
			b.cmd("USER alice")
			if got := b.cmd("PASS wonderland"); !strings.HasPrefix(got, "-ERR [IN-USE]") {
				t.Errorf("second login: %q, want -ERR [IN-USE]", got)
			}
			// Idle: closed without a word (RFC 1939 section 3).
			idle, _ := dialWire(t, addr)
			if got := idle.idleEnd(5 * time.Second); got != "" {
				t.Errorf("idle close sent %q, want nothing", got)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.profile, func(t *testing.T) {
			t.Parallel()
			addr := startBinary(t, bin, "--profile", tc.profile, "--unauth-timeout", "1s")
			tc.check(t, addr)
		})
	}
}
