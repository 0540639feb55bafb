package conformance

// RFC 3206: the SYS and AUTH response codes and the AUTH-RESP-CODE
// capability.

import (
	"slices"
	"strings"
	"sync/atomic"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// wrongPass sends USER and a wrong PASS and returns the PASS reply.
func wrongPass(c *harness.Conn, a harness.Account) harness.Reply {
	expectOK(cmd(c, "USER "+a.User), "USER")
	r := cmd(c, "PASS x"+a.Password)
	expectErr(r, "PASS with a wrong password")
	return r
}

var _ = Describe("RFC 3206 section 5 the AUTH response code", func() {
	Spec("puts [AUTH] on a refused password when AUTH-RESP-CODE is advertised", IDs("RFC3206-5-auth-code"), Disruptive, NoLogin, func(ctx SpecContext, t *harness.Target) {
		c := plaintextReady(ctx, t)
		needTag(needCapaFresh(t, c), "AUTH-RESP-CODE", "before login")
		r := wrongPass(c, need(t.Account(ctx)))
		Expect(strings.ToUpper(r.Code())).To(Equal("AUTH"), "%q", r.String())
	})

	Spec("puts no [AUTH] on a reply to USER", IDs("RFC3206-5-auth-code-not-on-user"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
		a := need(t.Account(ctx))
		for _, name := range []string{a.User, "no-such-user-" + a.User} {
			// one connection per USER: after a USER answered +OK, RFC
			// 1939 section 7 leaves the client PASS or QUIT only (Cyrus
			// pop3d answers a second USER "-ERR [AUTH] Must give PASS
			// command")
			c := dial(ctx, t)
			r := cmd(c, "USER "+name)
			c.Close()
			Expect(strings.ToUpper(r.Code())).NotTo(Equal("AUTH"), "USER %s: %q reveals whether the user exists", name, r.String())
		}
		// Where plaintext logins need TLS the USER of an existing
		// mailbox is refused (MS-STANXPOP3 V0010); that refusal must not
		// carry [AUTH] either.
		if t.Profile.PlaintextBeforeTLS {
			if v, err := t.Variant(ctx, func(p *profile.Profile) { p.PlaintextBeforeTLS = false }); err == nil {
				d := dial(ctx, v)
				b := need(v.Account(ctx))
				r := cmd(d, "USER "+b.User)
				Expect(strings.ToUpper(r.Code())).NotTo(Equal("AUTH"), "USER before TLS: %q", r.String())
			}
		}
	})

	Spec("lists AUTH-RESP-CODE when it sends [AUTH]", IDs("RFC3206-5-capa-with-auth-code"), Disruptive, NoLogin, func(ctx SpecContext, t *harness.Target) {
		c := plaintextReady(ctx, t)
		r := wrongPass(c, need(t.Account(ctx)))
		if !strings.EqualFold(r.Code(), "AUTH") {
			verdict.SkipNotApplicable("the server sent no [AUTH] for a wrong password")
		}
		k := readCapa(c)
		Expect(k.OK).To(BeTrue(), "CAPA: the server uses [AUTH] but has no CAPA")
		Expect(k.Has("AUTH-RESP-CODE")).To(BeTrue(), "CAPA without AUTH-RESP-CODE: %v", k.Order)
	})
})

var _ = Describe("RFC 3206 section 6 the AUTH-RESP-CODE capability", func() {
	Spec("puts [AUTH] on every credentials failure and on nothing else", IDs("RFC3206-6-auth-resp-code-cap"), Disruptive, NoLogin, func(ctx SpecContext, t *harness.Target) {
		c := plaintextReady(ctx, t)
		k := needCapaFresh(t, c)
		needTag(k, "AUTH-RESP-CODE", "before login")
		a := need(t.Account(ctx))
		isAuth := func(r harness.Reply) bool { return strings.EqualFold(r.Code(), "AUTH") }

		r := wrongPass(c, a)
		Expect(isAuth(r)).To(BeTrue(), "wrong password: %q", r.String())
		if u := cmd(c, "USER no-such-user-"+a.User); u.OK() {
			r = cmd(c, "PASS "+a.Password)
			expectErr(r, "PASS for an unknown user")
			Expect(isAuth(r)).To(BeTrue(), "unknown user: %q", r.String())
		}
		if slices.Contains(upperAll(k.Params("SASL")), "PLAIN") {
			r = authContinue(c, "PLAIN", plainResponse("", a.User, "x"+a.Password))
			expectErr(r, "AUTH PLAIN with a wrong password")
			Expect(isAuth(r)).To(BeTrue(), "AUTH PLAIN with a wrong password: %q", r.String())
		}
		// Failures that have nothing to do with credentials.
		for _, line := range []string{"PASS " + a.Password, "STAT", "XYZZY", "USER"} {
			r = cmd(c, line)
			expectErr(r, redactForMessage(line))
			Expect(isAuth(r)).To(BeFalse(), "%s is not a credentials failure: %q", redactForMessage(line), r.String())
		}
	})

	Spec("does not put [AUTH] on a login refused because the maildrop is locked", IDs("RFC3206-6-auth-resp-code-cap"), Disruptive, func(ctx SpecContext, t *harness.Target) {
		if t.Profile.Lock != profile.LockExclusive {
			verdict.SkipNotApplicable("the profile expects no maildrop lock")
		}
		first, a := login(ctx, t)
		needTag(needCapa(first), "AUTH-RESP-CODE", "after login")
		c := plaintextReady(ctx, t)
		expectOK(cmd(c, "USER "+a.User), "USER for the second session")
		r := cmd(c, "PASS "+a.Password)
		if r.OK() {
			verdict.SkipNotApplicable("the second login succeeded, so no login was refused for the lock")
		}
		Expect(strings.EqualFold(r.Code(), "AUTH")).To(BeFalse(), "the credentials were right: %q", r.String())
	})

	Spec("lists AUTH-RESP-CODE in both states or in neither", IDs("RFC3206-6-cap-states"), Readonly, capaBoth, func(ctx SpecContext, t *harness.Target) {
		p := capaBothStates(ctx, t)
		Expect(p.After.Has("AUTH-RESP-CODE")).To(Equal(p.Before.Has("AUTH-RESP-CODE")), "before: %v; after: %v", p.Before.Order, p.After.Order)
	})
})

var _ = Describe("RFC 3206 section 4 the SYS response code", func() {
	// The bundled store fails the removals of one fresh account while
	// *fail is true: UPDATE then fails for a reason that is the
	// server's, not the user's.
	faulty := func(ctx SpecContext, t *harness.Target) (harness.Account, *atomic.Bool) {
		ref := t.Reference()
		a := need(t.Account(ctx))
		fail := new(atomic.Bool)
		failRemovals(ref.Control, a.User, func(int, string) bool { return fail.Load() })
		return a, fail
	}

	Spec("puts [SYS/TEMP] or [SYS/PERM] on a failure that is the server's own", IDs("RFC3206-4-sys-any-cmd"), Mutating, ReferenceOnly, func(ctx SpecContext, t *harness.Target) {
		a, fail := faulty(ctx, t)
		l := need(t.Login(ctx, a))
		needTag(needCapa(l), "RESP-CODES", "after login")
		fail.Store(true)
		expectOK(cmd(l, "DELE 1"), "DELE 1")
		q := cmd(l, "QUIT")
		expectErr(q, "QUIT when the store cannot remove the message")
		Expect(strings.ToUpper(q.Code())).To(Or(HavePrefix("SYS/TEMP"), HavePrefix("SYS/PERM")), "a storage fault in UPDATE: %q", q.String())
	})

	Spec("lets the same command succeed once a [SYS/TEMP] fault is gone", IDs("RFC3206-4-sys-temp-semantics"), Mutating, ReferenceOnly, func(ctx SpecContext, t *harness.Target) {
		a, fail := faulty(ctx, t)
		l := need(t.Login(ctx, a))
		needTag(needCapa(l), "RESP-CODES", "after login")
		n := messageCount(l)
		if n == 0 {
			verdict.SkipInconclusive("the maildrop is empty")
		}
		fail.Store(true)
		expectOK(cmd(l, "DELE 1"), "DELE 1")
		q := cmd(l, "QUIT")
		if !strings.HasPrefix(strings.ToUpper(q.Code()), "SYS/TEMP") {
			verdict.SkipNotApplicable("the storage fault did not draw [SYS/TEMP] (%q)", q.String())
		}
		fail.Store(false)
		again := need(t.Login(ctx, a))
		expectOK(cmd(again, "DELE 1"), "DELE 1 once the fault is gone")
		expectOK(cmd(again, "QUIT"), "QUIT once the fault is gone")
		check := need(t.Login(ctx, a))
		Expect(messageCount(check)).To(Equal(n-1), "the message is removed once the fault is gone")
	})
})
