package conformance

// MS-STANXPOP3 2.2.3-2.2.7 (RFC 1939 sections 5-7): V0004 nothing after
// the STAT size, V0005 nothing after a scan listing's size, V0006 UPDATE
// never removes an unmarked message, C0006 the minimal command set, V0007
// TOP, C0007 decimal increasing unique-ids, C0008 unique-ids never reused,
// C0009 identical copies get different unique-ids.

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// needNoExtraAfterSizes ends a spec when the profile lets the server add text after
// sizes (RFC 1939 allows it; Exchange never does).
func needNoExtraAfterSizes(t *harness.Target) {
	if t.Profile.ExtraAfterSizes {
		verdict.SkipNotApplicable("the profile allows more text after the sizes")
	}
}

var (
	statExactRE = regexp.MustCompile(`^\+OK [0-9]+ [0-9]+\r\n$`)
	scanExactRE = regexp.MustCompile(`^[0-9]+ [0-9]+\r\n$`)
)

var _ = Describe("MS-STANXPOP3 2.2.3 V0004 nothing after the STAT size", func() {
	Spec("ends the STAT reply right after the maildrop size", IDs("V0004"), Readonly, KeptSession, func(ctx SpecContext, t *harness.Target) {
		needNoExtraAfterSizes(t)
		c, _ := session(ctx, t)
		r := cmd(c, "STAT")
		Expect(string(r.Raw)).To(MatchRegexp(statExactRE.String()), "STAT reply must be \"+OK nn mm\" and CRLF")
	})

	Spec("ends the STAT reply right after the maildrop size with a message marked deleted", IDs("V0004"), Reversible, marked, func(ctx SpecContext, t *harness.Target) {
		needNoExtraAfterSizes(t)
		// A message marked deleted changes both numbers.
		v := markedAtLeast(ctx, t, 1)
		keys := []string{statMarked1, statMarkedTwice}
		if v.Count >= 2 {
			keys = append(keys, statMarked2)
		}
		for _, key := range keys {
			Expect(string(v.Reply(key).Raw)).To(MatchRegexp(statExactRE.String()), "%s: the reply must be \"+OK nn mm\" and CRLF", key)
		}
	})
})

var _ = Describe("MS-STANXPOP3 2.2.4 V0005 nothing after a scan listing's size", func() {
	Spec("ends every line of LIST right after the message size", IDs("V0005"), Readonly, scans, func(ctx SpecContext, t *harness.Target) {
		needNoExtraAfterSizes(t)
		v := scans.Get(ctx, t)
		n := statAtLeastOf(v.Stat, 1)
		m := v.All
		expectOK(m.Reply, "LIST")
		Expect(m.Lines).To(HaveLen(n))
		for _, l := range m.Lines {
			Expect(string(l)).To(MatchRegexp(scanExactRE.String()), "scan listing must be \"n size\" and CRLF")
		}
	})

	Spec("ends every LIST n reply right after the message size", IDs("V0005"), Readonly, scans, func(ctx SpecContext, t *harness.Target) {
		needNoExtraAfterSizes(t)
		v := scans.Get(ctx, t)
		n := statAtLeastOf(v.Stat, 1)
		for i := 1; i <= n; i++ {
			r := v.One(i)
			Expect(string(r.Raw)).To(MatchRegexp(`^\+OK `+strconv.Itoa(i)+` [0-9]+\r\n$`), "LIST %d reply must be \"+OK n size\" and CRLF", i)
		}
	})
})

