package harness

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// Across a network a new connection costs two round trips before its
// greeting: the TCP handshake, then the greeting itself. A process that
// runs its specs one at a time, with a connection to spare under
// --max-connections, opens the next connection while the current spec
// runs, and the next dial takes it with its greeting already read.
//
// A connection opened ahead has sent nothing: it is in AUTHORIZATION,
// holds no lock, and no spec's state depends on when its TCP handshake
// happened, only on what is sent on it afterwards. It is handed on only
// to a dial of the same port, when the greeting was positive and nothing
// arrived since, within aheadFor and half the profile's unauthenticated
// timer, and when the process sent no failed login and no hostile input
// since it was opened: a server that turns new connections away after
// those must meet a connection opened after them. Specs that wait on
// timers or count connections run without one (the caller's room, and
// Release before any raw dial); a spec that sends hostile input takes
// one for its attack only (TakeAhead), and none is opened again until it
// says the attack is over (ResumeAhead).

// aheadFor bounds how long a connection opened ahead may wait. A server's
// own limit for a connection that has not logged in is rarely under a
// minute; the connection is usually taken within a second.
const aheadFor = 10 * time.Second

// ahead is what a Recorder knows of the connections opened ahead.
type ahead struct {
	// room says how many connections the process may hold now, the one
	// opened ahead included; 0 opens none (nil: never).
	room   func() int
	within time.Duration
	// off is set by Release and TakeAhead until the spec ends or calls
	// ResumeAhead: the spec speaks on connections of its own.
	off   bool
	spare *spare
}

// spare is a connection being opened, or opened, ahead of its use.
type spare struct {
	addr     string
	implicit bool
	// failed and hostile are the process's tallies of failed logins and
	// hostile lines when the connection was opened.
	failed, hostile int
	cancel          context.CancelFunc
	done            chan struct{}
	// Set before done closes: the connection (nil when it failed) and
	// when its greeting arrived.
	c  *Conn
	at time.Time
}

// drop closes the connection and returns once it is closed, so that a
// dial after it never holds one connection more than it counts.
func (s *spare) drop() {
	s.cancel()
	<-s.done
	if s.c != nil {
		_ = s.c.nc.Close()
	}
}

// DialAhead lets the target open the next connection while a spec runs,
// whenever the spec's open connections leave room under room(). room is
// called with the recorder's lock held: it must not call back into the
// target.
func (t *Target) DialAhead(room func() int) {
	within := halfTimer(aheadFor, t.Profile.Timers.Unauthenticated.D())
	t.rec.mu.Lock()
	defer t.rec.mu.Unlock()
	t.rec.ahead.room, t.rec.ahead.within = room, within
}

// ResumeAhead tells the target that the spec's hostile input is over:
// its next dial may open a connection ahead again.
func (t *Target) ResumeAhead() {
	t.rec.mu.Lock()
	defer t.rec.mu.Unlock()
	t.rec.ahead.off = false
}

// dialAhead starts opening a connection to addr for the next dial, when
// the policy leaves room for one now and none is open or opening.
func (t *Target) dialAhead(addr string, implicit bool) {
	r := t.rec
	r.mu.Lock()
	a := &r.ahead
	if a.room == nil || a.off || a.spare != nil {
		r.mu.Unlock()
		return
	}
	if r.openLocked()+1 > a.room() {
		r.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &spare{addr: addr, implicit: implicit, failed: r.sent[ClassFailedLogin], hostile: r.sent[ClassHostile], cancel: cancel, done: make(chan struct{})}
	a.spare = s
	r.opened++
	r.mu.Unlock()
	go func() {
		defer close(s.done)
		c, err := t.openAhead(ctx, addr, implicit)
		if err != nil {
			if ctx.Err() != nil {
				return // dropped before it was open
			}
			// The spec that would have taken it dials afresh and meets
			// whatever the server does then as its own evidence; no
			// more are opened ahead.
			slog.Info("no more connections opened ahead", "addr", addr, "why", err)
			r.mu.Lock()
			r.ahead.room = nil
			r.mu.Unlock()
			return
		}
		s.c, s.at = c, time.Now()
	}()
}

// openLocked counts the connections of the current spec that are still
// open: its sessions and the raw connections of its guards. Call it with
// mu held.
func (r *Recorder) openLocked() int {
	n := 0
	for _, c := range r.conns {
		if c.open() {
			n++
		}
	}
	for _, g := range r.guards {
		if g.raw && !g.closed.Load() {
			n++
		}
	}
	return n
}

// openAhead connects and reads a positive greeting, outside any spec: no
// guard, no tally but the connection, no bound but ctx and the timeouts.
func (t *Target) openAhead(ctx context.Context, addr string, implicit bool) (*Conn, error) {
	d := net.Dialer{Timeout: DefaultTimeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", addr, err)
	}
	// Dropped while the greeting is awaited: the read ends at once.
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
	c := t.namedConn(nc, addr, implicit)
	if implicit {
		err = c.handshake(t.tlsConf)
	}
	var g Reply
	if err == nil {
		g, err = c.ReadReply()
	}
	if err == nil && !g.OK() {
		err = fmt.Errorf("greeting %s", g)
	}
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		_ = nc.Close()
		return nil, err
	}
	c.Greeting = g
	return c, nil
}

