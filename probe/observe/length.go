package observe

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"pop3conformance/suites/harness"
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
	base := randomName("nosuch")
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
		res.accepted = true
		return res, c, nil
	}
	res.detail = fmt.Sprintf("a %d-octet line: %q where the short line got %q", n, mask(long.String(), line), mask(short.String(), f.ref.line))
	return res, c, nil
}

// bisection is the outcome of one search.
type bisection struct {
	// max is the longest accepted length; 0 when even lo was refused.
	max int
	// bound is exact, at-least (hi was accepted), below (lo was refused)
	// or range (the connection budget ran out between max and over).
	bound string
	over  int
	// refusal is how the line of over octets was refused.
	refusal   lineResult
	evidence  []*harness.Conn
	connsUsed int
}

// bisect finds the longest accepted line in lo..hi. knownLo says lo is
// already known to be accepted. Its connections, the short line's
// included, count against bisectConnections.
func (p *prober) bisect(ctx context.Context, f *lineForm, lo, hi int, knownLo bool) (bisection, error) {
	var b bisection
	opened, err := p.reference(ctx, f)
	if opened {
		b.connsUsed++
	}
	if err != nil {
		return b, err
	}
	conns := map[int]*harness.Conn{}
	results := map[int]lineResult{}
	try := func(n int) (bool, error) {
		b.connsUsed++
		res, c, err := p.probeLine(ctx, f, n)
		conns[n], results[n] = c, res
		return res.accepted, err
	}
	// The evidence starts with the short line the others were compared
	// with.
	evidence := func(ns ...int) []*harness.Conn {
		out := []*harness.Conn{f.ref.conn}
		for _, n := range ns {
			out = append(out, conns[n])
		}
		return out
	}
	if !knownLo {
		ok, err := try(lo)
		if err != nil {
			return b, err
		}
		if !ok {
			b.bound, b.over, b.refusal, b.evidence = "below", lo, results[lo], evidence(lo)
			return b, nil
		}
	}
	ok, err := try(hi)
	if err != nil {
		return b, err
	}
	if ok {
		b.max, b.bound, b.evidence = hi, "at-least", evidence(hi)
		return b, nil
	}
	for hi-lo > 1 {
		if b.connsUsed >= bisectConnections {
			b.max, b.over, b.bound, b.refusal = lo, hi, "range", results[hi]
			b.evidence = evidence(lo, hi)
			return b, nil
		}
		mid := lo + (hi-lo)/2
		ok, err := try(mid)
		if err != nil {
			return b, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	b.max, b.over, b.bound, b.refusal = lo, hi, "exact", results[hi]
	b.evidence = evidence(lo, hi)
	return b, nil
}

// commandLength bisects the longest USER command the server takes, then
// checks with short arguments whether that limit was one on the line or
// on the argument.
func (p *prober) commandLength(ctx context.Context) error {
	user, err := p.bisect(ctx, userForm(), MinCommandOctets, MaxCommandOctets, false)
	if err != nil {
		return err
	}
	final := user
	method := fmt.Sprintf("bisection over %d..%d octets (CRLF included) with USER of an unknown name, each line the first command of a connection of its own: a line answered like a short USER (on another connection) is accepted; another -ERR, a close or the line echoed back is a length refusal", MinCommandOctets, MaxCommandOctets)
	argMethod := "whether USER with an argument over 40 characters was answered like a short one"
	switch user.bound {
	case "below":
		p.skip("max_argument_chars", "even the shortest line tried was refused")
	case "at-least":
		p.set("max_argument_chars", 0, argMethod)
	default:
		// Was the limit the line's or the argument's? A line one octet
		// longer made of short arguments tells.
		args := shortArgsForm()
		if _, err := p.reference(ctx, args); err != nil {
			return err
		}
		res, c, err := p.probeLine(ctx, args, user.max+1)
		if err != nil {
			return err
		}
		if res.accepted {
			arg := user.max - len("USER ") - 2
			p.set("max_argument_chars", arg, fmt.Sprintf("USER took at most %d octets, but an unknown command of %d octets with short arguments was answered like a short one", user.max, user.max+1))
			p.evidence("max_argument_chars", append(user.evidence, args.ref.conn, c)...)
			final, err = p.bisect(ctx, args, user.max+1, MaxCommandOctets, true)
			if err != nil {
				return err
			}
			method = "bisection with an unknown command of short arguments, each line the first command of a connection of its own (the USER bisection hit the argument limit)"
		} else if user.max-len("USER ")-2 > 40 {
			p.set("max_argument_chars", 0, argMethod)
		} else {
			p.skip("max_argument_chars", fmt.Sprintf("a 41-character argument does not fit the %d-octet command limit", user.max))
		}
	}
	switch final.bound {
	case "below":
		p.set("max_command_octets_bound", "below", method)
		p.skip("max_command_octets", fmt.Sprintf("a %d-octet command was refused: %s", MinCommandOctets, final.refusal.detail))
	default:
		if final.bound == "exact" || final.bound == "range" {
			// How the shortest line found too long was refused goes
			// with the method, the echo of GNU Mailutils included.
			method += "; refused: " + final.refusal.detail
		}
		p.set("max_command_octets", final.max, method)
		p.set("max_command_octets_bound", final.bound, "exact: max accepted and max+1 refused; at-least: the upper search bound was accepted; range: the connection budget ended the search")
	}
	p.evidence("max_command_octets", final.evidence...)
	return nil
}
