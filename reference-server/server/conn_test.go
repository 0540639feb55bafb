package server

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/pop3conformance/pop3conformance/model/profile"
)

func TestReadLine(t *testing.T) {
	const max = 12
	tests := []struct {
		name  string
		in    string
		lines []string // "ERR:too-long" marks errLineTooLong
		final error
	}{
		{"crlf", "STAT\r\nNOOP\r\n", []string{"STAT", "NOOP"}, io.EOF},
		{"bare LF ends a line", "STAT\nNOOP\r\n", []string{"STAT", "NOOP"}, io.EOF},
		{"exactly max with CRLF", "USER abcde\r\n", []string{"USER abcde"}, io.EOF},
		{"max+1 with CRLF", "USER abcdef\r\nNOOP\r\n", []string{"ERR:too-long", "NOOP"}, io.EOF},
		{"max with bare LF", "USER abcdef\n", []string{"USER abcdef"}, io.EOF},
		{"CR counts", "USER abcde\r\r\n", []string{"ERR:too-long"}, io.EOF},
		{"empty line", "\r\n", []string{""}, io.EOF},
		{"EOF mid-line", "STAT", nil, io.ErrUnexpectedEOF},
		{"EOF while discarding", strings.Repeat("x", 100), nil, io.ErrUnexpectedEOF},
		{"huge line then command", strings.Repeat("x", 1<<20) + "\r\nNOOP\r\n", []string{"ERR:too-long", "NOOP"}, io.EOF},
		{"NUL is kept for the parser", "NO\x00OP\r\n", []string{"NO\x00OP"}, io.EOF},
		{"stray CR kept for the parser", "NO\rOP\r\n", []string{"NO\rOP"}, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(tt.in), 16)
			var buf []byte
			for _, want := range tt.lines {
				line, err := readLine(br, max, buf)
				if want == "ERR:too-long" {
					if !errors.Is(err, errLineTooLong) {
						t.Fatalf("got %q, %v; want errLineTooLong", line, err)
					}
					continue
				}
				if err != nil || string(line) != want {
					t.Fatalf("got %q, %v; want %q", line, err, want)
				}
			}
			if _, err := readLine(br, max, buf); !errors.Is(err, tt.final) {
				t.Fatalf("final error %v, want %v", err, tt.final)
			}
		})
	}
}

