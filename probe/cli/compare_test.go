package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/probe/report"
	"github.com/pop3conformance/pop3conformance/probe/target"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// Environment of the test binary acting as a child probe (see asChild).
const (
	// envChildLog names a directory where each child records its
	// command line and when it ran.
	envChildLog = "PROBE_CLI_TEST_CHILD_LOG"
	// envChildBarrier makes each child wait until that many children
	// have started: they can only all get past it when they run at once.
	envChildBarrier = "PROBE_CLI_TEST_CHILD_BARRIER"
	// envChildFail names a profile whose child dies without a report.
	envChildFail = "PROBE_CLI_TEST_CHILD_FAIL"
	// envChildSleep makes each child take that long, so children that
	// run at once overlap measurably.
	envChildSleep = "PROBE_CLI_TEST_CHILD_SLEEP"
)

// childRecord is what a child probe noted about itself.
type childRecord struct {
	Args        []string
	Start, End  time.Time
	BarrierMet  bool
	HadPassword bool
}

// asChild wraps the test binary's run as a child probe with the hooks
// the comparison tests need.
func asChild(run func() int) int {
	if p := os.Getenv(envChildFail); p != "" && slices.Contains(os.Args, p) {
		fmt.Fprintf(os.Stderr, "pop3probe: simulated failure under profile %s\n", p)
		return ExitUsage
	}
	dir := os.Getenv(envChildLog)
	if dir == "" {
		return run()
	}
	rec := childRecord{Args: os.Args[1:], Start: time.Now(), HadPassword: os.Getenv(target.ChildPasswordEnv) != ""}
	rec.BarrierMet = barrier(dir)
	if d, err := time.ParseDuration(os.Getenv(envChildSleep)); err == nil {
		time.Sleep(d)
	}
	code := run()
	rec.End = time.Now()
	data, _ := json.Marshal(rec)
	_ = os.WriteFile(filepath.Join(dir, strconv.Itoa(os.Getpid())+".json"), data, 0o600)
	return code
}

// barrier marks this child started and waits, up to a bound, for the
// number of started children that envChildBarrier asks for.
func barrier(dir string) bool {
	n, _ := strconv.Atoi(os.Getenv(envChildBarrier))
	if n == 0 {
		return true
	}
	_ = os.WriteFile(filepath.Join(dir, strconv.Itoa(os.Getpid())+".started"), nil, 0o600)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if started, _ := filepath.Glob(filepath.Join(dir, "*.started")); len(started) >= n {
			return true
		}
	}
	return false
}

func childRecords(t *testing.T, dir string) []childRecord {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	var recs []childRecord
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var rec childRecord
		if err := json.Unmarshal(data, &rec); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	slices.SortFunc(recs, func(a, b childRecord) int { return a.Start.Compare(b.Start) })
	return recs
}

func TestComparedProfiles(t *testing.T) {
	bundled := profile.Bundled()
	if len(bundled) < 2 {
		t.Fatalf("bundled profiles %v: nothing to compare", bundled)
	}
	for _, chosen := range append(slices.Clone(bundled), "my/profile.yaml") {
		got := comparedProfiles(chosen)
		want := slices.DeleteFunc(slices.Clone(bundled), func(n string) bool { return n == chosen })
		if !slices.Equal(got, want) {
			t.Errorf("chosen %s: compared %v, want %v", chosen, got, want)
		}
	}
}

