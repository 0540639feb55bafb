// Package harness connects the conformance specs to a POP3 server: the
// bundled reference server started in-process, or a remote host. It holds
// the strict wire client and the transcripts used as evidence.
package harness

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pop3conformance/pop3conformance/fixtures"
	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/reference-server/embed"
	"github.com/pop3conformance/pop3conformance/reference-server/maildrop"
)

// ErrUnavailable says the target cannot provide what a spec needs; specs
// turn it into an inconclusive verdict.
var ErrUnavailable = errors.New("not available on this target")

// ErrCertificate is a TLS handshake refused because the server's
// certificate does not verify. That is a fact about the client's trust
// settings, not a POP3 deviation, so it counts as unavailable: the spec
// ends inconclusive and says how to trust the certificate.
var ErrCertificate = fmt.Errorf("the server's certificate does not verify, so TLS is %w (trust it with %s or %s=true; probe: --ca-file or --insecure-skip-verify)", ErrUnavailable, EnvCAFile, EnvInsecureSkipVerify)

// Account is a mailbox login.
type Account struct {
	User     string
	Password string
	// Fixture names the fixture account whose messages the maildrop holds
	// ("" when unknown).
	Fixture string
	// FixtureLost says why the declared fixture is no longer vouched for
	// (Fixture is then ""): the measured maildrop does not match it, or
	// a mutating spec of this run may have changed it.
	FixtureLost string
}

// Target is the server under test plus what the suite expects of it.
type Target struct {
	Config Config
	// Profile is what the specs expect.
	Profile *profile.Profile

	// rec is shared with variants, so a spec's evidence holds every
	// connection it opened, to whichever server.
	rec       *Recorder
	variant   bool
	tlsConf   *tls.Config
	plainAddr string // "" when the target has no plain listener
	tlsAddr   string // "" when the target has no implicit TLS listener
	ref       *embed.Instance
	seq       atomic.Int64
	// changed is set once a mutating spec ran against a remote account:
	// its maildrop may no longer hold the declared fixture.
	changed atomic.Bool
	// lost says how a spec found mail gone that the run had only marked
	// deleted (nil while none did): see NoteLost.
	lost atomic.Pointer[string]
	// facts are what MeasureFacts found (facts.go).
	facts factsBox

	mu       sync.Mutex
	variants []*Target
	// readings are what specs read once for the specs after them
	// (Remember, Recall).
	readings map[string]reading
}

// Open prepares the target: it loads the profiles and, for the bundled
// server, starts it on loopback ports of its own.
func Open(ctx context.Context, cfg Config) (*Target, error) {
	expect, err := profile.Load(cfg.Profile)
	if err != nil {
		return nil, err
	}
	t := &Target{Config: cfg, Profile: expect, rec: &Recorder{}}
	if cfg.Remote() {
		if err := t.openRemote(); err != nil {
			return nil, err
		}
		t.settleFor(expect)
		return t, nil
	}
	serverProfile := expect.Clone()
	if cfg.ReferenceProfile != "" {
		if serverProfile, err = profile.Load(cfg.ReferenceProfile); err != nil {
			return nil, fmt.Errorf("reference server: %w", err)
		}
	}
	// The bundled server needs every key; a profile the probe wrote may
	// leave some unknown (profile.Known).
	if err := serverProfile.Complete(); err != nil {
		return nil, fmt.Errorf("reference server: %w (give a bundled profile as the reference profile)", err)
	}
	if err := t.startReference(ctx, serverProfile, time.Time{}); err != nil {
		return nil, err
	}
	t.settleFor(serverProfile)
	return t, nil
}

// closeWait is how long a close of the server's is awaited (ExpectClose).
func (t *Target) closeWait() time.Duration {
	if t.ref != nil {
		return closeWaitReference
	}
	return closeWaitRemote
}

