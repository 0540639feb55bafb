package conformance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"

	"github.com/pop3conformance/pop3conformance/model/contract"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// A Schedule shares one run's specs among processes: the probe runs its
// readonly specs in several worker processes at once, each on its own
// connection, and the rest in its first process alone (probe/runner).
// Without a Schedule every spec runs in this process, as under ginkgo.
type Schedule interface {
	// Begin runs once the target is open and its facts are measured,
	// before any spec of this process.
	Begin(ctx context.Context, t *harness.Target) error
	// Here says whether this process runs the spec; one that does not
	// ends skipped with contract.RunElsewhere.
	Here(s SpecInfo) bool
	// Ended hears that a spec this process ran has ended; busy says why
	// its result may be the run's own doing (harness.ErrBusy), or "".
	Ended(key, busy string)
	// End runs once this process has run its specs, before the suite's
	// report is complete.
	End(t *harness.Target)
}

// SpecInfo is what a Schedule knows of a spec.
type SpecInfo struct {
	// Key names the spec the same way in every process of a run.
	Key   string
	Class Class
	Flags []Flag
	// Group names the Reading the spec judges, "" for none: the specs of
	// one group are best run in one process, which then reads it once.
	Group string
}

// Concurrent says whether the spec may run while other specs of the run
// use the server: readonly and no wait on a server timer, which must
// find the server idle. Whatever touches the maildrop or contends for
// locks runs alone.
func (s SpecInfo) Concurrent() bool {
	return s.Class == Readonly && !slices.Contains(s.Flags, Slow) && !slices.Contains(s.Flags, ReferenceOnly)
}

// Beside says whether the spec may run while the run's first process
// runs the specs that mark or remove mail: it never logs in (NoLogin), so
// it neither reads the maildrop nor holds its lock, and it waits on no
// server timer.
func (s SpecInfo) Beside() bool {
	return slices.Contains(s.Flags, NoLogin) && !slices.Contains(s.Flags, Slow) && !slices.Contains(s.Flags, ReferenceOnly)
}

// BesideMail says whether the spec may run while the run's first process
// runs the specs that mark or remove mail, once none that contends for
// the maildrop lock or sends failed logins is left: it logs in only to
// see how the server answers (LoginOnly), and waits on no server timer.
func (s SpecInfo) BesideMail() bool {
	return slices.Contains(s.Flags, LoginOnly) && s.Concurrent()
}

// Alone says whether the spec must have the server to itself: hostile
// input, which might bring the server down under another spec, and waits
// on server timers.
func (s SpecInfo) Alone() bool {
	return slices.Contains(s.Flags, Slow) || slices.Contains(s.Flags, Robustness)
}

// Slow says whether the spec waits on a real server timer.
func (s SpecInfo) Slow() bool { return slices.Contains(s.Flags, Slow) }

// Runs says whether a run with permissions p runs the spec against a
// remote host at all (gate skips the others at once).
func (s SpecInfo) Runs(p harness.Permissions) bool {
	switch {
	case slices.Contains(s.Flags, ReferenceOnly):
		return false
	case slices.Contains(s.Flags, Slow) && !p.Slow:
		return false
	case slices.Contains(s.Flags, MarksDeleted) && !p.AllowsReversible():
		return false
	}
	switch s.Class {
	case Reversible:
		return p.AllowsReversible()
	case Mutating:
		return p.Mutating
	case Disruptive:
		return p.Disruptive
	}
	return true
}

// SpecKey names a spec the same way in every process of a run: its text
// and where it is declared.
func SpecKey(sr types.SpecReport) string {
	sum := sha256.Sum256([]byte(sr.FullText() + "\x00" + sr.LeafNodeLocation.String()))
	return hex.EncodeToString(sum[:12])
}

var (
	scheduleMu sync.Mutex
	schedule   Schedule
)

// UseSchedule makes the next suite run share its specs by s (nil: run
// them all here). The probe calls it before RunSpecs.
func UseSchedule(s Schedule) {
	scheduleMu.Lock()
	defer scheduleMu.Unlock()
	schedule = s
}

func currentSchedule() Schedule {
	scheduleMu.Lock()
	defer scheduleMu.Unlock()
	return schedule
}

// placeSpec skips the spec here when the schedule gives it to another
// process.
func placeSpec(class Class, flags map[Flag]bool, group string) {
	s := currentSchedule()
	if s == nil {
		return
	}
	info := SpecInfo{Key: SpecKey(CurrentSpecReport()), Class: class, Group: group}
	for f := range flags {
		info.Flags = append(info.Flags, f)
	}
	if !s.Here(info) {
		Skip(contract.RunElsewhere)
	}
}

// endSpec runs after every spec, before its connections are closed: a
// busy mark goes into the spec's report, and the schedule hears of it.
func endSpec(t *harness.Target) {
	s := currentSchedule()
	sr := CurrentSpecReport()
	if s == nil || sr.Failure.Message == contract.RunElsewhere {
		return
	}
	busy := t.Recorder().Busy()
	if busy != "" {
		AddReportEntry(contract.EntryBusy, busy, ReportEntryVisibilityNever)
	}
	s.Ended(SpecKey(sr), busy)
}