func TestCompareChild(t *testing.T) {
	head := []string{"run", "--format", "json", "--quiet", "--out", "OUT"}
	tests := []struct {
		name    string
		o       runOptions
		want    []string
		wantEnv []string
	}{
		{
			name: "bundled server keeps the chosen profile's behaviour",
			o:    runOptions{Request: Request{Config: harness.Config{Profile: "exchange2010", TLS: harness.TLSNone}, Timeout: time.Hour}},
			want: []string{"--reference-profile", "exchange2010", "--profile", "rfc1939", "--timeout", "1h0m0s"},
		},
		{
			name: "bundled server keeps --reference-profile",
			o: runOptions{Request: Request{Config: harness.Config{Profile: "exchange2010", ReferenceProfile: "dovecot", TLS: harness.TLSNone,
				Allow: harness.Permissions{Disruptive: true}}, LabelFilter: "readonly", Timeout: time.Minute, NoObserve: true}, Quiet: false},
			want: []string{"--reference-profile", "dovecot", "--profile", "rfc1939", "--allow-disruptive", "--label-filter", "readonly", "--timeout", "1m0s"},
		},
		{
			name: "remote host, passwords by private variable",
			o: runOptions{Request: Request{Config: harness.Config{Host: "h", Port: 995, TLS: harness.TLSImplicit, InsecureSkipVerify: true, ServerName: "mail",
				CAFile: "ca.pem", User: "u", Password: password, User2: "b", Password2: password2, MailboxFixture: "alice",
				Profile: "exchange2010", Allow: harness.Permissions{Mutating: true, Slow: true}}, PasswordEnv: "PW", Password2File: "pw2", Timeout: time.Hour},
				CompareProfiles: true, Formats: []report.Format{report.HTML}},
			want: []string{"--host", "h", "--port", "995", "--tls", "--insecure-skip-verify", "--server-name", "mail", "--ca-file", "ca.pem",
				"--user", "u", "--password-env", target.ChildPasswordEnv, "--user2", "b", "--password2-env", target.ChildPassword2Env,
				"--mailbox-fixture", "alice", "--profile", "rfc1939", "--allow-mutating", "--slow", "--timeout", "1h0m0s"},
			wantEnv: []string{target.ChildPasswordEnv + "=" + password, target.ChildPassword2Env + "=" + password2},
		},
		{
			name: "starttls",
			o:    runOptions{Request: Request{Config: harness.Config{Host: "h", Port: 110, TLS: harness.TLSStartTLS, User: "u", Password: password}, Timeout: time.Hour}},
			want: []string{"--host", "h", "--port", "110", "--starttls", "--user", "u", "--password-env", target.ChildPasswordEnv,
				"--profile", "rfc1939", "--timeout", "1h0m0s"},
			wantEnv: []string{target.ChildPasswordEnv + "=" + password},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, env := compareChild(tt.o, "rfc1939", "OUT")
			// The children judge; only the main run measures parameters.
			if want := append(append(slices.Clone(head), tt.want...), "--no-observe"); !slices.Equal(got, want) {
				t.Errorf("got  %q\nwant %q", got, want)
			}
			if !slices.Equal(env, tt.wantEnv) {
				t.Errorf("env %q, want %q", env, tt.wantEnv)
			}
			for _, a := range got {
				if strings.Contains(a, password) || strings.Contains(a, password2) {
					t.Errorf("argv holds a password: %q", got)
				}
			}
		})
	}
}

func TestTargetsPassCompareProfiles(t *testing.T) {
	o := runOptions{Request: Request{Config: harness.Config{Profile: "rfc1939"}, Timeout: time.Minute}, CompareProfiles: true}
	if a, _ := childArgs(TargetEntry{Target: target.Target{Config: harness.Config{Host: "h"}}}, o, "out/h"); !slices.Contains(a, "--compare-profiles") {
		t.Errorf("a target's child does not compare profiles: %q", a)
	}
}

