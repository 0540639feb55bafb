package conformance

// RFC 1939 section 7: the optional commands. TOP and UIDL (judged when the
// profile lists them in CAPA, as Exchange does: V0007), the unique-id
// rules (charset, uniqueness, persistence, no reuse), USER and PASS, and
// APOP, which a profile either offers with a timestamp in the greeting or
// refuses outright (V0012).

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// messagesUpTo returns the content of messages 1..n as the server must
// send it: the fixture when the maildrop holds one, else what RETR gives
// (so TOP is judged against RETR of the same session). It stops early
// rather than download more than maxDownload octets.
func messagesUpTo(c *harness.Conn, a harness.Account, n int) [][]byte {
	if msgs, ok := fixtureOf(a); ok {
		out := make([][]byte, 0, n)
		for _, m := range msgs[:min(n, len(msgs))] {
			out = append(out, m.Data)
		}
		return out
	}
	var (
		out  [][]byte
		read int
	)
	for i := 1; i <= n && read <= maxDownload; i++ {
		m := multi(c, fmt.Sprintf("RETR %d", i))
		ExpectWithOffset(1, m.OK()).To(BeTrue(), "RETR %d: want +OK, got %q", i, m.String())
		out = append(out, m.Body())
		read += len(out[len(out)-1])
	}
	return out
}

// expectBody checks a multi-line answer against the message text it
// must carry, on the wire (byte-stuffed) and after un-stuffing.
func expectBody(m harness.Multi, want []byte, what string) {
	ExpectWithOffset(1, m.OK()).To(BeTrue(), "%s: want +OK, got %q", what, m.String())
	got, stuffed := bytes.Join(m.Lines, nil), bytes.Join(stuff(want), nil)
	ExpectWithOffset(1, bytes.Equal(got, stuffed)).To(BeTrue(), "%s on the wire against the byte-stuffed expectation: %s", what, firstDiff(got, stuffed))
	ExpectWithOffset(1, string(m.Terminator)).To(Equal(".\r\n"), "%s: terminator", what)
}

// topView is TOP of the first messages with every line count the TOP
// specs judge (0, 3, and the body's length, one more and 99999), read once
// for all of them, with the messages TOP is judged against.
type topView struct {
	Messages [][]byte
	tops     laterReplies[harness.Multi]
}

// topLines are the line counts asked of a message whose body has lines.
func topLines(lines int) []int { return []int{0, 3, lines, lines + 1, max(lines+1, 99999)} }

var tops = Reading[topView]{name: "TOP of the first messages", read: func(ctx SpecContext, t *harness.Target) topView {
	c, a := login(ctx, t)
	n := statAtLeast(c, 1)
	v := topView{Messages: messagesUpTo(c, a, min(n, 6))}
	v.tops.conn = c
	for i, data := range v.Messages {
		_, lines := topOf(data, 0)
		for _, k := range topLines(lines) {
			if !v.tops.ask(fmt.Sprintf("TOP %d %d", i+1, k), c.CmdMulti) {
				return v
			}
		}
	}
	return v
}}

// Top returns the reply to TOP num k.
func (v topView) Top(num, k int) harness.Multi { return v.tops.of(fmt.Sprintf("TOP %d %d", num, k)) }

