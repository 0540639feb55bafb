package observe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// lineForm builds a command line of n octets (CRLF included) and a short
// line of the same kind to compare its reply with.
type lineForm struct {
	name  string
	short func() string
	long  func(n int) string
	// ref is the reply to the short line, measured once on a connection
	// of its own (see reference).
	ref *lineRef
}

// lineRef is the short line of a form and the server's reply to it.
type lineRef struct {
	line  string
	reply harness.Reply
	conn  *harness.Conn
}

// userForm is "USER <name>" with one long argument, as the suite's own
// length specs send it.
func userForm() *lineForm {
	base := harness.NoSuchUser()
	return &lineForm{
		name:  "USER",
		short: func() string { return "USER " + base },
		long: func(n int) string {
			fill := n - 2 - len("USER ") - len(base)
			if fill < 0 {
				return "USER " + base[:len(base)+fill]
			}
			return "USER " + base + strings.Repeat("x", fill)
		},
	}
}

// shortArgsForm is an unknown keyword followed by many one- and
// two-character arguments: no argument limit can refuse it, only the
// line length. The keyword has four letters like every POP3 command, since
// some servers (Dovecot) bound the text after the keyword rather than the
// whole line, and a longer keyword would shift the measured limit.
func shortArgsForm() *lineForm {
	const kw = "XPRB"
	token := randomName("q")
	return &lineForm{
		name:  kw,
		short: func() string { return kw + " " + token },
		long: func(n int) string {
			var b strings.Builder
			b.WriteString(kw)
			for b.Len()+3 <= n-2 {
				b.WriteString(" ab")
			}
			switch n - 2 - b.Len() {
			case 1:
				b.WriteString("c") // the last argument becomes "abc"
			case 2:
				b.WriteString(" a")
			}
			return b.String()
		},
	}
}

// reference sends the form's short line as the first command of a
// connection of its own, once; opened reports whether it took a
// connection now.
//
// Every probe line is the first command of its connection: after a USER
// answered +OK, RFC 1939 section 7 leaves only PASS or QUIT, and a server
// may refuse any other command then whatever its length (GNU Mailutils:
// "-ERR Invalid command"). A USER sent after the reference USER would
// measure that rule, not the line length.
func (p *prober) reference(ctx context.Context, f *lineForm) (opened bool, err error) {
	if f.ref != nil {
		return false, nil
	}
	c, err := p.authConn(ctx)
	if err != nil {
		return c != nil, err
	}
	line := f.short()
	r, err := c.Cmd(line)
	if err != nil {
		return true, fmt.Errorf("%s: %w", line, err)
	}
	f.ref = &lineRef{line: line, reply: r, conn: c}
	return true, nil
}

// lineResult is how the server took one long line.
type lineResult struct {
	// accepted: answered like the short line.
	accepted bool
	// detail describes a refusal for the report: a close or silence,
	// another -ERR or status, or the line (its start) sent back instead
	// of a status line.
	detail string
}

// minEcho is how many of the line's first octets a reply must repeat to
// count as an echo: the keyword and its SPACE.
const minEcho = 5

// echoed returns how many of the first octets of the line sent (CRLF
// included) raw repeats, when raw is no status line but the line coming
// back; 0 otherwise. GNU Mailutils pop3d answers a line over its 511
// octets with its first 511 octets and then, on the same line, the reply
// to those (the rest of the line follows later): such a line must not be
// read as a status line, whose status would be the command's keyword.
func echoed(r harness.Reply, sent string) int {
	if r.OK() || r.Err() {
		return 0
	}
	full := []byte(sent + "\r\n")
	n := 0
	for n < len(r.Raw) && n < len(full) && r.Raw[n] == full[n] {
		n++
	}
	if n < minEcho {
		return 0
	}
	return n
}

