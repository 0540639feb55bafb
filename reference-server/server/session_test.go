package server

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pop3conformance/pop3conformance/fixtures"
	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/reference-server/maildrop"
)

func TestGreetingAndAPOP(t *testing.T) {
	forEachProfile(t, func(t *testing.T, p *profile.Profile) {
		ts := startServer(t, p)
		c := ts.dial(t)
		stamp := regexp.MustCompile(`<[^<>@]+@[^<>]+>$`).FindString(c.greeting)
		if p.APOP != (stamp != "") {
			t.Fatalf("greeting %q: APOP %v but timestamp %q", c.greeting, p.APOP, stamp)
		}
		if !p.APOP {
			wantPrefix(t, c.cmd("APOP alice 0123456789abcdef0123456789abcdef"), "-ERR ")
			return
		}
		if c2 := ts.dial(t); strings.HasSuffix(c2.greeting, stamp) {
			t.Fatalf("timestamp %s reused", stamp)
		}
		wantPrefix(t, c.cmd("APOP erin 0123456789abcdef0123456789abcdef"), "-ERR [AUTH] ")
		// RFC 1939 section 13: alice logs in with USER/PASS, so even her
		// right digest is refused.
		sum := md5.Sum([]byte(stamp + "wonderland"))
		wantPrefix(t, c.cmd("APOP alice "+hex.EncodeToString(sum[:])), "-ERR [AUTH] ")
		sum = md5.Sum([]byte(stamp + "apop secret"))
		wantPrefix(t, c.cmd("APOP erin "+hex.EncodeToString(sum[:])), "+OK ")
		wantPrefix(t, c.cmd("STAT"), "+OK 2 ")
	})
}

// RFC 1939 section 13: one login method per mailbox when APOP is offered.
// erin (login: apop) is refused USER/PASS whatever the password; without
// APOP in the profile she logs in with USER/PASS like everyone.
func TestAPOPXorPass(t *testing.T) {
	forEachProfile(t, func(t *testing.T, p *profile.Profile) {
		ts := startServer(t, p)
		c := ts.dial(t)
		wantPrefix(t, c.cmd("USER erin"), "+OK")
		if !p.APOP {
			wantPrefix(t, c.cmd("PASS apop secret"), "+OK")
			return
		}
		wantPrefix(t, c.cmd("PASS apop secret"), "-ERR [AUTH] ")
		wantPrefix(t, c.cmd("USER erin"), "+OK")
		wantPrefix(t, c.cmd("PASS wrong"), "-ERR [AUTH] ")
		c.login("alice", "wonderland")
	})
}

func TestSeparators(t *testing.T) {
	forEachProfile(t, func(t *testing.T, p *profile.Profile) {
		ts := startServer(t, p)
		c := ts.dial(t)
		spaceOrTab := p.Separators == profile.SeparatorsSpaceOrTab
		for _, line := range []string{"USER\talice", "USER  alice", "user \t alice", "USER alice "} {
			got := c.cmd(line)
			if spaceOrTab != strings.HasPrefix(got, "+OK") {
				t.Errorf("%q: got %q (separators %s)", line, got, p.Separators)
			}
		}
		wantPrefix(t, c.cmd("uSeR alice"), "+OK")
		wantPrefix(t, c.cmd("pass wonderland"), "+OK")
		wantPrefix(t, c.cmd("stat"), "+OK 6 ")
	})
}

func TestCommandLength(t *testing.T) {
	forEachProfile(t, func(t *testing.T, p *profile.Profile) {
		ts := startServer(t, p)
		c := ts.dial(t)
		max := p.MaxCommandOctets
		fill := func(n int) string { return "USER " + strings.Repeat("a", n-len("USER ")-2) }
		wantPrefix(t, c.cmd(fill(max)), okOrUnknown(p))
		wantPrefix(t, c.cmd(fill(max+1)), "-ERR ")
		if p.OverlongCloses() {
			// overlong_command close (Exchange): the -ERR, then the end.
			c = ts.dial(t)
		}
		// Megabytes without CRLF are dropped, not kept, and the session
		// goes on.
		if !p.OverlongCloses() {
			c.send("NOOP " + strings.Repeat("x", 4<<20))
			wantPrefix(t, c.cmd(""), "-ERR ")
		}
		wantPrefix(t, c.cmd("CAPA"), "+OK")
		c.multi()
		c.login("alice", "wonderland")
	})
}