// claimAhead returns the connection opened ahead when a dial of addr may
// take it, and closes it otherwise (nil: the caller dials afresh).
func (t *Target) claimAhead(ctx context.Context, addr string, implicit bool) (*Conn, time.Duration) {
	r := t.rec
	r.mu.Lock()
	s := r.ahead.spare
	r.ahead.spare = nil
	within := r.ahead.within
	failed, hostile := r.sent[ClassFailedLogin], r.sent[ClassHostile]
	r.mu.Unlock()
	if s == nil {
		return nil, 0
	}
	if s.addr != addr || s.implicit != implicit || s.failed != failed || s.hostile != hostile {
		s.drop()
		return nil, 0
	}
	select {
	case <-s.done:
	case <-ctx.Done():
		s.drop()
		return nil, 0
	}
	c := s.c
	if c == nil {
		return nil, 0
	}
	waited := time.Since(s.at)
	if waited >= within || !c.quietSinceKept() {
		_ = c.nc.Close()
		return nil, 0
	}
	return c, waited
}

// aheadNote is the first line of evidence on a connection opened ahead.
func aheadNote(waited time.Duration) string {
	return fmt.Sprintf("connection opened ahead of this dial, while the run went on; its greeting arrived %v before the dial took it", waited.Round(time.Millisecond))
}

// takeAhead returns the connection opened ahead for a dial of addr, bound
// to ctx and recorded as the spec's, or nil when there is none it may
// take: then the caller dials afresh.
func (t *Target) takeAhead(ctx context.Context, addr string, implicit bool) *Conn {
	c, waited := t.claimAhead(ctx, addr, implicit)
	if c == nil {
		return nil
	}
	t.adopt(ctx, c, false)
	c.guard.SetGreeting(c.Greeting.Text)
	c.tr.note(aheadNote(waited))
	return c
}

// Ahead is a connection opened ahead, handed to a spec that speaks on the
// raw connection (TakeAhead).
type Ahead struct {
	// Conn is the connection, over TLS when the port is implicit TLS.
	Conn net.Conn
	// Greeting is the line the server greeted with, already read.
	Greeting Reply
	// Guard admits the spec's writes, as LineGuard's does; call its
	// Closed when the spec closes Conn.
	Guard *LineGuard
	// Note says where the connection comes from, for the evidence.
	Note string
}

// TakeAhead gives a spec that dials on its own the connection opened
// ahead for addr, when there is one it may take; either way it closes the
// kept session, and no connection is opened ahead until the spec ends or
// calls ResumeAhead. Without one the spec dials afresh.
func (t *Target) TakeAhead(ctx context.Context, addr string, implicit bool) (Ahead, bool) {
	t.rec.release()
	t.rec.mu.Lock()
	t.rec.ahead.off = true
	t.rec.mu.Unlock()
	c, waited := t.claimAhead(ctx, addr, implicit)
	if c == nil {
		return Ahead{}, false
	}
	g := t.lineGuard(false, true)
	g.SetGreeting(c.Greeting.Text)
	return Ahead{Conn: c.nc, Greeting: c.Greeting, Guard: g, Note: aheadNote(waited)}, true
}

// dropAhead closes the connection opened ahead, if any.
func (r *Recorder) dropAhead() {
	r.mu.Lock()
	s := r.ahead.spare
	r.ahead.spare = nil
	r.mu.Unlock()
	if s != nil {
		s.drop()
	}
}
