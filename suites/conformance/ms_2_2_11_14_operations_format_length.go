package conformance

// MS-STANXPOP3 2.2.11 (RFC 1939 section 8, site policies): E0003 quota,
// E0004 quota warning, E0005 retention; 2.2.12 C0011 messages in RFC 822
// format. E0006 and E0007 (2.2.13, 2.2.14, command length) are in
// ms_2_1_variations.go next to 2.1.2.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-message"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/reference-server/embed"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// fixtureOctets is the size of a fixture account's maildrop in exact
// octets.
func fixtureOctets(name string) int64 {
	var n int64
	for _, m := range need(harness.FixtureMessages(name)) {
		n += int64(len(m.Data))
	}
	return n
}

// messageOfSize builds a well-formed message of exactly size octets.
func messageOfSize(subject string, size int) []byte {
	head := "From: Sender <sender@example.org>\r\nTo: Alice <alice@example.net>\r\nSubject: " + subject +
		"\r\nDate: Mon, 01 Nov 2026 10:00:00 +0000\r\nMessage-ID: <" + subject + "@example.org>\r\n\r\n"
	var b strings.Builder
	b.WriteString(head)
	for b.Len()+2 < size {
		line := strings.Repeat("q", min(70, size-b.Len()-2))
		b.WriteString(line + "\r\n")
	}
	Expect(b.Len()).To(Equal(size), "test message size")
	return []byte(b.String())
}

// mailboxCount logs in as a and returns the message count.
func mailboxCount(ctx SpecContext, t *harness.Target, a harness.Account) int {
	c := loginAs(ctx, t, a)
	n, _ := stat(c)
	quitOK(c)
	return n
}

