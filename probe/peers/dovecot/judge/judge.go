package main

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"

	"github.com/onsi/ginkgo/v2/types"
	"gopkg.in/yaml.v3"

	"github.com/pop3conformance/pop3conformance/model/contract"
	"github.com/pop3conformance/pop3conformance/model/verdict"
)

// deviation is one entry of expected-deviations.yaml.
type deviation struct {
	ID       string `yaml:"id"`
	Spec     string `yaml:"spec"`
	Reason   string `yaml:"reason"`
	Observed string `yaml:"observed"`
}

// pair is a requirement and the text of one spec that checks it.
type pair struct{ id, spec string }

func loadExpected(path string) (map[pair]bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the expected deviations: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var list []deviation
	if err := dec.Decode(&list); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	want := map[pair]bool{}
	for _, d := range list {
		if d.ID == "" || d.Spec == "" || d.Reason == "" || d.Observed == "" {
			return nil, fmt.Errorf("%s: entry %+v lacks id, spec, reason or observed", path, d)
		}
		want[pair{d.ID, d.Spec}] = true
	}
	return want, nil
}

// run is the reports of one Ginkgo run and the file they came from.
type run struct {
	path    string
	reports []types.Report
}

// verdicts is what the runs showed: the (requirement, spec) pairs that
// failed and passed, and why a run is incomplete.
type verdicts struct {
	want, failed, passed map[pair]bool
	incomplete           []string
}

func judge(want map[pair]bool, runs []run) verdicts {
	j := verdicts{want: want, failed: map[pair]bool{}, passed: map[pair]bool{}}
	for _, r := range runs {
		for _, rep := range r.reports {
			if !rep.SuiteSucceeded && len(rep.SpecialSuiteFailureReasons) > 0 {
				j.incomplete = append(j.incomplete, fmt.Sprintf("%s: %q", r.path, rep.SpecialSuiteFailureReasons))
			}
			for _, sr := range rep.SpecReports {
				j.add(r.path, sr)
			}
		}
	}
	return j
}

func (j *verdicts) add(path string, sr types.SpecReport) {
	v, _ := verdict.Of(sr.State, sr.Failure.Message)
	broke := v == verdict.Deviates || v == verdict.Error
	if sr.LeafNodeType != types.NodeTypeIt {
		if broke {
			j.incomplete = append(j.incomplete, fmt.Sprintf("%s: %s %s", path, sr.LeafNodeType, sr.State))
		}
		return
	}
	for _, l := range sr.LeafNodeLabels {
		id, ok := contract.ReqID(l)
		if !ok {
			continue
		}
		p := pair{id, sr.LeafNodeText}
		switch {
		case v == verdict.Conformant:
			j.passed[p] = true
		case broke:
			j.failed[p] = true
		}
	}
}

// sortedPairs returns the pairs of m that keep says to, in order.
func sortedPairs(m map[pair]bool, keep func(pair) bool) []pair {
	var out []pair
	for p := range maps.Keys(m) {
		if keep(p) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b pair) int { return cmp.Or(cmp.Compare(a.id, b.id), cmp.Compare(a.spec, b.spec)) })
	return out
}

func (j verdicts) expected() []pair {
	return sortedPairs(j.failed, func(p pair) bool { return j.want[p] })
}
func (j verdicts) unexpected() []pair {
	return sortedPairs(j.failed, func(p pair) bool { return !j.want[p] })
}
func (j verdicts) fixed() []pair {
	return sortedPairs(j.want, func(p pair) bool { return j.passed[p] })
}
func (j verdicts) missing() []pair {
	return sortedPairs(j.want, func(p pair) bool { return !j.failed[p] && !j.passed[p] })
}

func (j verdicts) bad() int {
	return len(j.unexpected()) + len(j.fixed()) + len(j.missing()) + len(j.incomplete)
}

func (j verdicts) ok() bool { return j.bad() == 0 }

func (j verdicts) print(w io.Writer) {
	fmt.Fprintf(w, "failing (requirement, spec) pairs: %d; expected deviations: %d\n", len(j.failed), len(j.want))
	for _, p := range j.expected() {
		fmt.Fprintf(w, "  expected deviation %s: %s\n", p.id, p.spec)
	}
	for _, p := range j.unexpected() {
		fmt.Fprintf(w, "UNEXPECTED FAILURE %s: %s\n", p.id, p.spec)
	}
	for _, p := range j.fixed() {
		fmt.Fprintf(w, "EXPECTED DEVIATION NOW PASSES %s: %s (update expected-deviations.yaml)\n", p.id, p.spec)
	}
	for _, p := range j.missing() {
		fmt.Fprintf(w, "EXPECTED DEVIATION NOT RUN %s: %s (skipped, renamed or removed?)\n", p.id, p.spec)
	}
	for _, m := range j.incomplete {
		fmt.Fprintf(w, "INCOMPLETE RUN %s\n", m)
	}
	result := "as expected"
	if !j.ok() {
		result = "NOT as expected"
	}
	fmt.Fprintln(w, "result:", result)
	// Every judged (requirement, spec) pair: as expected, or not.
	good := len(j.expected()) + len(sortedPairs(j.passed, func(p pair) bool { return !j.want[p] }))
	fmt.Fprintf(w, "judge: %d passed, %d failed\n", good, j.bad())
}

// mutatingSpecs are the texts of the mutating specs a run against
// Dovecot can judge, each to run alone: slow specs are left out (Dovecot's
// timers are compiled in), and reference-only specs skip themselves on a
// remote host.
func mutatingSpecs(reps []types.Report) []string {
	var out []string
	for _, rep := range reps {
		for _, sr := range rep.SpecReports {
			l := sr.LeafNodeLabels
			if sr.LeafNodeType == types.NodeTypeIt && contract.Has(l, contract.Mutating) &&
				!contract.Has(l, contract.Slow) && !contract.Has(l, contract.ReferenceOnly) {
				out = append(out, sr.LeafNodeText)
			}
		}
	}
	return out
}
