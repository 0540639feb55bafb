package harness

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// Entries of a transcript show what crossed the wire, escaped so that a
// TAB, a bare LF or a NUL stays visible. Long multi-line bodies are kept in
// part: the evidence is the framing, not the whole message.
const (
	transcriptMaxLinesPerRun = 12
	transcriptMaxLine        = 600
)

type entry struct {
	at   time.Duration
	dir  string // "C", "S" or "*" for a note
	text string
}

// Transcript records one connection.
type Transcript struct {
	mu      sync.Mutex
	name    string
	start   time.Time
	entries []entry
	// run counts consecutive server lines, so that long listings and
	// bodies are abbreviated.
	run, skipped, skippedOctets int
}

func newTranscript(name string) *Transcript {
	return &Transcript{name: name, start: time.Now()}
}

func (t *Transcript) add(dir, text string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if dir == "S" {
		t.run++
		if t.run > transcriptMaxLinesPerRun {
			t.skipped++
			t.skippedOctets += len(text)
			return
		}
	} else {
		t.flushSkippedLocked()
		t.run = 0
	}
	t.entries = append(t.entries, entry{at: time.Since(t.start), dir: dir, text: text})
}

func (t *Transcript) flushSkippedLocked() {
	if t.skipped > 0 {
		t.entries = append(t.entries, entry{at: time.Since(t.start), dir: "*",
			text: fmt.Sprintf("... %d more server lines (%d octets) not shown", t.skipped, t.skippedOctets)})
		t.skipped, t.skippedOctets = 0, 0
	}
}

func (t *Transcript) sent(b []byte, redacted string) {
	if redacted != "" {
		t.add("C", redacted+lineEnd(b))
		return
	}
	t.add("C", escape(b))
}

func (t *Transcript) received(b []byte, note string) {
	s := escape(b)
	if note != "" {
		s += "  " + note
	}
	// A terminator always shows, so the framing stays visible even when a
	// body was cut.
	if strings.TrimRight(string(b), "\r\n") == "." {
		t.mu.Lock()
		t.flushSkippedLocked()
		t.run = 0
		t.mu.Unlock()
	}
	t.add("S", s)
}

func (t *Transcript) note(s string) { t.add("*", s) }

// lineEnd describes how a redacted line ended, since the ending itself is
// evidence.
func lineEnd(b []byte) string {
	switch {
	case strings.HasSuffix(string(b), "\r\n"):
		return `\r\n`
	case strings.HasSuffix(string(b), "\n"):
		return `\n`
	}
	return ""
}

// escape shows control characters and cuts very long lines.
func escape(b []byte) string {
	var sb strings.Builder
	n := len(b)
	cut := 0
	if n > transcriptMaxLine {
		cut = n - transcriptMaxLine
		b = b[:transcriptMaxLine]
	}
	for _, c := range b {
		switch {
		case c == '\r':
			sb.WriteString(`\r`)
		case c == '\n':
			sb.WriteString(`\n`)
		case c == '\t':
			sb.WriteString(`\t`)
		case c == '\\':
			sb.WriteString(`\\`)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&sb, `\x%02x`, c)
		default:
			sb.WriteByte(c)
		}
	}
	if cut > 0 {
		fmt.Fprintf(&sb, "... (%d more octets, %d in all)", cut, n)
	}
	return sb.String()
}

// String renders the transcript.
func (t *Transcript) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.flushSkippedLocked()
	var sb strings.Builder
	fmt.Fprintf(&sb, "== %s\n", t.name)
	for _, e := range t.entries {
		fmt.Fprintf(&sb, "%8.3fs %s: %s\n", e.at.Seconds(), e.dir, e.text)
	}
	return sb.String()
}

// Recorder collects the transcripts of every connection a spec opens.
type Recorder struct {
	mu    sync.Mutex
	conns []*Conn
}

func (r *Recorder) track(c *Conn) {
	r.mu.Lock()
	r.conns = append(r.conns, c)
	r.mu.Unlock()
}

// Flush closes every tracked connection and returns their transcripts in
// the order they were opened, then forgets them.
func (r *Recorder) Flush() string {
	r.mu.Lock()
	conns := r.conns
	r.conns = nil
	r.mu.Unlock()
	var sb strings.Builder
	for _, c := range conns {
		_ = c.nc.Close()
		sb.WriteString(c.tr.String())
	}
	return sb.String()
}
