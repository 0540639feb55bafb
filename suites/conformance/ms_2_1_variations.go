package conformance

// MS-STANXPOP3 2.1: the normative variations from RFC 1939 (2.1.1
// separators, 2.1.2 argument and command length, 2.1.3 no exclusive lock,
// 2.1.4 STAT size, 2.1.5 LIST sizes), plus E0006 and E0007 (the command
// limit of 2.2.13 and 2.2.14), which 2.1.2 depends on.

import (
	"fmt"
	"strconv"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

var _ = Describe("MS-STANXPOP3 2.1.1 separators between keyword and arguments", func() {
	// Each case sends a USER command; USER is valid in AUTHORIZATION on
	// every server, so the separator is the only thing that can differ.
	type sepCase struct {
		name, sep string
	}
	cases := []sepCase{
		{"a TAB", "\t"},
		{"two SPACEs", "  "},
		{"two TABs", "\t\t"},
	}
	for _, tc := range cases {
		Spec(fmt.Sprintf("treats %s between keyword and argument as the profile says", tc.name), IDs("2.1.1"), Readonly, func(ctx SpecContext, t *harness.Target) {
			a := need(t.Account(ctx))
			c := plaintextReady(ctx, t)
			// A +OK to USER tells little where any name gets +OK (V0008):
			// PASS with the real password shows whether the server took
			// the separator and the name as sent.
			s := trySeparator(c, a, tc.sep)
			r, loggedIn := s.User, s.LoggedIn()
			if s.PassSent {
				Expect(s.Pass.OK() || s.Pass.Err()).To(BeTrue(), "PASS after USER with %s: a status line, got %q", tc.name, s.Pass.String())
			}
			switch t.Profile.Separators {
			case profile.SeparatorsSpaceOrTab:
				expectOK(r, "USER with "+tc.name)
				Expect(loggedIn).To(BeTrue(), "USER with %s, then PASS with the password: the login must work when %s separates", tc.name, tc.name)
			case profile.SeparatorsSingleSpace:
				// USER answers for the name it got: +OK would mean the
				// server found the mailbox through the separator, unless
				// the server answers +OK for any name whatever the profile
				// says (V0008 judges that; Courier does): then only the
				// failed PASS tells, and it says the name was not split.
				if t.Profile.UnknownUserReply == profile.ReplyErr && (!r.OK() || loggedIn || !unknownUserGetsOK(ctx, t)) {
					expectErr(r, "USER with "+tc.name+" under a single-space profile")
				}
				Expect(loggedIn).To(BeFalse(), "USER with %s logged %s in under a single-space profile (USER got %q)", tc.name, a.User, r.String())
				if r.OK() {
					record("separator", "USER with %s got %q, but the login with the password failed: the name was not taken as %s", tc.name, r.String(), a.User)
				}
			}
		})
	}

	Spec("accepts a single SPACE in every profile", IDs("2.1.1"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
		a := need(t.Account(ctx))
		c := dial(ctx, t)
		expectOK(cmd(c, "USER "+a.User), "USER with one SPACE")
	})
})

// trySeparator is harness.TrySeparator with PASS, a transport error
// failing the spec as in cmd.
func trySeparator(c *harness.Conn, a harness.Account, sep string) harness.SeparatorTry {
	s, err := harness.TrySeparator(c, a, sep, true)
	explainClose(c, s.Last, err)
	Expect(err).NotTo(HaveOccurred(), "reply to %q", redactForMessage(s.Last))
	return s
}

// unknownUserGetsOK reports whether USER of a name no server holds gets
// +OK, as the first command of a connection of its own.
func unknownUserGetsOK(ctx SpecContext, t *harness.Target) bool {
	c := plaintextReady(ctx, t)
	defer c.Close()
	return cmd(c, "USER "+harness.NoSuchUser()).OK()
}

// maskName normalises a reply text that may echo the name sent.
func maskName(text, name string) string { return strings.ReplaceAll(text, name, "<name>") }

// userOfLength sends a short USER for an unknown name on one new
// connection, then one that makes the command line n octets long (CRLF
// included) as the first command of another, and returns both replies,
// with the names in their texts replaced by "<name>", and the second
// connection. Comparing them tells a line the server refused for its
// length from one it took as a command, whatever the server answers for
// unknown names (V0008): the reply to an accepted line matches the short
// one. Each USER opens a session of its own because RFC 1939 section 7
// leaves only PASS or QUIT to the client after a USER answered +OK: a
// second USER there may get -ERR for the state alone (GNU Mailutils pop3d
// answers "-ERR Invalid command"), which is no verdict on its length.
func userOfLength(dial func() *harness.Conn, n int) (c *harness.Conn, short, long harness.Reply) {
	name := harness.NoSuchUser()
	first := dial()
	short = cmd(first, "USER "+name)
	Expect(short.OK() || short.Err()).To(BeTrue(), "status line %q", short)
	quitAndWait(first)
	c = dial()
	line := commandOf("USER", n)
	Expect(len(line) + 2).To(Equal(n))
	long = cmd(c, line)
	Expect(long.OK() || long.Err()).To(BeTrue(), "status line %q", long)
	short.Text = maskName(short.Text, name)
	long.Text = maskName(long.Text, line[len("USER "):])
	return c, short, long
}

// expectLineAccepted checks that a USER command of n octets is answered
// like a short one, and that the session goes on: QUIT after a USER
// answered +OK (the only command besides PASS that RFC 1939 leaves the
// client there), alive after one answered -ERR.
func expectLineAccepted(t *harness.Target, dial func() *harness.Conn, n int, why string) {
	c, short, long := userOfLength(dial, n)
	if !sameReply(long, short) {
		skipIfArgumentLimit(dial, n, long)
	}
	ExpectWithOffset(1, long.Status).To(Equal(short.Status), "a %d-octet USER command (%s) must be answered like a short one (%q), but got %q", n, why, short, long)
	if short.Err() {
		ExpectWithOffset(1, long.Text).To(Equal(short.Text), "a %d-octet USER command (%s) must get the -ERR of a short one", n, why)
	}
	if long.OK() {
		r := cmd(c, "QUIT")
		ExpectWithOffset(1, r.OK()).To(BeTrue(), "the session must still work after a %d-octet command: QUIT got %q", n, r)
		return
	}
	alive(t, c, fmt.Sprintf("a %d-octet command", n))
}

// sameReply reports whether two replies have the same status and, for
// -ERR, the same text.
func sameReply(a, b harness.Reply) bool {
	return a.Status == b.Status && (!a.Err() || a.Text == b.Text)
}

// skipIfArgumentLimit ends the spec inconclusive when the reply long, to
// a USER line of n octets, is also what a USER with RFC 1939's shortest
// disallowed argument (41 characters, 48 octets) gets: the server limits
// the argument, which 2.1.2 judges, and a long USER argument cannot show
// how long a line it reads (popa3d and solid-pop3d refuse names over 40
// characters whatever the line limit).
func skipIfArgumentLimit(dial func() *harness.Conn, n int, long harness.Reply) {
	const rfcArg = 41
	line := "USER " + strings.Repeat("x", rfcArg)
	if n <= len(line)+2 {
		return
	}
	c := dial()
	r := cmd(c, line)
	r.Text = maskName(r.Text, line[len("USER "):])
	c.Close()
	if sameReply(r, long) {
		verdict.SkipInconclusive("USER with a %d-character argument (%d octets) gets %q like the %d-octet USER line: the server limits the argument (2.1.2), so a USER line cannot show its line limit", rfcArg, len(line)+2, r.String(), n)
	}
}

// expectLineRefused checks that a USER command of n octets is refused
// for its length: -ERR, and not the -ERR a short unknown name gets. Then
// the session must go on, or be closed when the profile says an
// over-long command ends it (overlong_command: close).
func expectLineRefused(t *harness.Target, dial func() *harness.Conn, n int, why string) {
	c, short, long := userOfLength(dial, n)
	ExpectWithOffset(1, long.Err()).To(BeTrue(), "a %d-octet command (%s): want -ERR, got %q", n, why, long)
	if short.Err() {
		if long.Text == "" && short.Text == "" {
			// V0001 judges the missing text; nothing here tells a refusal
			// for the length from one for the unknown name.
			verdict.SkipInconclusive("the server answers both a short USER for an unknown name and the %d-octet command with a bare -ERR, so the reply cannot show that the line was refused for its length (%s)", n, why)
		}
		ExpectWithOffset(1, long.Text).NotTo(Equal(short.Text), "a %d-octet command got the same -ERR as a short USER for an unknown name, so it was taken as a command (%s)", n, why)
	}
	expectAfterOverlong(t, c)
}

// dialer returns a function that opens a new connection to t.
func dialer(ctx SpecContext, t *harness.Target) func() *harness.Conn {
	return func() *harness.Conn { return dial(ctx, t) }
}

// expectAfterOverlong checks the session after an over-long command was
// refused: closed when the profile says so, otherwise still usable.
func expectAfterOverlong(t *harness.Target, c *harness.Conn) {
	if t.Profile.OverlongCloses() {
		_, err := c.ExpectClose()
		ExpectWithOffset(2, err).NotTo(HaveOccurred(), "the profile closes the connection after an over-long command")
		return
	}
	alive(t, c, "an over-long command")
}

// unknownOfLength sends a short unknown command, then one of n octets
// (CRLF included) with the same keyword, in any state, and returns both
// replies. A line the server read as a command gets the short one's
// reply; one refused for its length gets another.
func unknownOfLength(c *harness.Conn, n int) (short, long harness.Reply) {
	short = cmd(c, "XYZW x")
	line := commandOf("XYZW", n)
	Expect(len(line) + 2).To(Equal(n))
	long = cmd(c, line)
	short.Text = maskName(short.Text, "x")
	long.Text = maskName(long.Text, line[len("XYZW "):])
	return short, long
}

var _ = Describe("MS-STANXPOP3 2.1.2, E0006, E0007 command length", func() {
	Spec("accepts a command of exactly the profile's maximum length", IDs("2.1.2", "E0006", "E0007"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
		max := t.Profile.CommandLimit(false)
		expectLineAccepted(t, dialer(ctx, t), max, fmt.Sprintf("the profile's limit is %d", max))
	})

	// Labelled with the Exchange statements only: a server that fails
	// this differs in its command limit, not in how it treats unknown
	// commands.
	Spec("refuses a command one octet over the maximum and stays usable", IDs("2.1.2", "E0006", "E0007"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
		max := t.Profile.CommandLimit(false)
		expectLineRefused(t, dialer(ctx, t), max+1, fmt.Sprintf("the profile's limit is %d", max))
	})

	// The same in TRANSACTION, where a profile may set another limit
	// (max_command_octets_transaction). An unknown keyword is refused
	// the same way whatever its argument, so a line of the limit gets
	// the short one's -ERR and one octet more another reply.
	Spec("accepts a command of the TRANSACTION limit after login and refuses one octet more", IDs("2.1.2", "E0006", "E0007"), Readonly, KeptSession, func(ctx SpecContext, t *harness.Target) {
		needKey(t, "max_command_octets_transaction")
		needErrBudgetTx(t, 3)
		max := t.Profile.CommandLimit(true)
		why := fmt.Sprintf("the profile's TRANSACTION limit is %d", max)
		c, _ := session(ctx, t)
		short, long := unknownOfLength(c, max)
		expectErr(short, "an unknown command")
		Expect(long.String()).To(Equal(short.String()), "a %d-octet unknown command (%s) must be answered like a short one", max, why)
		expectOK(cmd(c, "NOOP"), "NOOP after a command of the limit")
		_, over := unknownOfLength(c, max+1)
		expectErr(over, fmt.Sprintf("a %d-octet command (%s)", max+1, why))
		if over.Text == "" && short.Text == "" {
			// As in expectLineRefused: a bare -ERR for both cannot
			// tell a refusal for the length from an unknown command.
			verdict.SkipInconclusive("the server answers a short unknown command and the %d-octet one with a bare -ERR, so the reply cannot show whether the line was refused for its length (%s)", max+1, why)
		}
		Expect(over.String()).NotTo(Equal(short.String()), "a %d-octet command got the -ERR of a short unknown command, so it was read as a command (%s)", max+1, why)
		expectAfterOverlong(t, c)
	})

	Spec("does not check the 40-character argument limit of RFC 1939", IDs("2.1.2"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
		if t.Profile.MaxArgumentChars > 0 {
			verdict.SkipNotApplicable("the profile enforces %d characters per argument", t.Profile.MaxArgumentChars)
		}
		// 41 characters is the smallest argument RFC 1939 would not allow;
		// it only fits when the command limit leaves room for it.
		n := 4 + 1 + 41 + 2
		if n > t.Profile.MaxCommandOctets {
			verdict.SkipNotApplicable("a 41-character argument does not fit in the profile's %d-octet command limit", t.Profile.MaxCommandOctets)
		}
		expectLineAccepted(t, dialer(ctx, t), n, "a 41-character argument")
	})
})

var _ = Describe("MS-STANXPOP3 E0006, E0007 configurable command limit", func() {
	// Set-PopSettings -MaxCommandSize takes 40..1024 (E0006). Only the
	// bundled server can be reconfigured; on a remote host these specs
	// end not observable, so they never mask the default-limit specs.
	for _, limit := range []int{40, 1024} {
		Spec(fmt.Sprintf("honours a command limit configured to %d octets", limit), IDs("E0006", "E0007"), Readonly, ReferenceOnly, func(ctx SpecContext, t *harness.Target) {
			v := need(t.Variant(ctx, func(p *profile.Profile) { p.MaxCommandOctets = limit }))
			expectLineAccepted(v, dialer(ctx, v), limit, fmt.Sprintf("the limit is set to %d", limit))
			expectLineRefused(v, dialer(ctx, v), limit+1, fmt.Sprintf("the limit is set to %d", limit))
		})
	}

	Spec("accepts RFC 2449's 255-octet commands exactly when its limit reaches 255", IDs("E0007"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
		const rfc2449Min = 255 // RFC 2449 section 4: what a CAPA server must accept
		why := fmt.Sprintf("the profile's limit is %d", t.Profile.MaxCommandOctets)
		if t.Profile.MaxCommandOctets < rfc2449Min {
			expectLineRefused(t, dialer(ctx, t), rfc2449Min, why)
		} else {
			expectLineAccepted(t, dialer(ctx, t), rfc2449Min, why)
		}
	})
})

var _ = Describe("MS-STANXPOP3 2.1.3 no exclusive-access lock", func() {
	Spec("lets a second session into a mailbox in TRANSACTION only when the profile takes no lock", IDs("2.1.3"), Disruptive, func(ctx SpecContext, t *harness.Target) {
		a := need(t.Account(ctx))
		first := loginAs(ctx, t, a)
		n1, size1 := stat(first)

		second := authDial(ctx, t)
		expectOK(cmd(second, "USER "+a.User), "USER for the second session")
		r := cmd(second, "PASS "+a.Password)
		switch t.Profile.Lock {
		case profile.LockNone:
			expectOK(r, "PASS while another session holds the mailbox (no lock expected)")
			n2, size2 := stat(second)
			Expect([]int64{int64(n2), size2}).To(Equal([]int64{int64(n1), size1}), "both sessions see the same maildrop")
		case profile.LockExclusive:
			expectErr(r, "PASS while another session holds the mailbox (exclusive lock expected)")
		}
		// Whatever happened to the second session, the first keeps its
		// maildrop.
		n3, size3 := stat(first)
		Expect([]int64{int64(n3), size3}).To(Equal([]int64{int64(n1), size1}), "the first session's STAT after the second login")
		quitOK(first)
	})
})

// msgSizes are the sizes STAT and LIST must report for each message, and
// the exact octet counts they come from.
type msgSizes struct {
	want, exact []int64
}

func (s msgSizes) sums() (want, exact int64) {
	for i := range s.want {
		want += s.want[i]
		exact += s.exact[i]
	}
	return want, exact
}

// maxSized is the most messages of unknown mail the size checks retrieve.
const maxSized = 100

// expectedSizes returns the sizes STAT and LIST must report: the exact
// octets of each message, from the fixture when the maildrop is known to
// hold one, otherwise as RETR sends them (un-stuffed, CRLF line ends),
// turned into the reported size by the profile's rule (profile.StoredSize).
// Retrieving the messages makes the exact size a measured fact, so the
// verdict does not depend on knowing the mail.
//
// Without a fixture it retrieves the messages on a session of its own.
func expectedSizes(ctx SpecContext, t *harness.Target, a harness.Account, n int) msgSizes {
	var s msgSizes
	if a.Fixture != "" {
		msgs := need(harness.FixtureMessages(a.Fixture))
		Expect(n).To(Equal(len(msgs)), "STAT count of a maildrop holding fixture %q", a.Fixture)
		for _, m := range msgs {
			s.exact = append(s.exact, int64(len(m.Data)))
		}
	} else {
		if n > maxSized {
			verdict.SkipInconclusive("the maildrop has %d messages; the check retrieves at most %d", n, maxSized)
		}
		c := loginAs(ctx, t, a)
		for i := range n {
			s.exact = append(s.exact, int64(len(retr(c, i+1))))
		}
	}
	for _, e := range s.exact {
		s.want = append(s.want, t.Profile.StoredSize(e))
	}
	return s
}

// sizeRule describes the profile's size rule for a failure message; when
// the server reported the exact size where the profile expects the
// storage-based one, it says how Exchange gets there (2.1.4, 2.1.5:
// EnableExactRFC822Size) and which profile key describes such a server.
func sizeRule(t *harness.Target, gotExact bool) string {
	rule := fmt.Sprintf("exact_sizes=%v, storage block %d", t.Profile.ExactSizes, t.Profile.StorageBlockOctets)
	if gotExact && !t.Profile.ExactSizes {
		rule += "; the server reports the exact octets RETR sends, as Exchange does with EnableExactRFC822Size set, where the profile expects the default storage-based size: a server set that way is described by exact_sizes: true"
	}
	return rule
}

var _ = Describe("MS-STANXPOP3 2.1.4, 2.1.5 sizes in STAT and LIST", func() {
	Spec("reports the maildrop size in STAT as the profile computes it", IDs("2.1.4"), Readonly, scans, func(ctx SpecContext, t *harness.Target) {
		v := scans.Get(ctx, t)
		n, size := statOf(v.Stat, 0)
		sum, exact := expectedSizes(ctx, t, v.Account, n).sums()
		Expect(size).To(Equal(sum), "STAT maildrop size (%s)", sizeRule(t, size == exact))
	})

	Spec("reports each message's size in the LIST scan listing as the profile computes it", IDs("2.1.5"), Readonly, scans, func(ctx SpecContext, t *harness.Target) {
		v := scans.Get(ctx, t)
		n := statAtLeastOf(v.Stat, 1)
		s := expectedSizes(ctx, t, v.Account, n)
		got := listAllOf(v.All, "LIST")
		Expect(got).To(HaveLen(n), "LIST lines")
		for i, l := range got {
			Expect(l.Num).To(Equal(i+1), "LIST line %d", i+1)
			Expect(l.Value).To(Equal(strconv.FormatInt(s.want[i], 10)), "size of message %d in LIST (%s)", i+1, sizeRule(t, l.Size() == s.exact[i]))
		}
	})

	Spec("reports each message's size in LIST n as the profile computes it", IDs("2.1.5"), Readonly, scans, func(ctx SpecContext, t *harness.Target) {
		v := scans.Get(ctx, t)
		n := statAtLeastOf(v.Stat, 1)
		s := expectedSizes(ctx, t, v.Account, n)
		for i := range n {
			r := v.One(i + 1)
			expectOK(r, fmt.Sprintf("LIST %d", i+1))
			f := strings.Fields(r.Text)
			Expect(len(f)).To(BeNumerically(">=", 2), "LIST %d reply %q", i+1, r)
			Expect(f[1]).To(Equal(strconv.FormatInt(s.want[i], 10)), "size of message %d in LIST %d (%s)", i+1, i+1, sizeRule(t, f[1] == strconv.FormatInt(s.exact[i], 10)))
		}
	})
})
