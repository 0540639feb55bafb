package conformance

// RFC 2449 sections 3, 4 and 8: the response grammar (greeting,
// single-line replies, dot-stuffed multi-line replies), the 512-octet
// first line, and the response codes LOGIN-DELAY and IN-USE.

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// bareMsgIDRE is an RFC 822 msg-id in its usual form, <local@domain>.
var bareMsgIDRE = regexp.MustCompile(`^<[^<>@\s]+@[^<>@\s]+>$`)

var _ = Describe("RFC 2449 section 3 response grammar", func() {
	Spec("greets with +OK, at most one msg-id timestamp, within the first-line limit", IDs("RFC2449-3-greeting-syntax"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
		c := dial(ctx, t)
		g := c.Greeting
		Expect(statusLineRE.Match(g.Raw)).To(BeTrue(), "greeting %q is not +OK [SP text] CRLF", g.Raw)
		Expect(g.OK()).To(BeTrue())
		Expect(len(g.Raw)).To(BeNumerically("<=", rfcMaxResponseOctets), "greeting length")
		if strings.HasPrefix(g.Text, "[") {
			Expect(respCodeRE.MatchString(g.Text)).To(BeTrue(), "greeting text starts with \"[\" but no response code")
		}
		// gchar excludes "<": the only "<" may open the timestamp.
		Expect(strings.Count(g.Text, "<")).To(BeNumerically("<=", 1), "more than one timestamp in %q", g.Text)
		if i := strings.IndexByte(g.Text, '<'); i >= 0 {
			j := strings.IndexByte(g.Text[i:], '>')
			Expect(j).To(BeNumerically(">", 0), "unterminated timestamp in %q", g.Text)
			Expect(bareMsgIDRE.MatchString(g.Text[i:i+j+1])).To(BeTrue(), "timestamp %q is not an RFC 822 msg-id", g.Text[i:i+j+1])
		}
	})

	statusSyntax := func(replies []harness.Reply) {
		for _, r := range replies {
			Expect(statusLineRE.Match(r.Raw)).To(BeTrue(), "%q is not status [SP text] CRLF", r.Raw)
		}
	}
	within512 := func(replies []harness.Reply) {
		for _, r := range replies {
			Expect(len(r.Raw)).To(BeNumerically("<=", rfcMaxResponseOctets), "%q has %d octets", r.String(), len(r.Raw))
		}
	}

	Spec("answers every command with a status [SP text] CRLF line", IDs("RFC2449-3-single-line-syntax"), Readonly, provoked, func(ctx SpecContext, t *harness.Target) {
		statusSyntax(provoked.Get(ctx, t))
	})

	Spec("keeps every first line within 512 octets, even when a long argument could be echoed", IDs("RFC2449-4-resp-512"), Readonly, provoked, func(ctx SpecContext, t *harness.Target) {
		within512(provoked.Get(ctx, t))
	})

	// The same for DELE with arguments that name no message: a server
	// that takes one anyway marks mail, which the close without QUIT
	// undoes.
	Spec("answers DELE with bad and long arguments with a status [SP text] CRLF line", IDs("RFC2449-3-single-line-syntax"), Reversible, provokedDele, func(ctx SpecContext, t *harness.Target) {
		statusSyntax(provokedDele.Get(ctx, t))
	})

	Spec("keeps the first line of a reply to DELE with a long argument within 512 octets", IDs("RFC2449-4-resp-512"), Reversible, provokedDele, func(ctx SpecContext, t *harness.Target) {
		within512(provokedDele.Get(ctx, t))
	})

	Spec("dot-stuffs every data line of a multi-line reply", IDs("RFC2449-3-multiline-dotstuff"), Readonly, fixtureMail, func(ctx SpecContext, t *harness.Target) {
		src := messagesOf(ctx, t)
		a, n := src.Account, src.Count
		if n == 0 {
			verdict.SkipInconclusive("the maildrop is empty")
		}
		var fixture []harness.FixtureMessage
		if a.Fixture != "" {
			fixture = need(harness.FixtureMessages(a.Fixture))
		}
		dotted := 0
		for i := 1; i <= n; i++ {
			m := src.Retr(i)
			expectOK(m.Reply, fmt.Sprintf("RETR %d", i))
			for _, line := range m.Lines {
				// A data line that starts with "." carries the stuffing
				// dot, so the line as sent starts with "..".
				if bytes.HasPrefix(line, []byte(".")) {
					dotted++
					Expect(bytes.HasPrefix(line, []byte(".."))).To(BeTrue(), "RETR %d: line %q starts with a single dot", i, line)
				}
			}
			if i <= len(fixture) {
				Expect(m.Body()).To(Equal(fixture[i-1].Data), "RETR %d without the stuffing dots is %s", i, fixture[i-1].Name)
			}
		}
		if dotted == 0 {
			verdict.SkipInconclusive("no message in the maildrop has a line that starts with a dot")
		}
	})
})

