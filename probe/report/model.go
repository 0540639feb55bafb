// Package report turns Ginkgo's record of a conformance run into the
// probe's conformance report: one statement per catalogue requirement with
// its verdict and evidence, and writes it as JSON, YAML, Markdown, HTML and
// JUnit XML.
//
// Build is a pure function of the Ginkgo reports and the catalogue, so the
// same report comes out of an in-process probe run and of a `ginkgo
// --json-report` file.
package report

import (
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/pop3conformance/pop3conformance/model/catalog"
	"github.com/pop3conformance/pop3conformance/model/contract"
	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// SchemaVersion changes when a consumer of the JSON would break.
const SchemaVersion = 1

// Report is the conformance report of one run against one target.
type Report struct {
	SchemaVersion int       `json:"schema_version" yaml:"schema_version"`
	Tool          Tool      `json:"tool" yaml:"tool"`
	Target        Target    `json:"target" yaml:"target"`
	Profile       string    `json:"profile" yaml:"profile"`
	StartTime     time.Time `json:"start_time" yaml:"start_time"`
	EndTime       time.Time `json:"end_time" yaml:"end_time"`
	// DurationSeconds is EndTime-StartTime, kept for readers without a
	// date library.
	DurationSeconds float64 `json:"duration_seconds" yaml:"duration_seconds"`
	// SuiteError says why the suite could not judge the target at all
	// (no connection, bad configuration); the statements are then not run.
	SuiteError string  `json:"suite_error,omitempty" yaml:"suite_error,omitempty"`
	Summary    Summary `json:"summary" yaml:"summary"`
	// Commands counts the lines the specs sent, by command class; nil
	// when the run did not say (a report of an older suite).
	Commands *Commands `json:"commands,omitempty" yaml:"commands,omitempty"`
	// Facts are what the suite measured about the server before any
	// spec judged it (CAPA, error budgets, the declared fixture); nil
	// when the run did not say.
	Facts *harness.Facts `json:"facts,omitempty" yaml:"facts,omitempty"`
	// Observed holds the server parameters the probe measured after the
	// specs ran (see Observed); empty when nothing was measured.
	Observed map[string]any `json:"observed" yaml:"observed"`
	// Observation says how Observed was measured, with evidence.
	Observation *Observation `json:"observation,omitempty" yaml:"observation,omitempty"`
	// ClosestProfile names the profile the server resembles most:
	// ClosestProfileBy says whether by statements passed (ProfileScores,
	// --compare-profiles) or by measured parameters (Profiles).
	ClosestProfile   string `json:"closest_profile,omitempty" yaml:"closest_profile,omitempty"`
	ClosestProfileBy string `json:"closest_profile_by,omitempty" yaml:"closest_profile_by,omitempty"`
	// Profiles compares the measured parameters with each profile's
	// keys, closest first.
	Profiles []ProfileMatch `json:"profiles,omitempty" yaml:"profiles,omitempty"`
	// ProfileScores counts, per bundled profile, the statements the
	// server passes when the specs expect that profile, best first; only
	// with --compare-profiles.
	ProfileScores []ProfileScore `json:"profile_scores,omitempty" yaml:"profile_scores,omitempty"`
	Statements    []Statement    `json:"statements" yaml:"statements"`
	// Expect says how the run fared against the --expect baseline; nil
	// without one.
	Expect *Expectation `json:"expect,omitempty" yaml:"expect,omitempty"`
	// UnknownIDs are requirement labels of specs that the catalogue does
	// not hold: a suite/catalogue mismatch worth a look.
	UnknownIDs []string `json:"unknown_ids,omitempty" yaml:"unknown_ids,omitempty"`
	// Warnings are suite-level problems that did not stop the judging,
	// such as a failure while closing the target.
	Warnings []string `json:"warnings,omitempty" yaml:"warnings,omitempty"`

	// suggestedProfile is written as observed-profile.yaml, not into the
	// report itself.
	suggestedProfile []byte
}

// Commands counts client lines by command class (contract.Commands).
type Commands = contract.Commands

// CountsText shows counts as "dele 0, read 12" in class-name order, or
// "none".
func CountsText(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	return joinSorted(m, func(k string, v int) string { return fmt.Sprintf("%s %d", k, v) })
}

// AllowedText names the permissions of the run, "readonly only" when
// there were none.
func (t Target) AllowedText() string {
	if t.Reference {
		// The suite's own server: every class runs against it.
		return "every class (the bundled reference server is the suite's own)"
	}
	if len(t.Allowed) == 0 {
		return "readonly only"
	}
	return strings.Join(t.Allowed, ", ")
}

// Tool names the program that wrote the report.
type Tool struct {
	Name    string `json:"name" yaml:"name"`
	Version string `json:"version" yaml:"version"`
}

// Target describes what was tested, never with credentials.
type Target struct {
	// Name is the harness's description of the target, e.g.
	// "mail.example.com:995 (implicit TLS)" or "bundled reference server".
	Name      string `json:"name" yaml:"name"`
	Host      string `json:"host,omitempty" yaml:"host,omitempty"`
	Port      int    `json:"port,omitempty" yaml:"port,omitempty"`
	TLS       string `json:"tls,omitempty" yaml:"tls,omitempty"`
	User      string `json:"user,omitempty" yaml:"user,omitempty"`
	Reference bool   `json:"reference" yaml:"reference"`
	// Allowed lists the spec classes the run allowed (reversible,
	// mutating, disruptive, slow); mutating brings reversible with it.
	Allowed     []string `json:"allowed,omitempty" yaml:"allowed,omitempty"`
	LabelFilter string   `json:"label_filter,omitempty" yaml:"label_filter,omitempty"`
	// Certificate is what a TLS target presented; nil without TLS.
	Certificate *contract.Certificate `json:"certificate,omitempty" yaml:"certificate,omitempty"`
}

// Summary counts statements.
type Summary struct {
	Total int `json:"total" yaml:"total"`
	// Counts has one entry per verdict, zeros included, so readers need
	// not know the verdict list.
	Counts map[verdict.Verdict]int `json:"counts" yaml:"counts"`
	Groups []Group                 `json:"groups" yaml:"groups"`
}

// Group counts the statements of one family of sources.
type Group struct {
	Name   string                  `json:"name" yaml:"name"`
	Total  int                     `json:"total" yaml:"total"`
	Counts map[verdict.Verdict]int `json:"counts" yaml:"counts"`
}

// Statement is one catalogue requirement and how the target fared.
type Statement struct {
	ID           string          `json:"id" yaml:"id"`
	Source       string          `json:"source" yaml:"source"`
	Section      string          `json:"section" yaml:"section"`
	Summary      string          `json:"summary" yaml:"summary"`
	Level        string          `json:"level" yaml:"level"`
	Verification string          `json:"verification" yaml:"verification"`
	Verdict      verdict.Verdict `json:"verdict" yaml:"verdict"`
	// Reason explains any verdict but conformant: the catalogue's reason
	// for a not-observable statement, the skip reason, or the first
	// failure message.
	Reason string `json:"reason,omitempty" yaml:"reason,omitempty"`
	// Expected holds the profile's values for the keys the statement
	// depends on (the catalogue's profile_keys): what the specs expected.
	Expected map[string]any `json:"expected,omitempty" yaml:"expected,omitempty"`
	// Observed holds the measured server parameters for the same keys,
	// where the probe measured them.
	Observed map[string]any `json:"observed,omitempty" yaml:"observed,omitempty"`
	// Note qualifies a conformant verdict that not every spec backs:
	// "1 spec not applicable: <reason>" when a spec was moot (a negative
	// spec under the measured separators, say), so a reader does not take
	// the statement as checked from every side.
	Note string `json:"note,omitempty" yaml:"note,omitempty"`
	// Accepted marks a deviation the --expect baseline lists, with the
	// baseline's reason; it does not fail the run.
	Accepted       bool   `json:"accepted,omitempty" yaml:"accepted,omitempty"`
	AcceptedReason string `json:"accepted_reason,omitempty" yaml:"accepted_reason,omitempty"`
	Specs          []Spec `json:"specs,omitempty" yaml:"specs,omitempty"`

	// keys are the catalogue's profile_keys, for SetObserved.
	keys []string
}

// ExpectedText and ObservedText show Expected and Observed as
// "key=value, ..." in key order; "" when empty.
func (st Statement) ExpectedText() string { return keyValues(st.Expected) }
func (st Statement) ObservedText() string { return keyValues(st.Observed) }

func keyValues(m map[string]any) string {
	return joinSorted(m, func(k string, v any) string { return k + "=" + ShowValue(v) })
}

// joinSorted shows each entry of m with show, in key order, joined by
// commas.
func joinSorted[V any](m map[string]V, show func(string, V) string) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = show(k, m[k])
	}
	return strings.Join(parts, ", ")
}

