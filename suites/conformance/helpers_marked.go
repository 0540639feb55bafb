package conformance

import (
	"fmt"
	"strconv"
	"strings"

	. "github.com/onsi/ginkgo/v2"

	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// markedView is what the reversible specs judge of deletion marks, read
// once: the maildrop before any mark, the replies while message 1 (then 2
// and 3) is marked, RSET and its effect, and a new session after marking
// again and closing without QUIT. One such session instead of one per
// spec is fewer round trips, and fewer DELE commands on a server that
// wrongly removes mail at DELE: there, every extra DELE is a lost message.
type markedView struct {
	Account harness.Account
	// Before is STAT before any mark; Count its message count (-1 when it
	// is no drop listing, and then nothing was marked).
	Before harness.Reply
	Count  int
	// List and UIDL are the listings before any mark (UIDL is sent even
	// without the capability, as look does; only a +OK one is used).
	List, UIDL harness.Multi
	// Retr2 is RETR 2 before any mark, read with 3 or more messages.
	Retr2 harness.Multi
	// Dele1 is the reply to the first DELE 1, which every later reply
	// depends on: without +OK nothing more is asked.
	Dele1 harness.Reply
	// NotMarkedAgain says why nothing was marked again after RSET before
	// the close ("" when it was).
	NotMarkedAgain string
	later          laterReplies[harness.Multi]
}

// Keys of the replies read after DELE 1, for the line sent more than once.
const (
	statMarked1      = "STAT after DELE 1"
	statMarkedTwice  = "STAT after DELE 1 twice"
	statMarked2      = "STAT after DELE 1 and DELE 2"
	listMarked       = "LIST after DELE 1"
	uidlMarked       = "UIDL after DELE 1"
	retr2Marked      = "RETR 2 after DELE 1"
	deleAgain        = "DELE 1 again"
	statReset        = "STAT after RSET"
	listReset        = "LIST after RSET"
	statNewSession   = "STAT in a new session after marks and a close without QUIT"
	listNewSession   = "LIST in a new session after marks and a close without QUIT"
	uidlNewSession   = "UIDL in a new session after marks and a close without QUIT"
	markedOneFormMax = 20 // LIST n and UIDL n are asked for the listings' 2nd to this one
	resetMarksMax    = 3  // messages marked before RSET, and again before the close
)

// Reply returns the single-line reply kept under key.
func (v markedView) Reply(key string) harness.Reply { return v.later.of(key).Reply }

// Multi returns the multi-line reply kept under key.
func (v markedView) Multi(key string) harness.Multi { return v.later.of(key) }

// BeforeBox is the maildrop as look would have seen it before any mark.
func (v markedView) BeforeBox() mailbox { return boxOf(v.Before, v.UIDL) }

// AfterBox is the maildrop as a new session saw it after the close.
func (v markedView) AfterBox() mailbox {
	return boxOf(v.later.of(statNewSession).Reply, v.later.of(uidlNewSession))
}

var marked = Reading[markedView]{name: "a session with messages marked deleted", read: readMarked}

// readMarked logs in and reads markedView. The replies that must be -ERR
// stay within the server's error budget (C0005): when the next one might
// let it close, the session ends without QUIT and a new one marks
// message 1 again before going on.
func readMarked(ctx SpecContext, t *harness.Target) markedView {
	c, a := login(ctx, t)
	v := markedView{Account: a, Count: -1, Before: cmd(c, "STAT")}
	v.Count = countOf(v.Before)
	n := v.Count
	v.List = multi(c, "LIST")
	v.UIDL = multi(c, "UIDL")
	if n >= 3 {
		v.Retr2 = multi(c, "RETR 2")
	}
	if n < 1 {
		return v
	}
	// From the first DELE on, however the reading ends (a failed spec
	// included), a session that did not end with the new session's look
	// is followed by one: a server that lost the marked mail must not be
	// sent more DELE by later specs.
	looked := false
	defer func() {
		if !looked && !v.Dele1.Err() {
			checkLost(ctx, t, a, v.Before, v.UIDL, "the marking session ended early")
		}
	}()
	v.Dele1 = cmd(c, "DELE 1")
	if !v.Dele1.OK() {
		return v
	}
	l := &v.later
	l.conn = c
	// c changes when the error budget asks for a new session.
	one := func(line string) (harness.Multi, error) { return singleOn(c)(line) }
	many := func(line string) (harness.Multi, error) { return c.CmdMulti(line) }
	uidl := t.Profile.HasCapability("UIDL") && v.UIDL.OK()
	ok := l.askAs(statMarked1, "STAT", one) && l.askAs(listMarked, "LIST", many)
	for _, k := range numbersAfterFirst(v.List) {
		ok = ok && l.ask(fmt.Sprintf("LIST %d", k), one)
	}
	if uidl {
		ok = ok && l.askAs(uidlMarked, "UIDL", many)
		for _, k := range numbersAfterFirst(v.UIDL) {
			ok = ok && l.ask(fmt.Sprintf("UIDL %d", k), one)
		}
	}
	if ok && v.Retr2.OK() {
		ok = l.askAs(retr2Marked, "RETR 2", many)
	}
	// The commands that name the marked message, each of which must be
	// refused. +OK to RETR or TOP would start a body: read it in full so
	// that the next reply is not misread.
	type step struct {
		key, line string
		send      func(string) (harness.Multi, error)
	}
	refused := []step{{"LIST 1", "LIST 1", one}, {"RETR 1", "RETR 1", many}}
	if t.Profile.HasCapability("TOP") {
		refused = append(refused, step{"TOP 1 0", "TOP 1 0", many})
	}
	if uidl {
		refused = append(refused, step{"UIDL 1", "UIDL 1", one})
	}
	refused = append(refused, step{deleAgain, "DELE 1", one})
	for _, rf := range refused {
		if !ok {
			break
		}
		if !fitsErrBudget(t, true, c.ErrReplies()+1) {
			// A new session with message 1 marked again, so that the
			// next refusal cannot be the one the server closes on.
			c.Close()
			var err error
			if c, err = t.Login(ctx, a); err != nil {
				l.fail(fmt.Sprintf("a new session within the error budget: %v", err))
				break
			}
			l.conn = c
			// Marked mail that did not survive the close must not be
			// marked again: DELE 1 would take another message.
			r, err := c.Cmd("STAT")
			if err != nil {
				l.fail(fmt.Sprintf("STAT in a new session within the error budget: %v", err))
				break
			}
			if k := countOf(r); k >= 0 && k < n {
				noteLost(t, fmt.Sprintf("a new session found %q where there were %q before the marks and a close without QUIT", r.Text, v.Before.Text))
				l.fail(fmt.Sprintf("a new session within the error budget found %q where there were %q", r.Text, v.Before.Text))
				break
			}
			if r, err := c.Cmd("DELE 1"); err != nil || !r.OK() {
				l.fail(fmt.Sprintf("DELE 1 in a new session within the error budget: %q, %v", r.Raw, err))
				break
			}
		}
		ok = l.askAs(rf.key, rf.line, rf.send)
	}
	ok = ok && l.askAs(statMarkedTwice, "STAT", one)
	if ok && n >= 2 {
		ok = l.ask("DELE 2", one) && l.askAs(statMarked2, "STAT", one)
	}
	if ok && n >= 3 {
		ok = l.ask("DELE 3", one)
	}
	ok = ok && l.ask("RSET", one) && l.askAs(statReset, "STAT", one) && l.askAs(listReset, "LIST", many)
	if r := l.got[statReset].Reply; ok && countOf(r) >= 0 && countOf(r) < n {
		// Not a verdict (the RSET specs judge it): the first sign that
		// the server may not give marked mail back.
		noteLost(t, fmt.Sprintf("STAT %q before any mark, %q after RSET", v.Before.Text, r.Text))
	}
	for k := 1; ok && k <= min(n, resetMarksMax); k++ {
		ok = l.askAs(fmt.Sprintf("LIST %d after RSET", k), fmt.Sprintf("LIST %d", k), one)
	}
	// Marks again, then a close without QUIT: no UPDATE, so a new
	// session must find every message. Not when RSET already showed mail
	// lost: more marks would lose more.
	if v.NotMarkedAgain = t.Lost(); v.NotMarkedAgain != "" {
		v.NotMarkedAgain = "the session was closed without marking again, since the server had already lost marked mail: " + v.NotMarkedAgain
	}
	for k := 1; ok && v.NotMarkedAgain == "" && k <= min(n, resetMarksMax); k++ {
		ok = l.askAs(fmt.Sprintf("DELE %d before the close", k), fmt.Sprintf("DELE %d", k), one)
	}
	if !ok {
		return v
	}
	c.Close()
	looked = true
	if _, ok := lookAgain(ctx, t, a, l, "the close without QUIT", statNewSession, listNewSession, uidlNewSession); ok {
		if gone := lostFrom(v.BeforeBox(), boxOf(l.got[statNewSession].Reply, l.got[uidlNewSession])); gone != "" {
			noteLost(t, "after marks and a close without QUIT, "+gone)
		}
	}
	return v
}

// countOf is the message count of a STAT reply, -1 when it is none.
func countOf(r harness.Reply) int {
	m := statRE.FindStringSubmatch(string(r.Raw))
	if m == nil {
		return -1
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return -1
	}
	return n
}

// checkLost logs in again as a, after a session that marked mail ended
// without the look that would have shown a loss (why says how it ended),
// and notes a loss against the STAT and UIDL replies from before the
// marks. It asserts nothing: it may run while a spec is failing.
func checkLost(ctx SpecContext, t *harness.Target, a harness.Account, stat harness.Reply, uidl harness.Multi, why string) {
	before := countOf(stat)
	if before < 0 || t.Lost() != "" {
		return
	}
	c, err := reLogin(ctx, t, a)
	if err != nil {
		return // nothing seen, nothing to say
	}
	defer c.Close()
	st, err := c.Cmd("STAT")
	if err != nil || countOf(st) < 0 {
		return
	}
	var after harness.Multi
	if uidl.OK() {
		if after, err = c.CmdMulti("UIDL"); err != nil {
			after = harness.Multi{}
		}
	}
	if gone := lostFrom(quietBox(before, uidl), quietBox(countOf(st), after)); gone != "" {
		noteLost(t, why+", and then "+gone)
	}
}

// quietBox is boxOf for replies already known to be well-formed, without
// assertions.
func quietBox(count int, uidl harness.Multi) mailbox {
	mb := mailbox{Count: count}
	if uidl.OK() {
		mb.UIDs = []string{}
		for _, l := range uidl.Texts() {
			_, uid, _ := strings.Cut(l, " ")
			mb.UIDs = append(mb.UIDs, uid)
		}
	}
	return mb
}

// noteLost tells the target that the server lost marked mail, so that no
// later spec marks more (Target.NoteLost), and says so in the log.
func noteLost(t *harness.Target, why string) {
	if t.Lost() == "" {
		GinkgoWriter.Printf("the server did not give marked mail back: %s; no more DELE that relies on an undo\n", why)
	}
	t.NoteLost(why)
}

// lostFrom says what of before is missing in after ("" when nothing):
// unique-ids where both have them, else the count.
func lostFrom(before, after mailbox) string {
	if before.UIDs != nil && after.UIDs != nil {
		if n := len(goneUIDs(before, after)); n > 0 {
			return fmt.Sprintf("%d of %d messages were gone in a new session", n, len(before.UIDs))
		}
		return ""
	}
	if after.Count < before.Count {
		return fmt.Sprintf("a new session found %d messages where there were %d", after.Count, before.Count)
	}
	return ""
}

// lookAgain logs in again as a after a session ended (after says how)
// and asks STAT, LIST and UIDL, kept under the keys given. It returns the
// new session, nil when the login failed (l then says why), and whether
// every reply came.
func lookAgain(ctx SpecContext, t *harness.Target, a harness.Account, l *laterReplies[harness.Multi], after, statKey, listKey, uidlKey string) (*harness.Conn, bool) {
	c, err := reLogin(ctx, t, a)
	if err != nil {
		l.fail(fmt.Sprintf("log in again after %s: %v", after, err))
		return nil, false
	}
	l.conn = c
	ok := l.askAs(statKey, "STAT", singleOn(c)) && l.askAs(listKey, "LIST", c.CmdMulti) && l.askAs(uidlKey, "UIDL", c.CmdMulti)
	return c, ok
}

// numbersAfterFirst returns the message numbers a listing names after its
// first line, at most up to its markedOneFormMax-th line: those whose
// one-message form a spec compares with the listing.
func numbersAfterFirst(m harness.Multi) []int {
	var nums []int
	for i, line := range m.Texts() {
		if i == 0 || i >= markedOneFormMax {
			continue
		}
		num, _, _ := strings.Cut(line, " ")
		if k, err := strconv.Atoi(num); err == nil {
			nums = append(nums, k)
		}
	}
	return nums
}

// singleOn sends a single-line command on c, its reply kept as a Multi
// without lines.
func singleOn(c *harness.Conn) func(string) (harness.Multi, error) {
	return func(line string) (harness.Multi, error) {
		r, err := c.Cmd(line)
		return harness.Multi{Reply: r}, err
	}
}

// markedAtLeast gets the marked reading for a spec that needs want
// messages and the first DELE 1 accepted.
func markedAtLeast(ctx SpecContext, t *harness.Target, want int) markedView {
	v := marked.Get(ctx, t)
	statAtLeastOf(v.Before, want)
	expectOK(v.Dele1, "DELE 1")
	return v
}
