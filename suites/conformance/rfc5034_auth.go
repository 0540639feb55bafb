package conformance

// RFC 5034 sections 3 to 5 (the AUTH command) and RFC 4616 section 2 (the
// PLAIN mechanism that RFC 5034 requires). Exchanges run without an
// initial response unless the initial response is the point, so that the
// command line fits any profile's command limit.

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"regexp"
	"slices"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// saslChallengeRE is a server challenge: "+", one space, base64, CRLF.
var saslChallengeRE = regexp.MustCompile(`^\+ ([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?\r\n$`)

// ntlmNegotiate is a minimal NTLM NEGOTIATE_MESSAGE (MS-NLMP 2.2.1.1):
// signature, type 1, flags (Unicode, OEM, request target, NTLM, always
// sign, extended session security), empty domain and workstation.
func ntlmNegotiate() string {
	b := make([]byte, 32)
	copy(b, "NTLMSSP\x00")
	binary.LittleEndian.PutUint32(b[8:], 1)
	binary.LittleEndian.PutUint32(b[12:], 0x00088207)
	return base64.StdEncoding.EncodeToString(b)
}

// needAUTH reads CAPA and ends the spec as not applicable when the
// server lists no SASL capability, that is, does not implement AUTH.
func needAUTH(c *harness.Conn) capabilities {
	k := needCapaFresh(currentTarget(), c)
	needTag(k, "SASL", "(the server does not implement AUTH)")
	return k
}