// Spec is one spec that checked a statement.
type Spec struct {
	Text    string          `json:"text" yaml:"text"`
	Verdict verdict.Verdict `json:"verdict" yaml:"verdict"`
	Reason  string          `json:"reason,omitempty" yaml:"reason,omitempty"`
	// Location is where a deviating spec failed, e.g.
	// "suites/conformance/capa.go:42".
	Location string   `json:"location,omitempty" yaml:"location,omitempty"`
	Labels   []string `json:"labels,omitempty" yaml:"labels,omitempty"`
	Seconds  float64  `json:"seconds" yaml:"seconds"`
	// Transcript is the redacted wire transcript, kept as evidence for
	// deviations and errors only.
	Transcript string `json:"transcript,omitempty" yaml:"transcript,omitempty"`
}

// Verdicts lists every verdict, worst first, for tables.
var Verdicts = []verdict.Verdict{
	verdict.Deviates, verdict.Error, verdict.Inconclusive, verdict.Conformant,
	verdict.NotApplicable, verdict.NotObservable, verdict.NotRun,
}

// Input is what Build needs besides Ginkgo's reports.
type Input struct {
	Tool    Tool
	Target  Target
	Profile string
}

// Build makes the conformance report. Every catalogue requirement appears
// once, in catalogue order, whether or not a spec checked it.
func Build(runs []types.Report, cat *catalog.Catalog, in Input) *Report {
	r := &Report{
		SchemaVersion: SchemaVersion,
		Tool:          in.Tool,
		Target:        in.Target,
		Profile:       in.Profile,
		Observed:      map[string]any{},
	}
	specsByID := map[string][]Spec{}
	unknown := map[string]bool{}
	var special []string
	for _, run := range runs {
		if r.StartTime.IsZero() || (!run.StartTime.IsZero() && run.StartTime.Before(r.StartTime)) {
			r.StartTime = run.StartTime
		}
		if run.EndTime.After(r.EndTime) {
			r.EndTime = run.EndTime
		}
		special = append(special, run.SpecialSuiteFailureReasons...)
		for _, sr := range run.SpecReports {
			if sr.LeafNodeType != types.NodeTypeIt {
				r.suiteNode(sr)
				continue
			}
			s, ids := SpecOf(sr)
			for _, id := range ids {
				if _, ok := cat.Lookup(id); !ok {
					unknown[id] = true
				}
				specsByID[id] = append(specsByID[id], s)
			}
		}
	}
	// An interrupted or timed-out run judged only part of the target; a
	// failed setup explains itself better, so it goes first.
	if len(special) > 0 && r.SuiteError == "" {
		r.SuiteError = "the run did not finish: " + strings.Join(special, "; ")
	}
	if !r.StartTime.IsZero() && !r.EndTime.IsZero() {
		r.DurationSeconds = r.EndTime.Sub(r.StartTime).Seconds()
	}
	values := profileValues(in.Profile)
	for _, req := range cat.Requirements {
		st := statementOf(req, specsByID[req.ID])
		st.keys = req.ProfileKeys
		for _, k := range req.ProfileKeys {
			if v, ok := values[k]; ok {
				if st.Expected == nil {
					st.Expected = map[string]any{}
				}
				st.Expected[k] = v
			}
		}
		r.Statements = append(r.Statements, st)
	}
	for id := range unknown {
		r.UnknownIDs = append(r.UnknownIDs, id)
	}
	slices.Sort(r.UnknownIDs)
	r.Summary = summarize(r.Statements)
	return r
}

