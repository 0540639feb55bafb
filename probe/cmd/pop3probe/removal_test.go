package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/probe/report"
)

// maildropFake is a POP3 server with one maildrop that outlives its
// sessions, so that what QUIT removed shows in the next session. update
// decides what UPDATE leaves of the session's messages; keepNumbers
// numbers the messages of a new session by their first numbers instead
// of afresh from 1; closeAt, when set, drops the connection without a
// reply at that command line while a message is marked; deleNow removes
// a message from the maildrop at DELE, as servers that move it away do.
type maildropFake struct {
	mu          sync.Mutex
	msgs        []fakeMsg
	update      func(msgs []fakeMsg, marked map[int]bool) []fakeMsg
	keepNumbers bool
	closeAt     string
	deleNow     bool
	deles       int
	// lockAfter, when set, refuses every PASS once that many wrong
	// passwords were given, as a lockout policy does.
	lockAfter, wrong int
}

type fakeMsg struct {
	num  int // the number it had when the maildrop was filled
	uid  string
	body string
}

func newMaildropFake(n int) *maildropFake {
	f := &maildropFake{}
	for i := 1; i <= n; i++ {
		f.msgs = append(f.msgs, fakeMsg{num: i, uid: fmt.Sprintf("uid-%d", i),
			body: fmt.Sprintf("From: a@example.com\r\nSubject: message %d\r\n\r\nbody %d\r\n", i, i)})
	}
	return f
}

// removeMarked is a correct UPDATE.
func removeMarked(msgs []fakeMsg, marked map[int]bool) []fakeMsg {
	var left []fakeMsg
	for i, m := range msgs {
		if !marked[i+1] {
			left = append(left, m)
		}
	}
	return left
}

func (f *maildropFake) serve(c net.Conn, _ <-chan struct{}) {
	w := func(s string) bool { _, err := io.WriteString(c, s); return err == nil }
	if !w("+OK fake maildrop ready\r\n") {
		return
	}
	var (
		msgs   []fakeMsg // the session's view, numbered from 1 by index
		marked map[int]bool
		tx     bool
	)
	number := func(i int) int {
		if f.keepNumbers {
			return msgs[i].num
		}
		return i + 1
	}
	// find returns the index of message n of the session, -1 if none.
	find := func(arg string) int {
		n, err := strconv.Atoi(arg)
		if err != nil {
			return -1
		}
		for i := range msgs {
			if number(i) == n && !marked[i+1] {
				return i
			}
		}
		return -1
	}
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		if f.closeAt != "" && sc.Text() == f.closeAt && len(marked) > 0 {
			return
		}
		verb, arg, _ := strings.Cut(sc.Text(), " ")
		verb = strings.ToUpper(verb)
		reply := "-ERR no\r\n"
		switch {
		case verb == "CAPA":
			reply = "+OK\r\nUSER\r\nUIDL\r\n.\r\n"
		case verb == "USER" && !tx:
			reply = "+OK\r\n"
		case verb == "PASS" && !tx:
			f.mu.Lock()
			if f.lockAfter > 0 && arg != testPassword {
				f.wrong++
			}
			locked := f.lockAfter > 0 && (f.wrong >= f.lockAfter || arg != testPassword)
			msgs = slices.Clone(f.msgs)
			f.mu.Unlock()
			if locked {
				reply = "-ERR [AUTH] authentication failed\r\n"
				break
			}
			marked, tx = map[int]bool{}, true
			reply = "+OK in\r\n"
		case verb == "QUIT":
			if tx {
				f.mu.Lock()
				f.msgs = f.update(msgs, marked)
				f.mu.Unlock()
			}
			w("+OK bye\r\n")
			return
		case !tx:
		case verb == "NOOP", verb == "RSET":
			if verb == "RSET" {
				clear(marked)
			}
			reply = "+OK\r\n"
		case verb == "STAT":
			n, size := 0, 0
			for i, m := range msgs {
				if !marked[i+1] {
					n, size = n+1, size+len(m.body)
				}
			}
			reply = fmt.Sprintf("+OK %d %d\r\n", n, size)
		case (verb == "LIST" || verb == "UIDL") && arg == "":
			var b strings.Builder
			b.WriteString("+OK\r\n")
			for i, m := range msgs {
				if marked[i+1] {
					continue
				}
				if verb == "LIST" {
					fmt.Fprintf(&b, "%d %d\r\n", number(i), len(m.body))
				} else {
					fmt.Fprintf(&b, "%d %s\r\n", number(i), m.uid)
				}
			}
			reply = b.String() + ".\r\n"
		case verb == "LIST" || verb == "UIDL" || verb == "RETR" || verb == "DELE":
			i := find(arg)
			switch {
			case i < 0:
			case verb == "LIST":
				reply = fmt.Sprintf("+OK %d %d\r\n", number(i), len(msgs[i].body))
			case verb == "UIDL":
				reply = fmt.Sprintf("+OK %d %s\r\n", number(i), msgs[i].uid)
			case verb == "RETR":
				reply = fmt.Sprintf("+OK %d octets\r\n%s.\r\n", len(msgs[i].body), msgs[i].body)
			default:
				marked[i+1] = true
				reply = "+OK marked\r\n"
				f.mu.Lock()
				f.deles++
				if f.deleNow {
					f.msgs = slices.DeleteFunc(f.msgs, func(m fakeMsg) bool { return m.uid == msgs[i].uid })
				}
				f.mu.Unlock()
			}
		}
		if !w(reply) {
			return
		}
	}
}