var _ = Describe("RFC 1939 section 7: TOP", func() {
	Spec("answers TOP msg n with the header, the empty line and the first n body lines", IDs("RFC1939-7-top-format"), Readonly, tops, func(ctx SpecContext, t *harness.Target) {
		needProfileCapability(t, "TOP")
		v := tops.Get(ctx, t)
		for i, data := range v.Messages {
			want, _ := topOf(data, 3)
			expectBody(v.Top(i+1, 3), want, fmt.Sprintf("TOP %d 3", i+1))
		}
	})

	Spec("answers TOP msg 0 with the header and the empty line only", IDs("RFC1939-7-top-zero"), Readonly, tops, func(ctx SpecContext, t *harness.Target) {
		needProfileCapability(t, "TOP")
		v := tops.Get(ctx, t)
		for i, data := range v.Messages {
			want, _ := topOf(data, 0)
			m := v.Top(i+1, 0)
			expectBody(m, want, fmt.Sprintf("TOP %d 0", i+1))
			Expect(string(m.Lines[len(m.Lines)-1])).To(Equal("\r\n"), "TOP %d 0: the last line is the empty line after the header", i+1)
		}
	})

	Spec("returns the whole message when TOP asks for more lines than the body has", IDs("RFC1939-7-top-n-exceeds"), Readonly, tops, func(ctx SpecContext, t *harness.Target) {
		needProfileCapability(t, "TOP")
		v := tops.Get(ctx, t)
		for i, data := range v.Messages {
			_, lines := topOf(data, 0)
			for _, k := range topLines(lines)[2:] {
				expectBody(v.Top(i+1, k), data, fmt.Sprintf("TOP %d %d of a body of %d lines", i+1, k, lines))
			}
		}
	})

	Spec("refuses TOP with a missing, negative or non-numeric argument", IDs("RFC1939-7-top-args"), Readonly, func(ctx SpecContext, t *harness.Target) {
		needProfileCapability(t, "TOP")
		lines := []string{"TOP", "TOP 1", "TOP 1 -1", "TOP 1 x", "TOP x 0", "TOP -1 0"}
		a := need(t.Account(ctx))
		c := loginAs(ctx, t, a)
		// With a message 1 present, only the arguments can be at fault.
		statAtLeast(c, 1)
		// A server that closes after fewer errors gets the rest on fresh
		// sessions; a TOP wrongly accepted fails the spec at its +OK, so
		// no body is left unread.
		open := func() *harness.Conn { return loginAs(ctx, t, a) }
		c = expectErrs(c, t, lines, open, func(c *harness.Conn) { quitAndWait(c) }, func(*harness.Conn) {})
		expectOK(cmd(c, "NOOP"), "NOOP after the refused TOPs")
	})

	Spec("refuses TOP of a message that does not exist", IDs("RFC1939-7-top-deleted"), Readonly, KeptSession, func(ctx SpecContext, t *harness.Target) {
		needProfileCapability(t, "TOP")
		needErrBudget(t, 2)
		c, _ := session(ctx, t)
		n := statAtLeast(c, 1)
		expectErr(multi(c, "TOP 0 0").Reply, "TOP 0 0")
		expectErr(multi(c, fmt.Sprintf("TOP %d 0", n+1)).Reply, fmt.Sprintf("TOP %d 0 of a maildrop with %d messages", n+1, n))
		expectOK(cmd(c, "NOOP"), "NOOP after the refused TOPs")
	})

	Spec("refuses TOP of a message marked deleted", IDs("RFC1939-7-top-deleted"), Reversible, marked, func(ctx SpecContext, t *harness.Target) {
		needProfileCapability(t, "TOP")
		v := markedAtLeast(ctx, t, 1)
		expectErr(v.Reply("TOP 1 0"), "TOP 1 0 after DELE 1")
	})
})

// TOP and UIDL are TRANSACTION commands: before login they must be
// refused, whether or not the server implements them.
var _ = Describe("RFC 1939 section 7: TOP and UIDL outside TRANSACTION", func() {
	for _, tc := range []struct {
		line string
		ids  IDList
	}{
		{"TOP 1 0", IDs("RFC1939-7-top-state")},
		{"UIDL", IDs("RFC1939-7-uidl-state")},
	} {
		Spec(fmt.Sprintf("refuses %s in the AUTHORIZATION state", tc.line), tc.ids, Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
			a := need(t.Account(ctx))
			c := authDial(ctx, t)
			expectErr(multi(c, tc.line).Reply, tc.line+" before USER")
			if !t.Profile.PlaintextLogin(c.TLS()) {
				return // USER is refused before TLS here (V0010): no USER state to test
			}
			expectOK(cmd(c, "USER "+a.User), "USER after the refused "+tc.line)
			expectErr(multi(c, tc.line).Reply, tc.line+" between USER and PASS")
		})
	}
})

