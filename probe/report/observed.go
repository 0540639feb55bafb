package report

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// Observed is what the probe measured on the server after the specs
// ran: facts, not verdicts (the specs judge). The parameters go into the
// report's observed object; keys named like profile keys (max_command_octets,
// uid.format) hold values a profile YAML can take.
type Observed struct {
	Params      map[string]any
	Observation Observation
	// Profiles compares the parameters with each bundled profile and the
	// chosen one, closest first.
	Profiles []ProfileMatch
	// SuggestedProfile is a profile YAML of the measured keys only; the
	// probe writes it as observed-profile.yaml.
	SuggestedProfile []byte
	// Commands counts the measurement's own client lines by class; the
	// report adds them to the specs'.
	Commands *Commands
}

// Observation says how the parameters were measured.
type Observation struct {
	Seconds     float64 `json:"seconds" yaml:"seconds"`
	Connections int     `json:"connections" yaml:"connections"`
	// Methods says, per parameter, how it was measured.
	Methods map[string]string `json:"methods,omitempty" yaml:"methods,omitempty"`
	// NotMeasured names parameters left out and why (a permission, an
	// empty mailbox, a missing capability).
	NotMeasured map[string]string `json:"not_measured,omitempty" yaml:"not_measured,omitempty"`
	// Evidence holds redacted wire transcripts of the deciding
	// connections, per parameter.
	Evidence map[string]string `json:"evidence,omitempty" yaml:"evidence,omitempty"`
	// Errors are measurements that broke off.
	Errors []string `json:"errors,omitempty" yaml:"errors,omitempty"`
}

// ProfileMatch compares the observed parameters with one profile.
type ProfileMatch struct {
	Name string `json:"name" yaml:"name"`
	// Chosen marks the profile the specs judged against (--profile).
	Chosen bool `json:"chosen" yaml:"chosen"`
	// Compared counts the observed parameters the profile has a key for;
	// Matching those with the same value.
	Compared int `json:"compared" yaml:"compared"`
	Matching int `json:"matching" yaml:"matching"`
	// TextsCompared and TextsMatching count the same for reply texts
	// (replies.*), which are no conformance matter and weigh less in
	// the ranking; a profile reply that keeps the server's own wording
	// is not compared.
	TextsCompared int                 `json:"texts_compared,omitempty" yaml:"texts_compared,omitempty"`
	TextsMatching int                 `json:"texts_matching,omitempty" yaml:"texts_matching,omitempty"`
	Differences   []ProfileDifference `json:"differences" yaml:"differences"`
}

// Summary says how many keys match, in words.
func (m ProfileMatch) Summary() string {
	s := fmt.Sprintf("%d of %d measured keys match", m.Matching, m.Compared)
	if m.TextsCompared > 0 {
		s += fmt.Sprintf("; reply texts: %d of %d", m.TextsMatching, m.TextsCompared)
	}
	return s
}

// ProfileDifference is one key where server and profile disagree.
type ProfileDifference struct {
	Key      string `json:"key" yaml:"key"`
	Observed any    `json:"observed" yaml:"observed"`
	Profile  any    `json:"profile" yaml:"profile"`
}

// Text is the difference as a sentence for the profile named name.
func (d ProfileDifference) Text(name string) string {
	return fmt.Sprintf("%s: observed %s, profile %s says %s", d.Key, ShowValue(d.Observed), name, ShowValue(d.Profile))
}

// ShowValue prints a parameter value compactly: lists as [a b], strings
// quoted only when they hold a space or are empty.
func ShowValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "(none)"
	case string:
		if x == "" || strings.ContainsAny(x, " \t") {
			return fmt.Sprintf("%q", x)
		}
		return x
	case float64:
		if x == float64(int64(x)) {
			return fmt.Sprint(int64(x))
		}
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Slice {
		parts := make([]string, rv.Len())
		for i := range parts {
			parts[i] = fmt.Sprint(rv.Index(i).Interface())
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	return fmt.Sprint(v)
}

// SetObserved puts the measured parameters, how they were measured and
// the profile comparison into the report.
func (r *Report) SetObserved(o *Observed) {
	if o == nil {
		return
	}
	if o.Commands != nil {
		if r.Commands == nil {
			r.Commands = &Commands{Sent: map[string]int{}}
		}
		r.Commands.Add(*o.Commands)
	}
	r.Observed = map[string]any{}
	for k, v := range o.Params {
		r.Observed[k] = v
	}
	obs := o.Observation
	r.Observation = &obs
	r.Profiles = o.Profiles
	r.ClosestProfile = ""
	if len(o.Profiles) > 0 {
		r.ClosestProfile = o.Profiles[0].Name
	}
	r.suggestedProfile = o.SuggestedProfile
	for i := range r.Statements {
		st := &r.Statements[i]
		for _, k := range st.keys {
			if v, ok := r.Observed[k]; ok {
				if st.Observed == nil {
					st.Observed = map[string]any{}
				}
				st.Observed[k] = v
			}
		}
	}
}

// ObservedKeys returns the observed parameter names in order.
func (r *Report) ObservedKeys() []string {
	keys := make([]string, 0, len(r.Observed))
	for k := range r.Observed {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ChosenProfile returns the comparison with the profile the specs used.
func (r *Report) ChosenProfile() (ProfileMatch, bool) {
	for _, m := range r.Profiles {
		if m.Chosen {
			return m, true
		}
	}
	return ProfileMatch{}, false
}
