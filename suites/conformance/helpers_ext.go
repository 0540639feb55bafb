package conformance

// Helpers for the extension specs: RFC 2449 (CAPA, response codes),
// RFC 2595 (STLS), RFC 5034 with RFC 4616 (AUTH PLAIN) and RFC 3206.
// Every name starts with "ext" so that it cannot clash with another
// area's helpers.

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"pop3conformance/fixtures/profile"
	"pop3conformance/suites/harness"
	"pop3conformance/suites/verdict"
)

// extCapa is a parsed CAPA reply.
type extCapa struct {
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
func (k extCapa) Has(tag string) bool {
	_, ok := k.Tags[strings.ToUpper(tag)]
	return ok
}

// Params returns the parameters of tag.
func (k extCapa) Params(tag string) []string { return k.Tags[strings.ToUpper(tag)] }

// TagSet returns the upper-cased tags.
func (k extCapa) TagSet() []string {
	out := make([]string, 0, len(k.Tags))
	for t := range k.Tags {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// extCAPA sends CAPA and parses the answer; -ERR is a valid answer (the
// server has no extension mechanism), anything else is a failure.
func extCAPA(c *harness.Conn) extCapa {
	m := multi(c, "CAPA")
	ExpectWithOffset(1, m.OK() || m.Err()).To(BeTrue(), "CAPA: want +OK or -ERR, got %q", m.String())
	k := extCapa{OK: m.OK(), Multi: m, Tags: map[string][]string{}}
	for _, line := range m.Texts() {
		f := strings.Split(line, " ")
		if f[0] == "" {
			continue
		}
		k.Order = append(k.Order, f[0])
		k.Tags[strings.ToUpper(f[0])] = f[1:]
	}
	return k
}

// extNeedCAPA is extCAPA for specs whose rule presumes the extension
// mechanism: a server that answers CAPA with -ERR makes them moot.
func extNeedCAPA(c *harness.Conn) extCapa {
	k := extCAPA(c)
	if !k.OK {
		verdict.SkipNotApplicable("the server answers CAPA with -ERR (no RFC 2449 extension mechanism)")
	}
	return k
}

// extNeedTag ends the spec as not applicable when CAPA lacks tag.
func extNeedTag(k extCapa, tag, state string) {
	if !k.Has(tag) {
		verdict.SkipNotApplicable("the server does not advertise %s in CAPA %s", tag, state)
	}
}

// extPlainReady opens a session in AUTHORIZATION in which plaintext
// passwords may be used according to the profile: under TLS (STLS) when
// the profile forbids them before TLS.
func extPlainReady(ctx SpecContext, t *harness.Target) *harness.Conn {
	c := dial(ctx, t)
	if !c.TLS() && !t.Profile.PlaintextBeforeTLS {
		if !t.Profile.STLS {
			verdict.SkipInconclusive("the profile allows plaintext passwords only under TLS but offers no STLS; use %s=implicit", harness.EnvTLS)
		}
		r, err := c.StartTLS(t.TLSConfig())
		Expect(err).NotTo(HaveOccurred(), "STLS before a plaintext login")
		expectOK(r, "STLS")
	}
	return c
}

// extNeedPlainMech opens a session ready for AUTH PLAIN, or ends the spec
// as not applicable when CAPA does not list SASL PLAIN there.
func extNeedPlainMech(ctx SpecContext, t *harness.Target) (*harness.Conn, extCapa) {
	c := extPlainReady(ctx, t)
	k := extNeedCAPA(c)
	if !slices.Contains(extUpper(k.Params("SASL")), "PLAIN") {
		verdict.SkipNotApplicable("the server does not list PLAIN in its SASL capability (%q)", strings.Join(k.Params("SASL"), " "))
	}
	return c, k
}

func extUpper(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.ToUpper(s)
	}
	return out
}

// extPlain is the base64 of an RFC 4616 PLAIN message.
func extPlain(authz, authc, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(authz + "\x00" + authc + "\x00" + password))
}

// extAuthCont runs "AUTH <mech>" without an initial response, checks
// that the server answers with an empty challenge, sends response and
// returns the server's next line.
func extAuthCont(c *harness.Conn, mech, response string) harness.Reply {
	ch := cmd(c, "AUTH "+mech)
	ExpectWithOffset(1, ch.Status).To(Equal("+"), "AUTH %s without an initial response: want a continuation, got %q", mech, ch.String())
	r := cmd(c, response)
	return r
}

// extAuthPlainTry tries AUTH PLAIN with response and returns the final
// reply, whether the server sent an empty challenge first or refused the
// mechanism at once. The initial response goes after the challenge, so
// the command line stays short under any command limit.
func extAuthPlainTry(c *harness.Conn, response string) harness.Reply {
	r := cmd(c, "AUTH PLAIN")
	if r.Status != "+" {
		return r
	}
	return cmd(c, response)
}

// extAuthIR runs AUTH with an initial response. A line that the profile's
// command limit cannot carry ends the spec as not applicable: the client
// would have to use the empty challenge instead (RFC 5034 section 4).
func extAuthIR(t *harness.Target, c *harness.Conn, mech, ir string) harness.Reply {
	line := "AUTH " + mech + " " + ir
	if n := len(line) + 2; n > t.Profile.MaxCommandOctets {
		verdict.SkipNotApplicable("an AUTH line with this initial response has %d octets, more than the profile's %d-octet command limit", n, t.Profile.MaxCommandOctets)
	}
	return cmd(c, line)
}

// extStillAuthorization checks that the session is usable and still in
// AUTHORIZATION: STAT is refused, a login then works.
func extStillAuthorization(c *harness.Conn, a harness.Account, after string) {
	expectErr(cmd(c, "STAT"), "STAT in AUTHORIZATION after "+after)
	ExpectWithOffset(1, harness.LoginUserPass(c, a)).To(Succeed(), "USER/PASS login after %s", after)
	expectOK(cmd(c, "STAT"), "STAT after logging in")
}

// extCapaPair reads CAPA before login on the target's usual connection
// and after a USER/PASS login. tlsBefore says whether the first session
// ran under TLS.
type extCapaPair struct {
	Before, After extCapa
	TLSBefore     bool
}

func extCapaBoth(ctx SpecContext, t *harness.Target) extCapaPair {
	c := dial(ctx, t)
	before := extNeedCAPA(c)
	tlsBefore := c.TLS()
	_, _ = c.Quit()
	l, _ := login(ctx, t)
	after := extCAPA(l)
	Expect(after.OK).To(BeTrue(), "CAPA after login: %q", after.Multi.String())
	return extCapaPair{Before: before, After: after, TLSBefore: tlsBefore}
}

// extWithPlaintextLogin returns the target when the profile allows
// plaintext logins before TLS, otherwise a bundled variant that does. A
// remote host configured otherwise makes the spec inconclusive.
func extWithPlaintextLogin(ctx SpecContext, t *harness.Target) *harness.Target {
	if t.Profile.PlaintextBeforeTLS {
		return t
	}
	v, err := t.Variant(ctx, func(p *profile.Profile) { p.PlaintextBeforeTLS = true })
	if err != nil && isUnavailable(err) {
		verdict.SkipInconclusive("the profile allows no plaintext login before TLS, so no session reaches TRANSACTION without TLS")
	}
	Expect(err).NotTo(HaveOccurred())
	return v
}

// extNeedSTLS dials the plain listener and reads CAPA there; the spec
// ends inconclusive without a plain listener and not applicable when
// STLS is not advertised.
func extNeedSTLS(ctx SpecContext, t *harness.Target) (*harness.Conn, extCapa) {
	c := need(t.DialPlain(ctx))
	Expect(c.Greeting.OK()).To(BeTrue(), "greeting %q", c.Greeting)
	k := extNeedCAPA(c)
	extNeedTag(k, "STLS", "on the plain listener")
	return c, k
}

// extStartTLS runs STLS and the handshake and fails on any problem.
func extStartTLS(t *harness.Target, c *harness.Conn) {
	r, err := c.StartTLS(t.TLSConfig())
	ExpectWithOffset(1, err).NotTo(HaveOccurred(), "STLS and TLS handshake (reply %q)", r.String())
	expectOK(r, "STLS")
}

// extCodeRE is RFC 2449 section 3's resp-code: "[" resp-level *("/"
// resp-level) "]", a level being printable ASCII other than "/" and "]".
var extCodeRE = regexp.MustCompile(`^\[[\x21-\x2E\x30-\x5C\x5E-\x7E]+(/[\x21-\x2E\x30-\x5C\x5E-\x7E]+)*\]`)

var extUserSeq atomic.Int64

// extFreshName is a mailbox name no fixture or other spec uses.
func extFreshName() string {
	return fmt.Sprintf("ext%d.%d", GinkgoParallelProcess(), extUserSeq.Add(1))
}

// extFreshUser creates an empty mailbox with the given name and password
// on the bundled server and returns its login.
func extFreshUser(t *harness.Target, name, password string) harness.Account {
	ref := t.Reference()
	ExpectWithOffset(1, ref).NotTo(BeNil())
	ExpectWithOffset(1, ref.Store.AddUser(name, password, "")).To(Succeed(), "create user %s", name)
	return harness.Account{User: name, Password: password}
}

// extRaw is a bare client for the one check the harness connection cannot
// make with its exported methods: a TLS handshake after an arbitrary raw
// write (the STLS injection case). It keeps a transcript of its own,
// attached to the spec.
type extRaw struct {
	nc  net.Conn
	br  *bufio.Reader
	log []string
}

func extDialRaw(ctx context.Context, addr string) *extRaw {
	d := net.Dialer{Timeout: harness.DefaultTimeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	Expect(err).NotTo(HaveOccurred(), "connect %s", addr)
	r := &extRaw{nc: nc, br: bufio.NewReader(nc)}
	DeferCleanup(func() {
		nc.Close()
		AddReportEntry("transcript (raw client)", strings.Join(r.log, "\n"), ReportEntryVisibilityFailureOrVerbose)
	})
	r.log = append(r.log, "* connected to "+addr)
	return r
}

// write sends b in one write. Passwords are kept out of the log.
func (r *extRaw) write(b []byte) {
	for _, l := range strings.SplitAfter(string(b), "\n") {
		if l == "" {
			continue
		}
		kw, _, _ := strings.Cut(l, " ")
		if strings.EqualFold(kw, "PASS") {
			l = kw + " <redacted>\r\n"
		}
		r.log = append(r.log, "C: "+strings.TrimRight(l, "\r\n"))
	}
	Expect(r.nc.SetWriteDeadline(time.Now().Add(harness.DefaultTimeout))).To(Succeed())
	_, err := r.nc.Write(b)
	ExpectWithOffset(1, err).NotTo(HaveOccurred(), "write")
}

// line reads one line within d; ok is false on a timeout, closed reports
// EOF or a reset.
func (r *extRaw) line(d time.Duration) (s string, ok, closed bool) {
	_ = r.nc.SetReadDeadline(time.Now().Add(d))
	s, err := r.br.ReadString('\n')
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			if s != "" {
				r.log = append(r.log, "S: "+s+" <incomplete>")
			}
			return s, false, false
		}
		r.log = append(r.log, "* connection closed: "+err.Error())
		return s, false, true
	}
	r.log = append(r.log, "S: "+strings.TrimRight(s, "\r\n"))
	return s, true, false
}

// reply reads one line and fails when none arrives in time.
func (r *extRaw) reply() string {
	s, ok, _ := r.line(harness.DefaultTimeout)
	ExpectWithOffset(1, ok).To(BeTrue(), "no reply from the server")
	return s
}

// handshake starts TLS on the connection. Octets the server sent before
// it are a failure of the caller's check, so report them.
func (r *extRaw) handshake(cfg *tls.Config) error {
	if n := r.br.Buffered(); n > 0 {
		extra, _ := r.br.Peek(n)
		r.log = append(r.log, fmt.Sprintf("S: %q <sent before the TLS handshake>", extra))
		return fmt.Errorf("server sent %d octets after +OK to STLS, before the handshake", n)
	}
	tc := tls.Client(r.nc, cfg)
	_ = tc.SetDeadline(time.Now().Add(harness.DefaultTimeout))
	if err := tc.Handshake(); err != nil {
		r.log = append(r.log, "* TLS handshake failed: "+err.Error())
		return err
	}
	_ = tc.SetDeadline(time.Time{})
	r.log = append(r.log, "* TLS handshake done")
	r.nc = tc
	r.br = bufio.NewReader(tc)
	return nil
}
