package conformance

// Helpers that read and judge CAPA (RFC 2449) replies.

import (
	"regexp"
	"slices"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// capabilities is a parsed CAPA reply.
type capabilities struct {
	// OK is false when the server answered CAPA with -ERR.
	OK    bool
	Multi harness.Multi
	// Tags maps the upper-cased tag to its parameters, in the order listed.
	Tags map[string][]string
	// Order holds the tags as the server spelled them, in CAPA order.
	Order []string
}

// Has reports whether tag is listed; tags are case-insensitive (RFC 2449
// section 5).
func (k capabilities) Has(tag string) bool {
	_, ok := k.Tags[strings.ToUpper(tag)]
	return ok
}

// Params returns the parameters of tag.
func (k capabilities) Params(tag string) []string { return k.Tags[strings.ToUpper(tag)] }

// TagSet returns the upper-cased tags.
func (k capabilities) TagSet() []string {
	out := make([]string, 0, len(k.Tags))
	for t := range k.Tags {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// SASL returns the upper-cased mechanisms of the SASL capability.
func (k capabilities) SASL() []string { return upperAll(k.Params("SASL")) }

// readCapa sends CAPA and parses the answer; -ERR is a valid answer (the
// server has no extension mechanism, as with RFC 1939 alone), anything
// else is a failure.
func readCapa(c *harness.Conn) capabilities {
	m := multi(c, "CAPA")
	ExpectWithOffset(1, m.OK() || m.Err()).To(BeTrue(), "CAPA: want +OK or -ERR, got %q", m.String())
	k := capabilities{OK: m.OK(), Multi: m}
	k.parse(m.Texts())
	return k
}

// parse fills Tags and Order from the lines of a CAPA list.
func (k *capabilities) parse(lines []string) {
	k.Tags = map[string][]string{}
	for _, line := range lines {
		f := strings.Split(line, " ")
		if f[0] == "" {
			continue
		}
		k.Order = append(k.Order, f[0])
		k.Tags[strings.ToUpper(f[0])] = f[1:]
	}
}

// needCapaFresh is needCapa on a connection the spec has just opened as
// the target is usually reached, nothing sent on it yet. The facts read
// CAPA on such a connection before any spec: the spec takes that list
// instead of asking again, a round trip less, and its transcript says
// so. Anywhere else (after STLS, on another port, or without the facts'
// list) it asks.
func needCapaFresh(t *harness.Target, c *harness.Conn) capabilities {
	lines := t.Facts().CapaLines
	usual := (t.Mode() == harness.TLSNone && !c.TLS()) || (t.Mode() == harness.TLSImplicit && c.TLS())
	if len(lines) == 0 || !usual || c.LastCommand() != "" {
		return needCapa(c)
	}
	k := capabilities{OK: true}
	k.parse(lines)
	c.Note("CAPA not sent: the measurement before the specs read it on a connection like this one: " + strings.Join(lines, " | "))
	return k
}

// needCapa is readCapa for specs whose rule presumes the extension
// mechanism: a server that answers CAPA with -ERR makes them moot.
func needCapa(c *harness.Conn) capabilities {
	k := readCapa(c)
	if !k.OK {
		verdict.SkipNotApplicable("the server answers CAPA with -ERR (no RFC 2449 extension mechanism)")
	}
	return k
}

// needTag ends the spec as not applicable when CAPA lacks tag.
func needTag(k capabilities, tag, state string) {
	if !k.Has(tag) {
		verdict.SkipNotApplicable("the server does not advertise %s in CAPA %s", tag, state)
	}
}

// needProfileCapability ends the spec not applicable when the profile does
// not list an optional command of RFC 1939 section 7 among its
// capabilities.
func needProfileCapability(t *harness.Target, tag string) {
	if !t.Profile.HasCapability(tag) {
		verdict.SkipNotApplicable("the profile does not list the optional command %s in CAPA", tag)
	}
}

// capaPair holds CAPA before login, on the target's usual connection, and
// after a USER/PASS login on another. TLSBefore and TLSAfter say whether
// each session ran under TLS.
type capaPair struct {
	Before, After       capabilities
	TLSBefore, TLSAfter bool
}

// capaBoth reads CAPA in AUTHORIZATION and in TRANSACTION once for every
// spec that judges the two lists. A server that answers CAPA with -ERR
// before login makes each such spec not applicable (needCapa).
var capaBoth = Reading[capaPair]{name: "CAPA before and after login", read: func(ctx SpecContext, t *harness.Target) capaPair {
	c := dial(ctx, t)
	p := capaPair{Before: needCapa(c), TLSBefore: c.TLS()}
	_, _ = c.Quit()
	l, _ := login(ctx, t)
	p.After, p.TLSAfter = readCapa(l), l.TLS()
	return p
}}

// capaBothStates is capaBoth for specs that need a list after login as
// well: -ERR there fails them.
func capaBothStates(ctx SpecContext, t *harness.Target) capaPair {
	p := capaBoth.Get(ctx, t)
	ExpectWithOffset(1, p.After.OK).To(BeTrue(), "CAPA after login: %q", p.After.Multi.String())
	return p
}

func upperAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.ToUpper(s)
	}
	return out
}

// respCodeRE is RFC 2449 section 3's resp-code: "[" resp-level *("/"
// resp-level) "]", a level being printable ASCII other than "/" and "]".
var respCodeRE = regexp.MustCompile(`^\[[\x21-\x2E\x30-\x5C\x5E-\x7E]+(/[\x21-\x2E\x30-\x5C\x5E-\x7E]+)*\]`)
