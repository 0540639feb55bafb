package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"pop3conformance/probe/report"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadTargets(t *testing.T) {
	tests := []struct {
		name, yaml, wantErr string
	}{
		{"ok", "targets:\n  - {host: a.example, port: 995, tls: implicit, user: u, password_env: PW}\n  - {name: b, host: b.example}\n", ""},
		{"no host", "targets:\n  - {name: x}\n", "has no host"},
		{"bad name", "targets:\n  - {name: ../x, host: h}\n", "names the report directory"},
		{"duplicate", "targets:\n  - {name: x, host: h}\n  - {name: x, host: i}\n", "two targets are named"},
		{"bad tls", "targets:\n  - {host: h, tls: ssl}\n", "not none, starttls or implicit"},
		{"unknown key", "targets:\n  - {host: h, password: x}\n", "field password not found"},
		{"empty", "targets: []\n", "no targets"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tf, err := LoadTargets(writeFile(t, t.TempDir(), "t.yaml", tt.yaml))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if tf.Concurrency != 4 || tf.Targets[0].Name != "a.example_995" {
					t.Errorf("%+v", tf)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestChildArgs(t *testing.T) {
	o := runOptions{Request: Request{Profile: "rfc1939", AllowDisruptive: true, Timeout: time.Minute}, Formats: []report.Format{report.Markdown}}
	got := childArgs(TargetEntry{Host: "h", TLS: "starttls", User: "u", PasswordEnv: "PW", Profile: "exchange2007"}, o, "out/h")
	want := []string{"run", "--host", "h", "--quiet", "--out", "out/h", "--starttls", "--user", "u", "--password-env", "PW",
		"--profile", "exchange2007", "--allow-disruptive", "--timeout", "1m0s", "--format", "json,md"}
	if !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// TestTargetsRunsChildren runs this test binary as the child probe.
func TestTargetsRunsChildren(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(envChild, "1")
	t.Setenv("PW", password)
	dir := t.TempDir()
	tf := writeFile(t, dir, "targets.yaml", `concurrency: 2
targets:
  - {name: good, host: good, user: u, password_env: PW}
  - {name: deviant, host: deviant, user: u, password_env: PW}
  - {name: down, host: down, user: u, password_env: PW}
  - {name: nopw, host: good, user: u, password_env: UNSET_PW}
`)
	out := filepath.Join(dir, "out")
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"--targets", tf, "--out", out, "--format", "md"}, Env{
		Stdout: &stdout, Stderr: &stderr, Getenv: os.Getenv, Executable: exe, Catalog: testCat(t),
	})
	if code != ExitUsage {
		t.Errorf("exit %d, want %d (the worst child)", code, ExitUsage)
	}
	table := stdout.String()
	rows := map[string]string{}
	for _, l := range strings.Split(table, "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			rows[f[0]] = strings.Join(f, " ")
		}
	}
	for name, want := range map[string]string{
		"good":    "good 0 2 0 1 ",
		"deviant": "deviant 1 1 1 1 ",
		"down":    "down 2 0 0 3 ",
		"nopw":    "nopw 2 - - - --password-env UNSET_PW: the environment variable is empty",
	} {
		if !strings.HasPrefix(rows[name], want) {
			t.Errorf("summary row %q, want it to start with %q:\n%s", rows[name], want, table)
		}
	}
	for _, f := range []string{"summary.txt", "good/report.json", "good/report.md", "deviant/report.md", "down/probe.log"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if data, _ := os.ReadFile(p); bytes.Contains(data, []byte(password)) {
				t.Errorf("%s holds the password", p)
			}
		}
		return nil
	})
}
