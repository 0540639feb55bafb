package conformance

// Helpers of the RFC 1939 section 5 and 7 specs (rfc1939_5_transaction.go,
// rfc1939_7_optional.go, stock_client_go_pop3.go). Names carry the "rfcb"
// prefix so they never clash with other areas' helpers.

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"pop3conformance/suites/harness"
	"pop3conformance/suites/verdict"
)

// RFC 1939 grammar of the replies these specs parse. Text after the sizes
// is allowed by the RFC ("strongly discouraged"); V0004/V0005 judge it.
var (
	rfcbStatRE = regexp.MustCompile(`^\+OK ([0-9]+) ([0-9]+)(?: [^\r\n]*)?\r\n$`)
	rfcbScanRE = regexp.MustCompile(`^([0-9]+) ([0-9]+)(?: [^\r\n]*)?\r\n$`)
	rfcbListRE = regexp.MustCompile(`^\+OK ([0-9]+) ([0-9]+)(?: [^\r\n]*)?\r\n$`)
	// A unique-id listing is the number, one space and the unique-id, and
	// nothing else: the unique-id cannot hold a space.
	rfcbUIDLineRE = regexp.MustCompile(`^([0-9]+) ([^ \r\n]*)\r\n$`)
	rfcbUIDOneRE  = regexp.MustCompile(`^\+OK ([0-9]+) ([^ \r\n]*)\r\n$`)
	// RFC 1939 section 7: 1 to 70 characters in 0x21..0x7E.
	rfcbUIDCharsRE = regexp.MustCompile(`^[\x21-\x7E]{1,70}$`)
	// Any <...> in a greeting looks like an APOP timestamp to a client.
	rfcbAnyStampRE = regexp.MustCompile(`<[^<>\r\n]*>`)
	// The timestamp proper has the syntax of an RFC 822 msg-id:
	// <local-part@domain>.
	rfcbMsgIDRE = regexp.MustCompile(`<[\x21-\x3B\x3D\x3F-\x7E]+@[\x21-\x3B\x3D\x3F-\x7E]+>`)
)

// rfcbScan is one scan listing or one unique-id listing.
type rfcbScan struct {
	Num  int
	Size int64
	UID  string
}

// rfcbStat sends STAT and returns the message count and maildrop size; a
// reply outside the RFC 1939 grammar fails the spec.
func rfcbStat(c *harness.Conn) (int, int64) {
	r := cmd(c, "STAT")
	m := rfcbStatRE.FindStringSubmatch(string(r.Raw))
	ExpectWithOffset(1, m).NotTo(BeNil(), "STAT: want \"+OK nn mm\", got %q", r.Raw)
	n, _ := strconv.Atoi(m[1])
	size, _ := strconv.ParseInt(m[2], 10, 64)
	return n, size
}

// rfcbList sends LIST and returns its scan listings.
func rfcbList(c *harness.Conn) []rfcbScan {
	m := multi(c, "LIST")
	ExpectWithOffset(1, m.OK()).To(BeTrue(), "LIST: want +OK, got %q", m.String())
	out := make([]rfcbScan, 0, len(m.Lines))
	for _, l := range m.Lines {
		s := rfcbScanRE.FindStringSubmatch(string(l))
		ExpectWithOffset(1, s).NotTo(BeNil(), "LIST: %q is not a scan listing \"n size\"", l)
		n, _ := strconv.Atoi(s[1])
		size, _ := strconv.ParseInt(s[2], 10, 64)
		out = append(out, rfcbScan{Num: n, Size: size})
	}
	return out
}

// rfcbUIDL sends UIDL and returns its unique-id listings.
func rfcbUIDL(c *harness.Conn) []rfcbScan {
	m := multi(c, "UIDL")
	ExpectWithOffset(1, m.OK()).To(BeTrue(), "UIDL: want +OK, got %q", m.String())
	out := make([]rfcbScan, 0, len(m.Lines))
	for _, l := range m.Lines {
		s := rfcbUIDLineRE.FindStringSubmatch(string(l))
		ExpectWithOffset(1, s).NotTo(BeNil(), "UIDL: %q is not \"n unique-id\"", l)
		n, _ := strconv.Atoi(s[1])
		out = append(out, rfcbScan{Num: n, UID: s[2]})
	}
	return out
}

