package conformance

// MS-STANXPOP3 2.2.2 (RFC 1939 section 4, the AUTHORIZATION state): C0003
// identify and authenticate, E0002 login mechanisms, C0004 the snapshot of
// the message list at login, C0005 closing after a negative reply.

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"

	"github.com/Azure/go-ntlmssp"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

var _ = Describe("MS-STANXPOP3 2.2.2 C0003 identify and authenticate", func() {
	// closedAfterErr handles a profile that closes after n negative
	// replies (C0005): it reports whether the session was closed as the
	// profile says, so the spec stops there.
	closedAfterErr := func(t *harness.Target, c *harness.Conn, errs int) bool {
		if n := errorLimit(t, false); n > 0 && errs >= n {
			_, err := c.ExpectClose()
			Expect(err).NotTo(HaveOccurred(), "the profile closes after %d negative replies", n)
			return true
		}
		return false
	}

	Spec("keeps the maildrop closed after USER alone", IDs("C0003"), Readonly, func(ctx SpecContext, t *harness.Target) {
		a := need(t.Account(ctx))
		c := authDial(ctx, t)
		expectOK(cmd(c, "USER "+a.User), "USER")
		expectErr(cmd(c, "STAT"), "STAT after USER without PASS")
		if closedAfterErr(t, c, 1) {
			return
		}
		// After a USER answered +OK, RFC 1939 section 7 leaves the client
		// PASS or QUIT only (Cyrus pop3d answers a second USER "-ERR
		// [AUTH] Must give PASS command"), so the account logs in on a
		// new connection to show that STAT was refused for the state.
		c.Close()
		d := loginAs(ctx, t, a)
		expectOK(cmd(d, "STAT"), "STAT once authenticated")
	})

	// A wrong password for the real account: lockout policies may count
	// it, so the spec needs the disruptive permission on a remote host.
	Spec("keeps the maildrop closed after a failed PASS", IDs("C0003"), Disruptive, func(ctx SpecContext, t *harness.Target) {
		a := need(t.Account(ctx))
		c := authDial(ctx, t)
		expectOK(cmd(c, "USER "+a.User), "USER")
		expectErr(cmd(c, "PASS "+a.Password+"-wrong"), "PASS with a wrong password")
		if closedAfterErr(t, c, 1) {
			return
		}
		expectErr(cmd(c, "STAT"), "STAT after a failed PASS")
		if closedAfterErr(t, c, 2) {
			return
		}
		Expect(loginAgain(c, a)).To(Succeed(), "USER and PASS after the failed attempt")
		expectOK(cmd(c, "STAT"), "STAT once authenticated")
	})
})

// saslMechanisms returns the mechanisms of the SASL capability, read
// where a client would log in (under STLS when the profile wants it).
func saslMechanisms(ctx SpecContext, t *harness.Target) (mechs []string, caps []string) {
	c := authDial(ctx, t)
	m := multi(c, "CAPA")
	expectOK(m.Reply, "CAPA")
	for _, line := range m.Texts() {
		caps = append(caps, line)
		f := strings.Fields(strings.ToUpper(line))
		if len(f) > 0 && f[0] == "SASL" {
			mechs = append(mechs, f[1:]...)
		}
	}
	return mechs, caps
}

// needMechanism ends a spec not applicable when the profile does not
// offer mech.
func needMechanism(t *harness.Target, mech string) {
	if !slices.Contains(t.Profile.SASL, mech) {
		verdict.SkipNotApplicable("the profile does not offer SASL %s (sasl: %v)", mech, t.Profile.SASL)
	}
}

// saslLine sends one SASL client response and reads the server's line.
func saslLine(c *harness.Conn, data []byte) harness.Reply {
	r, err := c.Cmd(base64.StdEncoding.EncodeToString(data))
	Expect(err).NotTo(HaveOccurred(), "reply to a SASL response")
	return r
}

