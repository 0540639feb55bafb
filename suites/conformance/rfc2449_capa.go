package conformance

// RFC 2449 sections 4 to 7 and 9: command length, the CAPA command, the
// initial capabilities (TOP, USER, SASL, RESP-CODES, LOGIN-DELAY,
// PIPELINING, EXPIRE, UIDL, IMPLEMENTATION), no APOP tag, the registry;
// plus the comparison of what CAPA advertises with what the profile says.

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// capaLineRE is RFC 2449 section 3's capability line: a tag of cchar
// (printable ASCII without ".") and parameters of printable ASCII, each
// after one SP.
var capaLineRE = regexp.MustCompile(`^[\x21-\x2D\x2F-\x7E]+( [\x21-\x7E]+)*\r\n$`)

var _ = Describe("RFC 2449 section 5 the CAPA command", func() {
	Spec("answers CAPA with +OK and a list or with -ERR, and the session goes on", IDs("RFC2449-5-capa-unsupported"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
		c := dial(ctx, t)
		k := readCapa(c)
		AddReportEntry("CAPA supported", k.OK, ReportEntryVisibilityFailureOrVerbose)
		if !k.OK {
			// A server without the extension mechanism must still
			// answer the client's next command.
			r := cmd(c, "QUIT")
			expectOK(r, "QUIT after CAPA got -ERR")
			return
		}
		Expect(k.Multi.Terminator).NotTo(BeEmpty(), "the capability list ends with a dot line")
		expectOK(cmd(c, "QUIT"), "QUIT after CAPA")
	})

	Spec("answers CAPA in AUTHORIZATION and in TRANSACTION", IDs("RFC2449-5-capa-both-states"), Readonly, func(ctx SpecContext, t *harness.Target) {
		c := dial(ctx, t)
		needCapa(c)
		c.Close()
		l, _ := login(ctx, t)
		after := readCapa(l)
		Expect(after.OK).To(BeTrue(), "CAPA in TRANSACTION: %q", after.Multi.String())
		expectOK(cmd(l, "STAT"), "STAT after CAPA in TRANSACTION")
	})

	checkFormat := func(k capabilities, max int, state string) {
		Expect(k.Multi.Terminator).To(Equal([]byte(".\r\n")), "CAPA %s: terminator", state)
		Expect(k.Multi.Lines).NotTo(BeEmpty(), "CAPA %s: +OK with no capability", state)
		for _, l := range k.Multi.Lines {
			Expect(len(l)).To(BeNumerically("<=", max), "CAPA %s: line %q is longer than %d octets", state, l, max)
			Expect(capaLineRE.Match(l)).To(BeTrue(), "CAPA %s: %q is not tag *(SP param) CRLF", state, l)
		}
	}
	Spec("lists one capability per line, tag and parameters, ended by a dot line", IDs("RFC2449-5-capa-format"), Readonly, capaBoth, func(ctx SpecContext, t *harness.Target) {
		p := capaBoth.Get(ctx, t)
		checkFormat(p.Before, rfcMaxResponseOctets, "before login")
		checkFormat(p.After, rfcMaxResponseOctets, "after login")
	})

	Spec("still lists after login every capability it listed before", IDs("RFC2449-5-capa-auth-caps-in-both"), Readonly, capaBoth, func(ctx SpecContext, t *harness.Target) {
		p := capaBothStates(ctx, t)
		for _, tag := range p.Before.TagSet() {
			if tag == "STLS" {
				// RFC 2595 section 4: STLS is listed only where it is
				// permitted, never in TRANSACTION.
				continue
			}
			Expect(p.After.Has(tag)).To(BeTrue(), "%s is listed before login but not after (after: %v)", tag, p.After.TagSet())
		}
	})
})

// expectTag says whether the profile makes the server list tag in a
// session under TLS or not, before or after login. sure is false where
// the profile leaves it open.
func expectTag(p *profile.Profile, tag string, tlsOn, loggedIn bool) (want, sure bool) {
	plain := p.PlaintextLogin(tlsOn)
	switch tag {
	case "STLS":
		return p.STLS && !tlsOn && !loggedIn, true
	case "USER":
		// A server that refuses plaintext before TLS may or may not keep
		// USER in its list there (RFC 2449 6.2: "not necessarily for
		// every user").
		return p.HasCapability("USER"), plain || loggedIn
	case "SASL":
		return len(profileMechs(p, plain)) > 0, true
	case "IMPLEMENTATION":
		// Both states, or TRANSACTION only (RFC 2449 6.9).
		return p.Implementation != "", loggedIn || p.Implementation == ""
	case "EXPIRE":
		st := p.Storage
		if p.HasCapability("EXPIRE") || st.AdvertiseExpire && st.RetentionDays > 0 {
			return true, true
		}
		// advertise_expire with no retention could be EXPIRE NEVER.
		return false, !st.AdvertiseExpire
	}
	return p.HasCapability(tag), true
}