// profileValues returns the values of the profile the specs expected; nil
// when it cannot be loaded (a report rebuilt elsewhere from a YAML path):
// the statements then just go without Expected.
func profileValues(nameOrPath string) map[string]any {
	if nameOrPath == "" {
		return nil
	}
	p, err := profile.Load(nameOrPath)
	if err != nil {
		return nil
	}
	v, err := p.Values()
	if err != nil {
		return nil
	}
	return v
}

// suiteNode takes what the report needs from BeforeSuite and friends: the
// target and profile the harness opened, or why it could not.
func (r *Report) suiteNode(sr types.SpecReport) {
	for _, e := range sr.ReportEntries {
		v, ok := e.Value.GetRawValue().(string)
		if !ok {
			continue
		}
		switch e.Name {
		case contract.EntryTarget:
			r.Target.Name = v
		case contract.EntryProfile:
			if r.Profile == "" {
				r.Profile = v
			}
		case contract.EntryCertificate:
			var c contract.Certificate
			if err := json.Unmarshal([]byte(v), &c); err != nil {
				c = contract.Certificate{Error: "unreadable certificate entry: " + err.Error()}
			}
			r.Target.Certificate = &c
		case contract.EntryFacts:
			// Every process of a parallel run measures; the first says.
			if r.Facts != nil {
				continue
			}
			var f harness.Facts
			if err := json.Unmarshal([]byte(v), &f); err != nil {
				r.Warnings = append(r.Warnings, "unreadable facts entry: "+err.Error())
				continue
			}
			r.Facts = &f
		case contract.EntrySessions:
			if r.Commands == nil {
				r.Commands = &Commands{Sent: map[string]int{}}
			}
			r.Commands.Sessions = v
		case contract.EntryCommands:
			// One entry per process of a parallel run: they add up.
			var c Commands
			if err := json.Unmarshal([]byte(v), &c); err != nil {
				r.Warnings = append(r.Warnings, "unreadable command count entry: "+err.Error())
				continue
			}
			if r.Commands == nil {
				r.Commands = &Commands{Sent: map[string]int{}}
			}
			r.Commands.Add(c)
		}
	}
	if !sr.State.Is(types.SpecStateFailureStates) {
		return
	}
	msg := fmt.Sprintf("%s %s: %s", sr.LeafNodeType, sr.State, sr.Failure.Message)
	// Only a failed setup means the target could not be judged.
	// A setup cut short by the run's own timeout or an interrupt is told
	// as the run not finishing (Build), not as a fault of the target.
	cut := sr.State.Is(types.SpecStateTimedout | types.SpecStateInterrupted)
	if sr.LeafNodeType.Is(types.NodeTypeBeforeSuite|types.NodeTypeSynchronizedBeforeSuite) && r.SuiteError == "" && !cut {
		r.SuiteError = msg
		return
	}
	r.Warnings = append(r.Warnings, msg)
}