var _ = Describe("RFC 1939 section 7: UIDL and unique-ids", func() {
	Spec("answers UIDL with +OK and one \"n unique-id\" line per message", IDs("RFC1939-7-uidl-all"), Readonly, uids, func(ctx SpecContext, t *harness.Target) {
		needProfileCapability(t, "UIDL")
		v := uids.Get(ctx, t)
		n, _ := statOf(v.Stat, 0)
		m := v.All
		expectOK(m.Reply, "UIDL")
		Expect(m.Lines).To(HaveLen(n), "UIDL lines against the STAT count")
		for i, l := range m.Lines {
			s := uidLineRE.FindSubmatch(l)
			Expect(s).NotTo(BeNil(), "UIDL line %q: want the number, one space, the unique-id, CRLF", l)
			Expect(string(s[1])).To(Equal(strconv.Itoa(i+1)), "UIDL line %d names message %s", i+1, s[1])
		}
		Expect(string(m.Terminator)).To(Equal(".\r\n"), "terminator")
	})

	Spec("answers UIDL n on one line with +OK, the number and that message's unique-id", IDs("RFC1939-7-uidl-one"), Readonly, uids, func(ctx SpecContext, t *harness.Target) {
		needProfileCapability(t, "UIDL")
		v := uids.Get(ctx, t)
		statAtLeastOf(v.Stat, 1)
		listed := uidListingsOf(v.All)
		for _, u := range listed[:min(len(listed), oneFormLimit)] {
			r := v.One(u.Num)
			s := uidOneRE.FindStringSubmatch(string(r.Raw))
			Expect(s).NotTo(BeNil(), "UIDL %d: want \"+OK %d unique-id\", got %q", u.Num, u.Num, r.Raw)
			Expect(s[1]).To(Equal(strconv.Itoa(u.Num)), "UIDL %d: message number", u.Num)
			Expect(s[2]).To(Equal(u.UID()), "UIDL %d against the full UIDL listing", u.Num)
		}
		expectOK(v.AfterOne(), "NOOP after UIDL n")
	})

	Spec("refuses UIDL of a message that does not exist", IDs("RFC1939-7-uidl-deleted"), Readonly, KeptSession, func(ctx SpecContext, t *harness.Target) {
		needProfileCapability(t, "UIDL")
		needErrBudget(t, 2)
		c, _ := session(ctx, t)
		n := statAtLeast(c, 1)
		expectErr(cmd(c, fmt.Sprintf("UIDL %d", n+1)), fmt.Sprintf("UIDL %d of a maildrop with %d messages", n+1, n))
		expectErr(cmd(c, "UIDL 0"), "UIDL 0")
		expectOK(cmd(c, "NOOP"), "NOOP after the refused UIDLs")
	})

	Spec("leaves messages marked deleted out of UIDL and refuses UIDL of them", IDs("RFC1939-7-uidl-deleted"), Reversible, marked, func(ctx SpecContext, t *harness.Target) {
		needProfileCapability(t, "UIDL")
		v := markedAtLeast(ctx, t, 1)
		before := uidListingsOf(v.UIDL)
		Expect(uidListingsOf(v.Multi(uidlMarked))).To(Equal(before[1:]), "UIDL after DELE 1: every line but message 1's, unchanged")
		expectErr(v.Reply("UIDL 1"), "UIDL 1 after DELE 1")
	})

	Spec("uses unique-ids of 1 to 70 characters from 0x21 to 0x7E", IDs("RFC1939-7-uid-charset"), Readonly, uids, func(ctx SpecContext, t *harness.Target) {
		needProfileCapability(t, "UIDL")
		v := uids.Get(ctx, t)
		statAtLeastOf(v.Stat, 1)
		for _, u := range uidListingsOf(v.All) {
			Expect(uidCharsRE.MatchString(u.UID())).To(BeTrue(), "unique-id %q of message %d (%d characters)", u.UID(), u.Num, len(u.UID()))
		}
	})

	Spec("gives no two messages the same unique-id, identical copies included", IDs("RFC1939-7-uid-unique"), Readonly, uids, func(ctx SpecContext, t *harness.Target) {
		needProfileCapability(t, "UIDL")
		v := uids.Get(ctx, t)
		statAtLeastOf(v.Stat, 2)
		seen := map[string]int{}
		for _, u := range uidListingsOf(v.All) {
			Expect(seen).NotTo(HaveKey(u.UID()), "unique-id %q of message %d is already message %d's", u.UID(), u.Num, seen[u.UID()])
			seen[u.UID()] = u.Num
		}
	})

	Spec("keeps each message's unique-id from one session to the next, with and without UPDATE", IDs("RFC1939-7-uid-persistent"), Readonly, ManyCommands, func(ctx SpecContext, t *harness.Target) {
		needProfileCapability(t, "UIDL")
		c, a := login(ctx, t)
		statAtLeast(c, 1)
		first := uidListings(c)
		// Nothing is marked, so this UPDATE removes nothing.
		expectOK(cmd(c, "QUIT"), "QUIT")
		c2 := loginSoon(ctx, t, a)
		second := uidListings(c2)
		// New mail may arrive meanwhile on a live server; it comes last.
		Expect(len(second)).To(BeNumerically(">=", len(first)), "messages after a QUIT with nothing deleted")
		Expect(second[:len(first)]).To(Equal(first), "UIDL after a session that ended with QUIT")
		Expect(c2.Close()).To(Succeed())
		c3 := loginSoon(ctx, t, a)
		third := uidListings(c3)
		Expect(len(third)).To(BeNumerically(">=", len(first)))
		Expect(third[:len(first)]).To(Equal(first), "UIDL after a session that ended without QUIT")
	})

	Spec("does not give a deleted message's unique-id to new mail", IDs("RFC1939-7-uid-not-reused-should"), Mutating, ReferenceOnly, func(ctx SpecContext, t *harness.Target) {
		needProfileCapability(t, "UIDL")
		if !t.Profile.UID.NeverReused {
			verdict.SkipNotApplicable("the profile lets the server reuse unique-ids (uid.never_reused false)")
		}
		ref := t.Reference()
		c, a := login(ctx, t)
		n := statAtLeast(c, 1)
		old := map[string]bool{}
		for _, u := range uidListings(c) {
			old[u.UID()] = true
		}
		// Delete everything, the newest message included: a counter that
		// restarts from the highest or the lowest live id would reuse one.
		for i := 1; i <= n; i++ {
			expectOK(cmd(c, fmt.Sprintf("DELE %d", i)), fmt.Sprintf("DELE %d", i))
		}
		expectOK(cmd(c, "QUIT"), "QUIT")
		for i := range 2 {
			msg := fmt.Sprintf("From: <uid-check@example.org>\r\nTo: <%s@example.net>\r\nSubject: delivered after a deletion (%d)\r\n\r\nNew mail.\r\n", a.User, i+1)
			_, err := ref.Control.Deliver(a.User, []byte(msg))
			Expect(err).NotTo(HaveOccurred(), "deliver to %s", a.User)
		}
		c2 := loginSoon(ctx, t, a)
		uids := uidListings(c2)
		Expect(uids).To(HaveLen(2), "the maildrop after deleting everything and two deliveries")
		for _, u := range uids {
			Expect(old).NotTo(HaveKey(u.UID()), "new message %d got unique-id %q, which a deleted message had", u.Num, u.UID())
		}
	})
})

