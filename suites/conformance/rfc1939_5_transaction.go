package conformance

// RFC 1939 section 5: the TRANSACTION state. STAT, LIST, RETR, DELE, NOOP
// and RSET; message numbers that stay put within a session; messages
// marked deleted, which no command may name again; a failed command that
// leaves the session where it was; and LAST, which RFC 1939 dropped.
//
// Exact sizes: RFC 1939 wants STAT and scan listings in exact octets.
// Under a profile with exact_sizes false (MS-STANXPOP3 2.1.4, 2.1.5) that
// part ends not applicable while the reply format is still checked.

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

var _ = Describe("RFC 1939 section 5: STAT", func() {
	Spec("answers STAT with +OK, the message count and the maildrop size", IDs("RFC1939-5-stat-format"), Readonly, scans, func(ctx SpecContext, t *harness.Target) {
		v := scans.Get(ctx, t)
		r := v.Stat
		m := statRE.FindStringSubmatch(string(r.Raw))
		Expect(m).NotTo(BeNil(), "STAT: want \"+OK\", a space, the count, a space and the size; got %q", r.Raw)
		n, _ := strconv.Atoi(m[1])
		Expect(scanListingsOf(v.All)).To(HaveLen(n), "STAT counts %d messages; LIST must list as many", n)
	})

	Spec("gives the maildrop size in STAT as the exact octet count", IDs("RFC1939-5-stat-format"), Readonly, KeptSession, func(ctx SpecContext, t *harness.Target) {
		needExactSizes(t)
		c, a := session(ctx, t)
		_, size := stat(c)
		exact := exactSizes(c, a, scanListings(c))
		var sum int64
		for _, s := range exact {
			sum += s
		}
		Expect(size).To(Equal(sum), "STAT size against the sum of the messages' exact octets")
	})

	Spec("leaves messages marked deleted out of both numbers of STAT", IDs("RFC1939-5-stat-excludes-deleted"), Reversible, marked, func(ctx SpecContext, t *harness.Target) {
		v := markedAtLeast(ctx, t, 2)
		n, before := statOf(v.Before, 0)
		list := scanListingsOf(v.List)
		got, after := statOf(v.Reply(statMarked1), 0)
		Expect(got).To(Equal(n-1), "STAT count after DELE 1")
		if t.Profile.ExactSizes {
			Expect(after).To(Equal(before-list[0].Size()), "STAT size after DELE 1 of a message of %d octets", list[0].Size())
		} else {
			// A storage-size total need not be the sum of the listed
			// sizes, but the deleted message must leave it.
			Expect(after).To(BeNumerically("<", before), "STAT size after DELE 1")
		}
		expectOK(v.Reply("DELE 2"), "DELE 2")
		got, _ = statOf(v.Reply(statMarked2), 0)
		Expect(got).To(Equal(n-2), "STAT count after DELE 1 and DELE 2")
	})
})

// Commands that RFC 1939 allows in TRANSACTION only: before login they
// must be refused, and the session stays in AUTHORIZATION.
var _ = Describe("RFC 1939 section 5: STAT and RSET outside TRANSACTION", func() {
	type stateCase struct {
		line string
		ids  IDList
	}
	for _, tc := range []stateCase{
		{"STAT", IDs("RFC1939-5-stat-args")},
		{"RSET", IDs("RFC1939-5-rset-no-args")},
	} {
		Spec(fmt.Sprintf("refuses %s in the AUTHORIZATION state", tc.line), tc.ids, Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
			a := need(t.Account(ctx))
			c := authDial(ctx, t)
			expectErr(cmd(c, tc.line), tc.line+" before USER")
			if !t.Profile.PlaintextLogin(c.TLS()) {
				return // USER is refused before TLS here (V0010): no USER state to test
			}
			expectOK(cmd(c, "USER "+a.User), "USER after the refused "+tc.line)
			expectErr(cmd(c, tc.line), tc.line+" between USER and PASS")
		})
	}

	// RFC 1939 gives STAT and RSET no arguments but says nothing of what
	// an argument earns. A server may refuse the line or ignore the
	// argument; what it may not do is anything else: a malformed reply,
	// a different command, or a lost session.
	for _, tc := range []stateCase{
		{"STAT", IDs("RFC1939-5-stat-args")},
		{"RSET", IDs("RFC1939-5-rset-no-args")},
	} {
		Spec(fmt.Sprintf("answers %s with an argument by -ERR or as plain %s", tc.line, tc.line), tc.ids, Reversible, func(ctx SpecContext, t *harness.Target) {
			c, _ := login(ctx, t)
			n := statAtLeast(c, 1)
			expectOK(cmd(c, "DELE 1"), "DELE 1")
			r := cmd(c, tc.line+" 1")
			record("reply to "+tc.line+" with an argument", "%s", r.String())
			Expect(r.OK() || r.Err()).To(BeTrue(), "%s 1: want a status line, got %q", tc.line, r.Raw)
			got, _ := stat(c)
			switch {
			case r.Err():
				Expect(got).To(Equal(n-1), "a refused %s 1 must not change the deletion marks", tc.line)
			case tc.line == "STAT":
				Expect(statRE.Match(r.Raw)).To(BeTrue(), "STAT 1 answered +OK must be a drop listing: %q", r.Raw)
			default:
				Expect(got).To(Equal(n), "RSET 1 answered +OK must have cleared the deletion mark")
			}
			expectOK(cmd(c, "RSET"), "RSET")
		})
	}
})

