package harness

// The wire-level guard: every line a client writes is classified before
// it goes out, the classes are tallied per run, and against a remote host
// a line of a class the run did not allow is never written. It backs the
// spec classes of suites/conformance: a spec classified wrongly still
// cannot delete mail or fail a login of the real account.

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
)

// ErrNotAllowed is returned by a write the run's permissions forbid on a
// remote host; specs turn it into "not run" with the flag to set.
var ErrNotAllowed = errors.New("not allowed against this target")

// ErrLoginForbidden is returned by a write that would log a spec declared
// never to log in (conformance.NoLogin) in to a configured account: such
// a spec may run beside specs that change the maildrop. The declaration is
// the suite's to fix, so on the bundled server the spec fails.
var ErrLoginForbidden = fmt.Errorf("%w: the spec is declared never to log in (no-login), and this line carries the right credentials of an account", ErrNotAllowed)

// ErrReadForbidden is returned by a write of a command that reads or
// marks the maildrop's messages (LIST, UIDL, RETR, TOP, DELE) in the
// TRANSACTION state of a spec declared login-only (conformance.LoginOnly):
// such a spec may run beside specs that mark or remove mail, so what it
// judges must not depend on the messages. The declaration is the suite's
// to fix, so the spec fails wherever it runs.
var ErrReadForbidden = errors.New("the spec is declared login-only (it may run beside specs that change the maildrop), and this line reads or marks the maildrop's messages")

// ErrQuitHandedOn refuses QUIT on a session an earlier spec handed on
// after it sent RETR: the spec never knew of that RETR, and a server that
// does not retain retrieved messages (EXPIRE 0, RFC 2449 section 6.7) may
// remove them at UPDATE. Such a spec logs in itself (conformance login).
var ErrQuitHandedOn = fmt.Errorf("%w: QUIT on a session an earlier spec handed on after RETR, which a server with EXPIRE 0 may answer by removing the messages read", ErrNotAllowed)

// CommandClass says what a client line may do to a server.
type CommandClass string

const (
	// ClassRead reads or probes: STAT, LIST, RETR, TOP, UIDL, NOOP, CAPA.
	ClassRead CommandClass = "read"
	// ClassLogin is USER, PASS, APOP, AUTH and its SASL responses, and
	// STLS, with credentials that are right or belong to no configured
	// account.
	ClassLogin CommandClass = "login"
	// ClassFailedLogin carries credentials of a configured account that
	// the server must refuse (a wrong password or digest, a foreign
	// authorisation identity): enough of them may lock the account.
	ClassFailedLogin CommandClass = "failed-login"
	// ClassDele is DELE in any casing with any argument or none.
	ClassDele CommandClass = "dele"
	// ClassReset is RSET.
	ClassReset CommandClass = "reset"
	// ClassQuit is QUIT.
	ClassQuit CommandClass = "quit"
	// ClassHostile is a malformed line: control characters or octets
	// above 127, a line end other than CRLF (or none), or more than 255
	// octets (RFC 2449 section 4).
	ClassHostile CommandClass = "hostile"
	// ClassOther is any other keyword: unknown commands, LAST, XTND, an
	// empty line.
	ClassOther CommandClass = "other"
)

// CommandClasses lists every class, in the order reports show them.
var CommandClasses = []CommandClass{ClassRead, ClassLogin, ClassFailedLogin, ClassDele, ClassReset, ClassQuit, ClassHostile, ClassOther}

// maxCommandOctets is RFC 2449's limit on a command line, CRLF included.
const maxCommandOctets = 255

// keywordClass maps the well-formed keywords onto their classes.
var keywordClass = map[string]CommandClass{
	"STAT": ClassRead, "LIST": ClassRead, "RETR": ClassRead, "TOP": ClassRead,
	"UIDL": ClassRead, "NOOP": ClassRead, "CAPA": ClassRead,
	"USER": ClassLogin, "PASS": ClassLogin, "APOP": ClassLogin, "AUTH": ClassLogin, "STLS": ClassLogin,
	"DELE": ClassDele, "RSET": ClassReset, "QUIT": ClassQuit,
}

