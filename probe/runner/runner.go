// Package runner runs the conformance specs of suites/conformance in this
// process, the way `ginkgo ./suites/conformance` would, and hands back
// Ginkgo's reports. Ginkgo allows one RunSpecs per process, so Run works
// once per process.
package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/formatter"
	"github.com/onsi/ginkgo/v2/types"
	"github.com/onsi/gomega"

	"github.com/pop3conformance/pop3conformance/model/catalog"
	"github.com/pop3conformance/pop3conformance/model/contract"
	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/probe/cli"
	"github.com/pop3conformance/pop3conformance/probe/observe"
	"github.com/pop3conformance/pop3conformance/probe/report"
	"github.com/pop3conformance/pop3conformance/suites/conformance"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// ran guards Ginkgo's own process-wide rule: a second RunSpecs would exit
// the process instead of returning an error.
var ran atomic.Bool

// ErrAlreadyRan is returned by a second Run in one process.
var ErrAlreadyRan = errors.New("the suite already ran in this process (Ginkgo allows one run per process; start another process)")

// Config maps a probe request onto the harness's target configuration.
func Config(req cli.Request) harness.Config {
	tls := harness.TLSMode(req.TLS)
	if tls == "" {
		tls = harness.TLSNone
	}
	return harness.Config{
		Host:               req.Host,
		Port:               req.Port,
		TLS:                tls,
		InsecureSkipVerify: req.InsecureSkipVerify,
		ServerName:         req.ServerName,
		CAFile:             req.CAFile,
		User:               req.User,
		Password:           req.Password,
		User2:              req.User2,
		Password2:          req.Password2,
		Profile:            req.Profile,
		ReferenceProfile:   req.ReferenceProfile,
		MailboxFixture:     req.MailboxFixture,
		Allow: harness.Permissions{
			Reversible: req.AllowReversible,
			Mutating:   req.AllowMutating,
			Disruptive: req.AllowDisruptive,
			Slow:       req.AllowSlow,
		},
	}
}

// testingT is the GinkgoTestingT of a run outside `go test`: the verdicts
// come from the report, so a failure only needs noting.
type testingT struct{ failed atomic.Bool }

func (t *testingT) Fail() { t.failed.Store(true) }

// Run is a cli.Runner: it runs every spec the request's label filter and
// permissions select, serially, and returns Ginkgo's reports.
func Run(ctx context.Context, req cli.Request, p cli.Progress) ([]types.Report, error) {
	cfg := Config(req)
	if cfg.Profile == "" {
		cfg.Profile = harness.DefaultProfile
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("target configuration: %w", err)
	}
	if cfg.Remote() {
		if err := preflight(ctx, cfg); err != nil {
			return nil, err
		}
		cfg.Preflighted = true
	}
	if !ran.CompareAndSwap(false, true) {
		return nil, ErrAlreadyRan
	}
	suiteCfg := types.NewDefaultSuiteConfig()
	suiteCfg.LabelFilter = req.LabelFilter
	// A fixed seed gives a stable order, so two reports of one server
	// compare line by line. Shuffling every spec rather than only the
	// top-level containers lets Ginkgo order by spec priority: mutating
	// specs, which may change a remote maildrop, run after all others.
	suiteCfg.RandomSeed = 1
	suiteCfg.RandomizeAllSpecs = true
	suiteCfg.Timeout = req.Timeout
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); suiteCfg.Timeout <= 0 || left < suiteCfg.Timeout {
			suiteCfg.Timeout = left
		}
	}
	if suiteCfg.Timeout <= 0 {
		return nil, fmt.Errorf("no time left to run the suite: %w", context.DeadlineExceeded)
	}
	repCfg := types.ReporterConfig{NoColor: true, Succinct: true, SilenceSkips: true}

	conformance.UseConfig(cfg)
	gomega.RegisterFailHandler(conformance.FailHandler)
	registerProgress(p, waitsOf(cfg))
	// Ginkgo's console reporter would print failures, transcripts
	// included, to stdout; the probe prints its own lines and writes the
	// evidence into the scrubbed report instead.
	formatter.ColorableStdOut = io.Discard

	// The report stays in memory: written to disk it would hold the
	// transcripts before the report package scrubs them.
	var (
		mu    sync.Mutex
		final *types.Report
	)
	ginkgo.ReportAfterSuite("probe report", func(r types.Report) {
		mu.Lock()
		final = &r
		mu.Unlock()
	})

	t := &testingT{}
	ginkgo.RunSpecs(t, "POP3 conformance", suiteCfg, repCfg)
	mu.Lock()
	defer mu.Unlock()
	if final == nil {
		return nil, errors.New("the suite ended without a report")
	}
	return []types.Report{*final}, nil
}

