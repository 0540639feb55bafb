// Package observe measures a POP3 server's parameters after the
// conformance specs ran: the greeting, CAPA in each state, the longest
// command line accepted, the separators, the reply to USER of an unknown
// name, whether offered APOP logs in, sizes, UIDs, (when allowed) locking
// and the idle timers. It reports facts and judges nothing; the specs
// judge. It talks to the server through the suite's own wire client
// (harness.Open of the same configuration), so every connection is
// recorded and redacted like a spec's.
//
// Against a remote host it is readonly: it deletes nothing, never QUITs a
// session in which it retrieved a message, logs in twice at once (lock)
// only with the disruptive permission, and waits for the idle timers only
// with the slow one.
package observe

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/probe/report"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// Search bounds of the command length bisection (octets, CRLF included).
const (
	MinCommandOctets = 40
	MaxCommandOctets = 8192
)

// Defaults of Options.
const (
	// DefaultMaxConnections covers the most a measurement opens:
	// greeting and CAPA, plaintext USER, unknown USER and APOP (1 each),
	// separators (2), the line limit after login (a login per refused or
	// unproven line: at most maxProbeLines), before login (a connection
	// per line: about 16) and the argument limit (about 16), session (1),
	// lock (2) and the idle timers (2).
	DefaultMaxConnections = 96
	DefaultTimeout        = 3 * time.Minute
)

// Options say what to measure.
type Options struct {
	Config harness.Config
	// MaxConnections bounds every connection opened, one at a time
	// (default 48).
	MaxConnections int
	// Timeout bounds the whole measurement (default 3 minutes, plus the
	// wait for the idle timers when they are measured on a remote host:
	// see defaultTimeout).
	Timeout time.Duration
	// Target describes the server in the suggested profile's header.
	Target string
	// Facts are what the suite measured before its specs; nil measures
	// them here.
	Facts *harness.Facts
	// AwaitIdle, when set, says the measurement runs next to other
	// sessions of the run, and waits until they have ended. A connection
	// refused as a server at its limit refuses one (harness.LoadRefusal)
	// is then tried again once the server is the measurement's alone,
	// instead of being read as the server's answer to what was sent.
	AwaitIdle func(context.Context) error
}

