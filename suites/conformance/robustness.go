package conformance

// Robustness: hostile input (issue 5). Each spec attacks one connection
// and then checks that the server is still serving with a fresh login.
// What counts as surviving an attack is a clear -ERR or a clean close of
// the attacked connection; a +OK to garbage, a hang, or a server that no
// longer lets anyone in is a deviation. Against a remote host these specs
// run only with --allow-disruptive (the class gate).

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// robustDial connects as the target is usually reached and reads the
// greeting.
func robustDial(ctx context.Context, t *harness.Target) *robustRaw {
	r := robustDialAddr(ctx, t)
	robustGreeted(t, r, 2)
	return r
}

// robustGreeted reads the greeting of r unless it came with a connection
// opened ahead, and runs STLS where the target is reached that way.
func robustGreeted(t *harness.Target, r *robustRaw, offset int) {
	g := r.greeting
	if g == "" {
		var err error
		g, err = r.line(harness.DefaultTimeout)
		ExpectWithOffset(offset, err).NotTo(HaveOccurred(), "greeting")
	}
	ExpectWithOffset(offset, g).To(HavePrefix("+OK"), "greeting")
	_, text, _ := strings.Cut(strings.TrimRight(g, "\r\n"), " ")
	r.guard.SetGreeting(text)
	if t.Mode() == harness.TLSStartTLS {
		ExpectWithOffset(offset, r.startTLS(t)).To(Succeed(), "STLS")
	}
}

// robustAddr is the port attacks go to: the one the target is usually
// reached on.
func robustAddr(t *harness.Target) (addr string, implicit bool) {
	if t.Mode() == harness.TLSImplicit {
		return t.TLSAddr(), true
	}
	return t.PlainAddr(), false
}