// CloseRaw closes a connection a spec opened outside the harness (a
// library's own, say). Where the sessions settle (Recorder.SettleSessions)
// it half-closes it first and waits for the server's close, as the
// harness does with its own sessions, so that the next spec's login finds
// the maildrop lock free.
func (t *Target) CloseRaw(nc net.Conn) error {
	if t.rec.settles() && halfClose(nc) == nil {
		drain(nc, nc, t.closeWait())
	}
	return nc.Close()
}

// settleFor settles the sessions (Recorder.SettleSessions) of a server
// that behaves as p and locks the maildrop: it frees the lock for the
// next spec only once it has seen the last one's session end.
func (t *Target) settleFor(p *profile.Profile) {
	if p.Lock == profile.LockExclusive {
		t.rec.SettleSessions()
	}
}

func (t *Target) openRemote() error {
	c := t.Config
	conf := &tls.Config{ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	if conf.ServerName == "" {
		conf.ServerName = c.Host
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return fmt.Errorf("%s: %w", EnvCAFile, err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s %s: no PEM certificate found", EnvCAFile, c.CAFile)
		}
		conf.RootCAs = pool
	}
	t.tlsConf = conf
	if c.TLS == TLSImplicit {
		t.tlsAddr = c.Addr()
	} else {
		t.plainAddr = c.Addr()
	}
	return nil
}

func (t *Target) startReference(ctx context.Context, p *profile.Profile, clock time.Time) error {
	in, err := embed.Start(ctx, embed.Options{Profile: p, Plain: embed.Loopback, TLS: embed.Loopback, Clock: clock})
	if err != nil {
		return fmt.Errorf("reference server: %w", err)
	}
	t.plainAddr, t.tlsAddr = in.Plain, in.TLS
	t.tlsConf = &tls.Config{RootCAs: in.CertPool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	t.ref = in
	return nil
}

// Close stops the bundled server and every variant.
func (t *Target) Close() error {
	if !t.variant {
		// A variant shares its parent's recorder; the parent flushes it.
		t.rec.Flush()
		t.Release()
	}
	t.mu.Lock()
	vs := t.variants
	t.variants = nil
	t.mu.Unlock()
	var errs []error
	for _, v := range vs {
		errs = append(errs, v.Close())
	}
	if t.ref != nil {
		ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
		defer cancel()
		errs = append(errs, t.ref.Close(ctx))
		t.ref = nil
	}
	return errors.Join(errs...)
}

// Name describes the target for reports.
func (t *Target) Name() string {
	if t.ref != nil {
		return "bundled reference server (profile " + t.ref.Profile.Name + ")"
	}
	return t.Config.Addr() + " (" + string(t.Config.TLS) + ")"
}

// Reference returns the bundled server, or nil for a remote host. Its
// Profile may differ from the expectations when discrimination is being
// tested. Specs reach its state through its Control only.
func (t *Target) Reference() *embed.Instance { return t.ref }

// Recorder returns the transcripts of the connections opened since the
// last flush.
func (t *Target) Recorder() *Recorder { return t.rec }

// TLSConfig is the client TLS configuration for the target.
func (t *Target) TLSConfig() *tls.Config { return t.tlsConf.Clone() }

// Mode is how Dial reaches the server.
func (t *Target) Mode() TLSMode {
	if t.ref != nil {
		return TLSNone
	}
	return t.Config.TLS
}

// Dial connects the usual way for the target (plain, STLS or implicit TLS)
// and reads the greeting. Like every dial method it ties the connection
// to ctx: once ctx ends (a spec's timeout, the probe's --timeout), reads
// and writes on it fail with ErrInterrupted. Pass a context that lives as
// long as the connection is used.
func (t *Target) Dial(ctx context.Context) (*Conn, error) {
	switch t.Mode() {
	case TLSImplicit:
		return t.DialTLS(ctx)
	case TLSStartTLS:
		c, err := t.DialPlain(ctx)
		if err != nil {
			return nil, err
		}
		r, err := c.StartTLS(t.tlsConf)
		if err != nil {
			return c, fmt.Errorf("STLS: %w", err)
		}
		if !r.OK() {
			return c, fmt.Errorf("STLS refused: %s", r)
		}
		return c, nil
	}
	return t.DialPlain(ctx)
}

// DialPlain opens a connection without TLS.
func (t *Target) DialPlain(ctx context.Context) (*Conn, error) {
	if t.plainAddr == "" {
		return nil, fmt.Errorf("plain POP3 port: %w (the target is configured for implicit TLS)", ErrUnavailable)
	}
	return t.dial(ctx, t.plainAddr, false)
}

// DialTLS opens an implicit TLS connection.
func (t *Target) DialTLS(ctx context.Context) (*Conn, error) {
	if t.tlsAddr == "" {
		return nil, fmt.Errorf("implicit TLS port: %w (set %s=implicit to test one)", ErrUnavailable, EnvTLS)
	}
	return t.dial(ctx, t.tlsAddr, true)
}

// HasPlain and HasTLS say which listeners the target has.
func (t *Target) HasPlain() bool { return t.plainAddr != "" }
func (t *Target) HasTLS() bool   { return t.tlsAddr != "" }

// PlainAddr and TLSAddr are the listener addresses ("" when absent).
func (t *Target) PlainAddr() string { return t.plainAddr }
func (t *Target) TLSAddr() string   { return t.tlsAddr }

// namedConn wraps a new connection to addr, named for its transcript.
func (t *Target) namedConn(nc net.Conn, addr string, implicit bool) *Conn {
	name := fmt.Sprintf("connection %d to %s", t.seq.Add(1), addr)
	if implicit {
		name += " (implicit TLS)"
	}
	return newConn(nc, newTranscript(name), false)
}

// adopt makes c one of the current spec's connections: its guard (opened
// says whether it counts as opened now), bound to ctx, tracked.
func (t *Target) adopt(ctx context.Context, c *Conn, opened bool) {
	c.guard = t.lineGuard(opened, false)
	c.guard.note = c.tr.note
	c.closeWait = t.closeWait()
	c.bind(ctx)
	t.rec.track(c)
}

func (t *Target) dial(ctx context.Context, addr string, implicit bool) (*Conn, error) {
	t.rec.release()
	if err := t.busyDial(); err != nil {
		return nil, err
	}
	if c := t.takeAhead(ctx, addr, implicit); c != nil {
		t.dialAhead(addr, implicit)
		return c, nil
	}
	d := net.Dialer{Timeout: DefaultTimeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		if t.busyConnect(err) {
			return nil, t.markBusy("connect "+addr, err)
		}
		return nil, fmt.Errorf("connect %s: %w", addr, err)
	}
	c := t.namedConn(nc, addr, implicit)
	t.adopt(ctx, c, true)
	if implicit {
		if err := c.handshake(t.tlsConf); err != nil {
			return c, err
		}
	}
	wait := c.Timeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
		wait = max(time.Until(dl), 0).Round(100 * time.Millisecond)
	}
	g, err := c.ReadReply()
	if err != nil && t.busyConnect(err) {
		return c, t.markBusy("greeting", err)
	}
	if err != nil {
		var ne net.Error
		if (errors.As(err, &ne) && ne.Timeout()) || (errors.Is(err, ErrInterrupted) && errors.Is(ctx.Err(), context.DeadlineExceeded)) {
			return c, fmt.Errorf("no greeting within %v: %w", wait, err)
		}
		return c, fmt.Errorf("greeting: %w", err)
	}
	c.Greeting = g
	c.guard.SetGreeting(g.Text)
	if t.busyGreeting(g) {
		return c, t.markBusy("greeting "+g.String(), nil)
	}
	t.dialAhead(addr, implicit)
	return c, nil
}

// Account returns a login whose maildrop holds the fixture "alice" when
// the target is the bundled server (a fresh copy for every call, so specs
// never see each other's changes), or POP3_USER on a remote host.
func (t *Target) Account(ctx context.Context) (Account, error) {
	return t.AccountLike(ctx, "alice")
}

// AccountLike returns a fresh copy of the named fixture account on the
// bundled server. On a remote host it returns POP3_USER when its maildrop
// is declared to hold that fixture (POP3_MAILBOX_FIXTURE), or, for
// "alice", POP3_USER with unknown content.
func (t *Target) AccountLike(_ context.Context, fixture string) (Account, error) {
	if t.ref == nil {
		c := t.Config
		lost := t.fixtureLost()
		switch {
		case c.MailboxFixture == fixture && lost == "":
			return Account{User: c.User, Password: c.Password, Fixture: fixture}, nil
		case fixture == "alice":
			// Content unknown (or no longer known): specs check only
			// what holds for any maildrop.
			return Account{User: c.User, Password: c.Password, FixtureLost: lost}, nil
		case c.MailboxFixture == fixture:
			return Account{}, fmt.Errorf("a mailbox holding fixture %q: %w: %s", fixture, ErrUnavailable, lost)
		}
		return Account{}, fmt.Errorf("a mailbox like fixture %q: %w (set %s=%s on an account prepared that way)", fixture, ErrUnavailable, EnvMailboxFixture, fixture)
	}
	return t.copyFixture(fixture, fmt.Sprintf("%s.%d", fixture, t.seq.Add(1)))
}

// copyFixture makes the account name on the bundled server, a copy of
// the fixture account.
func (t *Target) copyFixture(fixture, name string) (Account, error) {
	password, err := t.ref.Control.CopyFixture(fixture, name)
	if err != nil {
		return Account{}, fmt.Errorf("clone fixture %s: %w", fixture, err)
	}
	a := Account{User: name, Password: password, Fixture: fixture}
	t.rec.issue(a)
	return a, nil
}

// NoteChanged records that a spec may have changed the remote account's
// maildrop (a committed DELE, an expired message): from then on the
// declared fixture is no longer vouched for, so specs comparing content
// with it end inconclusive instead of blaming the server. The bundled
// server gives every spec a fresh copy and needs no such care.
func (t *Target) NoteChanged() { t.changed.Store(true) }

// NoteLost records that the remote server lost mail the run had only
// marked deleted: a RSET or a close without QUIT did not bring it back
// (why says what was seen). From then on no spec sends a DELE that relies
// on the server to undo it, and the declared fixture is no longer vouched
// for. The first report stands.
func (t *Target) NoteLost(why string) {
	if t.ref == nil {
		t.lost.CompareAndSwap(nil, &why)
	}
}

// Lost says how the server lost mail the run had only marked deleted, ""
// while it has not (NoteLost).
func (t *Target) Lost() string {
	if p := t.lost.Load(); p != nil {
		return *p
	}
	return ""
}

// fixtureLost says why the remote account's declared fixture is not
// vouched for, or "" while it is (or none is declared).
func (t *Target) fixtureLost() string {
	if t.Config.MailboxFixture == "" {
		return ""
	}
	if lost := t.Lost(); lost != "" {
		return fmt.Sprintf("the server lost mail of %s that the run had only marked deleted (%s), so it is no longer known to hold the declared fixture %s", t.Config.User, lost, t.Config.MailboxFixture)
	}
	if fx := t.Facts().Fixture; fx.Checked && !fx.Match {
		return fx.Reason
	}
	if t.changed.Load() {
		return fmt.Sprintf("an earlier mutating spec of this run may have changed the maildrop of %s, so it is no longer known to hold the declared fixture %s (prepare it again and re-run)", t.Config.User, t.Config.MailboxFixture)
	}
	return ""
}

// SecondAccount returns another mailbox on the same server: a copy of
// "bob" on the bundled server, POP3_USER2 on a remote host.
func (t *Target) SecondAccount(ctx context.Context) (Account, error) {
	if t.ref == nil {
		if t.Config.User2 == "" {
			return Account{}, fmt.Errorf("a second account: %w (set %s and %s)", ErrUnavailable, EnvUser2, EnvPassword2)
		}
		return Account{User: t.Config.User2, Password: t.Config.Password2}, nil
	}
	return t.AccountLike(ctx, "bob")
}

// Login connects and logs in with USER/PASS, after STLS when the profile
// does not allow plaintext logins before TLS. The connection is in the
// TRANSACTION state when err is nil.
func (t *Target) Login(ctx context.Context, a Account) (*Conn, error) {
	return t.loginOnFirst(ctx, nil, a)
}

// loginOnFirst is Login whose first attempt runs on first, a connection
// just dialed, when it is not nil.
func (t *Target) loginOnFirst(ctx context.Context, first *Conn, a Account) (*Conn, error) {
	// The previous spec's sessions were closed without QUIT (QUIT would
	// commit what a reversible spec marked), and so were the parameter
	// measurement's. A server that locks the maildrop notices the close a
	// moment later, so a PASS refused just after that, without an [AUTH]
	// code, or at any time with [IN-USE] (RFC 2449: locked, try later),
	// is tried again briefly.
	for wait := 50 * time.Millisecond; ; wait *= 2 {
		var (
			c   *Conn
			err error
		)
		if first != nil {
			c, first = first, nil
			err = t.loginOn(c, a)
		} else {
			c, err = t.login(ctx, a)
		}
		var pe *PassError
		if err == nil || !errors.As(err, &pe) || !pe.MayBeBusy() || wait > 800*time.Millisecond ||
			(!t.rec.FlushedWithin(3*time.Second) && !strings.EqualFold(pe.Reply.Code(), "IN-USE")) {
			return c, err
		}
		c.Close()
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
	}
}

func (t *Target) login(ctx context.Context, a Account) (*Conn, error) {
	c, err := t.Dial(ctx)
	if err != nil {
		return c, err
	}
	return c, t.loginOn(c, a)
}

// loginOn logs in on c, just connected: STLS first where the profile
// needs it, then USER and PASS. A refused PASS the run's own sessions may
// have caused is ErrBusy in a worker.
func (t *Target) loginOn(c *Conn, a Account) error {
	if err := t.secureForLogin(c); err != nil {
		return err
	}
	err := LoginUserPass(c, a)
	var pe *PassError
	if errors.As(err, &pe) && t.busyLogin(a, pe) {
		return t.markBusy("PASS refused: "+pe.Reply.String(), nil)
	}
	return err
}

// secureForLogin runs STLS on c, just connected, where the profile
// refuses plaintext logins before TLS.
func (t *Target) secureForLogin(c *Conn) error {
	if t.Profile.NeedsSTLS(c.TLS()) {
		if r, err := c.StartTLS(t.tlsConf); err != nil || !r.OK() {
			return fmt.Errorf("STLS before login: %v %v", r, err)
		}
	}
	return nil
}

// PassError is a PASS the server refused.
type PassError struct {
	User  string
	Reply Reply
}

func (e *PassError) Error() string { return fmt.Sprintf("PASS for %s: %s", e.User, e.Reply) }

// MayBeBusy says whether the refusal may be a maildrop still locked by a
// session that just ended, worth a retry: any but one with [AUTH], which
// blames the credentials (RFC 3206).
func (e *PassError) MayBeBusy() bool { return !strings.EqualFold(e.Reply.Code(), "AUTH") }

// LoginUserPass runs USER and PASS on an open connection.
func LoginUserPass(c *Conn, a Account) error {
	if err := userCmd(c, a); err != nil {
		return err
	}
	return passOn(c, a)
}

// userCmd sends USER; a refusal is an error.
func userCmd(c *Conn, a Account) error {
	r, err := c.Cmd("USER " + a.User)
	if err != nil {
		return err
	}
	if !r.OK() {
		return fmt.Errorf("USER %s: %s", a.User, r)
	}
	return nil
}

// passOn sends PASS after USER; a refusal is a *PassError.
func passOn(c *Conn, a Account) error {
	r, err := c.Cmd("PASS " + a.Password)
	if err != nil {
		return err
	}
	if !r.OK() {
		return &PassError{User: a.User, Reply: r}
	}
	return nil
}

// Variant starts another bundled server whose profile, and the
// expectations, are changed by mutate: a short timer, LoginType
// SecureLogin, a quota. It fails with ErrUnavailable on a remote host,
// where only the server's operator can change such settings.
func (t *Target) Variant(ctx context.Context, mutate func(*profile.Profile)) (*Target, error) {
	return t.VariantWith(ctx, VariantOptions{Mutate: mutate})
}

// VariantOptions say how a variant of the bundled server differs from
// the target.
type VariantOptions struct {
	// Mutate changes the server's profile and the expectations alike; nil
	// keeps both.
	Mutate func(*profile.Profile)
	// Clock, when not zero, starts a test clock for the variant's store
	// (delivery times, and the age at which retention removes mail,
	// E0005) that moves only by Reference().Control.Advance. The fixture
	// accounts are seeded at that time. Zero is the real clock.
	Clock time.Time
}

// VariantWith starts another bundled server as opts say; a variant has a
// store of its own, so faults injected into it (Control.FailRemovals)
// touch no other spec. It fails with ErrUnavailable on a remote host.
func (t *Target) VariantWith(ctx context.Context, opts VariantOptions) (*Target, error) {
	if t.ref == nil {
		return nil, fmt.Errorf("a server with changed settings: %w (only the bundled reference server can be reconfigured)", ErrUnavailable)
	}
	mutate := opts.Mutate
	if mutate == nil {
		mutate = func(*profile.Profile) {}
	}
	serverProfile := t.ref.Profile.Clone()
	mutate(serverProfile)
	expect := t.Profile.Clone()
	mutate(expect)
	if err := serverProfile.Validate(); err != nil {
		return nil, fmt.Errorf("variant profile: %w", err)
	}
	v := &Target{Config: t.Config, Profile: expect, rec: t.rec, variant: true}
	if err := v.startReference(ctx, serverProfile, opts.Clock); err != nil {
		return nil, err
	}
	v.setFacts(deriveFacts(serverProfile))
	t.mu.Lock()
	t.variants = append(t.variants, v)
	t.mu.Unlock()
	return v, nil
}

// FixtureMessage is one message of a fixture account, as the server must
// return it: CRLF line ends, not byte-stuffed.
type FixtureMessage struct {
	Name string
	Data []byte
}

// FixtureAccount returns the fixture account's login as users.yaml gives it.
func FixtureAccount(name string) (Account, error) {
	u, err := fixtureUserNamed(name)
	if err != nil {
		return Account{}, err
	}
	return Account{User: u.Name, Password: u.Password, Fixture: u.Name}, nil
}

func fixtureUserNamed(name string) (maildrop.SeedUser, error) {
	users, err := maildrop.ReadSeed(fixtures.Mailboxes())
	if err != nil {
		return maildrop.SeedUser{}, fmt.Errorf("fixtures: %w", err)
	}
	for _, u := range users {
		if u.Name == name {
			return u, nil
		}
	}
	return maildrop.SeedUser{}, fmt.Errorf("fixtures: no account %q", name)
}

// FixtureMessages returns the messages of the named fixture account in
// maildrop order, as the store keeps them.
func FixtureMessages(name string) ([]FixtureMessage, error) {
	u, err := fixtureUserNamed(name)
	if err != nil {
		return nil, err
	}
	out := make([]FixtureMessage, 0, len(u.Messages))
	for _, m := range u.Messages {
		data, err := fs.ReadFile(fixtures.Mailboxes(), m)
		if err != nil {
			return nil, fmt.Errorf("fixtures: %w", err)
		}
		out = append(out, FixtureMessage{Name: m, Data: maildrop.Normalize(data)})
	}
	return out, nil
}