var _ = Describe("RFC 5034 section 4 the AUTH command", func() {
	Spec("refuses AUTH in TRANSACTION", IDs("RFC5034-4-auth-state"), Readonly, LoginOnly, func(ctx SpecContext, t *harness.Target) {
		c := plaintextReady(ctx, t)
		needAUTH(c)
		a := need(t.Account(ctx))
		Expect(loginAgain(c, a)).To(Succeed())
		r := cmd(c, "AUTH PLAIN")
		expectErr(r, "AUTH PLAIN in TRANSACTION")
		expectOK(cmd(c, "STAT"), "STAT after the refused AUTH")
	})

	Spec("refuses a second AUTH after a successful one", IDs("RFC5034-4-auth-once"), Readonly, LoginOnly, func(ctx SpecContext, t *harness.Target) {
		c, _ := needPlainMech(ctx, t)
		a := need(t.Account(ctx))
		expectOK(authContinue(c, "PLAIN", plainResponse("", a.User, a.Password)), "AUTH PLAIN")
		// Another user's credentials where there is one; the same
		// credentials must be refused just as well.
		b := a
		if second, err := t.SecondAccount(ctx); err == nil {
			b = second
		}
		r := cmd(c, "AUTH PLAIN")
		if r.Status == "+" {
			r = cmd(c, plainResponse("", b.User, b.Password))
		}
		expectErr(r, "a second AUTH PLAIN")
		expectOK(cmd(c, "STAT"), "STAT: still the first user's TRANSACTION")
	})

	Spec("refuses a mechanism it does not support and carries on", IDs("RFC5034-4-unknown-mech"), Readonly, LoginOnly, func(ctx SpecContext, t *harness.Target) {
		c := plaintextReady(ctx, t)
		expectErr(cmd(c, "AUTH X-NO-SUCH-MECHANISM"), "AUTH with an unknown mechanism")
		expectStillAuthorization(c, need(t.Account(ctx)), "an unknown mechanism")
	})

	Spec("sends challenges as \"+\", one space and base64 only", IDs("RFC5034-4-challenge-format"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
		c := plaintextReady(ctx, t)
		k := needAUTH(c)
		for _, m := range upperAll(k.Params("SASL")) {
			r := cmd(c, "AUTH "+m)
			Expect(saslChallengeRE.Match(r.Raw)).To(BeTrue(), "AUTH %s: challenge %q", m, r.Raw)
			if m == "NTLM" {
				// The NTLM CHALLENGE_MESSAGE is the first non-empty
				// challenge a client can always draw.
				r = cmd(c, ntlmNegotiate())
				Expect(saslChallengeRE.Match(r.Raw)).To(BeTrue(), "AUTH NTLM: challenge %q", r.Raw)
				Expect(len(r.Raw)).To(BeNumerically(">", len("+ \r\n")), "AUTH NTLM: the CHALLENGE_MESSAGE is not empty")
			}
			expectErr(cmd(c, "*"), "cancelling AUTH "+m)
		}
	})

	Spec("sends exactly \"+ \" as the empty challenge when PLAIN gets no initial response", IDs("RFC5034-4-empty-challenge"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
		c, _ := needPlainMech(ctx, t)
		r := cmd(c, "AUTH PLAIN")
		Expect(string(r.Raw)).To(Equal("+ \r\n"))
		expectErr(cmd(c, "*"), "cancelling AUTH PLAIN")
	})

	Spec("accepts a base64 initial response on the AUTH line", IDs("RFC5034-4-ir-base64"), Readonly, LoginOnly, func(ctx SpecContext, t *harness.Target) {
		c, _ := needPlainMech(ctx, t)
		a := need(t.Account(ctx))
		expectOK(authWithIR(t, c, "PLAIN", plainResponse("", a.User, a.Password)), "AUTH PLAIN with an initial response")
		expectOK(cmd(c, "STAT"), "STAT after AUTH")
	})

	Spec("takes \"=\" as an empty initial response, which PLAIN refuses", IDs("RFC5034-4-ir-base64"), Readonly, LoginOnly, func(ctx SpecContext, t *harness.Target) {
		c, _ := needPlainMech(ctx, t)
		r := cmd(c, "AUTH PLAIN =")
		// An empty PLAIN message is malformed: the answer is -ERR, not
		// a challenge asking for a response that was already given.
		expectErr(r, "AUTH PLAIN = (an empty PLAIN message)")
		expectStillAuthorization(c, need(t.Account(ctx)), "AUTH PLAIN =")
	})

	Spec("refuses an initial response to a mechanism where the server speaks first", IDs("RFC5034-4-ir-unsupported-mech"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
		c := plaintextReady(ctx, t)
		k := needAUTH(c)
		var serverFirst []string
		for _, m := range upperAll(k.Params("SASL")) {
			if m == "CRAM-MD5" || m == "DIGEST-MD5" {
				serverFirst = append(serverFirst, m)
			}
		}
		if len(serverFirst) == 0 {
			verdict.SkipNotApplicable("no listed mechanism (%v) begins with the server", k.Params("SASL"))
		}
		for _, m := range serverFirst {
			expectErr(cmd(c, "AUTH "+m+" Zm9v"), "AUTH "+m+" with an initial response")
		}
	})

	Spec("answers \"*\" with -ERR and stays in AUTHORIZATION", IDs("RFC5034-4-cancel"), Readonly, LoginOnly, func(ctx SpecContext, t *harness.Target) {
		c, _ := needPlainMech(ctx, t)
		expectErr(authContinue(c, "PLAIN", "*"), "\"*\" after the empty challenge")
		expectStillAuthorization(c, need(t.Account(ctx)), "a cancelled AUTH")
	})

	Spec("refuses a response that is not base64", IDs("RFC5034-4-bad-base64"), Readonly, LoginOnly, func(ctx SpecContext, t *harness.Target) {
		c, _ := needPlainMech(ctx, t)
		expectErr(authContinue(c, "PLAIN", "!!not~base64!!"), "a response that is not base64")
		expectErr(cmd(c, "AUTH PLAIN !!not~base64!!"), "an initial response that is not base64")
		expectStillAuthorization(c, need(t.Account(ctx)), "undecodable responses")
	})

	// Each case spoils the base64 of good credentials in a way that a
	// lenient decoder would skip over and then log the user in.
	type b64Case struct {
		name  string
		spoil func(string) string
	}
	b64Cases := []b64Case{
		{"a leading pad character", func(s string) string { return "=" + s }},
		{"a pad character inside", func(s string) string { return s[:4] + "=" + s[4:] }},
		{"a space inside", func(s string) string { return s[:4] + " " + s[4:] }},
		{"a \"*\" inside", func(s string) string { return s[:4] + "*" + s[4:] }},
		{"a line-wrapping TAB inside", func(s string) string { return s[:4] + "\t" + s[4:] }},
	}
	for _, tc := range b64Cases {
		Spec("refuses a response with "+tc.name+" rather than skipping it", IDs("RFC5034-4-base64-strict"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
			c, _ := needPlainMech(ctx, t)
			a := need(t.Account(ctx))
			expectErr(authContinue(c, "PLAIN", tc.spoil(plainResponse("", a.User, a.Password))), "a response with "+tc.name)
			expectErr(cmd(c, "STAT"), "STAT: the spoilt response must not have logged in")
		})
	}

	Spec("takes a response longer than any command line", IDs("RFC5034-4-long-responses"), Readonly, LoginOnly, func(ctx SpecContext, t *harness.Target) {
		if t.Reference() == nil {
			verdict.SkipInconclusive("needs an account with a PLAIN message longer than the command limit (only the bundled server can create one)")
		}
		c, _ := needPlainMech(ctx, t)
		// RFC 4616 makes servers accept 255-octet fields. The name is as
		// long as the store allows, the authorisation identity repeats it
		// and the password has at least 255 octets, more if needed to
		// pass the profile's command limit.
		name := freshName("ext") + "."
		name += strings.Repeat("n", 64-len(name))
		pw := 255
		for base64.StdEncoding.EncodedLen(2*len(name)+2+pw)+2 <= t.Profile.MaxCommandOctets {
			pw++
		}
		a := emptyAccount(t, name, strings.Repeat("lo ng", pw/5+1)[:pw])
		resp := plainResponse(a.User, a.User, a.Password)
		AddReportEntry("response octets", len(resp)+2, ReportEntryVisibilityFailureOrVerbose)
		expectOK(authContinue(c, "PLAIN", resp), fmt.Sprintf("a %d-octet PLAIN response", len(resp)+2))
	})

	Spec("answers failed authentication with -ERR and stays in AUTHORIZATION", IDs("RFC5034-4-auth-fail"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
		c, _ := needPlainMech(ctx, t)
		expectErr(authContinue(c, "PLAIN", plainResponse("", harness.NoSuchUser(), "x")), "AUTH PLAIN of a user that does not exist")
		expectErr(cmd(c, "STAT"), "STAT after a failed AUTH")
	})

	Spec("answers a completed exchange with +OK and enters TRANSACTION", IDs("RFC5034-4-auth-success"), Readonly, LoginOnly, func(ctx SpecContext, t *harness.Target) {
		c, _ := needPlainMech(ctx, t)
		a := need(t.Account(ctx))
		expectOK(authContinue(c, "PLAIN", plainResponse("", a.User, a.Password)), "AUTH PLAIN")
		expectOK(cmd(c, "STAT"), "STAT in TRANSACTION")
	})

	Spec("ends the exchange with +OK or -ERR, never another challenge", IDs("RFC5034-4-no-additional-data"), Readonly, LoginOnly, func(ctx SpecContext, t *harness.Target) {
		c, _ := needPlainMech(ctx, t)
		a := need(t.Account(ctx))
		bad := authContinue(c, "PLAIN", plainResponse("", harness.NoSuchUser(), "x"))
		Expect(bad.Status).To(Equal("-ERR"), "after PLAIN's only response for a user that does not exist")
		good := authContinue(c, "PLAIN", plainResponse("", a.User, a.Password))
		Expect(good.Status).To(Equal("+OK"), "after PLAIN's only response")
		Expect(saslChallengeRE.Match(good.Raw)).To(BeFalse())
	})

	type authzCase struct {
		name  string
		authz func(user string) string
	}
	authzCases := []authzCase{
		// SASLprep maps U+00AD SOFT HYPHEN to nothing: sent non-empty,
		// prepared empty.
		{"that SASLprep maps to an empty string", func(string) string { return "\u00ad" }},
		// U+FFFD is prohibited (RFC 3454 C.6), so preparation fails.
		{"with a prohibited character", func(u string) string { return u + "\ufffd" }},
		// ASCII control characters are prohibited too (C.2.1).
		{"with an ASCII control character", func(u string) string { return u + "\x07" }},
	}
	for _, tc := range authzCases {
		Spec("fails a PLAIN login whose authorisation identity is one "+tc.name, IDs("RFC5034-4-authz-empty-fail"), Disruptive, NoLogin, func(ctx SpecContext, t *harness.Target) {
			c, _ := needPlainMech(ctx, t)
			a := need(t.Account(ctx))
			expectErr(authContinue(c, "PLAIN", plainResponse(tc.authz(a.User), a.User, a.Password)), "AUTH PLAIN with an authorisation identity "+tc.name)
			expectErr(cmd(c, "STAT"), "STAT after the failed AUTH")
		})
	}

	Spec("prepares the authorisation identity with SASLprep before matching it", IDs("RFC5034-4-saslprep"), Disruptive, func(ctx SpecContext, t *harness.Target) {
		c, _ := needPlainMech(ctx, t)
		a := need(t.Account(ctx))
		// A SOFT HYPHEN inside the name is mapped to nothing, so the
		// prepared identity is the user's own.
		authz := a.User[:1] + "\u00ad" + a.User[1:]
		expectOK(authContinue(c, "PLAIN", plainResponse(authz, a.User, a.Password)), "AUTH PLAIN with the user's name and a SOFT HYPHEN as authorisation identity")
	})

	Spec("discards what it learnt outside SASL when a security layer starts", IDs("RFC5034-4-layer-discard"), Readonly, ReferenceOnly, func(ctx SpecContext, t *harness.Target) {
		c := plaintextReady(ctx, t)
		k := needAUTH(c)
		var layered []string
		for _, m := range upperAll(k.Params("SASL")) {
			if m == "GSSAPI" || m == "DIGEST-MD5" || m == "KERBEROS_V4" {
				layered = append(layered, m)
			}
		}
		if len(layered) == 0 {
			verdict.SkipNotApplicable("no listed mechanism (%v) negotiates a security layer", k.Params("SASL"))
		}
		verdict.SkipInconclusive("the suite cannot negotiate a security layer with %v", layered)
	})

	Spec("uses the service name pop", IDs("RFC5034-4-service-name"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
		c := plaintextReady(ctx, t)
		k := needAUTH(c)
		if !slices.Contains(upperAll(k.Params("SASL")), "GSSAPI") {
			verdict.SkipNotApplicable("GSSAPI, the only mechanism that shows the service name, is not listed (%v)", k.Params("SASL"))
		}
		verdict.SkipInconclusive("needs a Kerberos realm and a keytab for pop/<host>")
	})

	Spec("lets USER/PASS or another AUTH follow a failed AUTH", IDs("RFC5034-4-failed-auth-no-effect"), Readonly, ManyCommands, func(ctx SpecContext, t *harness.Target) {
		c, _ := needPlainMech(ctx, t)
		a := need(t.Account(ctx))
		// The failed logins name a user that does not exist: a wrong
		// password for the account could count towards its lockout.
		expectErr(authContinue(c, "PLAIN", plainResponse("", harness.NoSuchUser(), "x")), "AUTH PLAIN of a user that does not exist")
		expectOK(authContinue(c, "PLAIN", plainResponse("", a.User, a.Password)), "AUTH PLAIN after a failed one")
		// End that session (nothing is marked deleted) so that a server
		// with a maildrop lock lets the next login in.
		expectOK(cmd(c, "QUIT"), "QUIT")
		d, _ := needPlainMech(ctx, t)
		expectErr(authContinue(d, "PLAIN", plainResponse("", harness.NoSuchUser(), "x")), "AUTH PLAIN of a user that does not exist")
		expectStillAuthorization(d, a, "a failed AUTH")
	})

	Spec("refuses STLS after a successful AUTH", IDs("RFC5034-4-tls-then-sasl"), Readonly, LoginOnly, func(ctx SpecContext, t *harness.Target) {
		v := withPlaintextLogin(ctx, t)
		c, k := needSTLS(ctx, v)
		if !slices.Contains(upperAll(k.Params("SASL")), "PLAIN") {
			verdict.SkipNotApplicable("the server does not list PLAIN in its SASL capability before TLS (%v)", k.Params("SASL"))
		}
		a := need(v.Account(ctx))
		expectOK(authContinue(c, "PLAIN", plainResponse("", a.User, a.Password)), "AUTH PLAIN in plaintext")
		expectErr(cmd(c, "STLS"), "STLS after AUTH")
		expectOK(cmd(c, "STAT"), "STAT after the refused STLS")
	})

	Spec("lists SASL after a successful AUTH", IDs("RFC5034-3-sasl-cap-stays"), Readonly, LoginOnly, func(ctx SpecContext, t *harness.Target) {
		c, _ := needPlainMech(ctx, t)
		a := need(t.Account(ctx))
		expectOK(authContinue(c, "PLAIN", plainResponse("", a.User, a.Password)), "AUTH PLAIN")
		k := readCapa(c)
		Expect(k.OK).To(BeTrue(), "CAPA after AUTH")
		Expect(k.Has("SASL")).To(BeTrue(), "SASL missing after AUTH: %v", k.Order)
	})
})

