package cli

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/pop3conformance/pop3conformance/model/catalog"
	"github.com/pop3conformance/pop3conformance/probe/report"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

const (
	password  = "Hunter2-sekrit"
	password2 = "other-Pa55word"
)

const testCatalog = `
requirements:
  - {id: V0001, source: MS-STANXPOP3, section: "3.1.5", summary: "-ERR carries text", level: MUST, verification: wire}
  - {id: V0008, source: MS-STANXPOP3, section: "3.1.5", summary: USER of unknown user, level: MUST, verification: wire}
  - {id: C0002, source: MS-STANXPOP3, section: "2.2", summary: internal, level: MUST, verification: not-observable, reason: server internals}
`

func testCat(t testing.TB) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Parse([]byte(testCatalog))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// envChild makes the test binary act as a child probe for --targets.
const envChild = "PROBE_CLI_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(envChild) == "1" {
		cat, err := catalog.Parse([]byte(testCatalog))
		if err != nil {
			panic(err)
		}
		os.Exit(asChild(func() int {
			return Main(context.Background(), os.Args[1:], Env{
				Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv,
				Runner: fakeRunner(nil), Catalog: cat,
			})
		}))
	}
	os.Exit(m.Run())
}

// fakeRunner stands in for the suite: V0008 deviates when the host is
// "deviant", the BeforeSuite aborts for "down", and the server echoes the
// password into a failure message and a transcript, so the tests can
// prove the probe scrubs it. V0001 deviates when the server behaves as
// another profile than the specs expect (see behaviourOf).
func fakeRunner(got *Request) Runner {
	return func(ctx context.Context, req Request, p Progress) ([]types.Report, error) {
		if got != nil {
			*got = req
		}
		switch req.Host {
		case "refused":
			return nil, errors.New("preflight: cannot connect to refused:110: connection refused")
		case "untrusted":
			return nil, errors.New("preflight: connected to untrusted:995, but the server's certificate does not verify (trust it with POP3_CA_FILE or POP3_INSECURE_SKIP_VERIFY=true; probe: --ca-file or --insecure-skip-verify)")
		case "stall":
			<-ctx.Done()
			return nil, fmt.Errorf("preflight: %w", ctx.Err())
		}
		start := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
		run := types.Report{StartTime: start, EndTime: start.Add(time.Second)}
		before := types.SpecReport{LeafNodeType: types.NodeTypeBeforeSuite, State: types.SpecStatePassed,
			ReportEntries: []types.ReportEntry{{Name: "target", Value: types.WrapEntryValue("fake " + req.Host)}}}
		if req.Host == "down" {
			before.State = types.SpecStateAborted
			before.Failure.Message = "target: dial tcp down:110: connection refused"
		}
		run.SpecReports = append(run.SpecReports, before)
		ok := types.SpecReport{LeafNodeType: types.NodeTypeIt, LeafNodeText: "err text", State: types.SpecStatePassed,
			LeafNodeLabels: []string{"readonly", "req:V0001"}}
		user := types.SpecReport{LeafNodeType: types.NodeTypeIt, LeafNodeText: "unknown user", State: types.SpecStatePassed,
			LeafNodeLabels: []string{"readonly", "req:V0008"}}
		if b := behaviourOf(req); b != "" && b != req.Profile {
			ok.State = types.SpecStateFailed
			ok.Failure.Message = "the server behaves as " + b + ", not as " + req.Profile
		}
		if req.Host == "deviant" {
			user.State = types.SpecStateFailed
			// A failure message that echoes PASS lines, as a server that
			// repeats the client's line would make it.
			user.Failure.Message = "expected -ERR, server said +OK " + req.Password + "\nC: PASS " + req.Password + "\nC: PASS " + req.Password2
			user.ReportEntries = []types.ReportEntry{{Name: "transcript", Value: types.WrapEntryValue("C: PASS " + req.Password + "\r\nS: +OK " + req.Password2)}}
		}
		if req.Host == "down" {
			ok.State, user.State = types.SpecStateSkipped, types.SpecStateSkipped
		}
		if req.Host == "slowtimer" {
			// A skip reason as the suite writes it for a ginkgo run.
			user.State = types.SpecStateSkipped
			user.Failure.Message = "needs permission: waits for a real server timer; allow with POP3_ALLOW=slow (probe: --slow)"
		}
		p.Start(2)
		for i, sr := range []types.SpecReport{ok, user} {
			run.SpecReports = append(run.SpecReports, sr)
			s, ids := report.SpecOf(sr)
			if ss, ok := p.(SpecStarter); ok {
				ss.SpecStart(SpecStart{N: i + 1, Total: 2, IDs: ids, Text: s.Text, Slow: true, Wait: time.Minute, Timeout: 2 * time.Minute})
			}
			p.Spec(SpecEvent{N: i + 1, Total: 2, Verdict: s.Verdict, IDs: ids, Text: s.Text, Reason: s.Reason})
		}
		return []types.Report{run}, nil
	}
}

