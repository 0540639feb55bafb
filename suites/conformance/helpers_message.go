package conformance

// Helpers that handle message text: lines, byte-stuffing, what TOP must
// return, and short descriptions of differences for failure messages.

import (
	"bytes"
	"fmt"
	"strings"
)

// splitLines splits data after every LF, keeping the line ends.
func splitLines(data []byte) [][]byte {
	var out [][]byte
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			out = append(out, data)
			break
		}
		out = append(out, data[:i+1])
		data = data[i+1:]
	}
	return out
}

// stuff byte-stuffs a message as RFC 1939 section 3 wants it on the wire:
// every line that begins with "." gets another one.
func stuff(data []byte) [][]byte {
	var out [][]byte
	for _, l := range splitLines(data) {
		if len(l) > 0 && l[0] == '.' {
			l = append([]byte{'.'}, l...)
		}
		out = append(out, l)
	}
	return out
}

// unstuff removes byte-stuffing from a multi-line body that a client
// library returned still stuffed.
func unstuff(data []byte) []byte {
	var b bytes.Buffer
	for _, l := range splitLines(data) {
		if len(l) > 0 && l[0] == '.' {
			l = l[1:]
		}
		b.Write(l)
	}
	return b.Bytes()
}

// headerEnd returns the offset just after the blank line that ends a
// message's header, or -1.
func headerEnd(msg []byte) int {
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		return i + 4
	}
	return -1
}

// topOf is what TOP msg n must return for a message: the header, the empty
// line after it and the first n lines of the body (all of it when the body
// is shorter). bodyLines is the number of lines of the body.
func topOf(data []byte, n int) (top []byte, bodyLines int) {
	end := headerEnd(data)
	if end < 0 {
		return data, 0
	}
	head, body := data[:end], splitLines(data[end:])
	if n > len(body) {
		n = len(body)
	}
	return append(append([]byte(nil), head...), bytes.Join(body[:n], nil)...), len(body)
}

// firstDiff names the first line where two messages differ, for failure
// messages that do not drown in a 300 KB body.
func firstDiff(got, want []byte) string {
	g, w := splitLines(got), splitLines(want)
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl []byte
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if !bytes.Equal(gl, wl) {
			return fmt.Sprintf("line %d: got %q, want %q (got %d octets, want %d)", i+1, gl, wl, len(got), len(want))
		}
	}
	return "identical"
}

// isStatusLine reports a line that starts with a POP3 status indicator.
func isStatusLine(line []byte) bool {
	s := string(line)
	return strings.HasPrefix(s, "+OK") || strings.HasPrefix(s, "-ERR")
}
