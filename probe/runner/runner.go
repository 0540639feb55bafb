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

// Config is the harness's configuration of the request's target.
func Config(req cli.Request) harness.Config { return req.Harness() }

// testingT is the GinkgoTestingT of a run outside `go test`: the verdicts
// come from the report, so a failure only needs noting.
type testingT struct{ failed atomic.Bool }

func (t *testingT) Fail() { t.failed.Store(true) }

// Runner runs the suite for the probe command. With Executable (the
// probe binary) a run against a remote host shares its readonly specs
// among worker processes, one connection each (cli.Request.MaxConnections),
// and measures the server's parameters (Observe) on one of those
// connections meanwhile; without it every spec runs in this process and
// Observe measures afterwards. A Runner serves one run.
type Runner struct {
	Executable string

	// observed is the measurement the run started next to its workers;
	// nil when it started none.
	observed *observation
}

// observation is a measurement of server parameters under way.
type observation struct {
	done chan struct{}
	obs  *report.Observed
	err  error
}

// Run runs every spec serially in this process (Runner without an
// executable).
func Run(ctx context.Context, req cli.Request, p cli.Progress) ([]types.Report, error) {
	return (&Runner{}).Run(ctx, req, p)
}

// Run is a cli.Runner: it runs every spec the request's label filter and
// permissions select and returns Ginkgo's reports, one per process.
func (rn *Runner) Run(ctx context.Context, req cli.Request, p cli.Progress) ([]types.Report, error) {
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
	timeout := req.Timeout
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); timeout <= 0 || left < timeout {
			timeout = left
		}
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("no time left to run the suite: %w", context.DeadlineExceeded)
	}
	var l *lead
	if cfg.Remote() {
		l = &lead{exe: rn.Executable, workers: req.MaxConnections, cfg: cfg,
			labelFilter: req.LabelFilter, deadline: time.Now().Add(timeout)}
		if rn.Executable != "" && !cfg.Allow.Slow && !req.NoObserve {
			// Before the specs (next to the workers, when there are
			// any): the parameters then describe the maildrop before
			// a mutating spec changed it. Waits on server timers
			// (--slow) want the server to themselves, after the specs.
			l.observe = func(ctx context.Context, facts harness.Facts, awaitIdle func(context.Context) error) {
				o := &observation{done: make(chan struct{})}
				rn.observed = o
				defer close(o.done)
				o.obs, o.err = observeNextTo(ctx, req, &facts, awaitIdle)
			}
		}
		conformance.UseSchedule(l)
	}
	specEnded := registerProgress(p, waitsOf(cfg), l)
	if l != nil {
		l.specEnded = specEnded
	}
	r, err := runSuite(ctx, cfg, req.LabelFilter, timeout, nil)
	if err != nil {
		return nil, err
	}
	runs := []types.Report{ranHere(r)}
	if l != nil {
		l.mu.Lock()
		runs = append(runs, l.reports...)
		l.mu.Unlock()
	}
	return runs, nil
}

// runSuite runs the suite once in this process and returns Ginkgo's
// report; afterEach, when set, hears of every spec as it ends.
func runSuite(ctx context.Context, cfg harness.Config, labelFilter string, timeout time.Duration, afterEach func(types.SpecReport)) (types.Report, error) {
	suiteCfg := types.NewDefaultSuiteConfig()
	suiteCfg.LabelFilter = labelFilter
	// A fixed seed gives a stable order, so two reports of one server
	// compare line by line (and the workers of a run see the specs in the
	// same order). Shuffling every spec rather than only the top-level
	// containers lets Ginkgo order by spec priority: mutating specs, which
	// may change a remote maildrop, run after all others.
	suiteCfg.RandomSeed = 1
	suiteCfg.RandomizeAllSpecs = true
	suiteCfg.Timeout = timeout
	repCfg := types.ReporterConfig{NoColor: true, Succinct: true, SilenceSkips: true}

	conformance.UseConfig(cfg)
	gomega.RegisterFailHandler(conformance.FailHandler)
	if afterEach != nil {
		ginkgo.ReportAfterEach(afterEach)
	}
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
		return types.Report{}, errors.New("the suite ended without a report")
	}
	return *final, nil
}

// registerProgress adds the report nodes that feed the progress display
// and returns what counts one ended spec, for the workers' specs too (l:
// the run's schedule, nil when every spec runs here). The nodes run in
// this process between specs and the workers' specs arrive on other
// goroutines, so a mutex guards the counter.
func registerProgress(p cli.Progress, wait func(ids []string) time.Duration, l *lead) func(types.SpecReport) {
	if p == nil {
		return nil
	}
	var (
		mu    sync.Mutex
		n     int
		total int
	)
	elsewhere := func(sr types.SpecReport) bool {
		return l != nil && l.elsewhere(sr)
	}
	if ss, ok := p.(cli.SpecStarter); ok {
		ginkgo.ReportBeforeEach(func(sr types.SpecReport) {
			if sr.State.Is(types.SpecStateSkipped|types.SpecStatePending) || elsewhere(sr) {
				return // filtered out, or a worker ran it: not part of n of m
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
	ended := func(sr types.SpecReport) {
		v, _ := verdict.Of(sr.State, sr.Failure.Message)
		if v == verdict.NotRun && sr.Failure.Message == "" {
			// Left out by the label filter: not part of n of m.
			return
		}
		if sr.Failure.Message == contract.RunElsewhere {
			return // counted when its worker reported it
		}
		mu.Lock()
		n++
		e := cli.SpecEvent{N: n, Total: total}
		mu.Unlock()
		s, ids := report.SpecOf(sr)
		e.Verdict, e.IDs, e.Text, e.Reason, e.Elapsed = s.Verdict, ids, s.Text, s.Reason, sr.RunTime
		p.Spec(e)
	}
	ginkgo.ReportAfterEach(ended)
	return ended
}

// waitsOf returns, for a slow spec's requirements, the longest server
// timer the expected profile names for them (idle timers, LOGIN-DELAY):
// what a spec against a remote host waits for. The bundled server runs
// slow specs on variants with shortened timers, so there it is 0.
func waitsOf(cfg harness.Config) func(ids []string) time.Duration {
	none := func([]string) time.Duration { return 0 }
	if !cfg.Remote() || !cfg.Allow.Slow {
		// Without --slow the slow specs end "not run" at once.
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

// Observe is a cli.Observer. It returns the measurement the run made
// next to its workers when there was one, else measures now.
func (rn *Runner) Observe(ctx context.Context, req cli.Request, facts *harness.Facts) (*report.Observed, error) {
	if o := rn.observed; o != nil {
		select {
		case <-o.done:
			return o.obs, o.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return Observe(ctx, req, facts)
}

// Observe measures the server's parameters through the suite's wire
// client, on a target opened anew from the same configuration (for the
// bundled server: a fresh server started as the run's was).
func Observe(ctx context.Context, req cli.Request, facts *harness.Facts) (*report.Observed, error) {
	return observeNextTo(ctx, req, facts, nil)
}

// observeNextTo is Observe next to the run's other sessions, which
// awaitIdle waits for (nil: none).
func observeNextTo(ctx context.Context, req cli.Request, facts *harness.Facts, awaitIdle func(context.Context) error) (*report.Observed, error) {
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
	return observe.Run(ctx, observe.Options{Config: cfg, Target: target, Facts: facts, AwaitIdle: awaitIdle})
}
