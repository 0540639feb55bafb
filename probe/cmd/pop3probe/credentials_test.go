package main

import (
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pop3conformance/pop3conformance/probe/report"
)

const testPassword2 = "Second-acc0unt-pw"

// TestCredentialsNeverLeak runs the real probe (every format, the
// parameter measurement on, a second account from a file) against a
// server that echoes whatever password it is given, once directly and
// once through --targets (a parent and one child per target). While it
// runs, the process listing (/proc/PID/cmdline) of the probe and of every
// child it starts is read; afterwards every file it wrote, its stdout and
// its stderr. None may hold either password. The unit test in
// probe/cli/hygiene_test.go covers the same outputs with a fake runner;
// this one covers the real suite, harness and observer end to end.
func TestCredentialsNeverLeak(t *testing.T) {
	t.Parallel()
	port := startServer(t, nil, pop3{override: func(c net.Conn, verb, arg string) (bool, bool) {
		switch verb {
		case "PASS":
			_, err := io.WriteString(c, "+OK welcome, your password is "+arg+"\r\n")
			return true, err != nil
		case "APOP", "AUTH":
			_, err := io.WriteString(c, "-ERR no "+verb+" for "+arg+", try PASS "+testPassword+"\r\n")
			return true, err != nil
		}
		return false, false
	}}.serve)
	dir := t.TempDir()
	pw2File := filepath.Join(dir, "pw2")
	if err := os.WriteFile(pw2File, []byte(testPassword2+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	common := []string{"--format", "json,yaml,md,html,junit", "--timeout", "25s", "--label-filter",
		"readonly && req: containsAny {RFC1939-4-greeting-then-auth, RFC1939-5-stat-format, V0008, V0001}"}
	target := []string{"--host", "127.0.0.1", "--port", strconv.Itoa(port), "--user", "alice", "--password-env", "PW",
		"--user2", "bob", "--password2-file", pw2File}

	t.Run("run", func(t *testing.T) {
		out := filepath.Join(dir, "run")
		checkNoLeak(t, out, append(append([]string{"--out", out}, target...), common...))
	})
	t.Run("targets", func(t *testing.T) {
		tf := filepath.Join(dir, "targets.yaml")
		yaml := "targets:\n  - {name: echo, host: 127.0.0.1, port: " + strconv.Itoa(port) +
			", user: alice, password_env: PW, user2: bob, password2_file: " + pw2File + "}\n"
		if err := os.WriteFile(tf, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "targets")
		checkNoLeak(t, out, append([]string{"--targets", tf, "--out", out}, common...))
	})
}

// checkNoLeak starts the probe with args, watches the command lines of it
// and its children until it exits, then greps everything it produced.
func checkNoLeak(t *testing.T, out string, args []string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), envAsProbe+"=1", "PW="+testPassword)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	cmdlines := map[int]string{}
	watch := func() {
		pids := append([]int{cmd.Process.Pid}, childrenOf(cmd.Process.Pid)...)
		for _, pid := range pids {
			if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); err == nil && len(b) > 0 {
				cmdlines[pid] = strings.ReplaceAll(string(b), "\x00", " ")
			}
		}
	}
	deadline := time.After(60 * time.Second)
wait:
	for {
		watch()
		select {
		case <-exited:
			break wait
		case <-deadline:
			_ = cmd.Process.Kill()
			<-exited
			t.Fatalf("the probe still ran after 60s\n%s%s", stdout.String(), stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	code := cmd.ProcessState.ExitCode()
	t.Logf("exit %d; %d process(es) seen", code, len(cmdlines))
	if code != 0 && code != 1 {
		t.Errorf("exit %d, want 0 or 1 (the specs ran)\n%s%s", code, stdout.String(), stderr.String())
	}
	if len(cmdlines) == 0 {
		t.Error("no process listing was read")
	}
	outputs := map[string]string{"stdout": stdout.String(), "stderr": stderr.String()}
	for pid, cl := range cmdlines {
		outputs["/proc/"+strconv.Itoa(pid)+"/cmdline ("+cl+")"] = cl
	}
	var reports int
	err := filepath.Walk(out, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		outputs[path] = string(data)
		if strings.HasPrefix(info.Name(), "report.") {
			reports++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if reports != len(report.Formats) {
		t.Errorf("%d report files, want %d", reports, len(report.Formats))
	}
	for where, text := range outputs {
		for _, pw := range []string{testPassword, testPassword2} {
			if strings.Contains(text, pw) {
				t.Errorf("%s holds a password", where)
			}
		}
	}
	// The server's echo reached the report and was scrubbed there: the
	// test would prove nothing if the echo never got that far.
	var scrubbed bool
	for where, text := range outputs {
		if strings.HasSuffix(where, report.Markdown.FileName()) && strings.Contains(text, "your password is "+report.Redacted) {
			scrubbed = true
		}
	}
	if !scrubbed {
		t.Error("no report shows a redaction: did the server's echo reach it?")
	}
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		s := string(stat)
		if i := strings.LastIndexByte(s, ')'); i >= 0 {
			if f := strings.Fields(s[i+1:]); len(f) > 1 && f[1] == strconv.Itoa(pid) {
				out = append(out, child)
			}
		}
	}
	return out
}