var _ = Describe("RFC 1939 section 7: USER and PASS", func() {
	Spec("answers USER for an existing mailbox with +OK", IDs("RFC1939-7-user-ok-or-err"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
		a := need(t.Account(ctx))
		c := authDial(ctx, t)
		r := cmd(c, "USER "+a.User)
		if !t.Profile.PlaintextLogin(c.TLS()) {
			// RFC 1939 lets a server refuse a mailbox that may not use a
			// plaintext password (V0010).
			expectErr(r, "USER of a mailbox that may not log in in plaintext")
			return
		}
		expectOK(r, "USER of an existing mailbox")
	})

	// RFC 1939 allows either status for a name it never heard of; which
	// one a server gives is MS-STANXPOP3 V0008/V0009's concern, judged
	// against the profile there.
	Spec("answers USER for an unknown name with +OK or -ERR", IDs("RFC1939-7-user-ok-or-err"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
		c := authDial(ctx, t)
		name := harness.NoSuchUser()
		r := cmd(c, "USER "+name)
		Expect(r.OK() || r.Err()).To(BeTrue(), "USER %s: want +OK or -ERR, got %q", name, r.Raw)
	})

	Spec("accepts a new login after a USER without a name failed", IDs("RFC1939-7-user-after-fail"), Readonly, func(ctx SpecContext, t *harness.Target) {
		needErrBudget(t, 1)
		a := need(t.Account(ctx))
		c := authDial(ctx, t)
		expectErr(provoke(c, "USER"), "USER without a name")
		Expect(loginAgain(c, a)).To(Succeed(), "USER and PASS after the failed USER")
		stat(c)
		c.Close()
		// And QUIT is accepted after a failed USER too.
		c2 := authDial(ctx, t)
		expectErr(provoke(c2, "USER"), "USER without a name")
		expectOK(cmd(c2, "QUIT"), "QUIT after a failed USER")
	})

	Spec("accepts a new login after USER for an unknown name failed", IDs("RFC1939-7-user-after-fail"), Readonly, func(ctx SpecContext, t *harness.Target) {
		if t.Profile.UnknownUserReply != profile.ReplyErr {
			verdict.SkipNotApplicable("the profile answers USER for an unknown name with +OK (MS-STANXPOP3 V0008)")
		}
		needErrBudget(t, 1)
		a := need(t.Account(ctx))
		c := authDial(ctx, t)
		if r := cmd(c, "USER "+harness.NoSuchUser()); !r.Err() {
			// RFC1939-7-user-ok-or-err judges that reply; here it only
			// means no USER failed.
			verdict.SkipInconclusive("the server accepted USER for an unknown name (%s), so no USER failed", r.String())
		}
		Expect(loginAgain(c, a)).To(Succeed(), "USER and PASS after the failed USER")
		stat(c)
	})

	// PASS belongs right after a USER that got +OK; every other place
	// earns -ERR. Each case has a connection of its own.
	for _, tc := range []struct {
		name   string
		before int // negative replies the case causes before its PASS
		steps  func(c *harness.Conn, a harness.Account)
	}{
		{"right after the greeting", 0, func(*harness.Conn, harness.Account) {}},
		{"after a USER without a name failed", 1, func(c *harness.Conn, _ harness.Account) {
			expectErr(provoke(c, "USER"), "USER without a name")
		}},
		{"after a failed PASS", 1, func(c *harness.Conn, _ harness.Account) {
			expectErr(failedPass(c), "a failed login")
		}},
	} {
		Spec("refuses PASS "+tc.name, IDs("RFC1939-7-pass-needs-user"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
			needErrBudget(t, tc.before)
			a := need(t.Account(ctx))
			c := authDial(ctx, t)
			tc.steps(c, a)
			// The right password: only the place of PASS is wrong.
			expectErr(cmd(c, "PASS "+a.Password), "PASS "+tc.name)
		})
	}

	Spec("stays in AUTHORIZATION after a rejected PASS, so a new login works", IDs("RFC1939-7-pass-fail-back-to-auth"), Readonly, func(ctx SpecContext, t *harness.Target) {
		needErrBudget(t, 2)
		a := need(t.Account(ctx))
		c := authDial(ctx, t)
		// A name no server has: a wrong password for the account itself
		// could count towards its lockout.
		expectErr(failedPass(c), "a failed login")
		expectErr(cmd(c, "STAT"), "STAT after a rejected PASS: still AUTHORIZATION")
		Expect(loginAgain(c, a)).To(Succeed(), "USER and PASS after the rejected PASS")
		stat(c)
	})

	Spec("takes spaces in the PASS argument as part of the password", IDs("RFC1939-7-pass-spaces"), Readonly, func(ctx SpecContext, t *harness.Target) {
		if !t.Profile.PassSpaces {
			verdict.SkipNotApplicable("the profile does not take spaces in PASS as part of the password")
		}
		a := need(t.AccountLike(ctx, "bob"))
		if !strings.Contains(a.Password, " ") {
			verdict.SkipInconclusive("the password of %s has no space", a.User)
		}
		c := authDial(ctx, t)
		expectOK(cmd(c, "USER "+a.User), "USER")
		expectOK(cmd(c, "PASS "+a.Password), "PASS with a password that holds a space")
		stat(c)
	})

	Spec("enters TRANSACTION when PASS completes the login", IDs("RFC1939-7-pass-locks"), Readonly, func(ctx SpecContext, t *harness.Target) {
		a := need(t.Account(ctx))
		c := authDial(ctx, t)
		expectErr(cmd(c, "STAT"), "STAT before the login")
		expectOK(cmd(c, "USER "+a.User), "USER")
		expectOK(cmd(c, "PASS "+a.Password), "PASS")
		stat(c)
		expectOK(cmd(c, "NOOP"), "NOOP in TRANSACTION")
		expectErr(cmd(c, "USER "+a.User), "USER in TRANSACTION")
	})

	Spec("holds the maildrop lock from PASS on", IDs("RFC1939-7-pass-locks"), Disruptive, func(ctx SpecContext, t *harness.Target) {
		if t.Profile.Lock != profile.LockExclusive {
			verdict.SkipNotApplicable("the profile expects no maildrop lock (MS-STANXPOP3 2.1.3)")
		}
		c, a := login(ctx, t)
		stat(c)
		c2 := authDial(ctx, t)
		r := cmd(c2, "USER "+a.User)
		if r.OK() {
			r = cmd(c2, "PASS "+a.Password)
		}
		expectErr(r, "a second login to a maildrop locked by another session")
		stat(c)
	})
})

