package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pop3conformance/pop3conformance/model/profile"
)

// Tri is a yes/no fact that may not have been measured.
type Tri int8

const (
	Unknown Tri = iota
	Yes
	No
)

func triOf(b bool) Tri {
	if b {
		return Yes
	}
	return No
}

func (v Tri) String() string {
	switch v {
	case Yes:
		return "yes"
	case No:
		return "no"
	}
	return "unknown"
}

// MarshalText writes the fact as yes, no or unknown.
func (v Tri) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText reads what MarshalText wrote; anything else is unknown.
func (v *Tri) UnmarshalText(b []byte) error {
	switch string(b) {
	case "yes":
		*v = Yes
	case "no":
		*v = No
	default:
		*v = Unknown
	}
	return nil
}

// factsTimeout bounds MeasureFacts as a whole.
const factsTimeout = 45 * time.Second

// ErrorCap is how many unknown commands a measurement sends in one
// session: enough to tell a server that closes soon (Dovecot: 3) from one
// that never does, few enough to stay cheap.
const ErrorCap = 10

// ErrorLimit is how a server treated a run of unknown commands in one
// state.
type ErrorLimit struct {
	// Measured is false when the session could not be opened.
	Measured bool `json:"measured" yaml:"measured"`
	// Closes is true when the server closed the connection after
	// Replies -ERR replies; false when it was still open after Cap.
	Closes  bool `json:"closes" yaml:"closes"`
	Replies int  `json:"replies" yaml:"replies"`
	Cap     int  `json:"cap" yaml:"cap"`
}

// Limit is the number of -ERR replies after which the server closes the
// session, or 0 when it did not close within the cap (or was not
// measured).
func (l ErrorLimit) Limit() int {
	if l.Measured && l.Closes {
		return l.Replies
	}
	return 0
}

func (l ErrorLimit) String() string {
	switch {
	case !l.Measured:
		return "not measured"
	case l.Closes:
		return fmt.Sprintf("closes after %s", Count(l.Replies, "-ERR reply"))
	}
	return fmt.Sprintf("still open after %s", Count(l.Replies, "-ERR reply"))
}

// Size kinds of a maildrop that holds the declared fixture.
const (
	SizesExact   = "exact"   // LIST gives the octets RETR sends
	SizesProfile = "profile" // LIST gives the profile's storage-based size
	SizesOther   = "other"   // neither; RETR showed the content matches
)

// FixtureCheck compares the maildrop with the fixture it is declared to
// hold (POP3_MAILBOX_FIXTURE; alice on the bundled server).
type FixtureCheck struct {
	// Name is the declared fixture; "" when none is declared.
	Name    string `json:"name,omitempty" yaml:"name,omitempty"`
	Checked bool   `json:"checked" yaml:"checked"`
	Match   bool   `json:"match" yaml:"match"`
	// Messages and Octets are what STAT said.
	Messages int   `json:"messages" yaml:"messages"`
	Octets   int64 `json:"octets" yaml:"octets"`
	// WantMessages and WantOctets are the fixture's, CRLF line ends.
	WantMessages int   `json:"want_messages" yaml:"want_messages"`
	WantOctets   int64 `json:"want_octets" yaml:"want_octets"`
	// Sizes says how LIST sized the messages when the count matched.
	Sizes string `json:"sizes,omitempty" yaml:"sizes,omitempty"`
	// Reason says why the maildrop does not match.
	Reason string `json:"reason,omitempty" yaml:"reason,omitempty"`
}