// profileNames says whether the profile accounts for tag at all.
func profileNames(p *profile.Profile, tag string) bool {
	return p.HasCapability(tag) || tag == "EXPIRE" && p.Storage.AdvertiseExpire
}

// profileMechs are the SASL mechanisms the profile offers, without
// PLAIN where plaintext passwords are not allowed.
func profileMechs(p *profile.Profile, plain bool) []string {
	var out []string
	for _, m := range p.SASL {
		if m == "PLAIN" && !plain {
			continue
		}
		out = append(out, m)
	}
	return out
}

// tableTags are the tags whose presence the table below compares with
// the profile, each under its own requirement.
var tableTags = []string{"TOP", "USER", "SASL", "RESP-CODES", "LOGIN-DELAY", "PIPELINING", "EXPIRE", "UIDL", "IMPLEMENTATION", "STLS", "AUTH-RESP-CODE"}

var _ = Describe("RFC 2449 section 6 capabilities advertised as the profile says", func() {
	type tagCase struct {
		tag string
		ids IDList
	}
	cases := []tagCase{
		{"TOP", IDs("RFC2449-6.1-top-cap")},
		{"USER", IDs("RFC2449-6.2-user-cap")},
		{"SASL", IDs("RFC2449-6.3-sasl-cap")},
		{"RESP-CODES", IDs("RFC2449-6.4-resp-codes-cap")},
		{"LOGIN-DELAY", IDs("RFC2449-6.5-login-delay-cap")},
		{"PIPELINING", IDs("RFC2449-6.6-pipelining-cap")},
		{"EXPIRE", IDs("RFC2449-6.7-expire-cap")},
		{"UIDL", IDs("RFC2449-6.8-uidl-cap")},
		{"IMPLEMENTATION", IDs("RFC2449-6.9-implementation-cap")},
		{"STLS", IDs("RFC2595-4-stls-cap")},
		{"AUTH-RESP-CODE", IDs("RFC3206-6-auth-resp-code-cap")},
	}
	for _, tc := range cases {
		Spec(fmt.Sprintf("advertises %s before and after login exactly when the profile does", tc.tag), tc.ids, Readonly, capaBoth, func(ctx SpecContext, t *harness.Target) {
			p := capaBothStates(ctx, t)
			before, after := p.Before, p.After
			for _, s := range []struct {
				k        capabilities
				tls, in  bool
				state    string
				listHint []string
			}{
				{before, p.TLSBefore, false, "before login", before.Order},
				{after, p.TLSAfter, true, "after login", after.Order},
			} {
				want, sure := expectTag(t.Profile, tc.tag, s.tls, s.in)
				if !sure {
					continue
				}
				Expect(s.k.Has(tc.tag)).To(Equal(want), "%s %s: profile %s expects listed=%v; CAPA lists %v", tc.tag, s.state, t.Profile.Name, want, s.listHint)
			}
		})
	}

	Spec("lists the profile's SASL mechanisms once logged in", IDs("RFC2449-6.3-sasl-cap"), Readonly, KeptSession, func(ctx SpecContext, t *harness.Target) {
		l, _ := session(ctx, t)
		k := needCapa(l)
		want := profileMechs(t.Profile, t.Profile.PlaintextLogin(l.TLS()))
		got := upperAll(k.Params("SASL"))
		Expect(got).To(ConsistOf(want), "SASL mechanisms after login (profile %s)", t.Profile.Name)
	})

	Spec("names the profile's implementation string in IMPLEMENTATION", IDs("RFC2449-6.9-implementation-cap"), Readonly, capaBoth, func(ctx SpecContext, t *harness.Target) {
		p := capaBoth.Get(ctx, t)
		before, after := p.Before, p.After
		// Recorded only; the suite never lets it change an expectation
		// (RFC 2449 6.9: clients must not switch on it).
		AddReportEntry("IMPLEMENTATION", strings.Join(after.Params("IMPLEMENTATION"), " "), ReportEntryVisibilityFailureOrVerbose)
		if t.Profile.Implementation == "" {
			verdict.SkipNotApplicable("the profile names no implementation string")
		}
		Expect(strings.Join(after.Params("IMPLEMENTATION"), " ")).To(Equal(t.Profile.Implementation), "IMPLEMENTATION after login")
		if before.Has("IMPLEMENTATION") {
			Expect(strings.Join(before.Params("IMPLEMENTATION"), " ")).To(Equal(t.Profile.Implementation), "IMPLEMENTATION before login")
		}
	})

	Spec("lists no APOP tag, in either state", IDs("RFC2449-6-no-apop-cap"), Readonly, capaBoth, func(ctx SpecContext, t *harness.Target) {
		p := capaBothStates(ctx, t)
		Expect(p.Before.Has("APOP")).To(BeFalse(), "CAPA before login lists APOP: %v", p.Before.Order)
		Expect(p.After.Has("APOP")).To(BeFalse(), "CAPA after login lists APOP: %v", p.After.Order)
	})

	// Standard tags: RFC 2449, RFC 2595 (STLS), RFC 3206 (AUTH-RESP-CODE),
	// RFC 6856 (UTF8, LANG).
	registered := []string{"TOP", "USER", "SASL", "RESP-CODES", "LOGIN-DELAY", "PIPELINING", "EXPIRE", "UIDL", "IMPLEMENTATION", "STLS", "AUTH-RESP-CODE", "UTF8", "LANG"}
	Spec("lists registered or private (X) tags only, and no other tag the profile does not name", IDs("RFC2449-9-registry"), Readonly, capaBoth, func(ctx SpecContext, t *harness.Target) {
		p := capaBothStates(ctx, t)
		var private, unknown, extra []string
		for _, k := range []capabilities{p.Before, p.After} {
			for _, tag := range k.TagSet() {
				switch {
				case strings.HasPrefix(tag, "X"):
					private = append(private, tag)
				case !slices.Contains(registered, tag):
					unknown = append(unknown, tag)
				}
				if !strings.HasPrefix(tag, "X") && !slices.Contains(tableTags, tag) && !profileNames(t.Profile, tag) {
					extra = append(extra, tag)
				}
			}
		}
		AddReportEntry("private capabilities", strings.Join(slices.Compact(private), " "), ReportEntryVisibilityFailureOrVerbose)
		Expect(slices.Compact(unknown)).To(BeEmpty(), "tags neither registered with IANA nor private (X...)")
		Expect(slices.Compact(extra)).To(BeEmpty(), "tags the profile %s does not name", t.Profile.Name)
	})
})