var _ = Describe("RFC 1939 section 5: LIST", func() {
	Spec("lists every message with LIST, in order, one scan listing each", IDs("RFC1939-5-list-all"), Readonly, scans, func(ctx SpecContext, t *harness.Target) {
		v := scans.Get(ctx, t)
		a := v.Account
		n, _ := statOf(v.Stat, 0)
		list := scanListingsOf(v.All)
		Expect(list).To(HaveLen(n), "LIST lines against the STAT count")
		for i, s := range list {
			Expect(s.Num).To(Equal(i+1), "scan listing %d names message %d", i+1, s.Num)
		}
		if msgs, ok := fixtureOf(a); ok {
			Expect(list).To(HaveLen(len(msgs)), "the maildrop holds fixture %s", a.Fixture)
		}
	})

	Spec("gives each message's exact octet count in LIST and LIST n", IDs("RFC1939-5-list-all", "RFC1939-5-list-one", "RFC1939-5-scanlisting-format"), Readonly, KeptSession, func(ctx SpecContext, t *harness.Target) {
		needExactSizes(t)
		c, a := session(ctx, t)
		statAtLeast(c, 1)
		list := scanListings(c)
		exact := exactSizes(c, a, list)
		for _, s := range list {
			Expect(s.Size()).To(Equal(exact[s.Num]), "LIST: size of message %d", s.Num)
			r := cmd(c, fmt.Sprintf("LIST %d", s.Num))
			m := listOneRE.FindStringSubmatch(string(r.Raw))
			Expect(m).NotTo(BeNil(), "LIST %d: got %q", s.Num, r.Raw)
			Expect(m[2]).To(Equal(strconv.FormatInt(exact[s.Num], 10)), "LIST %d: size", s.Num)
		}
	})

	Spec("leaves messages marked deleted out of LIST and keeps the others' numbers", IDs("RFC1939-5-list-excludes-deleted"), Reversible, marked, func(ctx SpecContext, t *harness.Target) {
		v := markedAtLeast(ctx, t, 3)
		before := scanListingsOf(v.List)
		after := scanListingsOf(v.Multi(listMarked))
		Expect(after).To(Equal(before[1:]), "LIST after DELE 1: every listing but message 1's, unchanged")
	})

	Spec("answers LIST n on one line with +OK and that message's scan listing", IDs("RFC1939-5-list-one"), Readonly, scans, func(ctx SpecContext, t *harness.Target) {
		v := scans.Get(ctx, t)
		statAtLeastOf(v.Stat, 1)
		list := scanListingsOf(v.All)
		for _, s := range list[:min(len(list), oneFormLimit)] {
			r := v.One(s.Num)
			m := listOneRE.FindStringSubmatch(string(r.Raw))
			Expect(m).NotTo(BeNil(), "LIST %d: want \"+OK %d size\", got %q", s.Num, s.Num, r.Raw)
			Expect(m[1]).To(Equal(strconv.Itoa(s.Num)), "LIST %d: message number", s.Num)
			Expect(m[2]).To(Equal(strconv.FormatInt(s.Size(), 10)), "LIST %d: size against the full LIST", s.Num)
		}
		// A one-line answer: the next command's reply must come next.
		expectOK(v.AfterOne(), "NOOP after LIST n")
	})

	Spec("refuses LIST of a message number that does not exist", IDs("RFC1939-5-list-nonexistent"), Readonly, KeptSession, func(ctx SpecContext, t *harness.Target) {
		needErrBudgetTx(t, 3)
		c, _ := session(ctx, t)
		n := statAtLeast(c, 1)
		for _, arg := range []string{"0", strconv.Itoa(n + 1), "99999999999"} {
			expectErr(cmd(c, "LIST "+arg), "LIST "+arg+" of a maildrop with "+strconv.Itoa(n)+" messages")
		}
		expectOK(cmd(c, "NOOP"), "NOOP after the refused LISTs")
	})

	Spec("refuses LIST of a message marked deleted", IDs("RFC1939-5-list-nonexistent"), Reversible, marked, func(ctx SpecContext, t *harness.Target) {
		v := markedAtLeast(ctx, t, 1)
		expectErr(v.Reply("LIST 1"), "LIST 1 after DELE 1")
	})

	Spec("answers LIST on an empty maildrop with +OK and the terminator at once", IDs("RFC1939-5-list-empty"), Readonly, func(ctx SpecContext, t *harness.Target) {
		a := need(t.AccountLike(ctx, "carol"))
		c, err := t.Login(ctx, a)
		Expect(err).NotTo(HaveOccurred(), "log in as %s", a.User)
		n, _ := stat(c)
		if n != 0 {
			verdict.SkipInconclusive("the maildrop declared empty holds %d messages", n)
		}
		m := multi(c, "LIST")
		expectOK(m.Reply, "LIST on an empty maildrop")
		Expect(m.Lines).To(BeEmpty(), "LIST on an empty maildrop: no scan listings")
		Expect(string(m.Terminator)).To(Equal(".\r\n"), "terminator")
	})

	Spec("formats every scan listing as the number, one space and the size", IDs("RFC1939-5-scanlisting-format"), Readonly, scans, func(ctx SpecContext, t *harness.Target) {
		v := scans.Get(ctx, t)
		statAtLeastOf(v.Stat, 1)
		m := v.All
		expectOK(m.Reply, "LIST")
		for _, l := range m.Lines {
			Expect(scanRE.Match(l)).To(BeTrue(), "scan listing %q: want \"n size\" and CRLF", l)
		}
		r := v.One(1)
		Expect(listOneRE.Match(r.Raw)).To(BeTrue(), "LIST 1: want \"+OK 1 size\", got %q", r.Raw)
	})
})