// TestRemovalJudged: the mutating specs about removal judge one UPDATE
// together (a Reading). Each must still fail on the flaw it is about,
// and only on it: a server whose UPDATE removes nothing, one that removes
// an unmarked message too, and one that keeps the old message numbers in
// the next session; the correct one is the control.
func TestRemovalJudged(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the mutating suite against fake servers")
	}
	const (
		quitUpdate = "RFC1939-6-quit-update"
		renumbered = "RFC1939-6-numbers-reassigned"
		onlyMarked = "V0006"
	)
	cases := []struct {
		name        string
		update      func([]fakeMsg, map[int]bool) []fakeMsg
		keepNumbers bool
		// deviate must deviate; unjudged, renumbered only, must be
		// inconclusive; the rest conformant.
		deviate  []string
		unjudged bool
	}{
		{"correct", removeMarked, false, nil, false},
		// Nothing was removed, so nothing had a new number to get.
		{"removes nothing", func(msgs []fakeMsg, _ map[int]bool) []fakeMsg { return msgs }, false,
			[]string{quitUpdate, onlyMarked}, true},
		{"removes message 2 too", func(msgs []fakeMsg, marked map[int]bool) []fakeMsg {
			if len(marked) > 0 {
				marked[2] = true
			}
			return removeMarked(msgs, marked)
		}, false, []string{quitUpdate, onlyMarked}, false},
		{"keeps the old numbers", removeMarked, true, []string{renumbered}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newMaildropFake(5)
			f.update, f.keepNumbers = tc.update, tc.keepNumbers
			port := startServer(t, nil, f.serve)
			r := runProbe(t, port, 60*time.Second, "--timeout", "60s", "--profile", "rfc1939", "--allow-mutating",
				"--label-filter", "mutating && req: containsAny {"+quitUpdate+", "+renumbered+", "+onlyMarked+"}")
			want := 0
			if len(tc.deviate) > 0 {
				want = 1
			}
			rep := r.check(t, want, smallRSSMiB)
			got := map[string]verdict.Verdict{}
			for _, st := range rep.Statements {
				switch st.ID {
				case quitUpdate, renumbered, onlyMarked:
					got[st.ID] = st.Verdict
				}
			}
			for _, id := range []string{quitUpdate, renumbered, onlyMarked} {
				v, ok := got[id]
				switch {
				case !ok:
					t.Errorf("%s is not in the report", id)
				case slices.Contains(tc.deviate, id) && v != verdict.Deviates:
					t.Errorf("%s: %s, want deviates", id, v)
				case id == renumbered && tc.unjudged:
					if v != verdict.Inconclusive {
						t.Errorf("%s: %s, want inconclusive", id, v)
					}
				case !slices.Contains(tc.deviate, id) && v != verdict.Conformant:
					t.Errorf("%s: %s, want conformant", id, v)
				}
			}
			for _, st := range rep.Statements {
				for _, s := range st.Specs {
					if got[st.ID] != "" {
						t.Logf("%s %s: %s", s.Verdict, s.Text, s.Reason)
					}
				}
			}
			t.Logf("verdicts %v; the maildrop kept %d of 5 messages", got, len(f.msgs))
		})
	}
}

// TestMarkedLostReply: the server drops the connection at LIST 2 while
// message 1 is marked, right after a +OK. The reversible specs judge one
// session (the marked Reading), so the drop must fail only the spec that
// judges that reply; the specs that judge replies read before it are
// judged on them, and those that judge replies the session never got to
// are inconclusive, not deviations. (Right after a -ERR the drop would be
// a close C0005 allows, and the spec of that reply inconclusive too.)
func TestMarkedLostReply(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the reversible suite against a fake server")
	}
	f := newMaildropFake(5)
	f.update, f.closeAt = removeMarked, "LIST 2"
	port := startServer(t, nil, f.serve)
	r := runProbe(t, port, 60*time.Second, "--timeout", "60s", "--profile", "rfc1939", "--allow-reversible",
		"--label-filter", "reversible && req: containsAny {RFC1939-5-msgnum-stable, RFC1939-5-retr-err, RFC1939-5-stat-excludes-deleted, RFC1939-5-list-excludes-deleted, RFC1939-5-dele-twice, RFC1939-5-rset-unmark}")
	rep := r.check(t, 1, smallRSSMiB, `the session failed at "LIST 2"`)
	want := map[string]verdict.Verdict{
		"RFC1939-5-msgnum-stable":         verdict.Deviates,
		"RFC1939-5-retr-err":              verdict.Inconclusive,
		"RFC1939-5-stat-excludes-deleted": verdict.Inconclusive, // STAT after DELE 2 was never asked
		"RFC1939-5-list-excludes-deleted": verdict.Conformant,
		"RFC1939-5-dele-twice":            verdict.Inconclusive,
		"RFC1939-5-rset-unmark":           verdict.Inconclusive,
	}
	for _, st := range rep.Statements {
		for _, s := range st.Specs {
			w, ok := want[st.ID]
			if !ok || !slices.Contains(s.Labels, "reversible") {
				continue
			}
			delete(want, st.ID)
			if s.Verdict != w {
				t.Errorf("%s %q: %s (%s), want %s", st.ID, s.Text, s.Verdict, s.Reason, w)
			}
		}
	}
	for id := range want {
		t.Errorf("%s: no reversible spec in the report", id)
	}
}

