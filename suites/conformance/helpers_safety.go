package conformance

// Helpers that keep readonly specs harmless on a live server: failed
// logins there use a name no server has, never a configured account,
// whose lockout policy the suite cannot know.

import (
	. "github.com/onsi/gomega"

	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// failedPass fails a USER/PASS login on c with an unknown name and
// returns the reply that refused it: PASS's, or USER's when the server
// refuses unknown names at once.
func failedPass(c *harness.Conn) harness.Reply {
	u := cmd(c, "USER "+harness.NoSuchUser())
	if !u.OK() {
		return u
	}
	r := cmd(c, "PASS no-such-password")
	ExpectWithOffset(1, r.OK()).To(BeFalse(), "PASS for a user name that does not exist was accepted: %q", r.String())
	return r
}
