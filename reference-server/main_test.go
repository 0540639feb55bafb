package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/pop3conformance/pop3conformance/reference-server/maildrop"
)

// TestBinary builds the command and drives it as the suite and CI do.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := binary(t)
	data := t.TempDir()
	cmd := exec.Command(bin, "--profile", "exchange2010", "--listen", "127.0.0.1:0",
		"--tls-listen", "127.0.0.1:0", "--data", data, "--unauth-timeout", "5s")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("no listening line: %v\n%s", err, stderr.String())
	}
	m := regexp.MustCompile(`^listening pop3=(\S+) pop3s=(\S+)\n$`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("listening line %q", line)
	}
	var (
		c net.Conn
		r *bufio.Reader
	)
	dial := func() {
		t.Helper()
		if c != nil {
			c.Close()
		}
		if c, err = net.DialTimeout("tcp", m[1], 5*time.Second); err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		r = bufio.NewReader(c)
	}
	dial()
	defer func() { c.Close() }()
	expect := func(send, prefix string) {
		t.Helper()
		if send != "" {
			c.Write([]byte(send))
		}
		got, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(got, prefix) {
			t.Fatalf("after %.40q: got %q, %v; want %q", send, got, err, prefix)
		}
	}
	expect("", "+OK")
	expect("USER\talice\r\n", "+OK")
	expect("USER "+strings.Repeat("u", 512-len("USER ")-2)+"\r\n", "+OK")
	expect("USER "+strings.Repeat("u", 513-len("USER ")-2)+"\r\n", "-ERR ")
	// exchange2010 closes after an over-long line, as Exchange does.
	dial()
	expect("", "+OK")
	expect("USER alice\r\n", "+OK")
	expect("PASS wonderland\r\n", "+OK")
	expect("STAT\r\n", "+OK 6 ")

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	if strings.Contains(stderr.String(), "wonderland") {
		t.Fatal("password in the log")
	}
	// The data directory survives; a fresh temporary one would not.
	if _, err := os.Stat(filepath.Join(data, "users", "alice", "uidnext")); err != nil {
		t.Fatal(err)
	}
	// Passwords are stored hashed: exchange2010 offers NTLM but not APOP.
	acc, err := os.ReadFile(filepath.Join(data, "users", "alice", "account.json"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(acc), "wonderland") || !strings.Contains(string(acc), `"bcrypt":"$2`) || !strings.Contains(string(acc), `"nt_hash":"`) {
		t.Fatalf("account.json: %s", acc)
	}
}

func TestHashPassword(t *testing.T) {
	var out, errOut bytes.Buffer
	code := runWith(context.Background(), []string{"hash-password", "--cost", "4", "--nt"}, strings.NewReader("two words\r\n"), &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	m := regexp.MustCompile(`^password_bcrypt: "(\$2a\$04\$[./A-Za-z0-9]{53})"\nnt_hash: ([0-9a-f]{32})\n$`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("output %q", out.String())
	}
	if bcrypt.CompareHashAndPassword([]byte(m[1]), []byte("two words")) != nil {
		t.Fatal("the hash does not match the password")
	}
	if m[2] != hex.EncodeToString(maildrop.NTHashOf("two words")) || strings.Contains(out.String()+errOut.String(), "two words") {
		t.Fatalf("output %q", out.String())
	}
	for _, bad := range [][]string{{"hash-password", "extra"}, {"hash-password", "--cost", "99"}} {
		out.Reset()
		if code := runWith(context.Background(), bad, strings.NewReader("x\n"), &out, &errOut); code != 2 {
			t.Errorf("%q: exit %d", bad, code)
		}
	}
	if code := runWith(context.Background(), []string{"hash-password"}, strings.NewReader(""), &out, &errOut); code != 2 {
		t.Errorf("empty stdin: exit %d", code)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--profile", "nosuch"},
		{"--bogus"},
		{"--max-command-octets", "39"},
		{"--unauth-timeout", "0s"},
		{"--cert", "x.pem"},
		{"--listen", "", "--tls-listen", ""},
		{"extra"},
		{"--password-storage", "plain"},
	} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), args, &out, &errOut); code != 2 || errOut.Len() == 0 || out.Len() != 0 {
			t.Errorf("%q: exit %d, stderr %q", args, code, errOut.String())
		}
	}
}

func TestRunInProcess(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw, _ := os.Pipe()
	defer pr.Close()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--profile", "rfc1939", "--listen", "127.0.0.1:0", "--tls-listen", "", "--log-level", "warn", "--smtp-listen", "127.0.0.1:0"}, pw, &bytes.Buffer{})
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil || !regexp.MustCompile(`^listening pop3=127\.0\.0\.1:\d+ pop3s=none\n$`).MatchString(line) {
		t.Fatalf("listening line %q, %v", line, err)
	}
	addr := strings.Fields(line)[1][len("pop3="):]
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	greeting, _ := r.ReadString('\n')
	c.Write([]byte("USER\talice\r\nUSER nobody\r\n"))
	tab, _ := r.ReadString('\n')
	unknown, _ := r.ReadString('\n')
	c.Close()
	if !regexp.MustCompile(`^\+OK .*<[^>]+@[^>]+>\r\n$`).MatchString(greeting) || !strings.HasPrefix(tab, "-ERR") || !strings.HasPrefix(unknown, "-ERR") {
		t.Fatalf("rfc1939: %q %q %q", greeting, tab, unknown)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit")
	}
}