var _ = Describe("RFC 2449 section 6 what the capabilities promise", func() {
	Spec("answers TOP when TOP is advertised", IDs("RFC2449-6.1-top-cap"), Readonly, KeptSession, func(ctx SpecContext, t *harness.Target) {
		l, _ := session(ctx, t)
		needTag(needCapa(l), "TOP", "after login")
		n := messageCount(l)
		if n == 0 {
			verdict.SkipInconclusive("the maildrop is empty, so TOP has no message to show")
		}
		top := multi(l, "TOP 1 0")
		expectOK(top.Reply, "TOP 1 0")
		retr := multi(l, "RETR 1")
		expectOK(retr.Reply, "RETR 1")
		// TOP n 0 is the header, the blank line, and no body line.
		head, _, found := strings.Cut(string(retr.Body()), "\r\n\r\n")
		if !found {
			verdict.SkipInconclusive("message 1 has no blank line after its header")
		}
		Expect(string(top.Body())).To(Equal(head+"\r\n\r\n"), "TOP 1 0 must be the header and the blank line of message 1")
	})

	Spec("answers UIDL when UIDL is advertised", IDs("RFC2449-6.8-uidl-cap"), Readonly, KeptSession, func(ctx SpecContext, t *harness.Target) {
		l, _ := session(ctx, t)
		needTag(needCapa(l), "UIDL", "after login")
		n := messageCount(l)
		m := multi(l, "UIDL")
		expectOK(m.Reply, "UIDL")
		Expect(m.Texts()).To(HaveLen(n), "UIDL lists one line per message")
		for i, line := range m.Texts() {
			Expect(line).To(MatchRegexp(`^%d [\x21-\x7E]{1,70}$`, i+1), "UIDL line %d", i+1)
		}
		if n > 0 {
			expectOK(cmd(l, "UIDL 1"), "UIDL 1")
		}
	})

	Spec("logs in with USER and PASS when USER is advertised", IDs("RFC2449-6.2-user-cap"), Readonly, func(ctx SpecContext, t *harness.Target) {
		c := plaintextReady(ctx, t)
		needTag(needCapaFresh(t, c), "USER", "where plaintext logins are allowed")
		a := need(t.Account(ctx))
		Expect(loginAgain(c, a)).To(Succeed())
		expectOK(cmd(c, "STAT"), "STAT after USER/PASS")
	})

	Spec("accepts AUTH for every mechanism it lists in SASL", IDs("RFC2449-6.3-sasl-cap"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
		c := plaintextReady(ctx, t)
		k := needCapaFresh(t, c)
		needTag(k, "SASL", "where plaintext logins are allowed")
		Expect(k.Params("SASL")).NotTo(BeEmpty(), "SASL lists no mechanism")
		for _, m := range k.Params("SASL") {
			// Without an initial response every mechanism starts with a
			// server challenge, empty or not; "*" then cancels it.
			r := cmd(c, "AUTH "+m)
			Expect(r.Status).To(Equal("+"), "AUTH %s: the listed mechanism must start an exchange, got %q", m, r.String())
			expectErr(cmd(c, "*"), "cancelling AUTH "+m)
		}
	})

	Spec("marks only response codes with an opening bracket when RESP-CODES is advertised", IDs("RFC2449-6.4-resp-codes-cap"), Readonly, func(ctx SpecContext, t *harness.Target) {
		c := plaintextReady(ctx, t)
		needTag(needCapaFresh(t, c), "RESP-CODES", "before login")
		a := need(t.Account(ctx))
		var seen []harness.Reply
		seen = append(seen, c.Greeting)
		// A spread of failures: wrong state, unknown command, a failed
		// login (of a name no server has: a wrong password for the
		// account could count towards its lockout), then bad arguments
		// in TRANSACTION.
		for _, line := range []string{"STAT", "XYZZY", "USER " + harness.NoSuchUser(), "PASS x", "PASS nouser"} {
			seen = append(seen, cmd(c, line))
		}
		Expect(loginAgain(c, a)).To(Succeed())
		for _, line := range []string{"RETR 999999", "UIDL 0", "LIST x", "TOP 1", "RSET"} {
			seen = append(seen, cmd(c, line))
		}
		for _, r := range seen {
			if strings.HasPrefix(r.Text, "[") {
				Expect(respCodeRE.MatchString(r.Text)).To(BeTrue(), "%q begins with \"[\" but not with a response code", r.String())
			}
		}
	})

	Spec("sends a pipelined batch before login and answers each command in order", IDs("RFC2449-6.6-pipelining-cap"), Readonly, func(ctx SpecContext, t *harness.Target) {
		c := plaintextReady(ctx, t)
		k := needCapaFresh(t, c)
		needTag(k, "PIPELINING", "before login")
		a := need(t.Account(ctx))
		// No reply is read until every command is out. USER and PASS go
		// in writes of their own only so that the transcript can redact
		// the password; the rest is one write.
		Expect(c.Send("USER " + a.User)).To(Succeed())
		Expect(c.Send("PASS " + a.Password)).To(Succeed())
		Expect(c.SendRaw([]byte("STAT\r\nLIST\r\nNOOP\r\nXYZZY\r\nNOOP\r\n"))).To(Succeed())
		read := func(what string) harness.Reply {
			r, err := c.ReadReply()
			Expect(err).NotTo(HaveOccurred(), "reply to pipelined %s", what)
			return r
		}
		expectOK(read("USER"), "pipelined USER")
		expectOK(read("PASS"), "pipelined PASS")
		stat := read("STAT")
		expectOK(stat, "pipelined STAT")
		list, err := c.ReadMulti()
		Expect(err).NotTo(HaveOccurred(), "pipelined LIST")
		expectOK(list.Reply, "pipelined LIST")
		n, err := strconv.Atoi(strings.Fields(stat.Text + " x")[0])
		Expect(err).NotTo(HaveOccurred(), "STAT %q", stat.String())
		Expect(list.Lines).To(HaveLen(n), "LIST answers STAT's message count, so it ran after PASS")
		expectOK(read("NOOP"), "pipelined NOOP")
		expectErr(read("XYZZY"), "pipelined unknown command")
		expectOK(read("NOOP"), "pipelined NOOP after an -ERR")
		unsolicited, _ := c.Quiet(200 * time.Millisecond)
		Expect(unsolicited).To(BeEmpty(), "one reply per command")
	})

	Spec("sends a pipelined batch in TRANSACTION and answers each command in order", IDs("RFC2449-6.6-pipelining-cap"), Reversible, func(ctx SpecContext, t *harness.Target) {
		l, _ := login(ctx, t)
		needTag(needCapa(l), "PIPELINING", "after login")
		n := messageCount(l)
		if n == 0 {
			verdict.SkipInconclusive("the maildrop is empty, so there is nothing to retrieve in a pipeline")
		}
		one := multi(l, "RETR 1")
		expectOK(one.Reply, "RETR 1")
		batch := "RETR 1\r\nNOOP\r\nDELE 1\r\nSTAT\r\nRSET\r\nLIST 1\r\nRETR 1\r\n"
		Expect(l.SendRaw([]byte(batch))).To(Succeed())
		m, err := l.ReadMulti()
		Expect(err).NotTo(HaveOccurred())
		Expect(m.Body()).To(Equal(one.Body()), "first RETR 1 of the batch")
		r, err := l.ReadReply()
		Expect(err).NotTo(HaveOccurred())
		expectOK(r, "pipelined NOOP")
		r, _ = l.ReadReply()
		expectOK(r, "pipelined DELE 1")
		r, _ = l.ReadReply()
		expectOK(r, "pipelined STAT")
		Expect(r.Text).To(HavePrefix(strconv.Itoa(n-1)+" "), "STAT after the pipelined DELE 1 counts one message less")
		r, _ = l.ReadReply()
		expectOK(r, "pipelined RSET")
		r, _ = l.ReadReply()
		expectOK(r, "pipelined LIST 1 after RSET")
		m, err = l.ReadMulti()
		Expect(err).NotTo(HaveOccurred())
		Expect(m.Body()).To(Equal(one.Body()), "RETR 1 after RSET")
		// Reversible: RSET cleared the mark; the close without QUIT
		// drops it anyway.
	})
})