// SpecOf is one finished spec as the report shows it, and the
// requirement IDs its labels name. The probe's progress lines use it too.
func SpecOf(sr types.SpecReport) (Spec, []string) {
	v, reason := verdict.Of(sr.State, sr.Failure.Message)
	s := Spec{
		Text:    sr.FullText(),
		Verdict: v,
		Reason:  strings.TrimSpace(reason),
		Seconds: sr.RunTime.Seconds(),
	}
	// Where the check failed; every leaf node sits in the suite's Spec
	// helper, so its own location says nothing.
	if (v == verdict.Deviates || v == verdict.Error) && sr.Failure.Location.FileName != "" {
		s.Location = location(sr.Failure.Location)
	}
	var ids []string
	for _, l := range sr.Labels() {
		if id, ok := contract.ReqID(l); ok {
			ids = append(ids, id)
			continue
		}
		s.Labels = append(s.Labels, l)
	}
	if v == verdict.Deviates || v == verdict.Error {
		var parts []string
		for _, e := range sr.ReportEntries {
			if t, ok := e.Value.GetRawValue().(string); ok && e.Name == contract.EntryTranscript && t != "" {
				parts = append(parts, t)
			}
		}
		s.Transcript = strings.Join(parts, "\n")
	}
	return s, ids
}

// location names a spec's source line relative to the module, so reports
// do not carry the paths of the machine that built the probe.
func location(cl types.CodeLocation) string {
	file := filepath.ToSlash(cl.FileName)
	if i := strings.LastIndex(file, "/suites/"); i >= 0 {
		file = file[i+1:]
	}
	return fmt.Sprintf("%s:%d", file, cl.LineNumber)
}

