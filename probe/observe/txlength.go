package observe

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// The TRANSACTION line limit is measured with lines whose positive reply
// proves that the server read them whole: LIST of message 1 padded so
// that any cut changes the command. "LIST 000...01" loses its 1 when
// cut, and "LIST<SPACEs>1" (only where runs of SPACEs separate) loses
// it too. A reply equal to the short LIST 1's, and the sentinel NOOP
// answered next (no second reply from a rest of the line), prove the
// whole line was one command. A server that answers every wrong
// command with the same bare -ERR cannot hide a cut from these lines.
//
// An unknown command of short arguments ("XPRB ab ab ...") shows the
// other side: a reply unlike the short one's (another -ERR text, a
// close, the line echoed, a second reply) is a refusal for the length,
// since no argument is long. Its -ERR like the short one's proves
// nothing: a cut line gets it too.

// Bounds of a line limit.
const (
	BoundExact   = "exact"    // lines of max octets are read whole, max+1 are refused, cut or split
	BoundAtLeast = "at-least" // lines of max octets are read whole; nothing longer was seen refused
	BoundAtMost  = "at-most"  // lines of max+1 octets are refused; no line of max was proven whole
)

// lineOutcome is what one probe line showed.
type lineOutcome int

const (
	unclear lineOutcome = iota // neither proof
	whole                      // read whole as one command
	refused                    // refused for its length: close, echo, other reply, a second reply
)

// txForm builds a line of n octets (CRLF included) whose positive reply
// proves a whole read. failedAt is the shortest length it failed at: a
// form is not tried at that length or above again (a server may bound
// the digits of a number, which says nothing about lines).
type txForm struct {
	name     string
	build    func(n int) (string, bool)
	failedAt int
}

func zerosForm() *txForm {
	return &txForm{name: "LIST 000...01", build: func(n int) (string, bool) {
		pad := n - 2 - len("LIST ") - 1
		if pad < 0 {
			return "", false
		}
		return "LIST " + strings.Repeat("0", pad) + "1", true
	}}
}

func spacesForm() *txForm {
	return &txForm{name: "LIST<SPACEs>1", build: func(n int) (string, bool) {
		pad := n - 2 - len("LIST") - 1
		if pad < 1 {
			return "", false
		}
		return "LIST" + strings.Repeat(" ", pad) + "1", true
	}}
}

// xprbLine is the unknown command of short arguments, n octets with CRLF.
func xprbLine(n int) string { return shortArgsForm().long(n) }

// txSearch measures the TRANSACTION limit on logged-in sessions. A
// session is kept only while every reply on it was positive: after a
// -ERR, a close or a cut the next line goes on a new session, so no
// session ever carries two errors and a close after N errors is never
// read as a length refusal.
//
// TODO(facts): with harness.Facts (the measured close-after-errors
// budget, (*Target).Facts()) a session could carry up to budget-1
// errors and save logins.
type txSearch struct {
	p          *prober
	acc        harness.Account
	c          *harness.Conn
	pipelining bool
	// hint is the length tried first (0: none).
	hint    int
	listRef harness.Reply
	xRef    harness.Reply
	xLine   string
	xUsable bool
	forms   []*txForm
	probes  int
	logins  int
	// evidence keeps the connections of the deciding lines.
	lastWhole, lastRefused *harness.Conn
	refusal                string
	// sentinelClosed says the last sentinel read found the connection
	// closed (not silent).
	sentinelClosed bool
}

// maxProbeLines bounds the lines one search sends.
const maxProbeLines = 40

var (
	errNoSession    = errors.New("no TRANSACTION session")
	errTooManyLines = fmt.Errorf("%d lines sent", maxProbeLines)
)

// stopped says whether err ends a search early, with what it found so
// far still true: the line budget, or a login refused mid-way (a server
// may enforce LOGIN-DELAY).
func stopped(err error) bool {
	return errors.Is(err, errTooManyLines) || errors.Is(err, errNoSession)
}

func (s *txSearch) session(ctx context.Context) (*harness.Conn, error) {
	if s.c != nil {
		return s.c, nil
	}
	s.logins++
	c, err := s.p.loggedIn(ctx, func(c *harness.Conn) error { return harness.LoginUserPass(c, s.acc) })
	if loginFailed(err) {
		return nil, fmt.Errorf("%w: login: %v", errNoSession, err)
	}
	if err != nil {
		return nil, errors.Unwrap(err)
	}
	s.c = c
	return c, nil
}