var _ = Describe("MS-STANXPOP3 2.2.2 E0002 login mechanisms", func() {
	Spec("advertises USER and every SASL mechanism of the profile in CAPA", IDs("E0002"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
		if !t.Profile.AnswersCAPA(false) {
			// The specs below log in with each mechanism instead.
			verdict.SkipNotApplicable("the profile has no CAPA before login (capa: %s), so nothing is advertised", t.Profile.CAPA)
		}
		mechs, caps := saslMechanisms(ctx, t)
		for _, want := range t.Profile.SASL {
			Expect(mechs).To(ContainElement(want), "SASL mechanisms in CAPA %q", caps)
		}
		if t.Profile.HasCapability("USER") {
			var tags []string
			for _, l := range caps {
				tags = append(tags, strings.ToUpper(strings.Fields(l + " ")[0]))
			}
			Expect(tags).To(ContainElement("USER"), "CAPA %q", caps)
		}
	})

	Spec("logs in with USER and PASS", IDs("E0002"), Readonly, func(ctx SpecContext, t *harness.Target) {
		if !t.Profile.HasCapability("USER") {
			verdict.SkipNotApplicable("the profile does not offer USER/PASS")
		}
		c, _ := login(ctx, t)
		expectOK(cmd(c, "STAT"), "STAT after USER/PASS")
	})

	Spec("logs in with SASL PLAIN", IDs("E0002"), Readonly, func(ctx SpecContext, t *harness.Target) {
		needMechanism(t, "PLAIN")
		a := need(t.Account(ctx))
		c := authDial(ctx, t)
		// No initial response: the short form fits every command limit.
		r := cmd(c, "AUTH PLAIN")
		Expect(r.Status).To(Equal("+"), "AUTH PLAIN must be answered with a continuation: %q", r)
		r = saslLine(c, []byte("\x00"+a.User+"\x00"+a.Password))
		expectOK(r, "AUTH PLAIN with the right credentials")
		expectOK(cmd(c, "STAT"), "STAT after AUTH PLAIN")
	})

	Spec("logs in with NTLM", IDs("E0002"), Readonly, func(ctx SpecContext, t *harness.Target) {
		needMechanism(t, "NTLM")
		a := need(t.Account(ctx))
		c := authDial(ctx, t)
		r := cmd(c, "AUTH NTLM")
		Expect(r.Status).To(Equal("+"), "AUTH NTLM must be answered with a continuation: %q", r)
		negotiate, err := ntlmssp.NewNegotiateMessage("", "")
		Expect(err).NotTo(HaveOccurred())
		r = saslLine(c, negotiate)
		Expect(r.Status).To(Equal("+"), "the NTLM NEGOTIATE message must be answered with a CHALLENGE: %q", r)
		challenge, err := base64.StdEncoding.DecodeString(strings.TrimSpace(r.Text))
		Expect(err).NotTo(HaveOccurred(), "the CHALLENGE is not base64: %q", r.Text)
		auth, err := ntlmssp.ProcessChallenge(challenge, a.User, a.Password, false)
		Expect(err).NotTo(HaveOccurred(), "the server's NTLM CHALLENGE cannot be answered")
		r = saslLine(c, auth)
		expectOK(r, "NTLM AUTHENTICATE with the right credentials")
		expectOK(cmd(c, "STAT"), "STAT after AUTH NTLM")
	})
})