// Run measures the server and compares the result with the profiles. An
// error means nothing could be measured (the target would not open);
// measurements that break off are listed in Observation.Errors.
func Run(ctx context.Context, o Options) (*report.Observed, error) {
	if o.MaxConnections <= 0 {
		o.MaxConnections = DefaultMaxConnections
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout(o.Config)
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	start := time.Now()
	t, err := harness.Open(ctx, o.Config)
	if err != nil {
		return nil, fmt.Errorf("opening the target: %w", err)
	}
	defer t.Close()
	p := &prober{
		t:         t,
		awaitIdle: o.AwaitIdle,
		budget:    o.MaxConnections,
		params:    map[string]any{},
		obs: report.Observation{
			Methods: map[string]string{}, NotMeasured: map[string]string{}, Evidence: map[string]string{},
		},
	}
	facts := o.Facts
	if facts == nil {
		// What could not be measured is in the facts' own Problems and
		// leaves its keys out (useFacts).
		_ = t.MeasureFacts(ctx)
		f := t.Facts()
		facts = &f
	}
	p.useFacts(*facts)
	p.measure(ctx)
	p.decideOverlong()
	p.decideCapaOrder()
	p.obs.Connections = p.conns
	p.obs.Seconds = time.Since(start).Seconds()

	secrets := report.Secrets{o.Config.Password, o.Config.Password2}
	for _, acc := range []*harness.Account{p.acc, p.apopAcc} {
		if acc != nil {
			secrets = append(secrets, acc.Password)
		}
	}
	cmds := t.Recorder().Commands()
	out := &report.Observed{Params: p.params, Observation: p.obs, Commands: &cmds}
	out.Profiles, err = CompareProfiles(p.params, o.Config.Profile)
	if err != nil {
		out.Observation.Errors = append(out.Observation.Errors, "comparing with the profiles: "+err.Error())
	}
	if len(out.Profiles) > 0 {
		base, err := loadMatch(out.Profiles[0], o.Config.Profile)
		if err == nil {
			out.SuggestedProfile, err = Suggest(p.params, p.obs.NotMeasured, base, o.Target, secrets)
		}
		if err != nil {
			out.Observation.Errors = append(out.Observation.Errors, "suggesting a profile: "+err.Error())
		}
	}
	secrets.ScrubValue(out)
	return out, nil
}

var errBudget = errors.New("connection budget used up")

// loadPause is the first wait before a connection refused for load is
// tried again (then twice and four times as long).
const loadPause = 250 * time.Millisecond

type prober struct {
	t *harness.Target
	// awaitIdle waits for the run's other sessions (Options.AwaitIdle);
	// nil once they have ended or when there are none.
	awaitIdle func(context.Context) error
	budget    int
	conns     int
	params    map[string]any
	obs       report.Observation
	acc       *harness.Account
	// apopAcc is the mailbox APOP was tried with (apopLogin).
	apopAcc *harness.Account

	// Facts later steps rely on.
	apopOffered    bool
	stls           bool
	plainBeforeTLS *bool
	unknownOK      *bool
	// overlongAuth and overlongTx are the last -ERR of a line refused
	// for its length before and after login (see decideOverlong).
	overlongAuth, overlongTx *overlongSeen
}

func (p *prober) set(key string, v any, method string) {
	p.params[key] = v
	if method != "" {
		p.obs.Methods[key] = method
	}
}

func (p *prober) skip(key, why string) { p.obs.NotMeasured[key] = why }

func (p *prober) evidence(key string, cs ...*harness.Conn) {
	var parts []string
	for _, c := range cs {
		if c != nil {
			parts = append(parts, c.Transcript().String())
		}
	}
	if len(parts) > 0 {
		p.obs.Evidence[key] = strings.Join(parts, "")
	}
}

func (p *prober) fail(step string, err error) {
	p.obs.Errors = append(p.obs.Errors, step+": "+err.Error())
}

// dial opens a connection: "plain", "tls" or the target's usual way.
func (p *prober) dial(ctx context.Context, how string) (*harness.Conn, error) {
	return p.dialOn(ctx, p.t, how)
}

// dialOn is dial to t, the target or a variant of the bundled server;
// either way the connection counts against the budget.
func (p *prober) dialOn(ctx context.Context, t *harness.Target, how string) (*harness.Conn, error) {
	if p.conns >= p.budget {
		return nil, errBudget
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.conns++
	dial := func() (*harness.Conn, error) {
		switch how {
		case "plain":
			return t.DialPlain(ctx)
		case "tls":
			return t.DialTLS(ctx)
		}
		return t.Dial(ctx)
	}
	// A refusal for load is no answer to what the step sends: the run's
	// other sessions, or this measurement's own connections the server
	// has not yet counted as closed, may hold the server's slots. Wait
	// for the former, or a moment, and try again.
	c, err := dial()
	for pause := loadPause; harness.LoadRefusal(c, err) && pause <= 4*loadPause; pause *= 2 {
		if c != nil {
			c.Close()
		}
		wait := func(ctx context.Context) error {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(pause):
				return nil
			}
		}
		if p.awaitIdle != nil {
			wait, p.awaitIdle = p.awaitIdle, nil
		}
		if werr := wait(ctx); werr != nil {
			return nil, werr
		}
		c, err = dial()
	}
	if err != nil && c != nil {
		c.Close()
	}
	return c, err
}

// authConn opens a connection ready for USER/PASS, under STLS when the
// server refused a plaintext USER (or the profile says it would).
func (p *prober) authConn(ctx context.Context) (*harness.Conn, error) {
	return p.authConnOn(ctx, p.t)
}

// authConnOn is authConn to t. A variant of the bundled server differs
// from the target only in its timers, so what was measured on the
// target (STLS, plaintext USER) holds for it too; its certificate is its
// own, hence its TLS configuration.
func (p *prober) authConnOn(ctx context.Context, t *harness.Target) (*harness.Conn, error) {
	c, err := p.dialOn(ctx, t, "")
	if err != nil {
		return c, err
	}
	plain := t.Profile.PlaintextBeforeTLS
	if p.plainBeforeTLS != nil {
		plain = *p.plainBeforeTLS
	}
	if profile.NeedsSTLS(c.TLS(), plain, p.stls) {
		r, err := c.StartTLS(t.TLSConfig())
		if err != nil || !r.OK() {
			return c, fmt.Errorf("STLS before USER/PASS: %s %v", r, err)
		}
	}
	return c, nil
}

func (p *prober) account(ctx context.Context) (harness.Account, error) {
	if p.acc != nil {
		return *p.acc, nil
	}
	a, err := p.t.Account(ctx)
	if err != nil {
		return a, err
	}
	p.acc = &a
	return a, nil
}

// flush closes the step's connections.
func (p *prober) flush() { p.t.Recorder().Flush() }

func (p *prober) measure(ctx context.Context) {
	steps := []struct {
		name string
		run  func(context.Context) error
	}{
		{"greeting and CAPA", p.greetingAndCapa},
		{"plaintext USER before TLS", p.plaintextBeforeTLS},
		{"USER of an unknown name", p.unknownUser},
		{"APOP", p.apopLogin},
		// Separators first: runs of SPACEs give command length a form.
		{"separators", p.separators},
		{"command length", p.commandLength},
		{"session", p.session},
		{"lock", p.lock},
		// Last: against a remote host it waits for minutes.
		{"idle timers", p.idleTimers},
	}
	for _, s := range steps {
		err := s.run(ctx)
		p.flush()
		if err != nil {
			p.fail(s.name, err)
		}
		if ctx.Err() != nil || errors.Is(err, errBudget) {
			return
		}
	}
}

// randomName is a user name no server holds.
func randomName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// --- greeting, CAPA, STLS ---

func (p *prober) greetingAndCapa(ctx context.Context) error {
	how := "plain"
	if !p.t.HasPlain() {
		how = "tls"
	}
	c, err := p.dial(ctx, how)
	if err != nil {
		return err
	}
	g := c.Greeting
	text, stamp := splitGreeting(g.Text)
	text, backend := splitBackend(text)
	p.set("greeting_line", g.String(), "the first line after connecting")
	p.set("greeting", text, "the greeting's text after +OK, without an APOP timestamp or a bracketed backend name")
	p.set("greeting_backend", backend, "the greeting ends in \" [<base64 of UTF-16LE>]\", a backend server's name as Exchange Online appends it")
	// The timestamp says the server offers APOP (RFC 1939 section 7);
	// whether APOP logs the account in is apop_login, and the profile
	// key apop is set from both (apopLogin).
	p.apopOffered = stamp != ""
	p.set("apop_timestamp", p.apopOffered, "a <...@...> msg-id in the greeting: the server offers APOP (RFC 1939 section 7)")
	if !p.apopOffered {
		p.set("apop", false, "no timestamp in the greeting, so no APOP (RFC 1939 section 7: a server that implements APOP includes one)")
	}
	p.evidence("greeting", c)

	var tags, sasl []string
	addCapa := func(lines []string) {
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) == 0 {
				continue
			}
			tag := strings.ToUpper(f[0])
			switch tag {
			case "SASL":
				for _, m := range f[1:] {
					sasl = appendNew(sasl, strings.ToUpper(m))
				}
			case "IMPLEMENTATION":
				p.set("implementation", strings.TrimSpace(l[len(f[0]):]), "the IMPLEMENTATION line of CAPA")
			case "LOGIN-DELAY":
				if len(f) > 1 {
					if n, err := strconv.Atoi(f[1]); err == nil {
						p.set("login_delay", (time.Duration(n) * time.Second).String(), "the LOGIN-DELAY line of CAPA")
					}
				}
			case "STLS":
			case "EXPIRE":
				p.set("expire", strings.Join(f[1:], " "), "the EXPIRE line of CAPA")
			default:
				tags = appendNew(tags, tag)
			}
		}
	}
	// Last on this connection: a command of the TRANSACTION state, for
	// the wrong-state reply; a server may close after it (C0005).
	defer p.wrongState(c)
	m, err := c.CmdMulti("CAPA")
	if err != nil {
		return fmt.Errorf("CAPA: %w", err)
	}
	if !m.OK() {
		p.set("capa", false, "CAPA before login")
		p.evidence("capa", c)
		return nil
	}
	p.set("capa", true, "CAPA before login")
	p.reply("capa", m.Reply, "the first line of CAPA on a new connection", false)
	before := m.Texts()
	key := "capa_before_login"
	if c.TLS() {
		key = "capa_before_login_tls"
	}
	p.set(key, before, "CAPA on a new connection")
	addCapa(before)
	if _, ok := p.params["implementation"]; !ok {
		p.set("implementation", "", "no IMPLEMENTATION line in CAPA")
	}
	if how == "plain" {
		p.stls = hasTag(before, "STLS")
		p.set("stls", p.stls, "STLS listed in CAPA on the plain port")
	} else {
		p.skip("stls", "the target has no plain port to offer STLS on")
	}
	if p.stls {
		r, err := c.StartTLS(p.t.TLSConfig())
		switch {
		case err != nil:
			p.fail("STLS", err)
		case !r.OK():
			p.set("stls_reply", r.String(), "reply to STLS")
		default:
			p.reply("stls", r, "the reply to STLS", false)
			if m, err := c.CmdMulti("CAPA"); err == nil && m.OK() {
				after := m.Texts()
				p.set("capa_after_stls", after, "CAPA after STLS")
				addCapa(after)
			}
		}
	}
	if st := c.ConnectionState(); st != nil && len(st.PeerCertificates) > 0 {
		p.set("tls_certificate_subject", st.PeerCertificates[0].Subject.String(), "the server certificate")
	}
	p.set("sasl", nonNil(sasl), "SASL mechanisms listed in CAPA (before login and after STLS), in order")
	p.set("capabilities", nonNil(tags), "CAPA tags besides SASL, STLS, IMPLEMENTATION, LOGIN-DELAY and EXPIRE, before login and after STLS")
	p.evidence("capa", c)
	return nil
}

