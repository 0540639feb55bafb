package observe

// Reply texts and the forms of CAPA and of an over-long line's refusal:
// recorded from the connections the other steps open (one STAT and one
// PASS of an unknown name are the only lines sent for them alone), so
// that the observed profile describes the server's wording too. Texts
// judge nothing (RFC 1939 section 3 leaves them free); the comparison
// with the profiles weighs them lightly (score).

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// wrongState sends STAT before login, a command valid only in the
// TRANSACTION state (RFC 1939 section 5), and records its -ERR.
func (p *prober) wrongState(c *harness.Conn) {
	r, err := c.Cmd("STAT")
	if err != nil || !r.Err() {
		return
	}
	if p.mentions("wrong_state", r, "STAT") {
		return
	}
	p.reply("wrong_state", r, "the reply to STAT before login (a TRANSACTION command in the AUTHORIZATION state), the last command of the CAPA connection", false)
	p.evidence("replies.wrong_state", c)
}

// reply records a status line as replies.<name> when its status is the
// one the profile key takes (profile.ReplyStatus). A response code is
// taken off: a server following the profile puts in the codes it
// advertises itself. With once an earlier value is kept. Texts are no
// conformance matter; they go into the observed profile and weigh
// lightly in the profile comparison.
func (p *prober) reply(name string, r harness.Reply, method string, once bool) {
	key := "replies." + name
	if _, seen := p.params[key]; seen && once {
		return
	}
	want := map[profile.Reply]string{profile.ReplyOK: "+OK", profile.ReplyErr: "-ERR"}[profile.ReplyStatus[name]]
	if r.Status != want {
		return
	}
	text := r.Text
	if code := r.Code(); code != "" {
		text = strings.TrimLeft(strings.TrimPrefix(text, "["+code+"]"), " ")
		method += "; its response code [" + code + "] taken off"
	}
	line := strings.TrimRight(r.Status+" "+text, " ")
	p.set(key, line, method)
}

// mentions skips replies.<name> when the reply repeats what (a command,
// a user name): no one text could say it for every command or user.
func (p *prober) mentions(name string, r harness.Reply, what string) bool {
	if what == "" || !hasWord(r.Text, what) {
		return false
	}
	if _, seen := p.params["replies."+name]; !seen {
		p.skip("replies."+name, fmt.Sprintf("the reply %q repeats %q", r.String(), what))
	}
	return true
}

// hasWord says whether text holds word, in any case, between spaces,
// quotes, brackets or punctuation ("STAT" is no word of "STATE.").
func hasWord(text, word string) bool {
	fields := strings.FieldsFunc(text, func(r rune) bool {
		return unicode.IsSpace(r) || strings.ContainsRune("\"'()[]<>,:;", r)
	})
	for _, f := range fields {
		if strings.EqualFold(strings.TrimRight(f, ".!?"), word) {
			return true
		}
	}
	return false
}

// splitBackend takes off the name of a backend server Exchange Online
// appends to its greeting: " [<base64 of the name in UTF-16LE>]".
func splitBackend(text string) (rest string, backend bool) {
	i := strings.LastIndex(text, " [")
	if i < 0 || !strings.HasSuffix(text, "]") {
		return text, false
	}
	b, err := base64.StdEncoding.DecodeString(text[i+2 : len(text)-1])
	if err != nil || len(b) == 0 || len(b)%2 != 0 {
		return text, false
	}
	return text[:i], true
}

// overlongSeen is how the server took a line refused for its length: its
// -ERR, and whether the connection closed after it or the next command
// got its own +OK.
type overlongSeen struct {
	reply        harness.Reply
	line         string
	closed, goes bool
}

