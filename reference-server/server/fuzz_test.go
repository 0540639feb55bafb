package server

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pop3conformance/pop3conformance/model/profile"
)

// FuzzCommandReader feeds arbitrary octets to the line reader and the
// parser: no panic, no line over the limit, no terminator inside a line,
// keywords upper-case ASCII, and the reader always makes progress.
func FuzzCommandReader(f *testing.F) {
	for _, s := range []string{
		"STAT\r\n", "USER\talice\r\nPASS two words\r\n", "USER  alice\n", "\x00\r\n",
		"TOP 1 10\r\n", strings.Repeat("x", 600) + "\r\nNOOP\r\n", "\xff\xfe\r\n", "PASS \r\r\n",
	} {
		f.Add([]byte(s), uint16(47), false)
		f.Add([]byte(s), uint16(512), true)
	}
	f.Fuzz(func(t *testing.T, in []byte, maxOctets uint16, spaceOrTab bool) {
		max := 40 + int(maxOctets)%985 // the profile range 40..1024
		sep := profile.SeparatorsSingleSpace
		if spaceOrTab {
			sep = profile.SeparatorsSpaceOrTab
		}
		br := bufio.NewReaderSize(bytes.NewReader(in), 16)
		var buf []byte
		for range len(in) + 1 {
			line, err := readLine(br, max, buf)
			if errors.Is(err, errLineTooLong) {
				continue
			}
			if err != nil {
				if err != io.EOF && err != io.ErrUnexpectedEOF {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if len(line)+1 > max || bytes.IndexByte(line, '\n') >= 0 {
				t.Fatalf("line %q breaks the limit %d or holds LF", line, max)
			}
			cmd, err := parseCommand(line, sep)
			if err != nil {
				continue
			}
			for _, c := range []byte(cmd.Keyword) {
				if c < 'A' || c > 'Z' {
					t.Fatalf("keyword %q", cmd.Keyword)
				}
			}
			for _, a := range cmd.Args {
				if a == "" || strings.ContainsAny(a, " ") || (spaceOrTab && strings.ContainsAny(a, "\t")) {
					t.Fatalf("argument %q from %q", a, line)
				}
			}
		}
		t.Fatal("reader made no progress")
	})
}

// FuzzSession drives a whole session with arbitrary input: the server
// must not crash, and every status line must be CRLF-terminated and at
// most max_response_octets long.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"USER alice\r\nPASS wonderland\r\nSTAT\r\nLIST\r\nUIDL\r\nTOP 2 1\r\nRETR 1\r\nRSET\r\n",
		"AUTH PLAIN\r\nAGFsaWNlAHdvbmRlcmxhbmQ=\r\nLIST 99\r\n",
		"AUTH NTLM\r\nTlRMTVNTUAABAAAABoIIAAAAAAAAAAAAAAAAAAAAAAA=\r\nTlRMTVNTUAADAAAA\r\n",
		"CAPA\r\nAPOP alice 00\r\nUSER\tbob\r\nPASS two words\r\nDELE 1\r\nNOOP\r\n",
		"\x00\xff\r\n" + strings.Repeat("A", 3000) + "\nSTLS\r\n",
	} {
		f.Add([]byte(s))
	}
	p, err := profile.Load("exchange2010")
	if err != nil {
		f.Fatal(err)
	}
	p = p.Clone()
	p.Timers.Unauthenticated = profile.Duration(2 * time.Second)
	p.Timers.Authenticated = profile.Duration(2 * time.Second)
	ts := startServer(f, p)
	f.Fuzz(func(t *testing.T, in []byte) {
		cl, sv := net.Pipe()
		defer cl.Close()
		if !ts.track(sv) {
			t.Skip("server closed")
		}
		go ts.handle(sv, false)
		go func() {
			// QUIT without DELE keeps the fixtures for the next input;
			// RSET first undoes marks the input may have made.
			cl.Write(in)
			cl.Write([]byte("\r\nRSET\r\nQUIT\r\n"))
		}()
		cl.SetReadDeadline(time.Now().Add(5 * time.Second))
		out, _ := io.ReadAll(cl)
		for _, l := range bytes.SplitAfter(out, []byte("\r\n")) {
			if bytes.HasPrefix(l, []byte("+OK")) || bytes.HasPrefix(l, []byte("-ERR")) {
				if len(l) > p.MaxResponseOctets || !bytes.HasSuffix(l, []byte("\r\n")) {
					t.Fatalf("bad status line %q", l)
				}
			}
		}
	})
}
