package pop3probe_test

import (
	"testing"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/probe/pop3probe"
	"github.com/pop3conformance/pop3conformance/probe/report"
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
	// The measured parameters describe the server as it was started:
	// the profile's own values, not literals of this test.
	p, err := profile.Load("exchange2010")
	if err != nil {
		t.Fatal(err)
	}
	want, err := p.Values()
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"max_command_octets", "separators", "unknown_user_reply"} {
		if got := r.Observed[key]; report.ShowValue(got) != report.ShowValue(want[key]) {
			t.Errorf("observed %s = %v, the profile says %v", key, got, want[key])
		}
	}
	if r.ClosestProfile != "exchange2010" {
		t.Errorf("closest profile %q, want exchange2010", r.ClosestProfile)
	}
}