// Facts are what the suite measured about the target before any spec
// ran, so that specs check liveness with commands the server answers,
// stay within its error budget and compare content with the declared
// fixture only while the maildrop holds it.
type Facts struct {
	Measured bool `json:"measured" yaml:"measured"`
	// Derived is true when the facts follow from the bundled server's
	// profile instead of the wire (variants of the bundled server).
	Derived bool `json:"derived,omitempty" yaml:"derived,omitempty"`
	// CapaAuthorization and CapaTransaction: CAPA answered +OK.
	CapaAuthorization Tri `json:"capa_authorization" yaml:"capa_authorization"`
	CapaTransaction   Tri `json:"capa_transaction" yaml:"capa_transaction"`
	// CapaLines are the lines of CAPA's +OK answer before login, read on
	// a connection as the target is usually reached: a spec that needs to
	// know only what is listed there, before it sends anything, need not
	// ask again.
	CapaLines []string `json:"capa_lines,omitempty" yaml:"capa_lines,omitempty"`
	// NoopTransaction: NOOP answered +OK after login.
	NoopTransaction Tri `json:"noop_transaction" yaml:"noop_transaction"`
	// Authorization and Transaction: unknown commands until the close.
	Authorization ErrorLimit `json:"authorization_errors" yaml:"authorization_errors"`
	Transaction   ErrorLimit `json:"transaction_errors" yaml:"transaction_errors"`
	// FailedPassCloses: the server closed the connection after refusing
	// PASS for a mailbox that does not exist.
	FailedPassCloses Tri          `json:"failed_pass_closes" yaml:"failed_pass_closes"`
	FailedPassNote   string       `json:"failed_pass_note,omitempty" yaml:"failed_pass_note,omitempty"`
	Fixture          FixtureCheck `json:"fixture" yaml:"fixture"`
	// Problems are measurements that could not be made, with why.
	Problems []string `json:"problems,omitempty" yaml:"problems,omitempty"`
	// Transcript holds the measuring connections, as evidence.
	Transcript string `json:"-" yaml:"-"`
}

// ErrorLimitIn is the measured error limit of a state (see
// ErrorLimit.Limit).
func (f Facts) ErrorLimitIn(transaction bool) int {
	if transaction {
		return f.Transaction.Limit()
	}
	return f.Authorization.Limit()
}

// Summary renders the facts one per line, for reports.
func (f Facts) Summary() string {
	if !f.Measured {
		return "not measured"
	}
	var b strings.Builder
	if f.Derived {
		b.WriteString("derived from the bundled server's profile\n")
	}
	fmt.Fprintf(&b, "CAPA answers in AUTHORIZATION: %s\n", f.CapaAuthorization)
	fmt.Fprintf(&b, "CAPA answers in TRANSACTION: %s\n", f.CapaTransaction)
	fmt.Fprintf(&b, "NOOP answers in TRANSACTION: %s\n", f.NoopTransaction)
	fmt.Fprintf(&b, "unknown commands in AUTHORIZATION: %s\n", f.Authorization)
	fmt.Fprintf(&b, "unknown commands in TRANSACTION: %s\n", f.Transaction)
	fmt.Fprintf(&b, "a refused PASS closes the connection: %s", f.FailedPassCloses)
	if f.FailedPassNote != "" {
		fmt.Fprintf(&b, " (%s)", f.FailedPassNote)
	}
	b.WriteString("\n")
	switch fx := f.Fixture; {
	case fx.Name == "":
		b.WriteString("declared fixture: none\n")
	case !fx.Checked:
		fmt.Fprintf(&b, "declared fixture %s: not checked\n", fx.Name)
	case fx.Match:
		fmt.Fprintf(&b, "declared fixture %s: held (%s, sizes %s)\n", fx.Name, Count(fx.Messages, "message"), fx.Sizes)
	default:
		fmt.Fprintf(&b, "declared fixture %s: %s\n", fx.Name, fx.Reason)
	}
	for _, p := range f.Problems {
		fmt.Fprintf(&b, "not measured: %s\n", p)
	}
	return b.String()
}

// factsBox holds a target's facts once measured.
type factsBox struct {
	mu sync.Mutex
	f  *Facts
}

// Facts returns what MeasureFacts found. Before it ran (or when it could
// not run) every fact is unknown, and the helpers that read them fall back
// to what the profile says.
func (t *Target) Facts() Facts {
	t.facts.mu.Lock()
	defer t.facts.mu.Unlock()
	if t.facts.f == nil {
		return Facts{}
	}
	return *t.facts.f
}