// okOrUnknown is the reply to USER of a name that does not exist.
func okOrUnknown(p *profile.Profile) string {
	if p.UnknownUserReply == profile.ReplyOK {
		return "+OK"
	}
	return "-ERR "
}

func TestUserPass(t *testing.T) {
	forEachProfile(t, func(t *testing.T, p *profile.Profile) {
		ts := startServer(t, p)
		c := ts.dial(t)
		wantPrefix(t, c.cmd("USER nobody"), okOrUnknown(p))
		wantPrefix(t, c.cmd("PASS x"), "-ERR ")
		wantPrefix(t, c.cmd("PASS wonderland"), "-ERR ") // no USER
		wantPrefix(t, c.cmd("USER alice"), "+OK")
		wantPrefix(t, c.cmd("PASS wrong"), errPrefix(p, "AUTH"))
		wantPrefix(t, c.cmd("STAT"), "-ERR ")
		// V0011: spaces in the password.
		if p.PassSpaces {
			c.login("bob", "two words")
			wantPrefix(t, c.cmd("STAT"), "+OK 2 ")
			wantPrefix(t, c.cmd("USER bob"), "-ERR ")
		}
	})
}

func TestErrTextAndResponseLength(t *testing.T) {
	forEachProfile(t, func(t *testing.T, p *profile.Profile) {
		ts := startServer(t, p)
		c := ts.dial(t)
		for _, line := range []string{"XYZZY", "STAT", "RETR 1", "PASS", "NOOP", "\x00", "US\x00ER alice", "USER a\rb", "\xff\xfe", "LIST " + strings.Repeat("9", 30)} {
			got := c.cmd(line)
			if !regexp.MustCompile(`^-ERR \S`).MatchString(got) {
				t.Errorf("%q: got %q, want -ERR with text", line, got)
			}
			if len(got)+2 > p.MaxResponseOctets {
				t.Errorf("%q: response of %d octets", line, len(got)+2)
			}
		}
		c.login("alice", "wonderland")
		for _, line := range []string{"RETR", "RETR 0", "RETR 7", "RETR x", "TOP 1", "TOP 1 -1", "DELE", "LIST 1 2", "USER alice", "APOP a b", "STLS", "STAT 1"} {
			if got := c.cmd(line); !regexp.MustCompile(`^-ERR \S`).MatchString(got) {
				t.Errorf("%q: got %q", line, got)
			}
		}
	})
}

// TestRetrieve checks sizes, UIDL, TOP and that RETR gives back every
// fixture message octet for octet.
func TestRetrieve(t *testing.T) {
	forEachProfile(t, func(t *testing.T, p *profile.Profile) {
		ts := startServer(t, p)
		c := ts.dial(t)
		c.login("alice", "wonderland")
		files := []string{"01-short", "02-dots", "03-multipart", "04-large", "05-utf8", "06-duplicate"}
		var total int64
		for i, f := range files {
			raw, err := fs.ReadFile(fixtures.FS, "mailboxes/alice/"+f+".eml")
			if err != nil {
				t.Fatal(err)
			}
			want := maildrop.Normalize(raw)
			size := p.StoredSize(int64(len(want)))
			total += size
			if got := c.cmd(fmt.Sprintf("LIST %d", i+1)); got != fmt.Sprintf("+OK %d %d", i+1, size) {
				t.Errorf("LIST %d: %q, want size %d", i+1, got, size)
			}
			wantPrefix(t, c.cmd(fmt.Sprintf("RETR %d", i+1)), "+OK")
			if got := c.multi(); got != string(want) {
				t.Errorf("RETR %d (%s): %d octets differ from the %d of the file", i+1, f, len(got), len(want))
			}
		}
		if got := c.cmd("STAT"); got != fmt.Sprintf("+OK 6 %d", total) {
			t.Errorf("STAT %q, want total %d", got, total)
		}
		wantPrefix(t, c.cmd("LIST"), "+OK")
		for i, l := range c.lines() {
			if !regexp.MustCompile(`^\d+ \d+$`).MatchString(l) || !strings.HasPrefix(l, strconv.Itoa(i+1)+" ") {
				t.Errorf("scan listing %q", l)
			}
		}
		wantPrefix(t, c.cmd("UIDL"), "+OK")
		uids := c.lines()
		if len(uids) != 6 {
			t.Fatalf("UIDL: %q", uids)
		}
		prev := uint64(0)
		for _, l := range uids {
			_, uid, _ := strings.Cut(l, " ")
			n, err := strconv.ParseUint(uid, 10, 64)
			if err != nil || n <= prev {
				t.Errorf("UIDs not decimal increasing: %q", uids)
			}
			prev = n
		}
		// TOP: header, blank line, n body lines; dots stuffed.
		wantPrefix(t, c.cmd("TOP 2 2"), "+OK")
		top := c.multi()
		if !strings.HasSuffix(top, "\r\n\r\nLines that start with dots follow.\r\n.one dot at the start\r\n") {
			t.Errorf("TOP 2 2: %q", top)
		}
		wantPrefix(t, c.cmd("TOP 1 0"), "+OK")
		if top := c.multi(); !strings.HasSuffix(top, "\r\n\r\n") || strings.Count(top, "\r\n\r\n") != 1 {
			t.Errorf("TOP 1 0: %q", top)
		}
		wantPrefix(t, c.cmd("QUIT"), "+OK")
	})
}

