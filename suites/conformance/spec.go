// Package conformance holds the POP3 conformance specs. They live in an
// ordinary package, not a _test one, so that `ginkgo ./suites/...` and the
// probe command run exactly the same specs.
//
// Every spec is declared with Spec, which checks its requirement IDs
// against the catalogue and its safety class while the spec tree is built,
// and gates it at run time on what the user allowed against the target.
package conformance

import (
	"errors"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"

	"pop3conformance/fixtures/catalog"
	"pop3conformance/suites/harness"
	"pop3conformance/suites/verdict"
)

// Class is a spec's safety class.
type Class string

const (
	// Readonly specs read only; they run against any server.
	Readonly Class = "readonly"
	// Mutating specs delete or change mail.
	Mutating Class = "mutating"
	// Disruptive specs wait out timeouts, contend for locks or open many
	// connections.
	Disruptive Class = "disruptive"
)

// Flag adds a label that changes when a spec runs.
type Flag string

const (
	// Slow specs wait for a real server timer; against a remote host they
	// need permission.
	Slow Flag = "slow"
	// ReferenceOnly specs need server-side control and judge the bundled
	// server only.
	ReferenceOnly Flag = "reference-only"
	// Robustness specs send hostile input.
	Robustness Flag = "robustness"
)

// IDList holds the requirement IDs a spec checks. Write them as string
// literals: a plain test reads them from the source to prove that every
// catalogue entry has a spec.
type IDList []string

// IDs names the requirements a spec checks.
func IDs(ids ...string) IDList { return ids }

// Body is a spec's code. The target is the one the suite was started with.
type Body func(ctx SpecContext, t *harness.Target)

var requirements = catalog.MustLoad()

// Default time limits for one spec; a slow spec waits for real timers.
const (
	specTimeout     = 2 * time.Minute
	slowSpecTimeout = 45 * time.Minute
)

// mutatingPriority orders mutating specs last (Ginkgo's default is 0).
const mutatingPriority = -1

// Spec declares one spec. args are Flags, extra Ginkgo decorators, and the
// Body last.
func Spec(text string, ids IDList, class Class, args ...any) bool {
	if len(ids) == 0 {
		panic(fmt.Sprintf("spec %q names no requirement", text))
	}
	labels := Labels{string(class)}
	switch class {
	case Readonly, Mutating, Disruptive:
	default:
		panic(fmt.Sprintf("spec %q: class %q is not readonly, mutating or disruptive", text, class))
	}
	for _, id := range ids {
		if _, ok := requirements.Lookup(id); !ok {
			panic(fmt.Sprintf("spec %q names requirement %q, which is not in fixtures/requirements.yaml", text, id))
		}
		labels = append(labels, "req:"+id)
	}
	var (
		body       Body
		flags      = map[Flag]bool{}
		decorators []any
	)
	for _, a := range args {
		switch v := a.(type) {
		case Flag:
			flags[v] = true
			labels = append(labels, string(v))
		case Body:
			body = v
		case func(SpecContext, *harness.Target):
			body = v
		default:
			decorators = append(decorators, v)
		}
	}
	if body == nil {
		panic(fmt.Sprintf("spec %q has no body", text))
	}
	timeout := specTimeout
	if flags[Slow] {
		timeout = slowSpecTimeout
	}
	decorators = append(decorators, labels, SpecTimeout(timeout))
	if class == Mutating {
		// Mutating specs run after all others: against a remote host
		// they may change the maildrop that the others compare with its
		// declared fixture.
		decorators = append(decorators, SpecPriority(mutatingPriority))
	}
	decorators = append(decorators, func(ctx SpecContext) {
		t := currentTarget()
		gate(t, class, flags)
		needCatalogueKeys(t, ids)
		if class == Mutating && t.Reference() == nil {
			defer t.NoteChanged()
		}
		body(ctx, t)
	})
	return It(text, decorators...)
}

// gate skips a spec the user did not allow, or one the target cannot
// judge, with a reason that says what would make it run.
func gate(t *harness.Target, class Class, flags map[Flag]bool) {
	ref := t.Reference() != nil
	if flags[ReferenceOnly] && !ref {
		verdict.SkipNotObservable("needs server-side control that only the bundled reference server gives the suite")
	}
	if ref {
		// The bundled server is the suite's own: every class may run, and
		// its timers are shortened where a spec needs them.
		return
	}
	a := t.Config.Allow
	switch {
	case class == Mutating && !a.Mutating:
		verdict.SkipNotRun("deletes or changes mail; allow with %s=mutating (probe: --allow-mutating)", harness.EnvAllow)
	case class == Disruptive && !a.Disruptive:
		verdict.SkipNotRun("disrupts the server (timeouts, locks, many connections); allow with %s=disruptive (probe: --allow-disruptive)", harness.EnvAllow)
	case flags[Slow] && !a.Slow:
		verdict.SkipNotRun("waits for a real server timer; allow with %s=slow (probe: --slow)", harness.EnvAllow)
	}
}

// needCatalogueKeys ends a spec inconclusive when the profile does not
// say a key its requirements' expectations come from (the catalogue's
// profile_keys): a profile written by the probe leaves out what it did
// not measure, and a zero value is no expectation.
func needCatalogueKeys(t *harness.Target, ids IDList) {
	for _, id := range ids {
		r, _ := requirements.Lookup(id)
		needKey(t, r.ProfileKeys...)
	}
}

// needKey ends a spec inconclusive when the profile does not say one of
// keys (dotted profile key names). A spec whose expectation reads a key
// outside its requirements' profile_keys calls it first.
func needKey(t *harness.Target, keys ...string) {
	for _, k := range keys {
		if !t.Profile.Known(k) {
			verdict.SkipInconclusive("the profile does not say %s", k)
		}
	}
}

// need turns a harness error into the right verdict: a missing capability
// of the target is inconclusive, anything else a failure.
func need[T any](v T, err error) T {
	if err != nil {
		if isUnavailable(err) {
			verdict.SkipInconclusive("%v", err)
		}
		Fail(fmt.Sprintf("harness: %v", err), 1)
	}
	return v
}

func isUnavailable(err error) bool { return errors.Is(err, harness.ErrUnavailable) }