// behaviourOf is the profile the fake server behaves as: a host named
// "as-PROFILE" behaves as PROFILE, the bundled server as
// --reference-profile, else as --profile; other hosts have no profile.
func behaviourOf(req Request) string {
	if b, ok := strings.CutPrefix(req.Host, "as-"); ok {
		return b
	}
	if req.Host == "" {
		return cmp.Or(req.ReferenceProfile, req.Profile)
	}
	return ""
}

type result struct {
	code           int
	stdout, stderr string
}

func run(t *testing.T, env map[string]string, got *Request, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), args, Env{
		Stdout: &stdout, Stderr: &stderr,
		Getenv:  func(k string) string { return env[k] },
		Runner:  fakeRunner(got),
		Catalog: testCat(t),
	})
	return result{code, stdout.String(), stderr.String()}
}

func TestRunExitCodesAndNoSecrets(t *testing.T) {
	env := map[string]string{"PW": password, "PW2": password2}
	tests := []struct {
		name     string
		host     string
		wantCode int
		wantOut  string
	}{
		{"conformant", "good", ExitConformant, "2 conformant"},
		{"deviates", "deviant", ExitDeviates, "1 deviates"},
		{"cannot connect", "down", ExitUsage, "could not judge"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			pwFile := filepath.Join(t.TempDir(), "pw2")
			if err := os.WriteFile(pwFile, []byte(password2+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			r := run(t, env, nil, "--host", tt.host, "--user", "alice", "--password-env", "PW",
				"--user2", "bob", "--password2-file", pwFile, "--out", out)
			if r.code != tt.wantCode {
				t.Errorf("exit %d, want %d\nstdout:%s\nstderr:%s", r.code, tt.wantCode, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stdout+r.stderr, tt.wantOut) {
				t.Errorf("output lacks %q:\n%s%s", tt.wantOut, r.stdout, r.stderr)
			}
			files, _ := filepath.Glob(filepath.Join(out, "*"))
			if len(files) != len(report.Formats) {
				t.Errorf("wrote %v, want one file per format", files)
			}
			for _, f := range files {
				data, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				for _, pw := range []string{password, password2} {
					if bytes.Contains(data, []byte(pw)) {
						t.Errorf("%s holds a password", filepath.Base(f))
					}
				}
			}
			for _, pw := range []string{password, password2} {
				if strings.Contains(r.stdout+r.stderr, pw) {
					t.Errorf("console output holds a password:\n%s%s", r.stdout, r.stderr)
				}
			}
		})
	}
}

func TestRunProgressAndQuiet(t *testing.T) {
	r := run(t, nil, nil, "--out", t.TempDir(), "--format", "json")
	if !strings.Contains(r.stderr, "[1/2] conformant     V0001  err text") {
		t.Errorf("progress lines:\n%s", r.stderr)
	}
	r = run(t, nil, nil, "--out", t.TempDir(), "--format", "json", "--quiet")
	if r.stderr != "" {
		t.Errorf("--quiet printed %q", r.stderr)
	}
}

func TestParseRun(t *testing.T) {
	env := map[string]string{"PW": password, "EMPTY": ""}
	tests := []struct {
		name    string
		args    []string
		wantErr string // substring; empty means success
		check   func(t *testing.T, r Request)
	}{
		{name: "bundled defaults", args: nil, check: func(t *testing.T, r Request) {
			if r.Host != "" || r.Profile != "exchange2010" || r.TLS != "none" || r.Timeout != time.Hour {
				t.Errorf("%+v", r)
			}
		}},
		{name: "remote implicit tls", args: []string{"--host", "h", "--tls", "--user", "u", "--password-env", "PW", "--allow-mutating", "--slow", "--profile", "rfc1939"},
			check: func(t *testing.T, r Request) {
				if r.Port != 995 || r.TLS != "implicit" || r.Password != password || !r.Allow.Mutating || r.Allow.Disruptive || !r.Allow.Slow || r.Profile != "rfc1939" {
					t.Errorf("%+v", r)
				}
			}},
		{name: "starttls default port", args: []string{"--host", "h", "--starttls", "--user", "u", "--password-env", "PW"},
			check: func(t *testing.T, r Request) {
				if r.Port != 110 || r.TLS != "starttls" {
					t.Errorf("%+v", r)
				}
			}},
		{name: "password on argv", args: []string{"--host", "h", "--password=" + password}, wantErr: "not taken from the command line"},
		{name: "password2 on argv", args: []string{"--password2", "x"}, wantErr: "--password2-env"},
		{name: "missing user", args: []string{"--host", "h", "--password-env", "PW"}, wantErr: "--user NAME"},
		{name: "missing password", args: []string{"--host", "h", "--user", "u"}, wantErr: "--password-env VAR or --password-file"},
		{name: "empty env", args: []string{"--host", "h", "--user", "u", "--password-env", "EMPTY"}, wantErr: "EMPTY: the environment variable is empty"},
		{name: "missing file", args: []string{"--host", "h", "--user", "u", "--password-file", "/nonexistent/pw"}, wantErr: "--password-file"},
		{name: "both tls", args: []string{"--host", "h", "--user", "u", "--password-env", "PW", "--tls", "--starttls"}, wantErr: "exclude each other"},
		{name: "user without host", args: []string{"--user", "u"}, wantErr: "--host is not"},
		{name: "half second account", args: []string{"--host", "h", "--user", "u", "--password-env", "PW", "--user2", "b"}, wantErr: "--user2 and"},
		{name: "bad profile", args: []string{"--profile", "exchange2099"}, wantErr: "unknown profile"},
		{name: "bad label filter", args: []string{"--label-filter", "req: containsAny {"}, wantErr: "--label-filter"},
		{name: "bad format", args: []string{"--format", "pdf"}, wantErr: "--format"},
		{name: "bad port", args: []string{"--host", "h", "--port", "70000", "--user", "u", "--password-env", "PW"}, wantErr: "not a TCP port"},
		{name: "stray argument", args: []string{"mail.example.com"}, wantErr: "unexpected argument"},
		{name: "unknown flag", args: []string{"--hots", "h"}, wantErr: "-hots"},
		{name: "parallel without targets", args: []string{"--parallel", "3"}, wantErr: "applies to --targets"},
		{name: "negative parallel", args: []string{"--targets", "t.yaml", "--parallel", "-1"}, wantErr: "--parallel -1"},
		{name: "targets with host", args: []string{"--targets", "t.yaml", "--host", "h"}, wantErr: "--host and --targets"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseRun(tt.args, func(k string) string { return env[k] }, &bytes.Buffer{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), password) {
					t.Errorf("the error repeats the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, o.Request)
			}
		})
	}
}

func TestMainUsageExitCodes(t *testing.T) {
	tests := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"--help"}, ExitConformant, "Exit codes:"},
		{[]string{"help"}, ExitConformant, "--password-env VAR"},
		{[]string{"version"}, ExitConformant, "pop3probe "},
		{[]string{"frobnicate"}, ExitUsage, "unknown command"},
		{[]string{"--host", "h"}, ExitUsage, "--user NAME"},
		{[]string{"list"}, ExitConformant, "V0008"},
		{[]string{"list", "extra"}, ExitUsage, "no arguments"},
		{[]string{"diff", "one.json"}, ExitUsage, "two probe JSON reports"},
		{[]string{"report"}, ExitUsage, "one ginkgo JSON report"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := run(t, nil, nil, tt.args...)
			if r.code != tt.code || !strings.Contains(r.stdout+r.stderr, tt.out) {
				t.Errorf("exit %d (want %d), output lacks %q?\n%s%s", r.code, tt.code, tt.out, r.stdout, r.stderr)
			}
		})
	}
}