// messageCount runs STAT and returns the message count.
func messageCount(c *harness.Conn) int {
	r := cmd(c, "STAT")
	expectOK(r, "STAT")
	n, err := strconv.Atoi(strings.Fields(r.Text + " x")[0])
	ExpectWithOffset(1, err).NotTo(HaveOccurred(), "STAT %q", r.String())
	return n
}

// numberCapParams parses "<n> [USER]" or "NEVER [USER]" (EXPIRE only).
func numberCapParams(params []string, state string, never bool) (n int, isNever, user bool) {
	ExpectWithOffset(1, len(params)).To(BeNumerically(">=", 1), "%s: an argument is required", state)
	ExpectWithOffset(1, len(params)).To(BeNumerically("<=", 2), "%s: %v has too many arguments", state, params)
	if len(params) == 2 {
		ExpectWithOffset(1, params[1]).To(Equal("USER"), "%s: only USER may follow the number", state)
		user = true
	}
	if never && params[0] == "NEVER" {
		return -1, true, user
	}
	n, err := strconv.Atoi(params[0])
	ExpectWithOffset(1, err).NotTo(HaveOccurred(), "%s: %q is not a number", state, params[0])
	ExpectWithOffset(1, n).To(BeNumerically(">=", 0), "%s: negative", state)
	return n, false, user
}

