package conformance

// Stock client interoperability: an ordinary Go POP3 client,
// github.com/knadh/go-pop3 v1.0.0, logs in and runs STAT, LIST, UIDL, RETR,
// TOP, DELE+RSET and QUIT against the target. Each spec carries the RFC
// 1939 section 5/7 IDs it exercises; the strict wire client of the harness
// stays the judge where the library is known to be wrong.
//
// What go-pop3 v1.0.0 itself gets wrong, from its source (pop3.go) and from
// running it against alice's message 02 (the dot lines):
//
//  1. No dot-unstuffing. ReadAll stops at a lone "." but keeps every other
//     line as sent, so RetrRaw(2) returned "..one dot at the start",
//     "...two dots at the start", ".." (for a lone ".") and "...." (for
//     "..."); message 04 came back 45 octets longer than it is. Retr and Top
//     hand that stuffed text to go-message, so entity bodies are stuffed
//     too. The specs un-stuff the library's output before comparing it.
//  2. Line ends are rewritten. bufio.Reader.ReadLine strips CRLF or a bare
//     LF and the library appends CRLF, so a server's bare LF is invisible
//     through it (the raw specs judge line ends). ReadLine's isPrefix is
//     ignored: a line longer than 4096 octets is split into several CRLF
//     lines, and a status line that long would desynchronise the session.
//     The fixture has no such lines.
//  3. Stat reports size 0 whenever the count is 0, whatever the server
//     said, and panics (index out of range) on a "+OK" without two fields.
//  4. List and Uidl split lines on white space: text after the size or the
//     unique-id is dropped unseen (V0004/V0005 are judged by the raw
//     client), a line with one field panics, and parsing stops at the
//     first empty line. List(0) and Uidl(0) mean "all", so LIST 0 and UIDL
//     0 cannot be sent through the library.
//  5. No I/O timeouts: only DialTimeout exists, so a stalled server hangs
//     the client for ever. The suite's Opt.Dialer sets an absolute
//     deadline on the connection.
//  6. TLS: implicit TLS only (TLSEnabled). There is no STLS, no way to give
//     a CA pool or a minimum version, and with TLSSkipVerify no SNI is
//     sent either. The specs use TLSEnabled for a host whose certificate
//     the system roots verify; for the bundled server (its own CA) or a
//     POP3_CA_FILE / POP3_SERVER_NAME setting, TLS is done in Opt.Dialer,
//     the library's hook for custom transports. A STARTTLS target, or a
//     plain one whose profile refuses plaintext logins, is out of reach.
//  7. Auth sends NOOP after PASS "to force the server to respond", one
//     command more than a login needs.
//  8. Quit leaves the connection open when QUIT gets -ERR, and NewConn
//     leaks it when the greeting is -ERR; the suite closes both itself.

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"time"

	pop3 "github.com/knadh/go-pop3"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// stockDeadline bounds a whole library session: the library sets no read
// or write deadlines of its own (finding 5).
const stockDeadline = 60 * time.Second

// stockTap records what crosses a library connection, passwords redacted,
// so a failing spec has its evidence like the raw client's transcripts.
type stockTap struct {
	net.Conn
	// guard admits every write as harness.Conn's does.
	guard  *harness.LineGuard
	mu     sync.Mutex
	log    strings.Builder
	shown  int // server octets shown so far
	hidden int // server octets left out
	// first holds the first octets the server sent (its greeting).
	first string
}

const stockTapServerOctets = 3000

func (s *stockTap) Write(b []byte) (int, error) {
	s.mu.Lock()
	line, _ := harness.RedactCommand(strings.TrimRight(string(b), "\r\n"))
	if err := s.guard.Admit(b); err != nil {
		fmt.Fprintf(&s.log, "*  not sent: %s: %v\n", line, err)
		s.mu.Unlock()
		return 0, err
	}
	fmt.Fprintf(&s.log, "C: %s\n", line)
	s.mu.Unlock()
	return s.Conn.Write(b)
}

