package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/probe/report"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// TestProbeRemoteWithMutating audits the reference server the way a user
// audits a live host: over TCP as a remote target, with every class
// allowed and the maildrop declared to hold the alice fixture. The
// server behaves exactly as the profile says, so every statement the
// probe can judge must be conformant. The mutating specs delete mail
// for real here; the specs that compare messages with the fixture must
// run before them (or end inconclusive after them), never call the
// server deviating because the probe itself changed the maildrop.
func TestProbeRemoteWithMutating(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole suite against a remote target")
	}
	prof, err := profile.Load("exchange2010")
	if err != nil {
		t.Fatal(err)
	}
	// Short timers, written into the profile both sides use, so the
	// timer specs finish in seconds.
	prof.Timers.Unauthenticated = profile.Duration(2 * time.Second)
	prof.Timers.Authenticated = profile.Duration(3 * time.Second)
	profPath := profileFile(t, prof, "short-timers")

	ctx := context.Background()
	srv, err := harness.Open(ctx, harness.Config{Profile: profPath})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	host, port, err := net.SplitHostPort(srv.PlainAddr())
	if err != nil {
		t.Fatal(err)
	}
	before := countMessages(t, srv, "alice")

	probe := func(args ...string) (*report.Report, int) {
		out := t.TempDir()
		cmd := exec.Command(os.Args[0], append([]string{"--host", host, "--port", port,
			"--user", "alice", "--password-env", "PROBE_TEST_PW", "--user2", "bob", "--password2-env", "PROBE_TEST_PW2",
			"--mailbox-fixture", "alice", "--profile", profPath,
			"--format", "json", "--no-observe", "--quiet", "--out", out, "--timeout", "5m"}, args...)...)
		cmd.Env = append(os.Environ(), envAsProbe+"=1", "PROBE_TEST_PW=wonderland", "PROBE_TEST_PW2=two words")
		start := time.Now()
		console, _ := cmd.CombinedOutput()
		t.Logf("probe %v took %v", args, time.Since(start).Round(time.Millisecond))
		rep, err := report.Load(filepath.Join(out, report.JSON.FileName()))
		if err != nil {
			t.Fatalf("%v\n%s", err, console)
		}
		return rep, cmd.ProcessState.ExitCode()
	}

	// Without trusting the server's self-signed certificate, the STLS
	// specs cannot judge TLS: inconclusive, saying how to trust it, not
	// a deviation of the server.
	rep, code := probe("--label-filter", "req: containsAny {RFC2595-4-stls-handshake, RFC2595-4-stls-inject, RFC5034-4-plain-required}")
	if code != 0 {
		t.Errorf("untrusted certificate: exit %d, want 0", code)
	}
	for _, st := range rep.Statements {
		switch st.ID {
		case "RFC2595-4-stls-handshake", "RFC2595-4-stls-inject", "RFC5034-4-plain-required":
			if st.Verdict != verdict.Inconclusive || !strings.Contains(st.Reason, "--insecure-skip-verify") {
				t.Errorf("untrusted certificate: %s is %s (%s), want inconclusive naming --ca-file/--insecure-skip-verify", st.ID, st.Verdict, st.Reason)
			}
		}
	}

	// Over STLS the report's target names the certificate the server
	// presented, and that it was not verified.
	rep, code = probe("--starttls", "--insecure-skip-verify", "--label-filter", "req: containsAny {RFC1939-5-stat-format}")
	if c := rep.Target.Certificate; code != 0 || c == nil || c.Error != "" || c.Verified || !strings.Contains(c.Subject, "pop3conformance") {
		t.Errorf("STLS run: exit %d, certificate %+v; want exit 0 and the reference server's unverified certificate", code, c)
	}

	rep, code = probe("--insecure-skip-verify", "--allow-mutating", "--allow-disruptive", "--slow")
	if code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
	for _, st := range rep.Statements {
		if st.Verdict == verdict.Deviates || st.Verdict == verdict.Error {
			t.Errorf("%s %s: %s", st.ID, st.Verdict, st.Reason)
		}
	}

	// The mutating specs ran and removed mail...
	after := countMessages(t, srv, "alice")
	if after >= before {
		t.Errorf("alice holds %d messages after the run, %d before: the mutating specs removed nothing, so this test proves nothing", after, before)
	}
	// ...and the specs that compare content with the fixture still ran
	// on the untouched maildrop.
	got := map[string]verdict.Verdict{}
	for _, st := range rep.Statements {
		got[st.ID] = st.Verdict
	}
	for _, id := range []string{"C0009", "RFC1939-3-byte-stuffing", "RFC1939-5-list-all", "RFC1939-11-rfc822", "RFC1939-6-quit-update"} {
		if got[id] != verdict.Conformant {
			t.Errorf("%s is %s, want conformant (judged against the fixture before any mutating spec ran)", id, got[id])
		}
	}
	t.Logf("alice: %d messages before, %d after; %s", before, after, strconv.Quote(rep.Line()))
}

func countMessages(t *testing.T, srv *harness.Target, user string) int {
	t.Helper()
	uids, err := srv.Reference().Control.UIDs(user)
	if err != nil {
		t.Fatal(err)
	}
	return len(uids)
}