// probeLine sends a line of n octets as the first command of a new
// connection and reports whether the server answers it like the form's
// short line (sent on another connection): the same status and, for -ERR,
// the same text once the arguments are masked. A different -ERR, a close
// or the line echoed back means the line was refused for its length.
func (p *prober) probeLine(ctx context.Context, f *lineForm, n int) (lineResult, *harness.Conn, error) {
	var res lineResult
	if f.ref == nil {
		return res, nil, fmt.Errorf("internal: no reference line for %s", f.name)
	}
	line := f.long(n)
	if len(line)+2 != n {
		return res, nil, fmt.Errorf("internal: built %d octets for %d", len(line)+2, n)
	}
	c, err := p.authConn(ctx)
	if err != nil {
		return res, c, err
	}
	long, err := c.Cmd(line)
	if err != nil {
		// Closed or silent: refused.
		res.detail = fmt.Sprintf("a %d-octet line: the connection closed or nothing came (%v)", n, err)
		return res, c, nil
	}
	// A reply may echo the line or its arguments; mask them (when long
	// enough not to match ordinary words).
	mask := func(text, l string) string {
		_, args, _ := strings.Cut(l, " ")
		for _, s := range []string{l, args} {
			if len(s) >= 6 {
				text = strings.ReplaceAll(text, s, "<args>")
			}
		}
		return text
	}
	if k := echoed(long, line); k > 0 {
		rest := bytes.TrimLeft(long.Raw[k:], "\r")
		after := "no status line after it on that line"
		if s := strings.TrimRight(string(rest), "\r\n"); s != "" {
			after = fmt.Sprintf("then %q on the same line", mask(s, line))
		}
		res.detail = fmt.Sprintf("a %d-octet line: the server sent its first %d octets back, %s", n, k, after)
		return res, c, nil
	}
	short := f.ref.reply
	same := long.Status == short.Status
	if same && !short.OK() {
		same = mask(long.Text, line) == mask(short.Text, f.ref.line)
	}
	if same {
		// QUIT, valid in every state, must get the next reply: another
		// reply first is the rest of the line read as a command.
		q, err := c.Cmd("QUIT")
		if err == nil && !q.OK() {
			res.detail = fmt.Sprintf("a %d-octet line: answered like the short line, but QUIT then got %q: the rest of the line was read as another command", n, q.String())
			return res, c, nil
		}
		if err == nil {
			p.reply("quit", q, "the reply to QUIT before login", true)
		}
		res.accepted = true
		return res, c, nil
	}
	res.detail = fmt.Sprintf("a %d-octet line: %q where the short line got %q", n, mask(long.String(), line), mask(short.String(), f.ref.line))
	if long.Err() && f.name == "XPRB" {
		// Whether the session outlives the refusal (overlong_command):
		// QUIT gets its +OK, or the connection is gone.
		q, err := c.Cmd("QUIT")
		p.overlongAuth = &overlongSeen{reply: long, line: line, closed: harness.IsServerClose(err), goes: err == nil && q.OK()}
	}
	return res, c, nil
}

// commandLength measures the line limit after login (where a reply can
// prove a whole read, see txSearch), then before login (where only a
// refusal shows), then the per-argument limit.
func (p *prober) commandLength(ctx context.Context) error {
	tx, err := p.transactionLimit(ctx)
	if err != nil {
		return err
	}
	auth, err := p.authorizationLimit(ctx, tx)
	if err != nil {
		return err
	}
	return p.argumentLimit(ctx, auth, tx)
}

// setLimit records a limitResult under key (and key_bound).
func (p *prober) setLimit(key string, r limitResult, why string) {
	if r.bound == "" {
		p.skip(key, why)
		return
	}
	method := r.method
	if r.refusal != "" {
		method += "; refused: " + r.refusal
	}
	p.set(key, r.value, method)
	p.set(key+"_bound", r.bound, "exact: lines of max octets proven read whole and max+1 refused (or cut); at-least: lines of max octets proven read whole, none longer seen refused; at-most: lines of max+1 octets refused, max not proven")
}

