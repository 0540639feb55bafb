package verdict

import (
	"testing"

	"github.com/pop3conformance/pop3conformance/model/contract"
)

func TestCombine(t *testing.T) {
	robust := []string{string(contract.Disruptive), string(contract.Robustness)}
	plain := []string{string(contract.Readonly)}
	for _, tc := range []struct {
		name  string
		parts []Part
		want  Verdict
	}{
		{"no specs", nil, ""},
		{"one pass", []Part{{Conformant, plain}}, Conformant},
		{"a deviation decides", []Part{{Conformant, plain}, {Deviates, plain}}, Deviates},
		{"inconclusive beats a pass", []Part{{Conformant, plain}, {Inconclusive, plain}}, Inconclusive},
		{"a robustness spec that could not run adds nothing", []Part{{Conformant, plain}, {Inconclusive, robust}}, Conformant},
		{"a robustness spec not run adds nothing", []Part{{NotApplicable, plain}, {NotRun, robust}}, NotApplicable},
		{"a failing robustness spec counts", []Part{{Conformant, plain}, {Deviates, robust}}, Deviates},
		{"a robustness spec in error counts", []Part{{Conformant, plain}, {Error, robust}}, Error},
		{"only robustness specs: they decide", []Part{{Inconclusive, robust}, {NotRun, robust}}, Inconclusive},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Combine(tc.parts); got != tc.want {
				t.Errorf("Combine = %q, want %q", got, tc.want)
			}
		})
	}
}