// fixtureRetrieved is RETR of every message of a maildrop declared to hold
// fixture alice, in one session, read once for the specs that compare
// each message with the fixture. A maildrop without it makes them
// inconclusive before any connection.
type fixtureRetrieved struct {
	retr laterReplies[harness.Multi]
}

var fixtureMail = Reading[fixtureRetrieved]{name: "RETR of fixture alice's messages", read: func(ctx SpecContext, t *harness.Target) fixtureRetrieved {
	a := need(t.Account(ctx))
	fx := needFixture(a, "alice")
	c := loginAs(ctx, t, a)
	var v fixtureRetrieved
	v.retr.conn = c
	for num := 1; num <= len(fx); num++ {
		if !v.retr.ask(fmt.Sprintf("RETR %d", num), c.CmdMulti) {
			break
		}
	}
	return v
}}

// Retr returns the reply to RETR num.
func (v fixtureRetrieved) Retr(num int) harness.Multi { return v.retr.of(fmt.Sprintf("RETR %d", num)) }

// mailSource gives the messages of the account's maildrop to the specs
// that judge every message's format.
type mailSource struct {
	Account harness.Account
	// Count is how many messages the maildrop holds.
	Count int
	retr  func(num int) harness.Multi
}

// Retr returns the reply to RETR num.
func (s mailSource) Retr(num int) harness.Multi { return s.retr(num) }

// messagesOf reads the messages from fixtureMail when the maildrop is
// declared (and measured) to hold fixture alice, one session for every
// spec that judges them; otherwise on a session of the spec's own, as
// STAT counts them.
func messagesOf(ctx SpecContext, t *harness.Target) mailSource {
	a := need(t.Account(ctx))
	if a.Fixture == "alice" {
		v := fixtureMail.Get(ctx, t)
		return mailSource{Account: a, Count: len(need(harness.FixtureMessages("alice"))), retr: v.Retr}
	}
	c := loginAs(ctx, t, a)
	return mailSource{Account: a, Count: messageCount(c), retr: func(num int) harness.Multi {
		return multi(c, fmt.Sprintf("RETR %d", num))
	}}
}