func TestPipelining(t *testing.T) {
	ts := startServer(t, loadProfile(t, "exchange2010"))
	c := ts.dial(t)
	c.send("USER alice\r\nPASS wonderland\r\nSTAT\r\nLIST 1\r\nNOOP\r\nUIDL 2\r\n")
	for _, want := range []string{"+OK", "+OK", "+OK 6 ", "+OK 1 ", "+OK", "+OK 2 "} {
		wantPrefix(t, c.line(), want)
	}
}

func TestDeleteAndUpdate(t *testing.T) {
	forEachProfile(t, func(t *testing.T, p *profile.Profile) {
		ts := startServer(t, p)
		before, _ := ts.store.Messages("alice")
		c := ts.dial(t)
		c.login("alice", "wonderland")
		wantPrefix(t, c.cmd("DELE 1"), "+OK")
		wantPrefix(t, c.cmd("DELE 1"), "-ERR ")
		wantPrefix(t, c.cmd("RETR 1"), "-ERR ")
		wantPrefix(t, c.cmd("STAT"), "+OK 5 ")
		wantPrefix(t, c.cmd("RSET"), "+OK")
		wantPrefix(t, c.cmd("STAT"), "+OK 6 ")
		wantPrefix(t, c.cmd("DELE 2"), "+OK")
		wantPrefix(t, c.cmd("DELE 6"), "+OK")
		wantPrefix(t, c.cmd("LIST"), "+OK")
		if l := c.lines(); len(l) != 4 || !strings.HasPrefix(l[1], "3 ") {
			t.Fatalf("LIST after DELE: %q", l)
		}
		wantPrefix(t, c.cmd("QUIT"), "+OK")
		c.closed()
		after, _ := ts.store.Messages("alice")
		if len(after) != 4 || after[0].UID != before[0].UID || after[1].UID != before[2].UID {
			t.Fatalf("after UPDATE: %+v", after)
		}
		// Connection loss and shutdown do not UPDATE.
		c = ts.dial(t)
		c.login("alice", "wonderland")
		wantPrefix(t, c.cmd("DELE 1"), "+OK")
		c.conn.Close()
		time.Sleep(50 * time.Millisecond)
		c = ts.dial(t)
		c.login("alice", "wonderland")
		wantPrefix(t, c.cmd("STAT"), "+OK 4 ")
		// A new delivery gets a UID above every earlier one.
		uid, err := ts.store.Deliver("alice", []byte("Subject: x\n\nbody\n"))
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := strconv.Atoi(uid); n <= 6 {
			t.Fatalf("new UID %s reuses an old one", uid)
		}
	})
}

