package observe

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// The idle timers (MS-STANXPOP3 V0002, V0003; RFC 1939 section 3): how
// long a connection may sit idle after the greeting and after a login
// before the server closes it, and whether it says so first.
const (
	keyUnauthenticated = "timers.unauthenticated"
	keyAuthenticated   = "timers.authenticated"
	keyNotice          = "timers.notice"
	keyNoticeText      = "timers.notice_text"
)

var timerKeys = []string{keyUnauthenticated, keyAuthenticated, keyNotice, keyNoticeText}

const (
	// scaledTimer is what each of the bundled server's timers becomes on
	// the variant the probe measures: short enough for the step to cost
	// under 2 s, long enough to span many times the loopback noise. Each
	// timer has its own factor: with one for both, Exchange's 1-minute
	// timer (1/30 of the other) lasted 50 ms, and a loaded machine's
	// scheduling delay of 20 ms read as 25 s more.
	scaledTimer = 1500 * time.Millisecond
	// scaleNoise is how far a loopback close may land from the server's
	// deadline (scheduler wake-ups, the race detector). Multiplied by
	// the scale factor it is the precision of a scaled measurement.
	scaleNoise = 2 * time.Millisecond
	// remoteResolution is the precision of a measurement over the
	// network: round trips, and servers that check their timers now and
	// then rather than on the dot.
	remoteResolution = 100 * time.Millisecond
	// waitSlack is added to twice the profile's timer before the probe
	// gives up waiting for a remote server to close.
	waitSlack = 30 * time.Second
	// unknownTimerWait is the wait when the profile names no timer: past
	// the longest default known (Exchange, 30 minutes).
	unknownTimerWait = 35 * time.Minute
	// bundledSlack is waitSlack for a scaled variant: enough for
	// loopback scheduling, small enough to keep a broken timer cheap.
	bundledSlack = 250 * time.Millisecond
)

// waitLimit bounds the wait for a remote server to close a connection
// idle for a timer the profile says lasts expected.
func waitLimit(expected time.Duration) time.Duration {
	if expected <= 0 {
		return unknownTimerWait
	}
	return 2*expected + waitSlack
}

// defaultTimeout is Options.Timeout when none is given: DefaultTimeout
// for the other steps, plus, when the idle timers will be waited for on a
// remote host, the longest wait (twice the chosen profile's longer timer
// plus waitSlack) and waitSlack again for the connections' set-up, i.e.
// 2x the longest timer + 1 minute.
func defaultTimeout(cfg harness.Config) time.Duration {
	if !cfg.Remote() || !cfg.Allow.Slow {
		return DefaultTimeout
	}
	var unauth, auth time.Duration
	if p, err := profile.Load(cfg.Profile); err == nil {
		unauth, auth = p.Timers.Unauthenticated.D(), p.Timers.Authenticated.D()
	}
	return DefaultTimeout + max(waitLimit(unauth), waitLimit(auth)) + waitSlack
}

// scaleFactor divides a bundled server's timer so that it lasts about
// scaledTimer; 1 when it is that short already.
func scaleFactor(d time.Duration) int64 {
	return max(1, int64(math.Round(float64(d)/float64(scaledTimer))))
}

// niceStep is the smallest 1, 2 or 5 times a power of ten nanoseconds
// that is at least d.
func niceStep(d time.Duration) time.Duration {
	for base := time.Duration(1); ; base *= 10 {
		for _, m := range []time.Duration{1, 2, 5} {
			if m*base >= d {
				return m * base
			}
		}
	}
}

// roundMeasured rounds a measured timer to what the measurement can
// tell: a nice step no finer than its resolution and no finer than 1 %
// of the value (a 60.4 s close over the network is a 60 s timer; 1801 s
// measured at 1/1200 scale is 1800 s).
func roundMeasured(d, resolution time.Duration) time.Duration {
	return d.Round(niceStep(max(resolution, d/100)))
}

// durationTolerance is how far a measured idle timer may be from a
// profile's and still match it: 2 s or 10 % of the profile's value,
// whichever is more. A measured timeout is never exact: it carries a
// network round trip; servers close on a periodic sweep rather than on
// the dot (up to a few seconds late); and a measurement at 1/1200 scale
// is rounded to 20 s at 1800 s. 10 % covers those and still tells 60 s from
// 180 s or 600 s, and 600 s from 1800 s, which is what tells the
// profiles apart; the 2 s floor keeps a round trip from failing short
// timers.
func durationTolerance(prof time.Duration) time.Duration {
	return max(2*time.Second, prof/10)
}