var _ = Describe("RFC 2449 6.5 LOGIN-DELAY", func() {
	Spec("gives LOGIN-DELAY as seconds, with USER only before login", IDs("RFC2449-6.5-login-delay-cap"), Readonly, capaBoth, func(ctx SpecContext, t *harness.Target) {
		p := capaBothStates(ctx, t)
		if !p.Before.Has("LOGIN-DELAY") && !p.After.Has("LOGIN-DELAY") {
			verdict.SkipNotApplicable("the server does not advertise LOGIN-DELAY in CAPA")
		}
		if p.Before.Has("LOGIN-DELAY") {
			numberCapParams(p.Before.Params("LOGIN-DELAY"), "LOGIN-DELAY before login", false)
		}
		if p.After.Has("LOGIN-DELAY") {
			_, _, user := numberCapParams(p.After.Params("LOGIN-DELAY"), "LOGIN-DELAY after login", false)
			Expect(user).To(BeFalse(), "USER belongs to the AUTHORIZATION value only")
		}
	})

	Spec("announces before login the largest delay that could apply", IDs("RFC2449-6.5-login-delay-max-in-auth"), Readonly, capaBoth, func(ctx SpecContext, t *harness.Target) {
		p := capaBothStates(ctx, t)
		needTag(p.Before, "LOGIN-DELAY", "before login")
		n1, _, _ := numberCapParams(p.Before.Params("LOGIN-DELAY"), "LOGIN-DELAY before login", false)
		Expect(p.After.Has("LOGIN-DELAY")).To(BeTrue(), "LOGIN-DELAY is announced in both states")
		n2, _, _ := numberCapParams(p.After.Params("LOGIN-DELAY"), "LOGIN-DELAY after login", false)
		Expect(n2).To(BeNumerically("<=", n1), "the user's delay cannot exceed the largest one announced before login")
	})

	// earlyLogin logs in, QUITs and at once starts a second login: the
	// USER and PASS replies of the second, the CAPA after the first
	// login, and the delay it announced. ok is false when USER was
	// refused (no PASS sent).
	earlyLogin := func(ctx SpecContext, t *harness.Target) (k capabilities, n int, u, r harness.Reply, ok bool) {
		l, a := login(ctx, t)
		k = needCapa(l)
		needTag(k, "LOGIN-DELAY", "after login")
		n, _, _ = numberCapParams(k.Params("LOGIN-DELAY"), "LOGIN-DELAY after login", false)
		if n == 0 {
			verdict.SkipNotApplicable("LOGIN-DELAY is 0: any login interval is allowed")
		}
		expectOK(cmd(l, "QUIT"), "QUIT")
		c := plaintextReady(ctx, t)
		u = cmd(c, "USER "+a.User)
		if !u.OK() {
			return k, n, u, r, false
		}
		return k, n, u, cmd(c, "PASS "+a.Password), true
	}

	Spec("refuses a second login that comes sooner than LOGIN-DELAY allows", IDs("RFC2449-6.5-login-delay-enforce"), Disruptive, func(ctx SpecContext, t *harness.Target) {
		_, n, _, r, ok := earlyLogin(ctx, t)
		if !ok {
			return
		}
		expectErr(r, fmt.Sprintf("a login %d seconds too early", n))
	})

	Spec("marks a login refused for coming too soon with [LOGIN-DELAY], and never USER", IDs("RFC2449-8.1.1-login-delay-code"), Disruptive, func(ctx SpecContext, t *harness.Target) {
		k, n, u, r, ok := earlyLogin(ctx, t)
		// [LOGIN-DELAY] on USER would reveal that the user exists.
		Expect(u.Code()).NotTo(Equal("LOGIN-DELAY"), "USER must not carry [LOGIN-DELAY]")
		if !ok {
			return
		}
		if r.OK() {
			// Section 8.1.1 gives the code's meaning where a server
			// refuses; whether it must refuse is RFC2449-6.5-login-delay-enforce.
			verdict.SkipNotApplicable("the login %d seconds too early was accepted (%q), so no refusal carries a code", n, r.String())
		}
		if c := r.Code(); c != "" && k.Has("RESP-CODES") {
			Expect(strings.ToUpper(c)).To(Equal("LOGIN-DELAY"), "a refusal for a login that came too soon")
		}
	})
})

