package server

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/pop3conformance/pop3conformance/model/profile"
)

// Line reading rules. RFC 1939 lines end in CRLF; for bytes the RFCs do not
// cover, the reference server decides as follows (tested in
// conn_test.go):
//
//   - A bare LF ends a line like CRLF, as most servers do, so that a
//     sloppy client still works. The length limit counts the octets
//     actually received, terminator included.
//   - A NUL anywhere in a line, or a CR that is not right before the LF,
//     makes the line invalid: it gets -ERR and nothing else happens.
//   - Other octets, invalid UTF-8 included, are opaque: keywords are ASCII
//     so a garbled keyword is an unknown command, and an argument is
//     compared octet by octet (a password may be in any charset).
//   - A line longer than the limit is answered with one -ERR once its end
//     arrives; the octets past the limit are read and dropped in buffer
//     sized pieces, never kept.

var (
	errLineTooLong = errors.New("line too long")
	errBadOctet    = errors.New("line contains a NUL or a stray CR")
	errEmptyLine   = errors.New("empty command")
	errSeparator   = errors.New("bad separator")
)

// readLine reads one line of at most max octets, terminator included, and
// returns it without the terminator. The returned slice is only valid
// until the next call that reuses buf.
func readLine(br *bufio.Reader, max int, buf []byte) ([]byte, error) {
	buf = buf[:0]
	for len(buf) < max {
		c, err := br.ReadByte()
		if err != nil {
			if err == io.EOF && len(buf) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		buf = append(buf, c)
		if c == '\n' {
			line := buf[:len(buf)-1]
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			}
			return line, nil
		}
	}
	// Over the limit: drop the rest of the line without keeping it.
	for {
		_, err := br.ReadSlice('\n')
		if err == nil {
			return nil, errLineTooLong
		}
		if err != bufio.ErrBufferFull {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// command is one parsed command line.
type command struct {
	// Keyword is upper-cased; "" when the line has no valid keyword.
	Keyword string
	// Args are the separated arguments.
	Args []string
	// Rest is everything after the keyword and the separator that follows
	// it, verbatim: PASS uses it when the profile allows spaces (V0011).
	Rest string
}

// parseCommand splits a line as the profile's separator rule says
// (MS-STANXPOP3 2.1.1). Single space: exactly one SP between keyword and
// arguments, nothing before or after; TAB is not a separator. Space or
// tab: runs of SP and TAB separate, and leading or trailing runs are
// ignored after the keyword. Tab ends keyword: SP or TAB ends the keyword,
// the rest is trimmed and split at each single SP, so a TAB or a second SP
// between arguments changes their number (the Exchange 2013 code). Keywords
// are ASCII letters, case-insensitive.
func parseCommand(line []byte, sep profile.Separators) (command, error) {
	if bytes.IndexByte(line, 0) >= 0 || bytes.IndexByte(line, '\r') >= 0 {
		return command{}, errBadOctet
	}
	if len(line) == 0 {
		return command{}, errEmptyLine
	}
	var cmd command
	isSep := func(c byte) bool { return c == ' ' }
	if sep != profile.SeparatorsSingleSpace {
		isSep = func(c byte) bool { return c == ' ' || c == '\t' }
	}
	i := 0
	for i < len(line) && !isSep(line[i]) {
		i++
	}
	kw := line[:i]
	if len(kw) == 0 {
		return command{}, fmt.Errorf("%w: line starts with a separator", errSeparator)
	}
	cmd.Keyword = keyword(kw)
	if i == len(line) {
		return cmd, nil
	}
	if sep == profile.SeparatorsSpaceOrTab {
		j := i
		for j < len(line) && isSep(line[j]) {
			j++
		}
		cmd.Rest = string(line[j:])
		cmd.Args = strings.FieldsFunc(cmd.Rest, func(r rune) bool { return r == ' ' || r == '\t' })
		return cmd, nil
	}
	cmd.Rest = string(line[i+1:])
	if sep == profile.SeparatorsTabEndsKeyword {
		if t := strings.TrimSpace(cmd.Rest); t != "" {
			cmd.Args = strings.Split(t, " ")
		}
		return cmd, nil
	}
	cmd.Args = strings.Split(cmd.Rest, " ")
	for _, a := range cmd.Args {
		if a == "" {
			return cmd, fmt.Errorf("%w: arguments are separated by exactly one space", errSeparator)
		}
	}
	return cmd, nil
}

// keyword upper-cases an ASCII keyword; anything else (digits, 8-bit
// octets, control characters) yields "", an unknown command.
func keyword(b []byte) string {
	if len(b) > 16 {
		return ""
	}
	out := make([]byte, len(b))
	for i, c := range b {
		switch {
		case c >= 'A' && c <= 'Z':
			out[i] = c
		case c >= 'a' && c <= 'z':
			out[i] = c - 'a' + 'A'
		default:
			return ""
		}
	}
	return string(out)
}

// deadlineConn refreshes the write deadline on every write, so a slow but
// live reader of a large RETR is not cut off while a stalled one is.
type deadlineWriter struct {
	conn    net.Conn
	timeout func() time.Duration
}

func (w deadlineWriter) Write(p []byte) (int, error) {
	if err := w.conn.SetWriteDeadline(time.Now().Add(w.timeout())); err != nil {
		return 0, err
	}
	return w.conn.Write(p)
}

// stuffer applies RFC 1939 byte-stuffing to a multi-line response body:
// a line that starts with "." gets one more ".". It remembers whether the
// next octet starts a line across writes.
type stuffer struct {
	w         *bufio.Writer
	lineStart bool
	last      byte
}

func newStuffer(w *bufio.Writer) *stuffer { return &stuffer{w: w, lineStart: true} }

func (s *stuffer) Write(p []byte) (int, error) {
	n := len(p)
	if n == 0 {
		return 0, nil
	}
	if s.lineStart && p[0] == '.' {
		if err := s.w.WriteByte('.'); err != nil {
			return 0, err
		}
	}
	// Only a "." right after a LF needs another one: look for dots (rare
	// in text, absent from base64) and write everything in between in one
	// piece (RETR's hot path; see BenchmarkStuffer).
	from := 0
	for search := 1; search < n; {
		i := bytes.IndexByte(p[search:], '.')
		if i < 0 {
			break
		}
		dot := search + i
		if p[dot-1] == '\n' {
			if _, err := s.w.Write(p[from:dot]); err != nil {
				return 0, err
			}
			if err := s.w.WriteByte('.'); err != nil {
				return 0, err
			}
			from = dot
		}
		search = dot + 1
	}
	if _, err := s.w.Write(p[from:]); err != nil {
		return 0, err
	}
	s.last = p[n-1]
	s.lineStart = s.last == '\n'
	return n, nil
}

// finish ends the body with CRLF if needed and writes the terminating
// ".".
func (s *stuffer) finish() error {
	if !s.lineStart {
		if _, err := s.w.WriteString("\r\n"); err != nil {
			return err
		}
	}
	_, err := s.w.WriteString(".\r\n")
	return err
}

// copyTop writes the header, the blank line and the first n body lines of
// a message to w (RFC 1939 TOP), reading r one line at a time.
func copyTop(w io.Writer, r io.Reader, n int) error {
	br := bufio.NewReader(r)
	inHeader := true
	lineStart := true
	body := 0
	for {
		if !inHeader && lineStart && body >= n {
			return nil
		}
		frag, err := br.ReadSlice('\n')
		if len(frag) > 0 {
			if inHeader && lineStart && (string(frag) == "\r\n" || string(frag) == "\n") {
				inHeader = false
			} else if !inHeader && lineStart {
				body++
			}
			if _, werr := w.Write(frag); werr != nil {
				return werr
			}
			lineStart = frag[len(frag)-1] == '\n'
		}
		switch err {
		case nil, bufio.ErrBufferFull:
		case io.EOF:
			return nil
		default:
			return err
		}
	}
}