func TestReportAndDiffCommands(t *testing.T) {
	// A ginkgo --json-report file, as `ginkgo ./suites/conformance` writes it.
	runs, err := fakeRunner(nil)(context.Background(), Request{Config: harness.Config{Host: "deviant", Password: password}}, quietProgress{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	gj := filepath.Join(dir, "ginkgo.json")
	data, _ := json.Marshal(runs)
	if err := os.WriteFile(gj, data, 0o600); err != nil {
		t.Fatal(err)
	}
	newDir := filepath.Join(dir, "new")
	r := run(t, nil, nil, "report", gj, "--out", newDir, "--format", "json,md")
	if r.code != ExitDeviates {
		t.Fatalf("report: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	oldDir := filepath.Join(dir, "old")
	if r := run(t, nil, nil, "--out", oldDir, "--format", "json"); r.code != ExitConformant {
		t.Fatalf("run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	oldJSON, newJSON := filepath.Join(oldDir, "report.json"), filepath.Join(newDir, "report.json")
	r = run(t, nil, nil, "diff", oldJSON, newJSON)
	if r.code != ExitDeviates || !strings.Contains(r.stdout, "regressed V0008") && !strings.Contains(r.stdout, "regressed") {
		t.Errorf("diff old new: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, nil, nil, "diff", newJSON, oldJSON)
	if r.code != ExitConformant || !strings.Contains(r.stdout, "1 fixed") {
		t.Errorf("diff new old: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := run(t, nil, nil, "diff", gj, oldJSON); r.code != ExitUsage {
		t.Errorf("diff of a ginkgo report: exit %d, want usage error", r.code)
	}
}

// TestPreflightFailureWritesOneReport: a suite that never started leaves
// one short report naming the error in flag terms (and no stale report of
// an earlier run), not a report per format of statements never run.
func TestPreflightFailureWritesOneReport(t *testing.T) {
	env := map[string]string{"PW": password}
	for _, tt := range []struct {
		host, want string
		extra      []string
	}{
		{"refused", "cannot connect to refused:110", nil},
		{"untrusted", "(trust it with --ca-file or --insecure-skip-verify)", nil},
		{"stall", "raise --timeout", []string{"--timeout", "50ms"}},
	} {
		t.Run(tt.host, func(t *testing.T) {
			out := t.TempDir()
			for _, stale := range []string{"report.json", "report.html", "observed-profile.yaml"} {
				writeFile(t, out, stale, "from an earlier run")
			}
			args := append([]string{"--host", tt.host, "--user", "alice", "--password-env", "PW", "--out", out}, tt.extra...)
			r := run(t, env, nil, args...)
			if r.code != ExitUsage {
				t.Errorf("exit %d, want %d", r.code, ExitUsage)
			}
			if !strings.Contains(r.stderr, tt.want) || strings.Contains(r.stderr+r.stdout, "POP3_") {
				t.Errorf("stderr lacks %q or names an environment variable:\n%s%s", tt.want, r.stdout, r.stderr)
			}
			files, _ := filepath.Glob(filepath.Join(out, "*"))
			if len(files) != 1 || filepath.Base(files[0]) != report.PreflightFile {
				t.Fatalf("wrote %v, want only %s", files, report.PreflightFile)
			}
			data, _ := os.ReadFile(files[0])
			if md := string(data); !strings.Contains(md, tt.want) || strings.Contains(md, "not-run") || strings.Contains(md, password) {
				t.Errorf("%s:\n%s", files[0], md)
			}
		})
	}
}

// TestReportsNameFlags: a skip reason written for a ginkgo run names
// POP3_ALLOW; the probe's console and reports name its flag instead.
func TestReportsNameFlags(t *testing.T) {
	out := t.TempDir()
	r := run(t, map[string]string{"PW": password}, nil, "--host", "slowtimer", "--user", "alice", "--password-env", "PW", "--out", out, "--format", "json,md,html")
	if !strings.Contains(r.stderr, "allow with --slow)") || strings.Contains(r.stderr, "POP3_") {
		t.Errorf("progress:\n%s", r.stderr)
	}
	for _, f := range []string{"report.json", "report.md", "report.html"} {
		data, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, []byte("POP3_")) || !bytes.Contains(data, []byte("allow with --slow")) {
			t.Errorf("%s names an environment variable or lacks the flag", f)
		}
	}
}

func TestFlagHints(t *testing.T) {
	for in, want := range map[string]string{
		"allow with POP3_ALLOW=reversible (probe: --allow-reversible)":       "allow with --allow-reversible",
		"implicit TLS port: unavailable (set POP3_TLS=implicit to test one)": "implicit TLS port: unavailable (set --tls to test one)",
		"a second account: unavailable (set POP3_USER2 and POP3_PASSWORD2)":  "a second account: unavailable (set --user2 and --password2-env/--password2-file)",
		"declare an APOP mailbox with POP3_MAILBOX_FIXTURE=erin":             "declare an APOP mailbox with --mailbox-fixture erin",
		"no variable here (probe: kept)":                                     "no variable here (probe: kept)",
		// The preflight's hints (harness.Target.Preflight).
		"(check POP3_HOST, POP3_PORT, POP3_TLS and, for TLS, POP3_CA_FILE, POP3_SERVER_NAME or POP3_INSECURE_SKIP_VERIFY)": "(check --host, --port, --tls/--starttls and, for TLS, --ca-file, --server-name or --insecure-skip-verify)",
		"(check POP3_USER and POP3_PASSWORD)": "(check --user and --password-env/--password-file)",
	} {
		if got := flagHints(in); got != want {
			t.Errorf("flagHints(%q)\n = %q\nwant %q", in, got, want)
		}
	}
	// Every setting the suite reads has a flag.
	for _, name := range []string{harness.EnvHost, harness.EnvPort, harness.EnvTLS, harness.EnvInsecureSkipVerify, harness.EnvServerName,
		harness.EnvCAFile, harness.EnvUser, harness.EnvPassword, harness.EnvUser2, harness.EnvPassword2, harness.EnvProfile,
		harness.EnvReferenceProfile, harness.EnvMailboxFixture, harness.EnvAllow} {
		if got := flagHints("set " + name); strings.Contains(got, "POP3_") {
			t.Errorf("%s has no flag: %q", name, got)
		}
	}
}
