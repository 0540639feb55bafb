package peertest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startTimeout bounds one start.sh.
const startTimeout = time.Minute

// Server describes a peer's start.sh: probe/peers/Dir/start.sh WORKDIR
// starts the server on 127.0.0.1 and writes WORKDIR/env (KEY=VALUE lines:
// POP3_PORT, CA_FILE, ...) and WORKDIR/stop.sh.
type Server struct {
	Dir  string   // the peer's directory under probe/peers
	Name string   // the server as the test's log names it
	Logs []string // files in WORKDIR whose last lines are logged when the test fails
	Env  []string // keys env must set besides POP3_PORT (and CA_FILE)
	// Plain says the server has no TLS: start.sh writes no CA_FILE and
	// the probe talks plain POP3 on POP3_PORT.
	Plain bool
}

// Instance is a started server.
type Instance struct {
	Work   string            // start.sh's WORKDIR
	Port   string            // the plain port, with STLS unless Server.Plain
	CAFile string            // the certificate to trust ("" if Server.Plain)
	Env    map[string]string // all of WORKDIR/env
}

// UserSuffix is what the server's login names append to users.yaml's
// names (start.sh's USER_SUFFIX, e.g. "@localhost"; mostly empty).
func (in Instance) UserSuffix() string { return in.Env["USER_SUFFIX"] }

// Start starts a fresh instance with the fixture mailboxes and stops it
// when the test ends.
func (s Server) Start(t testing.TB, root string) Instance {
	t.Helper()
	work := s.workDir(t)
	// Registered before the start so that a half-started instance is
	// stopped too; cleanups run last-in first-out, so before the
	// directory is removed.
	t.Cleanup(func() { s.stop(t, work) })
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "probe", "peers", s.Dir, "start.sh"), work)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("start.sh: %v\n%s", err, out)
	}
	env, err := ReadEnv(filepath.Join(work, "env"))
	if err != nil {
		t.Fatalf("start.sh wrote no usable env file: %v (output: %s)", err, out)
	}
	in := Instance{Work: work, Port: env["POP3_PORT"], CAFile: env["CA_FILE"], Env: env}
	required := append([]string{"POP3_PORT"}, s.Env...)
	if !s.Plain {
		required = append(required, "CA_FILE")
	}
	for _, key := range required {
		if env[key] == "" {
			t.Fatalf("start.sh's env lacks %s: %v", orList(required), env)
		}
	}
	t.Logf("%s on 127.0.0.1:%s (%s), work directory %s", s.Name, in.Port, s.tls(), work)
	return in
}

// tls is the report's target.tls for runs against s.
func (s Server) tls() string {
	if s.Plain {
		return "none"
	}
	return "starttls"
}

// workDir makes the directory start.sh is to fill, removed when the test
// ends. Not t.TempDir: it is 0700, and run as root the servers' own
// processes (dovecot, nobody, cyrus, ...) must reach the work directory.
func (s Server) workDir(t testing.TB) string {
	t.Helper()
	top, err := os.MkdirTemp("", "pop3conformance-"+s.Dir+"-probe-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	if err := os.Chmod(top, 0o755); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(top, "work")
}

// stop logs the ends of the server's logs if the test failed, and runs
// the stop.sh start.sh wrote, if it got that far.
func (s Server) stop(t testing.TB, work string) {
	if t.Failed() {
		for _, name := range s.Logs {
			if log, err := os.ReadFile(filepath.Join(work, name)); err == nil {
				t.Logf("last lines of %s:\n%s", name, tail(string(log), 20))
			}
		}
	}
	stop := filepath.Join(work, "stop.sh")
	if _, err := os.Stat(stop); err != nil {
		return
	}
	if out, err := exec.Command(stop).CombinedOutput(); err != nil {
		t.Errorf("%s: %v\n%s", stop, err, out)
	}
}

// ReadEnv reads the KEY=VALUE lines start.sh writes.
func ReadEnv(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	env := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(s.Text()), "=")
		if ok {
			env[k] = v
		}
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return env, nil
}

// orList joins words as "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