// splitGreeting takes an RFC 1939 APOP timestamp off the greeting text.
func splitGreeting(text string) (rest, stamp string) {
	i := strings.LastIndexByte(text, '<')
	j := strings.LastIndexByte(text, '>')
	if i < 0 || j < i || !strings.Contains(text[i:j], "@") || strings.TrimSpace(text[j+1:]) != "" {
		return text, ""
	}
	return strings.TrimSpace(text[:i]), text[i : j+1]
}

func hasTag(lines []string, tag string) bool {
	for _, l := range lines {
		if f := strings.Fields(l); len(f) > 0 && strings.EqualFold(f[0], tag) {
			return true
		}
	}
	return false
}

func appendNew(list []string, v string) []string {
	for _, x := range list {
		if x == v {
			return list
		}
	}
	return append(list, v)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// --- USER before TLS, unknown USER ---

func (p *prober) plaintextBeforeTLS(ctx context.Context) error {
	if !p.t.HasPlain() {
		p.skip("plaintext_before_tls", "the target has no plain port")
		return nil
	}
	a, err := p.account(ctx)
	if err != nil {
		p.skip("plaintext_before_tls", err.Error())
		return nil
	}
	c, err := p.dial(ctx, "plain")
	if err != nil {
		return err
	}
	r, err := c.Cmd("USER " + a.User)
	if err != nil {
		return err
	}
	ok := r.OK()
	p.plainBeforeTLS = &ok
	p.set("plaintext_before_tls", ok, "USER of the account's own name on the plain port, before any STLS (no password sent)")
	if ok {
		p.skip("replies.plaintext_refused", "USER before STLS was accepted")
		if !p.mentions("user", r, a.User) {
			p.reply("user", r, "the reply to USER of the account's name", false)
		}
	} else if !p.mentions("plaintext_refused", r, a.User) {
		p.reply("plaintext_refused", r, "the reply to USER of the account's name on the plain port before STLS", false)
	}
	p.evidence("plaintext_before_tls", c)
	return nil
}

func (p *prober) unknownUser(ctx context.Context) error {
	c, err := p.authConn(ctx)
	if err != nil {
		return err
	}
	name := harness.NoSuchUser()
	r, err := c.Cmd("USER " + name)
	if err != nil {
		return err
	}
	v := "err"
	if r.OK() {
		v = "ok"
	} else if !r.Err() {
		v = r.Status
	}
	ok := r.OK()
	p.unknownOK = &ok
	p.set("unknown_user_reply", v, "USER of a random name no server holds")
	p.set("unknown_user_reply_text", strings.ReplaceAll(r.String(), name, "<name>"), "the whole reply, the name replaced by <name>")
	p.evidence("unknown_user_reply", c)
	if ok {
		// A failed login of a name no server holds: the failure's text,
		// without risk to the account.
		pr, err := c.Cmd("PASS " + randomName("pw"))
		if err == nil {
			p.reply("pass_failed", pr, "the reply to PASS after USER of a random name no server holds", false)
			p.evidence("replies.pass_failed", c)
		}
	}
	return nil
}

// --- APOP ---

// apopAccount is the mailbox the suite's APOP specs use: on the bundled
// server a fresh copy of the fixture "erin", which logs in with APOP
// where the server offers it; on a remote host the account (whose
// password is then taken as its APOP secret).
func (p *prober) apopAccount(ctx context.Context) (harness.Account, error) {
	a, err := p.t.AccountLike(ctx, "erin")
	if err != nil && errors.Is(err, harness.ErrUnavailable) && p.t.Reference() == nil {
		return p.account(ctx)
	}
	return a, err
}

// apopLogin tries APOP once, when the greeting offers it: on one
// connection, with the MD5 digest of that connection's timestamp and the
// account's password. A server may offer APOP and still refuse it for the
// account (GNU Mailutils takes APOP secrets from an APOP database only:
// "-ERR [AUTH] Bad login"). When APOP logs in, the session QUITs at once
// without touching the mail.
//
// The profile key apop describes what the server does for the suite's
// account, and the suite reads it that way: with apop true, V0012,
// RFC1939-7-apop-digest, RFC1939-7-apop-once and the RFC 1939 section 13
// specs expect APOP with that account's password to log in; with apop
// false, V0012 expects no timestamp and APOP to be refused, and the
// other APOP specs do not apply. So apop is true only when APOP logged in:
// for a server that offers APOP but refuses it for the account, the
// suggested profile, fed back with --profile, expects the refusal it will
// get, and V0012 alone reports the one real discrepancy, the timestamp
// that offers what the account cannot use. apop_timestamp keeps the
// offer.
func (p *prober) apopLogin(ctx context.Context) error {
	if !p.apopOffered {
		p.skip("apop_login", "the greeting has no timestamp: APOP is not offered")
		return nil
	}
	a, err := p.apopAccount(ctx)
	if err != nil {
		p.skip("apop_login", err.Error())
		p.skip("apop", "the greeting offers APOP, but no account to try it with: "+err.Error())
		return nil
	}
	p.apopAcc = &a
	c, err := p.authConn(ctx)
	if err != nil {
		return err
	}
	_, stamp := splitGreeting(c.Greeting.Text)
	if stamp == "" {
		p.evidence("apop_login", c)
		p.skip("apop_login", fmt.Sprintf("the greeting %q of the connection for APOP has no timestamp", c.Greeting.String()))
		p.skip("apop", "the greetings disagree on the APOP timestamp")
		return nil
	}
	r, err := c.Cmd("APOP " + a.User + " " + harness.APOPDigest(stamp, a.Password))
	if err != nil {
		return fmt.Errorf("APOP: %w", err)
	}
	// QUIT either way: nothing was retrieved or marked.
	_, _ = c.Quit()
	ok := r.OK()
	p.set("apop_login", ok, "APOP with the MD5 digest of the greeting's timestamp and the account's password, once: true when it logged in")
	p.set("apop_reply", r.String(), "the reply to that APOP")
	method := "the greeting offers APOP and APOP logged the account in"
	if !ok {
		method = "the greeting offers APOP (apop_timestamp), but APOP with the account's password was refused; the profile key says what the server does for the account, so false"
	}
	p.set("apop", ok, method)
	p.evidence("apop_login", c)
	return nil
}