// TestCompareProfilesRunsChildren runs this test binary as the child
// probes (see asChild): the fake server deviates in V0001 under every
// profile but the one it behaves as.
func TestCompareProfilesRunsChildren(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	others := comparedProfiles("exchange2010")
	tests := []struct {
		name    string
		args    []string
		fail    string // the profile whose child dies
		code    int
		order   []string // of the scores, best first
		closest string
		// parallel: the children ran all at once (bundled server);
		// otherwise one after another (remote host).
		parallel bool
	}{
		{
			name: "bundled server, all at once", args: []string{"--reference-profile", "rfc1939"},
			code: ExitDeviates, order: []string{"rfc1939", "exchange2010", "dovecot", "exchange2007"}, closest: "rfc1939", parallel: true,
		},
		{
			name: "bundled server, a child fails", args: []string{"--reference-profile", "rfc1939"}, fail: "dovecot",
			code: ExitDeviates, order: []string{"rfc1939", "exchange2010", "exchange2007", "dovecot"}, closest: "rfc1939", parallel: true,
		},
		{
			name: "remote host, one at a time", args: []string{"--host", "as-exchange2010", "--user", "u", "--password-env", "PW", "--user2", "b", "--password2-env", "PW2"},
			fail: "rfc1939", code: ExitConformant, order: []string{"exchange2010", "dovecot", "exchange2007", "rfc1939"}, closest: "exchange2010",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logDir, out := t.TempDir(), t.TempDir()
			t.Setenv(envChild, "1")
			t.Setenv(envChildLog, logDir)
			t.Setenv(envChildFail, tt.fail)
			t.Setenv("PW", password)
			t.Setenv("PW2", password2)
			barrier := 0
			if tt.parallel {
				barrier = len(others)
				if tt.fail != "" {
					barrier--
				}
			}
			t.Setenv(envChildBarrier, strconv.Itoa(barrier))
			var stdout, stderr bytes.Buffer
			args := append([]string{"--profile", "exchange2010", "--compare-profiles", "--out", out, "--format", "json,md,html"}, tt.args...)
			code := Main(context.Background(), args, Env{
				Stdout: &stdout, Stderr: &stderr, Getenv: os.Getenv, Runner: fakeRunner(nil), Executable: exe, Catalog: testCat(t),
			})
			if code != tt.code {
				t.Errorf("exit %d, want %d: the run under --profile decides\n%s%s", code, tt.code, stdout.String(), stderr.String())
			}
			r, err := report.Load(filepath.Join(out, report.JSON.FileName()))
			if err != nil {
				t.Fatal(err)
			}
			checkScores(t, r, tt.order, tt.closest, tt.fail)
			if !strings.Contains(stdout.String(), "closest profile by statements: "+tt.closest) {
				t.Errorf("stdout does not name the closest profile:\n%s", stdout.String())
			}

			recs := childRecords(t, logDir)
			wantChildren := len(others)
			if tt.fail != "" {
				wantChildren--
			}
			if len(recs) != wantChildren {
				t.Fatalf("%d children recorded, want %d", len(recs), wantChildren)
			}
			for i, rec := range recs {
				checkChildArgv(t, rec, tt.args[0] == "--host")
				if tt.parallel && !rec.BarrierMet {
					t.Errorf("child %q waited in vain for the others: the children did not run at once", rec.Args)
				}
				if !tt.parallel && i > 0 && rec.Start.Before(recs[i-1].End) {
					t.Errorf("children overlap (%v < %v): against a remote host they must run one at a time", rec.Start, recs[i-1].End)
				}
			}
			for _, where := range []string{stdout.String(), stderr.String()} {
				if strings.Contains(where, password) || strings.Contains(where, password2) {
					t.Errorf("console holds a password:\n%s", where)
				}
			}
		})
	}
}

// checkScores checks the scores' order, the closest profile, the chosen
// entry and the entry of the failed child.
func checkScores(t *testing.T, r *report.Report, order []string, closest, failed string) {
	t.Helper()
	var names []string
	for _, s := range r.ProfileScores {
		names = append(names, s.Name)
		switch {
		case s.Name == failed:
			if !strings.Contains(s.Error, "simulated failure under profile "+failed) || s.Counts != nil {
				t.Errorf("failed child's entry %+v: want its error and no counts", s)
			}
		case s.Error != "":
			t.Errorf("%s: unexpected error %q", s.Name, s.Error)
		case s.Name == closest:
			if s.Deviates() != 0 || s.Conformant() != 2 || len(s.Deviating) != 0 {
				t.Errorf("closest %+v: want 2 conformant, none deviating", s)
			}
		default:
			if s.Deviates() != 1 || !slices.Equal(s.Deviating, []string{"V0001"}) {
				t.Errorf("%s %+v: want V0001 deviating", s.Name, s)
			}
		}
		if s.Chosen != (s.Name == "exchange2010") {
			t.Errorf("%s: chosen %v", s.Name, s.Chosen)
		}
	}
	if !slices.Equal(names, order) {
		t.Errorf("scores in order %v, want %v", names, order)
	}
	if r.ClosestProfile != closest || r.ClosestProfileBy != report.ClosestByStatements {
		t.Errorf("closest profile %q by %q, want %q by statements", r.ClosestProfile, r.ClosestProfileBy, closest)
	}
}

