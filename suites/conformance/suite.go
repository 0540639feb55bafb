package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"

	. "github.com/onsi/ginkgo/v2"

	"github.com/pop3conformance/pop3conformance/model/contract"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// The target lives for one suite run in one process. Ginkgo runs the specs
// of a process one after another, so a single value suffices; the mutex
// only guards the hand-over between setup and specs.
var (
	targetMu  sync.Mutex
	target    *harness.Target
	configSet *harness.Config
)

// UseConfig makes the next suite run test cfg instead of reading the
// POP3_* environment. The probe calls it before RunSpecs.
func UseConfig(cfg harness.Config) {
	targetMu.Lock()
	defer targetMu.Unlock()
	c := cfg
	configSet = &c
}

func currentTarget() *harness.Target {
	targetMu.Lock()
	defer targetMu.Unlock()
	if target == nil {
		Fail("the suite has no target: BeforeSuite did not run or failed")
	}
	return target
}

// Each process starts its own target: with the bundled server that is a
// server of its own, so `ginkgo -p` processes never share a maildrop.
var _ = BeforeSuite(func(ctx SpecContext) {
	targetMu.Lock()
	cfg := configSet
	targetMu.Unlock()
	if cfg == nil {
		c, err := harness.ConfigFromEnv(os.Getenv)
		if err != nil {
			AbortSuite(fmt.Sprintf("target configuration: %v", err))
		}
		cfg = &c
	}
	t, err := harness.Open(context.WithoutCancel(ctx), *cfg)
	if err != nil {
		AbortSuite(fmt.Sprintf("target: %v", err))
	}
	targetMu.Lock()
	target = t
	targetMu.Unlock()
	AddReportEntry(contract.EntryTarget, t.Name(), ReportEntryVisibilityNever)
	// One clear message, and no spec run, for a target that cannot be
	// reached or logged in to (the probe checked before starting).
	if !cfg.Preflighted {
		if err := t.Preflight(ctx); err != nil {
			AbortSuite(err.Error())
		}
	}
	AddReportEntry(contract.EntryProfile, t.Profile.Name, ReportEntryVisibilityNever)
	if cfg.Facts != nil {
		// A worker of a probe run: the run's first process measured the
		// facts and reports them, and the certificate.
		t.UseFacts(*cfg.Facts)
		beginSchedule(ctx, t)
		return
	}
	// The certificate goes into the report's target as JSON text: a
	// string entry survives Ginkgo's JSON report unchanged.
	cert, err := t.Certificate(ctx)
	if err != nil {
		cert = &contract.Certificate{Error: err.Error()}
	}
	if data, jerr := json.Marshal(cert); jerr == nil && !errors.Is(err, harness.ErrNoTLS) {
		AddReportEntry(contract.EntryCertificate, string(data), ReportEntryVisibilityNever)
	}
	measureFacts(ctx, t)
	beginSchedule(ctx, t)
})

// beginSchedule lets a probe run's schedule start its other processes
// (or wait for them) before this process runs its first spec.
func beginSchedule(ctx SpecContext, t *harness.Target) {
	if s := currentSchedule(); s != nil {
		if err := s.Begin(ctx, t); err != nil {
			AbortSuite(err.Error())
		}
	}
}

// measureFacts measures the target once, before any spec, so that the
// specs' helpers know what the server answers, when it closes and whether
// its maildrop holds the declared fixture. What cannot be measured stays
// unknown; the specs then go by the profile.
func measureFacts(ctx SpecContext, t *harness.Target) {
	if err := t.MeasureFacts(ctx); err != nil {
		GinkgoWriter.Printf("measuring the target: %v\n", err)
	}
	f := t.Facts()
	if data, err := json.Marshal(f); err == nil {
		AddReportEntry(contract.EntryFacts, string(data), ReportEntryVisibilityNever)
	}
	AddReportEntry(contract.EntryFactsSummary, f.Summary(), ReportEntryVisibilityNever)
	AddReportEntry(contract.EntryFactsTranscript, f.Transcript, ReportEntryVisibilityNever)
}

var _ = AfterSuite(func() {
	targetMu.Lock()
	t := target
	target = nil
	targetMu.Unlock()
	if s := currentSchedule(); s != nil && t != nil {
		s.End(t)
	}
	if t != nil {
		// The command classes the run sent (and the guard refused) go
		// into the report as JSON text, like the certificate.
		if data, err := json.Marshal(t.Recorder().Commands()); err == nil {
			AddReportEntry(contract.EntryCommands, string(data), ReportEntryVisibilityNever)
		}
		if err := t.Close(); err != nil {
			GinkgoWriter.Printf("closing the target: %v\n", err)
		}
	}
})

// Every spec's connections are closed and their transcripts attached to
// the spec as evidence, passwords and SASL payloads already redacted.
var _ = AfterEach(func() {
	targetMu.Lock()
	t := target
	targetMu.Unlock()
	if t == nil {
		return
	}
	endSpec(t)
	if tr := t.Recorder().EndSpec(!CurrentSpecReport().Failed()); tr != "" {
		AddReportEntry(contract.EntryTranscript, tr, ReportEntryVisibilityFailureOrVerbose)
	}
})