func (s *stockTap) Read(b []byte) (int, error) {
	n, err := s.Conn.Read(b)
	s.mu.Lock()
	if n > 0 {
		s.guard.Received()
		if s.first == "" {
			s.first = string(b[:n])
		}
	}
	if room := stockTapServerOctets - s.shown; room > 0 {
		k := min(n, room)
		fmt.Fprintf(&s.log, "S: %q\n", b[:k])
		s.shown += k
		s.hidden += n - k
	} else {
		s.hidden += n
	}
	s.mu.Unlock()
	return n, err
}

func (s *stockTap) greeting() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.first
}

func (s *stockTap) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.log.String()
	if s.hidden > 0 {
		out += fmt.Sprintf("... %d more server octets not shown\n", s.hidden)
	}
	return out
}

// stockDialer is the library's Opt.Dialer: it dials the target, sets the
// session deadline, taps the connection and, when asked, runs TLS itself.
type stockDialer struct {
	ctx context.Context
	// guard gives each connection its line guard; nil when the library
	// runs TLS itself and the tap sees ciphertext.
	guard func() *harness.LineGuard
	addr  string      // dial this, whatever address the library formats
	tls   *tls.Config // nil: plain, or TLS left to the library
	taps  *[]*stockTap
}

func (d stockDialer) Dial(network, _ string) (net.Conn, error) {
	nd := net.Dialer{Timeout: harness.DefaultTimeout}
	nc, err := nd.DialContext(d.ctx, network, d.addr)
	if err != nil {
		return nil, err
	}
	if err := nc.SetDeadline(time.Now().Add(stockDeadline)); err != nil {
		nc.Close()
		return nil, err
	}
	if d.tls != nil {
		nc = tls.Client(nc, d.tls)
	}
	tap := &stockTap{Conn: nc}
	if d.guard != nil {
		tap.guard = d.guard()
	}
	*d.taps = append(*d.taps, tap)
	return tap, nil
}

// stockSession is one library connection.
type stockSession struct {
	*pop3.Conn
	tap *stockTap
}

// stockConnect opens a go-pop3 connection. implicit forces the implicit
// TLS listener; otherwise the target's own mode is used, and a mode the
// library cannot speak ends the spec not applicable.
func stockConnect(ctx SpecContext, t *harness.Target, implicit bool) stockSession {
	mode := t.Mode()
	if implicit {
		mode = harness.TLSImplicit
	}
	var addr string
	switch mode {
	case harness.TLSStartTLS:
		verdict.SkipNotApplicable("go-pop3 v1.0.0 has no STLS, and the target is configured for STARTTLS")
	case harness.TLSImplicit:
		if !t.HasTLS() {
			// Only the implicit-TLS spec asks for this port. Its
			// statements are judged over the configured transport by the
			// other specs, so a port the user did not configure must
			// not turn them inconclusive.
			verdict.SkipNotApplicable("the target is configured without an implicit TLS port, so the stock client is tried over the configured transport only (set %s=implicit to try it over TLS)", harness.EnvTLS)
		}
		addr = t.TLSAddr()
	default:
		if !t.Profile.PlaintextBeforeTLS {
			verdict.SkipNotApplicable("go-pop3 v1.0.0 has no STLS, and the profile refuses plaintext logins before TLS")
		}
		addr = t.PlainAddr()
	}
	host, portText, err := net.SplitHostPort(addr)
	Expect(err).NotTo(HaveOccurred())
	port, _ := strconv.Atoi(portText)

	var taps []*stockTap
	// The library dials on its own: the kept session goes first, so the
	// run holds no more connections than the spec.
	t.Release()
	d := stockDialer{ctx: ctx, guard: t.LineGuard, addr: addr, taps: &taps}
	opt := pop3.Opt{Host: host, Port: port, DialTimeout: harness.DefaultTimeout, Dialer: d}
	if mode == harness.TLSImplicit {
		cfg := t.Config
		if t.Reference() == nil && cfg.CAFile == "" && cfg.ServerName == "" {
			// The library's own TLS: system roots, host name from Opt.Host.
			// The tap sees ciphertext then, which no guard can read; the
			// spec's class alone keeps the library's calls in bounds.
			opt.TLSEnabled, opt.TLSSkipVerify = true, cfg.InsecureSkipVerify
			d.guard = nil
			opt.Dialer = d
		} else {
			// A CA or name the library cannot be given (finding 6).
			d.tls = t.TLSConfig()
			opt.Dialer = d
		}
	}
	DeferCleanup(func() {
		for _, tap := range taps {
			// After the library's QUIT a server that locks the maildrop
			// lets go of it only once UPDATE is done.
			_ = t.CloseRaw(tap.Conn)
			note := ""
			if opt.TLSEnabled {
				note = "(TLS run by the library: the tap saw ciphertext)\n"
			}
			AddReportEntry("go-pop3 transcript", note+tap.String(), ReportEntryVisibilityFailureOrVerbose)
		}
	})
	c, err := pop3.New(opt).NewConn()
	if err != nil {
		// In a worker a refusal may be the other sessions' doing: the
		// spec then runs again alone.
		greeting := ""
		if len(taps) > 0 {
			greeting = taps[len(taps)-1].greeting()
		}
		if busy := t.BusyRefusal(err, greeting); busy != nil {
			err = busy
		}
	}
	Expect(err).NotTo(HaveOccurred(), "go-pop3: connect and read the greeting")
	Expect(taps).NotTo(BeEmpty())
	return stockSession{Conn: c, tap: taps[len(taps)-1]}
}

