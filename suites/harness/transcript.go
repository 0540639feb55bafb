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

// Recorder collects the transcripts of every connection a spec opens,
// and for the whole run the classes of the lines the client sent (see
// CommandClass).
type Recorder struct {
	mu     sync.Mutex
	conns  []*Conn
	guards []*LineGuard
	// sent and refused count lines per class over the run; refusal is
	// the first refused write since the last Flush.
	sent, refused map[CommandClass]int
	refusal       error
	// opened counts the connections opened (one line guard each) and
	// trips the round trips: writes the client waited on for a reply.
	opened, trips int
	// flushed is when Flush last closed connections without QUIT: a
	// server that locks the maildrop may still hold it for a moment.
	flushed time.Time
	// busy is why the spec since the last Flush may have been refused
	// for the run's own sessions (ErrBusy); "" when not.
	busy string
	// cited are transcripts of an earlier spec whose reading the spec
	// since the last Flush judged (Target.Recall).
	cited []string
	// lockout says why a refused login of the spec since the last Flush
	// may be the run's own doing; "" when not. failedBefore counts the
	// failed logins of configured accounts sent before that spec.
	lockout      string
	failedBefore int
	// beside is true once other sessions of the run may be sending failed
	// logins of configured accounts while this process runs its specs
	// (FailedLoginsBeside): a refused right password may then be a
	// lockout too.
	beside bool
	// noLogin is true while the spec since the last Flush is declared
	// never to log in (ForbidLogin); issued holds the accounts the
	// bundled server handed out, whose right logins it then refuses too.
	noLogin bool
	issued  []Account
	// noReads is true while the spec since the last Flush is declared
	// login-only (ForbidReads).
	noReads bool
	// loggedIn holds the configured accounts whose right password the
	// server took in the spec since the last Flush: a lockout would have
	// refused that too, so a later refusal in the spec has another cause.
	loggedIn map[string]bool
	// keep is the session kept between specs (KeepSessions).
	keep keeper
	// settle is true where the server locks the maildrop
	// (SettleSessions).
	settle bool
	// ahead is the connection opened for the next dial (DialAhead).
	ahead ahead
}

// acceptedRightLogin notes that the server took user's right password.
func (r *Recorder) acceptedRightLogin(user string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.loggedIn == nil {
		r.loggedIn = map[string]bool{}
	}
	r.loggedIn[user] = true
}

// refusedRightLogin notes that the server refused user's right password.
// After failed logins of configured accounts that earlier specs sent
// (disruptive ones), a lockout policy, or a ban of the client's address,
// may be why: what the spec sees from then on is the run's doing as much
// as the server's. Failed logins of the spec's own do not count: a
// refusal right after them is the spec's to judge.
func (r *Recorder) refusedRightLogin(user string, reply Reply) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lockout != "" || r.loggedIn[user] {
		return
	}
	switch {
	case r.failedBefore > 0:
		r.lockout = fmt.Sprintf("the server refused the right password of %s (%s) after earlier specs of this run had sent %s of configured accounts; a lockout policy may count them, so this spec cannot judge its statement",
			user, reply.String(), Count(r.failedBefore, "failed login"))
	case r.beside:
		r.lockout = fmt.Sprintf("the server refused the right password of %s (%s) while other sessions of this run were sending failed logins of configured accounts; a lockout policy may count them, so this spec cannot judge its statement",
			user, reply.String())
	}
}

// FailedLoginsBeside tells the recorder that from now on other sessions
// of the run may send failed logins of configured accounts (disruptive
// specs running beside this process's): a refused right password may
// then be a lockout they caused (Lockout).
func (r *Recorder) FailedLoginsBeside() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.beside = true
}

// ForbidLogin makes the guard refuse, until the next Flush, any line that
// carries the right credentials of a configured account (or of an account
// the bundled server handed out): the spec is declared never to log in.
func (r *Recorder) ForbidLogin() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.noLogin = true
}

// ForbidReads makes every session refuse, until the next Flush, a
// command in TRANSACTION that reads or marks the maildrop's messages
// (ErrReadForbidden): the spec is declared login-only.
func (r *Recorder) ForbidReads() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.noReads = true
}

func (r *Recorder) forbidsReads() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.noReads
}

// forbidsLogin returns the accounts whose right logins the guard must
// refuse now, and whether it must.
func (r *Recorder) forbidsLogin() ([]Account, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.issued, r.noLogin
}

// issue notes an account the bundled server handed out.
func (r *Recorder) issue(a Account) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.issued = append(r.issued, a)
}

// Lockout says why a login the spec since the last Flush saw refused may
// be a lockout the run's own failed logins caused, "" when none was.
func (r *Recorder) Lockout() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lockout
}

// FlushedWithin reports whether Flush closed connections less than d ago.
func (r *Recorder) FlushedWithin(d time.Duration) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.flushed.IsZero() && time.Since(r.flushed) < d
}

