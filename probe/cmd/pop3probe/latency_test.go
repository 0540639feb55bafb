package main

import (
	"cmp"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pop3conformance/pop3conformance/internal/netsim"
	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/probe/report"
	"github.com/pop3conformance/pop3conformance/reference-server/embed"
)

// netDelay is the test's simulated network, each way: small so the test
// stays quick, but the code path of any distance.
const netDelay = 3 * time.Millisecond

// TestSameVerdictsAcrossNetwork audits two fresh reference servers as
// remote hosts, one on loopback with one session at a time and one
// behind a latency proxy with the default --max-connections, and demands
// the same judgement from both: every statement's verdict, the values
// expected and observed, and observed-profile.yaml. Waiting less
// somewhere for the sake of speed, or sharing the specs among sessions,
// must never change what the probe concludes about a server; only the
// time may differ.
func TestSameVerdictsAcrossNetwork(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the probe four times against remote targets")
	}
	for _, mode := range []struct {
		name string
		args []string
	}{
		{"readonly", nil},
		{"mutating+disruptive", []string{"--allow-mutating", "--allow-disruptive"}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			near := auditOnce(t, refServer{}, 0, append([]string{"--max-connections", "1"}, mode.args...))
			far := auditOnce(t, refServer{}, netDelay, mode.args)
			compareAudits(t, near, far)
		})
	}
}

// TestParallelRunFallsBack audits servers that do not let a run hold
// several sessions at once: one that locks the maildrop (RFC 1939
// section 8, the rfc1939 profile) and one that refuses a third
// connection with -ERR [SYS/TEMP]. With --max-connections 4 the probe
// must conclude what it concludes with one session at a time: fewer
// sessions, never a deviation.
func TestParallelRunFallsBack(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the probe four times against remote targets")
	}
	for _, tc := range []struct {
		name     string
		srv      refServer
		args     []string
		sessions string // what the report says of the sessions
	}{
		{"maildrop lock", refServer{profile: "rfc1939"}, []string{"--profile", "rfc1939"}, "one at a time: a second session of the account was refused: -ERR [IN-USE]"},
		{"three connections at most", refServer{maxConnections: 3}, nil, "readonly specs on up to 4 at once"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			one := auditOnce(t, tc.srv, 0, append([]string{"--max-connections", "1"}, tc.args...))
			four := auditOnce(t, tc.srv, 0, append([]string{"--max-connections", "4"}, tc.args...))
			compareAudits(t, one, four)
			if got := four.rep.Commands.Sessions; !strings.HasPrefix(got, tc.sessions) {
				t.Errorf("sessions: %q, want it to start with %q", got, tc.sessions)
			}
		})
	}
}

// refServer is how a test's reference server differs from exchange2010.
type refServer struct {
	profile        string
	maxConnections int
}

// audit is what one probe run concluded.
type audit struct {
	rep      *report.Report
	observed []byte // observed-profile.yaml
	took     time.Duration
}

func auditOnce(t *testing.T, s refServer, oneWay time.Duration, args []string) audit {
	t.Helper()
	prof, err := profile.Load(cmp.Or(s.profile, profile.Default))
	if err != nil {
		t.Fatal(err)
	}
	srv := embed.StartTest(t, embed.Options{Profile: prof, Plain: embed.Loopback, MaxConnections: s.maxConnections})
	addr := srv.Plain
	if oneWay > 0 {
		px, err := netsim.Start(addr, netsim.Options{OneWay: oneWay})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { px.Close() })
		addr = px.Addr()
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	cmd := exec.Command(os.Args[0], append([]string{"--host", host, "--port", port,
		"--user", "alice", "--password-env", "PROBE_TEST_PW", "--user2", "bob", "--password2-env", "PROBE_TEST_PW2",
		"--mailbox-fixture", "alice", "--insecure-skip-verify",
		"--format", "json", "--quiet", "--out", out, "--timeout", "5m"}, args...)...)
	cmd.Env = append(os.Environ(), envAsProbe+"=1", "PROBE_TEST_PW=wonderland", "PROBE_TEST_PW2=two words")
	start := time.Now()
	console, _ := cmd.CombinedOutput()
	a := audit{took: time.Since(start)}
	if a.rep, err = report.Load(filepath.Join(out, report.JSON.FileName())); err != nil {
		t.Fatalf("%v\n%s", err, console)
	}
	if a.observed, err = os.ReadFile(filepath.Join(out, "observed-profile.yaml")); err != nil {
		t.Fatalf("%v\n%s", err, console)
	}
	t.Logf("%v each way, %q: %v, %s", oneWay, args, a.took.Round(time.Millisecond), a.rep.Commands.TrafficText())
	return a
}

var apopStamp = regexp.MustCompile(`<[^<>]*@[^<>]*>`)

// judged is the part of a statement that must not depend on the network.
type judged struct {
	Verdict            string
	Expected, Observed map[string]any
}

func compareAudits(t *testing.T, near, far audit) {
	t.Helper()
	verdicts := func(r *report.Report) map[string]judged {
		m := map[string]judged{}
		for _, st := range r.Statements {
			m[st.ID] = judged{string(st.Verdict), st.Expected, st.Observed}
		}
		return m
	}
	a, b := verdicts(near.rep), verdicts(far.rep)
	if len(a) == 0 {
		t.Fatal("the loopback run judged no statement")
	}
	for id, j := range a {
		if k, ok := b[id]; !ok {
			t.Errorf("%s: judged on loopback only", id)
		} else if !reflect.DeepEqual(j, k) {
			t.Errorf("%s: loopback %+v, across the network %+v", id, j, k)
		}
	}
	for id := range b {
		if _, ok := a[id]; !ok {
			t.Errorf("%s: judged across the network only", id)
		}
	}
	a1, b1 := strings.Split(string(near.observed), "\n"), strings.Split(string(far.observed), "\n")
	if len(a1) != len(b1) {
		t.Errorf("observed-profile.yaml: %d lines on loopback, %d across the network:\n%s\n%s", len(a1), len(b1), near.observed, far.observed)
	}
	for i := range min(len(a1), len(b1)) {
		// The description names the address audited, which differs.
		if a1[i] != b1[i] && !strings.Contains(a1[i], "description: Measured by the pop3conformance probe against") {
			t.Errorf("observed-profile.yaml line %d: loopback %q, across the network %q", i+1, a1[i], b1[i])
		}
	}
	// An APOP greeting's timestamp differs on every connection.
	for _, r := range []*report.Report{near.rep, far.rep} {
		if g, ok := r.Observed["greeting_line"].(string); ok {
			r.Observed["greeting_line"] = apopStamp.ReplaceAllString(g, "<stamp>")
		}
	}
	if !reflect.DeepEqual(near.rep.Observed, far.rep.Observed) {
		t.Errorf("measured parameters differ:\nloopback: %v\nacross the network: %v", near.rep.Observed, far.rep.Observed)
	}
}