// stockLogin connects and logs in with the library's Auth (USER, PASS,
// NOOP).
func stockLogin(ctx SpecContext, t *harness.Target, a harness.Account, implicit bool) stockSession {
	s := stockConnect(ctx, t, implicit)
	Expect(s.Auth(a.User, a.Password)).To(Succeed(), "go-pop3 Auth as %s", a.User)
	return s
}

// stockView is what the strict client sees of the maildrop, the answers
// the library's results are compared with: STAT, LIST, UIDL (where the
// profile lists it) and the first stockMessages messages. One session
// reads it for every stock spec and ends with QUIT (nothing is marked),
// so that a lock is free for the library.
type stockView struct {
	Account harness.Account
	Stat    harness.Reply
	List    harness.Multi
	// uidl is UIDL's answer, or why there is none; messages are the
	// first messages' texts (the fixture's when the account declares
	// one), or why there are none. A failure there fails only the specs
	// that compare with them.
	uidl        harness.Multi
	uidlWhy     string
	messages    [][]byte
	messagesWhy string
}

const stockMessages = 6

var stockRaw = Reading[stockView]{name: "the strict client's view for the stock client", read: func(ctx SpecContext, t *harness.Target) stockView {
	a := need(t.Account(ctx))
	c, err := t.Login(ctx, a)
	Expect(err).NotTo(HaveOccurred(), "raw client: log in as %s", a.User)
	v := stockView{Account: a, Stat: cmd(c, "STAT"), List: multi(c, "LIST")}
	broken := ""
	if t.Profile.HasCapability("UIDL") {
		if v.uidl, err = c.CmdMulti("UIDL"); err != nil {
			broken = fmt.Sprintf("raw client: UIDL: %v", err)
			v.uidlWhy = broken
		}
	}
	n := 0
	if m := statRE.FindStringSubmatch(string(v.Stat.Raw)); m != nil {
		n, _ = strconv.Atoi(m[1])
	}
	switch msgs, ok := fixtureOf(a); {
	case ok:
		for _, m := range msgs[:min(stockMessages, len(msgs))] {
			v.messages = append(v.messages, m.Data)
		}
	case broken != "":
		v.messagesWhy = broken
	default:
		read := 0
		for i := 1; i <= min(n, stockMessages) && read <= maxDownload; i++ {
			m, err := c.CmdMulti(fmt.Sprintf("RETR %d", i))
			if err != nil {
				v.messages, v.messagesWhy = nil, fmt.Sprintf("raw client: RETR %d: %v", i, err)
				broken = v.messagesWhy
				break
			}
			if !m.OK() {
				v.messages, v.messagesWhy = nil, fmt.Sprintf("raw client: RETR %d: want +OK, got %q", i, m.String())
				break
			}
			v.messages = append(v.messages, m.Body())
			read += len(m.Body())
		}
	}
	if broken == "" {
		expectOK(cmd(c, "QUIT"), "raw client: QUIT")
	}
	return v
}}

