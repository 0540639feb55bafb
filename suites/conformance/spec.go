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
	"strings"

	. "github.com/onsi/ginkgo/v2"

	"github.com/pop3conformance/pop3conformance/model/catalog"
	"github.com/pop3conformance/pop3conformance/model/contract"
	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// Class is a spec's safety class, Flag a label that changes when a spec
// runs (model/contract names them for the suite and the probe alike).
type (
	Class = contract.Class
	Flag  = contract.Flag
)

const (
	Readonly   = contract.Readonly
	Reversible = contract.Reversible
	Mutating   = contract.Mutating
	Disruptive = contract.Disruptive

	Slow          = contract.Slow
	ReferenceOnly = contract.ReferenceOnly
	Robustness    = contract.Robustness
	MarksDeleted  = contract.MarksDeleted
	NoLogin       = contract.NoLogin
	KeptSession   = contract.KeptSession
	LoginOnly     = contract.LoginOnly
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

// Priorities order the classes (Ginkgo runs higher ones first): every
// readonly spec that logs in, then the disruptive ones, then the
// reversible ones and the mutating ones, the specs that never log in
// (NoLogin) and those that log in only to see how the server answers
// (LoginOnly), and last hostile input (Robustness). Against a remote host a
// disruptive spec may leave the account locked out or the server slow, a
// server that mishandles the undo of a reversible spec, or a mutating
// spec, may change the maildrop the others compare with its fixture; a
// run on one session must not let that touch a readonly verdict that
// reads the maildrop.
//
// Readonly specs that judge a Reading or send ManyCommands go first: the
// readings and those specs are a run's longest pieces of work (the other
// specs of a Reading's group then take no time), so a run that shares its
// specs among sessions ends on short specs, not with one session busy
// while the others wait.
//
// The KeptSession specs come next, one after another: a worker of a
// probe run then hands each the session the one before left in step
// (session), where a spec in between that connects on its own would end
// it.
//
// The reversible specs that judge a Reading go before the disruptive
// ones: the marked Reading is where the run sees whether the server
// brings marked mail back (Target.NoteLost), before any other spec, a
// disruptive one included, marks mail. The mutating specs that judge a
// Reading go first among the mutating ones: the removal Reading then
// finds the declared fixture still there and compares the messages left
// with it.
//
// A probe run with several sessions runs the NoLogin specs beside the
// ones that mark or remove mail, and the LoginOnly ones beside those that
// mark or remove mail once no disruptive spec is left, so they come after
// the mutating specs: its first process then meets them once its own
// specs are done. The suite marks LoginOnly only as many of the specs
// that qualify as keep the two sessions beside busy while the first
// process runs its own specs; the others run with the readonly specs,
// where every session of the run is free.
//
// Hostile input (Robustness) comes last and runs with nothing beside it:
// a server it brings down can then turn into no other spec's failure.
const (
	firstPriority             = 4
	keptSessionPriority       = 3
	readonlyPriority          = 2
	reversibleReadingPriority = 1
	disruptivePriority        = 0
	reversiblePriority        = -1
	mutatingReadingPriority   = -2
	mutatingPriority          = -3
	noLoginReadonlyPriority   = -4
	noLoginPriority           = -5
	loginOnlyPriority         = -6
	robustnessPriority        = -7
)

// ManyCommands marks a readonly spec that sends many more commands than
// most (tens of round trips): it goes first, with the Readings, so that a
// run shared among sessions does not end on it. It is no label.
var ManyCommands = manyCommands{}

type manyCommands struct{}

// Spec declares one spec. args are Flags, at most one Reading the spec
// judges, ManyCommands, extra Ginkgo decorators, and the Body last.
func Spec(text string, ids IDList, class Class, args ...any) bool {
	if len(ids) == 0 {
		panic(fmt.Sprintf("spec %q names no requirement", text))
	}
	labels := Labels{string(class)}
	switch class {
	case Readonly, Reversible, Mutating, Disruptive:
	default:
		panic(fmt.Sprintf("spec %q: class %q is not readonly, reversible, mutating or disruptive", text, class))
	}
	for _, id := range ids {
		if _, ok := requirements.Lookup(id); !ok {
			panic(fmt.Sprintf("spec %q names requirement %q, which is not in fixtures/requirements.yaml", text, id))
		}
		labels = append(labels, contract.ReqLabel(id))
	}
	var (
		body       Body
		flags      = map[Flag]bool{}
		group      string
		many       bool
		decorators []any
	)
	for _, a := range args {
		switch v := a.(type) {
		case Flag:
			if v == MarksDeleted && class != Disruptive && class != Mutating {
				panic(fmt.Sprintf("spec %q: MarksDeleted is for disruptive and mutating specs; use the Reversible class", text))
			}
			if v == NoLogin && class != Readonly && class != Disruptive {
				panic(fmt.Sprintf("spec %q: NoLogin is for readonly and disruptive specs; a %s spec logs in to mark mail", text, class))
			}
			flags[v] = true
			labels = append(labels, string(v))
		case sharedReading:
			if group != "" {
				panic(fmt.Sprintf("spec %q: more than one Reading", text))
			}
			group = v.readingName()
		case manyCommands:
			many = true
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
	if flags[KeptSession] && (class != Readonly || group != "" || flags[NoLogin]) {
		panic(fmt.Sprintf("spec %q: KeptSession is for readonly specs that log in themselves (not NoLogin, no Reading)", text))
	}
	if flags[LoginOnly] && (class != Readonly || group != "" || flags[KeptSession] || flags[NoLogin]) {
		panic(fmt.Sprintf("spec %q: LoginOnly is for readonly specs that log in themselves (no Reading, not KeptSession, not NoLogin)", text))
	}
	if flags[NoLogin] && (group != "" || flags[MarksDeleted] || flags[Robustness]) {
		panic(fmt.Sprintf("spec %q: NoLogin goes with no Reading (one logs in), no MarksDeleted and no Robustness (hostile input runs alone)", text))
	}
	decorators = append(decorators, labels, SpecTimeout(contract.TimeoutOf(labels)))
	switch {
	case flags[LoginOnly]:
		decorators = append(decorators, SpecPriority(loginOnlyPriority))
	case flags[NoLogin] && class == Readonly:
		decorators = append(decorators, SpecPriority(noLoginReadonlyPriority))
	case flags[NoLogin]:
		decorators = append(decorators, SpecPriority(noLoginPriority))
	case flags[Robustness]:
		decorators = append(decorators, SpecPriority(robustnessPriority))
	case class == Readonly && (group != "" || many):
		decorators = append(decorators, SpecPriority(firstPriority))
	case flags[KeptSession]:
		decorators = append(decorators, SpecPriority(keptSessionPriority))
	case class == Readonly:
		decorators = append(decorators, SpecPriority(readonlyPriority))
	case class == Disruptive:
		decorators = append(decorators, SpecPriority(disruptivePriority))
	case class == Reversible && group != "":
		decorators = append(decorators, SpecPriority(reversibleReadingPriority))
	case class == Reversible:
		decorators = append(decorators, SpecPriority(reversiblePriority))
	case class == Mutating && group != "":
		decorators = append(decorators, SpecPriority(mutatingReadingPriority))
	case class == Mutating:
		decorators = append(decorators, SpecPriority(mutatingPriority))
	}
	decorators = append(decorators, func(ctx SpecContext) {
		t := currentTarget()
		placeSpec(class, flags, group)
		gate(t, class, flags, group)
		if flags[NoLogin] {
			t.Recorder().ForbidLogin()
		}
		if flags[LoginOnly] {
			t.Recorder().ForbidReads()
		}
		needCatalogueKeys(t, ids)
		if class == Mutating && t.Reference() == nil {
			defer t.NoteChanged()
		}
		body(ctx, t)
		// A spec whose write the guard refused did not check what it
		// set out to check, even when it got to its end.
		skipIfRefused(t)
	})
	return It(text, decorators...)
}

// skipIfRefused ends the spec "not run" when the wire guard kept one of
// its lines from a remote host (harness.ErrNotAllowed).
func skipIfRefused(t *harness.Target) {
	err := t.Recorder().Refusal()
	if errors.Is(err, harness.ErrLoginForbidden) && t.Reference() != nil {
		// The suite's own mistake: the spec's NoLogin declaration is wrong.
		Fail(err.Error(), 2)
	}
	if err != nil {
		verdict.SkipNotRun("%s", notAllowedReason(err))
	}
}

func notAllowedReason(err error) string {
	_, reason, _ := strings.Cut(err.Error(), harness.ErrNotAllowed.Error()+": ")
	if reason == "" {
		reason = err.Error()
	}
	return "the run would have sent a line it does not allow: " + reason
}

// FailHandler is the suite's Gomega fail handler, and every failure of the
// specs goes through it: a failure that follows a write the wire guard
// refused is the guard's doing, not the server's, so the spec ends "not
// run" with the permission to set; one that follows a refused login the
// run's own failed logins may have caused (a lockout) ends inconclusive.
// Register it in place of ginkgo.Fail
// (gomega.RegisterFailHandler(conformance.FailHandler)).
func FailHandler(message string, callerSkip ...int) {
	targetMu.Lock()
	t := target
	targetMu.Unlock()
	if t != nil {
		skipIfRefused(t)
		if why := t.Recorder().Lockout(); why != "" {
			verdict.SkipInconclusive("%s", why)
		}
	}
	skip := 1
	if len(callerSkip) > 0 {
		skip += callerSkip[0]
	}
	Fail(message, skip)
}

// gate skips a spec the user did not allow, or one the target cannot
// judge, with a reason that says what would make it run. A spec that
// judges a Reading already read (group) sends nothing of its own.
func gate(t *harness.Target, class Class, flags map[Flag]bool, group string) {
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
	case (class == Reversible || flags[MarksDeleted]) && t.Lost() != "" && (group == "" || !t.Remembers(group)):
		verdict.SkipNotRun("marks mail deleted and relies on the server to undo it, and an earlier spec saw this server lose marked mail (%s): the run sends no more such DELE", t.Lost())
	case (class == Reversible || flags[MarksDeleted]) && !a.AllowsReversible():
		verdict.SkipNotRun("marks mail deleted and undoes it with RSET or a close without QUIT, which relies on the server; allow with %s=reversible (probe: --allow-reversible)", harness.EnvAllow)
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
// of the target is inconclusive, a refused write not run, anything else a
// failure.
func need[T any](v T, err error) T {
	if err != nil {
		if isUnavailable(err) {
			verdict.SkipInconclusive("%v", err)
		}
		if errors.Is(err, harness.ErrNotAllowed) {
			verdict.SkipNotRun("%s", notAllowedReason(err))
		}
		FailHandler(fmt.Sprintf("harness: %v", err), 1)
	}
	return v
}

func isUnavailable(err error) bool { return errors.Is(err, harness.ErrUnavailable) }