var _ = Describe("MS-STANXPOP3 2.2.2 C0004 snapshot of the message list at login", func() {
	// needSnapshot ends a spec when the profile expects no snapshot: an
	// exclusive lock keeps the maildrop still instead (RFC 1939 section 4).
	needSnapshot := func(t *harness.Target) {
		if !t.Profile.Snapshot {
			verdict.SkipNotApplicable("the profile expects no snapshot (lock: %s)", t.Profile.Lock)
		}
	}
	// vanished checks the first session after message 1 left the maildrop
	// behind its back: still listed, no longer readable.
	vanished := func(c *harness.Conn, n int, size int64, list []listing) {
		n2, size2 := stat(c)
		Expect([]int64{int64(n2), size2}).To(Equal([]int64{int64(n), size}), "STAT must still show the snapshot")
		Expect(listAll(c, "LIST")).To(Equal(list), "LIST must still show the snapshot")
		expectErr(cmd(c, "RETR 1"), "RETR of a message removed since login")
		m := multi(c, "TOP 1 0")
		expectErr(m.Reply, "TOP of a message removed since login")
		if n >= 2 {
			retr(c, 2)
		}
	}

	Spec("keeps the list of a session when another session deletes a message", IDs("C0004"), Mutating, func(ctx SpecContext, t *harness.Target) {
		needSnapshot(t)
		a := need(t.Account(ctx))
		first := loginAs(ctx, t, a)
		n, size := stat(first)
		needMessages(n, 1)
		list := listAll(first, "LIST")

		second := loginAs(ctx, t, a)
		expectOK(cmd(second, "DELE 1"), "DELE 1 in the second session")
		quitOK(second)

		vanished(first, n, size, list)
		expectOK(cmd(first, "RSET"), "RSET")
		quitOK(first)
	})

	Spec("keeps the list of a session when the store removes a message", IDs("C0004"), Mutating, ReferenceOnly, func(ctx SpecContext, t *harness.Target) {
		needSnapshot(t)
		a := need(t.Account(ctx))
		first := loginAs(ctx, t, a)
		n, size := stat(first)
		needMessages(n, 1)
		list := listAll(first, "LIST")
		ctl := t.Reference().Control
		uids, err := ctl.UIDs(a.User)
		Expect(err).NotTo(HaveOccurred())
		Expect(ctl.Remove(a.User, uids[0])).To(Succeed(), "remove message 1 out of band")
		vanished(first, n, size, list)
	})

	Spec("does not show mail delivered during a session", IDs("C0004"), Mutating, ReferenceOnly, func(ctx SpecContext, t *harness.Target) {
		needSnapshot(t)
		a := need(t.Account(ctx))
		first := loginAs(ctx, t, a)
		n, size := stat(first)
		uids := uidsByNumber(first)
		_, err := t.Reference().Control.Deliver(a.User, []byte("From: a@example.org\r\nTo: b@example.org\r\nSubject: during\r\nDate: Mon, 01 Nov 2026 10:00:00 +0000\r\n\r\narrived during a session\r\n"))
		Expect(err).NotTo(HaveOccurred(), "deliver during the session")
		n2, size2 := stat(first)
		Expect([]int64{int64(n2), size2}).To(Equal([]int64{int64(n), size}), "STAT after a delivery during the session")
		Expect(uidsByNumber(first)).To(Equal(uids), "UIDL after a delivery during the session")
		expectErr(cmd(first, fmt.Sprintf("RETR %d", n+1)), "RETR of the message delivered during the session")
		quitOK(first)

		// A new session takes a new snapshot and sees it.
		later := loginAs(ctx, t, a)
		n3, _ := stat(later)
		Expect(n3).To(Equal(n+1), "a new session sees the delivered message")
	})
})

var _ = Describe("MS-STANXPOP3 2.2.2 C0005 closing after a negative reply", func() {
	// The profile says after how many -ERR replies the server closes (0:
	// never); ten in a row are plenty to tell "never" from "soon".
	const many = 10
	check := func(t *harness.Target, c *harness.Conn, transaction bool, line string) {
		limit := t.Profile.ErrorLimit(transaction)
		for i := 1; i <= max(many, limit); i++ {
			r, err := c.Cmd(line)
			if limit > 0 && i > limit {
				Expect(err).To(HaveOccurred(), "the session must be closed after %d negative replies, but %q got %q", limit, line, r)
				return
			}
			Expect(err).NotTo(HaveOccurred(), "%s number %d: the profile closes after %d negative replies (0: never)", line, i, limit)
			expectErr(r, line)
			if limit > 0 && i == limit {
				_, err := c.ExpectClose()
				Expect(err).NotTo(HaveOccurred(), "the session must be closed after %d negative replies", limit)
				return
			}
		}
		alive(t, c, fmt.Sprintf("%d negative replies", many))
	}

	Spec("keeps or closes the session after negative replies in AUTHORIZATION as the profile says", IDs("C0005"), Readonly, NoLogin, ManyCommands, func(ctx SpecContext, t *harness.Target) {
		check(t, dial(ctx, t), false, "XYZW")
	})

	Spec("keeps or closes the session after negative replies in TRANSACTION as the profile says", IDs("C0005"), Readonly, KeptSession, ManyCommands, func(ctx SpecContext, t *harness.Target) {
		c, _ := session(ctx, t)
		n, _ := stat(c)
		check(t, c, true, fmt.Sprintf("RETR %d", n+1))
	})
})