var _ = Describe("RFC 1939 section 7: APOP", func() {
	Spec("puts a timestamp in the greeting that differs on every connection", IDs("RFC1939-7-apop-banner"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
		if !t.Profile.APOP {
			verdict.SkipNotApplicable("the profile has no APOP (see RFC1939-7-apop-unsupported)")
		}
		var stamps []string
		for range 2 {
			c := dial(ctx, t)
			s := msgIDRE.FindString(c.Greeting.Text)
			Expect(s).NotTo(BeEmpty(), "greeting %q: want a <local@domain> timestamp", c.Greeting.String())
			stamps = append(stamps, s)
			Expect(c.Close()).To(Succeed())
		}
		Expect(stamps[1]).NotTo(Equal(stamps[0]), "two greetings carried the same timestamp")
	})

	Spec("accepts APOP with the MD5 digest of timestamp and secret", IDs("RFC1939-7-apop-digest"), Readonly, LoginOnly, func(ctx SpecContext, t *harness.Target) {
		if !t.Profile.APOP {
			verdict.SkipNotApplicable("the profile has no APOP (see RFC1939-7-apop-unsupported)")
		}
		needErrBudget(t, 2)
		// A mailbox that logs in with APOP (RFC 1939 section 13: one
		// method per mailbox, see RFC1939-13-apop-xor-pass).
		a := apopAccount(ctx, t)
		c := authDial(ctx, t)
		stamp, ok := apopTimestamp(c.Greeting)
		Expect(ok).To(BeTrue(), "greeting %q has no timestamp", c.Greeting.String())
		r := cmd(c, "APOP "+a.User+" "+harness.APOPDigest(stamp, a.Password))
		skipUnknownAPOPSecret(t, a, r)
		expectOK(r, "APOP with the right digest")
		stat(c)
		// QUIT with nothing marked: the lock, if any, is gone once +OK is in.
		expectOK(cmd(c, "QUIT"), "QUIT")
	})

	// A wrong digest for the account is a failed login, which lockout
	// policies may count: disruptive.
	Spec("refuses APOP with a wrong digest and stays in AUTHORIZATION", IDs("RFC1939-7-apop-digest"), Disruptive, func(ctx SpecContext, t *harness.Target) {
		if !t.Profile.APOP {
			verdict.SkipNotApplicable("the profile has no APOP (see RFC1939-7-apop-unsupported)")
		}
		needErrBudget(t, 2)
		a := apopAccount(ctx, t)
		// The right digest ends the check: it must be known to log in.
		needAPOPSecret(ctx, t, a)
		c2 := authDial(ctx, t)
		stamp, ok := apopTimestamp(c2.Greeting)
		Expect(ok).To(BeTrue(), "greeting %q has no timestamp", c2.Greeting.String())
		expectErr(cmd(c2, "APOP "+a.User+" "+harness.APOPDigest(stamp, a.Password+"-wrong")), "APOP with a wrong digest")
		// Still AUTHORIZATION: TRANSACTION commands are refused, and APOP
		// with the right digest works on the same session.
		expectErr(cmd(c2, "STAT"), "STAT after a refused APOP")
		expectOK(cmd(c2, "APOP "+a.User+" "+harness.APOPDigest(stamp, a.Password)), "APOP with the right digest after the refused one")
		stat(c2)
	})

	// Each case runs steps, then APOP with the right digest for the APOP
	// mailbox a; only the place of APOP decides. pw is a mailbox that logs
	// in with USER/PASS, for the steps that need a login by password (RFC
	// 1939 section 13: the APOP mailbox takes no USER/PASS).
	type apopCase struct {
		name    string
		before  int // negative replies before the APOP
		steps   func(c *harness.Conn, a, pw harness.Account)
		allowed bool
	}
	for _, tc := range []apopCase{
		{"after a USER that got +OK", 0, func(c *harness.Conn, a, _ harness.Account) {
			expectOK(cmd(c, "USER "+a.User), "USER")
		}, false},
		{"after a USER without a name failed", 1, func(c *harness.Conn, _, _ harness.Account) {
			expectErr(provoke(c, "USER"), "USER without a name")
		}, true},
		{"after a failed PASS", 1, func(c *harness.Conn, _, _ harness.Account) {
			expectErr(failedPass(c), "a failed login")
		}, true},
		{"in TRANSACTION after USER and PASS", 0, func(c *harness.Conn, _, pw harness.Account) {
			Expect(loginAgain(c, pw)).To(Succeed())
		}, false},
		{"in TRANSACTION after APOP", 0, func(c *harness.Conn, a, _ harness.Account) {
			stamp, _ := apopTimestamp(c.Greeting)
			expectOK(cmd(c, "APOP "+a.User+" "+harness.APOPDigest(stamp, a.Password)), "APOP")
		}, false},
	} {
		verb := "refuses"
		if tc.allowed {
			verb = "accepts"
		}
		Spec(fmt.Sprintf("%s APOP %s", verb, tc.name), IDs("RFC1939-7-apop-once"), Readonly, LoginOnly, func(ctx SpecContext, t *harness.Target) {
			if !t.Profile.APOP {
				verdict.SkipNotApplicable("the profile has no APOP (see RFC1939-7-apop-unsupported)")
			}
			needErrBudget(t, tc.before)
			a := apopAccount(ctx, t)
			pw := need(t.Account(ctx))
			c := authDial(ctx, t)
			stamp, ok := apopTimestamp(c.Greeting)
			if !ok {
				// RFC1939-7-apop-banner and -digest judge the missing
				// timestamp; where APOP may be given cannot be seen here.
				verdict.SkipInconclusive("the greeting %q has no APOP timestamp", c.Greeting.String())
			}
			if !tc.allowed {
				// A refusal says something only of a secret that works.
				needAPOPSecret(ctx, t, a)
			}
			tc.steps(c, a, pw)
			// The right digest: only the place of APOP decides.
			r := cmd(c, "APOP "+a.User+" "+harness.APOPDigest(stamp, a.Password))
			if tc.allowed {
				skipUnknownAPOPSecret(t, a, r)
				expectOK(r, "APOP "+tc.name)
				stat(c)
			} else {
				expectErr(r, "APOP "+tc.name)
			}
		})
	}

	Spec("has no timestamp in the greeting and refuses APOP when it does not offer APOP", IDs("RFC1939-7-apop-unsupported"), Readonly, func(ctx SpecContext, t *harness.Target) {
		if t.Profile.APOP {
			verdict.SkipNotApplicable("the profile offers APOP")
		}
		a := need(t.Account(ctx))
		c := authDial(ctx, t)
		s, has := apopTimestamp(c.Greeting)
		Expect(has).To(BeFalse(), "greeting %q carries %s, which a client takes for an APOP timestamp", c.Greeting.String(), s)
		// Any name does: a refused APOP for the account itself could
		// count towards its lockout.
		line := "APOP " + harness.NoSuchUser() + " " + harness.APOPDigest("<1.2@example>", a.Password)
		if len(line)+2 > t.Profile.MaxCommandOctets {
			// Keep the refusal about APOP, not about the length (E0006).
			line = "APOP x " + harness.APOPDigest("<1.2@example>", a.Password)
		}
		expectErr(cmd(c, line), "APOP on a server without APOP")
		Expect(loginAgain(c, a)).To(Succeed(), "USER and PASS after the refused APOP")
	})
})
