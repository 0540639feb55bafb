package harness

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"syscall"
)

// sessionSeen is what a connection saw of its session, so that a spec
// whose connection the server closed can tell a close the server may make
// (after a negative reply: RFC 1939 section 4, MS-STANXPOP3 C0005) from
// one nothing explains.
type sessionSeen struct {
	// keyword is the keyword of the last command line sent.
	keyword string
	// auth is true between AUTH and its final status.
	auth bool
	// status is the status of the last reply read ("" before the
	// greeting).
	status string
	// errs counts the -ERR replies since the greeting or the last
	// successful login: servers count the negative replies of each state
	// afresh (C0005).
	errs        int
	transaction bool
	closed      bool
	// owed holds, oldest first, whether each command sent and not yet
	// answered gets a multi-line reply when positive; body is true while
	// such a reply's lines are unread; odd is set by a line that is not a
	// whole command of a known reply shape. Together they say whether
	// the session is in step (keepable).
	owed []bool
	body bool
	odd  bool
	// marked is set by any DELE sent, retr by any RETR: a session that
	// may hold marks is never kept, and one that read mail with RETR is
	// never ended with QUIT by a spec it was handed to.
	marked, retr bool
}

// replyShapes says, for each command keyword, whether a positive reply
// is multi-line without and with an argument.
var replyShapes = map[string][2]bool{
	"STAT": {false, false}, "NOOP": {false, false}, "RSET": {false, false},
	"DELE": {false, false}, "QUIT": {false, false}, "USER": {false, false},
	"PASS": {false, false}, "APOP": {false, false}, "STLS": {false, false},
	"LIST": {true, false}, "UIDL": {true, false}, "CAPA": {true, true},
	"RETR": {true, true}, "TOP": {true, true},
}

// contentKeywords are the commands that read or mark the messages of the
// maildrop.
var contentKeywords = map[string]bool{"LIST": true, "UIDL": true, "RETR": true, "TOP": true, "DELE": true}

// readsAllowed refuses b when the spec is declared login-only and b holds
// a command that reads or marks the maildrop's messages in TRANSACTION
// (ErrReadForbidden).
func (c *Conn) readsAllowed(b []byte) error {
	if r := c.recorder(); r == nil || !c.seen.transaction || c.inSASL || !r.forbidsReads() {
		return nil
	}
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		kw, _, _ := cutSep(strings.TrimRight(string(line), "\r\n"))
		if contentKeywords[strings.ToUpper(kw)] {
			return ErrReadForbidden
		}
	}
	return nil
}

func (c *Conn) noteSent(line []byte) {
	if c.inSASL {
		return // a SASL response, not a command
	}
	kw, arg, _ := cutSep(strings.TrimRight(string(line), "\r\n"))
	kw = strings.ToUpper(kw)
	c.seen.keyword = kw
	switch kw {
	case "AUTH":
		c.seen.auth = true
	case "DELE":
		c.seen.marked = true
	case "RETR":
		c.seen.retr = true
	}
	shape, known := replyShapes[kw]
	if kw == "AUTH" && arg != "" {
		// AUTH without a mechanism lists them on some servers: odd.
		shape, known = [2]bool{}, true
	}
	if !known || !bytes.HasSuffix(line, []byte("\n")) {
		c.seen.odd = true
	}
	c.seen.owed = append(c.seen.owed, shape[min(len(arg), 1)])
}

func (c *Conn) noteReply(r Reply) {
	if r.Status == "+" {
		return // a SASL continuation
	}
	greeting := c.seen.status == ""
	c.seen.status = r.Status
	if greeting && len(c.seen.owed) == 0 {
		// The greeting answers no command.
	} else if len(c.seen.owed) == 0 {
		c.seen.odd = true // a reply to no command
	} else {
		c.seen.body = c.seen.owed[0] && r.OK()
		c.seen.owed = c.seen.owed[1:]
	}
	if c.seen.keyword == "PASS" || c.seen.auth {
		c.guard.answered(r)
	}
	login := c.seen.auth || c.seen.keyword == "PASS" || c.seen.keyword == "APOP"
	c.seen.auth = false
	switch {
	case r.Err():
		c.seen.errs++
	case r.OK() && login && !c.seen.transaction:
		c.seen.transaction, c.seen.errs = true, 0
	}
}

// noteLine ends a multi-line reply at its terminator, however the spec
// read its lines.
func (c *Conn) noteLine(line []byte) {
	if c.seen.body && (string(line) == ".\r\n" || string(line) == ".\n") {
		c.seen.body = false
	}
}

// InStep reports whether the session could serve another spec as if it
// had just logged in: in TRANSACTION, open at both ends, no negative
// reply since the login, every command answered and every multi-line
// reply read to its terminator, nothing unread, and no line sent that is
// not a whole command whose reply shape is known.
func (c *Conn) InStep() bool {
	s := c.seen
	return s.transaction && !s.closed && !c.clientClosed.Load() && s.errs == 0 &&
		len(s.owed) == 0 && !s.body && !s.odd && !s.marked && !s.auth && !c.inSASL &&
		s.keyword != "QUIT" && c.r.Buffered() == 0
}

// ErrReplies counts the -ERR replies on the connection since the greeting,
// or since the login when the session is in TRANSACTION.
func (c *Conn) ErrReplies() int { return c.seen.errs }

// LastStatus is the status of the last reply read: "+OK", "-ERR", or ""
// when none was read.
func (c *Conn) LastStatus() string { return c.seen.status }

// LastCommand is the keyword of the last command sent, upper-cased.
func (c *Conn) LastCommand() string { return c.seen.keyword }

// InTransaction reports whether a login on the connection succeeded.
func (c *Conn) InTransaction() bool { return c.seen.transaction }

// ServerClosed reports whether a read found the connection closed by the
// server.
func (c *Conn) ServerClosed() bool { return c.seen.closed }

// IsServerClose reports whether err is the server closing the connection
// (end of file, a reset, a write to a closed peer) rather than a timeout
// or an interruption.
func IsServerClose(err error) bool {
	if err == nil || errors.Is(err, ErrInterrupted) {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNABORTED)
}