func (p *prober) transactionLimit(ctx context.Context) (limitResult, error) {
	const key = "max_command_octets_transaction"
	var r limitResult
	a, err := p.account(ctx)
	if err != nil {
		p.skip(key, err.Error())
		return r, nil
	}
	s := &txSearch{p: p, acc: a, pipelining: hasCapability(p.params, "PIPELINING")}
	if p.t.Profile != nil {
		s.hint = p.t.Profile.CommandLimit(true)
	}
	defer s.drop()
	spaces, _ := p.params["multiple_spaces_separate"].(bool)
	if err := s.calibrate(ctx, spaces); err != nil {
		if errors.Is(err, errBudget) {
			return r, err
		}
		p.skip(key, err.Error())
		return r, nil
	}
	r, err = s.run(ctx)
	if err != nil {
		return r, err
	}
	stop := r.method
	how := "one line at a time"
	if s.pipelining {
		how = "each line pipelined with its NOOP (PIPELINING)"
	}
	first := ""
	if s.hint >= MinCommandOctets && s.hint < MaxCommandOctets {
		first = fmt.Sprintf("first %d octets (the audited profile's limit) and %d, then ", s.hint, s.hint+1)
	}
	r.method = fmt.Sprintf("after login, %s: %sdoubling from %d octets then bisection up to %d (CRLF included), below any length already refused or unproven; a line is read whole when %s gets the reply of LIST 1 and the NOOP sent after it the next reply; refused when XPRB with short arguments gets another reply than a short XPRB, a close, the line echoed or a second reply; %d lines, %d logins, proven whole up to %d",
		how, first, MinCommandOctets, MaxCommandOctets, s.formNames(), s.probes, s.logins, r.proven) + stop
	if r.truncated {
		r.method += "; the line one octet longer was cut: the server executes its first octets silently"
	}
	why := "no line was proven read whole and none was seen refused: the server answers a long line like a short one (a cut line gets the same -ERR)"
	p.setLimit(key, r, why)
	p.evidence(key, s.lastWhole, s.lastRefused)
	return r, nil
}

// authorizationLimit looks for the shortest line refused before login.
// RFC 1939 leaves only USER, PASS, APOP and QUIT there, and no reply to
// them proves that a long line was read whole, so a limit found here is
// at-most, unless the same limit holds after login, where whole reads
// are proven (then the two states are taken to share one reader).
func (p *prober) authorizationLimit(ctx context.Context, tx limitResult) (limitResult, error) {
	const key = "max_command_octets"
	f := shortArgsForm()
	var r limitResult
	if _, err := p.reference(ctx, f); err != nil {
		if errors.Is(err, errBudget) {
			return r, err
		}
		p.skip(key, err.Error())
		return r, nil
	}
	p.unknownCommand(f.ref.line, f.ref.reply, "before login", false)
	var last *harness.Conn
	bad := func(n int) (bool, error) {
		res, c, err := p.probeLine(ctx, f, n)
		if err != nil {
			return false, err
		}
		if !res.accepted {
			last, r.refusal = c, res.detail
		}
		return !res.accepted, nil
	}
	// lowest finds the shortest refused length in (lo, hi], hi refused.
	lowest := func(lo, hi int) (int, error) {
		for hi-lo > 1 {
			mid := lo + (hi-lo)/2
			b, err := bad(mid)
			if err != nil {
				return 0, err
			}
			if b {
				hi = mid
			} else {
				lo = mid
			}
		}
		return hi, nil
	}
	var err error
	r.method = fmt.Sprint("before login, XPRB with short arguments, each line the first command of a connection of its own, QUIT after it: refused when the reply differs from a short XPRB's (another -ERR text, a close, the line echoed) or QUIT gets another reply first; a reply like the short one's proves nothing (a cut line gets it too)")
	switch {
	case tx.bound == BoundExact || tx.bound == BoundAtMost:
		t := tx.value
		var over, at bool
		if over, err = bad(t + 1); err != nil {
			return r, err
		}
		if over {
			if at, err = bad(t); err != nil {
				return r, err
			}
		}
		switch {
		case over && !at:
			r.refusedAt = t + 1
			if tx.bound == BoundExact {
				r.proven = t
				r.method += fmt.Sprintf("; refused at %d octets like after login, where lines of %d are proven read whole: the same limit", t+1, t)
			}
		case over:
			r.refusedAt, err = lowest(MinCommandOctets-1, t)
		default:
			var top bool
			if top, err = bad(MaxCommandOctets); err == nil && top {
				r.refusedAt, err = lowest(t+1, MaxCommandOctets)
			}
		}
	default:
		var top bool
		top, err = bad(MaxCommandOctets)
		switch {
		case err != nil:
		case top:
			r.refusedAt, err = lowest(MinCommandOctets-1, MaxCommandOctets)
		case tx.bound == BoundAtLeast && tx.value == MaxCommandOctets:
			r.proven = MaxCommandOctets
			r.method += fmt.Sprintf("; no line up to %d octets refused, and after login lines of %d are proven read whole", MaxCommandOctets, MaxCommandOctets)
		}
	}
	if err != nil {
		return r, err
	}
	r.decide()
	p.setLimit(key, r, fmt.Sprintf("no line up to %d octets was refused before login, and no reply there proves a long line was read whole", MaxCommandOctets))
	p.evidence(key, f.ref.conn, last)
	return r, nil
}

