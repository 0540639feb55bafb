package conformance

// Helpers that read a maildrop in the TRANSACTION state: STAT, listings,
// unique-ids, retrieval, and what the fixtures say the maildrop holds.

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/reference-server/embed"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// RFC 1939 grammar of the replies these helpers parse. Text after the
// sizes is allowed by the RFC ("strongly discouraged"); V0004/V0005 judge
// it.
var (
	statRE = regexp.MustCompile(`^\+OK ([0-9]+) ([0-9]+)(?: [^\r\n]*)?\r\n$`)
	scanRE = regexp.MustCompile(`^([0-9]+) ([0-9]+)(?: [^\r\n]*)?\r\n$`)
	// A unique-id listing is the number, one space and the unique-id, and
	// nothing else: the unique-id cannot hold a space.
	uidLineRE = regexp.MustCompile(`^([0-9]+) ([^ \r\n]*)\r\n$`)
	// The replies to LIST n and UIDL n.
	listOneRE = regexp.MustCompile(`^\+OK ([0-9]+) ([0-9]+)(?: [^\r\n]*)?\r\n$`)
	uidOneRE  = regexp.MustCompile(`^\+OK ([0-9]+) ([^ \r\n]*)\r\n$`)
	// RFC 1939 section 7: a unique-id is 1 to 70 characters in 0x21..0x7E.
	uidCharsRE = regexp.MustCompile(`^[\x21-\x7E]{1,70}$`)
)

// stat sends STAT and returns the message count and maildrop size; a
// reply outside the RFC 1939 grammar ("+OK nn mm", CRLF) fails the spec.
func stat(c *harness.Conn) (n int, size int64) {
	return statOf(cmd(c, "STAT"), 1)
}

// statOf reads a reply to STAT as stat does; offset is the caller's
// depth for the failure's location.
func statOf(r harness.Reply, offset int) (n int, size int64) {
	m := statRE.FindStringSubmatch(string(r.Raw))
	ExpectWithOffset(offset+1, m).NotTo(BeNil(), "STAT: want \"+OK nn mm\", got %q", r.Raw)
	n, _ = strconv.Atoi(m[1])
	size, _ = strconv.ParseInt(m[2], 10, 64)
	return n, size
}

// count logs in as a and returns the message count.
func count(ctx SpecContext, t *harness.Target, a harness.Account) int {
	c := loginAs(ctx, t, a)
	n, _ := stat(c)
	quitOK(c)
	return n
}

// needMessages ends the spec inconclusive when the maildrop holds fewer
// than want messages.
func needMessages(have, want int) {
	if have < want {
		verdict.SkipInconclusive("the maildrop has %d messages, the check needs at least %d", have, want)
	}
}

// statAtLeast sends STAT and ends the spec inconclusive when the maildrop
// holds fewer than want messages; it returns the count.
func statAtLeast(c *harness.Conn, want int) int {
	n, _ := stat(c)
	needMessages(n, want)
	return n
}

// listing is one line of a LIST or UIDL listing.
type listing struct {
	Num int
	// NumText is the message number as sent.
	NumText string
	// Value is the first word after the number: a size or a unique-id.
	Value string
	// Rest is everything after the number and its space, as sent.
	Rest string
}

