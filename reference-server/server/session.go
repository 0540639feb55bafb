package server

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/reference-server/maildrop"
)

// state is the RFC 1939 session state. UPDATE is not a resting state: it
// runs inside QUIT and ends the session.
type state int

const (
	stateAuthorization state = 1 << iota
	stateTransaction
)

func (st state) String() string {
	if st == stateTransaction {
		return "TRANSACTION"
	}
	return "AUTHORIZATION"
}

// Response codes (RFC 2449 §8, RFC 3206).
const (
	codeInUse   = "IN-USE"
	codeSysTemp = "SYS/TEMP"
	codeSysPerm = "SYS/PERM"
	codeAuth    = "AUTH"
	codeDelay   = "LOGIN-DELAY"
)

// handler runs one command; states says where it is valid.
type handler struct {
	states state
	run    func(*session, command)
}

// commands is the dispatch table; it is never modified.
var commands = map[string]handler{
	"USER": {stateAuthorization, (*session).cmdUser},
	"PASS": {stateAuthorization, (*session).cmdPass},
	"APOP": {stateAuthorization, (*session).cmdAPOP},
	"AUTH": {stateAuthorization, (*session).cmdAuth},
	"STLS": {stateAuthorization, (*session).cmdSTLS},
	"CAPA": {stateAuthorization | stateTransaction, (*session).cmdCAPA},
	"QUIT": {stateAuthorization | stateTransaction, (*session).cmdQuit},
	"STAT": {stateTransaction, (*session).cmdStat},
	"LIST": {stateTransaction, (*session).cmdList},
	"RETR": {stateTransaction, (*session).cmdRetr},
	"DELE": {stateTransaction, (*session).cmdDele},
	"NOOP": {stateTransaction, (*session).cmdNoop},
	"RSET": {stateTransaction, (*session).cmdRset},
	"TOP":  {stateTransaction, (*session).cmdTop},
	"UIDL": {stateTransaction, (*session).cmdUIDL},
}

// secretArgs are commands whose arguments are never logged.
var secretArgs = map[string]bool{"PASS": true, "APOP": true, "AUTH": true}

type session struct {
	srv  *Server
	prof *profile.Profile
	log  *slog.Logger

	raw         net.Conn // the TCP connection
	conn        net.Conn // raw, or TLS over it
	br          *bufio.Reader
	bw          *bufio.Writer
	implicitTLS bool
	underTLS    bool
	buf         []byte

	state state
	user  string // name from an accepted USER, waiting for PASS
	stamp string // APOP timestamp, "" when APOP is off

	md      *maildrop.Maildrop
	msgs    []maildrop.Message
	deleted []bool

	errs    int  // -ERR replies in the current state (C0005)
	failed  int  // failed logins in the session (close_after_failed_logins)
	invalid int  // unknown or wrong-state commands (close_after_invalid_commands)
	done    bool // close after the current response
}

func newSession(srv *Server, raw, conn net.Conn, implicitTLS bool, id uint64, log *slog.Logger) *session {
	s := &session{
		srv:         srv,
		prof:        srv.prof,
		log:         log,
		raw:         raw,
		implicitTLS: implicitTLS,
		underTLS:    implicitTLS,
		state:       stateAuthorization,
	}
	s.setConn(conn)
	if s.prof.APOP {
		s.stamp = fmt.Sprintf("<%d.%d.%d@%s>", os.Getpid(), id, time.Now().UnixNano(), srv.hostname)
	}
	return s
}

func (s *session) setConn(c net.Conn) {
	s.conn = c
	s.br = bufio.NewReader(c)
	s.bw = bufio.NewWriter(deadlineWriter{conn: c, timeout: s.timeout})
}

// timeout is the inactivity timer of the current state (V0002).
func (s *session) timeout() time.Duration {
	if s.state == stateTransaction {
		return s.prof.Timers.Authenticated.D()
	}
	return s.prof.Timers.Unauthenticated.D()
}