func (t *Target) setFacts(f Facts) {
	t.facts.mu.Lock()
	t.facts.f = &f
	t.facts.mu.Unlock()
}

// MeasureFacts measures the target on the wire, each fact on a fresh
// connection: CAPA before and after login, NOOP after login, how many
// unknown commands each state takes before the server closes, whether a
// refused PASS closes, and whether the maildrop holds the declared
// fixture. It sends no DELE and no wrong password for the configured
// account (the refused PASS is for a random mailbox name that does not
// exist). The measuring connections are not part of any spec's evidence;
// their transcripts are in Facts.Transcript. An error lists the facts
// that could not be measured; those stay unknown.
func (t *Target) MeasureFacts(ctx context.Context) error {
	// A server that trickles its replies defeats the per-read timeouts;
	// the facts must not eat the whole run.
	ctx, cancel := context.WithTimeout(ctx, factsTimeout)
	defer cancel()
	m := t.aside()
	f := Facts{Measured: true}
	// Lanes of measurements, each failing into its own list so that the
	// problems keep one order. Only the first logs in: a server that
	// locks the maildrop sees one login at a time. The second reads no
	// multi-line reply, the third only CAPA's.
	var lanes [3]struct {
		problems []string
		errs     []error
	}
	failIn := func(lane int) func(string, error) {
		return func(what string, err error) {
			lanes[lane].problems = append(lanes[lane].problems, fmt.Sprintf("%s: %v", what, err))
			lanes[lane].errs = append(lanes[lane].errs, fmt.Errorf("%s: %w", what, err))
		}
	}
	// The lanes set disjoint fields of f, so they may write it at once.
	capa := func(lane int) {
		if v, lines, err := m.measureCapaAuthorization(ctx); err != nil {
			failIn(lane)("CAPA in AUTHORIZATION", err)
		} else {
			f.CapaAuthorization, f.CapaLines = v, lines
		}
	}
	logins := func(withCapa bool) {
		fail := failIn(0)
		if withCapa {
			capa(0)
		}
		c, err := m.measureSession(ctx, &f)
		if err != nil {
			fail("a session after login", err)
		}
		if l, err := m.measureErrors(ctx, true, c); err != nil {
			fail("unknown commands in TRANSACTION", err)
		} else {
			f.Transaction = l
		}
	}
	others := func() {
		fail := failIn(1)
		if l, err := m.measureErrors(ctx, false, nil); err != nil {
			fail("unknown commands in AUTHORIZATION", err)
		} else {
			f.Authorization = l
		}
		m.measureFailedPass(ctx, &f, fail)
	}
	// CAPA before login neither logs in nor reads much: with a third
	// connection it goes there, otherwise before the logins.
	apart, beside := t.Config.Sessions >= 3, t.Config.Sessions >= 2
	var wg sync.WaitGroup
	if beside {
		wg.Go(others)
	}
	if apart {
		wg.Go(func() { capa(2) })
	}
	logins(!apart)
	if !beside {
		others()
	}
	wg.Wait()
	var errs []error
	for _, l := range lanes {
		f.Problems = append(f.Problems, l.problems...)
		errs = append(errs, l.errs...)
	}
	f.Transcript = m.rec.Flush()
	t.rec.Absorb(m.rec)
	t.setFacts(f)
	return errors.Join(errs...)
}

func (t *Target) measureCapaAuthorization(ctx context.Context) (Tri, []string, error) {
	c, err := t.Dial(ctx)
	if err != nil {
		return Unknown, nil, err
	}
	defer c.Close()
	m, err := c.CmdMulti("CAPA")
	switch {
	case err != nil:
		return Unknown, nil, err
	case m.OK():
		_, _ = c.Quit()
		return Yes, m.Texts(), nil
	case m.Err():
		_, _ = c.Quit()
		return No, nil, nil
	}
	return Unknown, nil, fmt.Errorf("CAPA got %q, neither +OK nor -ERR", m.String())
}