// wireState is what the classifier remembers of one connection between
// lines: the unfinished line, the last USER name, and an AUTH exchange
// under way.
type wireState struct {
	pending []byte
	user    string
	// mech is the SASL mechanism of an exchange under way ("" when none);
	// step counts the client responses sent in it.
	mech string
	step int
	// right is the configured account whose right password the last
	// write sent, alone, in PASS or a PLAIN or LOGIN response ("" when
	// none): a refusal of it after the run's own failed logins may be a
	// lockout (Recorder.Lockout).
	right string
}

// LineGuard classifies, tallies and admits the lines written on one
// connection. Conn uses one for every write; specs that write on a
// connection of their own (a raw socket, a third-party client) pass each
// write through Admit first.
type LineGuard struct {
	rec *Recorder
	// accounts are the configured accounts of a remote host: their
	// failed logins count as failed-login.
	accounts []Account
	// enforce is true on a remote host, where allow decides.
	enforce bool
	allow   Permissions
	ws      wireState
	// greeting is the server's greeting text, for APOP digests.
	greeting string
	// note records a refusal in the connection's transcript (may be nil).
	note func(string)
	// awaiting is true from a write until the next octets from the
	// server: the client waits on the network, one round trip.
	awaiting atomic.Bool
	// noQuit is set on a session an earlier spec handed on after RETR
	// (Target.Session): its QUIT is refused.
	noQuit bool
	// raw is set on the guard of a connection a spec dialled itself;
	// closed once it says the connection is closed (Closed).
	raw    bool
	closed atomic.Bool
}

// Closed tells the guard of a connection a spec dialled itself that the
// connection is closed: it no longer counts against the connections the
// process may hold (Target.DialAhead).
func (l *LineGuard) Closed() {
	if l != nil {
		l.closed.Store(true)
	}
}

// isQuit reports whether a complete line is a QUIT command.
func isQuit(line []byte) bool {
	kw, _, _ := cutSep(string(bytes.TrimRight(line, "\r\n")))
	return strings.EqualFold(kw, "QUIT")
}

// LineGuard returns a guard for one new connection to the target:
// against a remote host it enforces the run's permissions and knows the
// configured accounts; on the bundled server (the suite's own) it only
// tallies. The recorder counts what it lets through.
func (t *Target) LineGuard() *LineGuard { return t.lineGuard(true, true) }

// lineGuard is LineGuard; opened says whether the guard's connection
// counts as opened now (one opened ahead was counted when it was), raw
// whether the spec speaks on it without a Conn.
func (t *Target) lineGuard(opened, raw bool) *LineGuard {
	g := &LineGuard{rec: t.rec, raw: raw}
	if t.ref == nil {
		c := t.Config
		g.enforce, g.allow = true, c.Allow
		g.accounts = []Account{{User: c.User, Password: c.Password}, {User: c.User2, Password: c.Password2}}
	}
	t.rec.guard(g, opened)
	return g
}

// SetGreeting tells the guard the server's greeting text, whose APOP
// timestamp decides whether an APOP digest is right.
func (l *LineGuard) SetGreeting(text string) {
	if l != nil {
		l.greeting = text
	}
}

// Reply tells the guard the status of a server reply: any but a SASL
// continuation ends an AUTH exchange.
func (l *LineGuard) Reply(status string) {
	if l == nil {
		return
	}
	l.Received()
	if status != "+" {
		l.ws.mech, l.ws.step = "", 0
	}
}

// Received tells the guard that octets arrived from the server: the
// first after a write ends one round trip, which the recorder counts.
func (l *LineGuard) Received() {
	if l != nil && l.awaiting.Swap(false) && l.rec != nil {
		l.rec.roundTrip()
	}
}

// permits says whether the run may send a line of class c.
func (l *LineGuard) permits(c CommandClass) error {
	if l == nil || !l.enforce {
		return nil
	}
	switch {
	case c == ClassDele && !l.allow.AllowsReversible():
		return fmt.Errorf("%w: DELE marks mail deleted; allow with %s=reversible (probe: --allow-reversible)", ErrNotAllowed, EnvAllow)
	case c == ClassFailedLogin && !l.allow.Disruptive:
		return fmt.Errorf("%w: a failed login of a configured account may lock it out; allow with %s=disruptive (probe: --allow-disruptive)", ErrNotAllowed, EnvAllow)
	}
	return nil
}