// TestMarkedLossSeenAfterEarlyEnd: a server that removes mail at DELE
// drops the marked session at LIST 2, before its RSET and before the new
// session that would have shown the loss. The reading must look anyway,
// and no later reversible spec may send another DELE.
func TestMarkedLossSeenAfterEarlyEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the reversible suite against a fake server")
	}
	f := newMaildropFake(5)
	f.update, f.closeAt, f.deleNow = removeMarked, "LIST 2", true
	port := startServer(t, nil, f.serve)
	r := runProbe(t, port, 60*time.Second, "--timeout", "60s", "--profile", "rfc1939", "--allow-reversible", "--label-filter", "reversible")
	rep := r.check(t, 1, smallRSSMiB, "lose marked mail")
	f.mu.Lock()
	deles, left := f.deles, len(f.msgs)
	f.mu.Unlock()
	if deles != 1 || left != 4 {
		t.Errorf("the server saw %d DELE and kept %d of 5 messages, want 1 and 4", deles, left)
	}
	if stoppedAfterLoss(rep) == 0 {
		t.Errorf("no reversible spec was stopped after the loss")
	}
}

// stoppedAfterLoss counts the specs of rep that did not run because the
// server had lost marked mail.
func stoppedAfterLoss(rep *report.Report) int {
	n := 0
	for _, st := range rep.Statements {
		for _, s := range st.Specs {
			if s.Verdict == verdict.NotRun && strings.Contains(s.Reason, "lose marked mail") {
				n++
			}
		}
	}
	return n
}

// TestLockoutIsNoDeviation: a server that locks the account after two
// wrong passwords, audited with disruptive specs (which send wrong
// passwords of the account) and reversible ones. The marked Reading runs
// before the disruptive specs and is judged. C0003 sends one wrong
// password of its own and then the right one, which works unless the
// brute-force spec, which locks the account, ran first. The reversible
// specs after them find their logins refused for the run's own doing:
// they, and C0003 when it came second, must end inconclusive, naming the
// failed logins; nothing may deviate.
func TestLockoutIsNoDeviation(t *testing.T) {
	if testing.Short() {
		t.Skip("runs disruptive and reversible specs against a fake server")
	}
	f := newMaildropFake(5)
	f.update, f.lockAfter = removeMarked, 2
	port := startServer(t, nil, f.serve)
	r := runProbe(t, port, 60*time.Second, "--timeout", "60s", "--profile", "rfc1939", "--allow-reversible", "--allow-disruptive",
		"--label-filter", "(disruptive && req: containsAny {C0003, RFC1939-13-bruteforce}) || (reversible && req: containsAny {RFC1939-5-retr-err, RFC1939-5-rset-no-args})")
	rep := r.check(t, 0, smallRSSMiB)
	after := 0
	for _, st := range rep.Statements {
		for _, s := range st.Specs {
			locked := s.Verdict == verdict.Inconclusive && strings.Contains(s.Reason, "failed login")
			switch {
			case s.Verdict == verdict.NotRun:
			case st.ID == "RFC1939-5-retr-err":
				if s.Verdict != verdict.Conformant {
					t.Errorf("%q: %s (%s), want conformant: it ran before the account was locked", s.Text, s.Verdict, s.Reason)
				}
			case st.ID == "C0003":
				if s.Verdict != verdict.Conformant && !locked {
					t.Errorf("%q: %s (%s), want conformant, or inconclusive after the brute-force spec", s.Text, s.Verdict, s.Reason)
				}
			case st.ID == "RFC1939-5-rset-no-args" && slices.Contains(s.Labels, "reversible"):
				after++
				if !locked {
					t.Errorf("%q: %s (%s), want inconclusive for the lockout the run caused", s.Text, s.Verdict, s.Reason)
				}
			}
		}
	}
	if after == 0 {
		t.Errorf("no reversible spec ran after the lockout")
	}
}
