package conformance

import (
	"cmp"
	"fmt"

	. "github.com/onsi/ginkgo/v2"

	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// A Reading is an exchange with the server that several specs judge, each
// by its own rule: CAPA in both states, one session that draws every kind
// of reply. The first spec that needs it reads it; the later specs of the
// run judge the same replies and show the same transcripts, instead of
// asking the server again, which across a network costs a connection and
// a login per spec. Pass the Reading to Spec as well: when the probe
// shares specs among processes, the specs of one Reading go to the same
// process, so the server is asked once per run.
//
// Only a reading that completed is kept; one that failed or was skipped
// is read again by the next spec, which then fails or skips on its own.
type Reading[T any] struct {
	name string
	read func(SpecContext, *harness.Target) T
}

// sharedReading is a Reading of any type, as Spec sees it.
type sharedReading interface{ readingName() string }

func (r Reading[T]) readingName() string { return r.name }

// Get returns the reading for t, reading it when no earlier spec has.
func (r Reading[T]) Get(ctx SpecContext, t *harness.Target) T {
	if v, ok := t.Recall(r.name); ok {
		return v.(T)
	}
	mark := t.Recorder().Mark()
	v := r.read(ctx, t)
	t.Remember(r.name, v, mark)
	return v
}

// laterReplies holds the replies a Reading asked for after the part every
// one of its specs needs, by command line. Once the session fails the rest
// are not asked. A spec that judges the reply the session failed at fails
// for it (or is inconclusive when the server closed right after a -ERR,
// which RFC 1939 section 4 and C0005 allow); one that judges a reply
// never asked is inconclusive; the others are judged on what they saw.
type laterReplies[T any] struct {
	got    map[string]T
	broken string // why the session ended early, "" when it did not
	// brokeAt is the key of the command the session failed at ("" when
	// it failed elsewhere, as at a new login); allowed says why that
	// failure is one the server may choose ("" when it is not).
	brokeAt, allowed string
	// conn is the session the commands go to, when the reader says so:
	// it tells a close after a -ERR from one nothing explains.
	conn *harness.Conn
}

// ask sends line with send and keeps the reply, unless it already has
// one; false once the session has failed.
func (l *laterReplies[T]) ask(line string, send func(string) (T, error)) bool {
	return l.askAs(line, line, send)
}

// askAs is ask for a line sent more than once in a reading: the reply is
// kept under key, which names the moment (as "STAT after DELE 1").
func (l *laterReplies[T]) askAs(key, line string, send func(string) (T, error)) bool {
	if l.broken != "" {
		return false
	}
	if _, ok := l.got[key]; ok {
		return true
	}
	v, err := send(line)
	if err != nil {
		l.broken, l.brokeAt = fmt.Sprintf("the session failed at %q: %v", line, err), key
		if c := l.conn; c != nil && harness.IsServerClose(err) && c.LastStatus() == "-ERR" {
			l.allowed = fmt.Sprintf("the server closed the connection after %s instead of answering %q; RFC 1939 section 4 and C0005 let a server close after a negative reply",
				harness.Count(c.ErrReplies(), "-ERR reply"), redactForMessage(line))
		}
		return false
	}
	if l.got == nil {
		l.got = map[string]T{}
	}
	l.got[key] = v
	return true
}

// fail ends the reading's session early for why: nothing more is asked.
func (l *laterReplies[T]) fail(why string) {
	if l.broken == "" {
		l.broken = why
	}
}

// of returns the reply kept under key (the line, unless askAs named it).
// Without one it ends the spec that asks, at its caller's caller (the
// spec's line): failed for the command the session failed at,
// inconclusive for one the session never got to.
func (l laterReplies[T]) of(key string) T {
	v, ok := l.got[key]
	switch {
	case ok:
	case l.broken == "" || (key == l.brokeAt && l.allowed == ""):
		FailHandler(fmt.Sprintf("%s: no reply (%s)", key, cmp.Or(l.broken, "not asked")), 2)
	case key == l.brokeAt:
		verdict.SkipInconclusive("%s: %s, so this spec cannot judge its statement", key, l.allowed)
	default:
		verdict.SkipInconclusive("%s was not asked: %s", key, l.broken)
	}
	return v
}
