package server

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/emersion/go-sasl"
)

// A small NTLMv2 acceptor for AUTH NTLM (MS-OXPOP3, MS-NLMP): it answers a
// NEGOTIATE_MESSAGE with a CHALLENGE_MESSAGE and checks the NTLMv2
// response of the AUTHENTICATE_MESSAGE against the stored password. There
// is no session security: the CHALLENGE never offers NEGOTIATE_KEY_EXCH,
// LM_KEY or NTLMv1, and a response that is not NTLMv2 fails.

const (
	ntlmNegotiateUnicode                                                                             = 0x00000001
	ntlmRequestTarget                                                                                = 0x00000004
	ntlmNegotiateNTLM                                                                                = 0x00000200
	ntlmAlwaysSign                                                                                   = 0x00008000
	ntlmTargetTypeDomain                                                                             = 0x00010000
	ntlmExtendedSessionSec                                                                           = 0x00080000
	ntlmNegotiateTargetInfo                                                                          = 0x00800000
	ntlmNegotiateVersion                                                                             = 0x02000000
	ntlmNegotiate128                                                                                 = 0x20000000
	ntlmNegotiate56                                                                                  = 0x80000000
	ntlmChallengeFlags                                                                               = ntlmNegotiateUnicode | ntlmRequestTarget | ntlmNegotiateNTLM | ntlmAlwaysSign | ntlmTargetTypeDomain | ntlmExtendedSessionSec | ntlmNegotiateTargetInfo | ntlmNegotiateVersion | ntlmNegotiate128 | ntlmNegotiate56
	ntlmDomain                                                                                       = "POP3CONF"
	ntlmMinV2Response                                                                                = 16 + 28 // NTProofStr + the fixed part of the blob
	ntlmAvEOL, ntlmAvNbComputer, ntlmAvNbDomain, ntlmAvDNSComputer, ntlmAvDNSDomain, ntlmAvTimestamp = 0, 1, 2, 3, 4, 7
)

var ntlmSignature = []byte("NTLMSSP\x00")

var errNTLM = errors.New("ntlm: malformed message")

type ntlmServer struct {
	ntHash    func(user string) ([]byte, bool)
	host      string
	now       func() time.Time
	user      *string
	step      int
	challenge [8]byte
}

func newNTLMMechanism(s *session, user *string) sasl.Server {
	host := strings.ToUpper(strings.SplitN(s.srv.hostname, ".", 2)[0])
	return &ntlmServer{ntHash: s.srv.store.NTHash, host: host, now: time.Now, user: user}
}

// Next implements sasl.Server.
func (n *ntlmServer) Next(resp []byte) ([]byte, bool, error) {
	switch n.step {
	case 0:
		n.step = 1
		if resp == nil {
			return []byte{}, false, nil // "+ ": send your NEGOTIATE_MESSAGE
		}
		fallthrough
	case 1:
		if err := checkNTLMHeader(resp, 1, 16); err != nil {
			return nil, false, fmt.Errorf("negotiate: %w", err)
		}
		n.step = 2
		if _, err := rand.Read(n.challenge[:]); err != nil {
			return nil, false, fmt.Errorf("ntlm: random: %w", err)
		}
		return n.challengeMessage(), false, nil
	case 2:
		n.step = 3
		user, err := n.verify(resp)
		if err != nil {
			return nil, false, err
		}
		*n.user = user
		return nil, true, nil
	}
	return nil, false, sasl.ErrUnexpectedClientResponse
}

func checkNTLMHeader(msg []byte, typ uint32, min int) error {
	if len(msg) < min || !bytes.Equal(msg[:8], ntlmSignature) {
		return errNTLM
	}
	if binary.LittleEndian.Uint32(msg[8:12]) != typ {
		return fmt.Errorf("%w: message type %d, want %d", errNTLM, binary.LittleEndian.Uint32(msg[8:12]), typ)
	}
	return nil
}