// measureErrors sends an unknown command up to ErrorCap times and counts
// the -ERR replies until the server closes. Some servers (Dovecot) answer
// N unknown commands and then refuse the next command, whatever it is,
// with a last -ERR and the close: their limit is N, not N+1, which a
// second session tells (lastErrIsAnyCommand). c, when not nil, is a
// session in the state measured on which no reply so far was negative;
// otherwise a new one is opened.
func (t *Target) measureErrors(ctx context.Context, transaction bool, c *Conn) (ErrorLimit, error) {
	if c == nil {
		var err error
		if c, err = t.errorSession(ctx, transaction); err != nil {
			return ErrorLimit{}, err
		}
	}
	defer c.Close()
	l := ErrorLimit{Measured: true, Cap: ErrorCap}
	for range ErrorCap {
		r, err := c.Cmd("XYZW")
		if IsServerClose(err) {
			l.Closes = true
			return t.lastErrIsAnyCommand(ctx, transaction, l)
		}
		if err != nil {
			return ErrorLimit{}, err
		}
		if !r.Err() {
			return ErrorLimit{}, fmt.Errorf("the unknown command XYZW got %q", r.String())
		}
		l.Replies++
	}
	// A close right after the last -ERR shows on the next read.
	if _, err := c.Quit(); IsServerClose(err) {
		l.Closes = true
		return l, nil
	}
	_, _ = c.ExpectClose()
	return l, nil
}

// lastErrIsAnyCommand sends one unknown command fewer than l counted,
// then QUIT, on a fresh session: when QUIT is refused too (or the server
// closes), the last -ERR answered whatever came after the others, and the
// server takes one negative reply fewer than counted.
func (t *Target) lastErrIsAnyCommand(ctx context.Context, transaction bool, l ErrorLimit) (ErrorLimit, error) {
	if l.Replies < 2 {
		return l, nil
	}
	c, err := t.errorSession(ctx, transaction)
	if err != nil {
		return ErrorLimit{}, err
	}
	defer c.Close()
	for range l.Replies - 1 {
		if r, err := c.Cmd("XYZW"); err != nil || !r.Err() {
			return ErrorLimit{}, fmt.Errorf("the check of the count: the unknown command XYZW got %q (%v)", r.String(), err)
		}
	}
	if r, err := c.Quit(); IsServerClose(err) || (err == nil && r.Err()) {
		l.Replies--
	}
	return l, nil
}

// errorSession opens the session the error limit of a state is measured
// on: logged in for TRANSACTION.
func (t *Target) errorSession(ctx context.Context, transaction bool) (*Conn, error) {
	if !transaction {
		return t.Dial(ctx)
	}
	a, err := t.measureAccount()
	if err != nil {
		return nil, err
	}
	c, err := t.Login(ctx, a)
	if err != nil {
		if c != nil {
			c.Close()
		}
		return nil, err
	}
	return c, nil
}

// measureAccount is the account whose session is measured: POP3_USER on a
// remote host, a fresh copy of alice on the bundled server.
func (t *Target) measureAccount() (Account, error) {
	if t.ref == nil {
		return Account{User: t.Config.User, Password: t.Config.Password, Fixture: t.Config.MailboxFixture}, nil
	}
	// A name of its own: the target's copies are numbered by another
	// counter.
	return t.copyFixture("alice", fmt.Sprintf("facts.alice.%d", t.seq.Add(1)))
}