func TestLockAndSnapshot(t *testing.T) {
	forEachProfile(t, func(t *testing.T, p *profile.Profile) {
		ts := startServer(t, p)
		a := ts.dial(t)
		a.login("alice", "wonderland")
		b := ts.dial(t)
		wantPrefix(t, b.cmd("USER alice"), "+OK")
		got := b.cmd("PASS wonderland")
		if p.Lock == profile.LockExclusive {
			wantPrefix(t, got, "-ERR [IN-USE] ")
			wantPrefix(t, a.cmd("QUIT"), "+OK")
			a.closed()
			b.login("alice", "wonderland")
			return
		}
		wantPrefix(t, got, "+OK")
		// C0004: later deliveries are unseen, removals make RETR/TOP fail.
		if _, err := ts.store.Deliver("alice", []byte("Subject: new\r\n\r\nnew\r\n")); err != nil {
			t.Fatal(err)
		}
		msgs, _ := ts.store.Messages("alice")
		if err := ts.store.Remove("alice", msgs[0].UID); err != nil {
			t.Fatal(err)
		}
		wantPrefix(t, a.cmd("STAT"), "+OK 6 ")
		wantPrefix(t, a.cmd("LIST 1"), "+OK 1 ")
		wantPrefix(t, a.cmd("RETR 1"), "-ERR ")
		wantPrefix(t, a.cmd("TOP 1 0"), "-ERR ")
		wantPrefix(t, a.cmd("RETR 2"), "+OK")
		a.multi()
		// b marks 1 (already gone) and 2; a marks 3. Each UPDATE removes
		// only its own marks, and a vanished message is no error.
		wantPrefix(t, b.cmd("DELE 1"), "+OK")
		wantPrefix(t, b.cmd("DELE 2"), "+OK")
		wantPrefix(t, b.cmd("QUIT"), "+OK")
		wantPrefix(t, a.cmd("RETR 2"), "-ERR ")
		wantPrefix(t, a.cmd("DELE 3"), "+OK")
		wantPrefix(t, a.cmd("QUIT"), "+OK")
		left, _ := ts.store.Messages("alice")
		if len(left) != 4 {
			t.Fatalf("left %d messages, want 4", len(left))
		}
		c := ts.dial(t)
		c.login("alice", "wonderland")
		wantPrefix(t, c.cmd("STAT"), "+OK 4 ")
	})
}

func TestTimers(t *testing.T) {
	forEachProfile(t, func(t *testing.T, p *profile.Profile) {
		p.Timers.Unauthenticated = profile.Duration(300 * time.Millisecond)
		p.Timers.Authenticated = profile.Duration(600 * time.Millisecond)
		ts := startServer(t, p)
		notice := ""
		if p.Timers.Notice {
			notice = "-ERR " + p.Timers.NoticeText + "\r\n"
		}
		// Unauthenticated: idle, closed after the notice (or silently).
		c := ts.dial(t)
		start := time.Now()
		if got := c.closed(); got != notice {
			t.Errorf("unauthenticated expiry sent %q, want %q", got, notice)
		}
		if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
			t.Errorf("unauthenticated timer fired after %v", d)
		}
		// Commands reset the timer.
		c = ts.dial(t)
		for range 4 {
			time.Sleep(150 * time.Millisecond)
			wantPrefix(t, c.cmd("CAPA"), "+OK")
			c.multi()
		}
		// Authenticated: the longer timer applies; nothing is removed.
		c.login("alice", "wonderland")
		wantPrefix(t, c.cmd("DELE 1"), "+OK")
		time.Sleep(400 * time.Millisecond)
		wantPrefix(t, c.cmd("NOOP"), "+OK")
		start = time.Now()
		if got := c.closed(); got != notice {
			t.Errorf("authenticated expiry sent %q, want %q", got, notice)
		}
		if d := time.Since(start); d < 500*time.Millisecond {
			t.Errorf("authenticated timer fired after %v", d)
		}
		if msgs, _ := ts.store.Messages("alice"); len(msgs) != 6 {
			t.Errorf("timeout entered UPDATE: %d messages left", len(msgs))
		}
	})
}