// Size is Value as a number, or -1 when it is not one.
func (l listing) Size() int64 {
	n, err := strconv.ParseInt(l.Value, 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// UID is Value, for unique-id listings.
func (l listing) UID() string { return l.Value }

// listAll sends a listing command (LIST or UIDL) and splits each line into
// the message number and what follows it.
func listAll(c *harness.Conn, command string) []listing {
	return listAllOf(multi(c, command), command)
}

// listAllOf is listAll of a listing already read.
func listAllOf(m harness.Multi, command string) []listing {
	ExpectWithOffset(1, m.OK()).To(BeTrue(), "%s: want +OK, got %q", command, m.String())
	out := make([]listing, 0, len(m.Lines))
	for _, line := range m.Texts() {
		num, rest, _ := strings.Cut(line, " ")
		n, err := strconv.Atoi(num)
		ExpectWithOffset(1, err).NotTo(HaveOccurred(), "%s line %q does not start with a message number", command, line)
		val, _, _ := strings.Cut(rest, " ")
		out = append(out, listing{Num: n, NumText: num, Value: val, Rest: rest})
	}
	return out
}

// strictListing sends LIST or UIDL and checks every line against re, the
// RFC 1939 grammar of its listings.
func strictListing(c *harness.Conn, command string, re *regexp.Regexp, what string) []listing {
	return strictListingOf(multi(c, command), command, re, what, 3)
}

// strictListingOf is strictListing of a listing already read; offset is
// the depth of the caller the failure names.
func strictListingOf(m harness.Multi, command string, re *regexp.Regexp, what string, offset int) []listing {
	ExpectWithOffset(offset, m.OK()).To(BeTrue(), "%s: want +OK, got %q", command, m.String())
	out := make([]listing, 0, len(m.Lines))
	for _, l := range m.Lines {
		s := re.FindStringSubmatch(string(l))
		ExpectWithOffset(offset, s).NotTo(BeNil(), "%s: %q is not %s", command, l, what)
		n, _ := strconv.Atoi(s[1])
		_, rest, _ := strings.Cut(strings.TrimRight(string(l), "\r\n"), " ")
		out = append(out, listing{Num: n, NumText: s[1], Value: s[2], Rest: rest})
	}
	return out
}

// scanListings sends LIST and returns its scan listings, each "n size".
func scanListings(c *harness.Conn) []listing {
	return strictListing(c, "LIST", scanRE, "a scan listing \"n size\"")
}

// uidListings sends UIDL and returns its unique-id listings, each
// "n unique-id".
func uidListings(c *harness.Conn) []listing {
	return strictListing(c, "UIDL", uidLineRE, "\"n unique-id\"")
}

// uidsByNumber returns the unique-ids by message number. A server that
// does not answer UIDL leaves the spec inconclusive: nothing else tells
// messages apart across sessions.
func uidsByNumber(c *harness.Conn) map[int]string {
	return uidsByNumberOf(multi(c, "UIDL"))
}

// uidsByNumberOf is uidsByNumber of a UIDL listing already read.
func uidsByNumberOf(m harness.Multi) map[int]string {
	if m.Err() {
		verdict.SkipInconclusive("the server answers UIDL with %q, so messages cannot be told apart across sessions", m.String())
	}
	ExpectWithOffset(1, m.OK()).To(BeTrue(), "UIDL: %q", m.String())
	out := map[int]string{}
	for _, line := range m.Texts() {
		f := strings.Fields(line)
		ExpectWithOffset(1, f).To(HaveLen(2), "UIDL line %q is not \"n unique-id\"", line)
		n, err := strconv.Atoi(f[0])
		ExpectWithOffset(1, err).NotTo(HaveOccurred(), "UIDL line %q", line)
		out[n] = f[1]
	}
	return out
}

// retr retrieves message n and returns it un-stuffed.
func retr(c *harness.Conn, n int) []byte {
	m := multi(c, fmt.Sprintf("RETR %d", n))
	ExpectWithOffset(1, m.OK()).To(BeTrue(), "RETR %d: want +OK, got %q", n, m.String())
	return m.Body()
}

// retrieveLimit bounds how many messages eachMessage retrieves from a remote
// maildrop of unknown size.
const retrieveLimit = 10

// eachMessage retrieves up to retrieveLimit messages and hands each to
// check with its number and LIST size.
func eachMessage(c *harness.Conn, check func(num int, listed int64, m harness.Multi)) int {
	done := 0
	for _, l := range listAll(c, "LIST") {
		if done == retrieveLimit {
			break
		}
		size, err := strconv.ParseInt(strings.Fields(l.Rest + " x")[0], 10, 64)
		ExpectWithOffset(1, err).NotTo(HaveOccurred(), "scan listing size %q", l.Rest)
		m := multi(c, fmt.Sprintf("RETR %d", l.Num))
		ExpectWithOffset(1, m.OK()).To(BeTrue(), "RETR %d: %q", l.Num, m.String())
		check(l.Num, size, m)
		done++
	}
	return done
}

// mailbox is what a session sees of a maildrop: enough to tell whether
// anything was removed between two sessions.
type mailbox struct {
	Count int
	Size  int64
	// UIDs are the unique-ids in order, nil when the server has no UIDL.
	UIDs []string
}

// look reads the maildrop state of a TRANSACTION session.
func look(c *harness.Conn) mailbox {
	st := cmd(c, "STAT")
	m, err := c.CmdMulti("UIDL")
	ExpectWithOffset(1, err).NotTo(HaveOccurred(), "reply to UIDL")
	return boxOf(st, m)
}

// boxOf is look's mailbox from its STAT and UIDL replies already read.
func boxOf(st harness.Reply, uidl harness.Multi) mailbox {
	mb := quietBox(0, uidl)
	mb.Count, mb.Size = statOf(st, 2)
	return mb
}

// expectNothingRemoved compares two looks at one maildrop. Against a
// remote host mail may arrive in between, so with unique-ids every message
// seen before must still be there; without them the count must not drop.
func expectNothingRemoved(before, after mailbox, why string) {
	if before.UIDs != nil && after.UIDs != nil {
		ExpectWithOffset(1, goneUIDs(before, after)).To(BeEmpty(), "%s, yet messages with these unique-ids were removed", why)
		return
	}
	ExpectWithOffset(1, after.Count).To(BeNumerically(">=", before.Count), "%s, yet the maildrop went from %d to %d messages", why, before.Count, after.Count)
}

// goneUIDs are the unique-ids of before that after lacks.
func goneUIDs(before, after mailbox) []string {
	have := map[string]bool{}
	for _, u := range after.UIDs {
		have[u] = true
	}
	var gone []string
	for _, u := range before.UIDs {
		if !have[u] {
			gone = append(gone, u)
		}
	}
	return gone
}

// fixtureOf returns the messages the account's maildrop holds, when it is
// known to hold a fixture.
func fixtureOf(a harness.Account) ([]harness.FixtureMessage, bool) {
	if a.Fixture == "" {
		return nil, false
	}
	msgs, err := harness.FixtureMessages(a.Fixture)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return msgs, true
}

// needFixture returns the messages of fixture name when the account's
// maildrop is known to hold it, and ends the spec inconclusive otherwise.
func needFixture(a harness.Account, name string) []harness.FixtureMessage {
	if a.Fixture != name {
		if a.FixtureLost != "" {
			// Declared, but measured otherwise (or changed by this run).
			verdict.SkipInconclusive("%s", a.FixtureLost)
		}
		verdict.SkipInconclusive("the maildrop of %s is not known to hold the fixture %s (set %s=%s on an account prepared that way)", a.User, name, harness.EnvMailboxFixture, name)
	}
	msgs, err := harness.FixtureMessages(name)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return msgs
}

// needExactSizes ends the spec not applicable when the profile reports
// storage sizes instead of exact octet counts.
func needExactSizes(t *harness.Target) {
	if !t.Profile.ExactSizes {
		verdict.SkipNotApplicable("the profile follows MS-STANXPOP3 2.1.5 (storage sizes)")
	}
}

// maxDownload bounds how much a spec downloads from an unknown maildrop to
// learn exact sizes.
const maxDownload = 4 << 20

// exactSizes returns the exact octet count of the listed messages: from
// the fixture when the maildrop holds one, otherwise from RETR.
func exactSizes(c *harness.Conn, a harness.Account, list []listing) map[int]int64 {
	out := map[int]int64{}
	if msgs, ok := fixtureOf(a); ok {
		for i, m := range msgs {
			out[i+1] = int64(len(m.Data))
		}
		return out
	}
	var total int64
	for _, s := range list {
		total += s.Size()
		if total > maxDownload {
			verdict.SkipInconclusive("the maildrop holds more than %d octets, more than the check downloads to learn exact sizes", maxDownload)
		}
		m := multi(c, fmt.Sprintf("RETR %d", s.Num))
		ExpectWithOffset(1, m.OK()).To(BeTrue(), "RETR %d: want +OK, got %q", s.Num, m.String())
		out[s.Num] = int64(len(m.Body()))
	}
	return out
}

// failRemovals makes the bundled store fail removals of user's messages
// while fail returns true for them (embed.Control.FailRemovals) until the
// spec ends. Use it on a Variant, or on the shared store with a fresh
// account, so no other spec's user is affected.
func failRemovals(ctl embed.Control, user string, fail func(attempt int, uid string) bool) {
	DeferCleanup(ctl.FailRemovals(user, fail))
}

// failedUpdate is what a session saw of an UPDATE in which the bundled
// store failed one removal on purpose.
type failedUpdate struct {
	// Target is the variant the scenario ran on.
	Target  *harness.Target
	Account harness.Account
	// Before are the unique-ids by message number at login; Marked the
	// message numbers marked deleted, in the order DELE was sent.
	Before map[int]string
	Marked []int
	// Removed are the unique-ids the store really removed; FailedUID the
	// one whose removal was made to fail ("" when UPDATE never got that
	// far).
	Removed   map[string]bool
	FailedUID string
	Quit      harness.Reply
	// Again is a login right after the failed UPDATE (the server had
	// closed the first connection); AgainErr says why it failed.
	Again    *harness.Conn
	AgainErr error
}

// updateWithFailedRemoval marks messages marked deleted on a bundled
// variant of its own, makes the failAt-th removal of UPDATE fail, sends
// QUIT and logs in again at once. The store's hook tells which removals
// were attempted, so the spec knows exactly what must be gone.
func updateWithFailedRemoval(ctx SpecContext, t *harness.Target, marked []int, failAt int) failedUpdate {
	// A server of its own: the fault touches no other spec and goes away
	// with the variant.
	v := need(t.VariantWith(ctx, harness.VariantOptions{}))
	a := need(v.Account(ctx))
	c := loginAs(ctx, v, a)
	n, _ := stat(c)
	needMessages(n, slices.Max(marked))
	fu := failedUpdate{Target: v, Account: a, Before: uidsByNumber(c), Marked: marked, Removed: map[string]bool{}}
	var mu sync.Mutex
	failRemovals(v.Reference().Control, a.User, func(attempt int, uid string) bool {
		mu.Lock()
		defer mu.Unlock()
		if attempt == failAt {
			fu.FailedUID = uid
			return true
		}
		fu.Removed[uid] = true
		return false
	})
	for _, i := range marked {
		expectOK(cmd(c, fmt.Sprintf("DELE %d", i)), fmt.Sprintf("DELE %d", i))
	}
	fu.Quit = quitAndWait(c)
	fu.Again, fu.AgainErr = v.Login(ctx, a)
	mu.Lock()
	defer mu.Unlock()
	return fu
}

// scanListingsOf is scanListings of a LIST reply already read.
func scanListingsOf(m harness.Multi) []listing {
	return strictListingOf(m, "LIST", scanRE, "a scan listing \"n size\"", 2)
}

// uidListingsOf is uidListings of a UIDL reply already read.
func uidListingsOf(m harness.Multi) []listing {
	return strictListingOf(m, "UIDL", uidLineRE, "\"n unique-id\"", 2)
}

// statAtLeastOf is statAtLeast of a STAT reply already read.
func statAtLeastOf(r harness.Reply, want int) int {
	n, _ := statOf(r, 1)
	needMessages(n, want)
	return n
}

// listingView is one session's view of a listing command (LIST or UIDL),
// read once for every spec that judges its format or agreement: STAT,
// the listing, the one-message form for some messages, then NOOP.
type listingView struct {
	Account harness.Account
	Command string
	Stat    harness.Reply
	All     harness.Multi
	// later holds the replies to "LIST n" (or "UIDL n") and to the NOOP
	// sent after them.
	later laterReplies[harness.Reply]
}

// One returns the reply to the one-message form for message n; a spec
// asks only for what readListing asked.
func (v listingView) One(n int) harness.Reply {
	return v.later.of(fmt.Sprintf("%s %d", v.Command, n))
}

// AfterOne returns the reply to the NOOP after the one-message forms.
func (v listingView) AfterOne() harness.Reply { return v.later.of("NOOP") }

// oneFormLimit is how many messages the one-message form is asked for,
// unless a spec needs every message.
const oneFormLimit = 20

// readListing logs in and reads command's view. The one-message form is
// asked for the first oneFormLimit numbers the listing names and the
// first oneFormLimit of 1..count (STAT's count), or all of these when
// every(count) says so; not at all when the listing was refused.
func readListing(ctx SpecContext, t *harness.Target, command string, every func(count int) bool) listingView {
	c, a := login(ctx, t)
	v := listingView{Account: a, Command: command, Stat: cmd(c, "STAT"), All: multi(c, command)}
	v.later.conn = c
	if !v.All.OK() {
		return v
	}
	count := -1
	if m := statRE.FindStringSubmatch(string(v.Stat.Raw)); m != nil {
		count, _ = strconv.Atoi(m[1])
	}
	limit := oneFormLimit
	if every(max(count, len(v.All.Lines))) {
		limit = math.MaxInt
	}
	var nums []int
	for _, line := range v.All.Texts() {
		num, _, _ := strings.Cut(line, " ")
		if n, err := strconv.Atoi(num); err == nil && len(nums) < limit {
			nums = append(nums, n)
		}
	}
	for n := 1; n <= min(count, limit); n++ {
		nums = append(nums, n)
	}
	for _, n := range nums {
		if !v.later.ask(fmt.Sprintf("%s %d", command, n), c.Cmd) {
			return v
		}
	}
	v.later.ask("NOOP", c.Cmd)
	return v
}

// Two readings, so that a server that mishandles one family of listings
// fails only the specs that judge it.
var (
	// scans is the LIST family, LIST n for every message where the
	// profile says nothing follows a size (V0005 checks them all) or
	// where there are at most maxSized messages (2.1.5 checks them all).
	scans = Reading[listingView]{name: "STAT, LIST and LIST n", read: func(ctx SpecContext, t *harness.Target) listingView {
		return readListing(ctx, t, "LIST", func(count int) bool { return !t.Profile.ExtraAfterSizes || count <= maxSized })
	}}
	// uids is the UIDL family.
	uids = Reading[listingView]{name: "STAT, UIDL and UIDL n", read: func(ctx SpecContext, t *harness.Target) listingView {
		return readListing(ctx, t, "UIDL", func(int) bool { return false })
	}}
)
