package conformance

import (
	"fmt"
	"regexp"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pop3conformance/pop3conformance/model/contract"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// login opens a session in the TRANSACTION state for a fresh account like
// the fixture "alice" (on a remote host: POP3_USER).
func login(ctx SpecContext, t *harness.Target) (*harness.Conn, harness.Account) {
	a := need(t.Account(ctx))
	c, err := t.Login(ctx, a)
	Expect(err).NotTo(HaveOccurred(), "log in as %s", a.User)
	return c, a
}

// session is login for a spec that needs no more than a session in
// TRANSACTION: it may be handed one that an earlier spec of this process
// left as a fresh login leaves it (harness.Target.Session). A spec that
// judges the login itself, counts on a fresh snapshot, or ends the session
// with QUIT uses login.
func session(ctx SpecContext, t *harness.Target) (*harness.Conn, harness.Account) {
	// The declaration orders the spec among the others that may share a
	// session; a spec that calls session without it is the suite's bug.
	ExpectWithOffset(1, contract.Has(CurrentSpecReport().Labels(), KeptSession)).To(BeTrue(), "a spec that calls session declares KeptSession")
	a := need(t.Account(ctx))
	c, err := t.Session(ctx, a)
	Expect(err).NotTo(HaveOccurred(), "log in as %s", a.User)
	return c, a
}

// dial opens a session in the AUTHORIZATION state.
func dial(ctx SpecContext, t *harness.Target) *harness.Conn {
	c, err := t.Dial(ctx)
	needTLS(err)
	Expect(err).NotTo(HaveOccurred(), "connect")
	Expect(c.Greeting.OK()).To(BeTrue(), "greeting %q", c.Greeting)
	return c
}

// cmd sends a command and returns its status line; a transport error is a
// failure of the server (it closed or stalled), except a close that only
// a statement about closing judges (explainClose).
func cmd(c *harness.Conn, line string) harness.Reply {
	r, err := c.Cmd(line)
	explainClose(c, line, err)
	Expect(err).NotTo(HaveOccurred(), "reply to %q", redactForMessage(line))
	return r
}

// multi sends a command that answers with a multi-line response.
func multi(c *harness.Conn, line string) harness.Multi {
	m, err := c.CmdMulti(line)
	explainClose(c, line, err)
	Expect(err).NotTo(HaveOccurred(), "multi-line reply to %q", line)
	return m
}

// expectOK and expectErr check a status indicator and name the command in
// the failure message.
func expectOK(r harness.Reply, what string) {
	ExpectWithOffset(1, r.OK()).To(BeTrue(), "%s: want +OK, got %q", what, r.String())
}

func expectErr(r harness.Reply, what string) {
	ExpectWithOffset(1, r.Err()).To(BeTrue(), "%s: want -ERR, got %q", what, r.String())
}

// redactForMessage keeps passwords out of failure messages, which end up
// in reports next to the transcript.
func redactForMessage(line string) string {
	shown, _ := harness.RedactCommand(line)
	return shown
}

// commandOf builds a command of exactly n octets including CRLF: keyword,
// one space, then filler in the argument.
func commandOf(keyword string, n int) string {
	fill := n - len(keyword) - 1 - 2
	if fill < 1 {
		fill = 1
	}
	return keyword + " " + strings.Repeat("x", fill)
}

// record attaches an observation to the spec report: INFO requirements
// and what a rule leaves open are recorded, not judged.
func record(name, format string, args ...any) {
	AddReportEntry(name, fmt.Sprintf(format, args...), ReportEntryVisibilityFailureOrVerbose)
}

// statusLineRE is RFC 2449's single-line = status [SP text] CRLF.
var statusLineRE = regexp.MustCompile(`^(\+OK|-ERR)( [^\r\n]*)?\r\n$`)

// rfcMaxResponseOctets is the response-line limit of RFC 1939 section 3
// and RFC 2449 section 4, CRLF included. The RFC specs hold a server to it
// whatever the profile says: no MS-STANXPOP3 statement varies it (C0001
// restates it, and its spec reads the profile's max_response_octets).
const rfcMaxResponseOctets = 512