// max_command_octets_transaction sets another limit after login, and
// overlong_command close ends the session after the -ERR.
func TestCommandLengthPerStateAndClose(t *testing.T) {
	p := loadProfile(t, "rfc1939")
	p.Name = "dovecot-like"
	p.MaxCommandOctets = 1031
	p.MaxCommandOctetsTransaction = 2048
	p.OverlongCommand = profile.OverlongClose
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, p)
	fill := func(kw string, n int) string { return kw + " " + strings.Repeat("x", n-len(kw)-3) }
	c := ts.dial(t)
	wantPrefix(t, c.cmd(fill("XYZW", 1031)), "-ERR Unknown")
	c.send(fill("XYZW", 1032) + "\r\n")
	if got := c.closed(); !strings.HasPrefix(got, "-ERR Command too long") || strings.Count(got, "\r\n") != 1 {
		t.Fatalf("over-long before login: want -ERR then close, got %q", got)
	}
	c = ts.dial(t)
	c.login("alice", "wonderland")
	wantPrefix(t, c.cmd(fill("XYZW", 2048)), "-ERR Unknown")
	wantPrefix(t, c.cmd("NOOP"), "+OK")
	c.send(fill("NOOP", 2049) + "\r\n")
	if got := c.closed(); !strings.HasPrefix(got, "-ERR Command too long: the limit is 2048") {
		t.Fatalf("over-long after login: want -ERR then close, got %q", got)
	}
	// Exchange profiles stay within 40..1024 (E0006).
	x := loadProfile(t, "exchange2010")
	x.MaxCommandOctets = 1031
	if err := x.Validate(); err == nil {
		t.Fatal("an Exchange profile accepted a 1031-octet limit")
	}
}

// close_after_errors_transaction: its own budget after login, counted
// afresh from the login.
func TestCloseAfterErrorsPerState(t *testing.T) {
	p := loadProfile(t, "rfc1939")
	p.CloseAfterErrors = 3
	p.CloseAfterErrorsTransaction = 5
	ts := startServer(t, p)
	c := ts.dial(t)
	wantPrefix(t, c.cmd("XYZZY"), "-ERR ")
	wantPrefix(t, c.cmd("XYZZY"), "-ERR ")
	c.login("alice", "wonderland")
	for range 4 {
		wantPrefix(t, c.cmd("RETR 99"), "-ERR ")
	}
	c.send("RETR 99\r\n")
	if got := c.closed(); !strings.HasPrefix(got, "-ERR ") || strings.Count(got, "\r\n") != 1 {
		t.Fatalf("fifth -ERR after login then close: got %q", got)
	}
}

func TestCloseAfterErrors(t *testing.T) {
	p := withCodes(loadProfile(t, "exchange2010"))
	p.CloseAfterErrors = 3
	ts := startServer(t, p)
	c := ts.dial(t)
	wantPrefix(t, c.cmd("XYZZY"), "-ERR ")
	wantPrefix(t, c.cmd("USER alice"), "+OK")
	wantPrefix(t, c.cmd("PASS bad"), "-ERR [AUTH]")
	c.send("PASS bad\r\n")
	if got := c.closed(); !strings.HasPrefix(got, "-ERR ") || strings.Count(got, "\r\n") != 1 {
		t.Fatalf("third -ERR then close: got %q", got)
	}
}

func TestCrossSite(t *testing.T) {
	forEachProfile(t, func(t *testing.T, p *profile.Profile) {
		ts := startServer(t, p)
		c := ts.dial(t)
		wantPrefix(t, c.cmd("USER dave"), "+OK")
		got := c.cmd("PASS elsewhere")
		if p.CrossSite == profile.CrossSiteFail {
			wantPrefix(t, got, "-ERR ")
			wantPrefix(t, c.cmd("AUTH PLAIN "+b64("\x00dave\x00elsewhere")), "-ERR ")
			return
		}
		wantPrefix(t, got, "+OK")
		wantPrefix(t, c.cmd("STAT"), "+OK 1 ")
	})
	// The same user logs in on a server of its own site.
	p := loadProfile(t, "exchange2007")
	ts := startServer(t, p, func(c *Config, _ *maildrop.Options) { c.Site = "remote" })
	c := ts.dial(t)
	c.login("dave", "elsewhere")
	wantPrefix(t, c.cmd("USER alice"), "-ERR")
	c = ts.dial(t)
	wantPrefix(t, c.cmd("USER alice"), "+OK")
	wantPrefix(t, c.cmd("PASS wonderland"), "-ERR ")
}