// drop ends the session without QUIT (nothing was changed or retrieved).
func (s *txSearch) drop() {
	if s.c != nil {
		s.c.Close()
		s.c = nil
	}
}

// calibrate takes the short replies on the first session: LIST 1 (a
// whole-read proof needs a message), NOOP (the sentinel), and XPRB with
// one short argument followed by NOOP (the unknown form is useless when
// its -ERR already closes the session).
func (s *txSearch) calibrate(ctx context.Context, spaces bool) error {
	c, err := s.session(ctx)
	if err != nil {
		return err
	}
	defer s.drop()
	noop, err := c.Cmd("NOOP")
	if err != nil || !noop.OK() {
		return fmt.Errorf("NOOP after login: %s %v (the sentinel of every line)", noop, err)
	}
	s.p.reply("noop", noop, "the reply to NOOP", false)
	if r, err := c.Cmd("LIST 1"); err != nil {
		return fmt.Errorf("LIST 1: %w", err)
	} else if r.OK() {
		s.listRef = r
		s.forms = append(s.forms, zerosForm())
		if spaces {
			s.forms = append(s.forms, spacesForm())
		}
	}
	s.xLine = shortArgsForm().short()
	r, err := c.Cmd(s.xLine)
	if err != nil {
		return nil
	}
	s.xRef = r
	s.p.unknownCommand(s.xLine, r, "after login", true)
	if n, err := c.Cmd("NOOP"); err == nil && n.OK() && !r.OK() {
		s.xUsable = true
	}
	return nil
}

// send writes line and reads its reply and the sentinel's. Closed means
// no reply came (or the sentinel's did not).
func (s *txSearch) send(ctx context.Context, line string) (first, sentinel harness.Reply, c *harness.Conn, closed bool, err error) {
	if s.probes >= maxProbeLines {
		return first, sentinel, nil, false, errTooManyLines
	}
	s.probes++
	c, err = s.session(ctx)
	if err != nil {
		return first, sentinel, nil, false, err
	}
	if s.pipelining {
		err = c.SendRaw([]byte(line + "\r\nNOOP\r\n"))
	} else {
		err = c.Send(line)
	}
	if err != nil {
		return first, sentinel, c, true, nil
	}
	if first, err = c.ReadReply(); err != nil {
		return first, sentinel, c, true, nil
	}
	if !s.pipelining {
		if err := c.Send("NOOP"); err != nil {
			return first, sentinel, c, true, nil
		}
	}
	sentinel, err = c.ReadReply()
	s.sentinelClosed = harness.IsServerClose(err)
	return first, sentinel, c, err != nil, nil
}

// noteOverlong keeps a length refusal's -ERR for decideOverlong: the
// session went on when the sentinel NOOP got +OK.
func (s *txSearch) noteOverlong(line string, first, sentinel harness.Reply, closed bool) {
	if first.Err() {
		s.p.overlongTx = &overlongSeen{reply: first, line: line, closed: closed && s.sentinelClosed, goes: !closed && sentinel.OK()}
	}
}

// judge reads one line's replies: want is the short form's reply.
func judge(line string, n int, want, first, sentinel harness.Reply, closed bool, unknownForm bool) (lineOutcome, string) {
	switch {
	case closed && len(first.Raw) == 0:
		return refused, fmt.Sprintf("a %d-octet line: the connection closed or nothing came", n)
	case echoed(first, line) > 0:
		return refused, fmt.Sprintf("a %d-octet line: the server sent its first %d octets back", n, echoed(first, line))
	}
	same := first.String() == want.String()
	if unknownForm {
		same = maskArgs(first.String(), line) == maskArgs(want.String(), shortArgsForm().short())
	}
	if !same {
		// A second reply before the NOOP's is the rest of the line read
		// as another command, whatever the first said.
		spill := !closed && !sentinel.OK()
		if spill {
			return refused, fmt.Sprintf("a %d-octet line: %q, then %q before the NOOP's reply: the line was read as two commands", n, maskArgs(first.String(), line), sentinel.String())
		}
		if unknownForm || !(first.OK() || first.Err()) {
			return refused, fmt.Sprintf("a %d-octet line: %q where the short line got %q", n, maskArgs(first.String(), line), want.String())
		}
		return unclear, ""
	}
	if closed || !sentinel.OK() {
		return refused, fmt.Sprintf("a %d-octet line: answered like the short one, but the next reply was %q, not the NOOP's +OK: the rest of the line was read as another command", n, sentinel.String())
	}
	if unknownForm {
		return unclear, ""
	}
	return whole, ""
}

