// Package pop3probe runs the POP3 conformance suite from a server
// implementer's own `go test`: start your server, call Require (or Run)
// with its address and accounts, and the test fails on every deviation.
//
// Ginkgo allows one suite run per process, so call Run once per test
// binary, and not from a binary that runs Ginkgo suites of its own.
package pop3probe

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pop3conformance/pop3conformance/model/catalog"
	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/probe/cli"
	"github.com/pop3conformance/pop3conformance/probe/report"
	"github.com/pop3conformance/pop3conformance/probe/runner"
	"github.com/pop3conformance/pop3conformance/probe/target"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// Options say which server to audit and what may be done to it.
type Options struct {
	// Addr is the server's host:port; empty audits the bundled reference
	// server.
	Addr string
	// TLS is none (default), starttls or implicit.
	TLS                string
	InsecureSkipVerify bool
	ServerName         string
	CAFile             string
	User, Password     string
	// User2 and Password2 are a second account, for the specs that need
	// two; optional.
	User2, Password2 string
	// Profile is a bundled profile name or a YAML path; default
	// profile.Default (exchange2010).
	Profile string
	// MailboxFixture declares that User's maildrop holds exactly that
	// fixture account's mail.
	MailboxFixture string
	// AllowReversible lets specs mark mail deleted and undo it (RSET, a
	// close without QUIT); AllowMutating implies it.
	AllowReversible                      bool
	AllowMutating, AllowDisruptive, Slow bool
	// LabelFilter is a Ginkgo label filter such as "!slow".
	LabelFilter string
	// Timeout bounds the run; default one hour.
	Timeout time.Duration
	// Progress, when set, hears about every finished spec.
	Progress func(cli.SpecEvent)
	// Observe measures the server's parameters after the specs (the
	// command length by bisection, separators, CAPA, sizes, UIDs, ...)
	// into the report's Observed and compares them with the profiles.
	// It opens a few dozen more connections.
	Observe bool
}

// target is the one place Options become the probe's target.
func (o Options) target() (target.Target, error) {
	t := target.Target{
		Config: harness.Config{
			TLS: harness.TLSMode(o.TLS), InsecureSkipVerify: o.InsecureSkipVerify, ServerName: o.ServerName, CAFile: o.CAFile,
			User: o.User, Password: o.Password, User2: o.User2, Password2: o.Password2,
			Profile: o.Profile, MailboxFixture: o.MailboxFixture,
			Allow: harness.Permissions{Reversible: o.AllowReversible, Mutating: o.AllowMutating, Disruptive: o.AllowDisruptive, Slow: o.Slow},
		},
		LabelFilter: o.LabelFilter, Timeout: o.Timeout,
	}
	if o.Addr != "" {
		host, port, err := net.SplitHostPort(o.Addr)
		if err != nil {
			return t, fmt.Errorf("pop3probe: Addr %q: %w", o.Addr, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return t, fmt.Errorf("pop3probe: Addr %q: port: %w", o.Addr, err)
		}
		t.Host, t.Port = host, p
	}
	t.SetDefaults()
	return t, nil
}

type progress func(cli.SpecEvent)

func (progress) Start(int)              {}
func (p progress) Spec(e cli.SpecEvent) { p(e) }

// Run runs the suite against the server and returns the conformance
// report. An error means the suite could not judge the server at all.
func Run(ctx context.Context, o Options) (*report.Report, error) {
	req, err := o.target()
	if err != nil {
		return nil, err
	}
	cat, err := catalog.Load()
	if err != nil {
		return nil, fmt.Errorf("pop3probe: %w", err)
	}
	var p cli.Progress = progress(func(cli.SpecEvent) {})
	if o.Progress != nil {
		p = progress(o.Progress)
	}
	runs, err := runner.Run(ctx, req, p)
	if err != nil {
		return nil, fmt.Errorf("pop3probe: %w", err)
	}
	r := report.Build(runs, cat, report.Input{
		Tool:    report.Tool{Name: "pop3conformance pop3probe", Version: cli.Version()},
		Target:  req.Report(),
		Profile: req.Profile,
	})
	if r.SuiteError != "" {
		report.Secrets{o.Password, o.Password2}.Scrub(r)
		return r, fmt.Errorf("pop3probe: the suite could not judge the server: %s", r.SuiteError)
	}
	if o.Observe {
		obs, err := runner.Observe(ctx, req, r.Facts)
		if err != nil {
			r.Warnings = append(r.Warnings, "measuring server parameters: "+err.Error())
		} else {
			r.SetObserved(obs)
		}
	}
	report.Secrets{o.Password, o.Password2}.Scrub(r)
	return r, nil
}

// Require runs the suite and fails t with one line per deviating
// statement, its failure messages and transcripts logged as evidence.
func Require(t testing.TB, o Options) *report.Report {
	t.Helper()
	ctx := context.Background()
	if dl, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if d, ok := dl.Deadline(); ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, d.Add(-5*time.Second))
			defer cancel()
		}
	}
	r, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range r.Statements {
		if st.Verdict != verdict.Deviates && st.Verdict != verdict.Error {
			continue
		}
		var ev []string
		for _, s := range st.Specs {
			if s.Verdict == verdict.Deviates || s.Verdict == verdict.Error {
				ev = append(ev, fmt.Sprintf("  %s: %s\n%s", s.Text, s.Reason, s.Transcript))
			}
		}
		t.Errorf("%s (%s §%s) %s: %s\n%s", st.ID, st.Source, st.Section, st.Verdict, st.Summary, strings.Join(ev, "\n"))
	}
	t.Log(r.Line())
	return r
}