func statementOf(req catalog.Requirement, specs []Spec) Statement {
	st := Statement{
		ID:           req.ID,
		Source:       req.Source,
		Section:      req.Section,
		Summary:      req.Summary,
		Level:        req.Level,
		Verification: string(req.Verification),
		Specs:        specs,
	}
	if len(specs) == 0 {
		if req.Verification == catalog.NotObservable {
			st.Verdict, st.Reason = verdict.NotObservable, req.Reason
		} else {
			st.Verdict, st.Reason = verdict.NotRun, "no spec checked it in this run"
		}
		return st
	}
	parts := make([]verdict.Part, len(specs))
	for i, s := range specs {
		parts[i] = verdict.Part{Verdict: s.Verdict, Labels: s.Labels}
	}
	st.Verdict = verdict.Combine(parts)
	// The reason of the first spec that decided the verdict explains it.
	for _, s := range specs {
		if s.Verdict == st.Verdict && s.Reason != "" {
			st.Reason = s.Reason
			break
		}
	}
	if st.Verdict == verdict.Conformant {
		st.Note = notApplicableNote(specs)
	}
	return st
}

// notApplicableNote counts the specs of a conformant statement that were
// not applicable and gives the first one's reason; "" when none was.
func notApplicableNote(specs []Spec) string {
	n, reason := 0, ""
	for _, s := range specs {
		if s.Verdict != verdict.NotApplicable {
			continue
		}
		if n++; reason == "" {
			reason = s.Reason
		}
	}
	if n == 0 {
		return ""
	}
	note := harness.Count(n, "spec") + " not applicable"
	if reason != "" {
		note += ": " + firstLine(reason)
	}
	return note
}

// VerdictText is the verdict with the note that qualifies it, as the
// Markdown and HTML tables show it.
func (st Statement) VerdictText() string {
	if st.Note == "" {
		return string(st.Verdict)
	}
	return string(st.Verdict) + " (" + st.Note + ")"
}

// Deviating lists the statements that deviate or whose specs could not
// finish, in catalogue order: the index at the top of the Markdown and
// HTML reports.
func (r *Report) Deviating() []Statement {
	var out []Statement
	for _, st := range r.Statements {
		if bad(st.Verdict) {
			out = append(out, st)
		}
	}
	return out
}

// GroupOf names the summary group of a catalogue source.
func GroupOf(source string) string {
	s := strings.ToUpper(strings.ReplaceAll(source, " ", ""))
	switch {
	case strings.HasPrefix(s, "MS-STANXPOP3"):
		return "Exchange (MS-STANXPOP3)"
	case s == "RFC1939":
		return "RFC 1939 base"
	case strings.HasPrefix(s, "RFC"):
		return "RFC extensions"
	}
	return "other"
}

func newCounts() map[verdict.Verdict]int {
	m := make(map[verdict.Verdict]int, len(Verdicts))
	for _, v := range Verdicts {
		m[v] = 0
	}
	return m
}

func summarize(sts []Statement) Summary {
	sum := Summary{Counts: newCounts()}
	idx := map[string]int{}
	for _, st := range sts {
		sum.Total++
		sum.Counts[st.Verdict]++
		g := GroupOf(st.Source)
		i, ok := idx[g]
		if !ok {
			i = len(sum.Groups)
			idx[g] = i
			sum.Groups = append(sum.Groups, Group{Name: g, Counts: newCounts()})
		}
		sum.Groups[i].Total++
		sum.Groups[i].Counts[st.Verdict]++
	}
	order := []string{"RFC 1939 base", "RFC extensions", "Exchange (MS-STANXPOP3)", "other"}
	slices.SortStableFunc(sum.Groups, func(a, b Group) int {
		return slices.Index(order, a.Name) - slices.Index(order, b.Name)
	})
	return sum
}

// Failed reports whether the target deviates from at least one statement
// or a spec could not finish, leaving out what the --expect baseline
// accepts; the probe exits 1 then.
func (r *Report) Failed() bool {
	return slices.ContainsFunc(r.Statements, unaccepted)
}

// Line is the one-line summary the probe prints at the end.
func (r *Report) Line() string {
	var parts []string
	for _, v := range Verdicts {
		if n := r.Summary.Counts[v]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, v))
		}
	}
	if len(parts) == 0 {
		parts = append(parts, "nothing checked")
	}
	return fmt.Sprintf("%s: %s (%s, profile %s, %.1fs)",
		harness.Count(r.Summary.Total, "statement"), strings.Join(parts, ", "), r.Target.Name, r.Profile, r.DurationSeconds)
}
