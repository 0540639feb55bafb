package harness

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// MaxLineOctets bounds what the client reads as one line. A server that
// sends more without a line end is broken; reading on would let it fill the
// client's memory.
const MaxLineOctets = 1 << 20

// MaxMultiOctets bounds one multi-line response (status line excluded):
// a server that never sends the terminating "." would otherwise fill the
// client's memory one bounded line at a time. It is far above any message
// a test mailbox holds.
const MaxMultiOctets = 64 << 20

// DefaultTimeout bounds each read and write unless a spec sets its own.
const DefaultTimeout = 10 * time.Second

// ErrLineTooLong is returned when a line exceeds MaxLineOctets.
var ErrLineTooLong = fmt.Errorf("line longer than the client's limit of %d octets", MaxLineOctets)

// ErrResponseTooLong is returned when a multi-line response exceeds
// MaxMultiOctets without its terminator.
var ErrResponseTooLong = fmt.Errorf("multi-line response longer than the client's limit of %d MiB", MaxMultiOctets>>20)

// ErrInterrupted is returned by a read or write on a connection whose
// context ended (the spec timed out or the run was interrupted).
var ErrInterrupted = errors.New("connection interrupted")

// Reply is one status line as the server sent it.
type Reply struct {
	// Raw is the line exactly as received, line end included.
	Raw []byte
	// Status is "+OK", "-ERR", "+" (a SASL continuation) or whatever the
	// line began with.
	Status string
	// Text follows the status and one space, without the line end.
	Text string
}

// OK reports a positive status indicator.
func (r Reply) OK() bool { return r.Status == "+OK" }

// Err reports a negative status indicator.
func (r Reply) Err() bool { return r.Status == "-ERR" }

// CRLF reports whether the line ended with CRLF rather than a bare LF.
func (r Reply) CRLF() bool { return bytes.HasSuffix(r.Raw, []byte("\r\n")) }

// Code returns the RFC 2449 response code without brackets ("IN-USE",
// "SYS/TEMP"), or "" when the text does not start with one.
func (r Reply) Code() string {
	if !strings.HasPrefix(r.Text, "[") {
		return ""
	}
	end := strings.IndexByte(r.Text, ']')
	if end < 0 {
		return ""
	}
	return r.Text[1:end]
}

func (r Reply) String() string { return strings.TrimRight(string(r.Raw), "\r\n") }

func parseReply(raw []byte) Reply {
	line := strings.TrimSuffix(strings.TrimSuffix(string(raw), "\n"), "\r")
	status, text, _ := strings.Cut(line, " ")
	return Reply{Raw: raw, Status: status, Text: text}
}

// Multi is a multi-line response.
type Multi struct {
	Reply
	// Lines are the raw lines between the status line and the
	// terminator, still byte-stuffed, each with its line end.
	Lines [][]byte
	// Terminator is the raw terminating line (".\r\n" when correct).
	Terminator []byte
}

// Body removes byte-stuffing and joins the lines: for RETR and TOP it is
// the message as the server holds it, line ends as sent.
func (m Multi) Body() []byte {
	var b bytes.Buffer
	for _, l := range m.Lines {
		if len(l) > 0 && l[0] == '.' {
			l = l[1:]
		}
		b.Write(l)
	}
	return b.Bytes()
}

// Texts returns the lines without line ends and without stuffing, for
// listings such as LIST, UIDL and CAPA.
func (m Multi) Texts() []string {
	out := make([]string, len(m.Lines))
	for i, l := range m.Lines {
		s := strings.TrimSuffix(strings.TrimSuffix(string(l), "\n"), "\r")
		out[i] = strings.TrimPrefix(s, ".")
	}
	return out
}

// Conn is a strict POP3 client connection. It never normalises what it
// sends or receives and records everything in a transcript.
type Conn struct {
	nc net.Conn
	// raw is the TCP connection under nc; deadlines set on it reach a TLS
	// layer too, so interrupt never touches nc, which a handshake replaces.
	raw   net.Conn
	r     *bufio.Reader
	tr    *Transcript
	tlsOn bool
	// tlsState is the TLS session once a handshake is done.
	tlsState *tls.ConnectionState
	// closeWait is ExpectClose's wait.
	closeWait time.Duration
	Timeout   time.Duration
	// Greeting is the first line the server sent.
	Greeting Reply
	// inSASL is true between an AUTH command and its final status, so that
	// every client line in between is redacted.
	inSASL bool
	// guard classifies, tallies and admits every line written (nil: no
	// tally, no refusal).
	guard *LineGuard
	// ctx bounds the connection's life (nil: no bound): once it ends,
	// every read and write fails with ErrInterrupted, and one in progress
	// is cut short.
	ctx    context.Context
	unbind func() bool
	bindMu sync.Mutex
	// seen is what the session did so far, to explain a close (state.go).
	seen sessionSeen
	// clientClosed is set once Close ran.
	clientClosed atomic.Bool
}