// registerProgress adds the report nodes that feed the progress display.
// They run in this process between specs, so the counter needs no more
// than a mutex against the progress display's own goroutines.
func registerProgress(p cli.Progress, wait func(ids []string) time.Duration) {
	if p == nil {
		return
	}
	var (
		mu    sync.Mutex
		n     int
		total int
	)
	if ss, ok := p.(cli.SpecStarter); ok {
		ginkgo.ReportBeforeEach(func(sr types.SpecReport) {
			if sr.State.Is(types.SpecStateSkipped | types.SpecStatePending) {
				return // filtered out: not part of n of m
			}
			_, ids := report.SpecOf(sr)
			slow := contract.Has(sr.Labels(), contract.Slow)
			timeout := contract.TimeoutOf(sr.Labels())
			mu.Lock()
			e := cli.SpecStart{N: n + 1, Total: total, IDs: ids, Text: sr.FullText(), Slow: slow, Timeout: timeout}
			mu.Unlock()
			if slow {
				e.Wait = wait(ids)
			}
			ss.SpecStart(e)
		})
	}
	ginkgo.ReportBeforeSuite(func(r types.Report) {
		mu.Lock()
		total = r.PreRunStats.SpecsThatWillRun
		mu.Unlock()
		p.Start(total)
	})
	ginkgo.ReportAfterEach(func(sr types.SpecReport) {
		v, _ := verdict.Of(sr.State, sr.Failure.Message)
		if v == verdict.NotRun && sr.Failure.Message == "" {
			// Left out by the label filter: not part of n of m.
			return
		}
		mu.Lock()
		n++
		e := cli.SpecEvent{N: n, Total: total}
		mu.Unlock()
		s, ids := report.SpecOf(sr)
		e.Verdict, e.IDs, e.Text, e.Reason, e.Elapsed = s.Verdict, ids, s.Text, s.Reason, sr.RunTime
		p.Spec(e)
	})
}

// waitsOf returns, for a slow spec's requirements, the longest server
// timer the expected profile names for them (idle timers, LOGIN-DELAY):
// what a spec against a remote host waits for. The bundled server runs
// slow specs on variants with shortened timers, so there it is 0.
func waitsOf(cfg harness.Config) func(ids []string) time.Duration {
	none := func([]string) time.Duration { return 0 }
	if !cfg.Remote() {
		return none
	}
	prof, err := profile.Load(cfg.Profile)
	if err != nil {
		return none
	}
	cat, err := catalog.Load()
	if err != nil {
		return none
	}
	return func(ids []string) time.Duration {
		var d time.Duration
		for _, id := range ids {
			req, ok := cat.Lookup(id)
			if !ok {
				continue
			}
			for _, k := range req.ProfileKeys {
				d = max(d, timerOf(prof, k))
			}
		}
		return d
	}
}

func timerOf(p *profile.Profile, key string) time.Duration {
	switch key {
	case "timers.unauthenticated":
		return p.Timers.Unauthenticated.D()
	case "timers.authenticated":
		return p.Timers.Authenticated.D()
	case "login_delay":
		return p.LoginDelay.D()
	case "failed_login_delay":
		return p.FailedLoginDelay.D()
	}
	return 0
}

// Observe is a cli.Observer: it measures the server's parameters through
// the suite's wire client, on a target opened anew from the same
// configuration (for the bundled server: a fresh server started as the
// run's was).
func Observe(ctx context.Context, req cli.Request, facts *harness.Facts) (*report.Observed, error) {
	cfg := Config(req)
	if cfg.Profile == "" {
		cfg.Profile = harness.DefaultProfile
	}
	target := "the bundled reference server"
	if cfg.Remote() {
		target = cfg.Addr()
	}
	// The measurement's connections pass the same wire guard (a DELE or a
	// failed login of the account is refused there too), and its lines
	// are counted into the report's "commands" (Observed.Commands).
	return observe.Run(ctx, observe.Options{Config: cfg, Target: target, Facts: facts})
}