// rfcbNeedMessages ends the spec inconclusive when the maildrop holds
// fewer than n messages, and returns the count.
func rfcbNeedMessages(c *harness.Conn, n int) int {
	count, _ := rfcbStat(c)
	if count < n {
		verdict.SkipInconclusive("the maildrop has %d messages; the check needs at least %d", count, n)
	}
	return count
}

// rfcbNeedCapability ends the spec not applicable when the profile does not
// list an optional command of RFC 1939 section 7 among its capabilities.
func rfcbNeedCapability(t *harness.Target, tag string) {
	if !t.Profile.HasCapability(tag) {
		verdict.SkipNotApplicable("the profile does not list the optional command %s in CAPA", tag)
	}
}

// rfcbErrBudget ends the spec not applicable when the profile closes a
// session after fewer negative replies than the check needs to see
// before its last command (C0005).
func rfcbErrBudget(t *harness.Target, errs int) {
	if n := t.Profile.CloseAfterErrors; n > 0 && n <= errs {
		verdict.SkipNotApplicable("the profile closes the session after %d negative replies; the check needs %d in one session", n, errs+1)
	}
}

// rfcbNeedExactSizes ends the spec not applicable when the profile reports
// storage sizes instead of exact octet counts.
func rfcbNeedExactSizes(t *harness.Target) {
	if !t.Profile.ExactSizes {
		verdict.SkipNotApplicable("the profile follows MS-STANXPOP3 2.1.5 (storage sizes)")
	}
}

// rfcbFixture returns the messages the account's maildrop holds, when it
// is known to hold a fixture.
func rfcbFixture(a harness.Account) ([]harness.FixtureMessage, bool) {
	if a.Fixture == "" {
		return nil, false
	}
	msgs, err := harness.FixtureMessages(a.Fixture)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return msgs, true
}

// rfcbNeedFixture ends the spec inconclusive when the maildrop's content is
// unknown.
func rfcbNeedFixture(a harness.Account) []harness.FixtureMessage {
	msgs, ok := rfcbFixture(a)
	if !ok {
		verdict.SkipInconclusive("the maildrop's messages are unknown; set %s to the fixture the account holds", harness.EnvMailboxFixture)
	}
	return msgs
}

// rfcbMaxRead bounds how much a spec downloads from an unknown maildrop
// to learn exact sizes.
const rfcbMaxRead = 4 << 20

// rfcbExactSizes returns the exact octet count of messages 1..n: from the
// fixture when the maildrop holds one, otherwise from RETR.
func rfcbExactSizes(c *harness.Conn, a harness.Account, list []rfcbScan) map[int]int64 {
	out := map[int]int64{}
	if msgs, ok := rfcbFixture(a); ok {
		for i, m := range msgs {
			out[i+1] = int64(len(m.Data))
		}
		return out
	}
	var total int64
	for _, s := range list {
		total += s.Size
		if total > rfcbMaxRead {
			verdict.SkipInconclusive("the maildrop holds more than %d octets, more than the check downloads to learn exact sizes", rfcbMaxRead)
		}
		m := multi(c, fmt.Sprintf("RETR %d", s.Num))
		ExpectWithOffset(1, m.OK()).To(BeTrue(), "RETR %d: want +OK, got %q", s.Num, m.String())
		out[s.Num] = int64(len(m.Body()))
	}
	return out
}

// rfcbStuff byte-stuffs a message as RFC 1939 section 3 wants it on the
// wire: every line that begins with "." gets another one.
func rfcbStuff(data []byte) [][]byte {
	var out [][]byte
	for _, l := range rfcbLines(data) {
		if len(l) > 0 && l[0] == '.' {
			l = append([]byte{'.'}, l...)
		}
		out = append(out, l)
	}
	return out
}

