package conformance

// RFC 2595 section 4 (STLS), with section 6 (PLAIN only under a strong
// encryption layer), and the STLS-related rules of RFC 5034 section 3.

import (
	"bytes"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

var _ = Describe("RFC 2595 section 4 STLS", func() {
	Spec("implements CAPA when it implements STLS", IDs("RFC2595-4-capa-required"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
		c := need(t.DialPlain(ctx))
		k := readCapa(c)
		if k.OK {
			if t.Profile.STLS {
				Expect(k.Has("STLS")).To(BeTrue(), "the profile offers STLS but CAPA does not list it: %v", k.Order)
			}
			return
		}
		// No CAPA: then STLS must not work either.
		r := cmd(c, "STLS")
		Expect(r.OK()).To(BeFalse(), "STLS is accepted although CAPA is not implemented")
	})

	Spec("does not list STLS under TLS or after login", IDs("RFC2595-4-stls-cap"), Readonly, LoginOnly, func(ctx SpecContext, t *harness.Target) {
		c, _ := needSTLS(ctx, t)
		startTLS(t, c)
		k := readCapa(c)
		Expect(k.OK).To(BeTrue(), "CAPA under TLS")
		Expect(k.Has("STLS")).To(BeFalse(), "STLS listed while TLS is active: %v", k.Order)
		Expect(loginAgain(c, need(t.Account(ctx)))).To(Succeed())
		Expect(readCapa(c).Has("STLS")).To(BeFalse(), "STLS listed in TRANSACTION")
	})

	Spec("does not list STLS on the implicit TLS port", IDs("RFC2595-4-stls-cap"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
		c := need(t.DialTLS(ctx))
		Expect(c.Greeting.OK()).To(BeTrue())
		k := needCapa(c)
		Expect(k.Has("STLS")).To(BeFalse(), "STLS listed on the implicit TLS port: %v", k.Order)
	})

	Spec("starts the TLS handshake right after the CRLF of +OK", IDs("RFC2595-4-stls-handshake"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
		c, _ := needSTLS(ctx, t)
		// StartTLS fails when anything follows +OK before the handshake.
		startTLS(t, c)
		Expect(c.ConnectionState()).NotTo(BeNil())
		Expect(c.ConnectionState().HandshakeComplete).To(BeTrue())
		Expect(readCapa(c).OK).To(BeTrue(), "CAPA inside the TLS session")
	})

	Spec("stays in AUTHORIZATION after STLS", IDs("RFC2595-4-stls-stays-auth"), Readonly, LoginOnly, func(ctx SpecContext, t *harness.Target) {
		c, _ := needSTLS(ctx, t)
		startTLS(t, c)
		expectStillAuthorization(c, need(t.Account(ctx)), "STLS")
	})

	Spec("refuses a second STLS while TLS is active, and carries on under TLS", IDs("RFC2595-4-stls-already-active"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
		c, _ := needSTLS(ctx, t)
		startTLS(t, c)
		expectErr(cmd(c, "STLS"), "STLS under TLS")
		Expect(readCapa(c).OK).To(BeTrue(), "CAPA after the refused STLS, still under TLS")
	})

	Spec("refuses STLS on the implicit TLS port", IDs("RFC2595-4-stls-already-active"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
		c := need(t.DialTLS(ctx))
		expectErr(cmd(c, "STLS"), "STLS on the implicit TLS port")
		Expect(readCapa(c).OK).To(BeTrue(), "CAPA after the refused STLS")
	})

	Spec("refuses STLS after login", IDs("RFC2595-4-stls-auth-only"), Readonly, LoginOnly, func(ctx SpecContext, t *harness.Target) {
		v := withPlaintextLogin(ctx, t)
		c, before := needSTLS(ctx, v)
		a := need(v.Account(ctx))
		userBeforeTLS(c, before, a)
		expectOK(cmd(c, "PASS "+a.Password), "PASS in plaintext")
		expectErr(cmd(c, "STLS"), "STLS in TRANSACTION")
		expectOK(cmd(c, "STAT"), "STAT after the refused STLS, still in plaintext TRANSACTION")
	})

	Spec("never runs commands sent in plaintext together with STLS inside TLS", IDs("RFC2595-4-stls-inject"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
		// One connection at a time: the one that read CAPA is done.
		c0, _ := needSTLS(ctx, t)
		c0.Close()
		if !t.HasPlain() {
			verdict.SkipInconclusive("the target has no plain listener")
		}
		c := need(t.DialPlain(ctx))
		Expect(c.Greeting.OK()).To(BeTrue(), "greeting %q", c.Greeting)
		// STLS and an injected CAPA in one write, as a man in the middle
		// would add it (the CVE-2011-0411 class).
		Expect(c.SendRaw([]byte("STLS\r\nCAPA\r\n"))).To(Succeed())
		r, err := c.ReadReply()
		Expect(err).NotTo(HaveOccurred(), "reply to STLS")
		expectOK(r, "STLS")
		// Handshake refuses to start when the server already answered the
		// injected CAPA in plaintext.
		if err := c.Handshake(t.TLSConfig()); err != nil {
			needTLS(err)
			// A server may also refuse to go on when plaintext followed
			// STLS in the same write, and close the connection (Dovecot
			// does): the injected command then runs neither in
			// plaintext nor inside TLS, which is what the rule protects.
			// Whatever the server sent instead of closing, a CAPA answer
			// in plaintext above all, fails the spec.
			got, cerr := c.ExpectClosed(2 * time.Second)
			Expect(got).To(BeEmpty(), "after +OK to STLS the server sent %q in plaintext instead of a TLS handshake (handshake: %v)", got, err)
			Expect(cerr).NotTo(HaveOccurred(), "the TLS handshake after +OK to STLS failed (%v) and the server did not close the connection", err)
			record("reaction", "the server closed the connection when a command followed STLS in the same write (handshake: %v)", err)
			return
		}
		// NOOP is refused in AUTHORIZATION, so its -ERR cannot be
		// confused with a CAPA list.
		first := cmd(c, "NOOP")
		Expect(first.Err()).To(BeTrue(), "the first reply inside TLS must answer NOOP, not the injected CAPA: %q", first.String())
		extra, _ := c.Quiet(300 * time.Millisecond)
		Expect(bytes.HasSuffix(extra, []byte("\n"))).To(BeFalse(), "unsolicited line inside TLS: %q", extra)
	})

	Spec("forgets a USER given before STLS", IDs("RFC2595-4-stls-discard-state"), Readonly, LoginOnly, func(ctx SpecContext, t *harness.Target) {
		v := withPlaintextLogin(ctx, t)
		c, before := needSTLS(ctx, v)
		a := need(v.Account(ctx))
		userBeforeTLS(c, before, a)
		// After a USER answered +OK, RFC 1939 section 7 leaves the client
		// PASS or QUIT, so a server may refuse STLS there (GNU Mailutils
		// pop3d: "-ERR Invalid command"). Then no USER can reach a TLS
		// session and there is nothing to discard.
		r, err := c.StartTLS(v.TLSConfig())
		if err == nil && r.Err() {
			verdict.SkipNotApplicable("STLS after USER was refused (%q), so no USER given in plaintext can carry over into TLS", r.String())
		}
		needTLS(err)
		Expect(err).NotTo(HaveOccurred(), "STLS and TLS handshake (reply %q)", r.String())
		expectOK(r, "STLS")
		expectErr(cmd(c, "PASS "+a.Password), "PASS under TLS for a USER given in plaintext")
		expectStillAuthorization(c, a, "a PASS without USER")
	})

	Spec("lists a fresh set of capabilities after STLS", IDs("RFC2595-4-stls-capa-refresh"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
		for _, v := range tlsVariants(ctx, t) {
			c, before := needSTLS(ctx, v.t)
			startTLS(v.t, c)
			after := readCapa(c)
			Expect(after.OK).To(BeTrue(), "%s: CAPA after STLS", v.name)
			AddReportEntry("CAPA before / after STLS ("+v.name+")", strings.Join(before.Order, " ")+" / "+strings.Join(after.Order, " "), ReportEntryVisibilityFailureOrVerbose)
			Expect(after.Order).NotTo(BeEmpty(), "%s: empty CAPA after STLS", v.name)
			// STLS and USER depend on TLS alone; the SASL list is the
			// business of RFC5034-3-mechs-may-change-after-stls.
			for _, tag := range []string{"STLS", "USER"} {
				for _, s := range []struct {
					k     capabilities
					tlsOn bool
					when  string
				}{{before, false, "before STLS"}, {after, true, "after STLS"}} {
					want, sure := expectTag(v.t.Profile, tag, s.tlsOn, false)
					if sure {
						Expect(s.k.Has(tag)).To(Equal(want), "%s: %s %s (profile expects %v)", v.name, tag, s.when, want)
					}
				}
			}
		}
	})

	Spec("refuses STLS with -ERR and carries on in plaintext when TLS cannot be offered", IDs("RFC2595-4-stls-err-unavailable"), Readonly, ReferenceOnly, func(ctx SpecContext, t *harness.Target) {
		// The bundled server always has a certificate; a server with STLS
		// switched off stands for one that cannot offer TLS.
		v := need(t.Variant(ctx, func(p *profile.Profile) { p.STLS = false }))
		c := need(v.DialPlain(ctx))
		k := needCapa(c)
		Expect(k.Has("STLS")).To(BeFalse(), "STLS listed without TLS to offer")
		expectErr(cmd(c, "STLS"), "STLS without TLS to offer")
		Expect(c.TLS()).To(BeFalse())
		Expect(readCapa(c).OK).To(BeTrue(), "CAPA in plaintext after the refused STLS")
	})
})

// containIf matches a list that contains elem when want is true and
// lacks it otherwise.
func containIf(want bool, elem string) OmegaMatcher {
	if want {
		return ContainElement(elem)
	}
	return Not(ContainElement(elem))
}

// tlsVariant is a target with a name for failure messages.
type tlsVariant struct {
	name string
	t    *harness.Target
}

// tlsVariants are the target as configured and, on the bundled server,
// the same profile with plaintext passwords allowed only under TLS, so
// that both sides of plaintext_before_tls are exercised.
func tlsVariants(ctx SpecContext, t *harness.Target) []tlsVariant {
	out := []tlsVariant{{"as configured", t}}
	if !t.Profile.PlaintextBeforeTLS {
		return out
	}
	v, err := t.Variant(ctx, func(p *profile.Profile) { p.PlaintextBeforeTLS = false })
	if err == nil {
		out = append(out, tlsVariant{"plaintext passwords only under TLS", v})
	} else if !isUnavailable(err) {
		FailHandler(err.Error())
	}
	return out
}

var _ = Describe("RFC 2595 section 6 and RFC 5034 section 3 PLAIN and TLS", func() {
	Spec("offers and accepts PLAIN before TLS only where the profile allows plaintext passwords", IDs("RFC2595-6-plain-pw-over-tls"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
		v := t
		if t.Profile.PlaintextBeforeTLS {
			var err error
			v, err = t.Variant(ctx, func(p *profile.Profile) { p.PlaintextBeforeTLS = false })
			if err != nil && isUnavailable(err) {
				verdict.SkipNotApplicable("the profile allows plaintext passwords before TLS (backward compatibility)")
			}
			Expect(err).NotTo(HaveOccurred())
		}
		c := need(v.DialPlain(ctx))
		k := needCapa(c)
		Expect(upperAll(k.Params("SASL"))).NotTo(ContainElement("PLAIN"), "SASL PLAIN listed on a connection without TLS")
		a := need(v.Account(ctx))
		r := authPlainTry(c, plainResponse("", a.User, a.Password))
		Expect(r.OK()).To(BeFalse(), "AUTH PLAIN with good credentials accepted without TLS")
	})

	Spec("may change the SASL mechanisms after STLS, as the profile says", IDs("RFC5034-3-mechs-may-change-after-stls"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
		for _, v := range tlsVariants(ctx, t) {
			c, before := needSTLS(ctx, v.t)
			startTLS(v.t, c)
			after := readCapa(c)
			AddReportEntry("SASL before / after STLS ("+v.name+")", strings.Join(before.Params("SASL"), " ")+" / "+strings.Join(after.Params("SASL"), " "), ReportEntryVisibilityFailureOrVerbose)
			p := v.t.Profile
			if !slices.Contains(p.SASL, "PLAIN") {
				continue
			}
			// Only PLAIN's presence follows from TLS; the other
			// mechanisms are compared with the profile under
			// RFC2449-6.3-sasl-cap.
			Expect(upperAll(before.Params("SASL"))).To(containIf(p.PlaintextBeforeTLS, "PLAIN"), "%s: SASL before STLS", v.name)
			Expect(upperAll(after.Params("SASL"))).To(ContainElement("PLAIN"), "%s: SASL after STLS", v.name)
		}
	})

	Spec("offers PLAIN under TLS", IDs("RFC5034-4-plain-required"), Readonly, LoginOnly, func(ctx SpecContext, t *harness.Target) {
		var c *harness.Conn
		if t.HasTLS() {
			c = need(t.DialTLS(ctx))
		} else {
			c, _ = needSTLS(ctx, t)
			startTLS(t, c)
		}
		k := needCapa(c)
		needTag(k, "SASL", "under TLS (the server does not implement AUTH)")
		Expect(upperAll(k.Params("SASL"))).To(ContainElement("PLAIN"), "SASL under TLS: %v", k.Params("SASL"))
		a := need(t.Account(ctx))
		expectOK(authContinue(c, "PLAIN", plainResponse("", a.User, a.Password)), "AUTH PLAIN under TLS")
	})

	Spec("can be set to offer and accept no plaintext password before TLS", IDs("RFC5034-4-no-plaintext-default"), Readonly, ReferenceOnly, func(ctx SpecContext, t *harness.Target) {
		AddReportEntry("plaintext passwords before TLS in the profile", t.Profile.PlaintextBeforeTLS, ReportEntryVisibilityFailureOrVerbose)
		v := need(t.Variant(ctx, func(p *profile.Profile) { p.PlaintextBeforeTLS = false }))
		c := need(v.DialPlain(ctx))
		k := needCapa(c)
		Expect(upperAll(k.Params("SASL"))).NotTo(ContainElement("PLAIN"), "SASL PLAIN offered before TLS")
		a := need(v.Account(ctx))
		Expect(authPlainTry(c, plainResponse("", a.User, a.Password)).OK()).To(BeFalse(), "AUTH PLAIN accepted before TLS")
		if u := cmd(c, "USER "+a.User); u.OK() {
			expectErr(cmd(c, "PASS "+a.Password), "PASS with the right password before TLS")
		}
		startTLS(v, c)
		after := readCapa(c)
		if slices.Contains(v.Profile.SASL, "PLAIN") {
			Expect(upperAll(after.Params("SASL"))).To(ContainElement("PLAIN"), "SASL PLAIN under TLS")
		}
		Expect(loginAgain(c, a)).To(Succeed(), "USER/PASS under TLS")
	})
})