// maskArgs hides a long line (or its arguments) a reply may repeat.
func maskArgs(text, line string) string {
	_, args, _ := strings.Cut(line, " ")
	for _, s := range []string{line, args} {
		if len(s) >= 6 {
			text = strings.ReplaceAll(text, s, "<args>")
		}
	}
	return text
}

// isWhole tries the whole-read forms at n; a form that fails is dropped
// from n on.
func (s *txSearch) isWhole(ctx context.Context, n int) (bool, error) {
	for _, f := range s.forms {
		if f.failedAt != 0 && n >= f.failedAt {
			continue
		}
		line, ok := f.build(n)
		if !ok {
			continue
		}
		first, sent, c, closed, err := s.send(ctx, line)
		if err != nil {
			return false, err
		}
		out, detail := judge(line, n, s.listRef, first, sent, closed, false)
		switch out {
		case whole:
			s.lastWhole = c
			return true, nil
		case refused:
			// A visible refusal of this line is one of the line's
			// length: the form's argument is a number or SPACEs.
			s.noteOverlong(line, first, sent, closed)
			s.drop()
			s.lastRefused, s.refusal = c, detail
			f.failedAt = n
			return false, errRefusedAt
		}
		s.drop()
		f.failedAt = n
	}
	return false, nil
}

var errRefusedAt = errors.New("refused")

// isRefused sends the unknown form at n: true when the reply shows a
// length refusal.
func (s *txSearch) isRefused(ctx context.Context, n int) (bool, error) {
	if !s.xUsable {
		return false, nil
	}
	line := xprbLine(n)
	first, sent, c, closed, err := s.send(ctx, line)
	if err != nil {
		return false, err
	}
	s.drop()
	out, detail := judge(line, n, s.xRef, first, sent, closed, true)
	if out == refused {
		s.noteOverlong(line, first, sent, closed)
		s.lastRefused, s.refusal = c, detail
		return true, nil
	}
	return false, nil
}

// classify is whole, refused or unclear for a line of n octets.
func (s *txSearch) classify(ctx context.Context, n int) (lineOutcome, error) {
	ok, err := s.isWhole(ctx, n)
	switch {
	case errors.Is(err, errRefusedAt):
		return refused, nil
	case err != nil:
		return unclear, err
	case ok:
		return whole, nil
	}
	bad, err := s.isRefused(ctx, n)
	if bad {
		return refused, err
	}
	return unclear, err
}

// limitResult is a measured line limit.
type limitResult struct {
	// proven is the longest line proven read whole (0: none); refusedAt
	// the shortest seen refused (0: none).
	proven, refusedAt int
	// truncated says the server was seen executing the first
	// proven-2 octets of a longer line.
	truncated bool
	value     int
	bound     string // exact, at-least, at-most or "" (unknown)
	refusal   string
	method    string
}

func (r *limitResult) decide() {
	switch {
	case r.proven > 0 && (r.refusedAt == r.proven+1 || r.truncated):
		r.value, r.bound = r.proven, BoundExact
	case r.refusedAt > 0:
		r.value, r.bound = r.refusedAt-1, BoundAtMost
	case r.proven > 0:
		r.value, r.bound = r.proven, BoundAtLeast
	}
}

