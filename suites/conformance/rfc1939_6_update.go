package conformance

// RFC 1939 section 6, the UPDATE state: QUIT in TRANSACTION removes the
// messages marked deleted and nothing else, is answered, releases the lock
// (even when removal fails) and closes; the next session numbers the
// remaining messages afresh.
//
// The specs that really remove mail are mutating. The lock-release specs
// hold sessions on one mailbox back to back and are disruptive against a
// remote host. The removal-failure spec needs a fault injected into the
// bundled server's store.

import (
	"fmt"
	"slices"
	"strconv"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

var _ = Describe("RFC 1939 section 6: QUIT in TRANSACTION", func() {
	// The two removal specs and V0006 judge one UPDATE (the removal
	// Reading): a session marks messages 1 and 3 and quits, the next
	// one looks.
	Spec("removes the messages marked deleted, and only those, on QUIT", IDs("RFC1939-6-quit-update"), Mutating, removal, func(ctx SpecContext, t *harness.Target) {
		v := removalOf(ctx, t, 3)
		v.marksAccepted()
		expectOK(v.QuitClosed(), "QUIT after DELE 1 and DELE 3")
		before := boxOf(v.Before, v.UIDL)
		after := boxOf(v.Reply(statNext), v.Multi(uidlNext))
		if before.UIDs != nil && after.UIDs != nil {
			want := []string{before.UIDs[1]}
			want = append(want, before.UIDs[3:]...)
			// Mail delivered meanwhile may follow the old messages.
			Expect(len(after.UIDs)).To(BeNumerically(">=", len(want)))
			Expect(after.UIDs[:len(want)]).To(Equal(want), "the unique-ids left after removing messages 1 and 3")
		} else {
			Expect(after.Count).To(BeNumerically(">=", before.Count-len(v.Marked)))
			Expect(after.Count).To(BeNumerically("<", before.Count), "QUIT removed nothing")
		}
		if v.Account.Fixture == "alice" {
			fx := needFixture(v.Account, "alice")
			Expect(after.Count).To(Equal(len(fx) - len(v.Marked)))
			expectSameMessage(v.Multi("RETR 1").Body(), fx[1], "message 1 after UPDATE")
		}
	})

	Spec("numbers the remaining messages afresh from 1 in the next session", IDs("RFC1939-6-numbers-reassigned"), Mutating, removal, func(ctx SpecContext, t *harness.Target) {
		v := removalOf(ctx, t, 3)
		v.marksAccepted()
		expectOK(v.QuitClosed(), "QUIT after DELE 1 and DELE 3")
		n, _ := statOf(v.Reply(statNext), 0)
		list := listAllOf(v.Multi(listNext), "LIST")
		Expect(list).To(HaveLen(n))
		for i, l := range list {
			Expect(l.NumText).To(Equal(strconv.Itoa(i+1)), "scan listing %d after the removal of messages 1 and 3: no gap", i+1)
		}
		before := boxOf(v.Before, v.UIDL)
		after := boxOf(v.Reply(statNext), v.Multi(uidlNext))
		if before.UIDs == nil || after.UIDs == nil {
			return // the scan listings are all there is to judge
		}
		// Which messages QUIT removed is RFC1939-6-quit-update's to
		// judge; this rule is about the numbers of those left: the k-th
		// message left, in the old order, is message k.
		left := map[string]bool{}
		for _, u := range after.UIDs {
			left[u] = true
		}
		if left[before.UIDs[0]] && left[before.UIDs[2]] {
			verdict.SkipInconclusive("QUIT removed neither marked message, so no message had a new number to get")
		}
		var kept []string
		for _, u := range before.UIDs {
			if left[u] {
				kept = append(kept, u)
			}
		}
		// Mail delivered meanwhile may follow the old messages.
		Expect(len(after.UIDs)).To(BeNumerically(">=", len(kept)))
		Expect(after.UIDs[:len(kept)]).To(Equal(kept), "the messages left, in their old order, numbered from 1")
		for k := 1; k <= min(2, len(kept)); k++ {
			r := v.Reply(fmt.Sprintf("UIDL %d", k))
			expectOK(r, fmt.Sprintf("UIDL %d", k))
			Expect(r.Text).To(Equal(fmt.Sprintf("%d %s", k, kept[k-1])), "message %d must now be the old message %d", k, slices.Index(before.UIDs, kept[k-1])+1)
		}
		if fx, ok := fixtureOf(v.Account); ok {
			for k := 1; k <= min(2, len(kept)); k++ {
				old := slices.Index(before.UIDs, kept[k-1])
				expectSameMessage(v.Multi(fmt.Sprintf("RETR %d", k)).Body(), fx[old], fmt.Sprintf("message %d after UPDATE", k))
			}
		}
	})

	Spec("answers QUIT with +OK and removes no message that is not marked deleted", IDs("RFC1939-6-quit-reply"), Readonly, func(ctx SpecContext, t *harness.Target) {
		a := need(t.Account(ctx))
		c := loginAs(ctx, t, a)
		before := look(c)
		// Nothing marked: a mark cleared by RSET before QUIT is the
		// mutating RFC1939-5-rset-unmark spec's.
		expectOK(quitAndWait(c), "QUIT with nothing marked deleted")
		after := look(loginSoon(ctx, t, a))
		expectNothingRemoved(before, after, "no message was marked deleted at QUIT")
	})

	Spec("closes the connection after answering QUIT", IDs("RFC1939-6-quit-close"), Readonly, func(ctx SpecContext, t *harness.Target) {
		c, _ := login(ctx, t)
		expectOK(cmd(c, "QUIT"), "QUIT")
		lines, err := c.ExpectClose()
		Expect(err).NotTo(HaveOccurred(), "the server must close the connection after QUIT")
		Expect(lines).To(BeEmpty(), "the server sent more after its QUIT reply: %q", lines)
	})
})

var _ = Describe("RFC 1939 section 6: the lock after UPDATE", func() {
	Spec("lets the user log in again as soon as UPDATE is over", IDs("RFC1939-6-update-lock-release"), Disruptive, func(ctx SpecContext, t *harness.Target) {
		a := need(t.Account(ctx))
		c := loginAs(ctx, t, a)
		expectOK(quitAndWait(c), "QUIT")
		// The connection is closed, so UPDATE is over: no retry.
		c, err := t.Login(ctx, a)
		Expect(err).NotTo(HaveOccurred(), "log in again right after the first session's QUIT")
		stat(c)
	})

	Spec("releases the lock even when removing messages fails", IDs("RFC1939-6-update-failure-no-lock"), Mutating, ReferenceOnly, func(ctx SpecContext, t *harness.Target) {
		// The first removal fails; MS-STANXPOP3 V0006 judges what was
		// removed (ms_2_2_3_7_stat_list_quit_top_uidl.go).
		fu := updateWithFailedRemoval(ctx, t, []int{1}, 1)
		expectErr(fu.Quit, "QUIT when the marked message cannot be removed")
		// The connection is closed: the lock must be gone already.
		Expect(fu.AgainErr).NotTo(HaveOccurred(), "log in again after an UPDATE that failed")
		n, _ := stat(fu.Again)
		Expect(n).To(Equal(len(fu.Before)), "the removal failed, so the message is still there")
	})
})