// measureSession logs in once and reads NOOP, the maildrop against the
// declared fixture, and CAPA last (a server without CAPA may count its
// -ERR). It returns the session when every reply was positive and read in
// full, for the count of unknown commands in TRANSACTION, which then
// needs no login of its own; otherwise it quits (nil).
func (t *Target) measureSession(ctx context.Context, f *Facts) (*Conn, error) {
	a, err := t.measureAccount()
	if err != nil {
		return nil, err
	}
	f.Fixture.Name = a.Fixture
	c, err := t.Login(ctx, a)
	if err != nil {
		if c != nil {
			c.Close()
		}
		return nil, fmt.Errorf("log in as %s: %w", a.User, err)
	}
	done := false
	defer func() {
		if !done {
			c.Close()
		}
	}()
	r, err := c.Cmd("NOOP")
	if err != nil {
		return nil, fmt.Errorf("NOOP: %w", err)
	}
	f.NoopTransaction = triOf(r.OK())
	if a.Fixture != "" {
		if f.Fixture, err = checkFixture(c, t.Profile, a.Fixture); err != nil {
			return nil, fmt.Errorf("fixture %s: %w", a.Fixture, err)
		}
	}
	m, err := c.CmdMulti("CAPA")
	if err != nil {
		return nil, fmt.Errorf("CAPA: %w", err)
	}
	f.CapaTransaction = triOf(m.OK())
	if c.InStep() {
		done = true
		return c, nil
	}
	// QUIT, and wait for the close so that a server which locks the
	// maildrop has released it before the next session.
	if r, err := c.Quit(); err == nil && r.OK() {
		_, _ = c.ExpectClose()
	}
	return nil, nil
}

// maxFixtureRetrieved bounds the messages RETR reads when LIST sizes do
// not show whether the maildrop holds the fixture.
const maxFixtureRetrieved = 100

// checkFixture compares STAT and LIST (and, when the sizes are neither
// exact nor the profile's, the messages themselves) with the fixture.
func checkFixture(c *Conn, p *profile.Profile, name string) (FixtureCheck, error) {
	msgs, err := FixtureMessages(name)
	if err != nil {
		return FixtureCheck{}, err
	}
	fc := FixtureCheck{Name: name, WantMessages: len(msgs)}
	for _, m := range msgs {
		fc.WantOctets += int64(len(m.Data))
	}
	r, err := c.Cmd("STAT")
	if err != nil {
		return fc, fmt.Errorf("STAT: %w", err)
	}
	f := strings.Fields(r.Text)
	if !r.OK() || len(f) < 2 {
		return fc, fmt.Errorf("STAT got %q", r.String())
	}
	fc.Messages, _ = strconv.Atoi(f[0])
	fc.Octets, _ = strconv.ParseInt(f[1], 10, 64)
	fc.Checked = true
	mismatch := func(detail string) (FixtureCheck, error) {
		fc.Reason = fmt.Sprintf("the maildrop no longer holds the declared fixture %s: STAT says %s / %s, the fixture has %s / %s with CRLF line ends%s (a mutating run consumes the mailbox; prepare it again)",
			name, Count(fc.Messages, "message"), Count(int(fc.Octets), "octet"), Count(fc.WantMessages, "message"), Count(int(fc.WantOctets), "octet"), detail)
		return fc, nil
	}
	if fc.Messages != len(msgs) {
		return mismatch("")
	}
	list, err := c.CmdMulti("LIST")
	if err != nil || !list.OK() {
		return fc, fmt.Errorf("LIST got %q: %v", list.String(), err)
	}
	sizes := make([]int64, 0, len(list.Lines))
	for _, l := range list.Texts() {
		f := strings.Fields(l)
		if len(f) < 2 {
			return fc, fmt.Errorf("LIST line %q", l)
		}
		n, _ := strconv.ParseInt(f[1], 10, 64)
		sizes = append(sizes, n)
	}
	if len(sizes) != len(msgs) {
		return mismatch(fmt.Sprintf("; LIST lists %d", len(sizes)))
	}
	exact, stored := true, true
	for i, m := range msgs {
		exact = exact && sizes[i] == int64(len(m.Data))
		stored = stored && sizes[i] == p.StoredSize(int64(len(m.Data)))
	}
	switch {
	case exact:
		fc.Sizes = SizesExact
	case stored:
		fc.Sizes = SizesProfile
	default:
		// Sizes the client cannot predict: the content decides.
		for i, m := range msgs[:min(len(msgs), maxFixtureRetrieved)] {
			body, err := c.CmdMulti(fmt.Sprintf("RETR %d", i+1))
			if err != nil || !body.OK() {
				return fc, fmt.Errorf("RETR %d got %q: %v", i+1, body.String(), err)
			}
			if !bytes.Equal(body.Body(), m.Data) {
				return mismatch(fmt.Sprintf("; message %d is not the fixture's %s", i+1, m.Name))
			}
		}
		fc.Sizes = SizesOther
	}
	fc.Match = true
	return fc, nil
}