// run searches MinCommandOctets..MaxCommandOctets: first the hint (the
// audited profile's limit) and one octet more, which settle it in two
// lines when the server keeps that limit; then doubling from 64 while
// lines are read whole, below any length already not proven, and
// bisecting between the longest whole line and the shortest refused or
// unproven one.
func (s *txSearch) run(ctx context.Context) (limitResult, error) {
	var r limitResult
	lo, hi := 0, 0 // lo proven whole; hi not proven (refused or unclear)
	hiRefused := false
	note := func(n int, out lineOutcome) {
		if out == whole {
			lo = max(lo, n)
		} else if hi == 0 || n < hi {
			hi, hiRefused = n, out == refused
		}
	}
	step := func(n int) int {
		switch {
		case n == MaxCommandOctets:
			return n + 1
		case n < 64:
			return 64
		}
		return min(2*n, MaxCommandOctets)
	}
	// try classifies a line of n octets and narrows lo and hi by it.
	try := func(n int) (bool, error) {
		out, err := s.classify(ctx, n)
		if err != nil {
			return false, err
		}
		note(n, out)
		return out == whole, nil
	}
	err := func() error {
		if h := s.hint; h >= MinCommandOctets && h < MaxCommandOctets {
			for _, n := range []int{h, h + 1} {
				ok, err := try(n)
				if err != nil {
					return err
				}
				if !ok {
					break
				}
			}
		}
		n := MinCommandOctets
		if lo > 0 {
			n = step(lo)
		}
		for n <= MaxCommandOctets && (hi == 0 || n < hi) {
			ok, err := try(n)
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			n = step(n)
		}
		// Bisect for the longest whole line below hi (when a form works).
		for lo > 0 && hi > lo+1 {
			if _, err := try(lo + (hi-lo)/2); err != nil {
				return err
			}
		}
		return nil
	}()
	if err != nil && !stopped(err) {
		return r, err
	}
	r.proven = lo
	if hi > 0 && hiRefused {
		r.refusedAt = hi
	}
	if err == nil {
		err = s.refine(ctx, &r, lo, hi, hiRefused)
	}
	if err != nil && !stopped(err) {
		return r, err
	}
	if err != nil {
		r.method = fmt.Sprintf("; stopped early (%v), the bounds are what was seen by then", err)
	}
	r.refusal = s.refusal
	r.decide()
	return r, nil
}

// refine looks past the longest whole line lo: was the next length cut
// silently, or where is the shortest visible refusal?
func (s *txSearch) refine(ctx context.Context, r *limitResult, lo, hi int, hiRefused bool) error {
	// A line of lo octets with one more digit (LIST 10 when whole) that
	// gets LIST 1's reply was cut right after lo-2 octets.
	if lo > 0 && hi == lo+1 && !hiRefused {
		cut, err := s.cutAfter(ctx, lo)
		if err != nil {
			return err
		}
		r.truncated = cut
	}
	// No whole-read form, or one that stopped proving before any
	// refusal: the unknown form alone may still show a refusal.
	if r.refusedAt == 0 && !r.truncated && s.xUsable {
		return s.searchRefusal(ctx, r, max(lo+1, MinCommandOctets))
	}
	return nil
}

// searchRefusal finds the shortest length from start on that the unknown
// form shows refused, if any up to MaxCommandOctets.
func (s *txSearch) searchRefusal(ctx context.Context, r *limitResult, start int) error {
	bad, err := s.isRefused(ctx, MaxCommandOctets)
	if err != nil || !bad {
		return err
	}
	lo, hi := start-1, MaxCommandOctets
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		bad, err := s.isRefused(ctx, mid)
		if err != nil {
			return err
		}
		if bad {
			hi = mid
		} else {
			lo = mid
		}
	}
	r.refusedAt = hi
	return nil
}

// cutAfter sends the longest whole line with one more digit at its end.
func (s *txSearch) cutAfter(ctx context.Context, n int) (bool, error) {
	for _, f := range s.forms {
		if f.failedAt != 0 && f.failedAt <= n {
			continue
		}
		line, ok := f.build(n)
		if !ok {
			continue
		}
		line += "0"
		first, sent, c, closed, err := s.send(ctx, line)
		if err != nil {
			return false, err
		}
		s.drop()
		if !closed && first.String() == s.listRef.String() && sent.OK() {
			s.lastRefused = c
			s.refusal = fmt.Sprintf("a %d-octet line %s0 got the reply of LIST 1: the server executed its first %d octets and dropped the rest", n+1, f.name, n-2)
			return true, nil
		}
		return false, nil
	}
	return false, nil
}

// formNames names the whole-read forms tried.
func (s *txSearch) formNames() string {
	var names []string
	for _, f := range s.forms {
		names = append(names, f.name)
	}
	if len(names) == 0 {
		return "none (LIST 1 was refused: an empty mailbox?)"
	}
	return strings.Join(names, " and ")
}

func hasCapability(params map[string]any, tag string) bool {
	tags, _ := params["capabilities"].([]string)
	return slices.ContainsFunc(tags, func(t string) bool { return strings.EqualFold(t, tag) })
}