var _ = Describe("RFC 1939 section 5: RETR", func() {
	// One spec per fixture message, so a failure names the message that
	// the server mangled (dot lines, 8-bit text, a large body).
	fixture, err := harness.FixtureMessages("alice")
	if err != nil {
		panic(err)
	}
	for i, fm := range fixture {
		num, name, data := i+1, fm.Name, fm.Data
		Spec(fmt.Sprintf("sends fixture message %s whole and byte-stuffed on RETR %d", name, num), IDs("RFC1939-5-retr-ok"), Readonly, fixtureMail, func(ctx SpecContext, t *harness.Target) {
			m := fixtureMail.Get(ctx, t).Retr(num)
			expectOK(m.Reply, fmt.Sprintf("RETR %d", num))
			want := stuff(data)
			got := bytes.Join(m.Lines, nil)
			Expect(bytes.Equal(got, bytes.Join(want, nil))).To(BeTrue(), "RETR %d on the wire against the byte-stuffed fixture: %s", num, firstDiff(got, bytes.Join(want, nil)))
			Expect(string(m.Terminator)).To(Equal(".\r\n"), "terminator")
			Expect(m.Body()).To(Equal(data), "RETR %d un-stuffed against the fixture", num)
		})
	}

	Spec("answers RETR with +OK and a multi-line message of CRLF lines", IDs("RFC1939-5-retr-ok"), Readonly, KeptSession, func(ctx SpecContext, t *harness.Target) {
		c, _ := session(ctx, t)
		n := statAtLeast(c, 1)
		list := scanListings(c)
		var read int64
		for _, s := range list[:min(n, 3)] {
			if read += s.Size(); read > maxDownload && s.Num > 1 {
				break
			}
			m := multi(c, fmt.Sprintf("RETR %d", s.Num))
			expectOK(m.Reply, fmt.Sprintf("RETR %d", s.Num))
			for _, l := range m.Lines {
				Expect(bytes.HasSuffix(l, []byte("\r\n"))).To(BeTrue(), "RETR %d: line %q does not end in CRLF", s.Num, l)
			}
			Expect(string(m.Terminator)).To(Equal(".\r\n"), "RETR %d: terminator", s.Num)
			Expect(m.Lines).NotTo(BeEmpty(), "RETR %d: a message has at least a header", s.Num)
		}
		expectOK(cmd(c, "NOOP"), "NOOP after RETR: nothing may follow the terminator")
	})

	Spec("refuses RETR of a message that does not exist", IDs("RFC1939-5-retr-err"), Readonly, KeptSession, func(ctx SpecContext, t *harness.Target) {
		needErrBudgetTx(t, 2)
		c, _ := session(ctx, t)
		n := statAtLeast(c, 1)
		expectErr(cmd(c, "RETR 0"), "RETR 0")
		expectErr(cmd(c, fmt.Sprintf("RETR %d", n+1)), fmt.Sprintf("RETR %d of a maildrop with %d messages", n+1, n))
		expectOK(cmd(c, "NOOP"), "NOOP after the refused RETRs")
	})

	Spec("refuses RETR of a message marked deleted", IDs("RFC1939-5-retr-err"), Reversible, marked, func(ctx SpecContext, t *harness.Target) {
		v := markedAtLeast(ctx, t, 1)
		expectErr(v.Reply("RETR 1"), "RETR 1 after DELE 1")
	})

	Spec("refuses RETR without a message number or with one that is not a number", IDs("RFC1939-5-retr-arg-required"), Readonly, KeptSession, func(ctx SpecContext, t *harness.Target) {
		args := []string{"RETR", "RETR x", "RETR -1", "RETR 1x"}
		needErrBudgetTx(t, len(args)-1)
		c, _ := session(ctx, t)
		// With a message 1 present, only the argument can be at fault.
		statAtLeast(c, 1)
		for _, line := range args {
			expectErr(cmd(c, line), line)
		}
		expectOK(cmd(c, "NOOP"), "NOOP after the refused RETRs")
	})
})