var _ = Describe("MS-STANXPOP3 2.2.11 E0003, E0004, E0005 site storage policies", func() {
	// The margin by which the quota exceeds the fixture mailbox.
	const margin = 4000

	Spec("refuses a delivery beyond the mailbox quota and keeps the mailbox readable", IDs("E0003"), Mutating, ReferenceOnly, func(ctx SpecContext, t *harness.Target) {
		used := fixtureOctets("alice")
		v := need(t.Variant(ctx, func(p *profile.Profile) {
			p.Storage.QuotaOctets = used + margin
			p.Storage.QuotaWarningPercent = 0
		}))
		a := need(v.Account(ctx))
		room := v.Profile.Storage.QuotaOctets - used
		n := mailboxCount(ctx, v, a)
		ctl := v.Reference().Control

		_, err := ctl.Deliver(a.User, messageOfSize("too-big", int(room)+500))
		Expect(err).To(HaveOccurred(), "a delivery %d octets over the %d-octet quota must fail", 500, v.Profile.Storage.QuotaOctets)
		Expect(errors.Is(err, embed.ErrQuota)).To(BeTrue(), "the delivery must fail for the quota: %v", err)

		// The mailbox is still fully readable.
		c := loginAs(ctx, v, a)
		n2, _ := stat(c)
		Expect(n2).To(Equal(n), "STAT after a refused delivery")
		for i := 1; i <= n2; i++ {
			retr(c, i)
		}
		quitOK(c)

		// A delivery that fits still arrives.
		_, err = ctl.Deliver(a.User, messageOfSize("fits", int(room)-500))
		Expect(err).NotTo(HaveOccurred(), "a delivery within the quota")
		Expect(mailboxCount(ctx, v, a)).To(Equal(n+1), "STAT after a delivery within the quota")
	})

	Spec("puts a warning message into a mailbox that reaches the warning level of its quota", IDs("E0004"), Mutating, ReferenceOnly, func(ctx SpecContext, t *harness.Target) {
		used := fixtureOctets("alice")
		const percent = 90
		v := need(t.Variant(ctx, func(p *profile.Profile) {
			// The warning level lies margin/2 above the fixture mailbox.
			p.Storage.QuotaOctets = (used + margin/2) * 100 / percent
			p.Storage.QuotaWarningPercent = percent
		}))
		q := v.Profile.Storage.QuotaOctets
		level := q * int64(v.Profile.Storage.QuotaWarningPercent) / 100
		Expect(level).To(BeNumerically(">", used+1000), "warning level of the variant")
		a := need(v.Account(ctx))
		n := mailboxCount(ctx, v, a)
		ctl := v.Reference().Control

		// Below the level: no warning.
		small := messageOfSize("below-level", 500)
		_, err := ctl.Deliver(a.User, small)
		Expect(err).NotTo(HaveOccurred(), "a delivery below the warning level")
		Expect(mailboxCount(ctx, v, a)).To(Equal(n+1), "no warning below the level (%d of %d octets)", used+500, q)

		// Crossing the level: the message and a warning.
		crossing := messageOfSize("crossing-level", int(level-used))
		_, err = ctl.Deliver(a.User, crossing)
		Expect(err).NotTo(HaveOccurred(), "a delivery that crosses the warning level")
		c := loginAs(ctx, v, a)
		n2, _ := stat(c)
		Expect(n2).To(Equal(n+3), "the delivered message and a warning after crossing %d%% of the quota", percent)
		var warnings int
		for i := n + 2; i <= n2; i++ {
			body := retr(c, i)
			if bytes.Equal(body, crossing) {
				continue
			}
			warnings++
			_, err := message.Read(bytes.NewReader(body))
			Expect(err).NotTo(HaveOccurred(), "the warning must be a message: %q", body)
			AddReportEntry("quota warning", string(body), ReportEntryVisibilityFailureOrVerbose)
		}
		Expect(warnings).To(Equal(1), "one warning message")
	})

	Spec("removes mail older than the retention period, keeps younger mail, and advertises EXPIRE only as the profile says", IDs("E0005"), Mutating, ReferenceOnly, func(ctx SpecContext, t *harness.Target) {
		const (
			days = 30
			day  = 24 * time.Hour
		)
		// The variant's store reads a clock the spec moves.
		v := need(t.VariantWith(ctx, harness.VariantOptions{
			Mutate: func(p *profile.Profile) { p.Storage.RetentionDays = days },
			Clock:  time.Now(),
		}))
		clock := v.Reference().Control
		a := need(v.Account(ctx))
		fixture := len(need(harness.FixtureMessages("alice")))
		Expect(mailboxCount(ctx, v, a)).To(Equal(fixture), "messages delivered just now are within %d days", days)

		// A message arrives when the fixture's mail is days-10 days old.
		Expect(clock.Advance((days - 10) * day)).To(Succeed())
		recent := messageOfSize("recent", 600)
		_, err := v.Reference().Control.Deliver(a.User, recent)
		Expect(err).NotTo(HaveOccurred(), "deliver")
		Expect(mailboxCount(ctx, v, a)).To(Equal(fixture+1), "no message is %d days old yet", days)

		// Eleven days on, the fixture's mail is past the retention
		// period and the new message is not.
		Expect(clock.Advance(11 * day)).To(Succeed())
		c := loginAs(ctx, v, a)
		n, _ := stat(c)
		Expect(n).To(Equal(1), "after %d days only the message delivered 11 days ago is left", days+1)
		Expect(retr(c, 1)).To(Equal(recent), "the message left is the recent one")
		quitOK(c)

		k := readCapa(dial(ctx, v))
		Expect(k.OK).To(BeTrue(), "CAPA: %q", k.Multi.String())
		if !v.Profile.Storage.AdvertiseExpire {
			// Exchange's retention belongs to its store, not to POP3.
			Expect(k.Has("EXPIRE")).To(BeFalse(), "the profile does not advertise its retention, but CAPA has EXPIRE %v", k.Params("EXPIRE"))
			return
		}
		Expect(k.Has("EXPIRE")).To(BeTrue(), "CAPA must advertise EXPIRE")
		Expect(k.Params("EXPIRE")).NotTo(BeEmpty(), "EXPIRE needs a value")
		Expect(k.Params("EXPIRE")[0]).To(Equal(strconv.Itoa(days)), "EXPIRE value")
	})
})