var _ = Describe("MS-STANXPOP3 2.2.5 V0006 UPDATE removes marked messages only", func() {
	// Without a removal failure injected into UPDATE (the harness has no
	// such hook), the half that always shows is checked: whatever UPDATE
	// does, no unmarked message disappears.
	Spec("never removes a message that was not marked deleted", IDs("V0006"), Mutating, removal, func(ctx SpecContext, t *harness.Target) {
		v := removalOf(ctx, t, 2)
		uids := uidsByNumberOf(v.UIDL)
		sizes := listAllOf(v.List, "LIST")
		marked := map[int]bool{}
		for _, i := range v.Marked {
			marked[i] = true
			expectOK(v.Reply(fmt.Sprintf("DELE %d", i)), fmt.Sprintf("DELE %d", i))
		}
		r := v.Reply("QUIT")
		Expect(r.OK() || r.Err()).To(BeTrue(), "QUIT reply %q", r)

		after := uidsByNumberOf(v.Multi(uidlNext))
		left := map[string]bool{}
		for _, u := range after {
			left[u] = true
		}
		for i := 1; i <= v.Count; i++ {
			if marked[i] {
				if r.OK() {
					Expect(left).NotTo(HaveKey(uids[i]), "message %d was marked and QUIT said +OK, so it must be gone", i)
				}
				continue
			}
			Expect(left).To(HaveKey(uids[i]), "message %d (%s) was not marked deleted and must survive UPDATE", i, uids[i])
		}
		// The survivors keep their sizes: nothing else was touched.
		byUID := map[string]string{}
		for _, l := range sizes {
			byUID[uids[l.Num]] = l.Value
		}
		for _, l := range listAllOf(v.Multi(listNext), "LIST") {
			Expect(l.Value).To(Equal(byUID[after[l.Num]]), "size of surviving message %s", after[l.Num])
		}
	})

	// The other half needs a removal failure, which only the bundled
	// store can be made to have: the second of three removals fails.
	Spec("reports a removal failure in UPDATE, removes only marked messages, and frees the maildrop", IDs("V0006"), Mutating, ReferenceOnly, func(ctx SpecContext, t *harness.Target) {
		fu := updateWithFailedRemoval(ctx, t, []int{1, 2, 4}, 2)
		Expect(fu.FailedUID).NotTo(BeEmpty(), "UPDATE never attempted the second removal")
		expectErr(fu.Quit, "QUIT when a removal in UPDATE failed")
		AddReportEntry("QUIT after a failed removal", fu.Quit.String(), ReportEntryVisibilityFailureOrVerbose)
		c := fu.Again
		if fu.AgainErr != nil {
			// The lock is RFC1939-6-update-failure-no-lock's business;
			// what was removed can still be seen once it goes.
			c = loginSoon(ctx, fu.Target, fu.Account)
		}
		after := uidsByNumber(c)
		left := map[string]bool{}
		for _, u := range after {
			left[u] = true
		}
		want := map[string]bool{}
		for _, u := range fu.Before {
			if !fu.Removed[u] {
				want[u] = true
			}
		}
		Expect(left).To(Equal(want), "after UPDATE exactly the removals the store carried out are gone (removed %v, failed %s)", fu.Removed, fu.FailedUID)
		Expect(left).To(HaveKey(fu.FailedUID), "the message whose removal failed is still there")
		marked := map[int]bool{}
		for _, i := range fu.Marked {
			marked[i] = true
		}
		for i, u := range fu.Before {
			if !marked[i] {
				Expect(left).To(HaveKey(u), "message %d (%s) was not marked deleted and must survive a failed UPDATE", i, u)
			}
		}
	})
})

