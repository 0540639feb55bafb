package harness

import (
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
}

func (c *Conn) noteSent(line []byte) {
	if c.inSASL {
		return // a SASL response, not a command
	}
	kw, _, _ := cutSep(strings.TrimRight(string(line), "\r\n"))
	kw = strings.ToUpper(kw)
	c.seen.keyword = kw
	if kw == "AUTH" {
		c.seen.auth = true
	}
}

func (c *Conn) noteReply(r Reply) {
	if r.Status == "+" {
		return // a SASL continuation
	}
	c.seen.status = r.Status
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
