package pop3probe_test

import (
	"testing"

	"pop3conformance/probe/pop3probe"
)

// TestReferenceServer is what a server project writes: here the server is
// the bundled reference server (empty Addr); yours would pass its
// listener's address and test accounts, and most likely no label filter.
// The filter keeps this example to a handful of core statements so it
// stays quick under -race.
func TestReferenceServer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole suite")
	}
	r := pop3probe.Require(t, pop3probe.Options{
		Profile:     "exchange2010",
		LabelFilter: "!slow && req: containsAny {V0001, V0004, V0005, V0008, C0006, 2.1.1, 2.1.2}",
	})
	if r.Summary.Counts["conformant"] == 0 {
		t.Error("no statement was judged conformant")
	}
}