// sameDuration compares an observed timer with a profile's, both Go
// duration strings, within durationTolerance.
func sameDuration(observed, prof any) bool {
	obsText, ok1 := observed.(string)
	profText, ok2 := prof.(string)
	if !ok1 || !ok2 {
		return false
	}
	o, err1 := time.ParseDuration(obsText)
	p, err2 := time.ParseDuration(profText)
	if err1 != nil || err2 != nil {
		return false
	}
	diff := o - p
	if diff < 0 {
		diff = -diff
	}
	return diff <= durationTolerance(p)
}

// idleWait is one connection left idle until the server closes it.
type idleWait struct {
	key  string
	what string // what the timer starts at, for the reports
	conn *harness.Conn
	// start is when the last reply before the idle time arrived: the
	// greeting (or the STLS handshake when the target's usual way is
	// STLS), or PASS's +OK.
	start time.Time
	limit time.Duration
	// timer is 0 for the unauthenticated timer, 1 for the authenticated
	// (idleSetup's index).
	timer int

	elapsed time.Duration
	lines   [][]byte // sent by the server before it closed
	err     error    // nil: closed
}

// wait reads until the server closes the connection or limit has passed
// since start. It touches only w, so waits run side by side.
func (w *idleWait) wait() {
	w.lines, w.err = w.conn.ExpectClosed(w.limit - time.Since(w.start))
	w.elapsed = time.Since(w.start)
}

func (w *idleWait) closed() bool { return w.err == nil }

// idleSetup says where and at which scale the timers are measured.
type idleSetup struct {
	target *harness.Target
	// scale multiplies a measured duration back to full scale (1 on a
	// remote host), resolution is the measurement's precision at full
	// scale, and limits bound the waits; each unauthenticated first,
	// authenticated second.
	scale      [2]int64
	resolution [2]time.Duration
	limits     [2]time.Duration
}

// idleTimers measures both idle timers at once, on two connections: one
// idle after the greeting, one after a login. On a remote host it waits
// for the real timers, with the slow permission only; the bundled
// server's are measured at scale on a variant.
func (p *prober) idleTimers(ctx context.Context) error {
	if p.t.Reference() != nil {
		return p.idleTimersScaled(ctx)
	}
	if !p.t.Config.Allow.Slow {
		for _, k := range timerKeys {
			p.skip(k, "waits for the server's idle timer; allow with --slow")
		}
		return nil
	}
	expect := p.t.Profile.Timers
	return p.measureIdle(ctx, idleSetup{
		target: p.t, scale: [2]int64{1, 1}, resolution: [2]time.Duration{remoteResolution, remoteResolution},
		limits: [2]time.Duration{waitLimit(expect.Unauthenticated.D()), waitLimit(expect.Authenticated.D())},
	})
}

// idleTimersScaled measures the bundled server's timers on a variant
// whose timers are the server's each divided by its own factor, so each
// lasts about scaledTimer; the results are multiplied back. The notice
// is the server's own.
func (p *prober) idleTimersScaled(ctx context.Context) error {
	server := p.t.Reference().Profile.Timers
	s := idleSetup{scale: [2]int64{scaleFactor(server.Unauthenticated.D()), scaleFactor(server.Authenticated.D())}}
	var timers [2]profile.Duration
	for i, d := range []profile.Duration{server.Unauthenticated, server.Authenticated} {
		// A timer must not become zero, which the profile refuses.
		timers[i] = profile.Duration(max(d.D()/time.Duration(s.scale[i]), time.Millisecond))
		s.resolution[i] = time.Duration(s.scale[i]) * scaleNoise
		s.limits[i] = 2*timers[i].D() + bundledSlack
	}
	v, err := p.t.Variant(ctx, func(pr *profile.Profile) {
		pr.Timers.Unauthenticated, pr.Timers.Authenticated = timers[0], timers[1]
	})
	if err != nil {
		return fmt.Errorf("starting the bundled server with its timers at 1/%d and 1/%d scale: %w", s.scale[0], s.scale[1], err)
	}
	defer v.Close()
	s.target = v
	return p.measureIdle(ctx, s)
}

// measureIdle opens the two connections and waits on both at once, so
// the step lasts as long as the longer timer, not the sum. Each wait
// starts as soon as its connection is ready: the server's timer runs
// from then, whatever the other connection does.
func (p *prober) measureIdle(ctx context.Context, s idleSetup) error {
	var wg sync.WaitGroup
	var waits []*idleWait
	start := func(w *idleWait) {
		waits = append(waits, w)
		wg.Go(w.wait)
	}
	c, err := p.dialOn(ctx, s.target, "")
	if err != nil {
		return fmt.Errorf("connecting to leave a connection idle after the greeting: %w", err)
	}
	start(&idleWait{key: keyUnauthenticated, what: "the greeting", conn: c, start: time.Now(), limit: s.limits[0]})

	authed, loginErr := p.idleLogin(ctx, s.target)
	if loginErr == nil {
		start(&idleWait{key: keyAuthenticated, what: "PASS's +OK", conn: authed, start: time.Now(), limit: s.limits[1], timer: 1})
	} else {
		p.skip(keyAuthenticated, "no login to leave idle: "+loginErr.Error())
		p.evidence(keyAuthenticated, authed)
	}
	wg.Wait()

	for _, w := range waits {
		p.recordIdle(w, s)
	}
	p.recordNotice(waits)
	if loginErr != nil {
		return fmt.Errorf("logging in to leave a session idle: %w", loginErr)
	}
	return nil
}

