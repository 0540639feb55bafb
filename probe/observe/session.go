package observe

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// separators sends USER with a TAB and with two SPACEs before the
// account's name. -ERR means the line was not split there; +OK is proof
// when the server refuses unknown names at USER, and otherwise PASS
// decides: only a correctly split name logs in.
func (p *prober) separators(ctx context.Context) error {
	a, err := p.account(ctx)
	if err != nil {
		p.skip("separators", err.Error())
		return nil
	}
	results := map[string]bool{}
	for _, tc := range []struct{ key, sep, what string }{
		{"tab_separates", "\t", "a TAB"},
		{"multiple_spaces_separate", "  ", "two SPACEs"},
	} {
		c, err := p.authConn(ctx)
		if err != nil {
			return err
		}
		// A +OK to USER is proof enough where unknown names get -ERR.
		userProves := p.unknownOK != nil && !*p.unknownOK
		s, err := harness.TrySeparator(c, a, tc.sep, !userProves)
		closed := !s.PassSent && harness.IsServerClose(err)
		if err != nil && !closed {
			return err
		}
		var ok bool
		method := "USER with " + tc.what + " before the account's name: "
		switch {
		case closed:
			// Twisted drops the connection on a command with an empty
			// argument: the line was not taken as USER and a name.
			method += "the connection closed without a reply"
		case !s.User.OK():
			method += "refused"
		case userProves:
			ok = true
			method += "+OK from a server that refuses unknown names at USER"
		default:
			ok = s.LoggedIn()
			method += "+OK, then PASS decided (a login works only when the name was split off correctly)"
			if ok {
				p.quit(c)
			}
		}
		results[tc.key] = ok
		p.set(tc.key, ok, method)
		p.evidence(tc.key, c)
	}
	v := "mixed"
	switch {
	case results["tab_separates"] && results["multiple_spaces_separate"]:
		v = "space-or-tab"
	case !results["tab_separates"] && !results["multiple_spaces_separate"]:
		v = "single-space"
	}
	p.set("separators", v, "space-or-tab when both a TAB and two SPACEs separate, single-space when neither does")
	return nil
}

// login is harness.LoginUserPass, recording the replies to USER and to
// the successful PASS.
func (p *prober) login(c *harness.Conn, a harness.Account) error {
	r, err := c.Cmd("USER " + a.User)
	if err != nil {
		return err
	}
	if !r.OK() {
		return fmt.Errorf("USER %s: %s", a.User, r)
	}
	if !p.mentions("user", r, a.User) {
		p.reply("user", r, "the reply to USER of the account's name", true)
	}
	r, err = c.Cmd("PASS " + a.Password)
	if err != nil {
		return err
	}
	if !r.OK() {
		return &harness.PassError{User: a.User, Reply: r}
	}
	if !p.mentions("pass_ok", r, a.User) {
		p.reply("pass_ok", r, "the reply to the account's successful PASS", false)
	}
	return nil
}

// quit sends QUIT and records its reply (the first one seen).
func (p *prober) quit(c *harness.Conn) {
	if r, err := c.Quit(); err == nil {
		p.reply("quit", r, "the reply to QUIT", true)
	}
}