// TestReadLineBoundedMemory: discarding an over-long line keeps nothing
// beyond the reader's buffer.
func TestReadLineBoundedMemory(t *testing.T) {
	br := bufio.NewReaderSize(io.MultiReader(
		io.LimitReader(zeros{}, 64<<20), strings.NewReader("\r\nSTAT\r\n")), 4096)
	buf := make([]byte, 0, 512)
	if _, err := readLine(br, 512, buf); !errors.Is(err, errLineTooLong) {
		t.Fatalf("err %v", err)
	}
	line, err := readLine(br, 512, buf)
	if err != nil || string(line) != "STAT" {
		t.Fatalf("%q %v", line, err)
	}
	if cap(line) > 512 {
		t.Fatalf("buffer grew to %d", cap(line))
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

func TestParseCommand(t *testing.T) {
	single, spaceTab := profile.SeparatorsSingleSpace, profile.SeparatorsSpaceOrTab
	tests := []struct {
		sep  profile.Separators
		in   string
		kw   string
		args []string
		rest string
		err  error
	}{
		{single, "STAT", "STAT", nil, "", nil},
		{single, "stat", "STAT", nil, "", nil},
		{single, "UsEr alice", "USER", []string{"alice"}, "alice", nil},
		{single, "TOP 1 10", "TOP", []string{"1", "10"}, "1 10", nil},
		{single, "PASS two words", "PASS", []string{"two", "words"}, "two words", nil},
		{single, "USER  alice", "USER", nil, "", errSeparator},
		{single, "USER alice ", "USER", nil, "", errSeparator},
		{single, "USER\talice", "", nil, "", nil}, // TAB is no separator: unknown keyword
		{single, " STAT", "", nil, "", errSeparator},
		{spaceTab, "USER\talice", "USER", []string{"alice"}, "alice", nil},
		{spaceTab, "USER \t alice", "USER", []string{"alice"}, "alice", nil},
		{spaceTab, "TOP\t\t1  10 ", "TOP", []string{"1", "10"}, "1  10 ", nil},
		{spaceTab, "PASS  two  words ", "PASS", []string{"two", "words"}, "two  words ", nil},
		{spaceTab, "STAT\t", "STAT", nil, "", nil},
		{spaceTab, "\tSTAT", "", nil, "", errSeparator},
		{spaceTab, "", "", nil, "", errEmptyLine},
		{spaceTab, "ST\x00AT", "", nil, "", errBadOctet},
		{spaceTab, "USER a\rb", "", nil, "", errBadOctet},
		{spaceTab, "ST\xffAT", "", nil, "", nil},                                   // 8-bit keyword: unknown
		{spaceTab, "USER \xff\xfe", "USER", []string{"\xff\xfe"}, "\xff\xfe", nil}, // opaque argument
		{spaceTab, "NOOP1", "", nil, "", nil},
		{spaceTab, strings.Repeat("A", 17), "", nil, "", nil},
	}
	for _, tt := range tests {
		cmd, err := parseCommand([]byte(tt.in), tt.sep)
		if !errors.Is(err, tt.err) {
			t.Errorf("%s %q: err %v, want %v", tt.sep, tt.in, err, tt.err)
			continue
		}
		if err != nil {
			continue
		}
		if cmd.Keyword != tt.kw || strings.Join(cmd.Args, "|") != strings.Join(tt.args, "|") || cmd.Rest != tt.rest {
			t.Errorf("%s %q: got %q %q %q, want %q %q %q", tt.sep, tt.in, cmd.Keyword, cmd.Args, cmd.Rest, tt.kw, tt.args, tt.rest)
		}
	}
}

func TestStuffer(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a\r\n.b\r\n..\r\n.\r\n", "a\r\n..b\r\n...\r\n..\r\n.\r\n"},
		{".x", "..x\r\n.\r\n"},
		{"", ".\r\n"},
	}
	for _, tt := range tests {
		for _, chunk := range []int{1, 2, 1000} {
			var out bytes.Buffer
			w := bufio.NewWriter(&out)
			st := newStuffer(w)
			for in := tt.in; len(in) > 0; {
				n := min(chunk, len(in))
				st.Write([]byte(in[:n]))
				in = in[n:]
			}
			st.finish()
			w.Flush()
			if out.String() != tt.want {
				t.Errorf("%q in chunks of %d: %q, want %q", tt.in, chunk, out.String(), tt.want)
			}
		}
	}
}

func TestCopyTop(t *testing.T) {
	msg := "A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n"
	for n, want := range map[int]string{
		0:  "A: 1\r\nB: 2\r\n\r\n",
		2:  "A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n",
		99: msg,
	} {
		var out bytes.Buffer
		if err := copyTop(&out, strings.NewReader(msg), n); err != nil || out.String() != want {
			t.Errorf("TOP %d: %q %v", n, out.String(), err)
		}
	}
	// No blank line: all header.
	var out bytes.Buffer
	copyTop(&out, strings.NewReader("A: 1\r\nB: 2\r\n"), 0)
	if out.String() != "A: 1\r\nB: 2\r\n" {
		t.Errorf("headers only: %q", out.String())
	}
}

func TestErrLine(t *testing.T) {
	p, err := profile.Load("exchange2010")
	if err != nil {
		t.Fatal(err)
	}
	p = withCodes(p.Clone())
	if got := errLine(p, codeAuth, "no"); got != "-ERR [AUTH] no" {
		t.Errorf("%q", got)
	}
	if got := errLine(p, "", strings.Repeat("é", 600)); len(got) > p.MaxResponseOctets-2 {
		t.Errorf("line of %d octets", len(got))
	}
	p.Capabilities = nil
	p.ErrText = false
	if got := errLine(p, codeInUse, "locked"); got != "-ERR" {
		t.Errorf("without RESP-CODES and text: %q", got)
	}
}
