package runner

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pop3conformance/pop3conformance/model/catalog"
	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/probe/cli"
	"github.com/pop3conformance/pop3conformance/probe/report"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

func withSessions(c harness.Config, n int) harness.Config {
	c.Sessions = n
	return c
}

// TestConfig: the suite gets the request's own harness.Config, with the
// defaults of a run that names no profile or TLS mode.
func TestConfig(t *testing.T) {
	remote := harness.Config{Host: "h", Port: 995, TLS: harness.TLSImplicit, User: "u", Password: "p", ServerName: "s", CAFile: "ca.pem",
		InsecureSkipVerify: true, Allow: harness.Permissions{Mutating: true, Slow: true}, MailboxFixture: "alice", Profile: "rfc1939"}
	tests := []struct {
		name string
		req  cli.Request
		want harness.Config
	}{
		{"bundled", cli.Request{Config: harness.Config{Profile: "rfc1939", ReferenceProfile: "exchange2010"}},
			harness.Config{TLS: harness.TLSNone, Profile: "rfc1939", ReferenceProfile: "exchange2010", Sessions: 4}},
		{"defaults", cli.Request{}, harness.Config{TLS: harness.TLSNone, Profile: harness.DefaultProfile, Sessions: 4}},
		{"remote", cli.Request{Config: remote, PasswordEnv: "PW", LabelFilter: "readonly", MaxConnections: 2}, withSessions(remote, 2)},
		{"one session", cli.Request{Config: remote, MaxConnections: 1}, withSessions(remote, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Config(tt.req); got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestPreflightNamesTheProblem(t *testing.T) {
	// Port 1 on loopback refuses connections.
	_, err := Run(context.Background(), cli.Request{Config: harness.Config{Host: "127.0.0.1", Port: 1, TLS: harness.TLSNone, User: "u", Password: "p", Profile: "exchange2010"}, Timeout: time.Minute}, nil)
	// It names the settings to check; the console turns them into
	// flags (cli's TestFlagHints).
	if !errors.Is(err, ErrPreflight) || !strings.Contains(err.Error(), "cannot connect") || !strings.Contains(err.Error(), harness.EnvPort) {
		t.Errorf("err %v, want a preflight error that names the settings to check", err)
	}
}

type recorder struct {
	mu     sync.Mutex
	total  int
	events []cli.SpecEvent
	starts []cli.SpecStart
}

func (r *recorder) SpecStart(s cli.SpecStart) {
	r.mu.Lock()
	r.starts = append(r.starts, s)
	r.mu.Unlock()
}

func (r *recorder) Start(n int) { r.mu.Lock(); r.total = n; r.mu.Unlock() }
func (r *recorder) Spec(e cli.SpecEvent) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

// TestRunBundled is this binary's one suite run (Ginkgo allows one per
// process): a few statements against the bundled reference server.
func TestRunBundled(t *testing.T) {
	var rec recorder
	runs, err := Run(context.Background(), cli.Request{Config: harness.Config{Profile: "exchange2010"}, LabelFilter: "req: containsAny {V0001, V0008}", Timeout: 2 * time.Minute}, &rec)
	if err != nil {
		t.Fatal(err)
	}
	if rec.total == 0 || len(rec.events) != rec.total {
		t.Errorf("progress: %d events of %d announced", len(rec.events), rec.total)
	}
	if len(rec.starts) != len(rec.events) {
		t.Errorf("%d specs started, %d finished", len(rec.starts), len(rec.events))
	}
	for i, s := range rec.starts {
		if s.N != i+1 || len(s.IDs) == 0 || s.Timeout <= 0 || s.Wait != 0 {
			t.Errorf("start %d: %+v", i, s)
		}
	}
	for i, e := range rec.events {
		if e.N != i+1 || len(e.IDs) == 0 {
			t.Errorf("event %d: %+v", i, e)
		}
	}
	r := report.Build(runs, catalog.MustLoad(), report.Input{})
	if r.SuiteError != "" {
		t.Fatal(r.SuiteError)
	}
	for _, st := range r.Statements {
		switch st.ID {
		case "V0001", "V0008":
			if st.Verdict != verdict.Conformant {
				t.Errorf("%s: %s %s", st.ID, st.Verdict, st.Reason)
			}
		}
	}
	if _, err := Run(context.Background(), cli.Request{Config: harness.Config{Profile: "exchange2010"}, Timeout: time.Minute}, nil); !errors.Is(err, ErrAlreadyRan) {
		t.Errorf("second run: %v, want ErrAlreadyRan", err)
	}
}

func TestWaitsOf(t *testing.T) {
	remote := harness.Config{Host: "h", Port: 110, Profile: "exchange2010", Allow: harness.Permissions{Slow: true}}
	fast := remote
	fast.Allow.Slow = false
	tests := []struct {
		name string
		cfg  harness.Config
		ids  []string
		want time.Duration
	}{
		{"idle timers on a remote host", remote, []string{"V0002"}, 1800 * time.Second},
		{"slow specs not allowed: they end at once", fast, []string{"V0002"}, 0},
		{"no timer key", remote, []string{"V0008"}, 0},
		{"bundled server uses short timers", harness.Config{Profile: "exchange2010"}, []string{"V0002"}, 0},
	}
	for _, tt := range tests {
		if got := waitsOf(tt.cfg)(tt.ids); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