// session logs in once: CAPA after login, sizes and UIDs.
func (p *prober) session(ctx context.Context) error {
	a, err := p.account(ctx)
	if err != nil {
		for _, k := range []string{"capa_after_login", "exact_sizes", "uid.format"} {
			p.skip(k, err.Error())
		}
		return nil
	}
	c, err := p.loggedIn(ctx, func(c *harness.Conn) error {
		err := p.login(c, a)
		if err != nil {
			p.evidence("login", c)
		}
		return err
	})
	if loginFailed(err) {
		return fmt.Errorf("login: %w", err)
	}
	if err != nil {
		return errors.Unwrap(err)
	}
	retrieved := false
	defer func() {
		// QUIT only when nothing was retrieved: some servers mark
		// retrieved mail as read on QUIT.
		if !retrieved {
			_, _ = c.Quit()
		}
	}()
	if m, err := c.CmdMulti("CAPA"); err == nil && m.OK() {
		p.set("capa_after_login", m.Texts(), "CAPA in the TRANSACTION state")
		p.reply("capa", m.Reply, "the first line of CAPA after login (none before it)", true)
	}
	list, err := c.CmdMulti("LIST")
	if err != nil {
		return fmt.Errorf("LIST: %w", err)
	}
	var nums []int
	var sizes []int64
	for _, l := range list.Texts() {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		n, err1 := strconv.Atoi(f[0])
		sz, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 == nil && err2 == nil {
			nums, sizes = append(nums, n), append(sizes, sz)
		}
	}
	p.set("message_count", len(sizes), "scan listings of LIST")
	if err := p.sizes(c, a, nums, sizes, &retrieved); err != nil {
		p.fail("sizes", err)
	}
	p.evidence("exact_sizes", c)

	u, err := c.CmdMulti("UIDL")
	switch {
	case err != nil:
		return fmt.Errorf("UIDL: %w", err)
	case !u.OK():
		p.skip("uid.format", "UIDL refused: "+u.String())
	default:
		p.reply("uidl", u.Reply, "the first line of UIDL", false)
		var uids []string
		for _, l := range u.Texts() {
			if f := strings.Fields(l); len(f) >= 2 {
				uids = append(uids, f[1])
			}
		}
		if len(uids) == 0 {
			p.skip("uid.format", "the mailbox is empty")
			break
		}
		dec, inc := uidShape(uids)
		format := "any"
		if dec && inc {
			format = "decimal-increasing"
		}
		p.set("uid_decimal", dec, "every UIDL unique-id is a decimal number")
		p.set("uid_increasing", inc, "the unique-ids grow with the message number (numerically when decimal)")
		p.set("uid.format", format, fmt.Sprintf("UIDL of %d messages: decimal-increasing when decimal and increasing", len(uids)))
	}
	return nil
}

var decimal = regexp.MustCompile(`^[0-9]+$`)

// uidShape says whether every UID is decimal and whether they increase.
func uidShape(uids []string) (dec, inc bool) {
	dec, inc = true, true
	for i, u := range uids {
		if !decimal.MatchString(u) {
			dec = false
		}
		if i == 0 {
			continue
		}
		prev := uids[i-1]
		if dec {
			a, b := strings.TrimLeft(prev, "0"), strings.TrimLeft(u, "0")
			if len(a) > len(b) || (len(a) == len(b) && a >= b) {
				inc = false
			}
		} else if prev >= u {
			inc = false
		}
	}
	return dec, inc
}

// sizes measures exact_sizes: whether the size LIST reports for a
// message equals the octets RETR sends for it in the same session (byte-
// stuffing undone, line ends counted as sent: CRLF is two). It retrieves
// the smallest message only, so the session ends without QUIT (see
// session). Whether the sizes are the fixture's the maildrop is declared
// to hold is another matter, told in the method only: a server may change
// a message and report its new size exactly (GNU Mailutils adds an X-UIDL
// header line).
func (p *prober) sizes(c *harness.Conn, a harness.Account, nums []int, sizes []int64, retrieved *bool) error {
	if len(sizes) == 0 {
		p.skip("exact_sizes", "the mailbox is empty")
		return nil
	}
	fixture := ""
	if a.Fixture != "" {
		var err error
		if fixture, err = fixtureSizes(a.Fixture, sizes); err != nil {
			p.fail("fixture sizes", err)
		}
	}
	i := 0
	for j := range sizes {
		if sizes[j] < sizes[i] {
			i = j
		}
	}
	m, err := c.CmdMulti(fmt.Sprintf("RETR %d", nums[i]))
	*retrieved = true
	if err != nil {
		return fmt.Errorf("RETR: %w", err)
	}
	if !m.OK() {
		p.skip("exact_sizes", "RETR refused: "+m.String())
		return nil
	}
	listed, sent := sizes[i], int64(len(m.Body()))
	if strings.Contains(m.Text, fmt.Sprint(listed)) || strings.Contains(m.Text, fmt.Sprint(sent)) {
		p.skip("replies.retr", fmt.Sprintf("the first line of RETR %q names the message's size: no one text for every message", m.String()))
	} else {
		p.reply("retr", m.Reply, "the first line of RETR", false)
	}
	isExact := listed == sent
	method := fmt.Sprintf("the LIST size of message %d, the smallest, against the octets RETR sent for it in the same session, byte-stuffing undone (listed %d, sent %d; the session ends without QUIT)", nums[i], listed, sent)
	if fixture != "" {
		method += "; apart from that, " + fixture
	}
	p.set("exact_sizes", isExact, method)
	if !isExact && listed > sent {
		var g int64
		for _, s := range sizes {
			g = gcd(g, s)
		}
		if g >= 2 {
			p.set("storage_block_octets", int(g), "greatest common divisor of the LIST sizes, the retrieved message's being larger than the octets RETR sent")
		}
	}
	return nil
}