// Admit classifies the lines of b as the server will read them, after
// whatever part of a line earlier writes left unfinished. It returns
// ErrNotAllowed, and b must not be written, when a line of b belongs to a
// class the run does not allow on this target. Otherwise it tallies the
// lines b completes and keeps the state. A refused write leaves both
// untouched, so nothing of b goes out. A nil guard admits everything.
func (l *LineGuard) Admit(b []byte) error {
	if l == nil {
		return nil
	}
	st := l.ws
	st.pending = bytes.Clone(st.pending)
	var done []CommandClass
	for rest := b; len(rest) > 0; {
		frag := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			frag = rest[:i+1]
		}
		rest = rest[len(frag):]
		line := append(st.pending, frag...)
		complete := line[len(line)-1] == '\n'
		before := st
		class := l.classify(&st, line, complete)
		err := l.permits(class)
		if err == nil && complete && l.rec != nil {
			if issued, forbid := l.rec.forbidsLogin(); forbid && l.logsIn(before, issued, line) {
				err = ErrLoginForbidden
			}
		}
		if err == nil && complete && l.noQuit && isQuit(line) {
			err = ErrQuitHandedOn
		}
		if err != nil {
			if l.rec != nil {
				l.rec.refuse(class, err)
			}
			if l.note != nil {
				l.note(fmt.Sprintf("not sent (%s): %s", class, err))
			}
			return err
		}
		if complete {
			done = append(done, class)
			st.pending = nil
		} else {
			st.pending = line
		}
	}
	if len(done) != 1 {
		st.right = "" // a reply cannot be matched to one line of several
	}
	l.ws = st
	if len(b) > 0 {
		l.awaiting.Store(true)
	}
	if l.rec != nil {
		l.rec.tally(done...)
	}
	return nil
}

// classify returns the class of line (complete when it ends in LF) and
// updates st with what the line tells about the session. A DELE anywhere
// a lenient server could see one wins over every other class, then a
// failed login, then malformation.
func (l *LineGuard) classify(st *wireState, line []byte, complete bool) CommandClass {
	text := string(bytes.TrimRight(line, "\r\n"))
	if hasDele(line) {
		return ClassDele
	}
	if complete {
		st.right = ""
	}
	inSASL := st.mech != ""
	kw, arg, _ := cutSep(text)
	kw = strings.ToUpper(kw)
	var class CommandClass
	switch {
	case inSASL:
		class = l.saslResponse(st, text, complete)
	case kw == "USER":
		if complete {
			st.user = strings.TrimRight(arg, " \t")
		}
		class = ClassLogin
	case kw == "PASS":
		var right string
		class, right = l.passClass(st.user, text)
		st.keepRight(right, complete)
	case kw == "APOP":
		class = l.apopClass(arg)
	case kw == "AUTH":
		class = l.authClass(st, arg, complete)
	default:
		var ok bool
		if class, ok = keywordClass[kw]; !ok {
			class = ClassOther
		}
	}
	if class != ClassFailedLogin && malformed(line, complete) {
		return ClassHostile
	}
	return class
}

// logsIn reports whether line, complete, carries the right credentials of
// a configured account or of one of extra, given the connection's state
// before it.
func (l *LineGuard) logsIn(st wireState, extra []Account, line []byte) bool {
	g := &LineGuard{accounts: append(slices.Clone(l.accounts), extra...), greeting: l.greeting}
	g.classify(&st, line, true)
	return st.right != ""
}

// hasDele reports whether a server could read DELE in line: its keyword,
// after leading blanks, is DELE in any casing, here or after a bare CR
// that a lenient server takes for a line end.
func hasDele(line []byte) bool {
	for _, seg := range bytes.Split(line, []byte("\r")) {
		seg = bytes.TrimLeft(seg, " \t\x00\n")
		n := 0
		for n < len(seg) && isLetter(seg[n]) {
			n++
		}
		if strings.EqualFold(string(seg[:n]), "DELE") {
			return true
		}
	}
	return false
}

func isLetter(b byte) bool { return (b|0x20) >= 'a' && (b|0x20) <= 'z' }

// malformed reports a line no RFC 1939 client would send.
func malformed(line []byte, complete bool) bool {
	if !complete || len(line) > maxCommandOctets || !bytes.HasSuffix(line, []byte("\r\n")) {
		return true
	}
	for _, b := range line[:len(line)-2] {
		if (b < 0x20 && b != '\t') || b >= 0x7f {
			return true
		}
	}
	return false
}

