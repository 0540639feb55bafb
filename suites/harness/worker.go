package harness

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
)

// ErrBusy says a connection or a login may have been refused because of
// the sessions other worker processes of the same run hold at that moment
// (Config.Worker). Such a spec proves nothing either way: the run gives
// it again to its first process, which runs it alone.
var ErrBusy = errors.New("refused while other sessions of this run were open")

// BusySecondConnection is the busy reason of a worker's spec that opens a
// connection while another of its own is open: it runs alone later, and
// the worker goes on taking specs (no refusal was seen).
const BusySecondConnection = "a spec that keeps a connection open while it opens another runs alone"

// markBusy records on the spec's evidence, and for the run's scheduler,
// that a refusal may be the run's own doing. It returns err wrapped in
// ErrBusy.
func (t *Target) markBusy(what string, err error) error {
	reason := what
	if err != nil {
		reason = fmt.Sprintf("%s: %v", what, err)
	}
	t.rec.setBusy(reason)
	return fmt.Errorf("%w: %s", ErrBusy, reason)
}

// busyDial applies the worker rules before a connection is opened: one
// connection at a time, so that a run of N workers holds at most N.
func (t *Target) busyDial() error {
	if !t.Config.Worker {
		return nil
	}
	if n := t.rec.openConns(); n > 0 {
		return t.markBusy(BusySecondConnection, nil)
	}
	return nil
}

// busyConnect says whether a failed connect or greeting may come from the
// other workers' sessions: the target answered the run's check before
// any worker started, so a refusal now is most likely a connection limit.
func (t *Target) busyConnect(err error) bool {
	return t.Config.Worker && connectRefused(err)
}

// connectRefused says whether a connect or greeting failed the way a
// server at its connection limit fails one: refused, reset or closed.
func connectRefused(err error) bool {
	return err != nil && (errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || IsServerClose(err))
}

// LoadRefusal says whether a connection attempt (c and err as Dial
// returned them) was refused the way a server at its connection limit
// refuses: connect refused or reset, a close before the greeting, or a
// greeting of -ERR. A measurement that runs next to the run's other
// sessions waits for them before it reads anything into it.
func LoadRefusal(c *Conn, err error) bool {
	return connectRefused(err) || (err == nil && c != nil && c.Greeting.Err())
}

// busyLogin says whether a refused PASS of a configured account may come
// from the other workers' sessions (a maildrop lock, a per-user session
// limit): the password was proven right before the workers started.
func (t *Target) busyLogin(a Account, pe *PassError) bool {
	if !t.Config.Worker || pe == nil {
		return false
	}
	c := t.Config
	return (a.User == c.User && a.Password == c.Password) || (a.User == c.User2 && a.Password == c.Password2)
}

// BusyRefusal applies the worker rules to a connection another client
// opened (the stock library's): a connect refused or reset, a close, or a
// greeting that starts with -ERR may be the other workers' doing. It then
// marks the spec busy and returns an ErrBusy error; otherwise nil.
func (t *Target) BusyRefusal(err error, greeting string) error {
	switch {
	case t.busyConnect(err):
		return t.markBusy("connect", err)
	case t.Config.Worker && strings.HasPrefix(greeting, "-ERR"):
		return t.markBusy("greeting "+strings.TrimSpace(greeting), nil)
	}
	return nil
}

// busyGreeting says whether a greeting is a refusal for load: -ERR, as a
// server at its connection limit sends ([SYS/TEMP], [IN-USE] or none).
func (t *Target) busyGreeting(g Reply) bool {
	return t.Config.Worker && g.Err()
}

// Busy returns why the current spec's result may be the run's own doing
// (see ErrBusy), or "".
func (r *Recorder) Busy() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.busy
}

func (r *Recorder) setBusy(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.busy == "" {
		r.busy = reason
	}
}

// openConns counts the spec's sessions that are still open.
func (r *Recorder) openConns() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.conns {
		if c.open() {
			n++
		}
	}
	return n
}

// open says whether neither side has closed the connection nor ended it
// with QUIT (the server closes after answering it).
func (c *Conn) open() bool {
	return !c.clientClosed.Load() && !c.seen.closed && c.seen.keyword != "QUIT"
}

// ConcurrentLogins logs in to the configured account twice at once and
// reports whether the server let both sessions open. A server that locks
// the maildrop (RFC 1939 section 8) or allows one session per user says
// no; the run then keeps to one session at a time. Both sessions end
// without QUIT, so nothing is committed. The lines count into the run's
// tally; they are no spec's evidence.
func (t *Target) ConcurrentLogins(ctx context.Context) (bool, string, error) {
	m := t.aside()
	m.Config.Worker = false
	defer func() {
		m.rec.Flush()
		t.rec.Absorb(m.rec)
	}()
	a, err := m.Account(ctx)
	if err != nil {
		return false, "", err
	}
	// Both connect and send USER at once; the second PASS waits until the
	// first session is in TRANSACTION (it stays open, tracked by m's
	// recorder), so the server sees it while the first holds the
	// maildrop.
	var (
		cs   [2]*Conn
		errs [2]error
		wg   sync.WaitGroup
	)
	wg.Go(func() { cs[1], errs[1] = m.userOn(ctx, a) })
	cs[0], errs[0] = m.userOn(ctx, a)
	wg.Wait()
	switch {
	case errs[0] != nil && errs[1] != nil:
		return false, "", fmt.Errorf("first session: %w", errs[0])
	case errs[0] != nil || errs[1] != nil:
		// Connected at the same time, either may be the one refused.
		i := 0
		if errs[1] != nil {
			i = 1
		}
		if c := cs[i]; c != nil && c.Greeting.Err() {
			return false, "a second connection was refused: " + strings.TrimSpace(c.Greeting.String()), nil
		}
		return false, "a second session could not be opened: " + errs[i].Error(), nil
	}
	if err := passOn(cs[0], a); err != nil {
		return false, "", fmt.Errorf("first session: %w", err)
	}
	var pe *PassError
	switch err := passOn(cs[1], a); {
	case err == nil:
		return true, "a second session of the account opened while the first was open", nil
	case errors.As(err, &pe):
		return false, "a second session of the account was refused: " + pe.Reply.String(), nil
	default:
		return false, "a second session could not be opened: " + err.Error(), nil
	}
}

// userOn connects and sends USER, after STLS where the profile needs it.
func (t *Target) userOn(ctx context.Context, a Account) (*Conn, error) {
	c, err := t.Dial(ctx)
	if err != nil {
		return c, err
	}
	if err := t.secureForLogin(c); err != nil {
		return c, err
	}
	return c, userCmd(c, a)
}

// aside is a target for the run's own measurements (facts, the session
// check): the same server and settings, a recorder of its own, so that
// its connections are no spec's evidence.
func (t *Target) aside() *Target {
	return &Target{Config: t.Config, Profile: t.Profile, rec: &Recorder{}, variant: true,
		tlsConf: t.tlsConf, plainAddr: t.plainAddr, tlsAddr: t.tlsAddr, ref: t.ref}
}
