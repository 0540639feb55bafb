package pop3probe_test

import (
	"testing"

	"pop3conformance/probe/pop3probe"
	"pop3conformance/probe/report"
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
		Observe:     true,
	})
	if r.Summary.Counts["conformant"] == 0 {
		t.Error("no statement was judged conformant")
	}
	// The measured parameters describe the server as it was started.
	for key, want := range map[string]any{"max_command_octets": 512, "tab_separates": true, "unknown_user_reply": "ok"} {
		if got := r.Observed[key]; report.ShowValue(got) != report.ShowValue(want) {
			t.Errorf("observed %s = %v, want %v", key, got, want)
		}
	}
	if r.ClosestProfile != "exchange2010" {
		t.Errorf("closest profile %q, want exchange2010", r.ClosestProfile)
	}
}
