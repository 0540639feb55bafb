package conformance

// RFC 1939 section 3, basic operation: the greeting, command syntax, status
// indicators and response lines, multi-line replies and byte-stuffing,
// session states, negative replies to unknown and misplaced commands,
// unsolicited output, the autologout timer, and what a session that ends
// without QUIT leaves behind. RFC1939-3-unstuff-client binds the client
// alone and is not-observable (the catalogue gives the reason).
//
// Where MS-STANXPOP3 varies a rule (2.1.1 separators, V0002 timers, V0003
// the close notice, E0001 ports, E0006 the command limit) a profile that
// follows the variation makes the RFC check not applicable; otherwise the
// RFC rule is checked as written.

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

var _ = Describe("RFC 1939 section 3: greeting and states", func() {
	Spec("speaks first, with one positive greeting line ending in CRLF", IDs("RFC1939-3-greeting"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
		// The harness reads the greeting before it sends anything, so a
		// server that waited for the client would time out here.
		c := dialUntouched(ctx, t)
		g := c.Greeting
		Expect(g.Status).To(Equal("+OK"), "greeting %q must be a positive response", g.String())
		Expect(g.CRLF()).To(BeTrue(), "greeting %q must end in CRLF", g.Raw)
		extra, closed := c.Quiet(quietWindow)
		Expect(extra).To(BeEmpty(), "the greeting is one line; the server sent more: %q", extra)
		Expect(closed).To(BeFalse(), "the server closed the connection after its greeting")
	})

	Spec("is in AUTHORIZATION after the greeting: maildrop commands are refused until login", IDs("RFC1939-3-auth-state-after-greeting"), Readonly, func(ctx SpecContext, t *harness.Target) {
		a := need(t.Account(ctx))
		c := authDial(ctx, t)
		expectErr(cmd(c, "STAT"), "STAT straight after the greeting")
		loginWith(c, t, a, "USER", "PASS")
		expectOK(cmd(c, "STAT"), "STAT after login")
	})

	Spec("moves AUTHORIZATION -> TRANSACTION on login and TRANSACTION -> UPDATE on QUIT", IDs("RFC1939-3-states"), Readonly, func(ctx SpecContext, t *harness.Target) {
		a := need(t.Account(ctx))
		c := authDial(ctx, t)
		// AUTHORIZATION: TRANSACTION commands are refused.
		expectErr(cmd(c, "NOOP"), "NOOP in AUTHORIZATION")
		loginWith(c, t, a, "USER", "PASS")
		// TRANSACTION: maildrop commands work, USER no longer does.
		expectOK(cmd(c, "NOOP"), "NOOP in TRANSACTION")
		stat(c)
		expectErr(cmd(c, "USER "+a.User), "USER in TRANSACTION")
		// UPDATE: QUIT is answered and the session ends.
		r := quitAndWait(c)
		expectOK(r, "QUIT in TRANSACTION")
	})

	Spec("answers commands given in the wrong state with -ERR: AUTHORIZATION", IDs("RFC1939-3-wrong-state-cmd"), Readonly, ManyCommands, func(ctx SpecContext, t *harness.Target) {
		a := need(t.Account(ctx))
		open := func() *harness.Conn { return authDial(ctx, t) }
		c := open()
		cmds := []string{"STAT", "LIST", "LIST 1", "RETR 1", "NOOP", "RSET", "UIDL", "UIDL 1", "TOP 1 0"}
		c = expectErrs(c, t, cmds, open, func(c *harness.Conn) { c.Close() }, func(*harness.Conn) {})
		// Still in AUTHORIZATION and usable: a login works.
		loginWith(c, t, a, "USER", "PASS")
		stat(c)
	})

	// DELE given in AUTHORIZATION is judged by C0002's spec for DELE 1,
	// which sends the same lines.

	Spec("answers commands given in the wrong state with -ERR: TRANSACTION", IDs("RFC1939-3-wrong-state-cmd"), Readonly, ManyCommands, func(ctx SpecContext, t *harness.Target) {
		a := need(t.Account(ctx))
		open := func() *harness.Conn { return loginAs(ctx, t, a) }
		// Identification commands belong to AUTHORIZATION (RFC 1939 4 and
		// 7, RFC 2595 4 for STLS, RFC 5034 4 for AUTH).
		cmds := []string{
			"USER " + a.User,
			"PASS " + a.Password,
			// Not the account's name: a wrong digest for it is a failed
			// login that lockout policies may count.
			"APOP " + harness.NoSuchUser() + " " + strings.Repeat("0", 32),
			"AUTH PLAIN",
			"STLS",
		}
		c := expectErrs(open(), t, cmds, open, func(c *harness.Conn) { quitAndWait(c) }, func(c *harness.Conn) {
			expectOK(cmd(c, "NOOP"), "NOOP: the session must still be in TRANSACTION")
		})
		stat(c)
	})
})