func (s *session) serve() {
	s.log.Debug("session start", "tls", s.underTLS)
	defer func() {
		if s.md != nil {
			// No QUIT: never UPDATE (RFC 1939 §6, V0003).
			s.md.Close()
		}
		s.bw.Flush()
		s.log.Debug("session end")
	}()
	greeting := s.prof.Greeting
	if s.prof.GreetingBackend {
		greeting += " [" + backendName(s.srv.hostname) + "]"
	}
	if s.stamp != "" {
		greeting += " " + s.stamp
	}
	s.ok(greeting)
	if s.bw.Flush() != nil {
		return
	}
	for !s.done {
		limit := s.prof.CommandLimit(s.state == stateTransaction)
		line, err := s.readLine(limit)
		switch {
		case err == nil:
			s.dispatch(line)
		case errors.Is(err, errLineTooLong):
			s.err("", profile.Text(s.prof.Replies.Overlong, fmt.Sprintf("Command too long: the limit is %d octets including CRLF", limit)))
			if s.prof.OverlongCloses() {
				// overlong_command close: the session ends here.
				s.log.Info("closing after an over-long command", "limit", limit)
				s.done = true
			}
		case isTimeout(err):
			s.autologout()
			return
		default:
			s.log.Debug("connection lost", "err", err)
			return
		}
		// Pipelined commands are answered in order; write them out in one
		// go when the client has nothing more queued.
		if s.done || s.br.Buffered() == 0 {
			if err := s.bw.Flush(); err != nil {
				s.log.Debug("write failed", "err", err)
				return
			}
		}
	}
}

// readLine waits for a line under the inactivity timer: the deadline is
// set afresh for every line, so any received line resets the timer.
func (s *session) readLine(max int) ([]byte, error) {
	if err := s.conn.SetReadDeadline(time.Now().Add(s.timeout())); err != nil {
		return nil, err
	}
	line, err := readLine(s.br, max, s.buf)
	if cap(line) > cap(s.buf) {
		s.buf = line[:0]
	}
	return line, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// autologout ends an idle session: Exchange says why (V0003), RFC 1939
// closes silently. Either way nothing is removed.
func (s *session) autologout() {
	s.log.Info("inactivity timeout", "state", s.state.String(), "after", s.timeout())
	if !s.prof.Timers.Notice {
		return
	}
	s.conn.SetWriteDeadline(time.Now().Add(time.Second))
	s.bw.WriteString(truncate("-ERR "+s.prof.Timers.NoticeText, s.prof.MaxResponseOctets-2) + "\r\n")
	s.bw.Flush()
}

func (s *session) dispatch(line []byte) {
	cmd, err := parseCommand(line, s.prof.Separators)
	switch {
	case errors.Is(err, errBadOctet):
		s.err("", "Invalid command: NUL or bare CR octet")
		return
	case errors.Is(err, errEmptyLine):
		s.err("", "Empty command")
		return
	case errors.Is(err, errSeparator):
		s.err("", profile.Text(s.prof.Replies.UnknownCommand, "Protocol error: "+strings.TrimPrefix(err.Error(), errSeparator.Error()+": ")))
		return
	}
	h, known := commands[cmd.Keyword]
	switch {
	case !known:
		// An unknown line may be a password typed at the wrong moment:
		// log nothing of it.
		s.log.Debug("unknown command", "octets", len(line))
	case secretArgs[cmd.Keyword]:
		s.log.Debug("command", "keyword", cmd.Keyword, "args", len(cmd.Args))
	default:
		s.log.Debug("command", "keyword", cmd.Keyword, "args", cmd.Args)
	}
	if !known {
		s.invalidCommand(profile.Text(s.prof.Replies.UnknownCommand, "Unknown command"))
		return
	}
	if h.states&s.state == 0 {
		s.invalidCommand(profile.Text(s.prof.Replies.WrongState, fmt.Sprintf("%s is not valid in the %s state", cmd.Keyword, s.state)))
		return
	}
	if n := s.prof.MaxArgumentChars; n > 0 {
		for _, a := range cmd.Args {
			if utf8.RuneCountInString(a) > n {
				s.err("", fmt.Sprintf("Argument too long: at most %d characters", n))
				return
			}
		}
	}
	h.run(s, cmd)
}

// invalidCommand answers an unknown or wrong-state command and closes
// after close_after_invalid_commands of them (C0005).
func (s *session) invalidCommand(text string) {
	s.err("", text)
	s.invalid++
	if n := s.prof.CloseAfterInvalidCommands; n > 0 && s.invalid >= n {
		s.log.Info("closing after invalid commands", "count", s.invalid)
		s.done = true
	}
}

// backendName is how Exchange Online names its backend after the
// greeting: base64 of the host name in UTF-16LE.
func backendName(host string) string {
	var b []byte
	for _, u := range utf16.Encode([]rune(host)) {
		b = append(b, byte(u), byte(u>>8))
	}
	return base64.StdEncoding.EncodeToString(b)
}

// ok writes a positive status line.
func (s *session) ok(text string) {
	line := "+OK"
	if text != "" {
		line += " " + text
	}
	s.writeLine(truncate(line, s.prof.MaxResponseOctets-2))
}

// err writes a negative status line and counts it (C0005).
func (s *session) err(code, text string) {
	s.writeLine(errLine(s.prof, code, text))
	s.errs++
	if n := s.prof.ErrorLimit(s.state == stateTransaction); n > 0 && s.errs >= n {
		s.log.Info("closing after negative replies", "count", s.errs)
		s.done = true
	}
}

func (s *session) writeLine(line string) {
	s.bw.WriteString(line)
	s.bw.WriteString("\r\n")
}

// errLine formats "-ERR [CODE] text" for prof: codes only when the
// profile advertises them (RESP-CODES; AUTH-RESP-CODE for [AUTH]; never
// without CAPA), text
// only when the profile gives text (V0001), and never longer than a
// response line may be (C0001).
func errLine(prof *profile.Profile, code, text string) string {
	switch {
	case code == codeAuth && !prof.Announces("AUTH-RESP-CODE"):
		code = ""
	case code != "" && code != codeAuth && !prof.Announces("RESP-CODES"):
		code = ""
	}
	line := "-ERR"
	if code != "" {
		line += " [" + code + "]"
	}
	if prof.ErrText && text != "" {
		line += " " + text
	}
	return truncate(line, prof.MaxResponseOctets-2)
}

// truncate cuts s to at most n octets on a UTF-8 boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// loginFailed answers a failed PASS, APOP or AUTH with -ERR [AUTH] after
// the profile's failed_login_delay (RFC 1939 section 13: slow down
// password guessing). The session sleeps, not the server; Shutdown cuts
// the wait short.
func (s *session) loginFailed(text string) {
	if d := s.prof.FailedLoginDelay.D(); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-s.srv.ctx.Done():
			t.Stop()
			s.done = true
			return
		}
	}
	s.err(codeAuth, text)
	s.failed++
	if n := s.prof.CloseAfterFailedLogins; n > 0 && s.failed >= n {
		s.log.Info("closing after failed logins", "count", s.failed)
		s.done = true
	}
}