// checkChildArgv checks a child's command line: the target flags of the
// main run, the passwords by private variable only, no comparison of its
// own, and a private report directory that is gone by now.
func checkChildArgv(t *testing.T, rec childRecord, remote bool) {
	t.Helper()
	argv := strings.Join(rec.Args, " ")
	if strings.Contains(argv, password) || strings.Contains(argv, password2) {
		t.Errorf("a child's argv holds a password: %s", argv)
	}
	for _, want := range []string{"--quiet", "--no-observe", "--format json"} {
		if !strings.Contains(argv, want) {
			t.Errorf("child argv %s lacks %s", argv, want)
		}
	}
	if strings.Contains(argv, "--compare-profiles") {
		t.Errorf("a child compares profiles itself: %s", argv)
	}
	if remote {
		for _, want := range []string{"--host as-exchange2010", "--password-env " + target.ChildPasswordEnv, "--password2-env " + target.ChildPassword2Env} {
			if !strings.Contains(argv, want) {
				t.Errorf("child argv %s lacks %s", argv, want)
			}
		}
		if !rec.HadPassword {
			t.Errorf("child %s got no password in its environment", argv)
		}
	} else if !strings.Contains(argv, "--reference-profile rfc1939") {
		t.Errorf("child argv %s: the bundled server must keep behaving as rfc1939", argv)
	}
	if i := slices.Index(rec.Args, "--out"); i < 0 || i+1 == len(rec.Args) {
		t.Errorf("child argv %s has no --out", argv)
	} else if _, err := os.Stat(rec.Args[i+1]); err == nil {
		t.Errorf("the child's report directory %s is still there", rec.Args[i+1])
	}
}

// TestCompareProfilesSkippedWhenTargetDown: against a host the main run
// could not judge, no child runs and the report says why.
func TestCompareProfilesSkippedWhenTargetDown(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	logDir, out := t.TempDir(), t.TempDir()
	t.Setenv(envChild, "1")
	t.Setenv(envChildLog, logDir)
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"--host", "down", "--user", "u", "--password-env", "PW", "--compare-profiles", "--out", out, "--format", "json"}, Env{
		Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return password }, Runner: fakeRunner(nil), Executable: exe, Catalog: testCat(t),
	})
	if code != ExitUsage {
		t.Errorf("exit %d, want %d", code, ExitUsage)
	}
	r, err := report.Load(filepath.Join(out, report.JSON.FileName()))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.ProfileScores) != 0 || !slices.ContainsFunc(r.Warnings, func(w string) bool { return strings.Contains(w, "--compare-profiles: skipped") }) {
		t.Errorf("scores %+v, warnings %q", r.ProfileScores, r.Warnings)
	}
	if recs := childRecords(t, logDir); len(recs) != 0 {
		t.Errorf("%d children ran against a target that is down", len(recs))
	}
}

func TestCompareProfilesNeedsExecutable(t *testing.T) {
	r := run(t, nil, nil, "--compare-profiles", "--out", t.TempDir())
	if r.code != ExitUsage || !strings.Contains(r.stderr, "cannot find the probe executable") {
		t.Errorf("exit %d\n%s", r.code, r.stderr)
	}
}

// TestNoScoresWithoutCompareProfiles: without the flag the report holds
// nothing new but closest_profile_by and, in Markdown, a one-line hint.
func TestNoScoresWithoutCompareProfiles(t *testing.T) {
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"--out", out, "--format", "json,md,html"}, Env{
		Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }, Runner: fakeRunner(nil), Observer: fakeObserver, Catalog: testCat(t),
	})
	if code != ExitConformant {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	var top map[string]any
	data, _ := os.ReadFile(filepath.Join(out, report.JSON.FileName()))
	if err := json.Unmarshal(data, &top); err != nil {
		t.Fatal(err)
	}
	if _, ok := top["profile_scores"]; ok {
		t.Error("report.json has profile_scores without --compare-profiles")
	}
	if top["closest_profile"] != "exchange2010" || top["closest_profile_by"] != report.ClosestByParameters {
		t.Errorf("closest profile %v by %v, want exchange2010 by parameters", top["closest_profile"], top["closest_profile_by"])
	}
	md, _ := os.ReadFile(filepath.Join(out, report.Markdown.FileName()))
	html, _ := os.ReadFile(filepath.Join(out, report.HTML.FileName()))
	for name, doc := range map[string][]byte{"md": md, "html": html} {
		if bytes.Contains(doc, []byte("by statements")) {
			t.Errorf("report.%s shows a statement comparison that did not run", name)
		}
	}
	if bytes.Count(md, []byte("--compare-profiles")) != 1 {
		t.Errorf("report.md should hint at --compare-profiles once:\n%s", md)
	}
	if strings.Contains(stdout.String(), "closest profile by statements") {
		t.Errorf("stdout: %s", stdout.String())
	}
}