func (n *ntlmServer) challengeMessage() []byte {
	target := utf16le(ntlmDomain)
	var info bytes.Buffer
	av := func(id uint16, v []byte) {
		binary.Write(&info, binary.LittleEndian, id)
		binary.Write(&info, binary.LittleEndian, uint16(len(v)))
		info.Write(v)
	}
	ts := make([]byte, 8)
	// FILETIME: 100 ns ticks since 1601.
	binary.LittleEndian.PutUint64(ts, uint64(n.now().UnixNano()/100)+116444736000000000)
	av(ntlmAvNbDomain, target)
	av(ntlmAvNbComputer, utf16le(n.host))
	av(ntlmAvDNSDomain, utf16le("localdomain"))
	av(ntlmAvDNSComputer, utf16le(strings.ToLower(n.host)))
	av(ntlmAvTimestamp, ts)
	av(ntlmAvEOL, nil)

	const header = 56
	msg := make([]byte, header, header+len(target)+info.Len())
	copy(msg, ntlmSignature)
	le := binary.LittleEndian
	le.PutUint32(msg[8:], 2)
	putField := func(at int, data []byte) {
		le.PutUint16(msg[at:], uint16(len(data)))
		le.PutUint16(msg[at+2:], uint16(len(data)))
		le.PutUint32(msg[at+4:], uint32(len(msg)))
		msg = append(msg, data...)
	}
	le.PutUint32(msg[20:], ntlmChallengeFlags)
	copy(msg[24:32], n.challenge[:])
	// Version: 10.0, NTLM revision 15.
	msg[48], msg[49], msg[55] = 10, 0, 15
	putField(12, target)
	putField(40, info.Bytes())
	return msg
}

// ntlmField returns the payload a security buffer at off points to.
func ntlmField(msg []byte, off int) ([]byte, error) {
	le := binary.LittleEndian
	l := int(le.Uint16(msg[off:]))
	at := int(le.Uint32(msg[off+4:]))
	if at < 0 || at > len(msg) || l > len(msg)-at {
		return nil, fmt.Errorf("%w: field out of bounds", errNTLM)
	}
	return msg[at : at+l], nil
}

func (n *ntlmServer) verify(msg []byte) (string, error) {
	if err := checkNTLMHeader(msg, 3, 64); err != nil {
		return "", fmt.Errorf("authenticate: %w", err)
	}
	nt, err := ntlmField(msg, 20)
	if err != nil {
		return "", err
	}
	domainRaw, err := ntlmField(msg, 28)
	if err != nil {
		return "", err
	}
	userRaw, err := ntlmField(msg, 36)
	if err != nil {
		return "", err
	}
	unicode := binary.LittleEndian.Uint32(msg[60:])&ntlmNegotiateUnicode != 0
	user, domain := decodeNTLMString(userRaw, unicode), decodeNTLMString(domainRaw, unicode)
	if user == "" {
		return "", errors.New("ntlm: anonymous logon refused")
	}
	if len(nt) < ntlmMinV2Response {
		return "", errors.New("ntlm: not an NTLMv2 response")
	}
	hash, ok := n.ntHash(user)
	if !ok {
		return "", errBadCredentials
	}
	proof, blob := nt[:16], nt[16:]
	key := ntowfV2(hash, user, domain)
	mac := hmac.New(md5.New, key)
	mac.Write(n.challenge[:])
	mac.Write(blob)
	if !hmac.Equal(mac.Sum(nil), proof) {
		return "", errBadCredentials
	}
	return user, nil
}

// ntowfV2 is MS-NLMP 3.3.2 NTOWFv2 from the NT hash (MD4 of the UTF-16LE
// password), which is all the store needs to keep for NTLM.
func ntowfV2(ntHash []byte, user, domain string) []byte {
	mac := hmac.New(md5.New, ntHash)
	mac.Write(utf16le(strings.ToUpper(user) + domain))
	return mac.Sum(nil)
}

func utf16le(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}

func decodeNTLMString(b []byte, unicode bool) string {
	if !unicode {
		return string(b)
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}