func newConn(nc net.Conn, tr *Transcript, tlsOn bool) *Conn {
	return &Conn{nc: nc, raw: nc, r: bufio.NewReaderSize(nc, 64<<10), tr: tr, tlsOn: tlsOn, Timeout: DefaultTimeout, closeWait: closeWaitRemote}
}

// bind ties the connection to ctx: a spec's context ends at its
// SpecTimeout, the probe's at --timeout, and a read blocked on a server
// that trickles or never answers must not outlive either.
func (c *Conn) bind(ctx context.Context) {
	if ctx == nil || ctx.Done() == nil {
		return
	}
	c.bindMu.Lock()
	defer c.bindMu.Unlock()
	if c.unbind != nil {
		c.unbind()
	}
	c.ctx = ctx
	// A kept session is bound to one spec after another (resume): the
	// end of an earlier spec's context, noticed late, must not cut the
	// next spec's reads short.
	c.unbind = context.AfterFunc(ctx, func() {
		c.bindMu.Lock()
		defer c.bindMu.Unlock()
		if c.ctx == ctx {
			_ = c.raw.SetDeadline(time.Now())
		}
	})
}

// interrupted returns ErrInterrupted, with the context's cause, once the
// connection's context has ended.
func (c *Conn) interrupted() error {
	if c.ctx == nil || c.ctx.Err() == nil {
		return nil
	}
	return fmt.Errorf("%w: %v", ErrInterrupted, context.Cause(c.ctx))
}

// setDeadline sets the deadline of the next read (or write, or both) to
// timeout from now, but never past the connection's context.
func (c *Conn) setDeadline(set func(time.Time) error, timeout time.Duration) error {
	if err := c.interrupted(); err != nil {
		return err
	}
	d := time.Now().Add(timeout)
	if c.ctx != nil {
		if dl, ok := c.ctx.Deadline(); ok && dl.Before(d) {
			d = dl
		}
	}
	if err := set(d); err != nil {
		return fmt.Errorf("set deadline: %w", err)
	}
	// The context may have ended between the check and set, after its
	// AfterFunc already moved the deadline: look again.
	return c.interrupted()
}

// ioError explains a failed read or write: interrupted, or nothing
// within the time allowed.
func (c *Conn) ioError(op string, timeout time.Duration, err error) error {
	if ie := c.interrupted(); ie != nil {
		return fmt.Errorf("%s: %w", op, ie)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%s: nothing complete within %v: %w", op, timeout, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// TLS reports whether the connection runs under TLS.
func (c *Conn) TLS() bool { return c.tlsOn }

// ConnectionState returns the TLS state, or nil for a plain connection.
func (c *Conn) ConnectionState() *tls.ConnectionState {
	if tc, ok := c.nc.(*tls.Conn); ok {
		st := tc.ConnectionState()
		return &st
	}
	return nil
}

// Note adds a line of the client's own to the transcript: something the
// evidence needs that did not cross the wire here.
func (c *Conn) Note(s string) { c.tr.note(s) }

// Transcript returns the connection's transcript.
func (c *Conn) Transcript() *Transcript { return c.tr }

// Close closes the connection without QUIT.
func (c *Conn) Close() error {
	c.settle(c.recorder() != nil && c.recorder().settles())
	c.clientClosed.Store(true)
	c.tr.note("client closed the connection")
	return c.nc.Close()
}

// recorder is the recorder of the connection's run, nil for a bare one.
func (c *Conn) recorder() *Recorder {
	if c.guard == nil {
		return nil
	}
	return c.guard.rec
}

// end closes the connection at the end of a spec, without QUIT, settled
// when settle (see Conn.settle).
func (c *Conn) end(settle bool) {
	c.settle(settle)
	_ = c.nc.Close()
}

// settle, when on, half-closes a session in TRANSACTION and reads what
// the server still sends until it closes too, within the wait for a close
// (ExpectClose's): a server that locks the maildrop has then let go of it
// (Recorder.SettleSessions).
func (c *Conn) settle(on bool) {
	if on && c.seen.transaction && !c.seen.closed && !c.clientClosed.Load() {
		// The spec's context ends as the spec does: noticed during the
		// wait, it would cut the wait short (bind).
		c.detach()
		if err := c.CloseWrite(); err == nil {
			drain(c.nc, c.r, c.closeWait)
		}
	}
}

// detach unties the connection from the context it was bound to, so that
// the end of that context no longer interrupts it.
func (c *Conn) detach() {
	c.bindMu.Lock()
	defer c.bindMu.Unlock()
	if c.unbind != nil {
		c.unbind()
		c.unbind = nil
	}
	c.ctx = nil
}

// drain reads r, the reading side of nc, until the server closes, within
// wait.
func drain(nc net.Conn, r io.Reader, wait time.Duration) {
	_ = nc.SetReadDeadline(time.Now().Add(wait))
	_, _ = io.Copy(io.Discard, r)
}

// CloseWrite half-closes the connection when the transport allows it.
func (c *Conn) CloseWrite() error {
	err := halfClose(c.nc)
	if err == nil {
		c.tr.note("client half-closed the connection")
	}
	return err
}

// halfClose half-closes nc when the transport allows it.
func halfClose(nc net.Conn) error {
	type closeWriter interface{ CloseWrite() error }
	if cw, ok := nc.(closeWriter); ok {
		return cw.CloseWrite()
	}
	return errors.New("transport cannot half-close")
}

// SendRaw writes b exactly as given. Each line of b is recorded (and
// redacted) on its own, so a pipelined USER/PASS batch keeps its password
// out of the transcript too. Against a remote host nothing of b is
// written when a line of it belongs to a class the run does not allow
// (ErrNotAllowed).
func (c *Conn) SendRaw(b []byte) error {
	if err := c.readsAllowed(b); err != nil {
		return err
	}
	if err := c.guard.Admit(b); err != nil {
		return err
	}
	for rest := b; len(rest) > 0; {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line = rest[:i+1]
		}
		rest = rest[len(line):]
		c.noteSent(line)
		c.tr.sent(line, c.redactSent(line))
	}
	if err := c.setDeadline(c.nc.SetWriteDeadline, c.Timeout); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if _, err := c.nc.Write(b); err != nil {
		return c.ioError("write", c.Timeout, err)
	}
	return nil
}

// Send writes line followed by CRLF.
func (c *Conn) Send(line string) error { return c.SendRaw([]byte(line + "\r\n")) }

// redactSent decides whether a client line must be hidden in the
// transcript: passwords, APOP digests and every SASL payload.
func (c *Conn) redactSent(b []byte) string {
	if c.inSASL {
		return redactedSASL
	}
	c.inSASL = startsAUTH(string(b))
	if shown, secret := RedactCommand(string(b)); secret {
		return shown
	}
	return ""
}

func cutSep(s string) (before, after string, ok bool) {
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, "", false
	}
	return s[:i], strings.TrimLeft(s[i:], " \t"), true
}