var _ = Describe("RFC 2449 section 8 response codes", func() {
	// A wrong password for the account itself: lockout policies may
	// count it, so the spec is disruptive.
	Spec("puts a response code in brackets right after the status and a space", IDs("RFC2449-8-resp-code-syntax"), Disruptive, NoLogin, func(ctx SpecContext, t *harness.Target) {
		c := plaintextReady(ctx, t)
		k := needCapaFresh(t, c)
		if !k.Has("RESP-CODES") && !k.Has("AUTH-RESP-CODE") {
			verdict.SkipNotApplicable("the server advertises neither RESP-CODES nor AUTH-RESP-CODE")
		}
		a := need(t.Account(ctx))
		expectOK(cmd(c, "USER "+a.User), "USER")
		r := cmd(c, "PASS x"+a.Password)
		expectErr(r, "PASS with a wrong password")
		Expect(r.Raw).To(HavePrefix("-ERR ["), "a wrong password draws [AUTH] right after \"-ERR \"")
		Expect(respCodeRE.MatchString(r.Text)).To(BeTrue(), "%q: code syntax", r.String())
	})

	Spec("sends [IN-USE] when the maildrop is locked by another session", IDs("RFC2449-8.1.2-in-use-code"), Disruptive, func(ctx SpecContext, t *harness.Target) {
		if t.Profile.Lock != profile.LockExclusive {
			verdict.SkipNotApplicable("the profile expects no maildrop lock, so no login is refused as busy")
		}
		first, a := login(ctx, t)
		k := needCapa(first)
		c := plaintextReady(ctx, t)
		expectOK(cmd(c, "USER "+a.User), "USER for the second session")
		r := cmd(c, "PASS "+a.Password)
		if r.OK() {
			verdict.SkipNotApplicable("the second login succeeded, so the maildrop was not busy (the lock itself is RFC1939-4-lock-on-success)")
		}
		expectErr(r, "PASS while the maildrop is locked")
		if !k.Has("RESP-CODES") {
			verdict.SkipNotApplicable("the server does not advertise RESP-CODES")
		}
		Expect(strings.ToUpper(r.Code())).To(Equal("IN-USE"), "the refusal %q", r.String())
	})
})

// replyCollector keeps the status lines of the commands it sends. It
// keeps within the profile's error budget (C0005) by starting a new
// session before the server may close.
type replyCollector struct {
	seen []harness.Reply
	errs int
}

func (rc *replyCollector) send(c *harness.Conn, line string, budget int, reopen func() *harness.Conn) *harness.Conn {
	if budget > 0 && rc.errs >= budget {
		c.Close()
		c, rc.errs = reopen(), 0
		rc.seen = append(rc.seen, c.Greeting)
	}
	r := cmd(c, line)
	if r.Err() {
		rc.errs++
	}
	rc.seen = append(rc.seen, r)
	return c
}

// provokeReplies collects the status lines of a session that sends, in
// each state, commands whose replies a server may build from the
// arguments: the longest lines the profile allows, a failed login, and
// RETR and LIST with long non-numeric arguments (some servers echo them).
// DELE is provokeDeleReplies'. Specs get it through provoked, which runs
// it once for all of them.
func provokeReplies(ctx SpecContext, t *harness.Target) []harness.Reply {
	needKey(t, "max_command_octets", "max_command_octets_transaction")
	c := plaintextReady(ctx, t)
	a := need(t.Account(ctx))
	rc := &replyCollector{seen: []harness.Reply{c.Greeting}}
	long, longTx := commandOf("XYZZ", t.Profile.CommandLimit(false)), commandOf("XYZZ", t.Profile.CommandLimit(true))
	reopenAuth := func() *harness.Conn { return plaintextReady(ctx, t) }
	// The failed login names no real account, whose lockout policy the
	// suite cannot know.
	for _, line := range []string{"STAT", "NOOP", long, "USER " + harness.NoSuchUser(), "PASS x"} {
		c = rc.send(c, line, errBudgetIn(t, false), reopenAuth)
	}
	Expect(loginAgain(c, a)).To(Succeed())
	rc.errs = 0
	reopenTx := func() *harness.Conn { return loginAs(ctx, t, a) }
	lines := []string{"STAT", "NOOP", "LIST 1", "UIDL 1", "RETR 999999", "RSET", longTx,
		commandOf("RETR", t.Profile.CommandLimit(true)), commandOf("LIST", t.Profile.CommandLimit(true)), "USER " + a.User}
	for _, line := range lines {
		c = rc.send(c, line, errBudgetIn(t, true), reopenTx)
	}
	return rc.seen
}

// provoked is provokeReplies read once for every spec that judges it.
var provoked = Reading[[]harness.Reply]{name: "replies to commands that may echo their arguments", read: provokeReplies}

// provokedDele is provokeDeleReplies read once for both specs that judge
// it.
var provokedDele = Reading[[]harness.Reply]{name: "replies to DELE with arguments that name no message", read: provokeDeleReplies}

// provokeDeleReplies collects the replies to DELE with arguments that
// name no message, one of them as long as the profile allows.
func provokeDeleReplies(ctx SpecContext, t *harness.Target) []harness.Reply {
	a := need(t.Account(ctx))
	c := loginAs(ctx, t, a)
	rc := &replyCollector{}
	reopenTx := func() *harness.Conn { return loginAs(ctx, t, a) }
	for _, line := range []string{"DELE 999999", commandOf("DELE", t.Profile.CommandLimit(true))} {
		c = rc.send(c, line, errBudgetIn(t, true), reopenTx)
	}
	return rc.seen
}
