package conformance

// RFC 1939 section 11 (message format: RFC 822 messages, sizes that count
// CRLF and not the stuffing dots) and section 13 (security
// considerations: APOP or PASS per mailbox, APOP replay, what USER
// reveals, clear text, repeated failed logins).
//
// The section 13 INFO entries are recorded as report entries; their specs
// only assert that the replies they record are well-formed. MS-STANXPOP3
// V0012 (no APOP) makes the APOP checks not applicable, 2.1.4 and 2.1.5
// (storage sizes) the size check.

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// apopOffered ends a spec when the rule is moot: the profile has no
// APOP (V0012) or the server's greeting carries no timestamp.
func apopOffered(t *harness.Target, c *harness.Conn) string {
	if !t.Profile.APOP {
		verdict.SkipNotApplicable("the profile follows MS-STANXPOP3 V0012 instead: no APOP")
	}
	stamp, ok := apopTimestamp(c.Greeting)
	if !ok {
		verdict.SkipNotApplicable("the server does not offer APOP: its greeting %q has no timestamp", c.Greeting.String())
	}
	return stamp
}

var _ = Describe("RFC 1939 section 11: message format", func() {
	// RFC 822 section 3.2: field-name is printable ASCII but SPACE and ":".
	fieldRE := regexp.MustCompile(`^[!-9;-~]+[ \t]*:`)

	Spec("sends messages in RFC 822 format: header fields, an empty line, the body", IDs("RFC1939-11-rfc822"), Readonly, fixtureMail, func(ctx SpecContext, t *harness.Target) {
		src := messagesOf(ctx, t)
		var fx []harness.FixtureMessage
		if src.Account.Fixture == "alice" {
			fx = needFixture(src.Account, "alice")
		}
		seen := min(src.Count, retrieveLimit)
		for num := 1; num <= seen; num++ {
			m := src.Retr(num)
			Expect(m.OK()).To(BeTrue(), "RETR %d: %q", num, m.String())
			body := m.Body()
			lines := splitLines(body)
			Expect(lines).NotTo(BeEmpty(), "RETR %d sent an empty message", num)
			fields := 0
			for i, l := range lines {
				Expect(bytes.HasSuffix(l, []byte("\r\n"))).To(BeTrue(), "RETR %d line %d %q must end in CRLF", num, i+1, l)
				s := strings.TrimSuffix(string(l), "\r\n")
				if s == "" {
					break // the header ends at the first empty line
				}
				if s[0] == ' ' || s[0] == '\t' {
					Expect(fields).To(BeNumerically(">", 0), "RETR %d: the message starts with a continuation line %q", num, s)
					continue
				}
				Expect(fieldRE.MatchString(s)).To(BeTrue(), "RETR %d header line %d %q is not an RFC 822 header field", num, i+1, s)
				fields++
			}
			Expect(fields).To(BeNumerically(">", 0), "RETR %d: no header fields", num)
			if fx != nil {
				Expect(body).To(Equal(fx[num-1].Data), "RETR %d must be fixture %s as held", num, fx[num-1].Name)
			}
		}
		if seen == 0 {
			verdict.SkipInconclusive("the maildrop is empty: there is no message to check")
		}
	})

	Spec("counts each line end as CRLF and no stuffing dots in message sizes", IDs("RFC1939-11-size-crlf"), Readonly, KeptSession, func(ctx SpecContext, t *harness.Target) {
		if !t.Profile.ExactSizes {
			verdict.SkipNotApplicable("the profile follows MS-STANXPOP3 2.1.4 and 2.1.5 instead (storage-based sizes)")
		}
		c, a := session(ctx, t)
		if a.Fixture == "alice" {
			// The fixture's octets with CRLF line ends are the sizes;
			// messages 02 and 04 travel with extra stuffing dots.
			fx := needFixture(a, "alice")
			list := listAll(c, "LIST")
			Expect(list).To(HaveLen(len(fx)))
			for i, l := range list {
				Expect(l.Rest).To(Equal(fmt.Sprint(len(fx[i].Data))), "LIST %s: the size of %s with CRLF line ends, without stuffing", l.NumText, fx[i].Name)
			}
			return
		}
		stuffed := 0
		seen := eachMessage(c, func(num int, listed int64, m harness.Multi) {
			var wire int
			for _, l := range m.Lines {
				wire += len(l)
				Expect(bytes.HasSuffix(l, []byte("\r\n"))).To(BeTrue(), "RETR %d sends a line without CRLF: %q", num, l)
			}
			if wire > len(m.Body()) {
				stuffed++
			}
			Expect(listed).To(Equal(int64(len(m.Body()))), "LIST %d gives %d octets; the message is %d octets with CRLF line ends and without stuffing (%d on the wire)", num, listed, len(m.Body()), wire)
		})
		if seen == 0 {
			verdict.SkipInconclusive("the maildrop is empty: there is no size to check")
		}
		record("stuffing", "%d of %d messages checked had byte-stuffed lines", stuffed, seen)
	})
})

