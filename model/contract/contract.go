// Package contract holds what the conformance suite and the probe agree
// on: the names of the report entries the suite attaches and the report
// reads, the spec labels (requirement IDs, safety classes, flags), the
// time limits of a spec and the certificate the suite describes. Both
// sides use these identifiers, so a name changes in one place.
package contract

import (
	"slices"
	"strings"
	"time"
)

// Report entries the suite attaches (suites/conformance/suite.go) and the
// probe's report reads (probe/report). Suite-level entries carry JSON or
// plain text in a string, which survives Ginkgo's JSON report unchanged.
const (
	// EntryTarget is the harness's description of the target.
	EntryTarget = "target"
	// EntryProfile is the name of the profile the specs expected.
	EntryProfile = "profile"
	// EntryCertificate is a Certificate as JSON.
	EntryCertificate = "certificate"
	// EntryFacts are the facts measured before any spec, as JSON.
	EntryFacts = "facts"
	// EntryFactsSummary and EntryFactsTranscript show the facts and how
	// they were measured, for a reader of Ginkgo's own report.
	EntryFactsSummary    = "facts summary"
	EntryFactsTranscript = "facts transcript"
	// EntryCommands counts the lines sent and refused by command class,
	// with the connections and round trips, as JSON; one per process.
	EntryCommands = "commands"
	// EntryTranscript is a spec's redacted wire transcript: the evidence
	// of a deviation.
	EntryTranscript = "transcript"
	// EntrySessions says how a run against a remote host shared its
	// specs among sessions at once (Commands.Sessions).
	EntrySessions = "sessions"
	// EntryBusy marks a spec a worker process gave back: a refusal it met
	// may have come from the run's other sessions, so the run does not
	// count that result and runs the spec again alone.
	EntryBusy = "busy"
)

// RunElsewhere is the skip message of a spec that another process of the
// same run ran; a report leaves such specs out.
const RunElsewhere = "run by another process of this run"

// ReqPrefix starts the label that names a requirement a spec checks:
// "req:V0008" selects with --label-filter='req: containsAny {V0008}'.
const ReqPrefix = "req:"

// ReqLabel is the label naming requirement id.
func ReqLabel(id string) string { return ReqPrefix + id }

// ReqID returns the requirement ID a label names; "", false for a label
// that names none.
func ReqID(label string) (string, bool) {
	id, ok := strings.CutPrefix(label, ReqPrefix)
	if !ok {
		return "", false
	}
	return id, true
}

// Class is a spec's safety class; every spec carries exactly one as a
// label.
type Class string

const (
	// Readonly specs read only; they run against any server. They send
	// no DELE in any form and fail no login of a configured account.
	Readonly Class = "readonly"
	// Reversible specs mark mail deleted (DELE, well-formed or not) and
	// undo it with RSET or by closing without QUIT. The undo relies on
	// the server behaving as RFC 1939 says, so against a remote host they
	// need permission; allowing mutating specs allows them too.
	Reversible Class = "reversible"
	// Mutating specs delete or change mail.
	Mutating Class = "mutating"
	// Disruptive specs wait out timeouts, contend for locks or open many
	// connections.
	Disruptive Class = "disruptive"
)

// Classes lists the classes, safest first.
var Classes = []Class{Readonly, Reversible, Mutating, Disruptive}

// Flag is a label that changes when a spec runs or how its verdict
// counts.
type Flag string

const (
	// Slow specs wait for a real server timer; against a remote host they
	// need permission.
	Slow Flag = "slow"
	// ReferenceOnly specs need server-side control and judge the bundled
	// server only.
	ReferenceOnly Flag = "reference-only"
	// Robustness specs send hostile input. One that could not run only
	// supplements its requirement's verdict (model/verdict.Combine).
	Robustness Flag = "robustness"
	// MarksDeleted is for a disruptive or mutating spec that also marks
	// mail deleted and relies on the server to undo it (RSET, a close
	// without QUIT) as a Reversible spec does: it needs both permissions,
	// and does not run once the server was seen to lose marked mail. Its
	// label is the Reversible class's name.
	MarksDeleted Flag = Flag(Reversible)
	// NoLogin is for a readonly or disruptive spec that never logs in to
	// a configured account: it talks to sessions in AUTHORIZATION and
	// sends only logins the server must refuse. It reads no maildrop and
	// holds no lock, so a probe run lets it run beside the specs that mark
	// or remove mail. The wire guard refuses its right logins.
	NoLogin Flag = "no-login"
	// KeptSession is for a readonly spec that needs no more than a session
	// in TRANSACTION, as a fresh login leaves it: a probe run may hand it
	// the session an earlier such spec left in step, which saves the
	// round trips of a login.
	KeptSession Flag = "kept-session"
	// LoginOnly is for a readonly spec that logs in only to see how the
	// server answers (a login, CAPA, STAT's status, commands refused in
	// the wrong state), never reading or marking a message: what it
	// judges holds whatever the maildrop holds, so a probe run lets it run
	// beside the specs that mark or remove mail, once no spec that
	// contends for the maildrop lock or sends failed logins is left. In
	// TRANSACTION its sessions refuse LIST, UIDL, RETR, TOP and DELE.
	LoginOnly Flag = "login-only"
)

// Has reports whether labels carry label (a Class or a Flag).
func Has[L ~string](labels []string, label L) bool {
	return slices.Contains(labels, string(label))
}

// Time limits of one spec; a slow spec waits for real timers. Ginkgo's
// report does not carry a spec's SpecTimeout, so the probe's progress
// display reads them here too.
const (
	SpecTimeout     = 2 * time.Minute
	SlowSpecTimeout = 45 * time.Minute
)

// TimeoutOf is the time limit of a spec with labels.
func TimeoutOf(labels []string) time.Duration {
	if Has(labels, Slow) {
		return SlowSpecTimeout
	}
	return SpecTimeout
}