// argumentLimit compares USER of a long unknown name with a short one.
// A refusal counts as an argument limit only where lines of that length
// are known not to be refused: read whole after login and not refused
// before login.
func (p *prober) argumentLimit(ctx context.Context, auth, tx limitResult) error {
	const key = "max_argument_chars"
	line := 0 // the longest line known not to be refused before login
	switch {
	case auth.bound != "":
		line = auth.value
	case tx.bound == BoundExact || tx.bound == BoundAtMost:
		line = tx.value
	default:
		p.skip(key, "no line limit known, so a refused USER could not be told from a refused line")
		return nil
	}
	const rfcArg = 41 // the shortest argument RFC 1939 does not allow
	maxArg := line - 2 - len("USER ")
	if maxArg < rfcArg {
		p.skip(key, fmt.Sprintf("a %d-character argument does not fit the %d-octet command limit", rfcArg, line))
		return nil
	}
	f := userForm()
	if _, err := p.reference(ctx, f); err != nil {
		return err
	}
	octets := func(arg int) int { return arg + 2 + len("USER ") }
	same := func(arg int) (bool, *harness.Conn, error) {
		res, c, err := p.probeLine(ctx, f, octets(arg))
		return res.accepted, c, err
	}
	longest, first := 0, 0 // longest accepted, shortest refused argument
	ok, c, err := same(rfcArg)
	if err != nil {
		return err
	}
	switch {
	case !ok:
		longest, first = rfcArg-1, rfcArg
		if ok, _, err := same(rfcArg - 1); err != nil {
			return err
		} else if !ok {
			p.skip(key, fmt.Sprintf("USER with a name of %d characters was refused, and one of %d too", rfcArg, rfcArg-1))
			return nil
		}
	default:
		longest = rfcArg
		top, tc, err := same(maxArg)
		if err != nil {
			return err
		}
		c = tc
		if top {
			p.set(key, 0, fmt.Sprintf("USER with names of %d and %d characters (lines up to the %d-octet limit) answered like a short one", rfcArg, maxArg, line))
			p.evidence(key, f.ref.conn, c)
			return nil
		}
		lo, hi := rfcArg, maxArg
		for hi-lo > 1 {
			mid := lo + (hi-lo)/2
			ok, _, err := same(mid)
			if err != nil {
				return err
			}
			if ok {
				lo = mid
			} else {
				hi = mid
			}
		}
		longest, first = lo, hi
	}
	n := octets(first)
	// The refused USER line is no refused line when longer lines are
	// refused visibly before login (a reader that refuses visibly does
	// not cut shorter lines), or lines of its length are read whole
	// after login.
	switch {
	case auth.refusedAt != 0 && auth.refusedAt <= n:
		p.skip(key, fmt.Sprintf("USER with a name of %d characters (%d octets) was refused, and so are lines of %d octets before login", first, n, auth.refusedAt))
	case auth.refusedAt == 0 && tx.proven < n:
		p.skip(key, fmt.Sprintf("USER with a name of %d characters (%d octets) was refused, but no line of %d octets was proven read whole and no longer line seen refused: an argument limit cannot be told from a line limit", first, n, n))
	default:
		p.set(key, longest, fmt.Sprintf("USER with a name of %d characters answered like a short one, %d characters refused, while lines of %d octets are not refused (before login lines are refused from %d octets on; after login lines are proven read whole up to %d)", longest, first, n, auth.refusedAt, tx.proven))
		p.evidence(key, f.ref.conn, c)
	}
	return nil
}