var _ = Describe("RFC 1939 section 3: command syntax", func() {
	Spec("recognises keywords in any mix of upper and lower case", IDs("RFC1939-3-cmd-keyword-case"), Readonly, ManyCommands, func(ctx SpecContext, t *harness.Target) {
		a := need(t.Account(ctx))
		c := dial(ctx, t)
		if capa, err := c.CmdMulti("CAPA"); capaAnswers(t, false) && err == nil && capa.OK() {
			for _, kw := range []string{"capa", "Capa"} {
				m := multi(c, kw)
				expectOK(m.Reply, kw)
				Expect(m.Texts()).To(Equal(capa.Texts()), "%s must list what CAPA lists", kw)
			}
		}
		loginWith(c, t, a, "user", "Pass")
		stat := cmd(c, "STAT")
		for _, kw := range []string{"stat", "StAt"} {
			r := cmd(c, kw)
			Expect(r.String()).To(Equal(stat.String()), "%s must answer like STAT", kw)
		}
		list := multi(c, "LIST")
		expectOK(list.Reply, "LIST")
		l := multi(c, "list")
		expectOK(l.Reply, "list")
		Expect(l.Texts()).To(Equal(list.Texts()), "list must answer like LIST")
		expectOK(cmd(c, "noop"), "noop")
		expectOK(cmd(c, "rSeT"), "rSeT")
		r := cmd(c, "quit")
		expectOK(r, "quit")
	})

	Spec("treats a keyword of other than three or four characters as an unknown command", IDs("RFC1939-3-cmd-keyword-len"), Readonly, ManyCommands, func(ctx SpecContext, t *harness.Target) {
		a := need(t.Account(ctx))
		open := func() *harness.Conn { return loginAs(ctx, t, a) }
		// Near misses of real commands: a server must not take a prefix
		// or an extension of a keyword for the keyword.
		cmds := []string{"XX", "XXXXX", "ST", "STA", "STATS", "LISTS", "LISTX 1", "NOOPS", "QUITS"}
		c := expectErrs(open(), t, cmds, open, func(c *harness.Conn) { quitAndWait(c) }, func(c *harness.Conn) {
			expectOK(cmd(c, "NOOP"), "NOOP: the session must go on after an unknown keyword")
		})
		expectOK(quitAndWait(c), "QUIT")
	})

	Spec("accepts a single SPACE between the keyword and each argument", IDs("RFC1939-3-cmd-arg-sep"), Readonly, func(ctx SpecContext, t *harness.Target) {
		a := need(t.Account(ctx))
		c := authDial(ctx, t)
		// USER and PASS with one SPACE each are the login itself.
		loginWith(c, t, a, "USER", "PASS")
		n, _ := stat(c)
		if n == 0 {
			record("separators", "the maildrop is empty: only USER and PASS were checked")
			return
		}
		r := cmd(c, "LIST 1")
		expectOK(r, "LIST 1")
		Expect(r.Text).To(HavePrefix("1 "), "LIST 1 must list message 1: %q", r.String())
		if capa := capaIfAnswered(t, c); capa.Has("TOP") {
			m := multi(c, "TOP 1 0")
			expectOK(m.Reply, "TOP 1 0 (two arguments, one SPACE each)")
		}
	})

	Spec("does not take a TAB or two SPACEs for the single SPACE separator", IDs("RFC1939-3-cmd-arg-sep"), Readonly, func(ctx SpecContext, t *harness.Target) {
		if t.Profile.Separators != profile.SeparatorsSingleSpace {
			verdict.SkipNotApplicable("the profile follows MS-STANXPOP3 2.1.1 instead (separators: %s)", t.Profile.Separators)
		}
		a := need(t.Account(ctx))
		c := loginAs(ctx, t, a)
		n, _ := stat(c)
		if n == 0 {
			verdict.SkipInconclusive("the maildrop is empty, so a refused LIST 1 could not be told from a missing message")
		}
		open := func() *harness.Conn { return loginAs(ctx, t, a) }
		cmds := []string{"LIST\t1", "LIST  1", "LIST \t1"}
		c = expectErrs(c, t, cmds, open, func(c *harness.Conn) { quitAndWait(c) }, func(c *harness.Conn) {
			expectOK(cmd(c, "NOOP"), "NOOP after a badly separated command")
		})
		expectOK(cmd(c, "LIST 1"), "LIST 1 with a single SPACE")
	})

	Spec("accepts an argument of 40 characters", IDs("RFC1939-3-cmd-arg-len"), Readonly, func(ctx SpecContext, t *harness.Target) {
		const argLen = 40 // RFC 1939 section 3: "up to 40 characters"
		p := t.Profile
		if p.MaxArgumentChars > 0 && p.MaxArgumentChars < argLen {
			verdict.SkipNotApplicable("the profile limits arguments to %d characters, as MS-STANXPOP3 2.1.2 lets it", p.MaxArgumentChars)
		}
		if need := len("USER ") + argLen + 2; p.MaxCommandOctets < need {
			verdict.SkipNotApplicable("the profile follows MS-STANXPOP3 E0006 instead: its %d-octet command limit cannot carry USER with a %d-character argument (%d octets)", p.MaxCommandOctets, argLen, need)
		}
		a := need(t.Account(ctx))
		unknown := harness.NoSuchUser()
		name := "x" + strings.Repeat("0", argLen-len(unknown)-1) + unknown
		Expect(name).To(HaveLen(argLen))
		// Neither name exists, so whatever the profile answers for unknown
		// names (V0008), the 40-character one must be answered like the
		// short one: its length alone must not make a difference. Each
		// USER is the first command of a session of its own: after a USER
		// answered +OK, RFC 1939 section 7 leaves the client only PASS or
		// QUIT, and a server may refuse another USER for the state alone.
		c := authDial(ctx, t)
		short := cmd(c, "USER "+unknown)
		quitAndWait(c)
		c = authDial(ctx, t)
		long := cmd(c, "USER "+name)
		Expect(long.Status).To(Equal(short.Status), "USER with a 40-character name (%q) must be answered like a short unknown name (%q)", long.String(), short.String())
		// The session goes on: QUIT after a USER answered +OK, a login
		// after one answered -ERR.
		if long.OK() {
			expectOK(quitAndWait(c), "QUIT after USER with a 40-character name")
			return
		}
		loginWith(c, t, a, "USER", "PASS")
	})

	Spec("acts on a command only once its CRLF has arrived", IDs("RFC1939-3-cmd-crlf"), Readonly, KeptSession, ManyCommands, func(ctx SpecContext, t *harness.Target) {
		c, _ := session(ctx, t)
		for _, part := range [][2]string{{"STAT", "\r\n"}, {"STAT\r", "\n"}} {
			Expect(c.SendRaw([]byte(part[0]))).To(Succeed())
			early, closed := c.Quiet(quietWindow)
			Expect(early).To(BeEmpty(), "the server answered %q before the command's CRLF: %q", part[0], early)
			Expect(closed).To(BeFalse(), "the server closed the connection on a partial command %q", part[0])
			Expect(c.SendRaw([]byte(part[1]))).To(Succeed())
			r, err := c.ReadReply()
			Expect(err).NotTo(HaveOccurred(), "reply to %q", part[0]+part[1])
			expectOK(r, fmt.Sprintf("STAT sent as %q then %q", part[0], part[1]))
		}
		// What a bare LF does is left open: record it, judge nothing.
		Expect(c.SendRaw([]byte("NOOP\n"))).To(Succeed())
		line, closed := c.Quiet(500 * time.Millisecond)
		switch {
		case len(line) > 0:
			record("bare LF", "NOOP ended by a bare LF was answered: %q", bytes.TrimRight(line, "\r\n"))
		case closed:
			record("bare LF", "NOOP ended by a bare LF made the server close the connection")
		default:
			record("bare LF", "NOOP ended by a bare LF got no answer within 500ms")
		}
	})

	Spec("answers unknown, unimplemented and malformed commands with -ERR and goes on", IDs("RFC1939-3-unknown-cmd"), Readonly, ManyCommands, func(ctx SpecContext, t *harness.Target) {
		a := need(t.Account(ctx))
		// AUTHORIZATION: unknown keywords, then a login shows the session
		// survived them.
		openAuth := func() *harness.Conn { return authDial(ctx, t) }
		c := expectErrs(openAuth(), t, []string{"FOO", "XYZZY bar", "XTND XLST"}, openAuth, func(c *harness.Conn) { c.Close() }, func(*harness.Conn) {})
		loginWith(c, t, a, "USER", "PASS")
		n, _ := stat(c)
		cmds := []string{"FOO", "LIST abc", "LIST -1", "RETR", "RETR x"}
		if capa := capaIfAnswered(t, c); capa.Has("TOP") {
			cmds = append(cmds, "TOP 1", "TOP x 1")
		}
		open := func() *harness.Conn { return loginAs(ctx, t, a) }
		c = expectErrs(c, t, cmds, open, func(c *harness.Conn) { quitAndWait(c) }, func(c *harness.Conn) {
			expectOK(cmd(c, "NOOP"), "NOOP: the session must go on after a negative reply")
		})
		after, _ := stat(c)
		Expect(after).To(Equal(n), "STAT after malformed commands")
	})

	// Malformed DELEs: a server that takes one anyway marks a message,
	// which the close without QUIT undoes; reversible.
	Spec("answers malformed DELE commands with -ERR, marks nothing and goes on", IDs("RFC1939-3-unknown-cmd"), Reversible, func(ctx SpecContext, t *harness.Target) {
		a := need(t.Account(ctx))
		c := loginAs(ctx, t, a)
		n, _ := stat(c)
		open := func() *harness.Conn { return loginAs(ctx, t, a) }
		c = expectErrs(c, t, []string{"DELE", "DELE abc"}, open, func(c *harness.Conn) { c.Close() }, func(c *harness.Conn) {
			expectOK(cmd(c, "NOOP"), "NOOP: the session must go on after a negative reply")
		})
		after, _ := stat(c)
		Expect(after).To(Equal(n), "STAT after malformed DELE commands")
	})
})

