package conformance

import (
	"bytes"
	"fmt"
	"net/mail"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// removalView is one UPDATE that the mutating specs about removal judge,
// each by its own rule: a session marks messages 1 and 3 (1 alone when
// there are two), QUIT removes them, and the next session looks. One
// UPDATE for all of them takes two messages from the audited maildrop
// instead of two or three per spec, which a remote account never gets
// back.
type removalView struct {
	Account harness.Account
	// Count is STAT's count before (-1 when STAT was no drop listing);
	// nothing was marked when it is below 2.
	Count       int
	Before      harness.Reply
	List, UIDL  harness.Multi // before the marks
	Marked      []int
	later       laterReplies[harness.Multi]
	closeAfterQ error // what waiting for the close after QUIT's reply found
}

// Keys of the replies in the session after UPDATE.
const (
	statNext = "STAT in the next session"
	listNext = "LIST in the next session"
	uidlNext = "UIDL in the next session"
)

// Reply returns the single-line reply kept under key.
func (v removalView) Reply(key string) harness.Reply { return v.later.of(key).Reply }

// Multi returns the multi-line reply kept under key.
func (v removalView) Multi(key string) harness.Multi { return v.later.of(key) }

// QuitClosed returns QUIT's reply and fails the spec unless the server
// then closed the connection.
func (v removalView) QuitClosed() harness.Reply {
	r := v.later.of("QUIT").Reply
	ExpectWithOffset(1, v.closeAfterQ).NotTo(HaveOccurred(), "the server must close the connection after QUIT")
	return r
}

// marksAccepted fails the spec unless every DELE of the marking session
// got +OK.
func (v removalView) marksAccepted() {
	for _, i := range v.Marked {
		line := fmt.Sprintf("DELE %d", i)
		r := v.later.of(line).Reply
		ExpectWithOffset(1, r.OK()).To(BeTrue(), "%s: want +OK, got %q", line, r.String())
	}
}

var removal = Reading[removalView]{name: "one UPDATE that removes messages 1 and 3", read: readRemoval}

// readRemoval logs in, looks, marks, quits and looks again in a new
// session: STAT, LIST, UIDL, UIDL 1 and 2, and RETR 1 and 2 when the
// maildrop held fixture alice before.
func readRemoval(ctx SpecContext, t *harness.Target) removalView {
	a := need(t.Account(ctx))
	c := loginAs(ctx, t, a)
	v := removalView{Account: a, Count: -1, Before: cmd(c, "STAT")}
	v.Count = countOf(v.Before)
	v.List, v.UIDL = multi(c, "LIST"), multi(c, "UIDL")
	if v.Count < 2 {
		return v
	}
	v.Marked = []int{1}
	if v.Count >= 3 {
		v.Marked = append(v.Marked, 3)
	}
	l := &v.later
	l.conn = c
	ok := true
	for _, i := range v.Marked {
		ok = ok && l.ask(fmt.Sprintf("DELE %d", i), singleOn(c))
	}
	if !ok || !l.ask("QUIT", singleOn(c)) {
		return v
	}
	_, v.closeAfterQ = c.ExpectClose()
	next, ok := lookAgain(ctx, t, a, l, "QUIT", statNext, listNext, uidlNext)
	if v.UIDL.OK() {
		ok = ok && l.ask("UIDL 1", singleOn(next)) && l.ask("UIDL 2", singleOn(next))
	}
	if a.Fixture == "alice" {
		_ = ok && l.ask("RETR 1", next.CmdMulti) && l.ask("RETR 2", next.CmdMulti)
	}
	return v
}

// removalOf gets the removal reading for a spec that needs want messages.
func removalOf(ctx SpecContext, t *harness.Target, want int) removalView {
	v := removal.Get(ctx, t)
	statAtLeastOf(v.Before, want)
	return v
}

// expectSameMessage fails the spec unless got is fixture message fx as a
// server may keep it after rewriting the maildrop in UPDATE: header
// fields may have been added (mbox servers add X-UIDL or Status), but the
// Message-ID and the body are the fixture's. Which message is which is
// all the removal rules ask of the content; its octets are the RETR
// specs' to judge, on a maildrop no UPDATE has touched.
func expectSameMessage(got []byte, fx harness.FixtureMessage, what string) {
	end, fxEnd := headerEnd(got), headerEnd(fx.Data)
	if fxEnd < 0 {
		ExpectWithOffset(1, string(got)).To(Equal(string(fx.Data)), "%s must be %s", what, fx.Name)
		return
	}
	ExpectWithOffset(1, end).To(BeNumerically(">=", 0), "%s: a header ended by an empty line, as %s has", what, fx.Name)
	ExpectWithOffset(1, messageID(got)).To(Equal(messageID(fx.Data)), "%s: the Message-ID of %s", what, fx.Name)
	ExpectWithOffset(1, string(got[end:])).To(Equal(string(fx.Data[fxEnd:])), "%s: the body of %s", what, fx.Name)
}

// messageID is the Message-ID field of a message, "" without one.
func messageID(msg []byte) string {
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		return ""
	}
	return m.Header.Get("Message-ID")
}