var _ = Describe("RFC 5034 section 5 case", func() {
	type caseCase struct{ keyword, mech string }
	for _, tc := range []caseCase{{"auth", "plain"}, {"Auth", "pLaIn"}} {
		Spec(fmt.Sprintf("accepts %q %q as AUTH PLAIN", tc.keyword, tc.mech), IDs("RFC5034-5-case-insensitive"), Readonly, LoginOnly, func(ctx SpecContext, t *harness.Target) {
			c, _ := needPlainMech(ctx, t)
			a := need(t.Account(ctx))
			r := cmd(c, tc.keyword+" "+tc.mech)
			Expect(r.Status).To(Equal("+"), "%s %s: want the empty challenge, got %q", tc.keyword, tc.mech, r.String())
			expectOK(cmd(c, plainResponse("", a.User, a.Password)), tc.keyword+" "+tc.mech)
		})
	}

	Spec("keeps base64 case-sensitive", IDs("RFC5034-5-case-insensitive"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
		c, _ := needPlainMech(ctx, t)
		a := need(t.Account(ctx))
		good := plainResponse("", a.User, a.Password)
		swapped := strings.Map(func(r rune) rune {
			switch {
			case r >= 'a' && r <= 'z':
				return r - 'a' + 'A'
			case r >= 'A' && r <= 'Z':
				return r - 'A' + 'a'
			}
			return r
		}, good)
		expectErr(authContinue(c, "PLAIN", swapped), "the credentials' base64 with its letters' case swapped")
		expectErr(cmd(c, "STAT"), "STAT: the case-swapped response must not have logged in")
	})
})