// checkRFC822 parses one retrieved message: CRLF line ends only, a
// header block with From and Date (RFC 822 section 4.1), and a MIME tree
// whose every part can be read to its end.
func checkRFC822(n int, body []byte) {
	what := fmt.Sprintf("message %d", n)
	Expect(bytes.HasSuffix(body, []byte("\r\n"))).To(BeTrue(), "%s must end with CRLF", what)
	for i, c := range body {
		switch c {
		case '\n':
			Expect(i > 0 && body[i-1] == '\r').To(BeTrue(), "%s has a bare LF at octet %d", what, i)
		case '\r':
			Expect(i+1 < len(body) && body[i+1] == '\n').To(BeTrue(), "%s has a bare CR at octet %d", what, i)
		case 0:
			FailHandler(fmt.Sprintf("%s has a NUL at octet %d", what, i))
		}
	}
	Expect(headerEnd(body)).To(BeNumerically(">", 0), "%s has no blank line after its header", what)
	e, err := message.Read(bytes.NewReader(body))
	if err != nil && !message.IsUnknownCharset(err) {
		FailHandler(fmt.Sprintf("%s: header does not parse: %v", what, err))
	}
	Expect(e.Header.Get("From")).NotTo(BeEmpty(), "%s has no From field", what)
	Expect(e.Header.Get("Date")).NotTo(BeEmpty(), "%s has no Date field", what)
	parts := 0
	err = e.Walk(func(path []int, part *message.Entity, err error) error {
		if err != nil && !message.IsUnknownCharset(err) {
			return fmt.Errorf("part %v: %w", path, err)
		}
		parts++
		if part.MultipartReader() == nil {
			if _, err := io.Copy(io.Discard, part.Body); err != nil {
				return fmt.Errorf("part %v body: %w", path, err)
			}
		}
		return nil
	})
	Expect(err).NotTo(HaveOccurred(), "%s MIME structure", what)
	Expect(parts).To(BeNumerically(">=", 1))
}

var _ = Describe("MS-STANXPOP3 2.2.12 C0011 messages in RFC 822 format", func() {
	Spec("sends every message as a well-formed RFC 822 message", IDs("C0011"), Readonly, fixtureMail, func(ctx SpecContext, t *harness.Target) {
		src := messagesOf(ctx, t)
		n := src.Count
		needMessages(n, 1)
		const maxRetrieved = 100
		if n > maxRetrieved {
			AddReportEntry("note", fmt.Sprintf("only the first %d of %d messages were retrieved", maxRetrieved, n), ReportEntryVisibilityFailureOrVerbose)
			n = maxRetrieved
		}
		for i := 1; i <= n; i++ {
			m := src.Retr(i)
			Expect(m.OK()).To(BeTrue(), "RETR %d: want +OK, got %q", i, m.String())
			checkRFC822(i, m.Body())
		}
	})

	Spec("sends a message delivered without a final line end as a well-formed RFC 822 message", IDs("C0011"), Mutating, ReferenceOnly, func(ctx SpecContext, t *harness.Target) {
		a := need(t.AccountLike(ctx, "carol"))
		// Bare LF line ends and no final line end, as a careless sender
		// might deliver it: the server must still send CRLF lines.
		raw := []byte("From: a@example.org\nTo: carol@example.net\nSubject: sloppy\nDate: Mon, 01 Nov 2026 10:00:00 +0000\n\nno final line end")
		_, err := t.Reference().Control.Deliver(a.User, raw)
		Expect(err).NotTo(HaveOccurred(), "deliver")
		c := loginAs(ctx, t, a)
		n, _ := stat(c)
		Expect(n).To(Equal(1))
		checkRFC822(1, retr(c, 1))
	})
})