func (r *Recorder) track(c *Conn) {
	r.mu.Lock()
	r.conns = append(r.conns, c)
	r.mu.Unlock()
}

func (r *Recorder) guard(g *LineGuard, opened bool) {
	r.mu.Lock()
	r.guards = append(r.guards, g)
	if opened {
		r.opened++
	}
	r.mu.Unlock()
}

func (r *Recorder) roundTrip() {
	r.mu.Lock()
	r.trips++
	r.mu.Unlock()
}

// Traffic is what a run cost on the network: connections opened and
// round trips (a write the client waited on for the server's answer),
// one after another. Across a network of round-trip time R a run
// spends about R×(RoundTrips + 2×Connections) waiting, timers aside.
type Traffic struct {
	Connections int `json:"connections"`
	RoundTrips  int `json:"round_trips"`
}

// Traffic returns the connections and round trips of the run so far.
func (r *Recorder) Traffic() Traffic {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Traffic{Connections: r.opened, RoundTrips: r.trips}
}

func (r *Recorder) tally(classes ...CommandClass) {
	if len(classes) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sent == nil {
		r.sent = map[CommandClass]int{}
	}
	for _, c := range classes {
		r.sent[c]++
	}
}

func (r *Recorder) refuse(c CommandClass, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refused == nil {
		r.refused = map[CommandClass]int{}
	}
	r.refused[c]++
	if r.refusal == nil {
		r.refusal = err
	}
}

// Absorb adds the line counts and traffic of another recorder (a measurement kept
// out of the specs' evidence) to r's, so the run's tally holds every line
// that reached the server.
func (r *Recorder) Absorb(o *Recorder) {
	sent, refused, tr := o.ClassesSent(), o.ClassesRefused(), o.Traffic()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.opened += tr.Connections
	r.trips += tr.RoundTrips
	for dst, src := range map[*map[CommandClass]int]map[CommandClass]int{&r.sent: sent, &r.refused: refused} {
		for k, v := range src {
			if *dst == nil {
				*dst = map[CommandClass]int{}
			}
			(*dst)[k] += v
		}
	}
}

// ClassesSent counts the lines the client sent in this run, by class.
func (r *Recorder) ClassesSent() map[CommandClass]int { return r.counts(&r.sent) }

// ClassesRefused counts the lines the guard kept from a remote host in
// this run, by class.
func (r *Recorder) ClassesRefused() map[CommandClass]int { return r.counts(&r.refused) }

func (r *Recorder) counts(m *map[CommandClass]int) map[CommandClass]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[CommandClass]int, len(*m))
	for k, v := range *m {
		out[k] = v
	}
	return out
}

// Refusal returns the first write refused since the last Flush (an
// ErrNotAllowed with the permission to set), or nil.
func (r *Recorder) Refusal() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refusal
}

// SettleSessions makes Flush and EndSpec, from now on, end every session
// in TRANSACTION with a half-close and wait for the server to close it
// (as ExpectClose would), before the next spec: where the server locks the maildrop,
// the lock is then free for the next login, however that logs in (a
// USER/PASS login tries again on [IN-USE], an AUTH or APOP one need
// not). A half-close ends the session without UPDATE, as a close does.
func (r *Recorder) SettleSessions() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.settle = true
}

func (r *Recorder) settles() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.settle
}

// Flush closes every tracked connection and returns their transcripts in
// the order they were opened, then forgets them and any refusal.
func (r *Recorder) Flush() string { return r.EndSpec(false) }

// EndSpec is Flush at the end of a spec: when the spec passed, the
// session it may hand on (Target.Session) stays open for the next one if
// it is in step.
func (r *Recorder) EndSpec(passed bool) string {
	r.mu.Lock()
	kept := r.keepLent(passed)
	conns, guards, cited := r.conns, r.guards, r.cited
	r.conns, r.guards, r.cited = nil, nil, nil
	r.refusal = nil
	r.busy, r.lockout, r.loggedIn = "", "", nil
	r.noLogin, r.issued, r.noReads = false, nil, false
	r.ahead.off = false
	r.failedBefore = r.sent[ClassFailedLogin]
	if len(conns) > 0 {
		r.flushed = time.Now()
	}
	r.mu.Unlock()
	var sb strings.Builder
	for _, ev := range cited {
		sb.WriteString("== (read once, by an earlier spec, for every spec that judges these replies)\n")
		sb.WriteString(ev)
	}
	settle := r.settles()
	for _, c := range conns {
		if c != kept {
			c.end(settle)
		}
		sb.WriteString(c.tr.String())
	}
	// A line left without its end reached the server all the same.
	for _, g := range guards {
		if class := g.unfinished(); class != "" {
			r.tally(class)
		}
	}
	return sb.String()
}
