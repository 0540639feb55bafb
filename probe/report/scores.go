package report

import (
	"cmp"
	"maps"
	"slices"

	"github.com/pop3conformance/pop3conformance/model/verdict"
)

// The values of Report.ClosestProfileBy: which comparison named the
// closest profile.
const (
	// ClosestByStatements: the specs ran once per bundled profile
	// (--compare-profiles) and the profile whose expectations the server
	// met best won.
	ClosestByStatements = "statements"
	// ClosestByParameters: the measured parameters were compared with
	// each profile's keys (Profiles).
	ClosestByParameters = "parameters"
)

// ProfileScore is how the server fared when the specs expected one
// profile: the statement-based answer to "which profile is this server?".
type ProfileScore struct {
	Name string `json:"name" yaml:"name"`
	// Chosen marks the profile of this report's own run (--profile);
	// its counts are the report's summary.
	Chosen bool `json:"chosen" yaml:"chosen"`
	// Counts has one entry per verdict, zeros included, like
	// Summary.Counts; absent when the run under this profile failed.
	Counts map[verdict.Verdict]int `json:"counts,omitempty" yaml:"counts,omitempty"`
	// Deviating lists the IDs of the statements that deviate under this
	// profile, in catalogue order.
	Deviating []string `json:"deviating,omitempty" yaml:"deviating,omitempty"`
	// Error says why there are no counts: the run under this profile
	// could not judge the server or wrote no report.
	Error string `json:"error,omitempty" yaml:"error,omitempty"`
}

// Conformant is the number of conformant statements.
func (s ProfileScore) Conformant() int { return s.Counts[verdict.Conformant] }

// Deviates is the number of deviating statements.
func (s ProfileScore) Deviates() int { return s.Counts[verdict.Deviates] }

// Other counts the statements neither conformant nor deviating.
func (s ProfileScore) Other() int {
	n := 0
	for v, c := range s.Counts {
		if v != verdict.Conformant && v != verdict.Deviates {
			n += c
		}
	}
	return n
}

// ScoreOf scores a report as the entry of profile name. A report whose
// suite could not judge the target gives an entry with an error: its
// counts would only say "not run".
func ScoreOf(name string, r *Report) ProfileScore {
	s := ProfileScore{Name: name}
	if r.SuiteError != "" {
		s.Error = r.SuiteError
		return s
	}
	s.Counts = newCounts()
	maps.Copy(s.Counts, r.Summary.Counts)
	for _, st := range r.Statements {
		if st.Verdict == verdict.Deviates {
			s.Deviating = append(s.Deviating, st.ID)
		}
	}
	return s
}

// SetProfileScores puts the scores of the other profiles into the report,
// with the report's own verdicts as the entry of the chosen profile, best
// first. The best judged entry becomes the closest profile: passing
// statements is a stronger sign than matching measured keys, which stay
// in Profiles.
func (r *Report) SetProfileScores(others []ProfileScore) {
	chosen := ScoreOf(r.Profile, r)
	chosen.Chosen = true
	scores := append([]ProfileScore{chosen}, others...)
	slices.SortStableFunc(scores, betterScore)
	r.ProfileScores = scores
	if best := scores[0]; best.Error == "" {
		r.ClosestProfile, r.ClosestProfileBy = best.Name, ClosestByStatements
	}
}

// betterScore orders scores best first: judged before failed, then the
// most conformant statements, the fewest deviating, the fewest errors, the
// chosen profile on a tie, and by name so the order is stable.
func betterScore(a, b ProfileScore) int {
	failed := func(s ProfileScore) int {
		if s.Error != "" {
			return 1
		}
		return 0
	}
	chosenFirst := func(s ProfileScore) int {
		if s.Chosen {
			return 0
		}
		return 1
	}
	return cmp.Or(
		cmp.Compare(failed(a), failed(b)),
		cmp.Compare(b.Conformant(), a.Conformant()),
		cmp.Compare(a.Deviates(), b.Deviates()),
		cmp.Compare(a.Counts[verdict.Error], b.Counts[verdict.Error]),
		cmp.Compare(chosenFirst(a), chosenFirst(b)),
		cmp.Compare(a.Name, b.Name),
	)
}