// measureFailedPass refuses PASS for a random mailbox name that does not
// exist and sees whether the server closes. USER answered -ERR for it
// leaves the fact unknown: the project never sends a wrong password for
// a real account.
func (t *Target) measureFailedPass(ctx context.Context, f *Facts, fail func(string, error)) {
	if t.ref != nil && t.ref.Profile.FailedLoginDelay.D() > 0 {
		// The bundled server's own rule, without waiting out its delay.
		f.FailedPassCloses = triOf(t.ref.Profile.ErrorLimit(false) == 1)
		f.FailedPassNote = "derived from the bundled server's profile, which delays failed logins"
		return
	}
	c, err := t.Dial(ctx)
	if err != nil {
		fail("a refused PASS", err)
		return
	}
	defer c.Close()
	if err := t.secureForLogin(c); err != nil {
		fail("a refused PASS", err)
		return
	}
	name := NoSuchUser()
	r, err := c.Cmd("USER " + name)
	if err != nil {
		fail("a refused PASS", fmt.Errorf("USER: %w", err))
		return
	}
	if !r.OK() {
		f.FailedPassNote = fmt.Sprintf("USER for an unknown mailbox got %q, so no PASS was refused", r.String())
		_, _ = c.Quit()
		return
	}
	if r, err = c.Cmd("PASS " + name); err != nil {
		fail("a refused PASS", fmt.Errorf("PASS: %w", err))
		return
	}
	if !r.Err() {
		fail("a refused PASS", fmt.Errorf("PASS for the unknown mailbox %s got %q", name, r.String()))
		return
	}
	q, err := c.Quit()
	switch {
	case IsServerClose(err):
		f.FailedPassCloses = Yes
	case err == nil && q.OK():
		f.FailedPassCloses = No
	default:
		fail("a refused PASS", fmt.Errorf("QUIT after it got %q: %v", q.String(), err))
	}
}

// deriveFacts are the facts of a bundled server, read from its profile:
// variants of the bundled server start inside specs, where measuring on
// the wire would mix with the spec's own connections. A test proves the
// derivation matches what MeasureFacts finds.
func deriveFacts(p *profile.Profile) Facts {
	limit := func(n int) ErrorLimit {
		l := ErrorLimit{Measured: true, Cap: ErrorCap, Replies: ErrorCap}
		if n > 0 && n <= ErrorCap {
			l.Closes, l.Replies = true, n
		}
		return l
	}
	f := Facts{
		Measured: true, Derived: true,
		// TODO(refserver): a profile key for a server without CAPA
		// decides these two once the bundled server has one.
		CapaAuthorization: Yes, CapaTransaction: Yes,
		NoopTransaction:  Yes,
		Authorization:    limit(p.ErrorLimit(false)),
		Transaction:      limit(p.ErrorLimit(true)),
		FailedPassCloses: triOf(p.ErrorLimit(false) == 1),
		Fixture:          FixtureCheck{Name: "alice", Checked: true, Match: true, Sizes: SizesProfile},
	}
	if p.ExactSizes {
		f.Fixture.Sizes = SizesExact
	}
	if p.UnknownUserReply == profile.ReplyErr {
		f.FailedPassCloses = Unknown
		f.FailedPassNote = "USER for an unknown mailbox gets -ERR, so no PASS is refused"
	}
	return f
}

// UseFacts takes the facts another process of the same run measured
// (Config.Facts), so that a worker judges by the same facts and does not
// spend the server's patience measuring them again.
func (t *Target) UseFacts(f Facts) { t.setFacts(f) }
