package conformance

// RFC 1939 section 4, the AUTHORIZATION state: identification before any
// maildrop access, the exclusive-access lock taken on login and what a
// refused login leaves behind, message numbering and sizes once the
// maildrop is open, and QUIT before login.
//
// MS-STANXPOP3 2.1.3 (no lock) makes the lock checks not applicable under
// a profile without a lock; 2.1.4 and 2.1.5 (storage sizes) do the same
// for the exact-octet check. Against a remote host the lock specs are
// disruptive: they hold two sessions on one mailbox.

import (
	"fmt"
	"regexp"
	"strconv"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

var _ = Describe("RFC 1939 section 4: identification", func() {
	Spec("offers a way to log in and opens the maildrop only once the client is authenticated", IDs("RFC1939-4-greeting-then-auth"), Readonly, func(ctx SpecContext, t *harness.Target) {
		a := need(t.Account(ctx))
		c := authDial(ctx, t)
		// At least one mechanism: USER/PASS or SASL in CAPA, or an APOP
		// timestamp in the greeting. A server without CAPA is taken to
		// offer USER/PASS, which the login below then has to prove.
		capa := capaIfAnswered(t, c)
		if capa.OK {
			_, apop := apopTimestamp(c.Greeting)
			Expect(capa.Has("USER") || capa.Has("SASL") || apop).To(BeTrue(), "the server advertises no way to log in (no USER or SASL in CAPA, no APOP timestamp)")
		}
		expectOK(cmd(c, "USER "+a.User), "USER")
		// Identified but not authenticated: still no maildrop.
		expectErr(cmd(c, "STAT"), "STAT after USER, before PASS")
		// RFC 1939 section 7 leaves the client only PASS or QUIT after a
		// USER answered +OK, so a server may forget the USER once it has
		// refused the STAT (GNU Mailutils pop3d then answers PASS with
		// "-ERR Invalid command"): the login goes on a session of its own.
		quitAndWait(c)
		c = authDial(ctx, t)
		expectOK(cmd(c, "USER "+a.User), "USER")
		expectOK(cmd(c, "PASS "+a.Password), "PASS")
		stat(c)
	})

	Spec("answers QUIT in AUTHORIZATION with +OK and closes", IDs("RFC1939-4-quit-in-auth"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
		a := need(t.Account(ctx))
		for _, before := range []string{"", "USER " + a.User} {
			c := authDial(ctx, t)
			what := "QUIT straight after the greeting"
			if before != "" {
				cmd(c, before)
				what = "QUIT after USER"
			}
			r := cmd(c, "QUIT")
			expectOK(r, what)
			_, err := c.ExpectClose()
			Expect(err).NotTo(HaveOccurred(), "%s: the session ends", what)
		}
	})

	Spec("answers QUIT followed by text as a QUIT or as a bad command (recorded)", IDs("RFC1939-4-quit-no-args"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
		c := authDial(ctx, t)
		r := cmd(c, "QUIT now")
		Expect(r.OK() || r.Err()).To(BeTrue(), "QUIT now: a status line, got %q", r.String())
		_, err := c.ExpectClosed(time.Second)
		closed := err == nil
		record("QUIT with an argument", "reply %q, connection closed: %v", r.String(), closed)
		if r.Err() {
			// Refused as malformed: the session must go on, and a plain
			// QUIT still ends it.
			Expect(closed).To(BeFalse(), "the server refused \"QUIT now\" with -ERR yet closed the session")
			expectOK(cmd(c, "QUIT"), "QUIT")
		}
	})
})

var _ = Describe("RFC 1939 section 4: the maildrop lock", func() {
	// exclusiveOnly ends a lock spec under a profile that takes no lock.
	exclusiveOnly := func(t *harness.Target) {
		if t.Profile.Lock != profile.LockExclusive {
			verdict.SkipNotApplicable("the profile follows MS-STANXPOP3 2.1.3 instead (lock: %s)", t.Profile.Lock)
		}
	}

	Spec("locks the maildrop on a successful login: a second session of the user is refused", IDs("RFC1939-4-lock-on-success"), Disruptive, func(ctx SpecContext, t *harness.Target) {
		exclusiveOnly(t)
		_, first, _ := loginWhileLocked(ctx, t)
		// The first session keeps its maildrop.
		stat(first)
		expectOK(cmd(first, "NOOP"), "NOOP in the session that holds the lock")
	})

	Spec("refuses a login it cannot lock with -ERR, leaving no lock behind", IDs("RFC1939-4-lock-fail-err"), Disruptive, func(ctx SpecContext, t *harness.Target) {
		exclusiveOnly(t)
		a, first, second := loginWhileLocked(ctx, t)
		// The server may close after -ERR; if it does not, the session is
		// back in AUTHORIZATION.
		if extra, closed := second.Quiet(quietWindow); closed {
			record("after the refused login", "the server closed the connection (allowed)")
			second = nil
		} else {
			Expect(extra).To(BeEmpty(), "unprompted octets after the refused login")
			// One more -ERR only when the profile's error budget (C0005)
			// leaves the session open after it.
			if b := errBudget(t); b == 0 || b >= 2 {
				expectErr(cmd(second, "STAT"), "STAT after the refused login: the session must not be in TRANSACTION")
			}
		}
		// The refused attempt holds no lock: once the first session ends,
		// the user logs in again, on the refused session if it is open.
		expectOK(quitAndWait(first), "QUIT of the first session")
		if second != nil {
			loginWith(second, t, a, "USER", "PASS")
			stat(second)
			return
		}
		stat(loginAs(ctx, t, a))
	})
})

var _ = Describe("RFC 1939 section 4: the open maildrop", func() {
	decimal := regexp.MustCompile(`^(0|[1-9][0-9]*)$`)

	Spec("numbers the messages 1..n in decimal, none marked deleted", IDs("RFC1939-4-transaction-numbering"), Readonly, KeptSession, func(ctx SpecContext, t *harness.Target) {
		c, a := session(ctx, t)
		n, _ := stat(c)
		if a.Fixture == "alice" {
			fx := needFixture(a, "alice")
			Expect(n).To(Equal(len(fx)), "STAT count for the alice fixture")
		}
		list := listAll(c, "LIST")
		Expect(list).To(HaveLen(n), "LIST must list every message STAT counts")
		for i, l := range list {
			Expect(l.NumText).To(Equal(strconv.Itoa(i+1)), "scan listing %d must be for message %d", i+1, i+1)
		}
		// Nothing is marked deleted: each number answers on its own.
		for i := 1; i <= n && i <= 50; i++ {
			r := cmd(c, fmt.Sprintf("LIST %d", i))
			expectOK(r, fmt.Sprintf("LIST %d", i))
			Expect(r.Text).To(HavePrefix(fmt.Sprintf("%d ", i)))
		}
		if m, err := c.CmdMulti("UIDL"); err == nil && m.OK() {
			Expect(m.Lines).To(HaveLen(n), "UIDL must list every message")
			for i, l := range m.Texts() {
				Expect(l).To(HavePrefix(fmt.Sprintf("%d ", i+1)), "unique-id listing %d", i+1)
			}
		}
	})

	Spec("writes message sizes in decimal", IDs("RFC1939-4-size-octets"), Readonly, KeptSession, func(ctx SpecContext, t *harness.Target) {
		c, _ := session(ctx, t)
		r := cmd(c, "STAT")
		m := statRE.FindStringSubmatch(string(r.Raw))
		Expect(m).NotTo(BeNil(), "STAT %q", r.String())
		Expect(decimal.MatchString(m[2])).To(BeTrue(), "STAT size %q", m[2])
		list := listAll(c, "LIST")
		for _, l := range list {
			Expect(decimal.MatchString(l.Rest)).To(BeTrue(), "scan listing %s: size %q is not a decimal number", l.NumText, l.Rest)
		}
	})

	Spec("gives each message's size as the exact octets it sends", IDs("RFC1939-4-size-octets"), Readonly, KeptSession, func(ctx SpecContext, t *harness.Target) {
		if !t.Profile.ExactSizes {
			verdict.SkipNotApplicable("the profile follows MS-STANXPOP3 2.1.4 and 2.1.5 instead (storage-based sizes)")
		}
		c, a := session(ctx, t)
		var fx []harness.FixtureMessage
		if a.Fixture == "alice" {
			fx = needFixture(a, "alice")
		}
		seen := eachMessage(c, func(num int, listed int64, m harness.Multi) {
			Expect(listed).To(Equal(int64(len(m.Body()))), "LIST %d gives %d octets; RETR %d sends %d after un-stuffing", num, listed, num, len(m.Body()))
			if fx != nil {
				Expect(listed).To(Equal(int64(len(fx[num-1].Data))), "LIST %d for fixture %s", num, fx[num-1].Name)
			}
		})
		if seen == 0 {
			verdict.SkipInconclusive("the maildrop is empty: there is no size to check")
		}
	})
})

// loginWhileLocked logs a fresh account in, then tries a second login of
// the same account while the first session holds the maildrop, and
// expects that second login refused. It returns the account and both
// sessions.
func loginWhileLocked(ctx SpecContext, t *harness.Target) (harness.Account, *harness.Conn, *harness.Conn) {
	a := need(t.Account(ctx))
	first := loginAs(ctx, t, a)
	second := authDial(ctx, t)
	r := cmd(second, "USER "+a.User)
	if r.OK() {
		r = cmd(second, "PASS "+a.Password)
	}
	ExpectWithOffset(1, r.Err()).To(BeTrue(), "a login while another session holds the maildrop: want -ERR, got %q", r.String())
	return a, first, second
}
