package harness

import (
	"context"
	"errors"
	"net"
	"time"
)

// A kept session saves a spec the round trips of a login (connect, STLS
// where needed, USER, PASS) and the next one the close: across a network
// they are most of what a short readonly spec costs. A session is kept
// only when it is exactly as a fresh login leaves it (Conn.InStep): in
// TRANSACTION, no negative reply, nothing unread, and, readonly specs
// sending no DELE, nothing marked. It is closed without QUIT, as every
// spec's sessions are: QUIT would let a server with EXPIRE 0 remove the
// messages RETR read.

// keepFor bounds how long a session waits for the next spec: a server
// may end an idle session on a timer of its own, and the next spec must
// not meet that close as if its command caused it. A profile whose
// authenticated timer is shorter bounds it to half that timer.
const keepFor = 20 * time.Second

// keepWithin is how long t keeps a session idle.
func keepWithin(t *Target) time.Duration {
	return halfTimer(keepFor, t.Profile.Timers.Authenticated.D())
}

// halfTimer is limit, or half the server's idle timer when that is
// shorter: a connection left idle must not meet the server's close.
func halfTimer(limit, timer time.Duration) time.Duration {
	if timer > 0 && timer/2 < limit {
		return timer / 2
	}
	return limit
}

// keeper holds the one session a process keeps between specs.
type keeper struct {
	// may says whether a session may be kept now (nil: never).
	may func() bool
	// within is how long a session may wait idle (keepWithin).
	within time.Duration
	// idle is the session kept after the last spec, for account; lent is
	// the session the spec since the last Flush may hand on.
	idle    *Conn
	account Account
	since   time.Time
	lent    *Conn
	lentTo  Account
}

// KeepSessions lets this target keep a spec's session for the next spec
// that asks for one (Session) while may returns true. Call it only where
// the server was found to take two logins of one account at once: the
// kept session is closed (Release) just before the process opens any
// other connection, which keeps the number of connections, and a server
// that locks the maildrop might not yet have noticed that close when the
// next login comes.
func (t *Target) KeepSessions(may func() bool) {
	t.rec.mu.Lock()
	defer t.rec.mu.Unlock()
	t.rec.keep.may, t.rec.keep.within = may, keepWithin(t)
}

// Session returns a session of a in the TRANSACTION state: the one an
// earlier spec of this process left in step when there is one, otherwise
// a fresh login (Login), which a later spec may then be handed. The
// transcript of a handed-on session starts with a note saying so.
func (t *Target) Session(ctx context.Context, a Account) (*Conn, error) {
	if c := t.rec.lend(a); c != nil {
		c.resume(ctx)
		return c, nil
	}
	c, err := t.Login(ctx, a)
	if err == nil {
		t.rec.mu.Lock()
		if t.rec.keep.may != nil {
			t.rec.keep.lent, t.rec.keep.lentTo = c, a
		}
		t.rec.mu.Unlock()
	}
	return c, err
}

// Release closes the kept session and the connection opened ahead, if
// any, without QUIT; until the spec ends no other is opened ahead. A spec
// that connects on its own calls it (or TakeAhead) first, so that the
// process never holds more connections than its spec.
func (t *Target) Release() {
	t.rec.release()
	t.rec.mu.Lock()
	t.rec.ahead.off = true
	t.rec.mu.Unlock()
	t.rec.dropAhead()
}

// lend hands the kept session to the spec when it belongs to a, is still
// fresh and the server has neither closed it nor sent anything since.
func (r *Recorder) lend(a Account) *Conn {
	r.mu.Lock()
	k := &r.keep
	c := k.idle
	if c == nil || k.may == nil || r.noLogin || k.account != a {
		r.mu.Unlock()
		return nil
	}
	k.idle = nil
	fresh := time.Since(k.since) < k.within
	r.mu.Unlock()
	if !fresh || !c.quietSinceKept() {
		_ = c.nc.Close()
		return nil
	}
	r.mu.Lock()
	k.lent, k.lentTo = c, a
	r.conns = append(r.conns, c)
	r.guards = append(r.guards, c.guard)
	r.mu.Unlock()
	return c
}

// keepLent keeps the session the spec may hand on instead of closing it
// with the others, when passed and the session is in step; Flush then
// leaves it open.
func (r *Recorder) keepLent(passed bool) *Conn {
	k := &r.keep
	c := k.lent
	k.lent = nil
	if c == nil || !passed || k.may == nil || !k.may() || !c.InStep() {
		return nil
	}
	if k.idle != nil {
		_ = k.idle.nc.Close()
	}
	k.idle, k.account, k.since = c, k.lentTo, time.Now()
	return c
}

func (r *Recorder) release() {
	r.mu.Lock()
	c := r.keep.idle
	r.keep.idle = nil
	r.mu.Unlock()
	if c != nil {
		_ = c.nc.Close()
	}
}

// quietSinceKept reports whether nothing arrived on the kept session:
// no octet (an autologout notice, say) and no close.
func (c *Conn) quietSinceKept() bool {
	if c.r.Buffered() > 0 {
		return false
	}
	// A deadline already past would fail the read before it looks at
	// what has arrived.
	if err := c.raw.SetReadDeadline(time.Now().Add(time.Millisecond)); err != nil {
		return false
	}
	_, err := c.r.Peek(1)
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// resume gives the kept session to a new spec: a transcript of its own,
// whose first line says where the session comes from, and ctx as its
// bound.
func (c *Conn) resume(ctx context.Context) {
	c.tr = newTranscript(c.tr.name + ", kept from an earlier spec")
	if c.guard != nil {
		c.guard.note = c.tr.note
		c.guard.noQuit = c.seen.retr
	}
	c.tr.note("session logged in by an earlier spec of this process: in TRANSACTION, every command since answered +OK and read in full, nothing marked deleted")
	c.bind(ctx)
}

// HoldsSession reports whether a session is kept for the next spec.
func (t *Target) HoldsSession() bool {
	t.rec.mu.Lock()
	defer t.rec.mu.Unlock()
	return t.rec.keep.idle != nil
}