// idleLogin opens a connection to t and logs in with USER/PASS, as the
// session step does.
func (p *prober) idleLogin(ctx context.Context, t *harness.Target) (*harness.Conn, error) {
	var (
		a   harness.Account
		err error
	)
	if t == p.t {
		a, err = p.account(ctx)
	} else {
		// A variant has a store of its own.
		a, err = t.Account(ctx)
	}
	if err != nil {
		return nil, err
	}
	c, err := p.loggedInOn(ctx, t, func(c *harness.Conn) error { return harness.LoginUserPass(c, a) })
	if loginFailed(err) {
		return c, fmt.Errorf("login: %w", err)
	}
	if err != nil {
		return nil, errors.Unwrap(err)
	}
	return c, nil
}

// recordIdle sets a timer key from its wait, at full scale, or says why
// it was not measured.
func (p *prober) recordIdle(w *idleWait, s idleSetup) {
	p.evidence(w.key, w.conn)
	scale := s.scale[w.timer]
	atScale := ""
	if scale > 1 {
		atScale = fmt.Sprintf(" (at 1/%d scale)", scale)
	}
	switch {
	case w.closed():
		full := roundMeasured(w.elapsed*time.Duration(scale), s.resolution[w.timer])
		p.set(w.key, full.String(), idleMethod(w, s, full))
	case errors.Is(w.err, harness.ErrInterrupted):
		p.skip(w.key, fmt.Sprintf("the observation's time limit ended %v after %s%s, before the server closed the connection", w.elapsed.Round(time.Millisecond), w.what, atScale))
	default:
		p.skip(w.key, fmt.Sprintf("no close within %v after %s%s", w.limit, w.what, atScale))
	}
}

func idleMethod(w *idleWait, s idleSetup, full time.Duration) string {
	scale := s.scale[w.timer]
	step := niceStep(max(s.resolution[w.timer], full/100))
	if scale > 1 {
		return fmt.Sprintf("bundled server variant at 1/%d scale: left idle after %s, closed after %v, i.e. %v at full scale (rounded to %v, the precision at that scale)",
			scale, w.what, w.elapsed.Round(100*time.Microsecond), full, step)
	}
	return fmt.Sprintf("a connection left idle after %s until the server closed it: closed after %v (from that reply's arrival to the end of the connection), rounded to %v",
		w.what, w.elapsed.Round(time.Millisecond), step)
}

// recordNotice sets whether the server sent a line before closing an
// idle connection, and its text. It prefers the connection idle after
// the greeting; the method says what the other one saw.
func (p *prober) recordNotice(waits []*idleWait) {
	var closed []*idleWait
	for _, w := range waits {
		if w.closed() {
			closed = append(closed, w)
		}
	}
	if len(closed) == 0 {
		for _, k := range []string{keyNotice, keyNoticeText} {
			p.skip(k, "the server closed no idle connection")
		}
		return
	}
	var seen []string
	var notice *idleWait
	var conns []*harness.Conn
	for _, w := range closed {
		conns = append(conns, w.conn)
		if len(w.lines) == 0 {
			seen = append(seen, "after "+w.what+": closed silently")
			continue
		}
		seen = append(seen, fmt.Sprintf("after %s: %q, then the close", w.what, lastLine(w.lines)))
		if notice == nil {
			notice = w
		}
	}
	method := "a line received just before the server closed an idle connection (" + strings.Join(seen, "; ") + ")"
	p.evidence(keyNotice, conns...)
	if notice == nil {
		p.set(keyNotice, false, method)
		return
	}
	p.set(keyNotice, true, method)
	p.set(keyNoticeText, noticeText(lastLine(notice.lines)), "the notice's text after its status indicator, from the connection idle after "+notice.what)
}

func lastLine(lines [][]byte) string {
	return strings.TrimRight(string(lines[len(lines)-1]), "\r\n")
}

// noticeText is the text after the status indicator ("-ERR").
func noticeText(line string) string {
	_, text, _ := strings.Cut(line, " ")
	return text
}
