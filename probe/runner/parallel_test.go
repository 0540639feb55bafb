package runner

import (
	"testing"

	"github.com/pop3conformance/pop3conformance/suites/conformance"
)

// TestWorkersClaim: every readonly spec goes to exactly one worker, the
// specs of one Reading to the same one, whatever order the workers ask in;
// the others stay in the first process.
func TestWorkersClaim(t *testing.T) {
	dir := t.TempDir()
	a, b := &worker{dir: dir}, &worker{dir: dir}
	specs := []conformance.SpecInfo{
		{Key: "k1", Class: conformance.Readonly},
		{Key: "k2", Class: conformance.Readonly, Group: "capa"},
		{Key: "k3", Class: conformance.Readonly, Group: "capa"},
		{Key: "k4", Class: conformance.Readonly, Group: "rich"},
		{Key: "k5", Class: conformance.Mutating},
		{Key: "k6", Class: conformance.Readonly, Flags: []conformance.Flag{conformance.Slow}},
		{Key: "k7", Class: conformance.Readonly, Group: "capa"},
	}
	owner := map[string]*worker{}
	// b starts at the third spec, as a worker that came up later would.
	for i := range specs {
		for _, w := range []*worker{a, b} {
			s := specs[i]
			if w == b {
				s = specs[(i+2)%len(specs)]
			}
			if w.Here(s) {
				if o, ok := owner[s.Key]; ok && o != w {
					t.Fatalf("%s claimed by both workers", s.Key)
				}
				owner[s.Key] = w
			}
		}
	}
	for _, k := range []string{"k5", "k6"} {
		if owner[k] != nil {
			t.Errorf("%s is not concurrent but a worker took it", k)
		}
	}
	for _, k := range []string{"k1", "k2", "k3", "k4", "k7"} {
		if owner[k] == nil {
			t.Errorf("%s went to no worker", k)
		}
	}
	if owner["k2"] != owner["k3"] || owner["k3"] != owner["k7"] {
		t.Error("the specs of one Reading went to different workers")
	}
	// A stopped worker takes nothing more, not even its own group.
	a.stopped.Store(true)
	if a.Here(conformance.SpecInfo{Key: "k8", Class: conformance.Readonly, Group: "capa"}) {
		t.Error("a stopped worker took a spec")
	}
}