// UIDL returns the strict client's UIDL answer.
func (v stockView) UIDL() harness.Multi {
	if v.uidlWhy != "" {
		FailHandler(v.uidlWhy, 1)
	}
	return v.uidl
}

// Messages returns the first messages as the strict client read them.
func (v stockView) Messages() [][]byte {
	if v.messagesWhy != "" {
		FailHandler(v.messagesWhy, 1)
	}
	return v.messages
}

// stockUidlSession reads the unique-ids with the strict client, then logs
// the library in: the setup of the UIDL specs.
func stockUidlSession(ctx SpecContext, t *harness.Target) (stockSession, []listing) {
	needProfileCapability(t, "UIDL")
	v := stockRaw.Get(ctx, t)
	want := uidListingsOf(v.UIDL())
	if len(want) == 0 {
		verdict.SkipInconclusive("the maildrop has no messages to list")
	}
	return stockLogin(ctx, t, v.Account, false), want
}

// stockRead reads what the strict client sees now, then ends its session
// with QUIT (nothing is marked) so that a lock is free for the library:
// the mutating spec's view before and after the library changed the
// maildrop.
func stockRead[T any](ctx SpecContext, t *harness.Target, a harness.Account, read func(c *harness.Conn) T) T {
	c, err := t.Login(ctx, a)
	Expect(err).NotTo(HaveOccurred(), "raw client: log in as %s", a.User)
	v := read(c)
	expectOK(cmd(c, "QUIT"), "raw client: QUIT")
	return v
}

// stockHeader returns a header field of a message text.
func stockHeader(data []byte, field string) string {
	m, err := mail.ReadMessage(bytes.NewReader(data))
	Expect(err).NotTo(HaveOccurred(), "parse the message header")
	return m.Header.Get(field)
}