var _ = Describe("MS-STANXPOP3 2.2.6 C0006 the minimal command set", func() {
	type minCase struct {
		name  string
		run   func(c *harness.Conn, n int, size int64)
		class Class
		// quits is set where the case ends the session with QUIT, which
		// a session handed on from an earlier spec must not get.
		quits bool
	}
	cases := []minCase{
		{"STAT", func(c *harness.Conn, n int, size int64) {
			n2, size2 := stat(c)
			Expect([]int64{int64(n2), size2}).To(Equal([]int64{int64(n), size}))
		}, Readonly, false},
		{"LIST", func(c *harness.Conn, n int, _ int64) {
			Expect(listAll(c, "LIST")).To(HaveLen(n), "LIST lines")
		}, Readonly, false},
		{"RETR", func(c *harness.Conn, n int, _ int64) {
			needMessages(n, 1)
			Expect(retr(c, 1)).NotTo(BeEmpty(), "RETR 1 body")
		}, Readonly, false},
		{"NOOP", func(c *harness.Conn, _ int, _ int64) {
			expectOK(cmd(c, "NOOP"), "NOOP")
		}, Readonly, false},
		{"RSET with no message marked", func(c *harness.Conn, n int, size int64) {
			expectOK(cmd(c, "RSET"), "RSET")
			n2, size2 := stat(c)
			Expect([]int64{int64(n2), size2}).To(Equal([]int64{int64(n), size}), "STAT after RSET")
		}, Readonly, false},
		{"QUIT in TRANSACTION", func(c *harness.Conn, _ int, _ int64) {
			quitOK(c)
			_, err := c.ExpectClose()
			Expect(err).NotTo(HaveOccurred(), "the server closes after QUIT")
		}, Readonly, true},
	}
	for _, tc := range cases {
		open, flags := session, []any{KeptSession}
		if tc.quits {
			open, flags = login, nil
		}
		Spec("implements "+tc.name, IDs("C0006"), tc.class, append(flags, func(ctx SpecContext, t *harness.Target) {
			c, _ := open(ctx, t)
			n, size := stat(c)
			tc.run(c, n, size)
		})...)
	}

	// DELE and RSET are judged on the session that marks messages for
	// every reversible spec.
	Spec("implements DELE", IDs("C0006"), Reversible, marked, func(ctx SpecContext, t *harness.Target) {
		v := markedAtLeast(ctx, t, 1)
		n2, _ := statOf(v.Reply(statMarked1), 0)
		Expect(n2).To(Equal(v.Count-1), "STAT after DELE 1")
	})

	Spec("implements RSET", IDs("C0006"), Reversible, marked, func(ctx SpecContext, t *harness.Target) {
		v := markedAtLeast(ctx, t, 1)
		expectOK(v.Reply("RSET"), "RSET")
		n, size := statOf(v.Before, 0)
		n2, size2 := statOf(v.Reply(statReset), 0)
		Expect([]int64{int64(n2), size2}).To(Equal([]int64{int64(n), size}), "STAT after RSET")
	})

	Spec("implements QUIT in AUTHORIZATION", IDs("C0006"), Readonly, NoLogin, func(ctx SpecContext, t *harness.Target) {
		c := dial(ctx, t)
		quitOK(c)
		_, err := c.ExpectClose()
		Expect(err).NotTo(HaveOccurred(), "the server closes after QUIT")
	})
})

var _ = Describe("MS-STANXPOP3 2.2.6 V0007 TOP", func() {
	Spec("implements TOP: the header, the blank line and the first lines of the body", IDs("V0007"), Readonly, KeptSession, func(ctx SpecContext, t *harness.Target) {
		if !t.Profile.HasCapability("TOP") {
			verdict.SkipNotApplicable("the profile does not offer TOP")
		}
		c, _ := session(ctx, t)
		n, _ := stat(c)
		needMessages(n, 1)
		full := retr(c, 1)
		end := headerEnd(full)
		if end < 0 {
			verdict.SkipInconclusive("message 1 has no blank line after its header")
		}
		for _, lines := range []int{0, 2} {
			m := multi(c, fmt.Sprintf("TOP 1 %d", lines))
			expectOK(m.Reply, fmt.Sprintf("TOP 1 %d", lines))
			want := full[:end]
			body := full[end:]
			for k := 0; k < lines && len(body) > 0; k++ {
				i := bytes.Index(body, []byte("\r\n"))
				if i < 0 {
					i = len(body) - 2
				}
				want = append(append([]byte(nil), want...), body[:i+2]...)
				body = body[i+2:]
			}
			Expect(string(m.Body())).To(Equal(string(want)), "TOP 1 %d must be the header, the blank line and %d body lines of RETR 1", lines, lines)
		}
	})
})

var decimalRE = regexp.MustCompile(`^[0-9]+$`)

// needDecimalUIDs ends a spec when the profile does not expect
// Exchange's unique-ids.
func needDecimalUIDs(t *harness.Target) {
	if t.Profile.UID.Format != profile.UIDDecimalIncreasing {
		verdict.SkipNotApplicable("the profile expects unique-ids of format %q, not decimal increasing ones", t.Profile.UID.Format)
	}
}

// uidValue parses a decimal unique-id.
func uidValue(uid string) uint64 {
	Expect(uid).To(MatchRegexp(decimalRE.String()), "unique-id %q is not a decimal integer", uid)
	v, err := strconv.ParseUint(uid, 10, 64)
	Expect(err).NotTo(HaveOccurred(), "unique-id %q", uid)
	return v
}

