package conformance

// MS-STANXPOP3 2.2.8-2.2.10 (RFC 1939 section 7, USER, PASS, APOP): V0008
// USER never fails for an unknown name, V0009 USER reveals nothing, V0010
// USER fails for an existing mailbox when plaintext login is off, C0010
// users homed in another site (Exchange 2007), V0011 spaces in PASS,
// V0012 no APOP.

import (
	"context"
	"regexp"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

var _ = Describe("MS-STANXPOP3 2.2.8 V0008, V0009, V0010 USER", func() {
	Spec("answers USER for an unknown mailbox as the profile says, and refuses its PASS", IDs("V0008"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
		c := authDial(ctx, t)
		name := harness.NoSuchUser()
		r := cmd(c, "USER "+name)
		switch t.Profile.UnknownUserReply {
		case profile.ReplyOK:
			expectOK(r, "USER for a mailbox that does not exist")
			// The name is checked when PASS arrives.
			expectErr(cmd(c, "PASS no-such-password"), "PASS for a mailbox that does not exist")
		case profile.ReplyErr:
			expectErr(r, "USER for a mailbox that does not exist")
		}
	})

	Spec("answers USER alike for an existing and an unknown mailbox", IDs("V0009"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
		if t.Profile.UnknownUserReply != profile.ReplyOK {
			verdict.SkipNotApplicable("the profile answers USER for an unknown mailbox with -ERR, as RFC 1939 section 7 allows")
		}
		a := need(t.Account(ctx))
		name := harness.NoSuchUser()
		// One connection at a time, each closed once it answered.
		user := func(name string) harness.Reply {
			c := authDial(ctx, t)
			defer c.Close()
			return cmd(c, "USER "+name)
		}
		known, unknown := user(a.User), user(name)
		expectOK(known, "USER for an existing mailbox")
		expectOK(unknown, "USER for a mailbox that does not exist")
		// The text must not tell them apart either (beyond echoing the
		// name the client sent).
		Expect(strings.ReplaceAll(unknown.Text, name, "<name>")).To(Equal(strings.ReplaceAll(known.Text, a.User, "<name>")),
			"USER replies differ between an existing and an unknown mailbox")
	})

	// On the bundled server a variant refuses plaintext logins before TLS
	// (LoginType SecureLogin); a remote host is judged directly when its
	// profile says so.
	Spec("refuses USER for an existing mailbox before TLS when plaintext login is off, and accepts it after STLS", IDs("V0010"), Readonly, LoginOnly, func(ctx SpecContext, t *harness.Target) {
		v := t
		if t.Reference() != nil {
			v = need(t.Variant(ctx, func(p *profile.Profile) { p.PlaintextBeforeTLS = false }))
		} else if t.Profile.PlaintextBeforeTLS {
			verdict.SkipNotObservable("the profile allows plaintext login; only a server set to refuse it (LoginType SecureLogin) shows the rule, and only its operator can set that")
		}
		if !v.Profile.STLS {
			verdict.SkipNotApplicable("the profile offers no STLS")
		}
		a := need(v.Account(ctx))
		c, err := v.DialPlain(ctx)
		if isUnavailable(err) {
			verdict.SkipInconclusive("%v", err)
		}
		Expect(err).NotTo(HaveOccurred(), "connect without TLS")
		expectErr(cmd(c, "USER "+a.User), "USER for an existing mailbox on a connection without TLS")

		c2, err := v.DialPlain(ctx)
		Expect(err).NotTo(HaveOccurred(), "connect without TLS")
		r, err := c2.StartTLS(v.TLSConfig())
		needTLS(err)
		Expect(err).NotTo(HaveOccurred(), "STLS")
		expectOK(r, "STLS")
		Expect(loginAgain(c2, a)).To(Succeed(), "USER/PASS under TLS")
	})
})

var _ = Describe("MS-STANXPOP3 2.2.9 C0010, V0011 PASS", func() {
	Spec("lets a user homed in another site log in only when the profile proxies", IDs("C0010"), Readonly, LoginOnly, func(ctx SpecContext, t *harness.Target) {
		a := need(t.AccountLike(ctx, "dave"))
		c := authDial(ctx, t)
		ru := cmd(c, "USER "+a.User)
		var rp harness.Reply
		if ru.OK() {
			rp = cmd(c, "PASS "+a.Password)
		}
		switch t.Profile.CrossSite {
		case profile.CrossSiteFail:
			Expect(ru.Err() || rp.Err()).To(BeTrue(), "the login of a user homed in another site must fail: USER %q, PASS %q", ru, rp)
		case profile.CrossSiteProxy:
			expectOK(ru, "USER for a user homed in another site")
			expectOK(rp, "PASS for a user homed in another site")
			expectOK(cmd(c, "STAT"), "STAT")
		}
	})

	// attempt logs in on a new connection with password and returns the
	// reply to PASS.
	attempt := func(ctx SpecContext, t *harness.Target, user, password string) harness.Reply {
		c := authDial(ctx, t)
		expectOK(cmd(c, "USER "+user), "USER")
		r := cmd(c, "PASS "+password)
		if r.OK() {
			expectOK(cmd(c, "STAT"), "STAT after PASS")
		}
		return r
	}

	Spec("takes the whole rest of the PASS line, spaces included, as the password", IDs("V0011"), Disruptive, func(ctx SpecContext, t *harness.Target) {
		if !t.Profile.PassSpaces {
			verdict.SkipNotApplicable("the profile does not allow spaces in PASS")
		}
		a, err := t.AccountLike(ctx, "bob")
		if isUnavailable(err) {
			// On a remote host either configured account serves when its
			// password has a space.
			a = harness.Account{}
			for _, get := range []func(context.Context) (harness.Account, error){t.Account, t.SecondAccount} {
				if acc, err := get(ctx); err == nil && strings.Contains(acc.Password, " ") {
					a = acc
					break
				}
			}
			if a.User == "" {
				verdict.SkipInconclusive("needs an account whose password contains a space (fixture bob, or %s or %s with a space)", harness.EnvPassword, harness.EnvPassword2)
			}
		} else {
			Expect(err).NotTo(HaveOccurred())
		}
		first, _, _ := strings.Cut(a.Password, " ")
		expectErr(attempt(ctx, t, a.User, first), "PASS with only the first word of the password")
		expectErr(attempt(ctx, t, a.User, a.Password+" more"), "PASS with a word after the password")
		expectOK(attempt(ctx, t, a.User, a.Password), "PASS with the password and its spaces")
	})
})

// msgIDStampRE finds an RFC 1939 APOP timestamp in a greeting.
var msgIDStampRE = regexp.MustCompile(`<[^<>\s]*@[^<>\s]*>`)

var _ = Describe("MS-STANXPOP3 2.2.10 V0012 APOP", func() {
	Spec("offers APOP exactly when the profile does", IDs("V0012"), Readonly, LoginOnly, func(ctx SpecContext, t *harness.Target) {
		a := apopAccount(ctx, t)
		c := dial(ctx, t)
		stamp := msgIDStampRE.FindString(c.Greeting.Text)
		digest := harness.APOPDigest(stamp, a.Password)
		line := "APOP " + a.User + " " + digest
		if !t.Profile.APOP {
			Expect(stamp).To(BeEmpty(), "a server without APOP puts no timestamp in its greeting %q", c.Greeting)
			// Any name does: a refused APOP for the account itself could
			// count towards its lockout.
			expectErr(cmd(c, "APOP "+harness.NoSuchUser()+" "+digest), "APOP on a server without APOP")
			return
		}
		Expect(stamp).NotTo(BeEmpty(), "a server with APOP puts a timestamp in its greeting %q", c.Greeting)
		needKey(t, "max_command_octets")
		if len(line)+2 > t.Profile.MaxCommandOctets {
			verdict.SkipInconclusive("an APOP command for %s is %d octets, over the profile's %d-octet limit", a.User, len(line)+2, t.Profile.MaxCommandOctets)
		}
		r := cmd(c, line)
		skipUnknownAPOPSecret(t, a, r)
		expectOK(r, "APOP with the right digest")
		expectOK(cmd(c, "STAT"), "STAT after APOP")
	})
})