var _ = Describe("RFC 4616 section 2 the PLAIN mechanism", func() {
	type plainCase struct {
		name  string
		authz func(a harness.Account) string
	}
	for _, tc := range []plainCase{
		{"an empty authorisation identity", func(harness.Account) string { return "" }},
		{"the user's own name as authorisation identity", func(a harness.Account) string { return a.User }},
	} {
		Spec("logs in with "+tc.name, IDs("RFC4616-2-plain-format"), Readonly, LoginOnly, func(ctx SpecContext, t *harness.Target) {
			c, _ := needPlainMech(ctx, t)
			a := need(t.Account(ctx))
			expectOK(authContinue(c, "PLAIN", plainResponse(tc.authz(a), a.User, a.Password)), "AUTH PLAIN with "+tc.name)
			expectOK(cmd(c, "STAT"), "STAT")
		})
	}

	Spec("fails when the authorisation identity names another user", IDs("RFC4616-2-plain-authz-other"), Disruptive, NoLogin, func(ctx SpecContext, t *harness.Target) {
		c, _ := needPlainMech(ctx, t)
		a := need(t.Account(ctx))
		other := "postmaster"
		if b, err := t.SecondAccount(ctx); err == nil {
			other = b.User
		}
		expectErr(authContinue(c, "PLAIN", plainResponse(other, a.User, a.Password)), "AUTH PLAIN acting as "+other)
		expectErr(cmd(c, "STAT"), "STAT after the refused AUTH")
	})

	type malformed struct {
		name string
		msg  func(a harness.Account) string
	}
	for _, tc := range []malformed{
		{"without NUL separators", func(a harness.Account) string { return a.User + a.Password }},
		{"with one NUL only", func(a harness.Account) string { return a.User + "\x00" + a.Password }},
		{"with an empty authentication identity", func(a harness.Account) string { return "\x00\x00" + a.Password }},
		{"with an empty password", func(a harness.Account) string { return "\x00" + a.User + "\x00" }},
		{"with a NUL inside the password", func(a harness.Account) string { return "\x00" + a.User + "\x00" + a.Password + "\x00" }},
	} {
		Spec("fails a PLAIN message "+tc.name, IDs("RFC4616-2-plain-malformed"), Disruptive, NoLogin, func(ctx SpecContext, t *harness.Target) {
			c, _ := needPlainMech(ctx, t)
			a := need(t.Account(ctx))
			resp := base64.StdEncoding.EncodeToString([]byte(tc.msg(a)))
			expectErr(authContinue(c, "PLAIN", resp), "a PLAIN message "+tc.name)
			expectErr(cmd(c, "STAT"), "STAT after the refused AUTH")
		})
	}
})