var _ = Describe("RFC 2449 6.7 EXPIRE", func() {
	Spec("gives EXPIRE as days or NEVER, with USER only before login", IDs("RFC2449-6.7-expire-cap"), Readonly, capaBoth, func(ctx SpecContext, t *harness.Target) {
		p := capaBothStates(ctx, t)
		if !p.Before.Has("EXPIRE") && !p.After.Has("EXPIRE") {
			verdict.SkipNotApplicable("the server does not advertise EXPIRE in CAPA")
		}
		if p.Before.Has("EXPIRE") {
			numberCapParams(p.Before.Params("EXPIRE"), "EXPIRE before login", true)
		}
		if p.After.Has("EXPIRE") {
			n, never, user := numberCapParams(p.After.Params("EXPIRE"), "EXPIRE after login", true)
			Expect(user).To(BeFalse(), "USER belongs to the AUTHORIZATION value only")
			if st := t.Profile.Storage; st.AdvertiseExpire && st.RetentionDays > 0 {
				Expect(never).To(BeFalse())
				Expect(n).To(Equal(st.RetentionDays), "EXPIRE after login is the profile's retention")
			}
		}
	})

	Spec("announces a configured retention as EXPIRE in both states", IDs("RFC2449-6.7-expire-cap"), Readonly, ReferenceOnly, func(ctx SpecContext, t *harness.Target) {
		const days = 30
		v := need(t.Variant(ctx, func(p *profile.Profile) {
			p.Storage.RetentionDays = days
			p.Storage.AdvertiseExpire = true
		}))
		pair := capaBothStates(ctx, v)
		for _, k := range []capabilities{pair.Before, pair.After} {
			Expect(k.Has("EXPIRE")).To(BeTrue(), "EXPIRE with a %d-day retention: %v", days, k.Order)
			n, _, _ := numberCapParams(k.Params("EXPIRE"), "EXPIRE", true)
			Expect(n).To(Equal(days))
		}
	})

	Spec("announces before login the smallest retention that could apply", IDs("RFC2449-6.7-expire-min-in-auth"), Readonly, capaBoth, func(ctx SpecContext, t *harness.Target) {
		p := capaBothStates(ctx, t)
		needTag(p.Before, "EXPIRE", "before login")
		n1, never1, _ := numberCapParams(p.Before.Params("EXPIRE"), "EXPIRE before login", true)
		Expect(p.After.Has("EXPIRE")).To(BeTrue(), "EXPIRE is announced in both states")
		n2, never2, _ := numberCapParams(p.After.Params("EXPIRE"), "EXPIRE after login", true)
		if never1 {
			Expect(never2).To(BeTrue(), "EXPIRE NEVER before login promises NEVER for every user")
			return
		}
		if !never2 {
			Expect(n2).To(BeNumerically(">=", n1), "the user's retention cannot be shorter than the smallest announced before login")
		}
	})

	Spec("with EXPIRE 0 removes at most the messages retrieved with RETR", IDs("RFC2449-6.7-expire-zero-implicit-dele"), Mutating, func(ctx SpecContext, t *harness.Target) {
		l, a := login(ctx, t)
		k := needCapa(l)
		if p := k.Params("EXPIRE"); len(p) == 0 || p[0] != "0" {
			verdict.SkipNotApplicable("the server does not advertise EXPIRE 0 (EXPIRE %v)", p)
		}
		n := messageCount(l)
		if n < 2 {
			verdict.SkipInconclusive("the maildrop holds fewer than 2 messages")
		}
		uids := multi(l, "UIDL")
		expectOK(uids.Reply, "UIDL")
		expectOK(multi(l, "RETR 1").Reply, "RETR 1")
		expectOK(cmd(l, "QUIT"), "QUIT")
		c, err := t.Login(ctx, a)
		Expect(err).NotTo(HaveOccurred())
		after := multi(c, "UIDL")
		left := map[string]bool{}
		for _, line := range after.Texts() {
			f := strings.Fields(line)
			left[f[len(f)-1]] = true
		}
		implicit := false
		for i, line := range uids.Texts() {
			f := strings.Fields(line)
			uid := f[len(f)-1]
			if i == 0 {
				implicit = !left[uid]
				continue
			}
			Expect(left[uid]).To(BeTrue(), "message %d was not retrieved, yet it is gone", i+1)
		}
		AddReportEntry("EXPIRE 0: retrieved message removed at UPDATE", implicit, ReportEntryVisibilityFailureOrVerbose)
	})

	Spec("announces an automatic deletion policy with EXPIRE", IDs("RFC2449-6.7-expire-site-policy"), Readonly, ReferenceOnly, func(ctx SpecContext, t *harness.Target) {
		if !t.Profile.Storage.AdvertiseExpire {
			verdict.SkipNotApplicable("the profile does not announce retention policies with EXPIRE (storage.advertise_expire false; Exchange does not, MS-STANXPOP3 E0005)")
		}
		const days = 7
		v := need(t.Variant(ctx, func(p *profile.Profile) { p.Storage.RetentionDays = days }))
		pair := capaBothStates(ctx, v)
		Expect(pair.Before.Has("EXPIRE")).To(BeTrue(), "a %d-day retention policy is in force but CAPA has no EXPIRE: %v", days, pair.Before.Order)
		n, never, _ := numberCapParams(pair.Before.Params("EXPIRE"), "EXPIRE", true)
		Expect(never).To(BeFalse(), "EXPIRE NEVER while messages expire")
		Expect(n).To(BeNumerically("<=", days))
	})
})