// account returns the configured account named user, if any. Servers may
// fold the case of names, so the comparison does too.
func (l *LineGuard) account(user string) (Account, bool) {
	for _, a := range l.accounts {
		if a.User != "" && strings.EqualFold(a.User, user) {
			return a, true
		}
	}
	return Account{}, false
}

// answered tells the recorder the reply to the last write, when that was
// a configured account's right password.
func (l *LineGuard) answered(r Reply) {
	if l == nil || l.rec == nil || l.ws.right == "" {
		return
	}
	switch {
	case r.OK():
		l.rec.acceptedRightLogin(l.ws.right)
	case r.Err():
		l.rec.refusedRightLogin(l.ws.right, r)
	}
}

// keepRight notes the configured account whose right credentials a
// complete line carries ("" when none).
func (st *wireState) keepRight(right string, complete bool) {
	if complete && right != "" {
		st.right = right
	}
}

// passClass judges PASS: the password is everything after one separator
// (RFC 1939 lets it hold spaces). right names the configured account
// whose right password it carries.
func (l *LineGuard) passClass(user, text string) (class CommandClass, right string) {
	a, ok := l.account(user)
	if !ok {
		return ClassLogin, ""
	}
	pw := ""
	if len(text) > 4 {
		pw = text[5:]
	}
	if len(text) <= 4 || pw != a.Password {
		return ClassFailedLogin, ""
	}
	return ClassLogin, user
}

// apopClass judges APOP name digest against the greeting's timestamp.
func (l *LineGuard) apopClass(arg string) CommandClass {
	name, digest, _ := cutSep(arg)
	a, ok := l.account(name)
	if !ok {
		return ClassLogin
	}
	g := l.greeting
	i, j := strings.IndexByte(g, '<'), strings.LastIndexByte(g, '>')
	if i < 0 || j < i {
		return ClassFailedLogin
	}
	if !strings.EqualFold(strings.TrimRight(digest, " \t"), APOPDigest(g[i:j+1], a.Password)) {
		return ClassFailedLogin
	}
	return ClassLogin
}

// authClass judges an AUTH line and starts the exchange it opens.
func (l *LineGuard) authClass(st *wireState, arg string, complete bool) CommandClass {
	mech, ir, _ := cutSep(arg)
	mech = strings.ToUpper(mech)
	if complete {
		st.mech, st.step = mech, 0
	}
	if ir == "" {
		return ClassLogin
	}
	return l.saslResponse(st, ir, complete)
}

// saslResponse judges one client response of an AUTH exchange; PLAIN and
// LOGIN carry the password, other mechanisms cannot be judged and count
// as logins.
func (l *LineGuard) saslResponse(st *wireState, text string, complete bool) CommandClass {
	mech, step := st.mech, st.step
	if complete {
		st.step++
	}
	if text == "*" || text == "=" {
		return ClassLogin
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(text))
	if err != nil {
		return ClassLogin
	}
	switch mech {
	case "PLAIN":
		class, right := l.plainClass(string(raw))
		st.keepRight(right, complete)
		return class
	case "LOGIN":
		if step == 0 {
			st.user = string(raw)
			return ClassLogin
		}
		class, right := l.passClass(st.user, "PASS "+string(raw))
		st.keepRight(right, complete)
		return class
	}
	return ClassLogin
}

// plainClass judges an RFC 4616 message: a configured account's name in
// it makes it a failed login unless it is exactly right; right names the
// account when it is.
func (l *LineGuard) plainClass(msg string) (class CommandClass, right string) {
	parts := strings.Split(msg, "\x00")
	if len(parts) == 3 {
		authz, authc, pw := parts[0], parts[1], parts[2]
		if a, ok := l.account(authc); ok && pw == a.Password && (authz == "" || authz == authc) {
			return ClassLogin, authc
		}
	}
	for _, p := range parts {
		if _, ok := l.account(p); ok {
			return ClassFailedLogin, ""
		}
	}
	return ClassLogin, ""
}

// unfinished returns the class of a line left without its end, for the
// tally when the connection is flushed ("" when none).
func (l *LineGuard) unfinished() CommandClass {
	if l == nil || len(l.ws.pending) == 0 {
		return ""
	}
	st := l.ws
	return l.classify(&st, st.pending, false)
}
