package observe

import (
	"fmt"

	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// useFacts takes the parameters the suite measured before its specs
// (harness.Facts) instead of sending the same commands again.
func (p *prober) useFacts(f harness.Facts) {
	how := "measured before the specs: unknown commands on one session until the server closed it (at most %d)"
	if f.Derived {
		how = "derived from the bundled server's profile (at most %d)"
	}
	for _, s := range []struct {
		key   string
		limit harness.ErrorLimit
	}{
		{"close_after_errors", f.Authorization},
		{"close_after_errors_transaction", f.Transaction},
	} {
		if !s.limit.Measured {
			p.skip(s.key, "the suite could not open a session to count the -ERR replies before a close")
			continue
		}
		method := fmt.Sprintf(how, s.limit.Cap) + "; " + s.limit.String()
		if !s.limit.Closes {
			// The profile's 0 says "never closes"; that is all a capped
			// count can say, and the method text says where it stopped.
			method += ", written as 0 (no close seen)"
		}
		p.set(s.key, s.limit.Limit(), method)
	}
}