// ReadLine reads one raw line, up to and including LF.
func (c *Conn) ReadLine() ([]byte, error) { return c.readLine(c.Timeout) }

func (c *Conn) readLine(timeout time.Duration) ([]byte, error) {
	if err := c.setDeadline(c.nc.SetReadDeadline, timeout); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	var line []byte
	for {
		frag, err := c.r.ReadSlice('\n')
		if len(frag) > 0 {
			c.guard.Received()
		}
		line = append(line, frag...)
		// MaxLineOctets octets without LF cannot end within the limit:
		// say so now rather than wait for octets that only prove it.
		if len(line) > MaxLineOctets || (err != nil && len(line) >= MaxLineOctets) {
			c.tr.received(line[:256], "<line cut: over the client's limit>")
			return nil, ErrLineTooLong
		}
		if err == nil {
			c.tr.received(line, "")
			c.noteLine(line)
			return line, nil
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if len(line) > 0 {
			c.tr.received(line, "<incomplete line>")
		}
		if errors.Is(err, io.EOF) {
			c.tr.note("server closed the connection")
		}
		c.seen.closed = c.seen.closed || IsServerClose(err)
		return line, c.ioError("read", timeout, err)
	}
}

// ReadReply reads one status line.
func (c *Conn) ReadReply() (Reply, error) {
	raw, err := c.ReadLine()
	if err != nil {
		return Reply{Raw: raw}, err
	}
	r := parseReply(raw)
	if r.Status != "+" {
		c.inSASL = false
	}
	c.noteReply(r)
	c.guard.Reply(r.Status)
	return r, nil
}

// Cmd sends line and reads its status line.
func (c *Conn) Cmd(line string) (Reply, error) {
	if err := c.Send(line); err != nil {
		return Reply{}, err
	}
	return c.ReadReply()
}

// ReadMulti reads a status line and, when it is positive, the lines up to
// the terminator.
func (c *Conn) ReadMulti() (Multi, error) {
	r, err := c.ReadReply()
	m := Multi{Reply: r}
	if err != nil || !r.OK() {
		return m, err
	}
	return c.readBlock(m)
}

func (c *Conn) readBlock(m Multi) (Multi, error) {
	total := 0
	for {
		raw, err := c.ReadLine()
		if err != nil {
			return m, fmt.Errorf("multi-line response not terminated: %w", err)
		}
		if total += len(raw); total > MaxMultiOctets {
			c.tr.note(fmt.Sprintf("multi-line response cut after %d lines, %d octets: no terminator within the client's limit", len(m.Lines), total))
			m.Lines = nil // the evidence is the transcript; free the memory
			return m, fmt.Errorf("multi-line response not terminated: %w", ErrResponseTooLong)
		}
		if len(raw) > 0 && raw[0] == '.' {
			rest := strings.TrimRight(string(raw[1:]), "\r\n")
			if rest == "" {
				m.Terminator = raw
				return m, nil
			}
		}
		m.Lines = append(m.Lines, raw)
	}
}

// CmdMulti sends line and reads a multi-line response.
func (c *Conn) CmdMulti(line string) (Multi, error) {
	if err := c.Send(line); err != nil {
		return Multi{}, err
	}
	return c.ReadMulti()
}

// Waits for a close the server owes now (after QUIT, after the error
// that ends a session): the bundled server closes within milliseconds on
// loopback, so waiting long there only slows every spec that finds a
// server not closing; a remote host gets room for the network.
const (
	closeWaitReference = 1500 * time.Millisecond
	closeWaitRemote    = 5 * time.Second
)

// ExpectClose waits for a close the server owes now, as long as suits the
// target (see closeWaitReference), and returns the lines it sent
// meanwhile.
func (c *Conn) ExpectClose() ([][]byte, error) { return c.ExpectClosed(c.closeWait) }

// ExpectClosed waits up to d for the server to close the connection and
// returns the lines it sent meanwhile. It fails when the connection is
// still open after d.
func (c *Conn) ExpectClosed(d time.Duration) ([][]byte, error) {
	deadline := time.Now().Add(d)
	var got [][]byte
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return got, fmt.Errorf("connection still open after %v", d)
		}
		line, err := c.readLine(left)
		if err == nil {
			got = append(got, line)
			continue
		}
		if len(line) > 0 {
			got = append(got, line)
		}
		if errors.Is(err, ErrInterrupted) {
			return got, err
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return got, fmt.Errorf("connection still open after %v", d)
		}
		// EOF or a reset: the server closed.
		return got, nil
	}
}