// rfcbLines splits data after every LF, keeping the line ends.
func rfcbLines(data []byte) [][]byte {
	var out [][]byte
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			out = append(out, data)
			break
		}
		out = append(out, data[:i+1])
		data = data[i+1:]
	}
	return out
}

// rfcbTop is what TOP msg n must return for a message: the header, the
// empty line after it and the first n lines of the body (all of it when
// the body is shorter). bodyLines is the number of lines of the body.
func rfcbTop(data []byte, n int) (top []byte, bodyLines int) {
	i := bytes.Index(data, []byte("\r\n\r\n"))
	if i < 0 {
		return data, 0
	}
	head, body := data[:i+4], rfcbLines(data[i+4:])
	if n > len(body) {
		n = len(body)
	}
	return append(append([]byte(nil), head...), bytes.Join(body[:n], nil)...), len(body)
}

// rfcbDiff names the first line where two messages differ, for failure
// messages that do not drown in a 300 KB body.
func rfcbDiff(got, want []byte) string {
	g, w := rfcbLines(got), rfcbLines(want)
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl []byte
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if !bytes.Equal(gl, wl) {
			return fmt.Sprintf("line %d: got %q, want %q (got %d octets, want %d)", i+1, gl, wl, len(got), len(want))
		}
	}
	return "identical"
}

// rfcbNoSuchUser is a mailbox name no server holds, short enough for the
// smallest command limit Exchange allows (E0006).
func rfcbNoSuchUser() string {
	return fmt.Sprintf("nouser%d", time.Now().UnixNano()%1_000_000_000)
}

// rfcbAuthDial opens a connection ready for USER/PASS: under STLS when the
// profile refuses plaintext logins before TLS, as a careful client does.
func rfcbAuthDial(ctx SpecContext, t *harness.Target) *harness.Conn {
	c := dial(ctx, t)
	if !c.TLS() && !t.Profile.PlaintextBeforeTLS && t.Profile.STLS {
		r, err := c.StartTLS(t.TLSConfig())
		ExpectWithOffset(1, err).NotTo(HaveOccurred(), "STLS before a plaintext login")
		expectOK(r, "STLS")
	}
	return c
}

// rfcbRelogin logs in again after the spec closed its previous session
// without QUIT. A server that locks the maildrop may notice the close a
// moment later than the client, so a refused login is retried briefly
// whatever the profile says about locks (2.1.3 is judged elsewhere).
func rfcbRelogin(ctx SpecContext, t *harness.Target, a harness.Account) *harness.Conn {
	deadline := time.Now().Add(3 * time.Second)
	for {
		c, err := t.Login(ctx, a)
		if err == nil {
			return c
		}
		if c != nil {
			c.Close()
		}
		if time.Now().After(deadline) {
			ExpectWithOffset(1, err).NotTo(HaveOccurred(), "log in again as %s", a.User)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// rfcbTimestamp returns the APOP timestamp of a greeting: any <...>, which
// is what a client would take for one.
func rfcbTimestamp(g harness.Reply) (string, bool) {
	s := rfcbAnyStampRE.FindString(g.Text)
	return s, s != ""
}

// rfcbDigest is the APOP digest of RFC 1939 section 7: MD5 over the
// timestamp and the shared secret, in lower-case hex.
func rfcbDigest(stamp, secret string) string {
	sum := md5.Sum([]byte(stamp + secret))
	return hex.EncodeToString(sum[:])
}

// rfcbUnstuff removes byte-stuffing from a multi-line body that a client
// library returned still stuffed.
func rfcbUnstuff(data []byte) []byte {
	var b bytes.Buffer
	for _, l := range rfcbLines(data) {
		if len(l) > 0 && l[0] == '.' {
			l = l[1:]
		}
		b.Write(l)
	}
	return b.Bytes()
}

// rfcbNote records an informational observation in the report.
func rfcbNote(name, format string, args ...any) {
	AddReportEntry(name, fmt.Sprintf(format, args...))
}

// rfcbFirstLine returns a line without its line end, for messages.
func rfcbFirstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSuffix(s, "\r")
}
