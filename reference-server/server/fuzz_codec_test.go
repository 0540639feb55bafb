package server

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"testing"

	"github.com/emersion/go-sasl"
)

// unstuff reads a multi-line body the way RFC 1939 section 3 tells a
// client to: up to the lone "." line, dropping one leading dot from every
// other line. It is written independently of the server's stuffer so the
// round trip checks one against the other.
func unstuff(t *testing.T, wire []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	for len(wire) > 0 {
		i := bytes.Index(wire, []byte("\r\n"))
		if i < 0 {
			t.Fatalf("body does not end in CRLF: %q", wire)
		}
		line := wire[:i]
		wire = wire[i+2:]
		if string(line) == "." {
			if len(wire) != 0 {
				t.Fatalf("%d octets after the terminator", len(wire))
			}
			return out.Bytes()
		}
		line = bytes.TrimPrefix(line, []byte("."))
		out.Write(line)
		out.WriteString("\r\n")
	}
	t.Fatal("no terminator")
	return nil
}

// FuzzStuffer: stuffing a message and then removing the stuffing gives the
// message back, for any split of the message into writes.
func FuzzStuffer(f *testing.F) {
	f.Add([]byte("Subject: x\r\n\r\n.one\r\n..two\r\n.\r\nend\r\n"), uint8(3))
	f.Add([]byte(".\r\n"), uint8(1))
	f.Add([]byte("no final line end"), uint8(0))
	f.Add([]byte("\r\n.\r\n.\r\n"), uint8(2))
	f.Fuzz(func(t *testing.T, msg []byte, split uint8) {
		// The store keeps CRLF line ends; bare CR and LF never reach the
		// stuffer, so the round trip is defined on CRLF text.
		msg = bytes.ReplaceAll(msg, []byte("\r"), nil)
		msg = bytes.ReplaceAll(msg, []byte("\n"), []byte("\r\n"))
		var wire bytes.Buffer
		bw := bufio.NewWriter(&wire)
		st := newStuffer(bw)
		step := int(split)%7 + 1
		for rest := msg; len(rest) > 0; {
			n := min(step, len(rest))
			if _, err := st.Write(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		if err := st.finish(); err != nil {
			t.Fatal(err)
		}
		if err := bw.Flush(); err != nil {
			t.Fatal(err)
		}
		want := msg
		if len(want) > 0 && !bytes.HasSuffix(want, []byte("\r\n")) {
			want = append(append([]byte(nil), want...), "\r\n"...)
		}
		if got := unstuff(t, wire.Bytes()); !bytes.Equal(got, want) {
			t.Fatalf("round trip changed the message:\n got %q\nwant %q\nwire %q", got, want, wire.Bytes())
		}
	})
}

// FuzzSASLPlain: the strict base64 decoder and the PLAIN message parser
// never panic, and accept a response only when it is canonical base64 of
// a three-field PLAIN message.
func FuzzSASLPlain(f *testing.F) {
	f.Add("AGFsaWNlAHdvbmRlcmxhbmQ=")
	f.Add("=")
	f.Add("QUFB QUFB")
	f.Add("AAA=BBB")
	f.Add(base64.StdEncoding.EncodeToString([]byte("bob\x00alice\x00pw")))
	f.Fuzz(func(t *testing.T, resp string) {
		raw, err := decodeBase64(resp)
		if err != nil {
			return
		}
		if base64.StdEncoding.EncodeToString(raw) != resp {
			t.Fatalf("accepted non-canonical base64 %q", resp)
		}
		var got [3]string
		srv := sasl.NewPlainServer(func(authz, authc, pass string) error {
			got = [3]string{authz, authc, pass}
			return nil
		})
		_, done, err := srv.Next(raw)
		if err != nil {
			return
		}
		if !done || bytes.Count(raw, []byte{0}) != 2 {
			t.Fatalf("PLAIN accepted %q without exactly two NULs", raw)
		}
		if got[0]+"\x00"+got[1]+"\x00"+got[2] != string(raw) {
			t.Fatalf("PLAIN fields %q do not rebuild %q", got, raw)
		}
	})
}