// plaintextAllowed says whether USER/PASS and AUTH PLAIN may be used now
// (V0010, RFC 5034 §4).
func (s *session) plaintextAllowed() bool {
	return s.prof.PlaintextLogin(s.underTLS)
}

func (s *session) cmdQuit(cmd command) {
	if s.state == stateTransaction {
		s.update()
		return
	}
	s.ok(profile.Text(s.prof.Replies.Quit, "Bye"))
	s.done = true
}

// copyBody streams r to the client as a byte-stuffed multi-line body.
// size is the message's size: a large body goes out in bodyWriteSize
// writes rather than through the session's 4 KiB writer.
func (s *session) copyBody(r io.Reader, top int, size int64) error {
	bb := bodyBufs.Get().(*bodyBuf)
	defer bodyBufs.Put(bb)
	w := s.bw
	if size > largeBody {
		if err := s.bw.Flush(); err != nil {
			return err
		}
		bb.w.Reset(deadlineWriter{conn: s.conn, timeout: s.timeout})
		defer bb.w.Reset(nil)
		w = bb.w
	}
	st := newStuffer(w)
	var err error
	if top < 0 {
		// Not io.Copy: an *os.File would allocate a 32 KiB buffer per call.
		_, err = io.CopyBuffer(st, struct{ io.Reader }{r}, bb.r)
	} else {
		err = copyTop(st, r, top)
	}
	if err != nil {
		return err
	}
	if err := st.finish(); err != nil {
		return err
	}
	if w != s.bw {
		return w.Flush()
	}
	return nil
}

// Large bodies (RETR, TOP) are read in 128 KiB pieces and written in 256
// KiB ones (fewer system calls; see BenchmarkRetr): the buffers are pooled, so a session holds none of them
// between commands and memory stays bounded whatever the message size.
const (
	largeBody     = 32 << 10
	bodyWriteSize = 256 << 10
)

type bodyBuf struct {
	w *bufio.Writer
	r []byte
}

var bodyBufs = sync.Pool{New: func() any {
	return &bodyBuf{w: bufio.NewWriterSize(nil, bodyWriteSize), r: make([]byte, 128<<10)}
}}