// Quiet checks that the server sends nothing for d. It returns what
// arrived, if anything, and whether the connection was closed meanwhile.
func (c *Conn) Quiet(d time.Duration) (unsolicited []byte, closed bool) {
	line, err := c.readLine(d)
	if err == nil {
		return line, false
	}
	var ne net.Error
	if errors.Is(err, ErrInterrupted) || (errors.As(err, &ne) && ne.Timeout()) {
		return line, false
	}
	return line, true
}

// StartTLS sends STLS and, after +OK, runs the TLS handshake on the same
// connection. The returned reply is the answer to STLS.
func (c *Conn) StartTLS(cfg *tls.Config) (Reply, error) {
	r, err := c.Cmd("STLS")
	if err != nil || !r.OK() {
		return r, err
	}
	return r, c.Handshake(cfg)
}

// Handshake runs a client TLS handshake on the connection now, for specs
// that write STLS themselves (for instance pipelined with more commands)
// and read its reply before upgrading. Octets the server sent after that
// reply but before the handshake are a protocol error (they would be
// read as if they came under TLS): they are kept in the transcript and
// the handshake is refused.
func (c *Conn) Handshake(cfg *tls.Config) error {
	if n := c.r.Buffered(); n > 0 {
		extra, _ := c.r.Peek(n)
		c.tr.received(extra, "<sent by the server between +OK and the TLS handshake>")
		return fmt.Errorf("server sent %d octets after +OK to STLS, before the TLS handshake", n)
	}
	return c.handshake(cfg)
}

func (c *Conn) handshake(cfg *tls.Config) error {
	tc := tls.Client(c.nc, cfg)
	if err := c.setDeadline(tc.SetDeadline, c.Timeout); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	if err := tc.Handshake(); err != nil {
		if cv := (*tls.CertificateVerificationError)(nil); errors.As(err, &cv) {
			err = fmt.Errorf("TLS handshake: %v: %w", err, ErrCertificate)
		} else {
			err = c.ioError("TLS handshake", c.Timeout, err)
		}
		c.tr.note(err.Error())
		return err
	}
	_ = tc.SetDeadline(time.Time{})
	st := tc.ConnectionState()
	c.tr.note(fmt.Sprintf("TLS handshake done: %s, %s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite)))
	c.nc = tc
	c.r = bufio.NewReaderSize(tc, 64<<10)
	c.tlsOn = true
	c.tlsState = &st
	return nil
}

// TLSState returns the TLS session of the connection, once it has one.
func (c *Conn) TLSState() (tls.ConnectionState, bool) {
	if c.tlsState == nil {
		return tls.ConnectionState{}, false
	}
	return *c.tlsState, true
}

// Quit sends QUIT and reads its reply.
func (c *Conn) Quit() (Reply, error) { return c.Cmd("QUIT") }