func TestMaxConnections(t *testing.T) {
	ts := startServer(t, withCodes(loadProfile(t, "exchange2010")), func(c *Config, _ *maildrop.Options) { c.MaxConnections = 2 })
	a, b := ts.dial(t), ts.dial(t)
	for _, dial := range []func() string{
		func() string { return ts.dialRaw(t, false) },
		func() string { return ts.dialRaw(t, true) },
	} {
		if got := dial(); !strings.HasPrefix(got, "-ERR [SYS/TEMP] ") {
			t.Fatalf("third connection got %q", got)
		}
	}
	wantPrefix(t, a.cmd("QUIT"), "+OK")
	a.closed()
	time.Sleep(50 * time.Millisecond)
	c := ts.dial(t)
	wantPrefix(t, c.cmd("NOOP"), "-ERR ")
	wantPrefix(t, b.cmd("USER alice"), "+OK")
}

// dialRaw connects and returns all the server sends until it closes.
func (ts *testServer) dialRaw(t *testing.T, secure bool) string {
	t.Helper()
	var c *client
	if secure {
		cn, err := tlsDial(ts)
		if err != nil {
			t.Fatal(err)
		}
		c = &client{t: t, conn: cn}
	} else {
		c = &client{t: t}
		cn, err := netDial(ts.plain)
		if err != nil {
			t.Fatal(err)
		}
		c.conn = cn
	}
	c.r = newReader(c.conn)
	t.Cleanup(func() { c.conn.Close() })
	return c.closed()
}

func TestQuotaWarningRetention(t *testing.T) {
	p := loadProfile(t, "exchange2010")
	p.Storage.QuotaOctets = 400000
	p.Storage.QuotaWarningPercent = 90
	p.Storage.RetentionDays = 7
	p.Storage.AdvertiseExpire = true
	now := time.Now()
	clock := func() time.Time { return now }
	ts := startServer(t, p, func(_ *Config, o *maildrop.Options) {
		o.Now = func() time.Time { return clock() }
	})
	msgs, _ := ts.store.Messages("alice")
	var used int64
	for _, m := range msgs {
		used += m.Size
	}
	// Cross 90%: the delivery is stored, followed by one warning.
	big := bytes.Repeat([]byte("x"), int(360000-used))
	raw := append([]byte("Subject: big\r\n\r\n"), big...)
	if _, err := ts.store.Deliver("alice", raw); err != nil {
		t.Fatal(err)
	}
	after, _ := ts.store.Messages("alice")
	if len(after) != len(msgs)+2 {
		t.Fatalf("%d messages after crossing the warning threshold, want %d", len(after), len(msgs)+2)
	}
	if _, err := ts.store.Deliver("alice", []byte("Subject: small\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	if again, _ := ts.store.Messages("alice"); len(again) != len(after)+1 {
		t.Fatalf("second warning delivered")
	}
	if _, err := ts.store.Deliver("alice", bytes.Repeat([]byte("y\r\n"), 20000)); err == nil {
		t.Fatal("delivery over quota accepted")
	}
	c := ts.dial(t)
	wantPrefix(t, c.cmd("CAPA"), "+OK")
	if capa := c.lines(); !contains(capa, "EXPIRE 7") {
		t.Fatalf("CAPA %q lacks EXPIRE 7", capa)
	}
	// Eight days later the seeded messages are gone at login.
	now = now.Add(8 * 24 * time.Hour)
	c.login("alice", "wonderland")
	wantPrefix(t, c.cmd("STAT"), "+OK 0 0")
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

func TestUpdateFailure(t *testing.T) {
	p := withCodes(loadProfile(t, "exchange2010"))
	var failUID string
	ts := startServer(t, p, func(_ *Config, o *maildrop.Options) {
		o.FailRemove = func(user, uid string) error {
			if uid == failUID {
				return fmt.Errorf("injected failure")
			}
			return nil
		}
	})
	msgs, _ := ts.store.Messages("alice")
	failUID = msgs[1].UID
	c := ts.dial(t)
	c.login("alice", "wonderland")
	for _, n := range []string{"1", "2", "3"} {
		wantPrefix(t, c.cmd("DELE "+n), "+OK")
	}
	wantPrefix(t, c.cmd("QUIT"), "-ERR [SYS/TEMP] ")
	left, _ := ts.store.Messages("alice")
	var uids []string
	for _, m := range left {
		uids = append(uids, m.UID)
	}
	want := []string{msgs[1].UID, msgs[3].UID, msgs[4].UID, msgs[5].UID}
	if strings.Join(uids, ",") != strings.Join(want, ",") {
		t.Fatalf("after failed UPDATE: %v, want %v", uids, want)
	}
}
