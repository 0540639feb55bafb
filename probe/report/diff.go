package report

import (
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"

	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// Change is one statement whose verdict moved between two reports.
type Change struct {
	ID   string          `json:"id"`
	Old  verdict.Verdict `json:"old"` // empty: not in the old report
	New  verdict.Verdict `json:"new"` // empty: not in the new report
	Kind ChangeKind      `json:"kind"`
}

// ChangeKind classifies a change for release gating.
type ChangeKind string

const (
	// Regressed: the statement deviates (or errs) now and did not before.
	Regressed ChangeKind = "regressed"
	// Fixed: it deviated before and does not now.
	Fixed ChangeKind = "fixed"
	// Changed: any other move, such as conformant to not-run.
	Changed ChangeKind = "changed"
)

// ParamChange is a measured server parameter that moved.
type ParamChange struct {
	Key string `json:"key"`
	Old any    `json:"old"`
	New any    `json:"new"`
}

// Diff is what changed between two reports.
type Diff struct {
	Changes []Change      `json:"changes"`
	Params  []ParamChange `json:"params"`
}

func bad(v verdict.Verdict) bool { return v == verdict.Deviates || v == verdict.Error }

// Compare lists the statements whose verdict differs, in the new report's
// order with statements gone from it last, and the observed parameters
// that moved.
func Compare(old, cur *Report) Diff {
	var d Diff
	oldV := map[string]verdict.Verdict{}
	for _, st := range old.Statements {
		oldV[st.ID] = st.Verdict
	}
	seen := map[string]bool{}
	add := func(id string, o, n verdict.Verdict) {
		if o == n {
			return
		}
		k := Changed
		switch {
		case bad(n) && !bad(o):
			k = Regressed
		case bad(o) && !bad(n):
			k = Fixed
		}
		d.Changes = append(d.Changes, Change{ID: id, Old: o, New: n, Kind: k})
	}
	for _, st := range cur.Statements {
		seen[st.ID] = true
		add(st.ID, oldV[st.ID], st.Verdict)
	}
	for _, st := range old.Statements {
		if !seen[st.ID] {
			add(st.ID, st.Verdict, "")
		}
	}
	var keys []string
	for k := range old.Observed {
		keys = append(keys, k)
	}
	for k := range cur.Observed {
		if _, ok := old.Observed[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		o, n := old.Observed[k], cur.Observed[k]
		if !reflect.DeepEqual(o, n) {
			d.Params = append(d.Params, ParamChange{Key: k, Old: o, New: n})
		}
	}
	return d
}

// Regressions counts the statements that regressed.
func (d Diff) Regressions() int {
	n := 0
	for _, c := range d.Changes {
		if c.Kind == Regressed {
			n++
		}
	}
	return n
}

// WriteText prints the diff for a terminal or a CI log. The ID column is
// as wide as the longest ID, so RFC rule names line up too; a value one
// report lacks shows as "(absent)", never as Go's "<nil>".
func (d Diff) WriteText(w io.Writer) error {
	width := 0
	for _, c := range d.Changes {
		width = max(width, len(c.ID))
	}
	for _, p := range d.Params {
		width = max(width, len(p.Key))
	}
	var b strings.Builder
	for _, kind := range []ChangeKind{Regressed, Fixed, Changed} {
		for _, c := range d.Changes {
			if c.Kind == kind {
				fmt.Fprintf(&b, "%-9s %-*s %s -> %s\n", c.Kind, width, c.ID, absent(string(c.Old), c.Old == ""), absent(string(c.New), c.New == ""))
			}
		}
	}
	for _, p := range d.Params {
		fmt.Fprintf(&b, "%-9s %-*s %s -> %s\n", "parameter", width, p.Key, absent(ShowValue(p.Old), p.Old == nil), absent(ShowValue(p.New), p.New == nil))
	}
	fixed := 0
	for _, c := range d.Changes {
		if c.Kind == Fixed {
			fixed++
		}
	}
	other := len(d.Changes) - d.Regressions() - fixed
	fmt.Fprintf(&b, "%d regressed, %d fixed, %s, %s moved\n",
		d.Regressions(), fixed, harness.Count(other, "other change"), harness.Count(len(d.Params), "parameter"))
	_, err := io.WriteString(w, b.String())
	return err
}

// absent shows a verdict or value one of the two reports lacks.
func absent(s string, missing bool) string {
	if missing {
		return "(absent)"
	}
	return s
}
