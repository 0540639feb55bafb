package conformance

// Helpers shared by the MS-STANXPOP3 spec files (ms_*.go). Names carry the
// "ms" prefix so they never clash with other areas' helpers.

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"pop3conformance/fixtures/profile"
	"pop3conformance/suites/harness"
	"pop3conformance/suites/verdict"
)

// msNoSuchUser is a mailbox name that no server holds. It stays short so
// that "USER <name>" fits the smallest command limit Exchange allows (40
// octets, E0006).
func msNoSuchUser() string {
	return fmt.Sprintf("nosuch%d", time.Now().UnixNano()%1_000_000_000)
}

// msAuthDial opens a connection ready for USER/PASS: in the AUTHORIZATION
// state, and under STLS when the profile refuses plaintext logins before
// TLS (V0010), as a well-behaved client would.
func msAuthDial(ctx SpecContext, t *harness.Target) *harness.Conn {
	c := dial(ctx, t)
	if !c.TLS() && !t.Profile.PlaintextBeforeTLS && t.Profile.STLS {
		r, err := c.StartTLS(t.TLSConfig())
		Expect(err).NotTo(HaveOccurred(), "STLS before a plaintext login")
		expectOK(r, "STLS")
	}
	return c
}

// msLoginAs logs in as a on a new connection and fails the spec when that
// does not work.
func msLoginAs(ctx SpecContext, t *harness.Target, a harness.Account) *harness.Conn {
	c, err := t.Login(ctx, a)
	ExpectWithOffset(1, err).NotTo(HaveOccurred(), "log in as %s", a.User)
	return c
}

var msStatRE = regexp.MustCompile(`^\+OK ([0-9]+) ([0-9]+)`)

// msStat sends STAT and returns the message count and maildrop size.
func msStat(c *harness.Conn) (n int, size int64) {
	r := cmd(c, "STAT")
	ExpectWithOffset(1, r.OK()).To(BeTrue(), "STAT: want +OK, got %q", r.String())
	m := msStatRE.FindStringSubmatch(r.String())
	ExpectWithOffset(1, m).NotTo(BeNil(), "STAT reply %q is not \"+OK nn mm\"", r.String())
	n, _ = strconv.Atoi(m[1])
	size, _ = strconv.ParseInt(m[2], 10, 64)
	return n, size
}

// msListing is one "n value" line of a LIST or UIDL listing.
type msListing struct {
	Num   int
	Value string
}

// msListAll sends a listing command (LIST or UIDL) and parses its lines.
func msListAll(c *harness.Conn, command string) []msListing {
	m := multi(c, command)
	ExpectWithOffset(1, m.OK()).To(BeTrue(), "%s: want +OK, got %q", command, m.String())
	var out []msListing
	for _, line := range m.Texts() {
		num, rest, _ := strings.Cut(line, " ")
		n, err := strconv.Atoi(num)
		ExpectWithOffset(1, err).NotTo(HaveOccurred(), "%s line %q does not start with a message number", command, line)
		val, _, _ := strings.Cut(rest, " ")
		out = append(out, msListing{Num: n, Value: val})
	}
	return out
}

// msUIDs returns the unique-ids by message number. A server that does not
// answer UIDL leaves the spec inconclusive: nothing else tells messages
// apart across sessions.
func msUIDs(c *harness.Conn) map[int]string {
	m := multi(c, "UIDL")
	if m.Err() {
		verdict.SkipInconclusive("the server answers UIDL with %q, so messages cannot be told apart across sessions", m.String())
	}
	ExpectWithOffset(1, m.OK()).To(BeTrue(), "UIDL: %q", m.String())
	out := map[int]string{}
	for _, line := range m.Texts() {
		f := strings.Fields(line)
		ExpectWithOffset(1, f).To(HaveLen(2), "UIDL line %q is not \"n unique-id\"", line)
		n, err := strconv.Atoi(f[0])
		ExpectWithOffset(1, err).NotTo(HaveOccurred(), "UIDL line %q", line)
		out[n] = f[1]
	}
	return out
}

// msRetr retrieves message n and returns it un-stuffed.
func msRetr(c *harness.Conn, n int) []byte {
	m := multi(c, fmt.Sprintf("RETR %d", n))
	ExpectWithOffset(1, m.OK()).To(BeTrue(), "RETR %d: want +OK, got %q", n, m.String())
	return m.Body()
}

// msNeedMessages ends the spec inconclusive when the maildrop holds fewer
// than want messages.
func msNeedMessages(have, want int) {
	if have < want {
		verdict.SkipInconclusive("the maildrop has %d messages, the check needs at least %d", have, want)
	}
}

// msQuitClean ends a session that marked nothing: QUIT must answer +OK.
func msQuitClean(c *harness.Conn) {
	r, err := c.Quit()
	ExpectWithOffset(1, err).NotTo(HaveOccurred(), "QUIT")
	ExpectWithOffset(1, r.OK()).To(BeTrue(), "QUIT: %q", r.String())
}

// msIsStatusLine reports a line that starts with a POP3 status indicator.
func msIsStatusLine(line []byte) bool {
	s := string(line)
	return strings.HasPrefix(s, "+OK") || strings.HasPrefix(s, "-ERR")
}

// msScaledTimers returns a variant of the bundled server whose inactivity
// timer for one state is scaled so that the expectation becomes want. The
// same factor applies to what the server does, so a server whose timer
// differs from the profile still differs, in proportion, and a
// discrimination run sees it without waiting minutes.
func msScaledTimers(ctx SpecContext, t *harness.Target, authenticated bool, want time.Duration) *harness.Target {
	expected := t.Profile.Timers.Unauthenticated.D()
	if authenticated {
		expected = t.Profile.Timers.Authenticated.D()
	}
	scale := func(d profile.Duration) profile.Duration {
		v := time.Duration(float64(d.D()) * float64(want) / float64(expected))
		if v < time.Millisecond {
			v = time.Millisecond
		}
		return profile.Duration(v)
	}
	return need(t.Variant(ctx, func(p *profile.Profile) {
		if authenticated {
			p.Timers.Authenticated = scale(p.Timers.Authenticated)
			// Logging in takes milliseconds; keep the other timer out of
			// the way.
			p.Timers.Unauthenticated = profile.Duration(10 * time.Second)
		} else {
			p.Timers.Unauthenticated = scale(p.Timers.Unauthenticated)
		}
	}))
}

// msTimerWindow is how early and how late a timer may fire: a fifth of the
// timer early (the client measures from when it received its last reply,
// after the server read the command), and a quarter of it plus a
// scheduling margin late. For Exchange's 30-minute timer the late end
// stays inside the slow spec time limit.
func msTimerWindow(d time.Duration) (early, late time.Duration) {
	return d - d/5, d + d/4 + 500*time.Millisecond
}
