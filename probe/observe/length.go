package observe

import (
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
}

// userForm is "USER <name>" with one long argument, as the suite's own
// length specs send it.
func userForm() lineForm {
	base := randomName("nosuch")
	return lineForm{
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
func shortArgsForm() lineForm {
	const kw = "XPRB"
	token := randomName("q")
	return lineForm{
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

// probeLine reports whether the server answers a line of n octets like the
// short one: the same status and, for -ERR, the same text once the
// arguments are masked. A different -ERR or a closed connection means the
// line was refused for its length.
func (p *prober) probeLine(ctx context.Context, f lineForm, n int) (bool, *harness.Conn, error) {
	c, err := p.authConn(ctx)
	if err != nil {
		return false, c, err
	}
	shortLine := f.short()
	short, err := c.Cmd(shortLine)
	if err != nil {
		return false, c, fmt.Errorf("%s: %w", shortLine, err)
	}
	line := f.long(n)
	if len(line)+2 != n {
		return false, c, fmt.Errorf("internal: built %d octets for %d", len(line)+2, n)
	}
	long, err := c.Cmd(line)
	if err != nil {
		// Closed or silent: refused.
		return false, c, nil
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
	same := long.Status == short.Status
	if same && !short.OK() {
		same = mask(long.Text, line) == mask(short.Text, shortLine)
	}
	return same, c, nil
}

// bisection is the outcome of one search.
type bisection struct {
	// max is the longest accepted length; 0 when even lo was refused.
	max int
	// bound is exact, at-least (hi was accepted), below (lo was refused)
	// or range (the connection budget ran out between max and over).
	bound     string
	over      int
	evidence  []*harness.Conn
	connsUsed int
}

// bisect finds the longest accepted line in lo..hi. knownLo says lo is
// already known to be accepted.
func (p *prober) bisect(ctx context.Context, f lineForm, lo, hi int, knownLo bool) (bisection, error) {
	var b bisection
	conns := map[int]*harness.Conn{}
	try := func(n int) (bool, error) {
		b.connsUsed++
		ok, c, err := p.probeLine(ctx, f, n)
		conns[n] = c
		return ok, err
	}
	if !knownLo {
		ok, err := try(lo)
		if err != nil {
			return b, err
		}
		if !ok {
			b.bound, b.over, b.evidence = "below", lo, []*harness.Conn{conns[lo]}
			return b, nil
		}
	}
	ok, err := try(hi)
	if err != nil {
		return b, err
	}
	if ok {
		b.max, b.bound, b.evidence = hi, "at-least", []*harness.Conn{conns[hi]}
		return b, nil
	}
	for hi-lo > 1 {
		if b.connsUsed >= bisectConnections {
			b.max, b.over, b.bound = lo, hi, "range"
			b.evidence = []*harness.Conn{conns[lo], conns[hi]}
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
	b.max, b.over, b.bound = lo, hi, "exact"
	b.evidence = []*harness.Conn{conns[lo], conns[hi]}
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
	method := fmt.Sprintf("bisection over %d..%d octets (CRLF included) with USER of an unknown name, one connection per length: a line answered like a short USER is accepted, another -ERR or a close is a length refusal", MinCommandOctets, MaxCommandOctets)
	argMethod := "whether USER with an argument over 40 characters was answered like a short one"
	switch user.bound {
	case "below":
		p.skip("max_argument_chars", "even the shortest line tried was refused")
	case "at-least":
		p.set("max_argument_chars", 0, argMethod)
	default:
		// Was the limit the line's or the argument's? A line one octet
		// longer made of short arguments tells.
		ok, c, err := p.probeLine(ctx, shortArgsForm(), user.max+1)
		if err != nil {
			return err
		}
		if ok {
			arg := user.max - len("USER ") - 2
			p.set("max_argument_chars", arg, fmt.Sprintf("USER took at most %d octets, but an unknown command of %d octets with short arguments was answered like a short one", user.max, user.max+1))
			p.evidence("max_argument_chars", append(user.evidence, c)...)
			final, err = p.bisect(ctx, shortArgsForm(), user.max+1, MaxCommandOctets, true)
			if err != nil {
				return err
			}
			method = "bisection with an unknown command of short arguments (the USER bisection hit the argument limit)"
		} else if user.max-len("USER ")-2 > 40 {
			p.set("max_argument_chars", 0, argMethod)
		} else {
			p.skip("max_argument_chars", fmt.Sprintf("a 41-character argument does not fit the %d-octet command limit", user.max))
		}
	}
	switch final.bound {
	case "below":
		p.set("max_command_octets_bound", "below", method)
		p.skip("max_command_octets", fmt.Sprintf("a %d-octet command was refused", MinCommandOctets))
	default:
		p.set("max_command_octets", final.max, method)
		p.set("max_command_octets_bound", final.bound, "exact: max accepted and max+1 refused; at-least: the upper search bound was accepted; range: the connection budget ended the search")
	}
	p.evidence("max_command_octets", final.evidence...)
	return nil
}
