// Package verdict names how a requirement ended and maps Ginkgo's spec
// states onto those names. Specs end inconclusive, not applicable, not
// observable or not run through Skip with a fixed prefix, so the reason
// survives in every Ginkgo report format (JUnit included) and the probe
// can recover the verdict from a JSON report alone.
package verdict

import (
	"fmt"
	"strings"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"

	"github.com/pop3conformance/pop3conformance/model/contract"
)

// Verdict is the outcome of a spec or a requirement.
type Verdict string

const (
	Conformant    Verdict = "conformant"
	Deviates      Verdict = "deviates"
	NotApplicable Verdict = "not-applicable"
	Inconclusive  Verdict = "inconclusive"
	NotObservable Verdict = "not-observable"
	NotRun        Verdict = "not-run"
	// Error means the suite could not judge: the harness broke or the spec
	// was interrupted.
	Error Verdict = "error"
)

// Skip message prefixes, one per skipping verdict.
const (
	prefixNotApplicable = "not applicable: "
	prefixInconclusive  = "inconclusive: "
	prefixNotObservable = "not observable: "
	prefixNotRun        = "needs permission: "
)

// SkipNotApplicable ends the spec: the rule does not apply to this server
// (the profile or the server's capabilities make it moot).
func SkipNotApplicable(format string, args ...any) {
	ginkgo.Skip(prefixNotApplicable+fmt.Sprintf(format, args...), 1)
}

// SkipInconclusive ends the spec: the target lacks what the check needs.
func SkipInconclusive(format string, args ...any) {
	ginkgo.Skip(prefixInconclusive+fmt.Sprintf(format, args...), 1)
}

// SkipNotObservable ends the spec: a POP3 client cannot see the rule here.
func SkipNotObservable(format string, args ...any) {
	ginkgo.Skip(prefixNotObservable+fmt.Sprintf(format, args...), 1)
}

// SkipNotRun ends the spec because the user did not allow its class.
func SkipNotRun(format string, args ...any) {
	ginkgo.Skip(prefixNotRun+fmt.Sprintf(format, args...), 1)
}

// Of maps a finished spec onto a verdict and a reason.
func Of(state types.SpecState, message string) (Verdict, string) {
	switch state {
	case types.SpecStatePassed:
		return Conformant, ""
	case types.SpecStateFailed:
		return Deviates, message
	case types.SpecStateSkipped:
		for _, p := range []struct {
			prefix string
			v      Verdict
		}{
			{prefixNotApplicable, NotApplicable},
			{prefixInconclusive, Inconclusive},
			{prefixNotObservable, NotObservable},
			{prefixNotRun, NotRun},
		} {
			if rest, ok := strings.CutPrefix(message, p.prefix); ok {
				return p.v, rest
			}
		}
		if message == "" {
			// Skipped by a filter or after another failure: never run.
			return NotRun, "not selected"
		}
		// A bare Skip without a verdict prefix is a suite bug; do not let
		// it pass for anything better than inconclusive.
		return Inconclusive, message
	case types.SpecStatePending:
		return NotRun, "pending"
	}
	return Error, fmt.Sprintf("%s: %s", state, message)
}

// rank orders verdicts from best to worst for Worst.
var rank = map[Verdict]int{
	NotRun: 0, NotObservable: 1, NotApplicable: 2, Conformant: 3, Inconclusive: 4, Error: 5, Deviates: 6,
}

// Worst combines the verdicts of several specs of one requirement: a
// single deviation decides, and a requirement is conformant only when
// nothing worse than a pass or a moot check came back.
func Worst(a, b Verdict) Verdict {
	if a == "" {
		return b
	}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

// Part is what one spec brings to its requirement's verdict.
type Part struct {
	Verdict Verdict
	// Labels are the spec's labels (model/contract).
	Labels []string
}

// Supplementary reports whether a spec only adds to its requirement's
// verdict: a robustness spec that could not run (no second account, no
// half-close) says nothing about the requirement, so it must not turn a
// requirement its own specs judged into an inconclusive one. A
// robustness spec that passes or fails still counts.
func (p Part) Supplementary() bool {
	if p.Verdict == Conformant || p.Verdict == Deviates || p.Verdict == Error {
		return false
	}
	return contract.Has(p.Labels, contract.Robustness)
}

// Combine is the verdict of a requirement from its specs': the worst of
// them, the supplementary ones left out unless nothing else ran; "" for
// no specs. This is the one place specs' verdicts are combined.
func Combine(parts []Part) Verdict {
	var v Verdict
	for _, p := range parts {
		if !p.Supplementary() {
			v = Worst(v, p.Verdict)
		}
	}
	if v != "" {
		return v
	}
	// Only supplementary specs ran: they decide after all.
	for _, p := range parts {
		v = Worst(v, p.Verdict)
	}
	return v
}