// fixtureSizes compares the LIST sizes with the octet counts (CRLF line
// ends) of the fixture the maildrop is declared to hold, in words.
func fixtureSizes(fixture string, sizes []int64) (string, error) {
	msgs, err := harness.FixtureMessages(fixture)
	if err != nil {
		return "", err
	}
	if len(msgs) != len(sizes) {
		return fmt.Sprintf("LIST lists %d messages, fixture %s has %d", len(sizes), fixture, len(msgs)), nil
	}
	for k, m := range msgs {
		if n := int64(len(m.Data)); n != sizes[k] {
			return fmt.Sprintf("the LIST sizes differ from fixture %s's (message %d: listed %d, fixture %d)", fixture, k+1, sizes[k], n), nil
		}
	}
	return fmt.Sprintf("the LIST sizes equal fixture %s's", fixture), nil
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// lock logs in to one mailbox twice at once. It needs the disruptive
// permission against a remote host: the second login may be refused, or
// worse, end the first session.
func (p *prober) lock(ctx context.Context) error {
	if p.t.Reference() == nil && !p.t.Config.Allow.Disruptive {
		p.skip("lock", "needs --allow-disruptive (logs in to one mailbox twice at once)")
		return nil
	}
	a, err := p.account(ctx)
	if err != nil {
		p.skip("lock", err.Error())
		return nil
	}
	// The session step before closed its connection without QUIT.
	first, err := p.loggedIn(ctx, func(c *harness.Conn) error {
		err := harness.LoginUserPass(c, a)
		if err != nil {
			p.evidence("lock", c)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("first login: %w", err)
	}
	second, err := p.authConn(ctx)
	if err != nil {
		return err
	}
	r, err := second.Cmd("USER " + a.User)
	if err == nil && r.OK() {
		r, err = second.Cmd("PASS " + a.Password)
	}
	if err != nil {
		return fmt.Errorf("second login: %w", err)
	}
	v := "exclusive"
	if r.OK() {
		v = "none"
		p.quit(second)
	}
	p.quit(first)
	p.set("lock", v, "a second login to the mailbox while the first session is open: none when it works")
	p.set("lock_reply", r.String(), "the reply that decided the second login")
	p.evidence("lock", first, second)
	return nil
}

// loggedIn opens a connection and logs in with login. The step before
// closed its session without QUIT, and a server that locks the maildrop
// may free it a moment late: a refused PASS (not one with [AUTH], which
// blames the credentials) is tried again on a new connection, up to
// three times, a second apart. After the last refusal the closed
// connection comes back with the error, as evidence.
func (p *prober) loggedIn(ctx context.Context, login func(*harness.Conn) error) (*harness.Conn, error) {
	return p.loggedInOn(ctx, p.t, login)
}

// loggedInOn is loggedIn to t (a variant of the bundled server).
func (p *prober) loggedInOn(ctx context.Context, t *harness.Target, login func(*harness.Conn) error) (*harness.Conn, error) {
	const attempts = 3
	for i := 1; ; i++ {
		c, err := p.authConnOn(ctx, t)
		if err != nil {
			return nil, &connectError{err}
		}
		err = login(c)
		if err == nil {
			return c, nil
		}
		c.Close()
		var pe *harness.PassError
		if i == attempts || !errors.As(err, &pe) || !pe.MayBeBusy() {
			return c, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// connectError is loggedIn failing before the login: no connection.
type connectError struct{ err error }

func (e *connectError) Error() string { return e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }

// loginFailed says whether loggedIn's error came from the login itself.
func loginFailed(err error) bool {
	var ce *connectError
	return err != nil && !errors.As(err, &ce)
}