var _ = Describe("Stock client github.com/knadh/go-pop3 v1.0.0", func() {
	Spec("logs in with USER and PASS and reads STAT", IDs("RFC1939-7-pass-locks", "RFC1939-5-stat-format"), Readonly, stockRaw, func(ctx SpecContext, t *harness.Target) {
		v := stockRaw.Get(ctx, t)
		n0, size0 := statOf(v.Stat, 0)
		want := [2]int64{int64(n0), size0}
		s := stockLogin(ctx, t, v.Account, false)
		n, size, err := s.Stat()
		Expect(err).NotTo(HaveOccurred(), "go-pop3 Stat")
		Expect(int64(n)).To(Equal(want[0]), "go-pop3 Stat count against the raw STAT")
		if n > 0 { // the library reports size 0 for an empty maildrop (finding 3)
			Expect(int64(size)).To(Equal(want[1]), "go-pop3 Stat size against the raw STAT")
		}
		Expect(s.Quit()).To(Succeed(), "go-pop3 Quit")
	})

	Spec("lists messages with LIST and LIST n", IDs("RFC1939-5-list-all", "RFC1939-5-list-one"), Readonly, stockRaw, func(ctx SpecContext, t *harness.Target) {
		v := stockRaw.Get(ctx, t)
		want := scanListingsOf(v.List)
		if len(want) == 0 {
			verdict.SkipInconclusive("the maildrop has no messages to list")
		}
		s := stockLogin(ctx, t, v.Account, false)
		all, err := s.List(0)
		Expect(err).NotTo(HaveOccurred(), "go-pop3 List(0)")
		Expect(all).To(HaveLen(len(want)), "go-pop3 List(0) against the raw LIST")
		for i, w := range want {
			Expect(all[i].ID).To(Equal(w.Num), "go-pop3 List(0) entry %d: number", i+1)
			Expect(int64(all[i].Size)).To(Equal(w.Size()), "go-pop3 List(0) entry %d: size", i+1)
		}
		for _, w := range want[:min(len(want), 6)] {
			one, err := s.List(w.Num)
			Expect(err).NotTo(HaveOccurred(), "go-pop3 List(%d)", w.Num)
			Expect(one).To(HaveLen(1), "go-pop3 List(%d)", w.Num)
			Expect(one[0].ID).To(Equal(w.Num), "go-pop3 List(%d): number", w.Num)
			Expect(int64(one[0].Size)).To(Equal(w.Size()), "go-pop3 List(%d): size", w.Num)
		}
		Expect(s.Quit()).To(Succeed(), "go-pop3 Quit")
	})

	// UIDL and UIDL n in specs of their own: a server may get one right
	// and not the other (Twisted leaves the number out of UIDL n).
	Spec("lists unique-ids with UIDL", IDs("RFC1939-7-uidl-all"), Readonly, stockRaw, func(ctx SpecContext, t *harness.Target) {
		s, want := stockUidlSession(ctx, t)
		all, err := s.Uidl(0)
		Expect(err).NotTo(HaveOccurred(), "go-pop3 Uidl(0)")
		Expect(all).To(HaveLen(len(want)), "go-pop3 Uidl(0) against the raw UIDL")
		for i, w := range want {
			Expect(all[i].ID).To(Equal(w.Num), "go-pop3 Uidl(0) entry %d: number", i+1)
			Expect(all[i].UID).To(Equal(w.UID()), "go-pop3 Uidl(0) entry %d: unique-id", i+1)
		}
		Expect(s.Quit()).To(Succeed(), "go-pop3 Quit")
	})

	Spec("lists one unique-id with UIDL n", IDs("RFC1939-7-uidl-one"), Readonly, stockRaw, func(ctx SpecContext, t *harness.Target) {
		s, want := stockUidlSession(ctx, t)
		for _, w := range want[:min(len(want), 6)] {
			one, err := s.Uidl(w.Num)
			Expect(err).NotTo(HaveOccurred(), "go-pop3 Uidl(%d)", w.Num)
			Expect(one).To(HaveLen(1), "go-pop3 Uidl(%d)", w.Num)
			Expect(one[0].UID).To(Equal(w.UID()), "go-pop3 Uidl(%d): unique-id", w.Num)
		}
		Expect(s.Quit()).To(Succeed(), "go-pop3 Quit")
	})

	Spec("retrieves every message with RETR", IDs("RFC1939-5-retr-ok"), Readonly, stockRaw, func(ctx SpecContext, t *harness.Target) {
		v := stockRaw.Get(ctx, t)
		want := v.Messages()
		if len(want) == 0 {
			verdict.SkipInconclusive("the maildrop has no messages to retrieve")
		}
		s := stockLogin(ctx, t, v.Account, false)
		for i, data := range want {
			num := i + 1
			raw, err := s.RetrRaw(num)
			Expect(err).NotTo(HaveOccurred(), "go-pop3 RetrRaw(%d)", num)
			// The library leaves the stuffing in (finding 1).
			got := unstuff(raw.Bytes())
			Expect(bytes.Equal(got, data)).To(BeTrue(), "go-pop3 RetrRaw(%d), un-stuffed by the suite: %s", num, firstDiff(got, data))
		}
		// The parsed form an ordinary client uses.
		e, err := s.Retr(1)
		Expect(err).NotTo(HaveOccurred(), "go-pop3 Retr(1)")
		Expect(e.Header.Get("Message-Id")).To(Equal(stockHeader(want[0], "Message-Id")), "go-pop3 Retr(1): Message-ID")
		body, err := io.ReadAll(e.Body)
		Expect(err).NotTo(HaveOccurred())
		head, _ := topOf(want[0], 0)
		Expect(unstuff(body)).To(Equal(want[0][len(head):]), "go-pop3 Retr(1): body")
		Expect(s.Quit()).To(Succeed(), "go-pop3 Quit")
	})

	Spec("reads the header and the first body lines with TOP", IDs("RFC1939-7-top-format", "RFC1939-7-top-zero"), Readonly, stockRaw, func(ctx SpecContext, t *harness.Target) {
		needProfileCapability(t, "TOP")
		v := stockRaw.Get(ctx, t)
		want := v.Messages()
		if len(want) == 0 {
			verdict.SkipInconclusive("the maildrop has no messages")
		}
		s := stockLogin(ctx, t, v.Account, false)
		for i, data := range want {
			num := i + 1
			head, _ := topOf(data, 0)
			for _, k := range []int{0, 3} {
				e, err := s.Top(num, k)
				Expect(err).NotTo(HaveOccurred(), "go-pop3 Top(%d, %d)", num, k)
				Expect(e.Header.Get("Message-Id")).To(Equal(stockHeader(data, "Message-Id")), "go-pop3 Top(%d, %d): Message-ID", num, k)
				body, err := io.ReadAll(e.Body)
				Expect(err).NotTo(HaveOccurred())
				top, _ := topOf(data, k)
				Expect(unstuff(body)).To(Equal(top[len(head):]), "go-pop3 Top(%d, %d): body lines", num, k)
			}
		}
		Expect(s.Quit()).To(Succeed(), "go-pop3 Quit")
	})

	// QUIT after DELE and RSET: a server whose RSET left a mark deletes
	// for good, so the spec is mutating.
	Spec("marks with DELE, clears with RSET, and QUIT then removes nothing", IDs("RFC1939-5-dele-marks", "RFC1939-5-rset-unmark", "RFC1939-5-dele-nonexistent"), Mutating, MarksDeleted, func(ctx SpecContext, t *harness.Target) {
		a := need(t.Account(ctx))
		before := stockRead(ctx, t, a, scanListings)
		if len(before) == 0 {
			verdict.SkipInconclusive("the maildrop has no messages to mark")
		}
		n := len(before)
		s := stockLogin(ctx, t, a, false)
		Expect(s.Dele(1)).To(Succeed(), "go-pop3 Dele(1)")
		count, _, err := s.Stat()
		Expect(err).NotTo(HaveOccurred(), "go-pop3 Stat")
		Expect(count).To(Equal(n-1), "go-pop3 Stat after Dele(1)")
		Expect(s.Dele(n+1)).NotTo(Succeed(), "go-pop3 Dele(%d) of a maildrop with %d messages", n+1, n)
		Expect(s.Rset()).To(Succeed(), "go-pop3 Rset")
		count, _, err = s.Stat()
		Expect(err).NotTo(HaveOccurred(), "go-pop3 Stat")
		Expect(count).To(Equal(n), "go-pop3 Stat after Rset")
		Expect(s.Quit()).To(Succeed(), "go-pop3 Quit")
		after := stockRead(ctx, t, a, scanListings)
		Expect(after).To(Equal(before), "raw LIST after the library's DELE, RSET and QUIT")
	})

	Spec("logs in, reads STAT and LIST and quits over implicit TLS", IDs("RFC1939-7-pass-locks", "RFC1939-5-stat-format", "RFC1939-5-list-all"), Readonly, stockRaw, func(ctx SpecContext, t *harness.Target) {
		v := stockRaw.Get(ctx, t)
		want := scanListingsOf(v.List)
		s := stockLogin(ctx, t, v.Account, true)
		st, ok := s.tap.Conn.(*tls.Conn)
		if ok {
			Expect(st.ConnectionState().HandshakeComplete).To(BeTrue(), "TLS handshake")
		}
		n, _, err := s.Stat()
		Expect(err).NotTo(HaveOccurred(), "go-pop3 Stat over TLS")
		Expect(n).To(Equal(len(want)), "go-pop3 Stat count over TLS against the raw LIST")
		all, err := s.List(0)
		Expect(err).NotTo(HaveOccurred(), "go-pop3 List(0) over TLS")
		Expect(all).To(HaveLen(len(want)), "go-pop3 List(0) over TLS")
		Expect(s.Quit()).To(Succeed(), "go-pop3 Quit over TLS")
	})
})
