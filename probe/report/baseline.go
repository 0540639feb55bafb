package report

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// Baseline is a list of accepted deviations (`pop3probe --expect FILE`):
// statements a CI gate knows to deviate, so that only new deviations fail
// it.
type Baseline struct {
	// File is where the baseline was read from, for messages.
	File    string
	Entries []BaselineEntry
}

// BaselineEntry is one accepted statement and why it is accepted.
type BaselineEntry struct {
	ID     string `yaml:"id"`
	Reason string `yaml:"reason"`
}

// Expectation is what the report says about the baseline it was judged
// against.
type Expectation struct {
	File string `json:"file" yaml:"file"`
	// Accepted are the deviating (or unfinished) statements the baseline
	// accepts; they do not make the run fail.
	Accepted []string `json:"accepted,omitempty" yaml:"accepted,omitempty"`
	// New are the deviating statements the baseline does not list.
	New []string `json:"new,omitempty" yaml:"new,omitempty"`
	// Fixed are statements in the baseline that this run judged
	// conformant or not applicable: the baseline can drop them.
	Fixed []string `json:"fixed,omitempty" yaml:"fixed,omitempty"`
}

// LoadBaseline reads a baseline file: either one statement ID a line
// (blank lines ignored, "# ..." comments, the rest of a line after the ID
// or its comment is the reason), or a YAML list whose items are IDs or
// {id, reason} mappings.
func LoadBaseline(path string) (*Baseline, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the baseline: %w", err)
	}
	entries, err := ParseBaseline(data, isYAMLName(path))
	if err != nil {
		return nil, fmt.Errorf("baseline %s: %w", path, err)
	}
	return &Baseline{File: path, Entries: entries}, nil
}

func isYAMLName(path string) bool {
	ext := strings.ToLower(filepath.Ext(path))
	return ext == ".yaml" || ext == ".yml"
}

// ParseBaseline parses a baseline's text; a file whose first item starts
// with "- " is read as YAML whatever its name.
func ParseBaseline(data []byte, asYAML bool) ([]BaselineEntry, error) {
	if asYAML || startsYAMLList(data) {
		return parseYAMLBaseline(data)
	}
	var out []BaselineEntry
	for i, line := range strings.Split(string(data), "\n") {
		text, comment, _ := strings.Cut(line, "#")
		f := strings.Fields(text)
		if len(f) == 0 {
			continue
		}
		reason := strings.Join(f[1:], " ")
		if reason == "" {
			reason = strings.TrimSpace(comment)
		}
		if strings.HasPrefix(f[0], "-") {
			return nil, fmt.Errorf("line %d: %q is not a statement ID", i+1, f[0])
		}
		out = append(out, BaselineEntry{ID: f[0], Reason: reason})
	}
	return out, nil
}

func startsYAMLList(data []byte) bool {
	for _, l := range bytes.Split(data, []byte("\n")) {
		l = bytes.TrimSpace(l)
		if len(l) == 0 || l[0] == '#' {
			continue
		}
		return l[0] == '-'
	}
	return false
}

func parseYAMLBaseline(data []byte) ([]BaselineEntry, error) {
	var items []yaml.Node
	if err := yaml.Unmarshal(data, &items); err != nil {
		return nil, fmt.Errorf("not a YAML list of statement IDs or {id, reason}: %w", err)
	}
	out := make([]BaselineEntry, 0, len(items))
	for _, n := range items {
		var e BaselineEntry
		switch n.Kind {
		case yaml.ScalarNode:
			e.ID = n.Value
		case yaml.MappingNode:
			if err := n.Decode(&e); err != nil {
				return nil, fmt.Errorf("line %d: %w", n.Line, err)
			}
		default:
			return nil, fmt.Errorf("line %d: want a statement ID or {id, reason}", n.Line)
		}
		if e.ID = strings.TrimSpace(e.ID); e.ID == "" {
			return nil, fmt.Errorf("line %d: no statement ID", n.Line)
		}
		out = append(out, e)
	}
	return out, nil
}

// Unknown lists the baseline's IDs that known does not hold (typing
// mistakes, statements the catalogue dropped).
func (b *Baseline) Unknown(known func(string) bool) []string {
	var out []string
	for _, e := range b.Entries {
		if !known(e.ID) {
			out = append(out, e.ID)
		}
	}
	return out
}

// ApplyBaseline marks the statements the baseline accepts and records
// which deviations are new and which accepted ones no longer deviate.
// Failed then counts only the deviations the baseline does not accept.
func (r *Report) ApplyBaseline(b *Baseline) {
	reasons := map[string]string{}
	for _, e := range b.Entries {
		reasons[e.ID] = e.Reason
	}
	x := &Expectation{File: b.File}
	for i := range r.Statements {
		st := &r.Statements[i]
		reason, listed := reasons[st.ID]
		switch {
		case bad(st.Verdict) && listed:
			st.Accepted, st.AcceptedReason = true, reason
			x.Accepted = append(x.Accepted, st.ID)
		case bad(st.Verdict):
			x.New = append(x.New, st.ID)
		case listed && (st.Verdict == verdict.Conformant || st.Verdict == verdict.NotApplicable):
			x.Fixed = append(x.Fixed, st.ID)
		}
	}
	r.Expect = x
	if len(x.Fixed) > 0 {
		r.Warnings = append(r.Warnings, x.FixedText())
	}
}

// FixedText is the warning about baseline entries that no longer deviate.
func (x *Expectation) FixedText() string {
	verb := "deviate"
	if len(x.Fixed) == 1 {
		verb = "deviates"
	}
	return fmt.Sprintf("%s in the baseline %s no longer %s: %s; trim the baseline",
		harness.Count(len(x.Fixed), "statement"), x.File, verb, strings.Join(x.Fixed, ", "))
}

// Text sums the baseline's effect in one line.
func (x *Expectation) Text() string {
	s := fmt.Sprintf("baseline %s: %d accepted, %d new", x.File, len(x.Accepted), len(x.New))
	if len(x.New) > 0 {
		s += " (" + strings.Join(x.New, ", ") + ")"
	}
	if len(x.Fixed) > 0 {
		s += fmt.Sprintf(", %d no longer deviate", len(x.Fixed))
	}
	return s
}

// AcceptedText is the mark an accepted deviation carries in the
// reports: "accepted by the baseline" and its reason; "" for the others.
func (st Statement) AcceptedText() string {
	if !st.Accepted {
		return ""
	}
	if st.AcceptedReason == "" {
		return "accepted by the baseline"
	}
	return "accepted by the baseline: " + st.AcceptedReason
}

// unaccepted reports whether a statement deviates (or could not finish)
// and no baseline accepts it.
func unaccepted(st Statement) bool { return bad(st.Verdict) && !st.Accepted }
