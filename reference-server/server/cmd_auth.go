package server

import (
	"crypto/md5"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/reference-server/maildrop"
)

const authFailed = "Logon failure: unknown user name or bad password"

func (s *session) cmdUser(cmd command) {
	if len(cmd.Args) != 1 {
		s.argCount("USER takes exactly one argument: the mailbox name")
		return
	}
	s.user = ""
	name := cmd.Args[0]
	_, exists := s.srv.store.Lookup(name)
	switch {
	case exists && !s.plaintextAllowed():
		// V0010: the mailbox exists but may not log in in clear text.
		s.err("", s.plaintextRefused())
	case !exists && s.prof.UnknownUserReply == profile.ReplyErr:
		s.err("", "No such mailbox")
	default:
		// V0008, V0009: with unknown_user_reply ok the name is only
		// checked at PASS.
		s.user = name
		s.ok(profile.Text(s.prof.Replies.User, "Send your password"))
	}
}

func (s *session) cmdPass(cmd command) {
	if s.user == "" {
		s.err("", profile.Text(s.prof.Replies.WrongState, "Send USER first"))
		return
	}
	name := s.user
	s.user = ""
	password := cmd.Rest
	if !s.prof.PassSpaces {
		if len(cmd.Args) != 1 {
			s.argCount("PASS takes exactly one argument")
			return
		}
		password = cmd.Args[0]
	}
	if password == "" {
		s.argCount("PASS needs a password")
		return
	}
	if !s.plaintextAllowed() {
		// V0010 / RFC 5034 section 4: no clear-text password before TLS,
		// whatever it is; the password is not even checked.
		s.log.Info("login refused: plaintext password before TLS", "mechanism", "USER", "user", name)
		s.err(codeAuth, s.plaintextRefused())
		return
	}
	if s.apopOnly(name) {
		// RFC 1939 section 13: a mailbox that logs in with APOP does not
		// take USER/PASS, or its shared secret would cross the wire in
		// the clear. The password is not checked, so the refusal tells
		// nothing about it.
		s.log.Info("login refused: the mailbox logs in with APOP only", "mechanism", "USER", "user", name)
		s.loginFailed("This mailbox logs in with APOP only")
		return
	}
	if !s.srv.store.CheckPassword(name, password) {
		s.log.Info("login failed", "mechanism", "USER", "user", name)
		s.loginFailed(s.loginFailedText("USER"))
		return
	}
	s.login(name, "USER")
}

func (s *session) cmdAPOP(cmd command) {
	if !s.prof.APOP {
		s.err("", "APOP is not supported")
		return
	}
	if len(cmd.Args) != 2 {
		s.argCount("APOP takes two arguments: name and digest")
		return
	}
	if s.user != "" {
		// RFC 1939 section 7: APOP follows the greeting or a failed USER
		// or PASS, not a USER that was accepted.
		s.err("", "APOP is not allowed while a USER is pending; send PASS or QUIT")
		return
	}
	name, digest := cmd.Args[0], strings.ToLower(cmd.Args[1])
	secret, ok := s.srv.store.Secret(name)
	// RFC 1939 section 13: only mailboxes set to log in with APOP take
	// it; the others use USER/PASS (or SASL) alone.
	ok = ok && s.apopOnly(name)
	sum := md5.Sum([]byte(s.stamp + secret))
	want := hex.EncodeToString(sum[:])
	if subtle.ConstantTimeCompare([]byte(digest), []byte(want)) != 1 || !ok {
		s.log.Info("login failed", "mechanism", "APOP", "user", name)
		s.loginFailed(s.loginFailedText("APOP"))
		return
	}
	s.login(name, "APOP")
}

// apopOnly reports whether name is a mailbox that logs in with APOP
// instead of USER/PASS (RFC 1939 section 13: one method per mailbox).
// Without APOP in the profile every mailbox uses USER/PASS.
func (s *session) apopOnly(name string) bool {
	if !s.prof.APOP {
		return false
	}
	acc, ok := s.srv.store.Lookup(name)
	return ok && acc.Login == maildrop.LoginAPOP
}