var _ = Describe("MS-STANXPOP3 2.2.7 C0007, C0008, C0009 unique-ids", func() {
	Spec("uses decimal unique-ids that increase with the message order", IDs("C0007"), Readonly, uids, func(ctx SpecContext, t *harness.Target) {
		needDecimalUIDs(t)
		v := uids.Get(ctx, t)
		n := statAtLeastOf(v.Stat, 1)
		byNum := uidsByNumberOf(v.All)
		Expect(byNum).To(HaveLen(n))
		var prev uint64
		for i := 1; i <= n; i++ {
			v := uidValue(byNum[i])
			if i > 1 {
				Expect(v).To(BeNumerically(">", prev), "unique-id of message %d (%s) must be larger than that of message %d", i, byNum[i], i-1)
			}
			prev = v
		}
	})

	// deliverAfterDelete removes the maildrop's last message with DELE and
	// QUIT, delivers raw (on the bundled server only) and returns the
	// unique-ids before and the new message's unique-id.
	deliverAfterDelete := func(ctx SpecContext, t *harness.Target, raw []byte) (before map[int]string, fresh string) {
		if t.Reference() == nil {
			verdict.SkipInconclusive("needs new mail delivered after a deletion, which only the bundled server can do during a run")
		}
		a := need(t.Account(ctx))
		c := loginAs(ctx, t, a)
		n, _ := stat(c)
		needMessages(n, 1)
		before = uidsByNumber(c)
		if raw == nil {
			raw = retr(c, n)
		}
		expectOK(cmd(c, fmt.Sprintf("DELE %d", n)), fmt.Sprintf("DELE %d", n))
		quitOK(c)
		_, err := t.Reference().Control.Deliver(a.User, raw)
		Expect(err).NotTo(HaveOccurred(), "deliver a new message")

		again := loginAs(ctx, t, a)
		after := uidsByNumber(again)
		Expect(after).To(HaveLen(n), "one message deleted, one delivered")
		fresh = after[n]
		return before, fresh
	}

	Spec("never hands out the unique-id of a deleted message again", IDs("C0008"), Mutating, func(ctx SpecContext, t *harness.Target) {
		if !t.Profile.UID.NeverReused {
			verdict.SkipNotApplicable("the profile allows unique-ids to be reused")
		}
		// The same content again: a server that derives unique-ids from
		// the message would hand out the deleted one's.
		before, fresh := deliverAfterDelete(ctx, t, nil)
		for i, u := range before {
			Expect(fresh).NotTo(Equal(u), "the new message got the unique-id of message %d, which existed before", i)
		}
	})

	Spec("gives identical copies of a message different unique-ids", IDs("C0009"), Readonly, KeptSession, func(ctx SpecContext, t *harness.Target) {
		needDecimalUIDs(t)
		c, a := session(ctx, t)
		n, _ := stat(c)
		var bodies [][]byte
		if a.Fixture != "" {
			for _, m := range need(harness.FixtureMessages(a.Fixture)) {
				bodies = append(bodies, m.Data)
			}
			Expect(bodies).To(HaveLen(n), "STAT count of a maildrop holding fixture %q", a.Fixture)
		} else {
			const maxRetrieved = 100
			if n > maxRetrieved {
				verdict.SkipInconclusive("the maildrop has %d messages; the check retrieves at most %d", n, maxRetrieved)
			}
			for i := 1; i <= n; i++ {
				bodies = append(bodies, retr(c, i))
			}
		}
		uids := uidsByNumber(c)
		pairs := 0
		for i := range bodies {
			for j := i + 1; j < len(bodies); j++ {
				if bytes.Equal(bodies[i], bodies[j]) {
					pairs++
					Expect(uids[i+1]).NotTo(Equal(uids[j+1]), "messages %d and %d are identical copies and share the unique-id %q", i+1, j+1, uids[i+1])
				}
			}
		}
		if pairs == 0 {
			verdict.SkipInconclusive("the maildrop holds no two identical messages")
		}
	})
})
