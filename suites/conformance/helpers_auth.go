package conformance

// Helpers for logins other than USER/PASS: SASL (RFC 5034, RFC 4616),
// APOP (RFC 1939 section 7), and STLS (RFC 2595) before them.

import (
	"encoding/base64"
	"errors"
	"regexp"
	"slices"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// needPlainMech opens a session ready for AUTH PLAIN, or ends the spec as
// not applicable when CAPA does not list SASL PLAIN there.
func needPlainMech(ctx SpecContext, t *harness.Target) (*harness.Conn, capabilities) {
	c := plaintextReady(ctx, t)
	k := needCapaFresh(t, c)
	if !slices.Contains(k.SASL(), "PLAIN") {
		verdict.SkipNotApplicable("the server does not list PLAIN in its SASL capability (%q)", strings.Join(k.Params("SASL"), " "))
	}
	return c, k
}

// plainResponse is the base64 of an RFC 4616 PLAIN message.
func plainResponse(authz, authc, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(authz + "\x00" + authc + "\x00" + password))
}

// authContinue runs "AUTH <mech>" without an initial response, checks
// that the server answers with a continuation, sends response and returns
// the server's next line.
func authContinue(c *harness.Conn, mech, response string) harness.Reply {
	ch := cmd(c, "AUTH "+mech)
	ExpectWithOffset(1, ch.Status).To(Equal("+"), "AUTH %s without an initial response: want a continuation, got %q", mech, ch.String())
	return cmd(c, response)
}

// authPlainTry tries AUTH PLAIN with response and returns the final reply,
// whether the server sent an empty challenge first or refused the
// mechanism at once. The initial response goes after the challenge, so the
// command line stays short under any command limit.
func authPlainTry(c *harness.Conn, response string) harness.Reply {
	r := cmd(c, "AUTH PLAIN")
	if r.Status != "+" {
		return r
	}
	return cmd(c, response)
}

// authWithIR runs AUTH with an initial response. A line that the profile's
// command limit cannot carry ends the spec as not applicable: the client
// would have to use the empty challenge instead (RFC 5034 section 4).
func authWithIR(t *harness.Target, c *harness.Conn, mech, ir string) harness.Reply {
	needKey(t, "max_command_octets")
	line := "AUTH " + mech + " " + ir
	if n := len(line) + 2; n > t.Profile.MaxCommandOctets {
		verdict.SkipNotApplicable("an AUTH line with this initial response has %d octets, more than the profile's %d-octet command limit", n, t.Profile.MaxCommandOctets)
	}
	return cmd(c, line)
}

// needSTLS dials the plain listener and reads CAPA there; the spec ends
// inconclusive without a plain listener and not applicable when STLS is
// not advertised.
func needSTLS(ctx SpecContext, t *harness.Target) (*harness.Conn, capabilities) {
	c := need(t.DialPlain(ctx))
	Expect(c.Greeting.OK()).To(BeTrue(), "greeting %q", c.Greeting)
	k := needCapaFresh(t, c)
	needTag(k, "STLS", "on the plain listener")
	return c, k
}

// startTLS runs STLS and the handshake and fails on any problem but an
// untrusted certificate (see needTLS).
func startTLS(t *harness.Target, c *harness.Conn) {
	r, err := c.StartTLS(t.TLSConfig())
	needTLS(err)
	ExpectWithOffset(1, err).NotTo(HaveOccurred(), "STLS and TLS handshake (reply %q)", r.String())
	expectOK(r, "STLS")
}

// needTLS ends the spec inconclusive when a TLS handshake failed only
// because the client does not trust the server's certificate: that says
// nothing about the server's POP3.
func needTLS(err error) {
	if errors.Is(err, harness.ErrCertificate) {
		verdict.SkipInconclusive("%v", err)
	}
}

var (
	// Any <...> in a greeting looks like an APOP timestamp to a client.
	apopStampRE = regexp.MustCompile(`<[^<>\r\n]*>`)
	// The timestamp proper has the syntax of an RFC 822 msg-id:
	// <local-part@domain>.
	msgIDRE = regexp.MustCompile(`<[\x21-\x3B\x3D\x3F-\x7E]+@[\x21-\x3B\x3D\x3F-\x7E]+>`)
)

// apopTimestamp returns the APOP timestamp of a greeting: any <...>, which
// is what a client would take for one.
func apopTimestamp(g harness.Reply) (string, bool) {
	s := apopStampRE.FindString(g.Text)
	return s, s != ""
}

// apopAccount returns the mailbox for APOP checks: on the bundled server
// a fresh copy of the fixture "erin", which logs in with APOP only where
// the server offers APOP (RFC 1939 section 13: one method per mailbox).
// On a remote host it is POP3_USER when POP3_MAILBOX_FIXTURE=erin, and
// otherwise POP3_USER too, whose password is then taken as its APOP
// secret (a refusal then proves nothing, which the specs allow for).
func apopAccount(ctx SpecContext, t *harness.Target) harness.Account {
	a, err := t.AccountLike(ctx, "erin")
	if err != nil && isUnavailable(err) && t.Reference() == nil {
		return need(t.Account(ctx))
	}
	return need(a, err)
}

// apopSecretKnown reports whether a's password is known to be its APOP
// shared secret: on the bundled server, or when the account is declared
// the APOP fixture (POP3_MAILBOX_FIXTURE=erin).
func apopSecretKnown(t *harness.Target, a harness.Account) bool {
	return t.Reference() != nil || a.Fixture == "erin"
}

// skipUnknownAPOPSecret ends the spec inconclusive when APOP with a's
// password as the shared secret was refused and nothing says that the
// password is the secret: servers may keep APOP secrets of their own.
func skipUnknownAPOPSecret(t *harness.Target, a harness.Account, r harness.Reply) {
	if r.OK() || apopSecretKnown(t, a) {
		return
	}
	verdict.SkipInconclusive("APOP for %s with its password as the shared secret got %q; the server may keep a separate APOP secret, so the refusal proves nothing (declare an APOP mailbox with %s=erin)", a.User, r.String(), harness.EnvMailboxFixture)
}

// needAPOPSecret checks, on a connection of its own, that APOP with a's
// password logs in, where nothing declared it; otherwise a refusal in the
// spec proper would prove nothing.
func needAPOPSecret(ctx SpecContext, t *harness.Target, a harness.Account) {
	if apopSecretKnown(t, a) {
		return
	}
	c := authDial(ctx, t)
	defer c.Close()
	stamp, ok := apopTimestamp(c.Greeting)
	if !ok {
		return
	}
	r := cmd(c, "APOP "+a.User+" "+harness.APOPDigest(stamp, a.Password))
	skipUnknownAPOPSecret(t, a, r)
	cmd(c, "QUIT")
}
