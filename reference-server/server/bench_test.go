package server

// Micro-benchmarks of the hot paths (issue 6): the command reader, the
// dot-stuffing writer, and whole sessions against an in-process server.
// go test -run='^$' -bench=. -benchmem ./reference-server/server

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/pop3conformance/pop3conformance/model/profile"
)

func BenchmarkReadLine(b *testing.B) {
	input := bytes.Repeat([]byte("RETR 1\r\nUIDL\r\nPASS two words\r\nSTAT\r\n"), 1024)
	r := bytes.NewReader(input)
	br := bufio.NewReader(r)
	buf := make([]byte, 0, 512)
	b.SetBytes(int64(len(input)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(input)
		br.Reset(r)
		for {
			if _, err := readLine(br, 512, buf); err != nil {
				break
			}
		}
	}
}

func BenchmarkParseCommand(b *testing.B) {
	lines := [][]byte{[]byte("RETR 1"), []byte("USER alice"), []byte("PASS two words"), []byte("STAT"), []byte("TOP 3 10")}
	b.ReportAllocs()
	for b.Loop() {
		for _, l := range lines {
			if _, err := parseCommand(l, profile.SeparatorsSpaceOrTab); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// benchMessage is a CRLF message of about size octets in which every 7th
// line starts with "." (as probe/bench's messages).
func benchMessage(size int) []byte {
	var m bytes.Buffer
	m.WriteString("From: a@example.test\r\nSubject: bench\r\n\r\n")
	for i := 0; m.Len() < size; i++ {
		if i%7 == 3 {
			m.WriteString(".")
		}
		fmt.Fprintf(&m, "%06d The quick brown fox jumps over the lazy dog; pack my box with\r\n", i)
	}
	return m.Bytes()
}

func BenchmarkStuffer(b *testing.B) {
	for _, size := range []int{4 << 10, 300 << 10, 20 << 20} {
		msg := benchMessage(size)
		b.Run(fmt.Sprint(size>>10, "KiB"), func(b *testing.B) {
			bw := bufio.NewWriterSize(io.Discard, 4096)
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				st := newStuffer(bw)
				if _, err := io.Copy(st, bytes.NewReader(msg)); err != nil {
					b.Fatal(err)
				}
				if err := st.finish(); err != nil {
					b.Fatal(err)
				}
				bw.Flush()
			}
		})
	}
}

// BenchmarkRetr streams RETR of one message over loopback TCP from an
// in-process server (MB/s is octets of the message).
func BenchmarkRetr(b *testing.B) {
	for _, size := range []int{300 << 10, 20 << 20} {
		b.Run(fmt.Sprint(size>>10, "KiB"), func(b *testing.B) {
			ts := startServer(b, loadProfile(b, "exchange2010"))
			msg := benchMessage(size)
			if err := ts.store.AddUser("retr", "pw", ""); err != nil {
				b.Fatal(err)
			}
			if _, err := ts.store.Deliver("retr", msg); err != nil {
				b.Fatal(err)
			}
			c := ts.dial(b)
			c.login("retr", "pw")
			buf := make([]byte, 256<<10)
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				c.send("RETR 1\r\n")
				c.conn.SetReadDeadline(time.Now().Add(time.Minute))
				var tail [5]byte
				for string(tail[:]) != "\r\n.\r\n" {
					n, err := c.r.Read(buf)
					if err != nil {
						b.Fatal(err)
					}
					if n >= 5 {
						copy(tail[:], buf[n-5:n])
					} else {
						copy(tail[:], append(tail[n:], buf[:n]...))
					}
				}
			}
		})
	}
}

// BenchmarkSession is one whole short session: USER/PASS, STAT, UIDL,
// RETR 1, QUIT.
func BenchmarkSession(b *testing.B) {
	ts := startServer(b, loadProfile(b, "exchange2010"))
	if err := ts.store.AddUser("sess", "pw", ""); err != nil {
		b.Fatal(err)
	}
	if _, err := ts.store.Deliver("sess", benchMessage(4096)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		c := ts.dial(b)
		c.login("sess", "pw")
		wantPrefix(b, c.cmd("STAT"), "+OK")
		wantPrefix(b, c.cmd("UIDL"), "+OK")
		c.multi()
		wantPrefix(b, c.cmd("RETR 1"), "+OK")
		if body := c.multi(); len(body) < 4096 {
			b.Fatalf("RETR body of %d octets", len(body))
		}
		wantPrefix(b, c.cmd("QUIT"), "+OK")
		c.conn.Close()
	}
}

// BenchmarkStufferProse has a period in every line, the slow case of the
// dot search.
func BenchmarkStufferProse(b *testing.B) {
	msg := bytes.Repeat([]byte("It was a dark and stormy night. The rain fell in torrents.\r\n.hidden line\r\n"), 4096)
	bw := bufio.NewWriterSize(io.Discard, 4096)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		st := newStuffer(bw)
		st.Write(msg)
		st.finish()
		bw.Flush()
	}
}

// TestStufferChunks checks the stuffer against a line-by-line reference
// under every way of cutting the input.
func TestStufferChunks(t *testing.T) {
	msg := []byte(".a\r\n..b\r\nc.d\r\n\r\n.\r\nend.\r\n.")
	var want bytes.Buffer
	for i, c := range msg {
		if c == '.' && (i == 0 || msg[i-1] == '\n') {
			want.WriteByte('.')
		}
		want.WriteByte(c)
	}
	want.WriteString("\r\n.\r\n")
	for cut := 1; cut <= len(msg); cut++ {
		var got bytes.Buffer
		bw := bufio.NewWriter(&got)
		st := newStuffer(bw)
		for p := msg; len(p) > 0; {
			k := min(cut, len(p))
			st.Write(p[:k])
			p = p[k:]
		}
		st.finish()
		bw.Flush()
		if got.String() != want.String() {
			t.Fatalf("chunks of %d: got %q, want %q", cut, got.String(), want.String())
		}
	}
}