// login opens the maildrop of an authenticated user and enters
// TRANSACTION, or answers why it cannot.
func (s *session) login(name, mechanism string) bool {
	acc, ok := s.srv.store.Lookup(name)
	if !ok {
		s.err(codeAuth, s.loginFailedText(mechanism))
		return false
	}
	site := acc.Site
	if site == "" {
		site = defaultSite
	}
	if site != s.srv.site && s.prof.CrossSite == profile.CrossSiteFail {
		// C0010 (Exchange 2007): no proxying to the user's home site. Not
		// [AUTH]: the credentials were right, retrying will not help.
		s.log.Info("login failed: homed in another site", "user", acc.Name, "site", site)
		s.err(codeSysPerm, "Logon failure: the mailbox is homed in another site")
		return false
	}
	if !s.srv.loginAllowed(acc.Name, time.Now()) {
		// RFC 2449 section 8.1.1: the credentials were right, the login
		// came too soon after the last one.
		s.log.Info("login refused: LOGIN-DELAY", "user", acc.Name, "delay", s.prof.LoginDelay.D())
		s.err(codeDelay, fmt.Sprintf("Logins to this mailbox are allowed every %d seconds", int(s.prof.LoginDelay.D()/time.Second)))
		return false
	}
	md, err := s.srv.store.Acquire(acc.Name, s.prof.Lock == profile.LockExclusive)
	if errors.Is(err, maildrop.ErrLocked) {
		s.log.Info("login refused: maildrop locked", "user", acc.Name)
		s.err(codeInUse, "Mailbox is locked by another session")
		return false
	}
	if err != nil {
		s.log.Error("open maildrop", "user", acc.Name, "err", err)
		s.err(codeSysTemp, "Cannot open the mailbox, try again later")
		return false
	}
	s.md = md
	s.msgs = md.Messages()
	s.deleted = make([]bool, len(s.msgs))
	s.state = stateTransaction
	s.errs = 0 // close_after_errors counts per state (C0005)
	s.user = ""
	s.log.Info("login", "user", acc.Name, "mechanism", mechanism, "messages", len(s.msgs))
	n, size := s.totals()
	builtin := fmt.Sprintf("%s has %d messages (%d octets)", acc.Name, n, size)
	if mechanism == "USER" || mechanism == "APOP" {
		s.ok(profile.Text(s.prof.Replies.PassOK, builtin))
	} else {
		s.ok(profile.Text(s.prof.Replies.AuthOK, builtin))
	}
	return true
}

// loginFailedText is the text of a refused login by mechanism: PASS and
// APOP, or AUTH.
func (s *session) loginFailedText(mechanism string) string {
	if mechanism == "USER" || mechanism == "APOP" {
		return profile.Text(s.prof.Replies.PassFailed, authFailed)
	}
	return profile.Text(s.prof.Replies.AuthFailed, authFailed)
}

// plaintextRefused is the text that refuses a clear-text login before
// TLS (V0010).
func (s *session) plaintextRefused() string {
	return profile.Text(s.prof.Replies.PlaintextRefused, "Plaintext login is not permitted on an unencrypted connection; use STLS first")
}

// cmdSTLS starts TLS (RFC 2595 §4).
func (s *session) cmdSTLS(cmd command) {
	switch {
	case !s.prof.STLS || s.implicitTLS && !s.underTLS:
		s.err("", "STLS is not supported")
		return
	case s.underTLS:
		s.err("", "Already under TLS")
		return
	case len(cmd.Args) != 0:
		s.argCount("STLS takes no argument")
		return
	}
	s.ok(profile.Text(s.prof.Replies.STLS, "Begin TLS negotiation"))
	if err := s.bw.Flush(); err != nil {
		s.done = true
		return
	}
	// Anything the client sent after STLS before the handshake is
	// plaintext injected ahead of TLS: drop it (RFC 2595 §4, CVE-2011-0411
	// class).
	if n := s.br.Buffered(); n > 0 {
		s.br.Discard(n)
		s.log.Warn("discarded octets pipelined after STLS", "octets", n)
	}
	tc := tls.Server(s.raw, s.srv.tls)
	s.raw.SetDeadline(time.Now().Add(s.timeout()))
	if err := tc.HandshakeContext(s.srv.ctx); err != nil {
		s.log.Info("STLS handshake failed", "err", err)
		s.done = true
		return
	}
	s.raw.SetDeadline(time.Time{})
	s.setConn(tc)
	s.underTLS = true
	// Forget everything learnt in clear text.
	s.user = ""
}