var _ = Describe("RFC 1939 section 13: security considerations", func() {
	// Both directions: the APOP mailbox ("erin" on the bundled server)
	// must not take USER/PASS, and a USER/PASS mailbox ("alice") must not
	// take APOP with its password as the shared secret.
	Spec("does not let one mailbox log in with both APOP and USER/PASS", IDs("RFC1939-13-apop-xor-pass"), Readonly, func(ctx SpecContext, t *harness.Target) {
		first := authDial(ctx, t)
		apopOffered(t, first)
		first.Close()
		both := func(a harness.Account) (apop, pass harness.Reply) {
			c := authDial(ctx, t)
			stamp, _ := apopTimestamp(c.Greeting)
			apop = cmd(c, "APOP "+a.User+" "+harness.APOPDigest(stamp, a.Password))
			if apop.OK() {
				quitAndWait(c)
			} else {
				c.Close()
			}
			c2 := authDial(ctx, t)
			pass = cmd(c2, "USER "+a.User)
			if pass.OK() {
				pass = cmd(c2, "PASS "+a.Password)
			}
			c2.Close()
			record("methods of "+a.User, "APOP: %q; USER/PASS: %q", apop.String(), pass.String())
			Expect(apop.OK() && pass.OK()).To(BeFalse(), "mailbox %s can log in with APOP and with USER/PASS; RFC 1939 section 13 says a server should allow only one of them per mailbox", a.User)
			return apop, pass
		}
		apopBox := apopAccount(ctx, t)
		apop, pass := both(apopBox)
		pwBox := need(t.Account(ctx))
		if pwBox.User == apopBox.User {
			// A remote host with one account: at most one method works.
			if !apop.OK() && !pass.OK() {
				verdict.SkipInconclusive("neither APOP nor USER/PASS let %s in", apopBox.User)
			}
			return
		}
		Expect(apop.OK()).To(BeTrue(), "APOP mailbox %s: APOP with the right digest must work, got %q", apopBox.User, apop.String())
		apop, pass = both(pwBox)
		Expect(pass.OK()).To(BeTrue(), "USER/PASS mailbox %s: the login must work, got %q", pwBox.User, pass.String())
	})

	Spec("does not accept an APOP digest from an earlier connection", IDs("RFC1939-13-apop-replay"), Disruptive, func(ctx SpecContext, t *harness.Target) {
		a := apopAccount(ctx, t)
		c := authDial(ctx, t)
		stamp := apopOffered(t, c)
		digest := harness.APOPDigest(stamp, a.Password)
		r := cmd(c, "APOP "+a.User+" "+digest)
		if !r.OK() {
			verdict.SkipInconclusive("APOP with the account password as shared secret was refused (%q), so no valid digest could be captured", r.String())
		}
		quitAndWait(c)

		c2 := authDial(ctx, t)
		stamp2, _ := apopTimestamp(c2.Greeting)
		Expect(stamp2).NotTo(BeEmpty(), "the second greeting %q has no timestamp", c2.Greeting.String())
		Expect(stamp2).NotTo(Equal(stamp), "the timestamp must be new for every connection")
		expectErr(cmd(c2, "APOP "+a.User+" "+digest), "APOP replaying the digest of the earlier connection")
	})

	Spec("answers USER for known and unknown names (recorded: do the replies tell them apart?)", IDs("RFC1939-13-user-err-leak"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
		a := need(t.Account(ctx))
		reply := func(name string) harness.Reply {
			c := authDial(ctx, t)
			r := cmd(c, "USER "+name)
			c.Close()
			Expect(r.OK() || r.Err()).To(BeTrue(), "USER %s: a status line, got %q", name, r.String())
			return r
		}
		known, unknown := reply(a.User), reply(harness.NoSuchUser())
		record("USER replies", "known name: %q; unknown name: %q; the status tells them apart: %v",
			known.String(), unknown.String(), known.Status != unknown.Status)
	})

	Spec("logs in and retrieves mail in clear text only where the profile allows it (recorded)", IDs("RFC1939-13-cleartext"), Readonly, func(ctx SpecContext, t *harness.Target) {
		a := need(t.Account(ctx))
		if t.Mode() != harness.TLSNone {
			// The user asked for TLS: the suite never sends the password
			// in clear to find out whether the server would take it.
			c := loginAs(ctx, t, a)
			Expect(c.TLS()).To(BeTrue(), "the login under %s must run under TLS", t.Mode())
			record("clear text", "the target is reached with %s: PASS, RETR and TOP travel under TLS", t.Mode())
			return
		}
		c, err := t.DialPlain(ctx)
		Expect(err).NotTo(HaveOccurred(), "connect to the plain port")
		r := cmd(c, "USER "+a.User)
		if r.OK() {
			r = cmd(c, "PASS "+a.Password)
		}
		record("clear text", "USER/PASS without TLS: %q (the profile allows plaintext logins: %v, offers STLS: %v)",
			r.String(), t.Profile.PlaintextBeforeTLS, t.Profile.STLS)
		Expect(r.OK()).To(Equal(t.Profile.PlaintextBeforeTLS), "a plaintext login before TLS: %q", r.String())
		if r.OK() {
			if n, _ := stat(c); n > 0 {
				expectOK(multi(c, "RETR 1").Reply, "RETR 1 without TLS")
				record("clear text", "the password and mail travelled unprotected")
			}
		}
	})

	Spec("refuses repeated wrong passwords (recorded: delays and closes)", IDs("RFC1939-13-bruteforce"), Disruptive, func(ctx SpecContext, t *harness.Target) {
		a := need(t.Account(ctx))
		c := authDial(ctx, t)
		var notes []string
		for i := 1; i <= 3; i++ {
			start := time.Now()
			r, err := c.Cmd("USER " + a.User)
			if err == nil && r.OK() {
				r, err = c.Cmd("PASS wrong-" + a.Password)
			}
			if err != nil {
				notes = append(notes, fmt.Sprintf("attempt %d: the connection ended (%v)", i, err))
				break
			}
			notes = append(notes, fmt.Sprintf("attempt %d: %q after %v", i, r.String(), time.Since(start).Round(time.Millisecond)))
			Expect(r.OK()).To(BeFalse(), "a wrong password was accepted: %q", r.String())
			expectErr(r, fmt.Sprintf("wrong password, attempt %d", i))
		}
		record("failed logins", "%s", strings.Join(notes, "; "))
	})
})