// robustDialAddr opens the connection an attack goes on. The spec's first
// may be the one the process opened ahead while the last spec ran (its
// greeting then already read): nothing was sent on it, so the server
// meets it as a fresh one. Every later connection of the spec, and the
// proof that the server still serves, is opened after the attack began
// (harness.Target.TakeAhead).
func robustDialAddr(ctx context.Context, t *harness.Target) *robustRaw {
	addr, implicit := robustAddr(t)
	if a, ok := t.TakeAhead(ctx, addr, implicit); ok {
		r := &robustRaw{nc: a.Conn, br: bufio.NewReaderSize(a.Conn, 64<<10), guard: a.Guard, tls: implicit, greeting: a.Greeting.String()}
		r.note("* %s", a.Note)
		r.note("S: %q", a.Greeting.String())
		robustOpened(t, r, addr, implicit, 3)
		return r
	}
	d := net.Dialer{Timeout: harness.DefaultTimeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	ExpectWithOffset(2, err).NotTo(HaveOccurred(), "connect %s", addr)
	r := &robustRaw{nc: nc, br: bufio.NewReaderSize(nc, 64<<10), guard: t.LineGuard()}
	r.note("* connected to %s", addr)
	robustOpened(t, r, addr, implicit, 3)
	return r
}

// robustDialSoon starts connecting for a further attack of the spec now,
// while the spec goes on with its first, and returns what waits for that
// connection and its greeting: the second attack need not wait out the
// round trips of the first. Call it only once the first attack began.
func robustDialSoon(ctx context.Context, t *harness.Target) func() *robustRaw {
	addr, implicit := robustAddr(t)
	guard := t.LineGuard()
	var (
		nc   net.Conn
		err  error
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		d := net.Dialer{Timeout: harness.DefaultTimeout}
		nc, err = d.DialContext(ctx, "tcp", addr)
	}()
	// Closed with the spec, also when the spec ends before it waits.
	DeferCleanup(func() {
		<-done
		if nc != nil {
			nc.Close()
		}
		guard.Closed()
	})
	return func() *robustRaw {
		<-done
		ExpectWithOffset(1, err).NotTo(HaveOccurred(), "connect %s", addr)
		r := &robustRaw{nc: nc, br: bufio.NewReaderSize(nc, 64<<10), guard: guard}
		r.note("* connected to %s while the spec's first attack went on", addr)
		robustOpened(t, r, addr, implicit, 2)
		robustGreeted(t, r, 2)
		return r
	}
}

// robustOpened puts the attack connection's transcript into the report
// when the spec ends, and runs the TLS handshake of an implicit TLS port.
func robustOpened(t *harness.Target, r *robustRaw, addr string, implicit bool, offset int) {
	DeferCleanup(func() {
		r.nc.Close()
		r.guard.Closed()
		r.mu.Lock()
		defer r.mu.Unlock()
		AddReportEntry("transcript (attack connection to "+addr+")", strings.Join(r.log, "\n"), ReportEntryVisibilityFailureOrVerbose)
	})
	if implicit && !r.tls {
		ExpectWithOffset(offset, r.handshake(t.TLSConfig())).To(Succeed(), "implicit TLS handshake")
	}
}

// status reads the answer to an attack: a status line, or the end of the
// connection. A +OK to hostile input, a timeout or anything that is not a
// status line fails the spec.
func (r *robustRaw) status(what string) (closed bool) {
	l, err := r.line(harness.DefaultTimeout)
	if err != nil {
		ExpectWithOffset(1, robustIsTimeout(err)).To(BeFalse(), "%s: no answer and no close within %v", what, harness.DefaultTimeout)
		return true
	}
	ExpectWithOffset(1, l).To(HavePrefix("-ERR"), "%s: want -ERR or a closed connection", what)
	return false
}

// login runs STLS when the profile wants it, then USER and PASS.
func (r *robustRaw) login(t *harness.Target, a harness.Account) {
	if t.Profile.NeedsSTLS(r.tls) {
		ExpectWithOffset(1, r.startTLS(t)).To(Succeed(), "STLS before login")
	}
	for _, c := range []string{"USER " + a.User, "PASS " + a.Password} {
		ExpectWithOffset(1, r.write([]byte(c+"\r\n"))).To(Succeed())
		l, err := r.line(harness.DefaultTimeout)
		ExpectWithOffset(1, err).NotTo(HaveOccurred(), "reply to %s", redactForMessage(c))
		ExpectWithOffset(1, l).To(HavePrefix("+OK"), "reply to %s", redactForMessage(c))
	}
}

// robustAlive proves that the server still serves: a fresh connection
// logs in, gets STAT and quits. The attack is over, so the process may
// open the next spec's connection meanwhile.
func robustAlive(ctx SpecContext, t *harness.Target, after string) {
	robustAliveAs(ctx, t, need(t.Account(ctx)), after, 2)
}

// robustAliveAs is robustAlive for account a (on the bundled server each
// Account is a fresh mailbox): it returns STAT's reply, for a spec that
// also wants to know what the attack left in a's maildrop.
func robustAliveAs(ctx SpecContext, t *harness.Target, a harness.Account, after string, offset int) harness.Reply {
	t.ResumeAhead()
	var c *harness.Conn
	var err error
	// A limit or a slot being freed may take a moment to show.
	for try := 0; try < 20; try++ {
		if c, err = t.Login(ctx, a); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	ExpectWithOffset(offset, err).NotTo(HaveOccurred(), "a fresh login after %s", after)
	r, err := c.Cmd("STAT")
	ExpectWithOffset(offset, err).NotTo(HaveOccurred(), "STAT after %s", after)
	ExpectWithOffset(offset, r.OK()).To(BeTrue(), "STAT after %s: %q", after, r)
	// QUIT ends the session politely; its reply proves nothing more, so
	// the spec does not wait a round trip for it (the close follows).
	_ = c.Send("QUIT")
	return r
}

var _ = Describe("Robustness: hostile input", func() {
	Spec("answers a 10 MB line without CRLF with -ERR or a close, and keeps serving", IDs("2.1.2", "E0007"), Disruptive, Robustness, func(ctx SpecContext, t *harness.Target) {
		r := robustDial(ctx, t)
		chunk := bytes.Repeat([]byte("A"), 64<<10)
		closed := false
		for sent := 0; sent < 10<<20; sent += len(chunk) {
			_ = r.nc.SetWriteDeadline(time.Now().Add(harness.DefaultTimeout))
			if _, err := r.nc.Write(chunk); err != nil {
				Expect(robustIsTimeout(err)).To(BeFalse(), "the server stopped reading a long line without closing (after %d octets)", sent)
				r.note("* server closed after %d octets: %v", sent, err)
				closed = true
				break
			}
		}
		if !closed {
			r.note("C: 10 MiB of 'A' without a line end")
			if r.write([]byte("\r\n")) == nil && !r.status("a 10 MiB line") {
				// Still open after -ERR: the session must still work.
				Expect(r.write([]byte("CAPA\r\n"))).To(Succeed())
				l, err := r.line(harness.DefaultTimeout)
				if err == nil {
					Expect(l).To(HavePrefix("+OK"), "CAPA after the long line was refused")
				}
			}
		}
		robustAlive(ctx, t, "a 10 MiB line")
	})

	Spec("refuses commands with NUL octets and keeps serving", IDs("RFC1939-3-unknown-cmd"), Disruptive, Robustness, func(ctx SpecContext, t *harness.Target) {
		a := need(t.Account(ctx))
		r := robustDial(ctx, t)
		for _, line := range []string{"NO\x00OP\r\n", "\x00\x00\x00\x00\r\n"} {
			if r.write([]byte(line)) != nil || r.status(fmt.Sprintf("%q", line)) {
				robustAlive(ctx, t, "NUL octets")
				return
			}
		}
		// A real mailbox name with a NUL and more after it. A server
		// that answers USER +OK for any name (V0008) tells nothing by
		// its +OK, so the real password follows: the login must fail,
		// or the server cut the name at the NUL and took the line for
		// "USER <name>".
		line := "USER " + a.User + "\x00x\r\n"
		if r.write([]byte(line)) == nil {
			l, err := r.line(harness.DefaultTimeout)
			switch {
			case err != nil:
				Expect(robustIsTimeout(err)).To(BeFalse(), "%q: no answer and no close within %v", line, harness.DefaultTimeout)
			case strings.HasPrefix(l, "+OK"):
				// Whatever the profile says of unknown names: a server
				// may answer USER +OK for any name (V0008, GNU Mailutils
				// pop3d does), and only PASS tells that from a name cut
				// at the NUL; a wrong -ERR for unknown names is V0008's
				// business, not this rule's.
				if r.write([]byte("PASS "+a.Password+"\r\n")) == nil {
					r.status(fmt.Sprintf("PASS with %s's password after %q (the server must not have taken the name as %s)", a.User, line, a.User))
				}
			default:
				Expect(l).To(HavePrefix("-ERR"), "%q: want -ERR or a closed connection", line)
			}
		}
		robustAlive(ctx, t, "NUL octets")
	})

	Spec("answers bare CR and bare LF without hanging and keeps serving", IDs("RFC1939-3-cmd-crlf"), Disruptive, Robustness, func(ctx SpecContext, t *harness.Target) {
		r := robustDial(ctx, t)
		// A CR inside a line is no line end: the line is garbage.
		sent := r.write([]byte("NO\rOP\r\n"))
		second := robustDialSoon(ctx, t)
		if sent == nil {
			r.status("a command with a bare CR inside")
		}
		// A bare LF may end the line or not (left open by RFC 1939); a
		// CRLF after it must bring an answer either way.
		r2 := second()
		Expect(r2.write([]byte("CAPA\n"))).To(Succeed())
		l, err := r2.line(2 * time.Second)
		switch {
		case err == nil:
			AddReportEntry("bare LF", "ends the line: "+strings.TrimSpace(l), ReportEntryVisibilityFailureOrVerbose)
		case robustIsTimeout(err):
			Expect(r2.write([]byte("\r\n"))).To(Succeed())
			l, err = r2.line(harness.DefaultTimeout)
			Expect(err).NotTo(HaveOccurred(), "no answer to a line ended by LF then CRLF")
			AddReportEntry("bare LF", "does not end the line; then: "+strings.TrimSpace(l), ReportEntryVisibilityFailureOrVerbose)
		default:
			AddReportEntry("bare LF", "closes the connection", ReportEntryVisibilityFailureOrVerbose)
		}
		robustAlive(ctx, t, "bare CR and LF")
	})

	Spec("refuses invalid UTF-8 as an unknown command and keeps serving", IDs("RFC1939-3-unknown-cmd"), Disruptive, Robustness, func(ctx SpecContext, t *harness.Target) {
		r := robustDial(ctx, t)
		if r.write([]byte("\xff\xfe\xfd\xfc\r\n")) == nil && !r.status("a keyword of invalid UTF-8") {
			// An argument in invalid UTF-8 is octets; any status will do.
			Expect(r.write([]byte("USER \xc3\x28\xa0\xa1\r\n"))).To(Succeed())
			l, err := r.line(harness.DefaultTimeout)
			if err == nil {
				Expect(l).To(Or(HavePrefix("+OK"), HavePrefix("-ERR")), "USER with invalid UTF-8")
			}
		}
		robustAlive(ctx, t, "invalid UTF-8")
	})

	Spec("answers 10,000 pipelined NOOPs in one write, in order", IDs("RFC2449-6.6-pipelining-cap"), Disruptive, Robustness, func(ctx SpecContext, t *harness.Target) {
		const n = 10000
		a := need(t.Account(ctx))
		r := robustDial(ctx, t)
		r.login(t, a)
		Expect(r.write([]byte("CAPA\r\n"))).To(Succeed())
		pipelining := false
		for {
			l, err := r.line(harness.DefaultTimeout)
			Expect(err).NotTo(HaveOccurred(), "CAPA")
			l = strings.TrimRight(l, "\r\n")
			if l == "." || strings.HasPrefix(l, "-ERR") {
				break
			}
			pipelining = pipelining || strings.EqualFold(l, "PIPELINING")
		}
		if !pipelining {
			verdict.SkipNotApplicable("the server does not announce PIPELINING")
		}
		errc := make(chan error, 1)
		go func() {
			defer GinkgoRecover()
			errc <- r.write(bytes.Repeat([]byte("NOOP\r\n"), n))
		}()
		ok := 0
		for ok < n {
			l, err := r.line(30 * time.Second)
			Expect(err).NotTo(HaveOccurred(), "reply %d of %d pipelined NOOPs", ok+1, n)
			Expect(l).To(HavePrefix("+OK"), "reply %d of %d pipelined NOOPs", ok+1, n)
			ok++
		}
		Expect(<-errc).To(Succeed(), "writing the NOOPs")
		Expect(r.write([]byte("STAT\r\n"))).To(Succeed())
		l, err := r.line(harness.DefaultTimeout)
		Expect(err).NotTo(HaveOccurred())
		Expect(l).To(HavePrefix("+OK"), "STAT after the pipelined NOOPs (a reply too many or too few?)")
		// The session ends first: robustAlive logs the same account in,
		// which a server that locks the maildrop (RFC 1939 section 8)
		// refuses while this session holds it.
		Expect(r.write([]byte("QUIT\r\n"))).To(Succeed())
		l, err = r.line(harness.DefaultTimeout)
		Expect(err).NotTo(HaveOccurred(), "QUIT after the pipelined NOOPs")
		Expect(l).To(HavePrefix("+OK"), "QUIT after the pipelined NOOPs")
		robustAlive(ctx, t, "10,000 pipelined NOOPs")
	})

	Spec("keeps serving others while a client reads nothing of a large RETR", IDs("RFC1939-5-retr-ok"), Disruptive, Robustness, func(ctx SpecContext, t *harness.Target) {
		a := need(t.Account(ctx))
		size := 0
		if ref := t.Reference(); ref != nil {
			big := robustBigMessage(20 << 20)
			_, err := ref.Control.Deliver(a.User, big)
			Expect(err).NotTo(HaveOccurred(), "deliver a 20 MiB message")
			size = len(big)
		}
		stalled := robustDial(ctx, t)
		stalled.login(t, a)
		num := robustLargest(stalled)
		if num == 0 {
			verdict.SkipInconclusive("the maildrop is empty")
		}
		AddReportEntry("stalled RETR", fmt.Sprintf("message %d (%d octets delivered by the suite; 0: the largest on the server)", num, size), ReportEntryVisibilityFailureOrVerbose)
		Expect(stalled.write([]byte(fmt.Sprintf("RETR %d\r\n", num)))).To(Succeed())
		// The stalled client reads nothing from here on. Others must be
		// served meanwhile, including a full RETR of a second mailbox.
		done := make(chan struct{})
		go func() {
			defer GinkgoRecover()
			defer close(done)
			b := need(t.SecondAccount(ctx))
			c, err := t.Login(ctx, b)
			Expect(err).NotTo(HaveOccurred(), "a second login while a RETR is stalled")
			m, err := c.CmdMulti("LIST")
			Expect(err).NotTo(HaveOccurred())
			if len(m.Lines) > 0 {
				r, err := c.CmdMulti("RETR 1")
				Expect(err).NotTo(HaveOccurred(), "RETR while another client's RETR is stalled")
				Expect(r.OK()).To(BeTrue(), "RETR 1: %q", r.String())
			}
			// Served: the reply to QUIT would prove nothing more.
			_ = c.Send("QUIT")
		}()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			FailHandler("a second client was not served within 30 s while another client's RETR was stalled")
		}
		// The stalled client goes before robustAlive logs the same
		// account in: a server that locks the maildrop (RFC 1939 section
		// 8) refuses that login while the stalled session holds it.
		_ = stalled.nc.Close()
		robustAlive(ctx, t, "a stalled RETR")
	})

	Spec("fires the unauthenticated timer against a client sending 1 octet per 100 ms", IDs("V0002"), Disruptive, Robustness, ReferenceOnly, func(ctx SpecContext, t *harness.Target) {
		const timer = 2 * time.Second
		v := need(t.Variant(ctx, func(p *profile.Profile) { p.Timers.Unauthenticated = profile.Duration(timer) }))
		r := robustDial(ctx, v)
		closed := make(chan time.Duration, 1)
		began := time.Now()
		go func() {
			defer GinkgoRecover()
			ok := r.closedWithin(3 * timer)
			if ok {
				closed <- time.Since(began)
			}
			close(closed)
		}()
		payload := []byte("USER slowly-slowly-never-ending-name-" + strings.Repeat("z", 100))
		var took time.Duration
		var isClosed bool
	trickle:
		for _, b := range payload {
			select {
			case took, isClosed = <-closed:
				break trickle
			case <-time.After(100 * time.Millisecond):
			}
			_ = r.nc.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := r.nc.Write([]byte{b}); err != nil {
				took, isClosed = <-closed
				break
			}
		}
		Expect(isClosed).To(BeTrue(), "the connection is still open after %v of trickling, with a %v unauthenticated timer", 3*timer, timer)
		Expect(took).To(BeNumerically("<", timer+timer/2+500*time.Millisecond), "closed after %v; the %v timer must not be reset by single octets", took, timer)
		AddReportEntry("slowloris closed after", took.String(), ReportEntryVisibilityFailureOrVerbose)
		robustAlive(ctx, v, "a slowloris client")
	})

	Spec("ends a half-closed session without UPDATE and keeps serving", IDs("RFC1939-3-tcp-close-no-update"), Disruptive, Robustness, func(ctx SpecContext, t *harness.Target) {
		// In AUTHORIZATION: the answer still comes, then the close.
		r := robustDial(ctx, t)
		Expect(r.write([]byte("CAPA\r\n"))).To(Succeed())
		if err := r.closeWrite(); err != nil {
			verdict.SkipInconclusive("cannot half-close this transport: %v", err)
		}
		l, err := r.line(harness.DefaultTimeout)
		if r.tls && err != nil && !robustIsTimeout(err) {
			// Inside TLS the half-close is a close_notify alert, and a
			// TLS peer may close at once on it, pending writes discarded
			// (RFC 5246 section 7.2.1; Courier's couriertls does): no
			// answer is owed then, only the close. This rule is about
			// UPDATE, which the second half checks.
			record("half-close", "inside TLS the server closed on the close_notify without answering the CAPA before it (%v)", err)
		} else {
			Expect(err).NotTo(HaveOccurred(), "the answer to CAPA sent just before the half-close")
			Expect(l).To(HavePrefix("+OK"))
		}
		Expect(r.closedWithin(harness.DefaultTimeout)).To(BeTrue(), "the server kept a half-closed connection open")

		// In TRANSACTION with a message marked: nothing is removed.
		a := need(t.Account(ctx))
		// Not once the server has lost marked mail (Target.NoteLost).
		mark := t.Reference() != nil || (t.Config.Allow.AllowsReversible() && t.Lost() == "")
		r2 := robustDial(ctx, t)
		r2.login(t, a)
		if mark {
			Expect(r2.write([]byte("DELE 1\r\n"))).To(Succeed())
			_, err := r2.line(harness.DefaultTimeout)
			Expect(err).NotTo(HaveOccurred())
		}
		Expect(r2.write([]byte("STAT\r\n"))).To(Succeed())
		before, err := r2.line(harness.DefaultTimeout)
		Expect(err).NotTo(HaveOccurred())
		Expect(r2.closeWrite()).To(Succeed())
		Expect(r2.closedWithin(harness.DefaultTimeout)).To(BeTrue(), "the server kept a half-closed session open")
		// The fresh login that shows the server still serves shows what
		// the half-closed session left in the maildrop too.
		after := robustAliveAs(ctx, t, a, "half-closed connections", 1)
		if mark {
			n, _ := statOf(after, 0)
			var left int
			fmt.Sscanf(before, "+OK %d", &left)
			Expect(n).To(Equal(left+1), "a message marked in a half-closed session was removed (STAT before the close: %q)", strings.TrimSpace(before))
		}
	})

	Spec("closes cleanly on garbage instead of a TLS handshake after STLS", IDs("RFC2595-4-stls-handshake"), Disruptive, Robustness, func(ctx SpecContext, t *harness.Target) {
		if !t.HasPlain() || !t.Profile.STLS {
			verdict.SkipNotApplicable("no STLS on a plain listener")
		}
		garbage := [][]byte{
			[]byte("GET / HTTP/1.1\r\nHost: pop3\r\n\r\n"),
			append([]byte{0x16, 0x03, 0x01, 0xff, 0xff}, bytes.Repeat([]byte{0xab}, 4096)...),
		}
		// Each garbage goes on a connection of its own, both at once:
		// the second need not wait out the first's round trips.
		t.Release()
		conns := make([]*robustRaw, len(garbage))
		errs := make([]error, len(garbage))
		var wg sync.WaitGroup
		for i := range garbage {
			wg.Go(func() {
				d := net.Dialer{Timeout: harness.DefaultTimeout}
				nc, err := d.DialContext(ctx, "tcp", t.PlainAddr())
				if err == nil {
					conns[i] = &robustRaw{nc: nc, br: bufio.NewReader(nc)}
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for i, r := range conns {
			if r != nil {
				DeferCleanup(r.nc.Close)
			}
			Expect(errs[i]).NotTo(HaveOccurred())
		}
		for _, r := range conns {
			_, err := r.line(harness.DefaultTimeout)
			Expect(err).NotTo(HaveOccurred(), "greeting")
			Expect(r.write([]byte("STLS\r\n"))).To(Succeed())
		}
		for _, r := range conns {
			l, err := r.line(harness.DefaultTimeout)
			Expect(err).NotTo(HaveOccurred())
			if !strings.HasPrefix(l, "+OK") {
				verdict.SkipInconclusive("STLS refused: %q", strings.TrimSpace(l))
			}
		}
		for i, r := range conns {
			_ = r.write(garbage[i])
		}
		for i, r := range conns {
			Expect(r.closedWithin(harness.DefaultTimeout)).To(BeTrue(), "the connection stayed open after %d octets of garbage instead of a TLS handshake", len(garbage[i]))
		}
		robustAlive(ctx, t, "garbage after STLS")
	})

	Spec("refuses invalid base64 and a 100 KB initial response in AUTH and keeps serving", IDs("RFC5034-4-bad-base64"), Disruptive, Robustness, func(ctx SpecContext, t *harness.Target) {
		r := robustDial(ctx, t)
		if !t.Profile.PlaintextLogin(r.tls) {
			if !t.Profile.STLS {
				verdict.SkipInconclusive("PLAIN is allowed only under TLS and the profile offers no STLS")
			}
			Expect(r.startTLS(t)).To(Succeed())
		}
		Expect(r.write([]byte("AUTH PLAIN\r\n"))).To(Succeed())
		l, err := r.line(harness.DefaultTimeout)
		Expect(err).NotTo(HaveOccurred())
		if !strings.HasPrefix(l, "+") || strings.HasPrefix(l, "+OK") {
			verdict.SkipNotApplicable("AUTH PLAIN gets no continuation here: %q", strings.TrimSpace(l))
		}
		Expect(r.write([]byte("!!not*base64%%\r\n"))).To(Succeed())
		if !r.status("invalid base64 as a SASL response") {
			ir := strings.Repeat("QUFB", 100<<10/4)
			if r.write([]byte("AUTH PLAIN "+ir+"\r\n")) == nil {
				r.status("AUTH PLAIN with a 100 KB initial response")
			}
		}
		robustAlive(ctx, t, "invalid AUTH payloads")
	})

	Spec("refuses connections beyond its limit with -ERR or a close, and serves again when they end", IDs("RFC3206-4-sys-temp-semantics"), Disruptive, Robustness, ReferenceOnly, func(ctx SpecContext, t *harness.Target) {
		const limit, extra = 5, 500 // issue 5: 500 concurrent connections beyond the limit
		v := need(t.Variant(ctx, func(p *profile.Profile) { p.MaxConnections = limit }))
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		dial := func() (net.Conn, string, error) {
			d := net.Dialer{Timeout: harness.DefaultTimeout}
			nc, err := d.DialContext(ctx, "tcp", v.PlainAddr())
			if err != nil {
				return nil, "", err
			}
			_ = nc.SetReadDeadline(time.Now().Add(harness.DefaultTimeout))
			l, err := bufio.NewReader(nc).ReadString('\n')
			return nc, l, err
		}
		for range limit {
			nc, l, err := dial()
			Expect(err).NotTo(HaveOccurred(), "connection within the limit")
			Expect(l).To(HavePrefix("+OK"), "greeting within the limit")
			held = append(held, nc)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		outcomes := map[string]int{}
		for range extra {
			wg.Add(1)
			go func() {
				defer wg.Done()
				nc, l, err := dial()
				if nc != nil {
					defer nc.Close()
				}
				key := "closed"
				switch {
				case err == nil && strings.HasPrefix(l, "-ERR [SYS/TEMP]"):
					key = "-ERR [SYS/TEMP]"
				case err == nil && strings.HasPrefix(l, "-ERR"):
					key = "-ERR"
				case err == nil:
					key = "answered " + strings.TrimSpace(l)
				case robustIsTimeout(err):
					key = "no answer"
				case errors.Is(err, io.EOF):
				}
				mu.Lock()
				outcomes[key]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		// The raw dials keep no transcript: their first lines, counted,
		// are the evidence.
		record("transcript", "%d connections beyond a limit of %d, by the first line the server sent: %v", extra, limit, outcomes)
		Expect(outcomes["-ERR [SYS/TEMP]"]+outcomes["-ERR"]+outcomes["closed"]).To(Equal(extra), "every connection beyond the limit of %d gets -ERR or a close: %v", limit, outcomes)
		if v.Profile.HasCapability("RESP-CODES") {
			Expect(outcomes["-ERR"]).To(BeZero(), "a refusal for want of resources carries [SYS/TEMP] when RESP-CODES is announced: %v", outcomes)
		}
		for _, c := range held {
			c.Close()
		}
		held = nil
		robustAlive(ctx, v, "a connection flood")
	})
})

// robustBigMessage is a message of about n octets with CRLF lines, one of
// them starting with a dot.
func robustBigMessage(n int) []byte {
	var b bytes.Buffer
	b.Grow(n + 1024)
	b.WriteString("From: robustness@localhost\r\nSubject: large\r\n\r\n.dot-stuffed first line\r\n")
	line := strings.Repeat("0123456789", 7) + "\r\n"
	for b.Len() < n {
		b.WriteString(line)
	}
	return b.Bytes()
}

// robustLargest returns the number of the largest message, 0 when none.
func robustLargest(r *robustRaw) int {
	ExpectWithOffset(1, r.write([]byte("LIST\r\n"))).To(Succeed())
	l, err := r.line(harness.DefaultTimeout)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	ExpectWithOffset(1, l).To(HavePrefix("+OK"), "LIST")
	best, bestSize := 0, int64(-1)
	for {
		l, err := r.line(harness.DefaultTimeout)
		ExpectWithOffset(1, err).NotTo(HaveOccurred(), "LIST listing")
		l = strings.TrimRight(l, "\r\n")
		if l == "." {
			return best
		}
		var n int
		var size int64
		if _, err := fmt.Sscanf(l, "%d %d", &n, &size); err == nil && size > bestSize {
			best, bestSize = n, size
		}
	}
}
