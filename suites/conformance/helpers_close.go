package conformance

// What the suite measured about the target (harness.Facts) put to use:
// liveness checked with a command the server answers, error budgets,
// and the rule that a close is judged only by the statements about
// closing.

import (
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pop3conformance/pop3conformance/model/contract"
	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// closeStatements are the requirements about when a server closes the
// connection or keeps it open. A spec that checks one of them judges a
// close itself; every other spec whose connection the server closes after
// a negative reply ends inconclusive instead of blaming its own
// statement for a close that RFC 1939 section 4 and C0005 allow.
// RFC1939-7-pass-fail-back-to-auth is not one: it holds "unless the
// server closes", so a close after the refused PASS decides nothing.
var closeStatements = map[string]bool{
	"2.1.2": true, "E0006": true, "E0007": true, // an over-long command: closed or usable
	"C0005": true, "V0002": true, "V0003": true,
	"RFC1939-3-autologout-min": true, "RFC1939-3-autologout-no-update": true,
	"RFC1939-3-tcp-close-no-update": true,
	"RFC1939-4-lock-fail-err":       true,
	"RFC1939-6-quit-close":          true,
	"RFC1939-6-quit-update":         true,
	"RFC1939-13-bruteforce":         true,
	"RFC3206-4-sys-temp-semantics":  true,
}

// judgesClose reports whether the running spec checks a statement about
// closing (its req: labels).
func judgesClose() bool {
	for _, l := range CurrentSpecReport().Labels() {
		if id, ok := contract.ReqID(l); ok && closeStatements[id] {
			return true
		}
	}
	return false
}

// explainClose handles a command that found the connection closed by the
// server. A spec about closing judges it as it is. Any other spec ends
// inconclusive when a negative reply came right before the close (the
// server may close then); a close after a positive reply, with nothing
// to explain it, stays a failure of the spec, named as such.
func explainClose(c *harness.Conn, line string, err error) {
	if !harness.IsServerClose(err) || judgesClose() {
		return
	}
	t := currentTarget()
	state, tx := "AUTHORIZATION", c.InTransaction()
	if tx {
		state = "TRANSACTION"
	}
	measured := t.Facts().Authorization
	if tx {
		measured = t.Facts().Transaction
	}
	what := redactForMessage(line)
	if c.LastStatus() == "-ERR" {
		verdict.SkipInconclusive("the server closed the connection after %s in %s (measured: %s; a refused PASS closes: %s) instead of answering %q; RFC 1939 section 4 and C0005 let a server close after a negative reply, so this spec cannot judge its statement",
			harness.Count(c.ErrReplies(), "-ERR reply"), state, measured, t.Facts().FailedPassCloses, what)
	}
	FailHandler(fmt.Sprintf("the server closed the connection instead of answering %q in %s, with no negative reply before it to explain the close (%s in this state; measured: %s): %v",
		what, state, harness.Count(c.ErrReplies(), "-ERR reply"), measured, err), 2)
}

// errorLimit is after how many -ERR replies in a state the server closes
// the session: the smaller of the profile's limit and the measured one,
// 0 when neither closes.
func errorLimit(t *harness.Target, transaction bool) int {
	return minLimit(t.Profile.ErrorLimit(transaction), t.Facts().ErrorLimitIn(transaction))
}

// minLimit is the smaller of two limits where 0 means none.
func minLimit(a, b int) int {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}

// measuredSmaller reports whether the measured error limit of a state is
// below the profile's: a spec that needs more errors than the server
// takes is then inconclusive rather than not applicable.
func measuredSmaller(t *harness.Target, transaction bool) bool {
	p, m := t.Profile.ErrorLimit(transaction), t.Facts().ErrorLimitIn(transaction)
	return m > 0 && (p == 0 || m < p)
}

// capaAnswers reports whether CAPA may be sent in a state as a harmless
// command: the server was measured to answer it (unknown: the profile's
// word, as before the measurement existed).
func capaAnswers(t *harness.Target, transaction bool) bool {
	v := t.Facts().CapaAuthorization
	if transaction {
		v = t.Facts().CapaTransaction
	}
	return v != harness.No
}

// capaIfAnswered reads CAPA when the server was measured to answer it,
// and otherwise returns an empty, refused listing without sending it, so
// that asking does not spend a negative reply of the session.
func capaIfAnswered(t *harness.Target, c *harness.Conn) capabilities {
	if !capaAnswers(t, c.InTransaction()) {
		return capabilities{Tags: map[string][]string{}}
	}
	return readCapa(c)
}

// alive checks that the server still serves after something the spec
// did to c, with a command it is known to answer: NOOP in TRANSACTION;
// in AUTHORIZATION, CAPA when it was measured to answer there, otherwise
// QUIT (answered +OK in AUTHORIZATION by every RFC 1939 server), which
// ends the session. The failure names the command used.
func alive(t *harness.Target, c *harness.Conn, after string) {
	if c.InTransaction() {
		if t.Facts().NoopTransaction != harness.No {
			expectOKWith(c, "NOOP", after)
			return
		}
		expectOKWith(c, "STAT", after)
		return
	}
	if capaAnswers(t, false) {
		m := multi(c, "CAPA")
		ExpectWithOffset(1, m.OK()).To(BeTrue(), "the session must still work after %s: CAPA (measured to answer) got %q", after, m.String())
		return
	}
	expectOKWith(c, "QUIT", after+" (the server does not answer CAPA, so QUIT shows the session still reads commands)")
}

func expectOKWith(c *harness.Conn, line, after string) {
	r := cmd(c, line)
	ExpectWithOffset(2, r.OK()).To(BeTrue(), "the session must still work after %s: %s got %q", after, line, r.String())
}

// provoke sends a malformed line that a spec sends only to reach the
// situation it checks (a failed USER, say) and returns the reply. A
// server that drops the connection without any reply to it refused
// nothing: RFC1939-3-unknown-cmd judges the missing reply, and this spec
// ends inconclusive (Twisted closes on a USER without a name).
func provoke(c *harness.Conn, line string) harness.Reply {
	r, err := c.Cmd(line)
	if harness.IsServerClose(err) && !judgesClose() {
		verdict.SkipInconclusive("the server closed the connection without a reply to %q, which this spec sends only to reach the case it checks; RFC1939-3-unknown-cmd judges the missing reply",
			redactForMessage(line))
	}
	explainClose(c, line, err)
	ExpectWithOffset(1, err).NotTo(HaveOccurred(), "reply to %q", redactForMessage(line))
	return r
}