var _ = Describe("RFC 1939 section 5: DELE, NOOP and RSET", func() {
	Spec("marks a message deleted with DELE and removes nothing before UPDATE", IDs("RFC1939-5-dele-marks"), Reversible, marked, func(ctx SpecContext, t *harness.Target) {
		v := markedAtLeast(ctx, t, 1)
		got, _ := statOf(v.Reply(statMarked1), 0)
		Expect(got).To(Equal(v.Count-1), "STAT after DELE 1: the message is marked")
		// The session ended without QUIT, with messages marked again
		// after RSET: there is no UPDATE, so every message must still be
		// there. (A server that removed message 1 at DELE refuses to mark
		// it again; what the new session lists is the evidence.)
		Expect(scanListingsOf(v.Multi(listNewSession))).To(Equal(scanListingsOf(v.List)), "LIST of a new session after DELE 1 and a close without QUIT")
	})

	Spec("refuses DELE of a message already marked deleted", IDs("RFC1939-5-dele-twice"), Reversible, marked, func(ctx SpecContext, t *harness.Target) {
		v := markedAtLeast(ctx, t, 1)
		expectErr(v.Reply(deleAgain), "DELE 1 again")
		got, _ := statOf(v.Reply(statMarkedTwice), 0)
		Expect(got).To(Equal(v.Count-1), "STAT after DELE 1 twice")
	})

	Spec("refuses DELE of a message number that does not exist", IDs("RFC1939-5-dele-nonexistent"), Reversible, func(ctx SpecContext, t *harness.Target) {
		needErrBudgetTx(t, 2)
		c, _ := login(ctx, t)
		n, _ := stat(c)
		expectErr(cmd(c, "DELE 0"), "DELE 0")
		expectErr(cmd(c, fmt.Sprintf("DELE %d", n+1)), fmt.Sprintf("DELE %d of a maildrop with %d messages", n+1, n))
		got, _ := stat(c)
		Expect(got).To(Equal(n), "STAT after the refused DELEs")
		expectOK(cmd(c, "RSET"), "RSET")
	})

	Spec("answers NOOP with +OK and changes nothing", IDs("RFC1939-5-noop"), Readonly, KeptSession, func(ctx SpecContext, t *harness.Target) {
		c, _ := session(ctx, t)
		n, size := stat(c)
		list := scanListings(c)
		r := cmd(c, "NOOP")
		expectOK(r, "NOOP")
		n2, size2 := stat(c)
		Expect([]int64{int64(n2), size2}).To(Equal([]int64{int64(n), size}), "STAT before and after NOOP")
		Expect(scanListings(c)).To(Equal(list), "LIST before and after NOOP")
	})

	// markAndReset marks up to three messages deleted, clears the marks
	// with RSET and checks that STAT and LIST show every message again.
	markAndReset := func(c *harness.Conn) []listing {
		n, size := stat(c)
		needMessages(n, 1)
		list := scanListings(c)
		marked := min(n, 3)
		for i := 1; i <= marked; i++ {
			expectOK(cmd(c, fmt.Sprintf("DELE %d", i)), fmt.Sprintf("DELE %d", i))
		}
		expectOK(cmd(c, "RSET"), "RSET")
		n2, size2 := stat(c)
		Expect(n2).To(Equal(n), "STAT count after RSET")
		Expect(size2).To(Equal(size), "STAT size after RSET")
		Expect(scanListings(c)).To(Equal(list), "LIST after RSET")
		for i := 1; i <= marked; i++ {
			Expect(listOneRE.Match(cmd(c, fmt.Sprintf("LIST %d", i)).Raw)).To(BeTrue(), "LIST %d after RSET", i)
		}
		return list
	}

	Spec("removes every deletion mark with RSET", IDs("RFC1939-5-rset-unmark"), Reversible, marked, func(ctx SpecContext, t *harness.Target) {
		v := markedAtLeast(ctx, t, 1)
		n, size := statOf(v.Before, 0)
		for k := 2; k <= min(n, resetMarksMax); k++ {
			expectOK(v.Reply(fmt.Sprintf("DELE %d", k)), fmt.Sprintf("DELE %d", k))
		}
		expectOK(v.Reply("RSET"), "RSET")
		n2, size2 := statOf(v.Reply(statReset), 0)
		Expect(n2).To(Equal(n), "STAT count after RSET")
		Expect(size2).To(Equal(size), "STAT size after RSET")
		Expect(scanListingsOf(v.Multi(listReset))).To(Equal(scanListingsOf(v.List)), "LIST after RSET")
		for k := 1; k <= min(n, resetMarksMax); k++ {
			Expect(listOneRE.Match(v.Reply(fmt.Sprintf("LIST %d after RSET", k)).Raw)).To(BeTrue(), "LIST %d after RSET", k)
		}
	})

	// QUIT after RSET: a server whose RSET left a mark would now delete
	// for good, so this half is mutating.
	Spec("removes nothing on QUIT after RSET cleared the marks", IDs("RFC1939-5-rset-unmark"), Mutating, MarksDeleted, func(ctx SpecContext, t *harness.Target) {
		c, a := login(ctx, t)
		list := markAndReset(c)
		expectOK(cmd(c, "QUIT"), "QUIT after RSET")
		c2 := loginSoon(ctx, t, a)
		Expect(scanListings(c2)).To(Equal(list), "LIST of a new session after DELE, RSET and QUIT")
	})

	Spec("stays in TRANSACTION after a command fails", IDs("RFC1939-5-err-keeps-state"), Readonly, KeptSession, func(ctx SpecContext, t *harness.Target) {
		c, _ := session(ctx, t)
		n, size := stat(c)
		// No DELE here: a failing DELE is judged by the reversible
		// RFC1939-5-dele-nonexistent spec, which also checks the state.
		failing := []string{fmt.Sprintf("RETR %d", n+1), fmt.Sprintf("LIST %d", n+1), "LIST x", "XYZZY"}
		for i, line := range failing {
			if m := errorLimit(t, true); m > 0 && i+1 >= m {
				break // the profile lets the server close after m errors (C0005)
			}
			expectErr(cmd(c, line), line)
			n2, size2 := stat(c)
			Expect([]int64{int64(n2), size2}).To(Equal([]int64{int64(n), size}), "STAT after the refused %s", line)
		}
		expectOK(cmd(c, "NOOP"), "NOOP after the refused commands")
	})

	Spec("answers LAST, which RFC 1939 no longer has, with one status line", IDs("RFC1939-5-no-last"), Readonly, KeptSession, func(ctx SpecContext, t *harness.Target) {
		needErrBudgetTx(t, 1)
		c, _ := session(ctx, t)
		r := cmd(c, "LAST")
		record("reply to LAST", "%s", r.String())
		Expect(r.OK() || r.Err()).To(BeTrue(), "LAST: want +OK or -ERR, got %q", r.Raw)
		if r.OK() {
			// RFC 1725 LAST: "+OK nn", the highest message number accessed.
			Expect(regexp.MustCompile(`^\+OK [0-9]+`).Match(r.Raw)).To(BeTrue(), "LAST answered +OK without a number: %q", r.Raw)
		}
		stat(c)
	})
})

