package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"strings"
	"time"
)

// Message builds a deterministic message of about size octets with CRLF
// line ends. Every 7th body line starts with "." so that RETR has to
// byte-stuff throughout.
func Message(size int, tag string) []byte {
	var b bytes.Buffer
	b.Grow(size + 128)
	fmt.Fprintf(&b, "From: Bench Sender <sender@example.test>\r\n")
	fmt.Fprintf(&b, "To: bench@example.test\r\n")
	fmt.Fprintf(&b, "Subject: pop3bench %s\r\n", tag)
	fmt.Fprintf(&b, "Message-ID: <%s@pop3bench.test>\r\n", tag)
	fmt.Fprintf(&b, "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n")
	fmt.Fprintf(&b, "Content-Type: text/plain; charset=us-ascii\r\n\r\n")
	const text = "The quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs."
	for i := 0; b.Len() < size-80; i++ {
		if i%7 == 3 {
			b.WriteString(".")
		}
		fmt.Fprintf(&b, "%06d %s\r\n", i, text[:60])
	}
	return b.Bytes()
}

// StuffedLen is the octets a RETR body of msg puts on the wire (CRLF
// message, byte-stuffed, terminator excluded).
func StuffedLen(msg []byte) int64 {
	n := int64(len(msg))
	if bytes.HasPrefix(msg, []byte(".")) {
		n++
	}
	return n + int64(bytes.Count(msg, []byte("\n.")))
}

// ToLF turns CRLF into LF, as a Maildir keeps messages.
func ToLF(msg []byte) []byte { return bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n")) }

// CannedServer answers each command line with a fixed reply, with no
// state, store or parsing beyond the first word: the round-trip ceiling
// of the sessions/s workload on this machine. RETR returns body (already
// stuffed, CRLF).
func CannedServer(ln net.Listener, body []byte) error {
	retr := append([]byte(fmt.Sprintf("+OK %d octets\r\n", len(body))), body...)
	retr = append(retr, ".\r\n"...)
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go canned(c, retr)
	}
}

func canned(c net.Conn, retr []byte) {
	defer c.Close()
	br := bufio.NewReader(c)
	bw := bufio.NewWriter(c)
	bw.WriteString("+OK canned POP3 ready\r\n")
	bw.Flush()
	for {
		c.SetReadDeadline(time.Now().Add(time.Minute))
		line, err := br.ReadSlice('\n')
		if err != nil {
			return
		}
		kw := ""
		if f := bytes.Fields(line); len(f) > 0 {
			kw = strings.ToUpper(string(f[0]))
		}
		switch kw {
		case "QUIT":
			bw.WriteString("+OK bye\r\n")
			bw.Flush()
			return
		case "STAT":
			bw.WriteString("+OK 1 4096\r\n")
		case "UIDL":
			bw.WriteString("+OK\r\n1 1\r\n.\r\n")
		case "RETR":
			bw.Write(retr)
		default:
			bw.WriteString("+OK\r\n")
		}
		if br.Buffered() == 0 {
			if bw.Flush() != nil {
				return
			}
		}
	}
}
