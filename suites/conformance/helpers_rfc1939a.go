package conformance

// Helpers of the RFC 1939 sections 3, 4, 6, 11 and 13 specs
// (rfc1939_3_basic.go, rfc1939_4_authorization.go, rfc1939_6_update.go,
// rfc1939_11_13_format_security.go). Names carry the "rfc1939a" prefix so
// that they never clash with other areas' helpers.

import (
	"bytes"
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

// rfc1939aAutologoutMin is RFC 1939 section 3's own floor for an
// inactivity autologout timer. It is the rule being checked, not a profile
// value: a profile whose timers are shorter follows MS-STANXPOP3 V0002.
const rfc1939aAutologoutMin = 10 * time.Minute

// rfc1939aScaledMin is what the RFC minimum becomes on the bundled server,
// whose timers the suite divides by rfc1939aAutologoutMin/rfc1939aScaledMin
// so that a timer spec takes about a second.
const rfc1939aScaledMin = 800 * time.Millisecond

// rfc1939aQuiet is how long a spec listens for octets the server must not
// send.
const rfc1939aQuiet = 200 * time.Millisecond

// rfc1939aMaxRetrieved bounds how many messages a spec retrieves from a
// remote maildrop of unknown size.
const rfc1939aMaxRetrieved = 10

// rfc1939aDialUntouched connects without STLS, so that nothing has been
// sent when the spec starts: the plain port when the target has one,
// otherwise the implicit TLS port.
func rfc1939aDialUntouched(ctx SpecContext, t *harness.Target) *harness.Conn {
	var (
		c   *harness.Conn
		err error
	)
	if t.HasPlain() {
		c, err = t.DialPlain(ctx)
	} else {
		c, err = t.DialTLS(ctx)
	}
	ExpectWithOffset(1, err).NotTo(HaveOccurred(), "connect")
	return c
}

// rfc1939aAuthDial opens a session ready for USER/PASS: STLS first when the
// profile refuses plaintext logins before TLS (V0010).
func rfc1939aAuthDial(ctx SpecContext, t *harness.Target) *harness.Conn {
	c := dial(ctx, t)
	rfc1939aSecure(c, t)
	return c
}

// rfc1939aSecure runs STLS on c when the profile needs it before a login.
func rfc1939aSecure(c *harness.Conn, t *harness.Target) {
	if !c.TLS() && !t.Profile.PlaintextBeforeTLS && t.Profile.STLS {
		r, err := c.StartTLS(t.TLSConfig())
		ExpectWithOffset(2, err).NotTo(HaveOccurred(), "STLS before a plaintext login")
		ExpectWithOffset(2, r.OK()).To(BeTrue(), "STLS: %q", r.String())
	}
}

// rfc1939aLoginOn logs in with USER and PASS on an open session in the
// AUTHORIZATION state, with the keywords spelt as given.
func rfc1939aLoginOn(c *harness.Conn, t *harness.Target, a harness.Account, user, pass string) {
	rfc1939aSecure(c, t)
	r := cmd(c, user+" "+a.User)
	ExpectWithOffset(1, r.OK()).To(BeTrue(), "%s %s: want +OK, got %q", user, a.User, r.String())
	r = cmd(c, pass+" "+a.Password)
	ExpectWithOffset(1, r.OK()).To(BeTrue(), "%s for %s: want +OK, got %q", pass, a.User, r.String())
}

// rfc1939aLoginAs logs in as a on a new connection.
func rfc1939aLoginAs(ctx SpecContext, t *harness.Target, a harness.Account) *harness.Conn {
	c, err := t.Login(ctx, a)
	ExpectWithOffset(1, err).NotTo(HaveOccurred(), "log in as %s", a.User)
	return c
}

// rfc1939aLoginSoon logs in as a, retrying for a short while when the
// maildrop is still locked: a server releases the lock of a session that
// was cut off only once it notices the closed connection.
func rfc1939aLoginSoon(ctx SpecContext, t *harness.Target, a harness.Account) *harness.Conn {
	deadline := time.Now().Add(3 * time.Second)
	for {
		c, err := t.Login(ctx, a)
		if err == nil {
			return c
		}
		if c != nil {
			c.Close()
		}
		if time.Now().After(deadline) {
			Fail(fmt.Sprintf("log in as %s again after the first session ended: %v", a.User, err), 1)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// rfc1939aQuit ends a TRANSACTION session with QUIT and waits for the
// server to close, so that UPDATE is over when it returns.
func rfc1939aQuit(c *harness.Conn) harness.Reply {
	r := cmd(c, "QUIT")
	_, err := c.ExpectClosed(5 * time.Second)
	ExpectWithOffset(1, err).NotTo(HaveOccurred(), "the server must close the connection after QUIT")
	return r
}

// rfc1939aCapa returns the server's CAPA tags (upper-cased first words), or
// nil when the server does not implement CAPA (RFC 1939 alone has none).
func rfc1939aCapa(c *harness.Conn) map[string]bool {
	m, err := c.CmdMulti("CAPA")
	ExpectWithOffset(1, err).NotTo(HaveOccurred(), "reply to CAPA")
	if !m.OK() {
		return nil
	}
	tags := map[string]bool{}
	for _, l := range m.Texts() {
		if f := strings.Fields(l); len(f) > 0 {
			tags[strings.ToUpper(f[0])] = true
		}
	}
	return tags
}

var rfc1939aStatRE = regexp.MustCompile(`^\+OK ([0-9]+) ([0-9]+)`)

// rfc1939aStat sends STAT and returns the message count and size.
func rfc1939aStat(c *harness.Conn) (int, int64) {
	r := cmd(c, "STAT")
	m := rfc1939aStatRE.FindStringSubmatch(r.String())
	ExpectWithOffset(1, m).NotTo(BeNil(), "STAT: want \"+OK nn mm\", got %q", r.String())
	n, _ := strconv.Atoi(m[1])
	size, _ := strconv.ParseInt(m[2], 10, 64)
	return n, size
}

// rfc1939aListing is a parsed scan or unique-id listing line.
type rfc1939aListing struct {
	Num  string // as sent
	Rest string // size or unique-id, as sent
}

// rfc1939aListAll sends a listing command (LIST, UIDL) and splits each line
// into the message number and what follows it.
func rfc1939aListAll(c *harness.Conn, command string) (harness.Multi, []rfc1939aListing) {
	m := multi(c, command)
	ExpectWithOffset(1, m.OK()).To(BeTrue(), "%s: want +OK, got %q", command, m.String())
	out := make([]rfc1939aListing, 0, len(m.Lines))
	for _, l := range m.Texts() {
		num, rest, _ := strings.Cut(l, " ")
		out = append(out, rfc1939aListing{Num: num, Rest: rest})
	}
	return m, out
}

// rfc1939aMailbox is what a session sees of a maildrop: enough to tell
// whether anything was removed between two sessions.
type rfc1939aMailbox struct {
	Count int
	Size  int64
	// UIDs are the unique-ids in order, nil when the server has no UIDL.
	UIDs []string
}

// rfc1939aLook reads the maildrop state of a TRANSACTION session.
func rfc1939aLook(c *harness.Conn) rfc1939aMailbox {
	var mb rfc1939aMailbox
	mb.Count, mb.Size = rfc1939aStat(c)
	m, err := c.CmdMulti("UIDL")
	ExpectWithOffset(1, err).NotTo(HaveOccurred(), "reply to UIDL")
	if m.OK() {
		mb.UIDs = []string{}
		for _, l := range m.Texts() {
			_, uid, _ := strings.Cut(l, " ")
			mb.UIDs = append(mb.UIDs, uid)
		}
	}
	return mb
}

// rfc1939aExpectNothingRemoved compares two looks at one maildrop. Against a
// remote host mail may arrive in between, so with unique-ids every message
// seen before must still be there; without them the count must not drop.
func rfc1939aExpectNothingRemoved(before, after rfc1939aMailbox, why string) {
	if before.UIDs != nil && after.UIDs != nil {
		have := map[string]bool{}
		for _, u := range after.UIDs {
			have[u] = true
		}
		var gone []string
		for _, u := range before.UIDs {
			if !have[u] {
				gone = append(gone, u)
			}
		}
		ExpectWithOffset(1, gone).To(BeEmpty(), "%s, yet messages with these unique-ids were removed", why)
		return
	}
	ExpectWithOffset(1, after.Count).To(BeNumerically(">=", before.Count), "%s, yet the maildrop went from %d to %d messages", why, before.Count, after.Count)
}

// rfc1939aAliceFixture returns the fixture messages when the account's
// maildrop is known to hold fixture "alice", and ends the spec
// inconclusive otherwise.
func rfc1939aAliceFixture(a harness.Account) []harness.FixtureMessage {
	if a.Fixture != "alice" {
		verdict.SkipInconclusive("the maildrop of %s is not known to hold the fixture alice (set %s=alice on an account prepared that way)", a.User, harness.EnvMailboxFixture)
	}
	msgs, err := harness.FixtureMessages("alice")
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return msgs
}

// rfc1939aSplitLines splits data after each LF, keeping the line ends.
func rfc1939aSplitLines(data []byte) [][]byte {
	var out [][]byte
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			out = append(out, data)
			break
		}
		out = append(out, data[:i+1])
		data = data[i+1:]
	}
	return out
}

// rfc1939aErrBudget is how many negative replies one session may collect
// before the profile lets the server close it (C0005); 0 means no limit.
func rfc1939aErrBudget(t *harness.Target) int {
	if n := t.Profile.CloseAfterErrors; n > 0 {
		return n - 1
	}
	return 0
}

// rfc1939aExpectErrs sends each command and expects -ERR, then checks with
// alive that the session still works. A new session is opened with open
// whenever the profile's error budget would let the server close the
// current one; end is called on a session before it is replaced.
func rfc1939aExpectErrs(c *harness.Conn, t *harness.Target, cmds []string, open func() *harness.Conn, end func(*harness.Conn), alive func(*harness.Conn)) *harness.Conn {
	budget, used := rfc1939aErrBudget(t), 0
	for _, line := range cmds {
		if budget > 0 && used == budget {
			end(c)
			c, used = open(), 0
		}
		r := cmd(c, line)
		ExpectWithOffset(1, r.Err()).To(BeTrue(), "%q: want -ERR, got %q", redactForMessage(line), r.String())
		used++
		alive(c)
	}
	return c
}

// rfc1939aLine is one line a server sent, with the command it answered.
type rfc1939aLine struct {
	What string
	Raw  []byte
	// Status is true for status lines (greeting, first line of every
	// reply), false for the lines of a listing (CAPA, LIST, UIDL).
	Status bool
}

// rfc1939aRichSession runs a session that draws every kind of reply from
// the server: the greeting, CAPA, USER for known and unknown names, PASS,
// STAT, LIST, UIDL, RETR, TOP, unknown commands, commands in the wrong
// state, NOOP, RSET and QUIT. It returns every status line and every
// listing line. Message bodies are not returned: their lines are the
// message's, not the server's.
func rfc1939aRichSession(ctx SpecContext, t *harness.Target) []rfc1939aLine {
	var out []rfc1939aLine
	status := func(what string, r harness.Reply) {
		out = append(out, rfc1939aLine{What: what, Raw: r.Raw, Status: true})
	}
	listing := func(what string, m harness.Multi) {
		status(what, m.Reply)
		for _, l := range m.Lines {
			out = append(out, rfc1939aLine{What: what + " listing", Raw: l})
		}
	}
	budget, errs := rfc1939aErrBudget(t), 0
	// errCmd sends a command that draws -ERR only while the profile's
	// error budget lasts.
	errCmd := func(c *harness.Conn, line string) {
		if budget > 0 && errs >= budget {
			return
		}
		r := cmd(c, line)
		status(redactForMessage(line), r)
		if r.Err() {
			errs++
		}
	}

	a := need(t.Account(ctx))
	// An unknown name on its own connection: -ERR or +OK, by profile.
	c0 := rfc1939aAuthDial(ctx, t)
	status("greeting", c0.Greeting)
	status("USER of an unknown name", cmd(c0, "USER "+rfc1939aNoSuchUser()))
	status("QUIT in AUTHORIZATION", cmd(c0, "QUIT"))

	c := dial(ctx, t)
	status("greeting", c.Greeting)
	capa, err := c.CmdMulti("CAPA")
	Expect(err).NotTo(HaveOccurred(), "reply to CAPA")
	if capa.OK() {
		listing("CAPA", capa)
	} else {
		status("CAPA", capa.Reply)
	}
	errCmd(c, "XYZZY")
	errCmd(c, "STAT")
	rfc1939aSecure(c, t)
	r := cmd(c, "USER "+a.User)
	status("USER", r)
	Expect(r.OK()).To(BeTrue(), "USER %s: %q", a.User, r.String())
	r = cmd(c, "PASS "+a.Password)
	status("PASS", r)
	Expect(r.OK()).To(BeTrue(), "PASS: %q", r.String())

	n, _ := rfc1939aStat(c)
	status("STAT", cmd(c, "STAT"))
	if m := multi(c, "LIST"); m.OK() {
		listing("LIST", m)
	} else {
		status("LIST", m.Reply)
	}
	if m := multi(c, "UIDL"); m.OK() {
		listing("UIDL", m)
	} else {
		status("UIDL", m.Reply)
	}
	if n > 0 {
		status("LIST 1", cmd(c, "LIST 1"))
		status("UIDL 1", cmd(c, "UIDL 1"))
		status("RETR 1", multi(c, "RETR 1").Reply)
		if capa.OK() && rfc1939aHasTag(capa, "TOP") {
			status("TOP 1 0", multi(c, "TOP 1 0").Reply)
		}
	}
	errCmd(c, fmt.Sprintf("RETR %d", n+1))
	errCmd(c, "XYZZY")
	errCmd(c, "USER "+a.User)
	status("NOOP", cmd(c, "NOOP"))
	status("RSET", cmd(c, "RSET"))
	status("QUIT", cmd(c, "QUIT"))
	return out
}

func rfc1939aHasTag(capa harness.Multi, tag string) bool {
	for _, l := range capa.Texts() {
		if f := strings.Fields(l); len(f) > 0 && strings.EqualFold(f[0], tag) {
			return true
		}
	}
	return false
}

// rfc1939aNoSuchUser is a mailbox name no server holds, short enough for
// the smallest command limit Exchange allows (E0006).
func rfc1939aNoSuchUser() string {
	return fmt.Sprintf("nobody%d", time.Now().UnixNano()%1_000_000_000)
}

// rfc1939aScaled returns a bundled server whose timers run
// rfc1939aAutologoutMin/rfc1939aScaledMin times faster, on the server and
// in the expectations alike, so that the RFC minimum becomes
// rfc1939aScaledMin.
func rfc1939aScaled(ctx SpecContext, t *harness.Target) *harness.Target {
	k := rfc1939aAutologoutMin / rfc1939aScaledMin
	return need(t.Variant(ctx, func(p *profile.Profile) {
		p.Timers.Unauthenticated = profile.Duration(p.Timers.Unauthenticated.D() / k)
		p.Timers.Authenticated = profile.Duration(p.Timers.Authenticated.D() / k)
	}))
}

// rfc1939aShortTimers returns a bundled server whose idle timers are both
// d, on the server and in the expectations.
func rfc1939aShortTimers(ctx SpecContext, t *harness.Target, d time.Duration) *harness.Target {
	return need(t.Variant(ctx, func(p *profile.Profile) {
		p.Timers.Unauthenticated = profile.Duration(d)
		p.Timers.Authenticated = profile.Duration(d)
	}))
}

// rfc1939aIdleSession is one connection kept idle by an autologout check,
// with the command that proves it is still alive.
type rfc1939aIdleSession struct {
	state string
	c     *harness.Conn
	poke  string
	multi bool // poke answers with a multi-line reply
}

// rfc1939aIdleRounds lets every session idle for most of min, pokes each
// with a command, and does it once more. Surviving the first round shows
// that no timer shorter than min closed the session; surviving the second
// shows that the command restarted the timer, since by then more than min
// has passed since the session began to idle.
func rfc1939aIdleRounds(sessions []rfc1939aIdleSession, min time.Duration) {
	// The server starts its timer when it waits for the next line, a
	// moment before the client has read the reply; a margin keeps
	// scheduling noise out of the verdict.
	idle := min * 85 / 100
	for round := 1; round <= 2; round++ {
		time.Sleep(idle)
		for _, s := range sessions {
			// A server that gave up on the session has closed it, perhaps
			// after a notice; see that before the poke reads the notice
			// as its reply.
			extra, closed := s.c.Quiet(time.Millisecond)
			ExpectWithOffset(1, closed || len(extra) > 0).To(BeFalse(),
				"%s: the server ended a session idle for %v (round %d), under the RFC minimum of %v; it sent %q", s.state, idle, round, min, extra)
			var (
				r   harness.Reply
				err error
			)
			if s.multi {
				var m harness.Multi
				m, err = s.c.CmdMulti(s.poke)
				r = m.Reply
			} else {
				r, err = s.c.Cmd(s.poke)
			}
			ExpectWithOffset(1, err).NotTo(HaveOccurred(),
				"%s: the server closed a session after %v idle (round %d), under the RFC minimum of %v", s.state, idle, round, min)
			ExpectWithOffset(1, r.OK() || r.Err()).To(BeTrue(), "%s: %s after %v idle: %q", s.state, s.poke, idle, r.String())
		}
	}
}

// rfc1939aEachMessage retrieves up to rfc1939aMaxRetrieved messages and
// hands each to check with its number and LIST size.
func rfc1939aEachMessage(c *harness.Conn, check func(num int, listed int64, m harness.Multi)) int {
	_, list := rfc1939aListAll(c, "LIST")
	done := 0
	for _, l := range list {
		if done == rfc1939aMaxRetrieved {
			break
		}
		num, err := strconv.Atoi(l.Num)
		ExpectWithOffset(1, err).NotTo(HaveOccurred(), "scan listing number %q", l.Num)
		size, err := strconv.ParseInt(strings.Fields(l.Rest + " x")[0], 10, 64)
		ExpectWithOffset(1, err).NotTo(HaveOccurred(), "scan listing size %q", l.Rest)
		m := multi(c, fmt.Sprintf("RETR %d", num))
		ExpectWithOffset(1, m.OK()).To(BeTrue(), "RETR %d: %q", num, m.String())
		check(num, size, m)
		done++
	}
	return done
}

// rfc1939aRecord attaches an observation to the spec report: the INFO
// requirements are recorded, not judged.
func rfc1939aRecord(name, format string, args ...any) {
	AddReportEntry(name, fmt.Sprintf(format, args...))
}