var _ = Describe("RFC 1939 section 5: message numbers and deleted messages", func() {
	Spec("keeps every message's number after another message is marked deleted", IDs("RFC1939-5-msgnum-stable"), Reversible, marked, func(ctx SpecContext, t *harness.Target) {
		v := markedAtLeast(ctx, t, 3)
		list := scanListingsOf(v.List)
		var uids []listing
		if t.Profile.HasCapability("UIDL") {
			uids = uidListingsOf(v.UIDL)
		}
		expectOK(v.Retr2.Reply, "RETR 2 before DELE 1")
		for _, s := range list[1:min(len(list), markedOneFormMax)] {
			r := v.Reply(fmt.Sprintf("LIST %d", s.Num))
			Expect(string(r.Raw)).To(MatchRegexp(`^\+OK %d %d( |\r\n)`, s.Num, s.Size()), "LIST %d after DELE 1", s.Num)
		}
		for _, u := range uids[min(len(uids), 1):min(len(uids), markedOneFormMax)] {
			r := v.Reply(fmt.Sprintf("UIDL %d", u.Num))
			Expect(string(r.Raw)).To(Equal(fmt.Sprintf("+OK %d %s\r\n", u.Num, u.UID())), "UIDL %d after DELE 1", u.Num)
		}
		m := v.Multi(retr2Marked)
		expectOK(m.Reply, "RETR 2 after DELE 1")
		Expect(m.Body()).To(Equal(v.Retr2.Body()), "RETR 2 after DELE 1 is still the same message")
	})

	Spec("refuses every command that names a message marked deleted", IDs("RFC1939-5-deleted-not-referenced"), Reversible, marked, func(ctx SpecContext, t *harness.Target) {
		v := markedAtLeast(ctx, t, 1)
		refs := []string{"RETR 1", "LIST 1", deleAgain}
		if t.Profile.HasCapability("TOP") {
			refs = append(refs, "TOP 1 0")
		}
		if t.Profile.HasCapability("UIDL") && v.UIDL.OK() {
			refs = append(refs, "UIDL 1")
		}
		for _, key := range refs {
			expectErr(v.Reply(key), key+" after DELE 1")
		}
	})
})