// decideOverlong sets overlong_command (close or err) and replies.overlong
// from the refusals seen before login, else after it. A close counts
// only where the server does not close after any single -ERR in that
// state (close_after_errors 1): there the close would not be the line's.
func (p *prober) decideOverlong() {
	const key = "overlong_command"
	type side struct {
		seen   *overlongSeen
		budget string
		state  string
	}
	var found []side
	for _, s := range []side{
		{p.overlongAuth, "close_after_errors", "before login"},
		{p.overlongTx, "close_after_errors_transaction", "after login"},
	} {
		if s.seen == nil || (!s.seen.closed && !s.seen.goes) {
			continue
		}
		if n, _ := p.params[s.budget].(int); n == 1 && s.seen.closed {
			continue
		}
		found = append(found, s)
	}
	if len(found) == 0 {
		p.skip(key, "no line refused for its length with an -ERR followed by a close or by a reply to the next command")
		return
	}
	s := found[0]
	if len(found) > 1 && found[1].seen.closed != s.seen.closed {
		p.skip(key, fmt.Sprintf("a line refused for its length closes the connection in one state and not in the other (%s: closed %v)", s.state, s.seen.closed))
		return
	}
	v, what := profile.OverlongErr, "the next command got its own reply"
	if s.seen.closed {
		v, what = profile.OverlongClose, "the server closed the connection"
	}
	p.set(key, string(v), fmt.Sprintf("a line refused for its length %s got %q, then %s", s.state, maskArgs(s.seen.reply.String(), s.seen.line), what))
	if maskArgs(s.seen.reply.String(), s.seen.line) != s.seen.reply.String() {
		p.skip("replies.overlong", "the -ERR for an over-long line repeats the line")
		return
	}
	p.reply("overlong", s.seen.reply, "the -ERR for a line refused for its length "+s.state, false)
}

// unknownCommand records the reply to a short unknown command (XPRB and
// one short argument) unless it repeats the command, which no one text
// could say for every command.
func (p *prober) unknownCommand(line string, r harness.Reply, state string, once bool) {
	kw, arg, _ := strings.Cut(line, " ")
	if p.mentions("unknown_command", r, kw) || p.mentions("unknown_command", r, arg) {
		return
	}
	delete(p.obs.NotMeasured, "replies.unknown_command")
	p.reply("unknown_command", r, "the reply to an unknown command ("+kw+" and a short argument) "+state, once)
}

// The first tags of CAPA in Exchange's order (capa_order exchange); any
// other tag follows them.
var exchangeFirst = []string{"TOP", "UIDL", "SASL", "USER", "STLS"}

// trailing are the tags a server following a profile lists last in
// either order.
var trailing = []string{"IMPLEMENTATION", "LOGIN-DELAY", "EXPIRE"}

// capaTags returns a CAPA list's tags, upper case, without the trailing
// ones.
func capaTags(lines []string) []string {
	var tags []string
	for _, l := range lines {
		if f := strings.Fields(l); len(f) > 0 && !slices.Contains(trailing, strings.ToUpper(f[0])) {
			tags = append(tags, strings.ToUpper(f[0]))
		}
	}
	return tags
}

// fitsExchange says whether tags are in Exchange's order: TOP, UIDL,
// SASL, USER, STLS (those present) before every other tag.
func fitsExchange(tags []string) bool {
	rank := func(t string) int {
		if i := slices.Index(exchangeFirst, t); i >= 0 {
			return i
		}
		return len(exchangeFirst)
	}
	return slices.IsSortedFunc(tags, func(a, b string) int { return rank(a) - rank(b) })
}

// fitsTags says whether tags are in the order of capa_order tags: the
// profile's tags (in any order), then SASL, then STLS.
func fitsTags(tags []string) bool {
	rank := func(t string) int {
		switch t {
		case "SASL":
			return 1
		case "STLS":
			return 2
		}
		return 0
	}
	return slices.IsSortedFunc(tags, func(a, b string) int { return rank(a) - rank(b) })
}

// decideCapaOrder sets capa_order from the CAPA lists of every state:
// the order they all fit, when only one fits them all.
func (p *prober) decideCapaOrder() {
	const key = "capa_order"
	var lists [][]string
	var names []string
	for _, k := range []string{"capa_before_login", "capa_before_login_tls", "capa_after_stls", "capa_after_login"} {
		if l, ok := p.params[k].([]string); ok {
			lists = append(lists, capaTags(l))
			names = append(names, k)
		}
	}
	if len(lists) == 0 {
		p.skip(key, "no CAPA list")
		return
	}
	exchange, tags := true, true
	for _, l := range lists {
		exchange = exchange && fitsExchange(l)
		tags = tags && fitsTags(l)
	}
	from := strings.Join(names, ", ")
	switch {
	case exchange && !tags:
		p.set(key, string(profile.CAPAOrderExchange), "the CAPA lists ("+from+") put TOP, UIDL, SASL, USER, STLS first in that order, and not the other tags before SASL and STLS")
	case tags && !exchange:
		p.set(key, string(profile.CAPAOrderTags), "the CAPA lists ("+from+") put the tags before SASL, and SASL before STLS, and not TOP, UIDL, SASL, USER, STLS first")
	case tags:
		p.skip(key, "the CAPA lists ("+from+") fit both orders")
	default:
		p.skip(key, "the CAPA lists ("+from+") fit neither order a profile can say (tags, exchange)")
	}
}
