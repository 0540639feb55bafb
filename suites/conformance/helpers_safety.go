package conformance

// Helpers that keep readonly specs harmless on a live server: failed
// logins there use a name no server has, never a configured account,
// whose lockout policy the suite cannot know.

import (
	. "github.com/onsi/ginkgo/v2"
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

// refusedAfterDele marks message 1 deleted, checks that line, which names
// it, is refused, and clears the mark with RSET. multiLine reads a
// wrongly sent body in full, so that the next reply is not misread.
func refusedAfterDele(ctx SpecContext, t *harness.Target, line string, multiLine bool) {
	c, _ := login(ctx, t)
	statAtLeast(c, 1)
	expectOK(cmd(c, "DELE 1"), "DELE 1")
	var r harness.Reply
	if multiLine {
		r = multi(c, line).Reply
	} else {
		r = cmd(c, line)
	}
	expectErr(r, line+" after DELE 1")
	expectOK(cmd(c, "RSET"), "RSET")
}
