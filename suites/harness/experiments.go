package harness

// Experiments the specs judge and the probe's measurement (probe/observe)
// records alike: one place sends the lines, each side reads the result
// its own way.

import (
	"crypto/md5"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// NoSuchUser is a mailbox name no server holds, short enough for the
// smallest command limit (E0006: 40 octets).
func NoSuchUser() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail
	return fmt.Sprintf("nosuch%012d", binary.BigEndian.Uint64(b[:])%1e12)
}

// APOPDigest is the APOP digest of RFC 1939 section 7: MD5 over the
// greeting's timestamp and the shared secret, in lower-case hex.
func APOPDigest(stamp, secret string) string {
	sum := md5.Sum([]byte(stamp + secret))
	return hex.EncodeToString(sum[:])
}

// SeparatorTry is how a server took USER with a separator other than one
// SPACE before the account's name (MS-STANXPOP3 2.1.1).
type SeparatorTry struct {
	// Last is the last line sent: the USER line, or PASS after it.
	Last string
	User Reply
	// PassSent says PASS went out; Pass is its reply.
	Pass     Reply
	PassSent bool
}

// LoggedIn says whether PASS logged the account in: only a name split
// off correctly does.
func (s SeparatorTry) LoggedIn() bool { return s.PassSent && s.Pass.OK() }

// TrySeparator sends USER, sep and a's name on c, a connection ready for
// a plaintext login, and then, when USER got +OK and pass is set, PASS
// with a's password: a +OK to USER tells little where a server answers
// +OK for any name (V0008), the login tells whether the name was split
// off. An error is the transport's (a close, silence) on s.Last.
func TrySeparator(c *Conn, a Account, sep string, pass bool) (SeparatorTry, error) {
	s := SeparatorTry{Last: "USER" + sep + a.User}
	r, err := c.Cmd(s.Last)
	if err != nil {
		return s, err
	}
	s.User = r
	if !r.OK() || !pass {
		return s, nil
	}
	s.Last, s.PassSent = "PASS "+a.Password, true
	s.Pass, err = c.Cmd(s.Last)
	return s, err
}