var _ = Describe("RFC 2449 section 4 command length", func() {
	Spec("accepts a 255-octet command", IDs("RFC2449-4-cmd-255"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
		needKey(t, "max_command_octets")
		const n = 255 // RFC 2449 section 4, not a profile value
		if max := t.Profile.MaxCommandOctets; max < n {
			verdict.SkipNotApplicable("the profile follows MS-STANXPOP3 E0006 (limit %d)", max)
		}
		c := plaintextReady(ctx, t)
		k := needCapaFresh(t, c)
		if k.Has("AUTH-RESP-CODE") {
			// A wrong password of the right length is a credentials
			// failure, and the server says so with [AUTH]: proof that
			// the line was read as a command, not refused as too long.
			// The name exists nowhere: a wrong password for the account
			// could count towards its lockout.
			if u := cmd(c, "USER "+harness.NoSuchUser()); !u.OK() {
				verdict.SkipInconclusive("the server refuses unknown names at USER (%q), so no long PASS can be judged as a password", u.String())
			}
			r := cmd(c, commandOf("PASS", n))
			expectErr(r, "PASS with a wrong 248-character password")
			Expect(r.Code()).To(Equal("AUTH"), "the 255-octet PASS must be judged as a password, not refused as too long: %q", r.String())
		} else if t.Profile.Separators == profile.SeparatorsSpaceOrTab {
			// Without codes, but with runs of SPACEs as one separator
			// (2.1.1, as Exchange): a 255-octet USER line whose name is
			// short must be answered as the short line is; no argument
			// limit can explain a refusal.
			const name = "no-such-user-ext"
			short := cmd(c, "USER "+name)
			r := cmd(c, "USER"+strings.Repeat(" ", n-2-len("USER")-len(name))+name)
			Expect(r.Status).To(Equal(short.Status), "a 255-octet USER line padded with SPACEs got %q, the short one %q", r.String(), short.String())
		} else {
			// Without codes, a 255-octet USER must be answered as a
			// short unknown name is.
			short := cmd(c, "USER no-such-user-ext")
			r := cmd(c, commandOf("USER", n))
			if !r.OK() {
				if !short.Err() || short.Text != r.Text {
					verdict.SkipInconclusive("cannot tell a refused name from a refused line: %q for a short unknown name, %q for the 255-octet one", short.String(), r.String())
				}
			}
		}
		Expect(readCapa(c).OK).To(BeTrue(), "the session still works")
	})

	Spec("accepts an AUTH command with an initial response up to 255 octets", IDs("RFC2449-4-cmd-cap-max"), Readonly, LoginOnly, func(ctx SpecContext, t *harness.Target) {
		needKey(t, "max_command_octets")
		const n = 255 // RFC 5034 section 4 keeps AUTH lines within 255 octets
		if max := t.Profile.MaxCommandOctets; max < n {
			verdict.SkipNotApplicable("the profile follows MS-STANXPOP3 E0006 (limit %d)", max)
		}
		c, k := needPlainMech(ctx, t)
		// The PLAIN message that fills the line exactly: base64 length
		// 255-2-len("AUTH PLAIN ") = 242 is not a multiple of 4, so use
		// the longest that fits.
		b64 := (n - 2 - len("AUTH PLAIN ")) / 4 * 4
		raw := b64 / 4 * 3
		if t.Reference() != nil {
			name := freshName("ext")
			a := emptyAccount(t, name, strings.Repeat("p", raw-2-len(name)))
			ir := plainResponse("", a.User, a.Password)
			expectOK(cmd(c, "AUTH PLAIN "+ir), fmt.Sprintf("a %d-octet AUTH PLAIN", len(ir)+len("AUTH PLAIN ")+2))
			return
		}
		if !k.Has("AUTH-RESP-CODE") {
			verdict.SkipInconclusive("needs an account whose PLAIN credentials fill a 255-octet AUTH line, or AUTH-RESP-CODE to tell a refused password from a refused line")
		}
		// A name that exists nowhere: a wrong password for the account
		// could count towards its lockout.
		user := harness.NoSuchUser()
		ir := plainResponse("", user, strings.Repeat("p", raw-2-len(user)))
		r := cmd(c, "AUTH PLAIN "+ir)
		expectErr(r, "AUTH PLAIN with a wrong long password")
		Expect(r.Code()).To(Equal("AUTH"), "the long AUTH line must be judged as credentials: %q", r.String())
	})
})