// replyLine is one line a server sent, with the command it answered.
type replyLine struct {
	What string
	Raw  []byte
	// Status is true for status lines (greeting, first line of every
	// reply), false for the lines of a listing (CAPA, LIST, UIDL).
	Status bool
}

// richSession runs a session that draws every kind of reply from
// the server: the greeting, CAPA, USER for known and unknown names, PASS,
// STAT, LIST, UIDL, RETR, TOP, unknown commands, commands in the wrong
// state, NOOP, RSET and QUIT. It returns every status line and every
// listing line. Message bodies are not returned: their lines are the
// message's, not the server's. Specs get it through richReplies, which
// runs it once for all of them.
func richSession(ctx SpecContext, t *harness.Target) []replyLine {
	var out []replyLine
	status := func(what string, r harness.Reply) {
		out = append(out, replyLine{What: what, Raw: r.Raw, Status: true})
	}
	listed := func(what string, m harness.Multi) {
		status(what, m.Reply)
		for _, l := range m.Lines {
			out = append(out, replyLine{What: what + " listing", Raw: l})
		}
	}
	budget := errBudget(t)
	// errCmd sends a command that draws -ERR only while the session's
	// error budget lasts (negative replies to other commands count too).
	errCmd := func(c *harness.Conn, line string) {
		if budget > 0 && c.ErrReplies() >= budget {
			return
		}
		status(redactForMessage(line), cmd(c, line))
	}

	a := need(t.Account(ctx))
	// An unknown name on its own connection: -ERR or +OK, by profile.
	c0 := authDial(ctx, t)
	status("greeting", c0.Greeting)
	status("USER of an unknown name", cmd(c0, "USER "+harness.NoSuchUser()))
	status("QUIT in AUTHORIZATION", cmd(c0, "QUIT"))

	c := dial(ctx, t)
	status("greeting", c.Greeting)
	capa := capaIfAnswered(t, c)
	switch {
	case capa.OK:
		listed("CAPA", capa.Multi)
	case capa.Multi.Raw != nil:
		status("CAPA", capa.Multi.Reply)
	}
	errCmd(c, "XYZZY")
	errCmd(c, "STAT")
	secureForLogin(c, t)
	r := cmd(c, "USER "+a.User)
	status("USER", r)
	Expect(r.OK()).To(BeTrue(), "USER %s: %q", a.User, r.String())
	r = cmd(c, "PASS "+a.Password)
	status("PASS", r)
	Expect(r.OK()).To(BeTrue(), "PASS: %q", r.String())

	n, _ := stat(c)
	status("STAT", cmd(c, "STAT"))
	if m := multi(c, "LIST"); m.OK() {
		listed("LIST", m)
	} else {
		status("LIST", m.Reply)
	}
	if m := multi(c, "UIDL"); m.OK() {
		listed("UIDL", m)
	} else {
		status("UIDL", m.Reply)
	}
	if n > 0 {
		status("LIST 1", cmd(c, "LIST 1"))
		status("UIDL 1", cmd(c, "UIDL 1"))
		status("RETR 1", multi(c, "RETR 1").Reply)
		if capa.Has("TOP") {
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

// richReplies is richSession read once for every spec that judges its
// lines.
var richReplies = Reading[[]replyLine]{name: "a session of every kind of reply", read: richSession}

var _ = Describe("RFC 1939 section 3: responses", func() {

	Spec("starts every reply with +OK or -ERR, alone or followed by a space and text", IDs("RFC1939-3-status-indicators"), Readonly, richReplies, func(ctx SpecContext, t *harness.Target) {
		for _, l := range richReplies.Get(ctx, t) {
			if !l.Status {
				continue
			}
			Expect(statusLineRE.Match(l.Raw)).To(BeTrue(), "%s: reply %q is not +OK or -ERR [SP text] CRLF", l.What, l.Raw)
		}
	})

	Spec("writes +OK and -ERR in capitals", IDs("RFC1939-3-status-uppercase"), Readonly, richReplies, func(ctx SpecContext, t *harness.Target) {
		for _, l := range richReplies.Get(ctx, t) {
			if !l.Status {
				continue
			}
			word, _, _ := strings.Cut(strings.TrimRight(string(l.Raw), "\r\n"), " ")
			if strings.EqualFold(word, "+OK") || strings.EqualFold(word, "-ERR") {
				Expect(word).To(Equal(strings.ToUpper(word)), "%s: status indicator %q is not in capitals", l.What, word)
				continue
			}
			FailHandler(fmt.Sprintf("%s: reply %q has no status indicator", l.What, l.Raw))
		}
	})

	Spec("keeps every response line within 512 octets, CRLF included", IDs("RFC1939-3-resp-512"), Readonly, richReplies, func(ctx SpecContext, t *harness.Target) {
		max := rfcMaxResponseOctets
		for _, l := range richReplies.Get(ctx, t) {
			Expect(len(l.Raw)).To(BeNumerically("<=", max), "%s: a line of %d octets: %q", l.What, len(l.Raw), l.Raw)
		}
	})

	Spec("ends multi-line replies with a line of a single dot, every line ending in CRLF", IDs("RFC1939-3-multiline-format"), Readonly, KeptSession, func(ctx SpecContext, t *harness.Target) {
		c, _ := session(ctx, t)
		n, _ := stat(c)
		check := checkMultiFormat
		list := multi(c, "LIST")
		check("LIST", list)
		Expect(list.Lines).To(HaveLen(n), "LIST must have one line per message STAT counts")
		capa := capaIfAnswered(t, c)
		if capa.OK {
			check("CAPA", multi(c, "CAPA"))
		}
		if m, err := c.CmdMulti("UIDL"); err == nil && m.OK() {
			check("UIDL", m)
		}
		if n > 0 {
			check("RETR 1", multi(c, "RETR 1"))
			if capa.Has("TOP") {
				check("TOP 1 0", multi(c, "TOP 1 0"))
			}
		}
	})

	// An empty listing is the status line and the terminator alone:
	// every message is marked deleted (RSET undoes it).
	Spec("ends an empty listing with the terminator alone", IDs("RFC1939-3-multiline-format"), Reversible, func(ctx SpecContext, t *harness.Target) {
		c, _ := login(ctx, t)
		n, _ := stat(c)
		if n > 200 {
			verdict.SkipInconclusive("%d messages are too many to mark deleted", n)
		}
		for i := 1; i <= n; i++ {
			expectOK(cmd(c, fmt.Sprintf("DELE %d", i)), fmt.Sprintf("DELE %d", i))
		}
		empty := multi(c, "LIST")
		checkMultiFormat("LIST with every message marked deleted", empty)
		Expect(empty.Lines).To(BeEmpty(), "LIST must not list messages marked deleted")
		expectOK(cmd(c, "RSET"), "RSET")
		Expect(multi(c, "LIST").Lines).To(HaveLen(n), "LIST after RSET")
	})

	Spec("byte-stuffs data lines that begin with a dot (RETR and TOP of the dot fixtures)", IDs("RFC1939-3-byte-stuffing"), Readonly, KeptSession, func(ctx SpecContext, t *harness.Target) {
		c, a := session(ctx, t)
		fx := needFixture(a, "alice")
		top := capaIfAnswered(t, c).Has("TOP")
		// Messages 02 and 04 hold lines that start with ".", "..", a lone
		// "." and "...".
		for _, num := range []int{2, 4} {
			want := fx[num-1].Data
			lines := splitLines(want)
			stuffed := func(i int) []byte {
				if bytes.HasPrefix(lines[i], []byte(".")) {
					return append([]byte("."), lines[i]...)
				}
				return lines[i]
			}
			m := multi(c, fmt.Sprintf("RETR %d", num))
			expectOK(m.Reply, fmt.Sprintf("RETR %d", num))
			Expect(m.Lines).To(HaveLen(len(lines)), "RETR %d: one wire line per message line (%s)", num, fx[num-1].Name)
			dotted := 0
			for i := range lines {
				if lines[i][0] == '.' {
					dotted++
				}
				Expect(m.Lines[i]).To(Equal(stuffed(i)), "RETR %d line %d (%s)", num, i+1, fx[num-1].Name)
			}
			Expect(dotted).To(BeNumerically(">", 0), "fixture %s has no dot-leading lines", fx[num-1].Name)
			Expect(m.Body()).To(Equal(want), "RETR %d after un-stuffing must be %s", num, fx[num-1].Name)
			if !top {
				continue
			}
			// TOP with the whole body in range stuffs the same lines.
			tm := multi(c, fmt.Sprintf("TOP %d %d", num, len(lines)))
			expectOK(tm.Reply, fmt.Sprintf("TOP %d", num))
			Expect(len(tm.Lines)).To(BeNumerically("<=", len(lines)))
			for i := range tm.Lines {
				Expect(tm.Lines[i]).To(Equal(stuffed(i)), "TOP %d line %d (%s)", num, i+1, fx[num-1].Name)
			}
		}
	})

	Spec("sends nothing but replies to commands after the greeting", IDs("RFC1939-3-no-response-without-cmd"), Readonly, ManyCommands, func(ctx SpecContext, t *harness.Target) {
		a := need(t.Account(ctx))
		c := dialUntouched(ctx, t)
		quiet := func(after string) {
			extra, closed := c.Quiet(quietWindow)
			Expect(extra).To(BeEmpty(), "after %s the server sent %q unprompted", after, extra)
			Expect(closed).To(BeFalse(), "after %s the server closed the connection", after)
		}
		quiet("the greeting")
		// The probe was told to use STLS: the login goes under TLS
		// whatever the profile says of plaintext logins (Cyrus pop3d
		// refuses USER before STLS by default).
		if !c.TLS() && t.Mode() == harness.TLSStartTLS {
			r, err := c.StartTLS(t.TLSConfig())
			needTLS(err)
			Expect(err).NotTo(HaveOccurred(), "STLS")
			expectOK(r, "STLS")
			quiet("STLS")
		}
		loginWith(c, t, a, "USER", "PASS")
		quiet("PASS")
		expectOK(multi(c, "LIST").Reply, "LIST")
		quiet("the LIST listing")
		expectErr(cmd(c, "XYZZY"), "an unknown command")
		quiet("a negative reply")
	})
})

var _ = Describe("RFC 1939 section 3: autologout", func() {
	// states lists the sessions an idle check keeps, by the profile's
	// timer for each state; a state whose timer is under the RFC minimum
	// follows MS-STANXPOP3 V0002 and is left out.
	states := func(ctx SpecContext, t *harness.Target, p *profile.Profile, min time.Duration) ([]idleSession, []string) {
		var (
			ss    []idleSession
			moot  []string
			limit = func(d profile.Duration) bool { return d.D() >= min }
		)
		if limit(p.Timers.Unauthenticated) {
			c := dial(ctx, t)
			// CAPA is valid before login (RFC 2449); any command, even
			// one answered -ERR, restarts the timer.
			ss = append(ss, idleSession{state: "AUTHORIZATION", c: c, poke: "CAPA", multi: true})
		} else {
			moot = append(moot, fmt.Sprintf("unauthenticated timer %v", p.Timers.Unauthenticated))
		}
		if limit(p.Timers.Authenticated) {
			c, _ := login(ctx, t)
			ss = append(ss, idleSession{state: "TRANSACTION", c: c, poke: "NOOP"})
		} else {
			moot = append(moot, fmt.Sprintf("authenticated timer %v", p.Timers.Authenticated))
		}
		return ss, moot
	}

	Spec("keeps an idle session open for at least ten minutes, and a command restarts the timer (scaled clock)", IDs("RFC1939-3-autologout-min"), Disruptive, ReferenceOnly, func(ctx SpecContext, t *harness.Target) {
		v := scaledToRFCMin(ctx, t)
		ss, moot := states(ctx, v, v.Profile, scaledAutologoutMin)
		if len(ss) == 0 {
			verdict.SkipNotApplicable("the profile follows MS-STANXPOP3 V0002 instead (%s, under the RFC's %v)", strings.Join(moot, ", "), autologoutMin)
		}
		if len(moot) > 0 {
			record("not checked", "the profile follows MS-STANXPOP3 V0002 for the %s", strings.Join(moot, ", "))
		}
		idleRounds(ss, scaledAutologoutMin)
	})

	Spec("keeps an idle session open for at least ten minutes, and a command restarts the timer (real clock)", IDs("RFC1939-3-autologout-min"), Readonly, Slow, func(ctx SpecContext, t *harness.Target) {
		if t.Reference() != nil {
			verdict.SkipNotApplicable("the bundled server is judged on a scaled clock by the reference-only spec")
		}
		ss, moot := states(ctx, t, t.Profile, autologoutMin)
		if len(ss) == 0 {
			verdict.SkipNotApplicable("the profile follows MS-STANXPOP3 V0002 instead (%s, under the RFC's %v)", strings.Join(moot, ", "), autologoutMin)
		}
		idleRounds(ss, autologoutMin)
	})

	// noUpdate marks messages deleted, lets the authenticated timer end
	// the session and checks that nothing was removed.
	noUpdate := func(ctx SpecContext, t *harness.Target, wait time.Duration) {
		a := need(t.Account(ctx))
		c := loginAs(ctx, t, a)
		before := look(c)
		if before.Count == 0 {
			verdict.SkipInconclusive("the maildrop is empty: there is nothing to mark deleted")
		}
		for i := 1; i <= min(before.Count, 2); i++ {
			expectOK(cmd(c, fmt.Sprintf("DELE %d", i)), fmt.Sprintf("DELE %d", i))
		}
		lines, err := c.ExpectClosed(wait)
		if err != nil {
			verdict.SkipInconclusive("the server did not end the idle session within %v, so no autologout happened to judge", wait)
		}
		if t.Profile.Timers.Notice {
			record("close notice", "the profile follows MS-STANXPOP3 V0003: the server may say why it closes; it sent %q", lines)
		} else {
			Expect(lines).To(BeEmpty(), "the autologout should close without a response (RFC 1939 section 3); the server sent %q", lines)
		}
		after := look(loginSoon(ctx, t, a))
		expectNothingRemoved(before, after, "the session ended by autologout, which must not enter UPDATE")
	}

	Spec("does not enter UPDATE when the autologout timer ends a session (short timers)", IDs("RFC1939-3-autologout-no-update"), Disruptive, MarksDeleted, ReferenceOnly, func(ctx SpecContext, t *harness.Target) {
		const timer = 500 * time.Millisecond
		// Only the authenticated timer is short: the login itself must
		// not race it.
		v := need(t.Variant(ctx, func(p *profile.Profile) { p.Timers.Authenticated = profile.Duration(timer) }))
		noUpdate(ctx, v, timer+2*time.Second)
	})

	Spec("does not enter UPDATE when the autologout timer ends a session (real clock)", IDs("RFC1939-3-autologout-no-update"), Disruptive, MarksDeleted, Slow, func(ctx SpecContext, t *harness.Target) {
		if t.Reference() != nil {
			verdict.SkipNotApplicable("the bundled server is judged with short timers by the reference-only spec")
		}
		d := t.Profile.Timers.Authenticated.D()
		noUpdate(ctx, t, d+d/10+30*time.Second)
	})

	Spec("closes a session idle in AUTHORIZATION without sending anything (short timers)", IDs("RFC1939-3-autologout-no-update", "RFC1939-3-no-response-without-cmd"), Disruptive, ReferenceOnly, func(ctx SpecContext, t *harness.Target) {
		if t.Profile.Timers.Notice {
			verdict.SkipNotApplicable("the profile follows MS-STANXPOP3 V0003 instead: a notice precedes the autologout")
		}
		const timer = 400 * time.Millisecond
		v := shortTimers(ctx, t, timer, timer)
		c := dial(ctx, v)
		lines, err := c.ExpectClosed(timer + 2*time.Second)
		Expect(err).NotTo(HaveOccurred(), "the %v unauthenticated timer must end the idle session", timer)
		Expect(lines).To(BeEmpty(), "the server must close an idle session without a response; it sent %q", lines)
	})
})

var _ = Describe("RFC 1939 section 3: sessions that end without QUIT", func() {
	Spec("removes nothing when the client closes the connection without QUIT", IDs("RFC1939-3-tcp-close-no-update"), Reversible, marked, func(ctx SpecContext, t *harness.Target) {
		v := marked.Get(ctx, t)
		before := v.BeforeBox()
		if before.Count == 0 {
			verdict.SkipInconclusive("the maildrop is empty: there is nothing to mark deleted")
		}
		// Messages were marked (DELE 1, and again after RSET) and the
		// session was closed without QUIT. What the new session finds is
		// the evidence, whether or not a mark was refused on the way.
		expectOK(v.Dele1, "DELE 1")
		if v.NotMarkedAgain != "" {
			// Mail was lost before the close; the close itself had no
			// marks to mishandle.
			verdict.SkipInconclusive("%s", v.NotMarkedAgain)
		}
		expectNothingRemoved(before, v.AfterBox(), "the session ended without QUIT, which must not enter UPDATE")
	})
})

var _ = Describe("RFC 1939 section 3: port 110", func() {
	Spec("offers POP3 on TCP port 110", IDs("RFC1939-3-port-110"), Readonly, func(ctx SpecContext, t *harness.Target) {
		if t.Reference() != nil {
			verdict.SkipNotApplicable("the bundled server listens on ports the suite picks, as MS-STANXPOP3 E0001 lets a server do")
		}
		cfg := t.Config
		if cfg.Port == 110 && cfg.TLS != harness.TLSImplicit {
			c := dial(ctx, t)
			expectOK(c.Greeting, "greeting on port 110")
			return
		}
		addr := net.JoinHostPort(cfg.Host, strconv.Itoa(110))
		t.Release()
		d := net.Dialer{Timeout: 5 * time.Second}
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			verdict.SkipNotApplicable("POP3 is served on port %d as configured and %s does not answer (%v); MS-STANXPOP3 E0001 lets the port be moved", cfg.Port, addr, err)
		}
		defer nc.Close()
		Expect(nc.SetReadDeadline(time.Now().Add(harness.DefaultTimeout))).To(Succeed())
		g, err := bufio.NewReader(nc).ReadString('\n')
		record("port 110", "%s answered %q", addr, g)
		// The audit was pointed at another port, so whatever listens on
		// 110 is not known to be the server under test: only a POP3
		// greeting there says something about it.
		if err != nil || !strings.HasPrefix(g, "+OK") {
			verdict.SkipNotApplicable("POP3 is served on port %d as configured, and %s does not greet as a POP3 server (%q, %v): it may be another service, and MS-STANXPOP3 E0001 lets the port be moved", cfg.Port, addr, strings.TrimSpace(g), err)
		}
	})
})

// checkMultiFormat checks the framing of a multi-line response: +OK, every
// line ending in CRLF, and the terminator.
func checkMultiFormat(what string, m harness.Multi) {
	expectOK(m.Reply, what)
	Expect(m.CRLF()).To(BeTrue(), "%s: status line %q must end in CRLF", what, m.Raw)
	for i, l := range m.Lines {
		Expect(bytes.HasSuffix(l, []byte("\r\n"))).To(BeTrue(), "%s: line %d %q must end in CRLF", what, i+1, l)
	}
	Expect(string(m.Terminator)).To(Equal(".\r\n"), "%s: terminator", what)
}
