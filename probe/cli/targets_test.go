package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/probe/report"
	"github.com/pop3conformance/pop3conformance/probe/target"
	"github.com/pop3conformance/pop3conformance/suites/harness"
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
		{"password written", "targets:\n  - {host: h, password: x}\n", "field password not found: a targets file names a password with password_env"},
		{"password2 written", "targets:\n  - {host: h}\n  - {host: i, password2: x}\n", "line 3: field password2 not found"},
		{"reference profile", "targets:\n  - {host: h, reference_profile: rfc1939}\n", "field reference_profile not found"},
		{"permissions", "targets:\n  - {host: h, allow: {mutating: true}}\n", "field allow not found"},
		{"unknown key", "targets:\n  - {host: h, hots: x}\n", "field hots not found in type cli.TargetEntry"},
		{"run settings", "targets:\n  - {host: h, timeout: 1m}\n", "field timeout not found"},
		{"empty", "targets: []\n", "no targets"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tf, err := LoadTargets(writeFile(t, t.TempDir(), "t.yaml", tt.yaml))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if tf.Concurrency != 0 || tf.Targets[0].Name != "a.example_995" || tf.Targets[1].endpoint() != "b.example:110" || tf.Targets[0].endpoint() != "a.example:995" {
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
	o := runOptions{Request: Request{Config: harness.Config{Profile: "rfc1939", Allow: harness.Permissions{Disruptive: true}}, Timeout: time.Minute},
		Formats: []report.Format{report.Markdown}}
	e := TargetEntry{Target: target.Target{Config: harness.Config{Host: "h", TLS: harness.TLSStartTLS, User: "u", Profile: "exchange2007"}, PasswordEnv: "PW"}}
	got, env := childArgs(e, o, "out/h")
	// The password is named to the child as the targets file names it;
	// the parent never reads it.
	want := []string{"run", "--quiet", "--out", "out/h", "--host", "h", "--starttls", "--user", "u", "--password-env", "PW",
		"--profile", "exchange2007", "--allow-disruptive", "--timeout", "1m0s", "--format", "json,md"}
	if !slices.Equal(got, want) || len(env) != 0 {
		t.Errorf("got  %q env %q\nwant %q", got, env, want)
	}
	// A target's own baseline replaces the command line's.
	o.Expect = "all.txt"
	for _, tc := range []struct{ own, want string }{{"", "all.txt"}, {"h.txt", "h.txt"}} {
		args, _ := childArgs(TargetEntry{Target: target.Target{Config: harness.Config{Host: "h"}}, Expect: tc.own}, o, "out/h")
		if i := slices.Index(args, "--expect"); i < 0 || args[i+1] != tc.want || slices.Contains(args[i+2:], "--expect") {
			t.Errorf("target expect %q: args %q, want --expect %s once", tc.own, args, tc.want)
		}
	}
	// So do its own sessions at once.
	o.MaxConnections = 4
	for _, tc := range []struct{ own, want int }{{0, 4}, {1, 1}} {
		args, _ := childArgs(TargetEntry{Target: target.Target{Config: harness.Config{Host: "h"}, MaxConnections: tc.own}}, o, "out/h")
		if i := slices.Index(args, "--max-connections"); i < 0 || args[i+1] != strconv.Itoa(tc.want) {
			t.Errorf("target max_connections %d: args %q, want --max-connections %d", tc.own, args, tc.want)
		}
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
	var sum FleetSummary
	if data, err := os.ReadFile(filepath.Join(out, "summary.json")); err != nil {
		t.Error(err)
	} else if err := json.Unmarshal(data, &sum); err != nil {
		t.Error(err)
	}
	if len(sum.Targets) != 4 {
		t.Fatalf("summary.json rows %+v", sum.Targets)
	}
	if g := sum.Targets[0]; g.Name != "good" || g.Host != "good" || g.Port != 110 || g.TLS != "none" || g.Profile != "exchange2010" ||
		g.Counts[verdict.Conformant] != 2 || g.Exit != ExitConformant || g.Report != filepath.Join(out, "good") {
		t.Errorf("summary.json row of good: %+v", g)
	}
	if n := sum.Targets[3]; n.Counts != nil || n.Exit != ExitUsage || !strings.Contains(n.Error, "UNSET_PW") {
		t.Errorf("summary.json row of nopw: %+v", n)
	}
	md, _ := os.ReadFile(filepath.Join(out, "summary.md"))
	for _, want := range []string{"| good | good | 110 | none | exchange2010 | 0 | 0 | 0 | 2 |", "| nopw | good | 110 | none | exchange2010 | – |"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("summary.md lacks %q:\n%s", want, md)
		}
	}
	for _, f := range []string{"summary.txt", "summary.md", "summary.json", "good/report.json", "good/report.md", "deviant/report.md", "down/probe.log"} {
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

// TestTargetsParallelNeverShareAServer: with --parallel 3, targets on
// different servers run at once, but three accounts on one host:port run
// one after another.
func TestTargetsParallelNeverShareAServer(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	logDir := t.TempDir()
	t.Setenv(envChild, "1")
	t.Setenv(envChildLog, logDir)
	t.Setenv(envChildSleep, "300ms")
	t.Setenv("PW", password)
	dir := t.TempDir()
	tf := writeFile(t, dir, "targets.yaml", `targets:
  - {name: a1, host: shared, user: a, password_env: PW}
  - {name: a2, host: SHARED, port: 110, user: b, password_env: PW}
  - {name: a3, host: shared, user: c, password_env: PW}
  - {name: other, host: other, user: a, password_env: PW}
`)
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"--targets", tf, "--parallel", "3", "--out", filepath.Join(dir, "out"), "--format", "json", "--quiet"}, Env{
		Stdout: &stdout, Stderr: &stderr, Getenv: os.Getenv, Executable: exe, Catalog: testCat(t),
	})
	if code != ExitConformant {
		t.Fatalf("exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	recs := childRecords(t, logDir)
	if len(recs) != 4 {
		t.Fatalf("%d children ran, want 4", len(recs))
	}
	host := func(r childRecord) string { return strings.ToLower(r.Args[slices.Index(r.Args, "--host")+1]) }
	overlap := func(a, b childRecord) bool { return a.Start.Before(b.End) && b.Start.Before(a.End) }
	parallel := false
	for i, a := range recs {
		for _, b := range recs[i+1:] {
			switch {
			case host(a) == host(b) && overlap(a, b):
				t.Errorf("two children on %s ran at once: %v-%v and %v-%v", host(a), a.Start, a.End, b.Start, b.End)
			case host(a) != host(b) && overlap(a, b):
				parallel = true
			}
		}
	}
	if !parallel {
		t.Error("no two targets ran at once: --parallel 3 ran them one by one")
	}
}
