package conformance

// Helpers for the inactivity timer specs (V0002, V0003, RFC 1939 section
// 3): bundled variants with short or scaled timers, the window in which a
// timer may fire, and idle sessions kept alive by commands.

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// autologoutMin is RFC 1939 section 3's own floor for an inactivity
// autologout timer. It is the rule being checked, not a profile value: a
// profile whose timers are shorter follows MS-STANXPOP3 V0002.
const autologoutMin = 10 * time.Minute

// scaledAutologoutMin is what the RFC minimum becomes on the bundled
// server, whose timers scaledToRFCMin divides by
// autologoutMin/scaledAutologoutMin so that a timer spec takes about a
// second.
const scaledAutologoutMin = 800 * time.Millisecond

// scaledToRFCMin returns a bundled server whose timers run
// autologoutMin/scaledAutologoutMin times faster, on the server and in the
// expectations alike, so that the RFC minimum becomes scaledAutologoutMin.
func scaledToRFCMin(ctx SpecContext, t *harness.Target) *harness.Target {
	k := autologoutMin / scaledAutologoutMin
	return need(t.Variant(ctx, func(p *profile.Profile) {
		p.Timers.Unauthenticated = profile.Duration(p.Timers.Unauthenticated.D() / k)
		p.Timers.Authenticated = profile.Duration(p.Timers.Authenticated.D() / k)
	}))
}

// scaledTimer returns a variant of the bundled server whose inactivity
// timer for one state is scaled so that the expectation becomes want. The
// same factor applies to what the server does, so a server whose timer
// differs from the profile still differs, in proportion, and a
// discrimination run sees it without waiting minutes.
func scaledTimer(ctx SpecContext, t *harness.Target, authenticated bool, want time.Duration) *harness.Target {
	expected := t.Profile.Timers.Unauthenticated.D()
	if authenticated {
		expected = t.Profile.Timers.Authenticated.D()
	}
	scale := func(d profile.Duration) profile.Duration {
		v := time.Duration(float64(d.D()) * float64(want) / float64(expected))
		if v < time.Millisecond {
			v = time.Millisecond
		}
		return profile.Duration(v)
	}
	return need(t.Variant(ctx, func(p *profile.Profile) {
		if authenticated {
			p.Timers.Authenticated = scale(p.Timers.Authenticated)
			// Logging in takes milliseconds; keep the other timer out of
			// the way.
			p.Timers.Unauthenticated = profile.Duration(10 * time.Second)
		} else {
			p.Timers.Unauthenticated = scale(p.Timers.Unauthenticated)
		}
	}))
}

// shortTimers returns a bundled server whose idle timers are set to the
// given values, on the server and in the expectations, for specs that
// judge what happens when a timer fires rather than its value.
func shortTimers(ctx SpecContext, t *harness.Target, unauthenticated, authenticated time.Duration) *harness.Target {
	return need(t.Variant(ctx, func(p *profile.Profile) {
		p.Timers.Unauthenticated = profile.Duration(unauthenticated)
		p.Timers.Authenticated = profile.Duration(authenticated)
	}))
}

// timerWindow is how early and how late a timer may fire: a fifth of the
// timer early (the client measures from when it received its last reply,
// after the server read the command), and a quarter of it plus a
// scheduling margin late. For Exchange's 30-minute timer the late end
// stays inside the slow spec time limit.
func timerWindow(d time.Duration) (early, late time.Duration) {
	return d - d/5, d + d/4 + 500*time.Millisecond
}

// bundledOnly and remoteOnly split a timer statement between a fast spec
// on the bundled server and a slow one with the real timers against a
// remote host. The spec that does not apply ends as not run, the lowest
// verdict, so it never hides the other's result.
func bundledOnly(t *harness.Target) {
	if t.Reference() == nil {
		verdict.SkipNotRun("runs on the bundled server only; a remote host is judged by the real-timer spec of the same statement (allow slow)")
	}
}

func remoteOnly(t *harness.Target) {
	if t.Reference() != nil {
		verdict.SkipNotRun("waits for the real timer on a remote host; the bundled server is judged by the short-timer spec of the same statement")
	}
}

// idleSession is one connection kept idle by an autologout check, with the
// command that proves it is still alive.
type idleSession struct {
	state string
	c     *harness.Conn
	poke  string
	multi bool // poke answers with a multi-line reply
}

// idleRounds lets every session idle for most of min, pokes each with a
// command, and does it once more. Surviving the first round shows that no
// timer shorter than min closed the session; surviving the second shows
// that the command restarted the timer, since by then more than min has
// passed since the session began to idle.
func idleRounds(sessions []idleSession, min time.Duration) {
	// The server starts its timer when it waits for the next line, a
	// moment before the client has read the reply; a margin keeps
	// scheduling noise out of the verdict.
	idle := min * 85 / 100
	for round := 1; round <= 2; round++ {
		time.Sleep(idle)
		for _, s := range sessions {
			// A server that gave up on the session has closed it, perhaps
			// after a notice; see that before the poke reads the notice
			// as its reply.
			extra, closed := s.c.Quiet(time.Millisecond)
			ExpectWithOffset(1, closed || len(extra) > 0).To(BeFalse(),
				"%s: the server ended a session idle for %v (round %d), under the RFC minimum of %v; it sent %q", s.state, idle, round, min, extra)
			var (
				r   harness.Reply
				err error
			)
			if s.multi {
				var m harness.Multi
				m, err = s.c.CmdMulti(s.poke)
				r = m.Reply
			} else {
				r, err = s.c.Cmd(s.poke)
			}
			ExpectWithOffset(1, err).NotTo(HaveOccurred(),
				"%s: the server closed a session after %v idle (round %d), under the RFC minimum of %v", s.state, idle, round, min)
			ExpectWithOffset(1, r.OK() || r.Err()).To(BeTrue(), "%s: %s after %v idle: %q", s.state, s.poke, idle, r.String())
		}
	}
}
