package conformance

// Helpers that open, log in and end sessions, shared by every spec file.

import (
	"fmt"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// quietWindow is how long a spec listens for octets the server must not
// send.
const quietWindow = 200 * time.Millisecond

// dialUntouched connects without STLS, so that nothing has been sent when
// the spec starts: the plain port when the target has one, otherwise the
// implicit TLS port.
func dialUntouched(ctx SpecContext, t *harness.Target) *harness.Conn {
	var (
		c   *harness.Conn
		err error
	)
	if t.HasPlain() {
		c, err = t.DialPlain(ctx)
	} else {
		c, err = t.DialTLS(ctx)
	}
	needTLS(err)
	ExpectWithOffset(1, err).NotTo(HaveOccurred(), "connect")
	return c
}

// secureForLogin runs STLS on c when the profile refuses plaintext logins
// before TLS (V0010), as a well-behaved client would.
func secureForLogin(c *harness.Conn, t *harness.Target) {
	if t.Profile.NeedsSTLS(c.TLS()) {
		r, err := c.StartTLS(t.TLSConfig())
		needTLS(err)
		ExpectWithOffset(2, err).NotTo(HaveOccurred(), "STLS before a plaintext login")
		ExpectWithOffset(2, r.OK()).To(BeTrue(), "STLS: want +OK, got %q", r.String())
	}
}

// authDial opens a session in AUTHORIZATION ready for USER/PASS: under
// STLS when the profile refuses plaintext logins before TLS.
func authDial(ctx SpecContext, t *harness.Target) *harness.Conn {
	c := dial(ctx, t)
	secureForLogin(c, t)
	return c
}

// plaintextReady is authDial for specs that must send a plaintext
// password: a profile that forbids them before TLS but offers no STLS
// leaves the spec inconclusive (use implicit TLS).
func plaintextReady(ctx SpecContext, t *harness.Target) *harness.Conn {
	c := dial(ctx, t)
	if !t.Profile.PlaintextLogin(c.TLS()) && !t.Profile.STLS {
		verdict.SkipInconclusive("the profile allows plaintext passwords only under TLS but offers no STLS; use %s=implicit", harness.EnvTLS)
	}
	secureForLogin(c, t)
	return c
}

// loginAs logs in as a on a new connection and fails the spec when that
// does not work.
func loginAs(ctx SpecContext, t *harness.Target, a harness.Account) *harness.Conn {
	c, err := t.Login(ctx, a)
	ExpectWithOffset(1, err).NotTo(HaveOccurred(), "log in as %s", a.User)
	return c
}

// loginWith logs in with USER and PASS on an open session in the
// AUTHORIZATION state, with the keywords spelt as given.
func loginWith(c *harness.Conn, t *harness.Target, a harness.Account, user, pass string) {
	secureForLogin(c, t)
	r := cmd(c, user+" "+a.User)
	ExpectWithOffset(1, r.OK()).To(BeTrue(), "%s %s: want +OK, got %q", user, a.User, r.String())
	r = cmd(c, pass+" "+a.Password)
	ExpectWithOffset(1, r.OK()).To(BeTrue(), "%s for %s: want +OK, got %q", pass, a.User, r.String())
}

// loginSoon logs in as a after the spec ended an earlier session without
// waiting for the server: a server that locks the maildrop may notice the
// closed connection a moment later than the client, so a refused login is
// retried briefly whatever the profile says about locks (2.1.3 is judged
// elsewhere).
func loginSoon(ctx SpecContext, t *harness.Target, a harness.Account) *harness.Conn {
	c, err := reLogin(ctx, t, a)
	if err != nil {
		FailHandler(fmt.Sprintf("log in again as %s after the earlier session ended: %v", a.User, err), 1)
	}
	return c
}

// reLogin is loginSoon returning its error, for a Reading that must not
// fail the specs that do not need the new session.
func reLogin(ctx SpecContext, t *harness.Target, a harness.Account) (*harness.Conn, error) {
	deadline := time.Now().Add(3 * time.Second)
	for {
		c, err := t.Login(ctx, a)
		if err == nil {
			return c, nil
		}
		if c != nil {
			c.Close()
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// quitOK ends a session that marked nothing: QUIT must answer +OK.
func quitOK(c *harness.Conn) {
	r, err := c.Quit()
	ExpectWithOffset(1, err).NotTo(HaveOccurred(), "QUIT")
	ExpectWithOffset(1, r.OK()).To(BeTrue(), "QUIT: %q", r.String())
}

// quitAndWait ends a TRANSACTION session with QUIT and waits for the
// server to close, so that UPDATE is over when it returns.
func quitAndWait(c *harness.Conn) harness.Reply {
	r := cmd(c, "QUIT")
	_, err := c.ExpectClose()
	ExpectWithOffset(1, err).NotTo(HaveOccurred(), "the server must close the connection after QUIT")
	return r
}

// errBudget is how many negative replies one session may collect before
// the server may close it (C0005); 0 means no limit. The limit is the
// smaller of the profile's and the one measured before the run
// (errorLimit), and may differ after login (close_after_errors_transaction);
// errBudget is the smaller one, right for a spec whose errors may fall in
// either state. A server may count fewer errors than the profile key (only
// consecutive ones, or only unknown commands), never more, so keeping
// within the budget is always safe.
func errBudget(t *harness.Target) int {
	return minLimit(errBudgetIn(t, false), errBudgetIn(t, true))
}

// errBudgetIn is errBudget for AUTHORIZATION (transaction false) or
// TRANSACTION alone.
func errBudgetIn(t *harness.Target, transaction bool) int {
	if n := errorLimit(t, transaction); n > 0 {
		return n - 1
	}
	return 0
}

// fitsErrBudget reports whether a session in one state may get errs
// negative replies and still serve the commands after them.
func fitsErrBudget(t *harness.Target, transaction bool, errs int) bool {
	n := errorLimit(t, transaction)
	return n == 0 || errs < n
}

// needErrBudget ends the spec when the server may close a session after
// fewer negative replies than the check needs to see before its last
// command (C0005): not applicable when the profile says so, inconclusive
// when only the measurement does.
func needErrBudget(t *harness.Target, errs int) {
	if b := errBudget(t); b > 0 && b < errs {
		skipForBudget(t, measuredSmaller(t, false) || measuredSmaller(t, true), b, errs, "a session")
	}
}

// needErrBudgetTx is needErrBudget for a check whose negative replies all
// come in TRANSACTION.
func needErrBudgetTx(t *harness.Target, errs int) {
	if b := errBudgetIn(t, true); b > 0 && b < errs {
		skipForBudget(t, measuredSmaller(t, true), b, errs, "a TRANSACTION session")
	}
}

func skipForBudget(t *harness.Target, measured bool, budget, errs int, what string) {
	if measured {
		verdict.SkipInconclusive("the server closed %s after %d negative replies when measured before the run (%s in AUTHORIZATION, %s in TRANSACTION); the check needs %d in one session",
			what, budget+1, t.Facts().Authorization, t.Facts().Transaction, errs+1)
	}
	verdict.SkipNotApplicable("the profile closes %s after %d negative replies; the check needs %d in one session", what, budget+1, errs+1)
}

// expectErrs sends each command and expects -ERR, then checks with alive
// that the session still works. A new session is opened with open
// whenever the error budget would let the server close the current one
// (negative replies the session already had count too); end is called on
// a session before it is replaced.
func expectErrs(c *harness.Conn, t *harness.Target, cmds []string, open func() *harness.Conn, end func(*harness.Conn), alive func(*harness.Conn)) *harness.Conn {
	budget := errBudget(t)
	for _, line := range cmds {
		if budget > 0 && c.ErrReplies() >= budget {
			end(c)
			c = open()
		}
		r := cmd(c, line)
		ExpectWithOffset(1, r.Err()).To(BeTrue(), "%q: want -ERR, got %q", redactForMessage(line), r.String())
		alive(c)
	}
	return c
}

// expectStillAuthorization checks that the session is usable and still in
// AUTHORIZATION: STAT is refused (unless that refusal would spend the
// last negative reply the server takes), a login then works.
func expectStillAuthorization(c *harness.Conn, a harness.Account, after string) {
	if n := errorLimit(currentTarget(), false); n == 0 || c.ErrReplies()+1 < n {
		expectErr(cmd(c, "STAT"), "STAT in AUTHORIZATION after "+after)
	}
	ExpectWithOffset(1, loginAgain(c, a)).To(Succeed(), "USER/PASS login after %s", after)
	expectOK(cmd(c, "STAT"), "STAT after logging in")
}

// loginAgain is harness.LoginUserPass on a session that may have had
// negative replies: a close the server may make after them is explained,
// not blamed on the spec's statement (explainClose).
func loginAgain(c *harness.Conn, a harness.Account) error {
	err := harness.LoginUserPass(c, a)
	explainClose(c, c.LastCommand(), err)
	return err
}

// withPlaintextLogin returns the target when the profile allows plaintext
// logins before TLS, otherwise a bundled variant that does. A remote host
// configured otherwise makes the spec inconclusive.
func withPlaintextLogin(ctx SpecContext, t *harness.Target) *harness.Target {
	if t.Profile.PlaintextBeforeTLS {
		return t
	}
	v, err := t.Variant(ctx, func(p *profile.Profile) { p.PlaintextBeforeTLS = true })
	if err != nil && isUnavailable(err) {
		verdict.SkipInconclusive("the profile allows no plaintext login before TLS, so no session reaches TRANSACTION without TLS")
	}
	Expect(err).NotTo(HaveOccurred())
	return v
}

// userBeforeTLS sends USER on a plaintext session that a spec needs only
// to get at something else (STLS after login, state carried over STLS).
// A server that lists no USER capability before STLS and refuses the USER
// keeps passwords off the plaintext wire, as RFC 2595 lets it (Cyrus
// pop3d's default: "-ERR [AUTH] USER command only available under a
// layer"); whether the profile expects that is judged by
// RFC2595-4-stls-capa-refresh, so the spec is inconclusive.
func userBeforeTLS(c *harness.Conn, before capabilities, a harness.Account) {
	r := cmd(c, "USER "+a.User)
	if r.Err() && before.OK && !before.Has("USER") {
		verdict.SkipInconclusive("the server lists no USER capability before STLS and refused USER there (%q), so no plaintext session reaches the state this spec needs", r.String())
	}
	ExpectWithOffset(1, r.OK()).To(BeTrue(), "USER %s in plaintext: want +OK, got %q", a.User, r.String())
}

var freshSeq atomic.Int64

// freshName is a mailbox name no fixture or other spec uses.
func freshName(prefix string) string {
	return fmt.Sprintf("%s%d.%d", prefix, GinkgoParallelProcess(), freshSeq.Add(1))
}

// emptyAccount creates an empty mailbox with the given name and password
// on the bundled server and returns its login.
func emptyAccount(t *harness.Target, name, password string) harness.Account {
	ref := t.Reference()
	ExpectWithOffset(1, ref).NotTo(BeNil())
	ExpectWithOffset(1, ref.Control.AddUser(name, password)).To(Succeed(), "create user %s", name)
	return harness.Account{User: name, Password: password}
}

// sleepCtx waits d unless the spec is interrupted.
func sleepCtx(ctx SpecContext, d time.Duration) {
	select {
	case <-ctx.Done():
		FailHandler("interrupted while waiting")
	case <-time.After(d):
	}
}
